"""Attractor-geometry and power-spectrum metrics of dynamical-systems reconstruction.

Definitions follow the field's standard ones (Koppe 2019, Brenner 2022, Mikhaeil 2022, Hess 2023).
``x_true`` is the (test) series, ``x_gen`` a freely generated series, both (T, N), time on axis 0.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.special import logsumexp

__all__ = ["state_space_divergence", "power_spectrum_distance", "d_stsp", "d_h"]


def _check_pair(x_true, x_gen, same_length=False):
    x_true = np.asarray(x_true, dtype=np.float64)
    x_gen = np.asarray(x_gen, dtype=np.float64)
    if x_true.ndim == 1:
        x_true = x_true[:, None]
    if x_gen.ndim == 1:
        x_gen = x_gen[:, None]
    if x_true.ndim != 2 or x_gen.ndim != 2:
        raise ValueError("x_true and x_gen must be (n_steps, n_dims) arrays with time on axis 0.")
    if x_true.shape[1] != x_gen.shape[1]:
        raise ValueError(f"x_true and x_gen must have the same number of dimensions; got "
                         f"{x_true.shape[1]} and {x_gen.shape[1]}.")
    if same_length and x_true.shape[0] != x_gen.shape[0]:
        raise ValueError(f"x_true and x_gen must have the same length; got {x_true.shape[0]} and "
                         f"{x_gen.shape[0]}. Trim the longer series.")
    return x_true, x_gen


def state_space_divergence(x_true, x_gen, n_bins: int = 30, alpha: float = 1e-5,
                           n_samples: int = 1000, sigma: float = 1.0, max_points: int = 10_000,
                           seed: int = 0) -> float:
    """D_stsp: KL(p_true ‖ p_gen) between the occupation measures of two trajectories.

    For fewer than 6 dimensions, a histogram with ``n_bins`` equal bins per dimension over
    [min − 0.1·sd, max + 0.1·sd] of ``x_true`` (points of ``x_gen`` outside fall away), Laplace
    smoothing p = (h + α)/(Σh + α·n_bins^N). For 6 or more dimensions, a Monte-Carlo estimate
    with isotropic Gaussians of variance ``sigma``² on the first ``max_points`` points of each
    series and ``n_samples`` samples drawn around points of ``x_true``.

    Parameters
    ----------
    x_true, x_gen : array_like, shape (n_steps, n_dims)
        True and generated series.

    Returns
    -------
    float
        The divergence; NaN when no generated point falls inside the true data's box.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(20000, 2))
    >>> round(state_space_divergence(x, x), 6)
    0.0
    >>> state_space_divergence(x, x + 100.0)
    nan
    """
    x_true, x_gen = _check_pair(x_true, x_gen)
    N = x_true.shape[1]
    if N < 6:
        sd = x_true.std(0)
        lo, hi = x_true.min(0) - 0.1 * sd, x_true.max(0) + 0.1 * sd
        hi = np.where(hi > lo, hi, lo + 1.0)
        edges = [np.linspace(lo[i], hi[i], n_bins + 1) for i in range(N)]
        p, _ = np.histogramdd(x_true, bins=edges)
        q, _ = np.histogramdd(x_gen, bins=edges)
        if q.sum() == 0:
            return float("nan")
        nb = float(n_bins) ** N
        p = (p.ravel() + alpha) / (p.sum() + alpha * nb)
        q = (q.ravel() + alpha) / (q.sum() + alpha * nb)
        return float(np.sum(p * np.log(p / q)))
    rng = np.random.default_rng(seed)
    xt, xg = x_true[:max_points], x_gen[:max_points]
    idx = rng.integers(0, len(xt), size=n_samples)
    s = xt[idx] + sigma * rng.standard_normal((n_samples, N))
    const = -0.5 * N * np.log(2 * np.pi * sigma ** 2)

    def log_mix(points):
        out = np.empty(n_samples)
        for a in range(0, n_samples, 100):
            d2 = ((s[a:a + 100, None, :] - points[None]) ** 2).sum(-1)
            out[a:a + 100] = logsumexp(-0.5 * d2 / sigma ** 2, axis=1) - np.log(len(points)) + const
        return out

    lp, lq = log_mix(xt), log_mix(xg)
    ok = np.isfinite(lp) & np.isfinite(lq) & (np.exp(lp) > 0) & (np.exp(lq) > 0)
    if not ok.any():
        return float("nan")
    return float(np.mean(lp[ok] - lq[ok]))


def _spectra(x, smoothing):
    x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)
    p = np.abs(np.fft.rfft(x, axis=0)) ** 2
    if smoothing > 0:
        p = gaussian_filter1d(p, smoothing, axis=0)
    p = np.clip(p, 0, None)
    tot = p.sum(0)
    return p / np.where(tot > 0, tot, 1.0)


def power_spectrum_distance(x_true, x_gen, smoothing: float = 20.0, per_dim: bool = False):
    """D_H: Hellinger distance between smoothed power spectra, averaged over dimensions.

    Per dimension: z-score, |rfft|², Gaussian smoothing along frequency with σ = ``smoothing``
    bins, negatives clipped, normalised to sum 1; H = sqrt(1 − Σ sqrt(p·q)).

    Parameters
    ----------
    x_true, x_gen : array_like, shape (n_steps, n_dims)
        Series of equal length.
    per_dim : bool
        Return the per-dimension distances instead of their mean.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(4096)[:, None]
    >>> round(power_spectrum_distance(np.sin(0.1 * t), np.sin(0.1 * t)), 6)
    0.0
    >>> power_spectrum_distance(np.sin(0.1 * t), np.sin(1.0 * t)) > 0.9
    True
    """
    x_true, x_gen = _check_pair(x_true, x_gen, same_length=True)
    p, q = _spectra(x_true, smoothing), _spectra(x_gen, smoothing)
    h = np.sqrt(np.clip(1.0 - np.sqrt(p * q).sum(0), 0.0, None))
    return h if per_dim else float(h.mean())


d_stsp = state_space_divergence
d_h = power_spectrum_distance
