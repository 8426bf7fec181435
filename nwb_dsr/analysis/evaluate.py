"""Evaluation of a fitted :class:`~nwb_dsr.DSR` estimator: every metric of ../METRICS.md at once.

- :func:`prediction_error`: PE(n), the n-step-ahead prediction error from forced states.
- :func:`co_bps`: co-smoothing bits per spike (Neural Latents Benchmark).
- :func:`poisson_loglik`: Poisson log-likelihood per bin.
- :func:`evaluate`: D_stsp and D_H by the evaluation protocol (:mod:`nwb_dsr.protocol`), PE(n),
  the Lyapunov spectrum, τ_pred (and for spike counts the 1-step Poisson log-likelihood),
  optionally with figures.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.special import gammaln
from sklearn.utils.validation import check_is_fitted

from .._json import jsonable
from ..collapse import CollapseWarning, describe_collapse
from ..config import LYAPUNOV_STEPS
from ..models.rollout import infer_states
from ..observations import as_observations
from .lyapunov import (DYNAMICS_CLASSES, at_rest_from_collapse, dynamics_class,
                       lyapunov_spectrum, predictability_time, zero_exponent_band)

__all__ = ["prediction_error", "co_bps", "poisson_loglik", "evaluate", "ensemble_summary",
           "ENSEMBLE_FIGURES", "MEMBER_TRAINING"]

#: The figures of every ensemble member that :func:`ensemble_summary` spreads.
ENSEMBLE_FIGURES = ("lambda_max", "D_stsp", "D_H", "heldout_loglik", "heldout_bits_per_spike",
                    "score")

#: How each member's training went, listed per member by :func:`ensemble_summary` (where
#: known): epochs run, the selected checkpoint's epoch, why training stopped (``"epochs"``,
#: ``"max_time"``: the time budget cut it short, ``"early_stop"``, ``"diverged"``) and the
#: runaway count of its probe runs.
MEMBER_TRAINING = ("epochs", "best_epoch", "stopped", "probes_runaway")


def _observations(estimator, X):
    if not hasattr(estimator, "get_params"):
        raise TypeError(f"estimator must be a fitted nwb_dsr.DSR; got {type(estimator).__name__}.")
    check_is_fitted(estimator, "latent_model_")
    return as_observations(X, bin_size=estimator.bin_size_, n_channels=estimator.n_features_in_)


def _steps(n, name="n"):
    scalar = np.ndim(n) == 0
    ns = np.atleast_1d(np.asarray(n))
    if ns.size == 0 or ns.dtype.kind not in "iu" and not np.all(ns == np.round(ns)):
        raise ValueError(f"{name} must be a positive integer or a sequence of them; got {n!r}.")
    ns = ns.astype(int)
    if np.any(ns < 1):
        raise ValueError(f"{name} must contain integers >= 1; got {n!r}.")
    return scalar, ns


@torch.no_grad()
def prediction_error(estimator, X, n=20, *, max_starts: int = 2000):
    """n-step prediction error PE(n) (../METRICS.md).

    For every start t of the series: the state is forced from x_t (ẑ_t, the read-out's inverse
    as in :meth:`DSR.transform`), the latent map runs n steps freely, and
    the read-out's expected observation is compared with x_{t+n}. The mean squared error over
    starts and channels is returned, in data units: squared signal units for continuous data;
    for spike counts the expected counts are compared with the counts (counts² per bin).
    With counts the forcing target at t is made from counts smoothed over the segment
    (``smoothing`` of the Poisson layer, as in training), so it sees a few bins beyond t;
    this matters only for n of the order of the kernel width.

    All starts that leave ``max(n)`` further bins in their segment are used (the same starts
    for every n), or ``max_starts`` of them evenly spaced over the pooled segments when there
    are more.

    Parameters
    ----------
    estimator : DSR
        A fitted estimator.
    X : Observations, array of shape (n_bins, n_channels) or list of such arrays
        Test data.
    n : int or sequence of int
        Prediction horizons (bins).
    max_starts : int
        Largest number of start points.

    Returns
    -------
    float or ndarray
        PE(n); an array of the same length as ``n`` when a sequence is given.

    Raises
    ------
    ValueError
        If ``n`` is not positive or no segment is longer than ``max(n)``.

    Examples
    --------
    >>> import numpy as np
    >>> from nwb_dsr import DSR
    >>> t = np.arange(3000) * 0.05
    >>> x = np.stack([np.sin(t), np.cos(t)], axis=1)
    >>> est = DSR(latent_dim=2, hidden_dim=8, tau=10, epochs=1, progress=False).fit(x, bin_size=0.05)
    >>> prediction_error(est, x, n=[1, 5]).shape
    (2,)
    """
    obs = _observations(estimator, X)
    scalar, ns = _steps(n)
    if isinstance(max_starts, bool) or int(max_starts) < 1:
        raise ValueError(f"max_starts must be a positive integer; got {max_starts!r}.")
    nmax = int(ns.max())
    seg_ids, starts = [], []
    for k, s in enumerate(obs.data):
        m = s.shape[0] - nmax
        if m > 0:
            seg_ids.append(np.full(m, k))
            starts.append(np.arange(m))
    if not starts:
        raise ValueError(f"no segment of X is longer than the largest horizon n = {nmax} bins; "
                         "give longer data or smaller n.")
    seg_ids, starts = np.concatenate(seg_ids), np.concatenate(starts)
    if len(starts) > int(max_starts):
        pick = np.unique(np.round(np.linspace(0, len(starts) - 1, int(max_starts))).astype(int))
        seg_ids, starts = seg_ids[pick], starts[pick]
    lat, o = estimator.latent_model_, estimator.observation_model_
    z0, targets = [], {int(v): [] for v in ns}
    for k in np.unique(seg_ids):
        s = obs.data[k]
        t = starts[seg_ids == k]
        z0.append(infer_states(lat, o, s)[torch.as_tensor(t)])
        for v in targets:
            targets[v].append(s[t + v])
    z = torch.cat(z0)
    targets = {v: np.concatenate(a).astype(np.float64) for v, a in targets.items()}
    out = {}
    with np.errstate(all="ignore"):
        for step in range(1, nmax + 1):
            z = lat.step(z)
            if step in targets:
                pred = o.mean(z).numpy().astype(np.float64)
                out[step] = float(np.mean((pred - targets[step]) ** 2))
    res = np.array([out[int(v)] for v in ns])
    return float(res[0]) if scalar else res


def _check_rates_counts(rates, counts):
    r = np.array(rates, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    if r.shape != c.shape:
        raise ValueError(f"rates and counts must have the same shape; got {r.shape} and {c.shape}.")
    if r.ndim == 1:
        r, c = r[:, None], c[:, None]
    mask = ~np.isnan(c)
    if np.any(np.isnan(r[mask])):
        raise ValueError("rates contain NaN where counts are given.")
    if np.any(r[mask] < 0):
        raise ValueError("rates must be non-negative expected counts per bin (not log-rates).")
    return r, c, mask


def _poisson_nll(r, c, mask):
    r = np.where(r == 0, 1e-9, r)
    with np.errstate(divide="ignore", invalid="ignore"):
        nll = r - c * np.log(r) + gammaln(c + 1.0)
    return float(np.sum(nll[mask]))


def co_bps(rates, counts) -> float:
    """Co-smoothing bits per spike (Neural Latents Benchmark; ../METRICS.md).

    NLL(r, n) = Σ [r − n·log r + log n!] with r = 0 replaced by 1e-9; the null model predicts,
    for every neuron, its mean count over the evaluation bins given here (as NLB does: the
    mean over all leading axes, e.g. trials and time); bps = (NLL_null − NLL_model) /
    (Σ n · ln 2). NaN counts are left out (NLB's masking).

    Parameters
    ----------
    rates : array of shape (..., n_neurons)
        Predicted expected counts per bin (not log-rates), >= 0.
    counts : array of the same shape
        Observed spike counts of the held-out neurons.

    Returns
    -------
    float
        Bits per spike; 0 for the null rates, higher is better. NaN without any spike.

    Examples
    --------
    >>> import numpy as np
    >>> counts = np.array([[0, 1], [2, 1], [1, 0]])
    >>> co_bps(np.tile(counts.mean(0), (3, 1)), counts)
    0.0
    >>> co_bps(counts + 0.1, counts) > 0
    True
    """
    r, c, mask = _check_rates_counts(rates, counts)
    total = float(np.nansum(c))
    if total <= 0:
        return float("nan")
    lead = tuple(range(c.ndim - 1))
    null = np.broadcast_to(np.nanmean(c, axis=lead, keepdims=True), c.shape)
    return float((_poisson_nll(null, c, mask) - _poisson_nll(r, c, mask)) / total / math.log(2.0))


def poisson_loglik(rates, counts) -> float:
    """Poisson log-likelihood per bin, Σ_channels [n log r − r − log n!] averaged over bins.

    Parameters
    ----------
    rates, counts : array of shape (n_bins, n_channels)
        Expected counts per bin and observed counts.

    Examples
    --------
    >>> import numpy as np
    >>> round(poisson_loglik(np.ones((2, 1)), np.zeros((2, 1))), 6)  # log P(0 | 1) = -1
    -1.0
    """
    r, c, mask = _check_rates_counts(rates, counts)
    n_bins = int(np.prod(c.shape[:-1]))
    return -_poisson_nll(r, c, mask) / n_bins


@torch.no_grad()
def evaluate(estimator, X, *, n_generate: int | None = None, pe_steps=(1, 5, 10, 20),
             n_lyapunov: int = LYAPUNOV_STEPS, figures=None, seed: int = 0) -> dict:
    """All metrics that apply to the data kind, for a fitted estimator on test data X.

    D_stsp and D_H come from the evaluation protocol (:mod:`nwb_dsr.protocol`), the same
    computation that selected the model during training: the state is forced at the first bin
    of X, the model runs freely for 1.25·T steps and the first 0.25·T are dropped
    (T = ``n_generate``, by default the number of bins of X); both series are compared in the
    observation layer's forcing space (standardised signal; for spike counts link⁻¹ of
    smoothed counts, with generated counts drawn and smoothed alike, on the leading principal
    components), standardised with the data's mean and sd. A collapsed free run (fixed point,
    flat or exploding) is reported in ``collapse``.

    Parameters
    ----------
    estimator, X
        A fitted :class:`~nwb_dsr.DSR` and test data, as in :func:`prediction_error`.
    n_generate : int, optional
        Number of generated steps kept (default: the number of bins of X).
    pe_steps : int or sequence of int
        Horizons n of the prediction error PE(n) (empty or None: skipped).
    n_lyapunov : int
        Steps of the QR method for the model's Lyapunov spectrum. Its runs start where
        :func:`~nwb_dsr.analysis.lyapunov_spectrum` of the estimator starts (the states of the
        training data that the fit keeps, ``start_states_``), so ``lambda_max_per_s`` is the
        fit's λ_max, the one of its selected ensemble member and of the written NWB file,
        whatever the data X.
    figures : str or Path, optional
        Directory to write figures into (created if needed): ``loss.png``, ``attractor.png``,
        ``spectra.png``, ``lyapunov.png`` and, for counts, ``raster.png``.
    seed : int
        Seed of the protocol's draws (counts), the Gaussian-mixture D_stsp and the raster
        (not of the Lyapunov spectrum, whose runs have the default seed of
        :func:`~nwb_dsr.analysis.lyapunov_spectrum`, so that ``lambda_max_per_s`` does not
        depend on it).

    Returns
    -------
    dict
        JSON-serialisable (non-finite numbers become None): ``kind``, ``bin_size``, ``n_bins``,
        ``n_generate``, ``dstsp``, ``dh``, ``selection_score`` (D_stsp + weight·D_H, the
        validation score), ``collapse`` (why the free run collapsed: ``"fixed_point"``,
        ``"damped"``, ``"exploding"`` or ``"non_finite"``, see
        :func:`nwb_dsr.collapse.detect_collapse`; None if it did not), ``prediction_error``
        ({str(n): PE(n)}), ``lyapunov_spectrum`` (1/s), ``lambda_max_per_s``,
        ``lambda_max_per_bin``, ``lyapunov_sum_per_s``, ``tau_pred_bins``, ``tau_pred_s``,
        ``tau``, ``tau_info``; for counts also ``poisson_loglik_per_bin`` and
        ``bits_per_spike_1step`` of the 1-step predictions
        (:meth:`DSR.predict`, first bin of each segment left out; the smoothed forcing target
        sees a few bins ahead, see :func:`prediction_error`); for a fit with more than one
        ensemble member ``ensemble`` (:func:`ensemble_summary`); with ``figures`` also
        ``figures`` ({name: path}).

    Warns
    -----
    CollapseWarning
        When the free run collapsed (``collapse`` is not None).

    Examples
    --------
    >>> import json, numpy as np
    >>> from nwb_dsr import DSR
    >>> t = np.arange(3000) * 0.05
    >>> x = np.stack([np.sin(t), np.cos(t)], axis=1)
    >>> est = DSR(latent_dim=2, hidden_dim=8, tau=10, epochs=1, progress=False).fit(x, bin_size=0.05)
    >>> res = evaluate(est, x, pe_steps=(1, 5), n_lyapunov=500)
    >>> sorted(res["prediction_error"])
    ['1', '5']
    >>> isinstance(json.dumps(res), str)
    True
    """
    obs = _observations(estimator, X)
    if pe_steps is None or (np.ndim(pe_steps) > 0 and len(pe_steps) == 0):
        pe_ns = np.array([], dtype=int)
    else:
        pe_ns = _steps(pe_steps, "pe_steps")[1]
    if n_generate is not None and (isinstance(n_generate, bool) or int(n_generate) < 2):
        raise ValueError(f"n_generate must be at least 2; got {n_generate!r}.")
    lat, o = estimator.latent_model_, estimator.observation_model_
    counts = obs.kind == "counts"
    T = obs.n_bins if n_generate is None else int(n_generate)
    protocol = estimator.evaluation_protocol(n_steps=T, seed=seed)
    z0 = infer_states(lat, o, obs.data[0])[:1]
    res = protocol.evaluate(lat, o, obs.data, z0=z0)
    out = {"kind": obs.kind, "bin_size": float(obs.bin_size), "n_bins": int(obs.n_bins),
           "n_generate": int(T), "dstsp": res.dstsp, "dh": res.dh,
           "selection_score": res.score, "collapse": res.collapse}
    if res.collapse:
        warnings.warn(f"{describe_collapse(res.collapse)} on these data, so D_stsp, D_H and "
                      "the Lyapunov spectrum describe a collapsed model, not the data's "
                      "dynamics; fit again (another seed, a longer max_time) and compare.",
                      CollapseWarning, stacklevel=3)  # the caller of the no_grad wrapper
    if len(pe_ns):
        pe = prediction_error(estimator, obs, pe_ns)
        out["prediction_error"] = {str(int(k)): float(v) for k, v in zip(pe_ns, pe)}
    else:
        out["prediction_error"] = {}
    spec = lyapunov_spectrum(estimator, n_steps=n_lyapunov)  # its own seed: the fit's λ_max
    lam_s = float(spec[0])
    lam_bin = lam_s * float(obs.bin_size)
    tau_pred = predictability_time(lam_bin)
    out.update({"lyapunov_spectrum": spec, "lambda_max_per_s": lam_s,
                "lambda_max_per_bin": lam_bin, "lyapunov_sum_per_s": float(np.sum(spec)),
                "tau_pred_bins": tau_pred, "tau_pred_s": tau_pred * float(obs.bin_size),
                "tau": int(estimator.tau_), "tau_info": dict(estimator.tau_info_)})
    if counts:
        preds = estimator.predict(obs, n_ahead=1)
        r = np.concatenate([p[1:] for p in preds])
        c = np.concatenate([s[1:] for s in obs.data]).astype(np.float64)
        if len(c):
            out["poisson_loglik_per_bin"] = poisson_loglik(r, c)
            out["bits_per_spike_1step"] = co_bps(r, c)
    if len(getattr(estimator, "members_", None) or []) > 1:
        out["ensemble"] = ensemble_summary(estimator)
    if figures is not None:
        rates = o.mean(res.latent).numpy().astype(np.float64) if counts else None
        out["figures"] = _write_figures(Path(figures), estimator, obs, res, rates, spec, seed)
    return jsonable(out)


def ensemble_summary(estimator) -> dict:
    """The spread over a fit's ensemble members (the ``ensemble`` setting, ``members_``).

    Each member is a fit from its own seed; the one with the lowest ``score`` (its selected
    checkpoint's, see ``DSR.members_``) is the model. The spread of the members is what a
    single number hides: a λ_max whose members
    agree in sign and lie close together is a property of the data; one whose members range
    from below zero to far above it is not determined by this fit.

    Parameters
    ----------
    estimator : DSR
        A fitted estimator.

    Returns
    -------
    dict
        JSON-serialisable: ``n_members``, ``selected_seed``; for each figure of
        :data:`ENSEMBLE_FIGURES` that the members have, ``{"median", "min", "max", "sd",
        "n"}`` over the members with a finite value (``sd`` with ddof 1, None for one value);
        ``lambda_max_sign_agreement``: the fraction of members whose λ_max has the sign of
        the median; ``dynamics``: the class each member's λ_max implies
        (:func:`~nwb_dsr.analysis.lyapunov.dynamics_class`, told whether the member's free
        run came to rest in validation, with ε from
        :func:`~nwb_dsr.analysis.lyapunov.zero_exponent_band` for the estimate's steps and
        bins) counted over the members (``counts``), ``epsilon_per_s``, and ``agreement``, the
        fraction of members in the selected member's class (below 1: these data and this fit
        do not settle whether the dynamics are a fixed point, a cycle or chaos); and
        ``members``: ``{"seed_<s>": {figure: value, "dynamics": class, "selected": bool}}``,
        with how the member's training went (:data:`MEMBER_TRAINING`: epochs run, the
        selected checkpoint's epoch, why training stopped, and ``probes_runaway`` where the
        member was probed for runaways; see :class:`~nwb_dsr.training.TrainingHistory`).
        Empty dict for a fit without members (loaded from an older file).

    Examples
    --------
    >>> import numpy as np
    >>> from nwb_dsr import DSR
    >>> t = np.arange(3000) * 0.05
    >>> x = np.stack([np.sin(t), np.cos(t)], axis=1)
    >>> est = DSR(latent_dim=2, hidden_dim=8, tau=10, epochs=2, ensemble=2, restarts=0,
    ...           progress=False).fit(x, bin_size=0.05)
    >>> s = ensemble_summary(est)
    >>> s["n_members"], list(s["members"]) == [f"seed_{m['seed']}" for m in est.members_]
    (2, True)
    >>> s["selected_seed"] in [m["seed"] for m in est.members_]
    True
    """
    check_is_fitted(estimator, "latent_model_")
    members = list(getattr(estimator, "members_", None) or [])
    if not members:
        return {}
    out = {"n_members": len(members),
           "selected_seed": next((m["seed"] for m in members if m.get("selected")), None)}
    for name in ENSEMBLE_FIGURES:
        vals = np.array([m[name] for m in members if m.get(name) is not None], dtype=float)
        vals = vals[np.isfinite(vals)]
        if not any(name in m for m in members):
            continue
        out[name] = {"median": float(np.median(vals)) if len(vals) else None,
                     "min": float(vals.min()) if len(vals) else None,
                     "max": float(vals.max()) if len(vals) else None,
                     "sd": float(vals.std(ddof=1)) if len(vals) > 1 else None,
                     "n": int(len(vals))}
    lam = out.get("lambda_max", {})
    if lam.get("n"):
        vals = np.array([m["lambda_max"] for m in members if m.get("lambda_max") is not None])
        out["lambda_max_sign_agreement"] = float(np.mean(np.sign(vals) ==
                                                         np.sign(lam["median"])))
    classes = None
    if any("lambda_max" in m for m in members):
        eps = zero_exponent_band(float(estimator.bin_size_))
        classes = [dynamics_class(m.get("lambda_max"), eps,
                                  at_rest=at_rest_from_collapse(m.get("collapse")))
                   for m in members]
        chosen = next((c for c, m in zip(classes, members) if m.get("selected")), None)
        out["dynamics"] = {"epsilon_per_s": eps,
                           "counts": {c: classes.count(c) for c in DYNAMICS_CLASSES
                                      if c in classes},
                           "agreement": (None if chosen is None else
                                         classes.count(chosen) / len(classes))}
    out["members"] = {f"seed_{m['seed']}": {**{k: m.get(k) for k in ENSEMBLE_FIGURES if k in m},
                                            **({"dynamics": classes[i]} if classes else {}),
                                            **{k: m[k] for k in MEMBER_TRAINING
                                               if m.get(k) is not None},
                                            "selected": bool(m.get("selected"))}
                      for i, m in enumerate(members)}
    return jsonable(out)


def _write_figures(folder: Path, estimator, obs, res, rates, spec, seed) -> dict:
    from . import plots
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    hist = getattr(estimator, "history_", None)
    if hist is not None and len(getattr(hist, "loss", []) or []):
        paths["loss"] = folder / "loss.png"
        plots.plot_loss(hist, path=paths["loss"])
    ref, gen = res.reference, res.generated
    if np.all(np.isfinite(gen)):
        paths["attractor"] = folder / "attractor.png"
        plots.plot_attractor(ref, gen, path=paths["attractor"])
        n = min(len(ref), len(gen))
        paths["spectra"] = folder / "spectra.png"
        plots.plot_spectra(ref[:n], gen[:n], obs.bin_size, path=paths["spectra"])
        if rates is not None:
            k = min(len(obs.data[0]), len(rates), 1000)
            sampled = np.random.default_rng(seed).poisson(np.clip(rates[:k], 0, 1e6))
            paths["raster"] = folder / "raster.png"
            plots.plot_raster(obs.data[0][:k], sampled, obs.bin_size, path=paths["raster"])
    if np.all(np.isfinite(spec)):
        paths["lyapunov"] = folder / "lyapunov.png"
        plots.plot_lyapunov(spec, path=paths["lyapunov"])
    return {k: str(v) for k, v in paths.items()}
