"""Fit policies: how the rules of a configuration become numbers for a given data set.

:func:`resolve` is the one place where ``"auto"`` values and settings in physical units are
turned into numbers:

- ``observation="auto"``: Poisson for spike counts, Gaussian for continuous data;
- ``smoothing`` (seconds) → kernel width in bins, at least one bin;
- ``model="auto"`` → the shallow PLRNN, for every kind of data (:data:`AUTO_MODEL`);
- ``latent_dim=None`` → :func:`default_latent_dim`; ``hidden_dim=None`` →
  :func:`default_hidden_dim` of it;
- ``tau="auto"`` → :func:`choose_tau` (τ_pred = ln 2 / λ_max of the data, bounded below by the
  signal's own time scale for continuous data; a quarter of it, :data:`COUNTS_TAU_FRACTION`,
  for counts and field potentials, and for counts between :data:`COUNTS_MIN_TAU_KERNELS` and
  :data:`COUNTS_MAX_TAU_KERNELS` widths of the smoothing kernel); when the data cannot support
  an estimate (trials too short for the divergence curve to level off, or a curve that is not a
  straight line where it is fitted: R² below :data:`MIN_DIVERGENCE_R2`), the fallback
  :data:`FALLBACK_TAU` with a warning;
- ``mode="auto"`` → ``"shooting"`` for the Poisson layer and for field potentials,
  ``"sparse"`` otherwise;
- ``alpha``, ``seq_len``, ``grad_clip`` → the forcing scheme's defaults when not given;
- ``batches_per_epoch="auto"`` → one pass over the training windows per epoch
  (:func:`~nwb_dsr.training.trainer.auto_batches_per_epoch`, 10 to 50 gradient steps; at least
  :data:`COUNTS_MIN_BATCHES` for the Poisson layer and :data:`FIELD_MIN_BATCHES` for field
  potentials), so the epoch budget follows the amount of data;
- ``eval_every="auto"`` → :data:`COUNTS_EVAL_EVERY` epochs for the Poisson layer,
  :data:`~nwb_dsr.training.trainer.AUTO_EVAL_EVERY` otherwise;
- ``patience="auto"`` → :data:`~nwb_dsr.training.trainer.AUTO_PATIENCE` validations; none
  (the whole schedule) for the Poisson layer;
- ``n_final_checks="auto"`` → :data:`COUNTS_FINAL_CHECKS` checkpoints for the Poisson layer,
  :data:`~nwb_dsr.training.trainer.AUTO_FINAL_CHECKS` otherwise;
- ``selection="auto"`` → ``"spectrum"`` for field potentials (the final check ranks the best
  checkpoints by their spectrum and the data's dominant rhythm,
  :class:`~nwb_dsr.protocol.EvaluationProtocol` step 7), ``"score"`` otherwise;
- ``restarts="auto"`` → :data:`AUTO_RESTARTS` further members while the selected one collapsed,
  none for the Poisson layer;
- ``ensemble="auto"`` → :data:`COUNTS_ENSEMBLE` members for the Poisson layer and for field
  potentials (such fits depend on their seed: the member with the best validation score is the
  model, the other shows the spread), one otherwise.

The result, a :class:`~nwb_dsr.config.ResolvedConfig`, is what the trainer, the evaluation
and the NWB record read.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from .analysis.lyapunov import lyapunov_max_data, predictability_time, signal_timescale
from .config import DSRConfig, ResolvedConfig
from .observations import Observations
from .training.forcing import FORCING_SCHEMES
from .training.trainer import (AUTO_EVAL_EVERY, AUTO_FINAL_CHECKS, AUTO_PATIENCE,
                               auto_batches_per_epoch, count_windows, split_validation)

__all__ = ["resolve", "choose_tau", "default_latent_dim", "default_hidden_dim",
           "smoothing_bins",
           "COUNTS_TAU_FRACTION", "FALLBACK_TAU", "MIN_DIVERGENCE_R2",
           "MAX_CONTINUOUS_LATENT_DIM",
           "LATENT_PER_DIMENSION", "AUTO_MODEL",
           "COUNTS_LATENT_DIM", "COUNTS_ENSEMBLE", "COUNTS_MIN_BATCHES", "COUNTS_FINAL_CHECKS",
           "FIELD_MIN_BATCHES",
           "COUNTS_EVAL_EVERY", "AUTO_RESTARTS",
           "COUNTS_MIN_TAU_KERNELS", "COUNTS_MAX_TAU_KERNELS", "TIMESCALE_FRACTION",
           "is_field_potential", "data_dimension"]

#: ``tau="auto"`` on spike counts: this fraction of the predictability time ln 2 / λ_max. With
#: the noisy forcing signal of counts, longer free-running stretches let the fitted map collapse
#: onto a fixed point (``benchmarks/spikes_vs_gpfa.py``).
COUNTS_TAU_FRACTION = 0.25

#: ``tau="auto"`` on spike counts: τ is at least this many widths of the smoothing kernel
#: through which the counts are inverted. Forcing states closer together share most of their
#: counts, and a λ_max estimate faster than the kernel (Rosenstein's curve of a noisy
#: population rises at once) describes the noise, not the dynamics.
COUNTS_MIN_TAU_KERNELS = 4

#: ``tau="auto"`` on spike counts: τ is at most this many kernel widths. An underestimated
#: λ_max of the counts (Rosenstein's estimate varies by ±30 % between recordings of one system)
#: would otherwise lengthen the free-running stretches until the fitted map settles on a cycle
#: or a fixed point: on the spike benchmark τ of 28–32 bins did so on three recordings out of
#: three, 20–23 bins on none.
COUNTS_MAX_TAU_KERNELS = 5

#: τ in bins when λ_max of the data cannot be estimated (too short or too noisy data).
FALLBACK_TAU = 20

#: ``tau="auto"``: the least R² of the straight line through Rosenstein's divergence curve over
#: its fitted range for its slope to count as λ_max. Below it the curve does not rise
#: exponentially there, and the slope describes the noise: on four of five recordings of 30
#: Lorenz-driven units at 5 Hz R² was 0.02–0.37 (slopes of 0.41–0.62 /s against the true
#: 0.906, which put τ at the upper kernel bound), while the spike benchmark's other recordings
#: (every system, 20-ms bins), the demo and the Lorenz-driven LFP gave 0.58–0.99.
MIN_DIVERGENCE_R2 = 0.5

#: Default latent size for spike counts (at most the number of units): directions the counts
#: do not pin down let the free run drift or diverge.
COUNTS_LATENT_DIM = 3

#: ``batches_per_epoch="auto"`` with the Poisson layer: at least this many gradient steps per
#: epoch. Shooting windows of counts are short and few, and a fit to counts keeps improving its
#: λ_max long after its validation score levels off; 2,000 steps in all left λ_max about 20 %
#: low, 4,000 brought it within 10 % (``benchmarks/spikes_vs_gpfa.py``).
COUNTS_MIN_BATCHES = 20

#: ``batches_per_epoch="auto"`` for field potentials prepared by :func:`nwb_dsr.read_lfp`: at
#: least this many gradient steps per epoch (the most a continuous series gets). Their shooting
#: windows start every τ bins, so one pass over them is short: 90 s of EEG at 75 Hz gave 10
#: steps an epoch, 2,000 at most. On ``benchmarks/lfp_real.py`` (seeds 0–2) 50 steps an epoch
#: took the held-out D_stsp of the Lorenz-driven LFP from 2.6 and 2.4 (seeds 0–1) to 0.06,
#: 0.18 and 0.19, its D_H from 0.28 and 0.30 to 0.07, 0.09 and 0.11, and the EEG's D_H from
#: 0.42, 0.41 and 0.45 to 0.38, 0.36 and 0.41, at about twice the fit time; λ_max of the
#: Lorenz-driven fits came out 2.4–2.8 /s against the true 0.91 (before: 0.71, 0.00, 2.65).
FIELD_MIN_BATCHES = 50

#: ``ensemble="auto"`` with the Poisson layer: fits from this many seeds, the best by validation
#: score kept. A single fit to counts may end on a limit cycle or a fixed point, depending on
#: its seed (3 members in 20 on ``benchmarks/spikes_vs_gpfa.py``); the validation score tells such
#: members apart, and two members make it rare that none reconstructs the dynamics. Field
#: potentials get as many (a fit to EEG came to rest on one seed in three).
COUNTS_ENSEMBLE = 2

#: ``n_final_checks="auto"`` with the Poisson layer: 1, validation's choice is kept. The check
#: of counts draws and smooths Poisson counts of every unit along each run, several times the
#: cost of a Gaussian check and paid by every ensemble member, and on the spike benchmark two
#: checks chose the checkpoint validation had chosen.
COUNTS_FINAL_CHECKS = 1

#: ``eval_every="auto"`` with the Poisson layer: epochs between validations. A validation of
#: counts draws and smooths counts of every unit along its five free runs, about as much time
#: as 90 gradient steps (``benchmarks/throughput.py``: 0.20 s against 2.2 ms a step at 60
#: units); counts run their whole schedule (no early stopping), so validation
#: only chooses the checkpoint. On ``benchmarks/spikes_vs_gpfa.py`` (seeds 0–4) λ_max was
#: 0.86, 0.82, 0.81, 0.87, 0.84 /s against 0.77, 0.77, 0.81, 0.87, 0.84 with validations every
#: 5 epochs, and co-bps the same within 0.002; on ``benchmarks/real_population.py`` (rat_m1)
#: the checkpoint chosen moves co-bps a lot: seed 1 gave 0.08 bits per spike validating every
#: 5 epochs and −0.13 every 10 (seed 0: −0.006 and −0.007).
COUNTS_EVAL_EVERY = 10

#: ``restarts="auto"`` for continuous data: members fitted while the selected one collapsed.
#: On lorenz63 (seed 0 of ``benchmarks/reconstruct.py``) the final check found the eight best
#: checkpoints of the first fit collapsed; the second seed's fit reconstructed the attractor. Spike counts get
#: none: they have :data:`COUNTS_ENSEMBLE` members already, and a fit of counts costs a minute.
AUTO_RESTARTS = 1

#: ``model="auto"``: the latent map for every kind of data. Field potentials had the clipped
#: shallow PLRNN, whose bounded non-linearity keeps free runs finite. At their present latent
#: size (:data:`LATENT_PER_DIMENSION`) no free run of the shallow PLRNN exploded on
#: ``benchmarks/lfp_real.py`` (seeds 0-2), and it brought λ_max of the Lorenz-driven LFP to
#: 0.88, 0.84 and 0.77 /s (true 0.91; clipped, at half the width: 1.08, 1.38, 1.84), with the
#: OpenBCI EEG's D_H 0.30, 0.33, 0.41 (clipped: 0.35, 0.24, 0.24) and D_stsp 1.2, 1.1, 2.0
#: (clipped: 1.5, 0.9, 2.3).
AUTO_MODEL = "shallow_plrnn"

#: Largest default latent size for continuous data.
MAX_CONTINUOUS_LATENT_DIM = 16

#: ``latent_dim=None`` for continuous data: latent units per dimension of the data (per
#: channel, or per principal component of a field potential, :func:`data_dimension`). With
#: one per channel the shallow PLRNN's fixed points on lorenz63 were nearly stable: 18 of 40
#: checkpoints of seed 0's fit came to rest or left the data's box in long free runs, and the
#: seed ended at D_stsp 0.37 / D_H 0.09. With two, seeds 0-4 of ``benchmarks/reconstruct.py`` gave 0.05-0.07 /
#: 0.06-0.07 in 60 s; on the 10-d EEG (eeg_tde, seeds 0-2) 0.12 / 0.027, 0.61 / 0.066 and
#: 0.12 / 0.021 against 0.77 / 0.096, 0.25 / 0.035 and 0.40 / 0.066, and on the 5-d jena
#: series D_H 0.05-0.06 against 0.30-0.47. On ``benchmarks/lfp_real.py`` (seeds 0-2, the
#: clipped shallow PLRNN at the hidden width of the data's dimension) the OpenBCI EEG's D_H
#: went from 0.38, 0.36, 0.41 to 0.35, 0.24, 0.24, and λ_max of the Lorenz-driven LFP from
#: 2.77, 2.39, 2.50 /s to 1.08, 1.38, 1.84 (true 0.91).
LATENT_PER_DIMENSION = 2

#: ``choose_tau`` bounds τ_pred of continuous data from below by this fraction of the signal's
#: time scale (its dominant period, else its autocorrelation time): measurement noise inflates
#: Rosenstein's λ_max.
TIMESCALE_FRACTION = 0.5


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}.")
    return int(value)


def _finite(v):
    v = float(v)
    return v if math.isfinite(v) else None


def is_field_potential(observations: Observations) -> bool:
    """Whether the data are a recorded field potential prepared by :func:`nwb_dsr.read_lfp`'s
    preprocessing (its ``provenance["preprocess"]``); such data get their own defaults."""
    pre = (observations.provenance or {}).get("preprocess") or {}
    return bool(observations.kind == "continuous" and pre.get("enabled"))


def data_dimension(observations: Observations, variance: float | None = None,
                   cap: int = MAX_CONTINUOUS_LATENT_DIM) -> int:
    """Principal components needed to explain ``variance`` (default
    :data:`nwb_dsr.io.preprocess.PCA_VARIANCE`) of the channels' variance, at most ``cap``."""
    from .io.preprocess import PCA_VARIANCE
    x = observations.concatenated()
    sv = np.linalg.svd(x - x.mean(0), compute_uv=False)
    ev = np.cumsum(sv ** 2) / max(float(np.sum(sv ** 2)), 1e-300)
    k = int(np.searchsorted(ev, PCA_VARIANCE if variance is None else variance) + 1)
    return int(min(max(k, 1), cap, observations.n_channels))


def default_latent_dim(observations: Observations) -> int:
    """The latent size M used when ``latent_dim`` is not given.

    3 for spike counts (at most the number of units); for continuous data
    :data:`LATENT_PER_DIMENSION` latent units per dimension of the data, at most
    :data:`MAX_CONTINUOUS_LATENT_DIM`: per channel, or for field potentials prepared by
    :func:`nwb_dsr.read_lfp` per principal component of :func:`data_dimension`.

    Examples
    --------
    >>> import numpy as np
    >>> default_latent_dim(Observations(np.ones((10, 60)), kind="counts"))
    3
    >>> [default_latent_dim(Observations(np.zeros((10, n)))) for n in (3, 10)]
    [6, 16]
    """
    if observations.kind == "counts":
        return int(min(COUNTS_LATENT_DIM, observations.n_channels))
    dim = (data_dimension(observations) if is_field_potential(observations)
           else observations.n_channels)
    return int(min(LATENT_PER_DIMENSION * dim, MAX_CONTINUOUS_LATENT_DIM))


def default_hidden_dim(latent_dim: int) -> int:
    """The hidden width of the shallow PLRNNs used when ``hidden_dim`` is not given: 64 per
    three latent units, rounded up.

    On the 10-d EEG benchmark (eeg_tde.npy, latent size 10) a width of 64 left the power
    spectrum far off (D_H 0.21, D_stsp 12.6); 256 reached D_H 0.056, D_stsp 0.39
    (``benchmarks/reconstruct.py``, seed 0). On lorenz63 (latent size 6) width 64 instead of
    128 let seeds 1 and 2 of five end at D_stsp 16.3 and 0.65. On ``benchmarks/lfp_real.py``
    (seeds 0-2) half the width gave the Lorenz-driven LFP D_stsp 0.17, 0.048, 0.051 instead of
    0.029, 0.043, 0.038, and the OpenBCI EEG D_H 0.29, 0.36, 0.36 instead of 0.30, 0.33, 0.41.

    Examples
    --------
    >>> default_hidden_dim(3), default_hidden_dim(6), default_hidden_dim(10)
    (64, 128, 256)
    """
    return int(64 * math.ceil(int(latent_dim) / 3))


def smoothing_bins(smoothing: float, bin_size: float) -> float:
    """A kernel width in seconds as bins, at least one bin; 0 stays 0 (no smoothing).

    Examples
    --------
    >>> smoothing_bins(0.05, 0.01), smoothing_bins(0.001, 0.01), smoothing_bins(0, 0.01)
    (5.0, 1.0, 0.0)
    """
    return 0.0 if smoothing == 0 else max(float(smoothing) / float(bin_size), 1.0)


def choose_tau(obs, min_tau: int = 2, max_tau: int = 200, *, smooth: float | None = None,
               fallback: int = FALLBACK_TAU, fraction: float = 1.0, lower_bound="auto",
               **kwargs) -> tuple[int, dict]:
    """Forcing interval τ = ln 2 / λ_max of the data, in bins (for ``DSR(tau="auto")``).

    λ_max comes from :func:`lyapunov_max_data` (Rosenstein) on the observations; spike counts
    are smoothed first with a Gaussian kernel of ``smooth`` bins (default 2). ``fraction`` ·
    τ_pred in bins is rounded and clipped to [``min_tau``, ``max_tau``].

    Measurement noise makes nearby trajectories of a recording separate at once, so
    Rosenstein's λ_max of noisy continuous data can be far too large and τ_pred far too short
    (a fraction of one cycle of the signal's own rhythm). For continuous data τ_pred is
    therefore bounded from below by ``TIMESCALE_FRACTION`` of the signal's own time scale
    (and τ by ``fraction`` of that)
    (:func:`signal_timescale`: its dominant period, else its autocorrelation time; the peak is
    searched between twice the low and 0.8 × the high edge of the band that
    :func:`nwb_dsr.read_lfp` recorded in the provenance, if any).

    Parameters
    ----------
    obs : Observations or array of shape (n_bins, n_channels)
        The data; an array is taken as continuous with a bin width of 1.
    min_tau, max_tau : int
        Range τ is clipped to.
    smooth : float, optional
        Smoothing kernel width (bins); default 2 for counts, none for continuous data.
    fallback : int
        τ used (with a warning) when no exponential divergence could be measured (λ_max NaN,
        e.g. counts dominated by Poisson noise, or a divergence curve whose fitted range is not
        a straight line: R² below :data:`MIN_DIVERGENCE_R2`) or the data cannot support the
        estimate at all (e.g. trials too short for the delay embedding); clipped like τ_pred.
    fraction : float
        τ as a fraction of τ_pred, in (0, 1] (default 1; ``DSR`` uses 1/4 for spike counts).
    lower_bound : "auto", int or None
        Smallest τ_pred in bins (τ is at least ``fraction`` of it, before clipping to
        [``min_tau``, ``max_tau``]): ``"auto"`` is ``TIMESCALE_FRACTION`` × the signal's time
        scale for continuous data and none for counts; None: no bound.
    **kwargs
        Passed to :func:`lyapunov_max_data` (``delay``, ``dim``, ``max_points``, ...).

    Returns
    -------
    tau : int
    info : dict
        ``{"method", "lambda_max_per_s", "lambda_max_per_bin", "tau_pred_bins",
        "delay", "dim", "clipped", "fallback", "fit_range", "fit_r2", "bin_size", "smooth",
        "fraction", "lower_bound", "bounded", "timescale"}``, JSON-serialisable
        (non-finite numbers become None). ``method`` says how τ was obtained:
        ``"rosenstein"`` (fraction · ln 2 / λ_max), ``"timescale_bound"`` (raised to the lower
        bound from the signal's time scale) or ``"fallback"``; ``lower_bound`` is the bound on
        τ in bins (``fraction`` × the bound on τ_pred; None without one), ``bounded`` whether
        it was applied, ``timescale`` the record of :func:`signal_timescale` (None for counts).

    Examples
    --------
    >>> import numpy as np
    >>> from nwb_dsr import Observations
    >>> x = np.empty(20000); x[0] = 0.3
    >>> for i in range(1, len(x)):
    ...     x[i] = 4.0 * x[i - 1] * (1.0 - x[i - 1])
    >>> tau, info = choose_tau(Observations(x, bin_size=0.01), delay=1, dim=1, fit_range=(0, 4))
    >>> tau, info["clipped"]  # ln 2 / ln 2 = 1 bin, clipped to min_tau
    (2, True)
    """
    min_tau, max_tau = _positive_int(min_tau, "min_tau"), _positive_int(max_tau, "max_tau")
    if max_tau < min_tau:
        raise ValueError(f"max_tau ({max_tau}) must be >= min_tau ({min_tau}).")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) \
            or not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1]; got {fraction!r}.")
    if not isinstance(obs, Observations):
        obs = Observations.from_array(obs, bin_size=1.0, kind="continuous")
    if smooth is None and obs.kind == "counts":
        smooth = 2.0
    timescale, bound = None, None
    if isinstance(lower_bound, str) and lower_bound == "auto":
        if obs.kind != "counts":
            timescale = signal_timescale(obs.data, obs.bin_size, **_band_range(obs))
            bound = TIMESCALE_FRACTION * timescale["timescale_bins"]
    elif lower_bound is not None:
        bound = float(_positive_int(lower_bound, "lower_bound"))
    try:
        res = lyapunov_max_data(obs.data, dt=obs.bin_size, smooth=smooth, **kwargs)
        why = "Rosenstein's divergence curve has no linear part; noisy or too short data?"
        r2 = res["fit_r2"]
        if res.get("horizon_limited"):
            why = (f"the segments, at most {max(len(s) for s in obs.data)} bins, are too short "
                   f"for Rosenstein's divergence curve to level off")
            res = {**res, "lambda_max_per_s": math.nan, "lambda_max_per_bin": math.nan}
        elif math.isfinite(res["lambda_max_per_bin"]) and not r2 >= MIN_DIVERGENCE_R2:
            why = (f"Rosenstein's divergence curve is not a straight line where it was fitted "
                   f"(R² {r2:.2f} < {MIN_DIVERGENCE_R2:g}), so its slope "
                   f"({res['lambda_max_per_s']:.3g} /s) describes noise, not an exponential "
                   f"divergence")
            res = {**res, "lambda_max_per_s": math.nan, "lambda_max_per_bin": math.nan}
    except ValueError as err:  # the data cannot support the estimate (e.g. short trials)
        res = {"lambda_max_per_s": math.nan, "lambda_max_per_bin": math.nan, "delay": None,
               "dim": None, "fit_range": None, "fit_r2": math.nan}
        why = str(err).rstrip(".")
    lam = res["lambda_max_per_bin"]
    tau_pred = predictability_time(lam)
    used_fallback = not math.isfinite(lam)
    if used_fallback:
        warnings.warn(f"lambda_max of the data could not be estimated ({why}); using tau = "
                      f"{fallback} bins. Pass an explicit tau to choose it yourself.",
                      RuntimeWarning, stacklevel=2)
        raw = float(fallback)
    else:
        raw = fraction * tau_pred if math.isfinite(tau_pred) else float(max_tau)
    if bound is not None:
        bound = fraction * bound   # the bound is on τ_pred; τ is its fraction
    bounded = bound is not None and raw < bound
    if bounded:
        raw = bound
    tau = int(min(max(int(round(raw)), min_tau), max_tau))
    info = {
        "method": "fallback" if used_fallback and not bounded else
                  "timescale_bound" if bounded else "rosenstein",
        "lambda_max_per_s": _finite(res["lambda_max_per_s"]),
        "lambda_max_per_bin": _finite(lam),
        "tau_pred_bins": _finite(tau_pred),
        "delay": res["delay"],
        "dim": res["dim"],
        "clipped": bool(not used_fallback and tau != int(round(raw))),
        "fallback": bool(used_fallback),
        "fit_range": res["fit_range"],
        "fit_r2": _finite(res["fit_r2"]),
        "bin_size": float(obs.bin_size),
        "smooth": None if smooth is None else float(smooth),
        "fraction": float(fraction),
        "lower_bound": None if bound is None else float(bound),
        "bounded": bool(bounded),
        "timescale": None if timescale is None else _jsonable_timescale(timescale),
    }
    return tau, info


def _band_range(obs) -> dict:
    """Peak-search range inside the band the reader kept (away from the filter's roll-off)."""
    band = ((getattr(obs, "provenance", None) or {}).get("preprocess") or {}).get("band")
    if not band:
        return {}
    lo, hi = band
    return {"fmin": None if lo is None else 2.0 * float(lo),
            "fmax": None if hi is None else 0.8 * float(hi)}


def _jsonable_timescale(ts: dict) -> dict:
    out = {k: v for k, v in ts.items() if k != "peak"}
    out["peak"] = {k: (None if v is None else _finite(v)) for k, v in ts["peak"].items()}
    return out


def resolve(config: DSRConfig, observations: Observations, *,
            validation: bool = False) -> ResolvedConfig:
    """Turn every rule of ``config`` into a number for ``observations`` (module docstring).

    Parameters
    ----------
    config : DSRConfig
    observations : Observations
        The training data.
    validation : bool
        Whether separate validation data come with them (otherwise the trainer holds back
        ``validation_fraction`` of them, which the budget accounts for).

    Returns
    -------
    ResolvedConfig

    Raises
    ------
    ValueError
        For an unknown forcing scheme or a Poisson layer on continuous data.

    Examples
    --------
    >>> import numpy as np
    >>> from nwb_dsr import Observations
    >>> counts = np.random.default_rng(0).poisson(2.0, (500, 10))
    >>> r = resolve(DSRConfig.from_params(tau=15), Observations(counts, kind="counts",
    ...                                                           bin_size=0.01))
    >>> r.observation.observation, r.model.latent_dim, r.forcing.mode, r.smoothing_bins
    ('poisson', 3, 'shooting', 5.0)
    >>> r.model.model
    'shallow_plrnn'
    >>> r.optimization.batches_per_epoch, r.optimization.patience, r.optimization.grad_clip
    (20, None, 1.0)
    >>> r.optimization.ensemble, r.evaluation.n_final_checks
    (2, 1)
    """
    config = config.check()
    kind, n_ch, bin_size = observations.kind, observations.n_channels, observations.bin_size
    obs_name = config.observation.observation
    if obs_name == "auto":
        obs_name = "poisson" if kind == "counts" else "gaussian"
    if obs_name == "poisson" and kind != "counts":
        raise ValueError("observation='poisson' needs spike counts (kind='counts'); these data "
                         "are continuous. Use observation='gaussian'.")
    counts_smoothing = smoothing_bins(config.observation.smoothing, bin_size)
    sm_bins = counts_smoothing if obs_name == "poisson" else 0.0
    field = is_field_potential(observations)
    model = config.model.model
    if model == "auto":
        model = AUTO_MODEL
    mode = config.forcing.mode
    if mode == "auto":
        # learned forcing states where the data-inferred ones are noisy (regression dilution)
        mode = "shooting" if obs_name == "poisson" or field else "sparse"
    if mode not in FORCING_SCHEMES:
        raise ValueError(f"mode must be one of {sorted(FORCING_SCHEMES)} or 'auto'; got "
                         f"{mode!r}.")
    scheme = FORCING_SCHEMES[mode]
    tau = config.forcing.tau
    if tau == "auto":
        if kind == "counts":
            tau, tau_info = choose_tau(observations, smooth=counts_smoothing,
                                       fraction=COUNTS_TAU_FRACTION)
            floor = int(math.ceil(COUNTS_MIN_TAU_KERNELS * counts_smoothing))
            ceiling = int(math.floor(COUNTS_MAX_TAU_KERNELS * counts_smoothing))
            if tau < floor:
                tau_info = {**tau_info, "method": "kernel_bound", "bounded": True,
                            "lower_bound": float(floor)}
                tau = floor
            elif tau > ceiling:
                tau_info = {**tau_info, "method": "kernel_bound", "bounded": True,
                            "upper_bound": float(ceiling)}
                tau = ceiling
        else:
            tau, tau_info = choose_tau(observations,
                                       fraction=COUNTS_TAU_FRACTION if field else 1.0)
    else:
        tau, tau_info = int(tau), {"method": "fixed", "tau": int(tau)}
    latent_dim = config.model.latent_dim
    if latent_dim is None:
        latent_dim = default_latent_dim(observations)
    hidden_dim = config.model.hidden_dim
    if hidden_dim is None:
        hidden_dim = default_hidden_dim(latent_dim)
    f, o = config.forcing, config.optimization
    grad_clip = o.grad_clip
    seq_len = int(scheme.default_window(int(tau)) if f.seq_len is None else f.seq_len)
    n_batches = o.batches_per_epoch
    if n_batches == "auto":
        segments = list(observations.data)
        if not validation:
            segments = split_validation(segments, o.validation_fraction, seq_len)[0]
        stride = int(scheme(tau=int(tau), window=seq_len).stride)
        n_windows = count_windows([len(s) for s in segments], seq_len, stride)
        n_batches = auto_batches_per_epoch(n_windows, o.batch_size)
        if obs_name == "poisson":
            n_batches = max(n_batches, COUNTS_MIN_BATCHES)
        elif field:
            n_batches = max(n_batches, FIELD_MIN_BATCHES)
    patience = o.patience
    if patience == "auto":
        # the validation score of counts is noisy and their fit improves late: the Poisson
        # path runs its whole schedule
        patience = None if obs_name == "poisson" else AUTO_PATIENCE
    eval_every = o.eval_every
    if eval_every == "auto":
        eval_every = COUNTS_EVAL_EVERY if obs_name == "poisson" else AUTO_EVAL_EVERY
    ensemble = o.ensemble
    if ensemble == "auto":
        ensemble = COUNTS_ENSEMBLE if obs_name == "poisson" or field else 1
    restarts = o.restarts
    if restarts == "auto":
        restarts = 0 if obs_name == "poisson" else AUTO_RESTARTS
    n_final = config.evaluation.n_final_checks
    if n_final == "auto":
        n_final = COUNTS_FINAL_CHECKS if obs_name == "poisson" else AUTO_FINAL_CHECKS
    selection = config.evaluation.selection
    if selection == "auto":
        selection = "spectrum" if field else "score"
    settings = config.replace(
        n_final_checks=int(n_final), selection=selection, model=model, observation=obs_name,
        mode=mode,
        tau=int(tau), latent_dim=int(latent_dim), hidden_dim=int(hidden_dim),
        alpha=float(scheme.default_alpha if f.alpha is None else f.alpha), seq_len=seq_len,
        grad_clip=scheme.default_clip if grad_clip is None else float(grad_clip),
        batches_per_epoch=int(n_batches), patience=patience, eval_every=int(eval_every),
        ensemble=int(ensemble),
        restarts=int(restarts))
    return ResolvedConfig(settings=settings, kind=kind, bin_size=float(bin_size),
                          n_channels=int(n_ch), smoothing_bins=float(sm_bins),
                          tau_info=tau_info)
