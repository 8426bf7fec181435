"""Spike counts: DSR against elephant's GPFA on a Poisson population driven by a chaotic ODE.

A Lorenz-63 latent (z-scored, one Lorenz time unit per second, λ_max = 0.9056 /s) drives a
Poisson population (:func:`nwb_dsr.datasets.make_lorenz_population`, default 60 units, 10-ms
bins, 10 minutes, about 15 Hz per unit). The first 80 % of the time is for training, the final
20 % for testing; 20 % of the units (a seeded random choice) are held out for co-smoothing.

DSR (``DSR()`` defaults for counts — Poisson layer with exp link, τ from the data's λ_max (a
quarter of ln 2 / λ_max), learned forcing states — except ``max_time``) is fitted on all units over the training time, as one segment.
Then:

* ``lambda_max_ours``: ``lyapunov_spectrum(est)[0]`` in 1/s, against the truth.
* ``D_stsp``, ``D_H``: an affine map from our latent to the true 3-D latent is fitted by least
  squares with intercept over the training bins: the true latent regressed on the training
  latent smoothed through time (``est.smooth(train)``, all units). A free run starts from the
  forced state at the first test bin, runs 1.25·T steps (T = number of test bins) and drops
  the first 0.25·T; the map turns it into a 3-D trajectory compared with the true test latent
  (binned D_stsp, D_H as in METRICS.md).
* ``D_stsp_forced_map``, ``D_H_forced_map``: the same with the map fitted on the forced states
  of single bins (``est.transform(train)``). Those carry the Poisson noise of each bin, and a
  least-squares fit on a noisy regressor shrinks the map towards the mean (regression
  dilution), so a noise-free free run lands on a shrunken copy of the attractor.
  ``latent_r2_test`` and ``latent_r2_test_forced_map`` give each map's R² on the test bins
  (smoothed and forced test latent respectively).
* ``D_stsp_data_floor``: for scale, D_stsp of the true test latent against the true latent of
  each training window of the same length (mean, min, max): what the attractor's own
  recordings of that length give.
* ``protocol_D_stsp``, ``protocol_D_H``: the evaluation protocol (:mod:`nwb_dsr.protocol`, what
  model selection minimises) of a free run against the test counts.
* ``co_bps_ours``: in the test time the latent is inferred from the held-in units only, through
  time under the fitted dynamics (:meth:`nwb_dsr.DSR.smooth`, a MAP smoother started from the
  forced states); held-out rates are exp(B_out ẑ_t + b_out) (see :func:`dsr_cosmooth_rates`).
  ``co_bps_ours_bin_by_bin``: the same with the forced state of every bin on its own (the
  Poisson layer's inverse restricted to the held-in rows, as in training).

GPFA (``elephant.gpfa.GPFA``, 10-ms bins, ``--x-dim`` latents, elephant's defaults otherwise,
which model square-rooted counts) is fitted on the same training data — all units, the training
time cut into trials of ``--trial-length`` seconds, as lists of neo SpikeTrains. In each test
trial the latent posterior mean is computed by exact GP inference
(``elephant.gpfa.gpfa_core.exact_inference_with_ll``) with the fitted parameters restricted to the
held-in rows (C_in, d_in, R_in), from the held-in units' square-rooted counts; the held-out
prediction on the square-root scale is ŝ = C_out x̂ + d_out. It is turned into expected counts in
two ways (see :func:`gpfa_cosmooth_rates`): ``"square"``, r = max(ŝ, 0)², and ``"moment"``,
r = ŝ² + diag(C_out V C_outᵀ) + diag(R_out) (the second moment of the Gaussian predictive
distribution of √count, V the posterior covariance of x̂); both are floored at
``--gpfa-floor`` counts per bin. ``co_bps_gpfa`` is the better of the two (benefit of the
doubt to the baseline); both are listed.

co-bps (``nwb_dsr.analysis.evaluate.co_bps``, the exact METRICS.md definition) is computed for
both models on the same held-out units and the same test bins (the whole trials of the test
time).

    python benchmarks/spikes_vs_gpfa.py --max-time 0 --seed 0

Harder regimes (the defaults above are unchanged): ``--system NAME`` drives the population with
another registered chaotic ODE (:data:`nwb_dsr.datasets.SYSTEMS`: roessler, thomas, halvorsen,
chen, sprott_b, at each system's default time scale), ``--n-units``, ``--rate`` (population
mean rate in Hz) and ``--bin-size`` set the population, and ``--trials N --trial-duration S``
replace the continuous recording by N short trials of S seconds, each starting at an
independent point of the attractor (:func:`nwb_dsr.datasets.make_population`). With trials the
first 80 % of the trials are for training (DSR is fitted on the list of training trials, GPFA on
the same trials) and the last 20 % for testing; the latent map, R², the free run (started from
the first test trial, compared with all test trials' latent) and co-bps (every bin of the test
trials) are computed on them. The true λ_max always comes from the population.

    python benchmarks/spikes_vs_gpfa.py --system roessler --trials 100 --trial-duration 2

``--max-time 0`` trains for the DSR's epoch budget only (200 epochs); a time budget only stops
training early (the learning-rate schedule follows the epochs), so the same seed gives the same
figures on a busy or an idle machine as long as the budget does not stop it.

``--checkpoints`` shows how the dynamics moved during training and what model selection chose
from: every checkpoint that validation scored, of every ensemble member, is kept (a fit
callback, whose time the budget does not count) and listed (``checkpoints``) with its
validation score and collapse and the λ_max of the map at that epoch, estimated as the fitted
model's is (``lyapunov_spectrum``: :data:`~nwb_dsr.config.LYAPUNOV_STEPS` steps from the forced
states of :data:`~nwb_dsr.config.LYAPUNOV_STARTS` bins spread over the training data, so the
selected checkpoint's is ``lambda_max_ours``). It prints, per member, how many checkpoints were
within 30 % of the true λ_max, and which one was selected.

    python benchmarks/spikes_vs_gpfa.py --system roessler --seed 2 --max-time 0 --skip-gpfa \
        --checkpoints

The last printed line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402
from sklearn.metrics import r2_score  # noqa: E402

from nwb_dsr import DSR, Observations  # noqa: E402
from nwb_dsr.metrics import power_spectrum_distance, state_space_divergence  # noqa: E402

__all__ = ["split_units", "dsr_cosmooth_rates", "latent_map", "r_squared", "aligned_divergences",
           "data_floor", "generated_latent", "trials_of_spike_trains", "gpfa_cosmooth_rates",
           "checkpoint_trace", "main"]

#: ``--checkpoints`` counts the checkpoints whose λ_max is within this fraction of the truth.
CHECKPOINT_TOLERANCE = 0.3


# ============================================================================ helpers
def split_units(n_units: int, held_out_fraction: float = 0.2, seed: int = 0):
    """Seeded random split of unit indices into held-in and held-out.

    Parameters
    ----------
    n_units : int
        Number of units.
    held_out_fraction : float
        Fraction of units held out (at least one unit, at most ``n_units - 1``).
    seed : int
        Seed of the choice.

    Returns
    -------
    held_in, held_out : ndarray of int
        Sorted unit indices.

    Examples
    --------
    >>> held_in, held_out = split_units(10, 0.2, seed=0)
    >>> len(held_in), len(held_out), sorted(set(held_in) | set(held_out)) == list(range(10))
    (8, 2, True)
    """
    if n_units < 2:
        raise ValueError(f"n_units must be at least 2 to hold some out; got {n_units}.")
    n_out = int(np.clip(round(held_out_fraction * n_units), 1, n_units - 1))
    perm = np.random.default_rng(seed).permutation(n_units)
    return np.sort(perm[n_out:]), np.sort(perm[:n_out])


@torch.no_grad()
def dsr_cosmooth_rates(est: DSR, counts_in, held_in, held_out, *, smooth: bool = True,
                       weight="auto"):
    """Held-out expected counts of a fitted Poisson DSR, inferred from held-in units only.

    With ``smooth`` (the default) the latent is :meth:`nwb_dsr.DSR.smooth` of the held-in
    counts: the trajectory that best explains them under the fitted dynamics (a MAP smoother
    through time). Otherwise it is the forced state of every bin on its own, the Poisson
    layer's inverse restricted to the held-in rows
    (:meth:`~nwb_dsr.models.observation.PoissonObservation.invert` with ``rows``) of the
    held-in forcing targets (link⁻¹ of Gaussian-smoothed counts), as in training. The held-out
    rates are link(B_out ẑ_t + b_out).

    Parameters
    ----------
    est : DSR
        Estimator fitted on all units (held-in and held-out) with a Poisson layer.
    counts_in : ndarray, shape (n_bins, n_held_in), or list of such arrays
        Held-in spike counts of the evaluation period (one array per trial).
    held_in, held_out : array of int
        Column indices of the held-in and held-out units in the estimator's channels.
    smooth : bool, default True
        Infer the latent through time with the fitted map (else bin by bin).
    weight : float or "auto", default "auto"
        With ``smooth``: the weight of the dynamics prior (:meth:`nwb_dsr.DSR.smooth`).

    Returns
    -------
    ndarray, shape (n_bins, n_held_out), or a list of them for a list of trials
        Expected counts per bin of the held-out units.

    Raises
    ------
    ValueError
        If the estimator does not have a Poisson layer or the shapes do not match.
    """
    o = est.observation_model_
    if o.name != "poisson":
        raise ValueError(f"dsr_cosmooth_rates needs a Poisson read-out; this estimator has a "
                         f"{o.name!r} one.")
    held_in, held_out = np.asarray(held_in), np.asarray(held_out)
    single = not isinstance(counts_in, (list, tuple))
    segs = [np.asarray(c, dtype=np.float64) for c in ([counts_in] if single else counts_in)]
    for c in segs:
        if c.ndim != 2 or c.shape[1] != held_in.size:
            raise ValueError(f"counts_in must be (n_bins, {held_in.size}) held-in counts; got "
                             f"shape {c.shape}.")
    if smooth:
        Z = [torch.as_tensor(z) for z in est.smooth(segs, channels=held_in, weight=weight)]
    else:
        Z = [o.invert(torch.as_tensor(o.forcing_target(c)), rows=torch.as_tensor(held_in))
             for c in segs]
    with torch.no_grad():
        out = [o.mean(z.to(o.B.dtype)).numpy()[:, held_out].astype(np.float64) for z in Z]
    return out[0] if single else out


def latent_map(z: np.ndarray, target: np.ndarray) -> LinearRegression:
    """Least-squares affine map (with intercept) from our latent ``z`` to the true ``target``."""
    return LinearRegression().fit(np.asarray(z, dtype=np.float64), target)


def r_squared(target: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination pooled over dimensions, 1 − ΣSS_res / ΣSS_tot."""
    return float(r2_score(target, pred, multioutput="variance_weighted"))


def aligned_divergences(latent_test: np.ndarray, z_gen: np.ndarray,
                        to_truth: LinearRegression) -> tuple[float, float]:
    """D_stsp and D_H of a free run ``z_gen`` mapped by ``to_truth`` against the true test
    latent; NaN for a run that explodes (or overflows in the map)."""
    gen = to_truth.predict(z_gen) if np.all(np.isfinite(z_gen)) else z_gen
    if not np.all(np.isfinite(gen)):
        return float("nan"), float("nan")
    return (float(state_space_divergence(latent_test, gen)),
            float(power_spectrum_distance(latent_test, gen)))


def data_floor(latent_test: np.ndarray, latent_train: np.ndarray) -> dict:
    """D_stsp of the true test latent against the true latent of each consecutive training
    window of the same length: the attractor against itself, for scale.

    Returns
    -------
    dict
        ``mean``, ``min``, ``max`` over the windows (NaN when the training time is shorter
        than the test time) and ``n_windows``.
    """
    T = len(latent_test)
    vals = [float(state_space_divergence(latent_test, latent_train[a:a + T]))
            for a in range(0, len(latent_train) - T + 1, T)]
    if not vals:
        return {"mean": float("nan"), "min": float("nan"), "max": float("nan"), "n_windows": 0}
    return {"mean": float(np.mean(vals)), "min": min(vals), "max": max(vals),
            "n_windows": len(vals)}


def generated_latent(est: DSR, counts_test: np.ndarray, n_steps: int) -> np.ndarray:
    """Free-running latent trajectory started from the forced state at the first test bin.

    Runs 1.25 · ``n_steps`` steps and drops the first 0.25 · ``n_steps`` as transient.

    Returns
    -------
    ndarray, shape (n_steps, state_dim)
    """
    z0 = est.transform(Observations(counts_test, kind="counts", bin_size=est.bin_size_))[0][0]
    _, Z = est.generate(int(n_steps), z0=z0, burn_in=int(n_steps) // 4, return_latent=True)
    return Z.astype(np.float64)


def trials_of_spike_trains(spike_times, t_start: float, n_trials: int, trial_length: float,
                           units=None):
    """Cut spike times into consecutive trials of neo SpikeTrains (elephant's GPFA input).

    Parameters
    ----------
    spike_times : list of ndarray
        Sorted spike times in seconds, one array per unit.
    t_start : float
        Start of the first trial in seconds.
    n_trials : int
        Number of consecutive trials.
    trial_length : float
        Trial length in seconds.
    units : array of int, optional
        Units to keep (default: all).

    Returns
    -------
    list of list of neo.SpikeTrain
        ``trials[k][i]``: unit ``i`` in trial ``k``, times in s, ``t_start``/``t_stop`` the trial
        edges.
    """
    import neo
    import quantities as pq

    units = range(len(spike_times)) if units is None else units
    trials = []
    for k in range(int(n_trials)):
        a, b = t_start + k * trial_length, t_start + (k + 1) * trial_length
        row = []
        for i in units:
            st = spike_times[i]
            sel = st[np.searchsorted(st, a, "left"):np.searchsorted(st, b, "left")]
            row.append(neo.SpikeTrain(sel * pq.s, t_start=a * pq.s, t_stop=b * pq.s))
        trials.append(row)
    return trials


def gpfa_cosmooth_rates(params: dict, sqrt_counts_in: list, held_in, held_out,
                        floor: float = 1e-3) -> dict:
    """Held-out expected counts of a fitted GPFA, by exact GP inference from held-in units.

    The fitted parameters are restricted to the held-in rows (C_in, d_in, R_in; the GP kernel
    parameters are unchanged) and :func:`elephant.gpfa.gpfa_core.exact_inference_with_ll` gives
    the posterior mean x̂ and covariance V of the latent in each trial. The held-out prediction
    of √count is ŝ = C_out x̂ + d_out.

    Parameters
    ----------
    params : dict
        ``GPFA.params_estimated`` (C, d, R, gamma, eps, covType, notes) over all units.
    sqrt_counts_in : list of ndarray
        Per trial, the held-in units' square-rooted counts, shape (n_held_in, n_bins_k)
        (elephant's ``y`` layout).
    held_in, held_out : array of int
        Row indices of the held-in and held-out units in ``params``.
    floor : float
        Smallest expected count per bin returned.

    Returns
    -------
    dict
        ``"square"``: max(ŝ, 0)² floored; ``"moment"``: ŝ² + diag(C_out V C_outᵀ) + diag(R_out)
        floored (the predictive second moment of √count). Each a list of (n_bins_k,
        n_held_out) arrays, one per trial.
    """
    from elephant.gpfa.gpfa_core import exact_inference_with_ll

    held_in, held_out = np.asarray(held_in), np.asarray(held_out)
    C, d, R = np.asarray(params["C"]), np.asarray(params["d"]).ravel(), np.asarray(params["R"])
    p_in = dict(params, C=C[held_in], d=d[held_in], R=R[np.ix_(held_in, held_in)])
    seqs = np.array([(y.shape[1], y) for y in sqrt_counts_in], dtype=[("T", int), ("y", "O")])
    post, _ = exact_inference_with_ll(seqs, p_in, get_ll=False)
    C_out, d_out, r_out = C[held_out], d[held_out], np.diag(R)[held_out]
    square, moment = [], []
    for k in range(len(post)):
        x, V = post[k]["latent_variable"], post[k]["Vsm"]          # (x_dim, T), (x_dim, x_dim, T)
        s = (C_out @ x + d_out[:, None]).T                         # (T, n_out)
        var = np.einsum("ij,jkt,ik->ti", C_out, V, C_out) + r_out  # (T, n_out)
        square.append(np.maximum(np.maximum(s, 0.0) ** 2, floor))
        moment.append(np.maximum(s ** 2 + var, floor))
    return {"square": square, "moment": moment}


# ============================================================================ benchmark
def _fit_gpfa(train_trials, x_dim: int, bin_size: float, em_max_iters: int):
    import quantities as pq
    from elephant.gpfa import GPFA
    import contextlib
    import io

    gpfa = GPFA(bin_size=bin_size * 1000 * pq.ms, x_dim=int(x_dim), em_max_iters=int(em_max_iters))
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # elephant prints progress
        gpfa.fit(train_trials)
    return gpfa, time.perf_counter() - t0


def checkpoint_trace(est: DSR, keeper, train_segments, bin_size: float,
                     n_steps: int | None = None) -> list:
    """Every checkpoint that validation scored during ``est.fit(..., callback=keeper)``.

    Parameters
    ----------
    est : DSR
        The fitted estimator.
    keeper : CheckpointKeeper
        The fit's callback (``benchmarks/lfp_real.py``), which kept a copy of the model after
        every epoch of every member.
    train_segments : list of ndarray
        The training counts the estimator was fitted on (its λ_max starts from their states).
    bin_size : float
        Bin width in s.
    n_steps : int, optional
        Steps of each checkpoint's λ_max estimate (default
        :data:`~nwb_dsr.config.LYAPUNOV_STEPS`, the fitted model's).

    Returns
    -------
    list of dict
        Per checkpoint, in training order: ``member`` (its seed), ``epoch``, ``val_score``,
        ``val_collapse``, ``lambda_max`` (1/s, None if not finite) and ``selected``.
    """
    from nwb_dsr.analysis.lyapunov import lyapunov_spectrum
    from nwb_dsr.config import LYAPUNOV_STARTS, LYAPUNOV_STEPS
    from nwb_dsr.protocol import spread_states

    selected = next(m for m in est.members_ if m["selected"])
    rows = []
    for member, epoch, latent, readout in keeper.kept:
        hist = keeper.histories[member]
        i = hist.val_epochs.index(epoch)
        with torch.no_grad():
            z0 = spread_states(latent, readout, list(train_segments), LYAPUNOV_STARTS)
        lam = float(lyapunov_spectrum(latent, n_steps=n_steps or LYAPUNOV_STEPS,
                                      z0=z0.double().numpy(), dt=bin_size)[0])
        rows.append({"member": member, "epoch": epoch, "val_score": hist.val_score[i],
                     "val_collapse": hist.val_collapse[i],
                     "lambda_max": lam if np.isfinite(lam) else None,
                     "selected": member == selected["seed"] and epoch == selected["best_epoch"]})
    return rows


def print_checkpoint_trace(rows: list, truth: float) -> None:
    """Per member (to stderr): its checkpoints (epoch, validation score, collapse, λ_max) and
    how many were within :data:`CHECKPOINT_TOLERANCE` of ``truth``."""
    f = lambda v, d=3: "n/a" if v is None or not np.isfinite(v) else f"{v:.{d}f}"  # noqa: E731
    near = lambda r: (r["lambda_max"] is not None  # noqa: E731
                      and abs(r["lambda_max"] - truth) <= CHECKPOINT_TOLERANCE * truth)
    for member in dict.fromkeys(r["member"] for r in rows):
        mine = [r for r in rows if r["member"] == member]
        print(f"member {member}: {sum(map(near, mine))} of {len(mine)} checkpoints with "
              f"lambda_max within {CHECKPOINT_TOLERANCE:.0%} of {truth:.3f} /s",
              file=sys.stderr, flush=True)
        for r in mine:
            print(f"  epoch {r['epoch']}: validation {f(r['val_score'])}"
                  f"{' (' + r['val_collapse'] + ')' if r['val_collapse'] else ''}, lambda_max "
                  f"{f(r['lambda_max'])}{', selected' if r['selected'] else ''}",
                  file=sys.stderr, flush=True)


def main(argv=None) -> int:
    """Run the benchmark; print progress to stderr and one JSON object as the last line."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--system", default="lorenz63",
                    help="latent system (a name of nwb_dsr.datasets.SYSTEMS)")
    ap.add_argument("--n-units", type=int, default=60)
    ap.add_argument("--rate", type=float, default=15.0, help="population mean rate in Hz")
    ap.add_argument("--trials", type=int, default=None,
                    help="number of independent trials (with --trial-duration) instead of one "
                         "continuous recording")
    ap.add_argument("--trial-duration", type=float, default=None,
                    help="trial length in s (with --trials)")
    ap.add_argument("--duration", type=float, default=600.0, help="recording length in s")
    ap.add_argument("--bin-size", type=float, default=0.01, help="bin width in s")
    ap.add_argument("--max-time", type=float, default=240.0,
                    help="our training budget in s; 0 for none (the DSR's epoch budget only, "
                         "which makes the run repeat exactly)")
    ap.add_argument("--seed", type=int, default=0, help="seed of data, split and models")
    ap.add_argument("--x-dim", type=int, default=8, help="GPFA latent dimension")
    ap.add_argument("--trial-length", type=float, default=2.0, help="GPFA trial length in s")
    ap.add_argument("--gpfa-em-iters", type=int, default=500, help="GPFA EM iterations (max)")
    ap.add_argument("--gpfa-floor", type=float, default=1e-3,
                    help="floor of GPFA's expected counts per bin")
    ap.add_argument("--dsr", default="{}", help="JSON dict of extra DSR(...) settings "
                    "(experiments; the benchmark uses the defaults)")
    ap.add_argument("--skip-gpfa", action="store_true", help="only our model (experiments)")
    ap.add_argument("--checkpoints", action="store_true",
                    help="also list every checkpoint that validation scored, of every member, "
                         "with its validation score and lambda_max (see the module docstring)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    from nwb_dsr.analysis.evaluate import co_bps, ensemble_summary
    from nwb_dsr.analysis.lyapunov import lyapunov_spectrum
    from nwb_dsr.datasets import make_population

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    if (args.trials is None) != (args.trial_duration is None):
        raise SystemExit("error: --trials and --trial-duration go together.")
    try:
        pop = make_population(args.system, n_units=args.n_units, mean_rate=args.rate,
                              bin_size=args.bin_size, duration=args.duration,
                              n_trials=args.trials, trial_duration=args.trial_duration,
                              spike_times=True, seed=args.seed)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    counts, latent, dt = pop.counts, pop.latent, pop.bin_size
    n_bins = counts.shape[0]
    held_in, held_out = split_units(args.n_units, 0.2, seed=args.seed)
    trials = pop.n_trials is not None
    if trials:
        # whole trials: the first 80 % for training, the rest for testing
        segs, lats = pop.segments("counts"), pop.segments("latent")
        n_train_trials = int(round(0.8 * len(segs)))
        n_test_trials = len(segs) - n_train_trials
        if n_train_trials < 2 or n_test_trials < 1:
            raise SystemExit(f"error: --trials {args.trials} is too few for an 80/20 split "
                             "(at least 3).")
        train_segs, test_segs = segs[:n_train_trials], segs[n_train_trials:]
        latent_train = np.concatenate(lats[:n_train_trials])
        latent_test = np.concatenate(lats[n_train_trials:])
        cut = sum(len(c) for c in train_segs)
        trial_length = float(pop.trials[0, 1] - pop.trials[0, 0])
        co_bps_target = np.concatenate(test_segs)  # every test bin is scored
    else:
        cut = int(round(0.8 * n_bins))
        trial_length = args.trial_length
        trial_bins = int(round(args.trial_length / dt))
        n_train_trials = cut // trial_bins
        n_test_trials = (n_bins - cut) // trial_bins
        if n_train_trials < 2 or n_test_trials < 1:
            raise SystemExit(f"error: --duration {args.duration} s is too short for trials of "
                             f"{args.trial_length} s in an 80/20 split.")
        test_slice = slice(cut, cut + n_test_trials * trial_bins)  # bins scored by co-bps
        train_segs, test_segs = [counts[:cut]], [counts[cut:]]
        latent_train, latent_test = latent[:cut], latent[cut:]
        co_bps_target = counts[test_slice]
    log(f"data: {pop.system}, {counts.shape} counts, mean {counts.mean():.3f}/bin"
        + (f", {pop.n_trials} trials ({n_train_trials} train, {n_test_trials} test)"
           if trials else "")
        + f"; train {cut} bins, test {n_bins - cut} bins; held-out units {held_out.tolist()}")

    # ------------------------------------------------------------------ ours
    extra = json.loads(args.dsr)
    est = DSR(max_time=args.max_time or None, seed=args.seed, progress=False, **extra)
    train_obs = Observations(train_segs if trials else train_segs[0], kind="counts", bin_size=dt)
    keeper = None
    if args.checkpoints:
        from lfp_real import CheckpointKeeper
        keeper = CheckpointKeeper()
    t0, c0 = time.perf_counter(), time.process_time()
    est.fit(train_obs, callback=keeper)
    fit_ours = time.perf_counter() - t0
    # CPU seconds too: on a shared machine the wall clock also counts other processes' turns
    fit_cpu_ours = time.process_time() - c0
    h = est.history_
    log(f"DSR {est!r}: {h.epochs} epochs, best {h.best_epoch}, stopped {h.stopped}, "
        f"{fit_ours:.1f} s")

    lam = float(lyapunov_spectrum(est)[0])
    test_obs = Observations(test_segs, kind="counts", bin_size=dt)
    # the map to the truth: fitted on the smoothed training latent (see the module docstring)
    # and, for comparison, on the forced states of single bins
    z_train = np.concatenate(est.smooth(train_obs))
    z_test = np.concatenate(est.smooth(test_obs))
    zf_train = np.concatenate(est.transform(train_obs))
    zf_test = np.concatenate(est.transform(test_obs))
    to_truth = latent_map(z_train, latent_train)
    to_truth_forced = latent_map(zf_train, latent_train)
    r2_train = r_squared(latent_train, to_truth.predict(z_train))
    r2_test = r_squared(latent_test, to_truth.predict(z_test))
    r2_test_forced = r_squared(latent_test, to_truth_forced.predict(zf_test))
    T = n_bins - cut
    z_gen = generated_latent(est, test_segs[0], T)
    ds, dh = aligned_divergences(latent_test, z_gen, to_truth)
    ds_forced, dh_forced = aligned_divergences(latent_test, z_gen, to_truth_forced)
    floor = data_floor(latent_test, latent_train)
    # the evaluation protocol's figures (what model selection minimised) on the test time
    prot = est.evaluation_protocol().evaluate(est.latent_model_, est.observation_model_,
                                              test_segs)
    bps_of = {}
    for smooth in (True, False):
        if trials:
            rates_ours = np.concatenate(dsr_cosmooth_rates(
                est, [c[:, held_in] for c in test_segs], held_in, held_out, smooth=smooth))
        else:
            rates_ours = dsr_cosmooth_rates(est, counts[cut:, held_in], held_in, held_out,
                                            smooth=smooth)
            rates_ours = rates_ours[:test_slice.stop - cut]
        bps_of[smooth] = float(co_bps(rates_ours, co_bps_target[:, held_out]))
    bps_ours, bps_forced = bps_of[True], bps_of[False]
    log(f"ours: lambda_max {lam:.4f} /s (true {pop.lyapunov_max:.4f}), D_stsp {ds:.3f} "
        f"(forced-state map {ds_forced:.3f}; data floor {floor['mean']:.3f}), "
        f"D_H {dh:.3f}, R2 latent train {r2_train:.3f} test {r2_test:.3f} "
        f"(forced-state map {r2_test_forced:.3f}), co-bps {bps_ours:.4f} "
        f"(bin by bin: {bps_forced:.4f})")

    trace = None
    if keeper is not None:
        trace = checkpoint_trace(est, keeper, list(train_obs.data), dt)
        print_checkpoint_trace(trace, pop.lyapunov_max)

    # ------------------------------------------------------------------ GPFA
    gp = {}
    if not args.skip_gpfa:
        from elephant.gpfa import gpfa_util
        import quantities as pq

        if trials:
            starts = pop.trials[:, 0]
            train_trials = [trials_of_spike_trains(pop.spike_times, t, 1, trial_length)[0]
                            for t in starts[:n_train_trials]]
        else:
            train_trials = trials_of_spike_trains(pop.spike_times, 0.0, n_train_trials,
                                                  args.trial_length)
        gpfa, fit_gpfa = _fit_gpfa(train_trials, args.x_dim, dt, args.gpfa_em_iters)
        if not np.all(gpfa.has_spikes_bool):
            raise SystemExit("error: a unit has no training spikes; GPFA dropped it. Use more "
                             "units, a longer duration or another seed.")
        if trials:
            test_trials = [trials_of_spike_trains(pop.spike_times, t, 1, trial_length,
                                                  units=held_in)[0]
                           for t in starts[n_train_trials:]]
        else:
            test_trials = trials_of_spike_trains(pop.spike_times, cut * dt, n_test_trials,
                                                 args.trial_length, units=held_in)
        seqs = gpfa_util.get_seqs(test_trials, dt * 1000 * pq.ms)  # sqrt counts, as in fit
        y_in = [s["y"] for s in seqs]
        check = np.concatenate([y.T for y in y_in]) ** 2
        if not np.allclose(check, co_bps_target[:, held_in]):
            raise SystemExit("error: the spike trains do not bin back to the counts.")
        preds = gpfa_cosmooth_rates(gpfa.params_estimated, y_in, held_in, held_out,
                                    floor=args.gpfa_floor)
        target = co_bps_target[:, held_out]
        bps_var = {k: float(co_bps(np.concatenate(v), target)) for k, v in preds.items()}
        gp = dict(co_bps_gpfa=max(bps_var.values()), co_bps_gpfa_variants=bps_var,
                  fit_seconds_gpfa=fit_gpfa,
                  gpfa_em_iterations=len(gpfa.fit_info.get("iteration_time", [])))
        log(f"GPFA x_dim {args.x_dim}: co-bps {bps_var}, fit {fit_gpfa:.1f} s")

    rnd = lambda v: None if v is None or not np.isfinite(v) else round(float(v), 4)  # noqa: E731
    out = {
        "lambda_max_ours": rnd(lam), "lambda_max_true": rnd(pop.lyapunov_max),
        "rel_error": rnd(abs(lam - pop.lyapunov_max) / pop.lyapunov_max),
        "D_stsp": rnd(ds), "D_H": rnd(dh),
        "D_stsp_forced_map": rnd(ds_forced), "D_H_forced_map": rnd(dh_forced),
        "D_stsp_data_floor": {k: v if isinstance(v, int) else rnd(v) for k, v in floor.items()},
        "protocol_D_stsp": rnd(prot.dstsp), "protocol_D_H": rnd(prot.dh),
        "protocol_collapse": prot.collapse,
        "co_bps_ours": rnd(bps_ours), "co_bps_ours_bin_by_bin": rnd(bps_forced),
        "co_bps_gpfa": rnd(gp.get("co_bps_gpfa")),
        "fit_seconds_ours": rnd(fit_ours), "fit_cpu_seconds_ours": rnd(fit_cpu_ours),
        "fit_seconds_gpfa": rnd(gp.get("fit_seconds_gpfa")),
        "co_bps_gpfa_variants": {k: rnd(v) for k, v in gp.get("co_bps_gpfa_variants", {}).items()},
        "ensemble": ensemble_summary(est) if len(est.members_) > 1 else None,
        **({"checkpoints": [{k: rnd(v) if k in ("val_score", "lambda_max") else v
                             for k, v in r.items()} for r in trace]} if trace else {}),
        "latent_r2_train": rnd(r2_train), "latent_r2_test": rnd(r2_test),
        "latent_r2_test_forced_map": rnd(r2_test_forced),
        "settings": {
            "system": pop.system, "mean_rate_hz": args.rate,
            "n_units": args.n_units, "duration_s": pop.duration, "bin_size_s": dt,
            "n_trials": pop.n_trials, "trial_duration_s": trial_length if trials else None,
            "n_bins_train": cut, "n_bins_test": T, "n_bins_co_bps": len(co_bps_target),
            "held_out_units": held_out.tolist(), "seed": args.seed,
            "dsr": {"repr": repr(est), "max_time": args.max_time, "epochs_run": h.epochs,
                    "best_epoch": h.best_epoch, "stopped": h.stopped, "tau": est.tau_,
                    "latent_dim": est.latent_model_.latent_dim, **extra},
            "gpfa": {"x_dim": args.x_dim, "trial_length_s": trial_length,
                     "n_train_trials": n_train_trials, "n_test_trials": n_test_trials,
                     "em_max_iters": args.gpfa_em_iters,
                     "em_iterations": gp.get("gpfa_em_iterations"), "floor": args.gpfa_floor,
                     "skipped": bool(args.skip_gpfa)},
            "threads": torch.get_num_threads(),
        },
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
