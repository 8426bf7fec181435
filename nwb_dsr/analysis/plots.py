"""Figures of a fit: training loss, attractors, power spectra, rasters, Lyapunov spectra, τ sweeps.

Every function returns the matplotlib Figure, draws into ``ax`` when one is given (otherwise
into a new Figure that is not registered with pyplot, so nothing stays open), and writes a PNG
(or any format matplotlib knows from the suffix) when ``path`` is given.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

__all__ = ["plot_loss", "plot_attractor", "plot_spectra", "plot_raster", "plot_lyapunov",
           "plot_tau_sweep"]


def _figure(figsize):
    from matplotlib.figure import Figure
    return Figure(figsize=figsize, layout="constrained")


def _finish(fig, path):
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    return fig


def _as_2d(x, name):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a (n_steps, n_dims) array; got shape {x.shape}.")
    return x


def plot_loss(history, ax=None, path=None):
    """Training loss per epoch and, on a second axis, the validation score.

    Parameters
    ----------
    history : TrainingHistory or dict
        ``est.history_`` (or its ``to_dict()``), with ``loss`` and optionally ``val_epochs``,
        ``val_score``.
    ax : matplotlib Axes, optional
    path : str or Path, optional
        Where to save the figure.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_loss({"loss": [1.0, 0.5, 0.3], "val_epochs": [2], "val_score": [0.8]})
    >>> len(fig.axes)
    2
    """
    h = history if isinstance(history, dict) else history.to_dict()
    loss = np.asarray(h.get("loss", []), dtype=np.float64)
    if ax is None:
        fig = _figure((6, 3.5))
        ax = fig.add_subplot()
    fig = ax.figure
    ep = np.arange(1, len(loss) + 1)
    ax.plot(ep, loss, color="C0", label="training loss")
    if len(loss) and np.all(loss[np.isfinite(loss)] > 0):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss", color="C0")
    ve, vs = h.get("val_epochs") or [], h.get("val_score") or []
    if len(ve) and len(vs):
        ax2 = ax.twinx()
        vs = np.asarray([np.nan if v is None else v for v in vs], dtype=np.float64)
        ax2.plot(ve, vs, "o-", color="C1", ms=3, label="validation score")
        ax2.set_ylabel("validation D_stsp + 4 D_H", color="C1")
        best = h.get("best_epoch")
        if best is not None:
            ax2.axvline(best, color="C1", ls=":", lw=1)
    return _finish(fig, path)


def _project3(x_true, x_gen, max_dims=3):
    """The series themselves (<= 3 dims) or their projections on the leading PCs of x_true."""
    N = x_true.shape[1]
    if N <= max_dims:
        return x_true, x_gen, [f"x{i + 1}" for i in range(N)]
    mu = x_true.mean(0)
    _, _, vt = np.linalg.svd(x_true - mu, full_matrices=False)
    P = vt[:max_dims].T
    return (x_true - mu) @ P, (x_gen - mu) @ P, [f"PC{i + 1}" for i in range(max_dims)]


def plot_attractor(x_true, x_gen, ax=None, path=None, max_points: int = 20_000):
    """The true and generated trajectories in state space (3-D when there are >= 3 dimensions).

    Series with more than 3 dimensions are projected on the 3 leading principal components of
    ``x_true``.

    Parameters
    ----------
    x_true, x_gen : array of shape (n_steps, n_dims)
        Data and a free run of the model.
    ax : Axes or pair of Axes, optional
        One Axes: both drawn into it; two: side by side. 3-D data need 3-D Axes
        (``projection="3d"``).
    path : str or Path, optional
    max_points : int
        At most this many (leading) points of each series are drawn.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(500, 5))
    >>> len(plot_attractor(x, x[::-1]).axes)
    2
    """
    xt, xg = _as_2d(x_true, "x_true"), _as_2d(x_gen, "x_gen")
    if xt.shape[1] != xg.shape[1]:
        raise ValueError(f"x_true and x_gen must have the same number of dimensions; got "
                         f"{xt.shape[1]} and {xg.shape[1]}.")
    xt, xg, labels = _project3(xt[:max_points], xg[:max_points])
    d = xt.shape[1]
    three = d >= 3
    kw = {"projection": "3d"} if three else {}
    if ax is None:
        fig = _figure((10, 4.5))
        axes = [fig.add_subplot(1, 2, 1, **kw), fig.add_subplot(1, 2, 2, **kw)]
    elif isinstance(ax, (list, tuple, np.ndarray)):
        axes = list(ax)
        fig = axes[0].figure
    else:
        axes = [ax, ax]
        fig = ax.figure
    for a, x, name, color in ((axes[0], xt, "data", "k"), (axes[1], xg, "generated", "C3")):
        if three:
            a.plot(x[:, 0], x[:, 1], x[:, 2], lw=0.3, color=color, label=name)
            a.set_zlabel(labels[2])
        elif d == 2:
            a.plot(x[:, 0], x[:, 1], lw=0.3, color=color, label=name)
        else:
            a.plot(x[:, 0], lw=0.5, color=color, label=name)
        a.set_xlabel(labels[0] if d > 1 else "step")
        a.set_ylabel(labels[1] if d > 1 else labels[0])
        a.set_title(name if axes[0] is not axes[1] else "data and generated")
    if axes[0] is axes[1]:
        axes[0].legend(loc="best")
    return _finish(fig, path)


def plot_spectra(x_true, x_gen, dt: float = 1.0, ax=None, path=None, smoothing: float = 20.0,
                 max_dims: int = 3):
    """Smoothed, normalised power spectra of data and generated series, as D_H compares them.

    Per dimension: z-score, |rfft|², Gaussian smoothing along frequency with σ = ``smoothing``
    bins, normalised to sum 1 (../METRICS.md, D_H).

    Parameters
    ----------
    x_true, x_gen : array of shape (n_steps, n_dims)
    dt : float
        Bin width in seconds (frequency axis in Hz).
    ax : Axes or sequence of Axes, optional
        One Axes per plotted dimension (or one Axes for all).
    max_dims : int
        Number of leading dimensions shown.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(2000)[:, None] * 0.01
    >>> fig = plot_spectra(np.sin(5 * t), np.sin(6 * t), dt=0.01)
    >>> len(fig.axes)
    1
    """
    from ..metrics import power_spectrum_distance
    xt, xg = _as_2d(x_true, "x_true"), _as_2d(x_gen, "x_gen")
    n = min(len(xt), len(xg))
    xt, xg = xt[:n], xg[:n]
    d = min(xt.shape[1], xg.shape[1], int(max_dims))
    if ax is None:
        fig = _figure((3.6 * d, 3.2))
        axes = [fig.add_subplot(1, d, i + 1) for i in range(d)]
    elif isinstance(ax, (list, tuple, np.ndarray)):
        axes = list(ax)
        fig = axes[0].figure
    else:
        axes = [ax] * d
        fig = ax.figure
    f = np.fft.rfftfreq(n, d=float(dt))
    hs = power_spectrum_distance(xt[:, :d], xg[:, :d], smoothing=smoothing, per_dim=True)
    for i in range(d):
        a = axes[i]
        for x, name, color in ((xt[:, i], "data", "k"), (xg[:, i], "generated", "C3")):
            sd = x.std()
            z = (x - x.mean()) / (sd if sd > 0 else 1.0)
            p = gaussian_filter1d(np.abs(np.fft.rfft(z)) ** 2, smoothing)
            p = np.clip(p, 0, None)
            p = p / p.sum() if p.sum() > 0 else p
            a.semilogy(f[1:], np.maximum(p[1:], 1e-12), color=color, lw=1, label=name)
        a.set_xscale("log")
        a.set_xlabel("frequency (Hz)")
        a.set_title(f"dim {i + 1}: D_H = {hs[i]:.3f}")
    axes[0].set_ylabel("normalised power")
    axes[0].legend(loc="best", fontsize=8)
    return _finish(fig, path)


def _event_times(counts, dt, rng):
    times = []
    for j in range(counts.shape[1]):
        c = np.round(np.clip(counts[:, j], 0, None)).astype(int)
        bins = np.repeat(np.arange(len(c)), c)
        times.append((bins + rng.uniform(size=bins.size)) * dt)
    return times


def plot_raster(counts_true, counts_gen, dt: float = 1.0, ax=None, path=None, seed: int = 0):
    """Spike raster of the data beside one of spikes sampled from the model.

    Spikes of a bin are drawn at random times within it. Non-integer ``counts_gen`` are taken
    as expected counts (rates per bin) and Poisson spikes are drawn from them (``seed``).

    Parameters
    ----------
    counts_true : array of shape (n_bins, n_units)
        Recorded counts.
    counts_gen : array of shape (n_bins', n_units)
        Counts sampled from the model, e.g. ``est.generate(n, sample=True)``, or its rates.
    dt : float
        Bin width in seconds.
    ax : pair of Axes, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> c = np.random.default_rng(0).poisson(0.5, size=(200, 4))
    >>> len(plot_raster(c, c + 0.3, dt=0.01).axes)
    2
    """
    ct, cg = _as_2d(counts_true, "counts_true"), _as_2d(counts_gen, "counts_gen")
    if ct.shape[1] != cg.shape[1]:
        raise ValueError(f"counts_true and counts_gen must have the same number of units; got "
                         f"{ct.shape[1]} and {cg.shape[1]}.")
    rng = np.random.default_rng(seed)
    if not np.all(cg == np.round(cg)):
        cg = rng.poisson(np.clip(cg, 0, 1e6)).astype(np.float64)
    if ax is None:
        fig = _figure((10, 1.5 + 0.15 * min(ct.shape[1], 60)))
        axes = [fig.add_subplot(1, 2, 1)]
        axes.append(fig.add_subplot(1, 2, 2, sharey=axes[0]))
    else:
        axes = list(ax)
        fig = axes[0].figure
    for a, c, name, color in ((axes[0], ct, "data", "k"), (axes[1], cg, "model (sampled)", "C3")):
        a.eventplot(_event_times(c, float(dt), rng), colors=color, linelengths=0.8,
                    linewidths=0.6)
        a.set_xlim(0, len(c) * float(dt))
        a.set_xlabel("time (s)")
        a.set_title(name)
    axes[0].set_ylabel("unit")
    return _finish(fig, path)


def plot_lyapunov(spectrum, ax=None, path=None, unit: str = "1/s"):
    """The Lyapunov spectrum as a stem plot, with λ_max and the sum in the title.

    Parameters
    ----------
    spectrum : array of shape (n_exponents,)
        Exponents (e.g. from :func:`nwb_dsr.analysis.lyapunov_spectrum`).
    unit : str
        Unit shown on the axis.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_lyapunov([0.9, 0.0, -14.5])
    >>> fig.axes[0].get_title()
    'λ_max = 0.9 1/s, Σλ = -13.6 1/s'
    """
    s = np.sort(np.asarray(spectrum, dtype=np.float64).ravel())[::-1]
    if ax is None:
        fig = _figure((5, 3.2))
        ax = fig.add_subplot()
    fig = ax.figure
    i = np.arange(1, len(s) + 1)
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.stem(i, s)
    ax.set_xticks(i)
    ax.set_xlabel("exponent index")
    ax.set_ylabel(f"λ ({unit})")
    ax.set_title(f"λ_max = {s[0]:.3g} {unit}, Σλ = {np.sum(s):.3g} {unit}")
    return _finish(fig, path)


def plot_tau_sweep(taus, dstsp, dh, *, tau_auto=None, baseline=None, ax=None, path=None,
                   tau_pred=None):
    """Reconstruction quality against the forcing interval τ (the paper's central figure).

    Parameters
    ----------
    taus : sequence of int
        Forcing intervals.
    dstsp, dh : array of shape (n_taus,) or (n_taus, n_seeds)
        D_stsp and D_H per τ (and seed); NaN for failed runs. Means ± SD over seeds are drawn
        with the single seeds as dots.
    tau_auto : float, optional
        τ chosen by :func:`nwb_dsr.policies.choose_tau`, drawn as a vertical line.
    baseline : dict, optional
        ``{"dstsp": values, "dh": values}`` over seeds for the baseline (clipped BPTT), drawn
        as a horizontal band (mean ± SD).
    ax : pair of Axes, optional
    path : str or Path, optional
    tau_pred : float, optional
        Another reference τ (e.g. from the literature), drawn dashed.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> fig = plot_tau_sweep([1, 10, 100], np.ones((3, 2)), np.ones((3, 2)), tau_auto=20,
    ...                      baseline={"dstsp": [2.0, 3.0], "dh": [0.5, 0.6]})
    >>> len(fig.axes)
    2
    """
    taus = np.asarray(taus, dtype=np.float64)
    if ax is None:
        fig = _figure((10, 3.8))
        axes = [fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)]
    else:
        axes = list(ax)
        fig = axes[0].figure
    for a, vals, key, label in ((axes[0], dstsp, "dstsp", "D_stsp"), (axes[1], dh, "dh", "D_H")):
        v = np.asarray(vals, dtype=np.float64)
        if v.ndim == 1:
            v = v[:, None]
        if v.shape[0] != len(taus):
            raise ValueError(f"{key} must have one row per tau ({len(taus)}); got shape {v.shape}.")
        with warnings.catch_warnings():  # all-NaN rows: mean NaN, no warning
            warnings.simplefilter("ignore", RuntimeWarning)
            m, s = np.nanmean(v, 1), np.nanstd(v, 1)
        for j in range(v.shape[1]):
            a.plot(taus, v[:, j], ".", color="C0", alpha=0.4, ms=5)
        a.errorbar(taus, m, yerr=s, fmt="o-", color="C0", capsize=3, label="sparse forcing")
        if baseline is not None and baseline.get(key) is not None:
            b = np.asarray(baseline[key], dtype=np.float64)
            b = b[np.isfinite(b)]
            if b.size:
                a.axhspan(b.mean() - b.std(), b.mean() + b.std(), color="C1", alpha=0.25)
                a.axhline(b.mean(), color="C1", lw=1.2, label="clipped BPTT (no forcing)")
        if tau_auto is not None:
            a.axvline(float(tau_auto), color="C2", ls="-", lw=1.2,
                      label=f"choose_tau: τ = {float(tau_auto):.0f}")
        if tau_pred is not None:
            a.axvline(float(tau_pred), color="0.4", ls="--", lw=1,
                      label=f"τ_pred = {float(tau_pred):.0f}")
        a.set_xscale("log")
        a.set_xlabel("forcing interval τ (steps)")
        a.set_ylabel(label)
        a.set_title(f"{label} vs τ")
    axes[0].legend(loc="best", fontsize=8)
    return _finish(fig, path)

