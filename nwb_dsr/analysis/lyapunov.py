"""Lyapunov exponents of fitted latent maps and of data, and the forcing interval they imply.

- :func:`lyapunov_spectrum`: the spectrum of a fitted latent map by the QR (Benettin) method.
- :func:`lyapunov_max_data`: the largest exponent of a recorded series by Rosenstein's method on
  a delay embedding (delay from the first minimum of the auto mutual information, dimension from
  false nearest neighbours).
- :func:`predictability_time`: τ_pred = ln 2 / λ_max (``DSR(tau="auto")`` takes τ from it, see
  :func:`nwb_dsr.policies.choose_tau`).

Definitions follow ../METRICS.md (section "λ_max and τ_pred").
"""
from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from scipy.spatial import cKDTree
from sklearn.utils.validation import check_is_fitted

from ..config import LYAPUNOV_STEPS
from ..models.latent import LatentModel
from ..models.rollout import free_run, mean_state

__all__ = ["lyapunov_spectrum", "lyapunov_max_data", "predictability_time",
           "embedding_delay", "embedding_dimension", "spectral_peak", "signal_timescale",
           "dynamics_class", "at_rest_from_collapse", "zero_exponent_band",
           "ZERO_EXPONENT_BAND", "DYNAMICS_CLASSES"]


# ============================================================================ model: QR method
def _resolve_latent(model_or_estimator):
    if isinstance(model_or_estimator, LatentModel):
        return model_or_estimator, None
    if not hasattr(model_or_estimator, "get_params"):
        raise TypeError("model_or_estimator must be a fitted nwb_dsr.DSR estimator or a "
                        f"LatentModel; got {type(model_or_estimator).__name__}.")
    check_is_fitted(model_or_estimator, "latent_model_")
    return model_or_estimator.latent_model_, model_or_estimator


def _positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def _autograd_jacobian(lat):
    """Batched autograd Jacobian (forward mode: S tangents, cheaper than the reverse mode here)."""
    f = lambda x: lat.step(x.unsqueeze(0)).squeeze(0)  # noqa: E731
    return torch.func.vmap(torch.func.jacfwd(f))


def lyapunov_spectrum(model_or_estimator, n_steps: int = LYAPUNOV_STEPS,
                      n_exponents: int | None = None, transient: int = 1_000,
                      reorth_every: int = 5, z0=None, dt: float | None = None, seed: int = 0,
                      autograd: bool = False, readout=None) -> np.ndarray:
    """Lyapunov spectrum of a latent map by the QR (Benettin) method.

    From each start the state is run freely for ``transient`` steps plus its share of
    ``n_steps`` (float64, no gradients); the Jacobians along the trajectory are then computed
    in batches (analytic for the PLRNN family, autograd for the LSTM and RNN) and an
    orthonormal basis Q is carried through them, re-orthonormalised by a QR decomposition every
    ``reorth_every`` steps. The logarithms of |diag R| are accumulated after the transient and
    divided by the steps and by the bin width ``dt``. With several starts the spectrum of the
    run with the median λ_max is returned (the lower middle one for an even number): a map can
    have several attractors, and the median tells the one that most starts reach. A run that
    diverges ranks above every finite one.

    Parameters
    ----------
    model_or_estimator : DSR or LatentModel
        A fitted estimator (its ``latent_model_`` and ``bin_size_`` are used) or a bare latent
        map.
    n_steps : int
        Steps over which the exponents are averaged (after the transient), shared evenly by
        the starts.
    n_exponents : int, optional
        Number of leading exponents (default: all, ``state_dim``).
    transient : int
        Steps run first from each start, both to reach the attractor and to align Q; not
        counted.
    reorth_every : int
        Steps between re-orthonormalisations. Products of up to this many Jacobians are formed
        in float64; keep it small (1–10) when the map contracts strongly.
    z0 : array of shape (state_dim,) or (n_starts, state_dim), optional
        Initial state, or several. Default for an estimator: its ``start_states_`` (forced
        states of :data:`~nwb_dsr.config.LYAPUNOV_STARTS` bins spread over the training data,
        so the exponents are those of the attractor the data occupy); for an estimator saved
        without them, or a bare map given its ``readout``, the mean state (the forced state of
        the read-out offset b); otherwise a small random state. A tiny seeded perturbation
        (10⁻³ of the state's size) is added to every start so that no run sits on a fixed
        point.
    dt : float, optional
        Bin width in seconds (default ``bin_size_`` of an estimator, 1 for a bare model, i.e.
        exponents per step).
    seed : int
        Seed of the perturbations of the starts and of the initial bases.
    autograd : bool
        Use the autograd Jacobian of the base class even if the model has an analytic one (to
        check a model's analytic Jacobian).
    readout : ObservationModel, optional
        The read-out of a bare latent map (e.g. an ensemble member's), for the mean state as
        the default start.

    Returns
    -------
    ndarray, shape (n_exponents,)
        Exponents in decreasing order, in 1/s (per ``dt``). All NaN, with a RuntimeWarning, if
        the (median) free run diverges.

    Raises
    ------
    ValueError
        For non-positive step counts, a bad ``n_exponents`` or a z0 of the wrong size.

    Examples
    --------
    >>> import torch
    >>> from nwb_dsr.models import PLRNN
    >>> m = PLRNN(2)
    >>> with torch.no_grad():
    ...     _ = m.W.zero_(); _ = m.A.copy_(torch.tensor([0.5, 0.25]))
    >>> lyapunov_spectrum(m, n_steps=200, transient=10).round(4)  # log 0.5, log 0.25
    array([-0.6931, -1.3863])
    """
    latent, est = _resolve_latent(model_or_estimator)
    n_steps = _positive_int(n_steps, "n_steps")
    transient = _positive_int(transient, "transient", 0)
    k = _positive_int(reorth_every, "reorth_every")
    S = latent.state_dim
    n_exp = S if n_exponents is None else _positive_int(n_exponents, "n_exponents")
    if n_exp > S:
        raise ValueError(f"n_exponents must be at most the state dimension {S}; got {n_exponents}.")
    if dt is None:
        dt = float(est.bin_size_) if est is not None else 1.0
    if not float(dt) > 0:
        raise ValueError(f"dt must be a positive bin width in seconds; got {dt!r}.")
    rng = np.random.default_rng(seed)

    lat = copy.deepcopy(latent).cpu().double().eval()
    for p in lat.parameters():
        p.requires_grad_(False)
    if z0 is not None:
        starts = np.asarray(z0, dtype=np.float64)
        starts = starts.reshape(1, -1) if starts.ndim <= 1 else starts
        if starts.ndim != 2 or starts.shape[1] != S or not len(starts):
            raise ValueError(f"z0 must have state_dim = {S} entries, or be an (n_starts, {S}) "
                             f"array; got shape {np.shape(z0)}.")
    else:
        kept = getattr(est, "start_states_", None) if est is not None else None
        if readout is None and est is not None:
            readout = est.observation_model_
        if kept is not None and len(kept):
            starts = np.asarray(kept, dtype=np.float64).reshape(-1, S)
        elif readout is not None:
            starts = mean_state(latent, readout).cpu().double().numpy()
        else:
            starts = 0.1 * rng.standard_normal((1, S))
    # so that no run sits on a fixed point, and a member's runs are its estimator's
    starts = starts + 1e-3 * (1.0 + np.abs(starts)) * rng.standard_normal(starts.shape)
    if autograd or type(lat).jacobian is LatentModel.jacobian:
        jac = _autograd_jacobian(lat)
    else:
        jac = lat.jacobian
    # round the transient up to whole re-orthonormalisation blocks
    transient = int(math.ceil(transient / k) * k)
    n_blocks = int(math.ceil(max(n_steps // len(starts), 1) / k))
    runs = [_qr_run(lat, jac, z, transient, n_blocks, k, n_exp, rng) for z in starts]
    order = sorted(range(len(runs)), key=lambda i: np.inf if runs[i] is None else runs[i][0])
    lam = runs[order[(len(runs) - 1) // 2]]
    if lam is None:
        warnings.warn("the free run diverged (non-finite states); the Lyapunov spectrum is "
                      "undefined and NaN is returned.", RuntimeWarning, stacklevel=2)
        return np.full(n_exp, np.nan)
    return lam / float(dt)


def _qr_run(lat, jac, z, transient: int, n_blocks: int, k: int, n_exp: int, rng):
    """Exponents per step (decreasing) of one run from z (QR method), or None if it diverges."""
    S = lat.state_dim
    total = transient + n_blocks * k
    with torch.no_grad(), np.errstate(all="ignore"):
        Z = free_run(lat, torch.as_tensor(z[None], dtype=torch.float64), total)[0]
    states = torch.cat([torch.as_tensor(z[None], dtype=torch.float64), Z[:-1]])
    if not bool(torch.isfinite(states).all()):
        return None
    Q, _ = np.linalg.qr(rng.standard_normal((S, n_exp)))
    acc = np.zeros(n_exp)
    chunk = max(k, (4096 // k) * k)
    for a in range(0, total, chunk):
        with torch.no_grad():
            J = jac(states[a:a + chunk]).numpy()
        nb = J.shape[0] // k
        J = J.reshape(nb, k, S, S)
        P = J[:, 0]
        for j in range(1, k):
            P = np.matmul(J[:, j], P)
        with np.errstate(divide="ignore"):
            for i in range(nb):
                Q, R = np.linalg.qr(P[i] @ Q)
                if a + (i + 1) * k > transient:
                    acc += np.log(np.abs(np.diag(R)))
    return np.sort(acc / (n_blocks * k))[::-1].copy()


# ============================================================================ data: Rosenstein
def _as_segments(x) -> list:
    from ..observations import Observations
    if isinstance(x, Observations):
        x = x.data
    segs = list(x) if isinstance(x, (list, tuple)) else [x]
    out = []
    for k, s in enumerate(segs):
        a = np.asarray(s, dtype=np.float64)
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise ValueError(f"x must be a (n_bins,) or (n_bins, n_channels) array or a list of "
                             f"them; segment {k} has shape {a.shape}.")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"segment {k} of x contains NaN or inf; remove or interpolate them.")
        out.append(a)
    if len({a.shape[1] for a in out}) != 1:
        raise ValueError("all segments of x must have the same number of channels.")
    return out


#: ``_scalar_series``: the z-scored channels have no leading principal component when the
#: largest two eigenvalues of their correlation matrix differ by less than this fraction of
#: the largest (uncorrelated channels, e.g. the z-scored principal components that
#: :func:`nwb_dsr.read_lfp` gives for wide recordings).
DEGENERATE_GAP = 1e-6


def _scalar_series(segs, smooth):
    """Smooth (Gaussian, ``smooth`` bins), z-score and project onto the leading PC.

    Where the leading PC is not defined (:data:`DEGENERATE_GAP`) its direction would follow
    rounding noise of the order of 1e-15 (e.g. from the number of BLAS threads), and with it the
    delay, the embedding and λ_max; the first channel is taken instead (for
    :func:`nwb_dsr.read_lfp`'s components, the leading one of the recording)."""
    if smooth:
        segs = [gaussian_filter1d(s, float(smooth), axis=0, mode="nearest") for s in segs]
    allx = np.concatenate(segs)
    mu, sd = allx.mean(0), allx.std(0)
    keep = sd > 0
    if not keep.any():
        raise ValueError("x is constant; a Lyapunov exponent cannot be estimated.")
    allz = (allx[:, keep] - mu[keep]) / sd[keep]
    if allz.shape[1] == 1:
        v, evr = np.ones(1), 1.0
    else:
        _, sv, vt = np.linalg.svd(allz, full_matrices=False)
        ev = sv ** 2
        v, evr = vt[0], float(ev[0] / np.sum(ev))
        if ev[0] - ev[1] < DEGENERATE_GAP * ev[0]:
            v = np.eye(allz.shape[1])[0]
            evr = float(np.sum(allz[:, 0] ** 2) / np.sum(ev))
    out = [((s[:, keep] - mu[keep]) / sd[keep]) @ v for s in segs]
    return out, evr


def _auto_mutual_information(segs, max_lag, bins):
    """I(s_t; s_{t+lag}) for lag = 0..max_lag with equiprobable bins (pooled over segments)."""
    allx = np.concatenate(segs)
    edges = np.quantile(allx, np.linspace(0, 1, bins + 1)[1:-1])
    codes = [np.searchsorted(edges, s, side="right") for s in segs]
    mi = np.full(max_lag + 1, np.nan)
    for lag in range(max_lag + 1):
        joint = np.zeros(bins * bins)
        for c in codes:
            if len(c) > lag:
                joint += np.bincount(c[:len(c) - lag] * bins + c[lag:], minlength=bins * bins)
        n = joint.sum()
        if n < 10 * bins:
            break
        pj = joint.reshape(bins, bins) / n
        pa, pb = pj.sum(1), pj.sum(0)
        nz = pj > 0
        mi[lag] = float(np.sum(pj[nz] * np.log(pj[nz] / np.outer(pa, pb)[nz])))
    return mi


def _autocorrelation(segs, max_lag):
    allx = np.concatenate(segs)
    mu, var = allx.mean(), allx.var()
    ac = np.full(max_lag + 1, np.nan)
    for lag in range(max_lag + 1):
        num = [np.dot(s[:len(s) - lag] - mu, s[lag:] - mu) for s in segs if len(s) > lag]
        cnt = sum(len(s) - lag for s in segs if len(s) > lag)
        if cnt < 10:
            break
        ac[lag] = float(np.sum(num) / cnt / var)
    return ac


def embedding_delay(x, max_lag: int | None = None, bins: int | None = None, smooth=None) -> int:
    """Embedding delay: the first minimum of the auto mutual information (Fraser & Swinney).

    Equiprobable bins (default ``clip(sqrt(n/50), 8, 32)``) over lags 1..``max_lag``; if the
    mutual information has no local minimum there, the first lag at which the autocorrelation
    falls below 1/e is used instead.

    Parameters
    ----------
    x : array of shape (n_bins,) or (n_bins, n_channels), or list of such arrays
        Series (several channels: the leading principal component of the z-scored channels).
    max_lag : int, optional
        Largest lag tried (default ``min(n_bins // 10, 1000)``).
    bins : int, optional
        Number of equiprobable bins of the mutual-information histogram.
    smooth : float, optional
        Gaussian smoothing (bins) applied first (use it for spike counts).

    Returns
    -------
    int
        The delay in bins (>= 1).

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(8000)
    >>> x = np.sin(2 * np.pi * t / 100) + 0.2 * np.random.default_rng(0).normal(size=8000)
    >>> abs(embedding_delay(x) - 25) <= 5  # about a quarter period
    True
    """
    segs, _ = _scalar_series(_as_segments(x), smooth)
    return _delay(segs, max_lag, bins)[0]


def _delay(segs, max_lag=None, bins=None):
    n = sum(len(s) for s in segs)
    longest = max(len(s) for s in segs)
    if max_lag is None:
        max_lag = min(max(longest // 10, 2), 1000)
    max_lag = int(min(max_lag, longest - 2))
    if bins is None:
        bins = int(np.clip(np.sqrt(n / 50.0), 8, 32))
    mi = _auto_mutual_information(segs, max_lag, bins)
    for lag in range(1, len(mi) - 1):
        if np.isfinite(mi[lag + 1]) and mi[lag] < mi[lag - 1] and mi[lag] <= mi[lag + 1]:
            return int(lag), "mutual_information"
    ac = _autocorrelation(segs, max_lag)
    below = np.flatnonzero(ac < 1.0 / np.e)
    if below.size:
        return max(int(below[0]), 1), "autocorrelation"
    return max(int(max_lag), 1), "max_lag"


def _mean_period(segs) -> float:
    """Mean period (bins) = 1 / mean frequency of the power spectrum (Rosenstein 1993)."""
    num = den = 0.0
    for s in segs:
        if len(s) < 8:
            continue
        p = np.abs(np.fft.rfft(s - s.mean())) ** 2
        f = np.fft.rfftfreq(len(s))
        num += float(np.sum(f[1:] * p[1:]))
        den += float(np.sum(p[1:]))
    if den <= 0 or num <= 0:
        return 1.0
    return den / num


def _embed(segs, m, delay, extra=0):
    """Delay vectors of every segment, with the time index (segments separated by big gaps)
    and the number of further vectors available in the same segment."""
    Ys, ts, rems, off = [], [], [], 0
    for s in segs:
        n = len(s) - (m - 1 + extra) * delay
        if n <= 0:
            continue
        Ys.append(np.stack([s[j * delay:j * delay + n] for j in range(m + extra)], axis=1))
        ts.append(off + np.arange(n))
        rems.append(np.arange(n)[::-1])
        off += len(s) + 10 ** 9
    if not Ys:
        raise ValueError(f"x is too short for a delay embedding of dimension {m} with delay "
                         f"{delay} bins.")
    return np.concatenate(Ys), np.concatenate(ts), np.concatenate(rems)


def _theiler_nn(tree, Y, t, queries, w):
    """Nearest neighbour of each query point outside its Theiler window |t_i − t_j| <= w
    (and at a non-zero distance). Returns (index, distance); index −1 where none was found."""
    n = tree.n
    idx = np.full(len(queries), -1)
    dist = np.full(len(queries), np.inf)
    k_full = int(min(n, 2 * w + 2 + 8))
    k = int(min(k_full, 32))
    todo = np.arange(len(queries))
    while todo.size:
        d, j = tree.query(Y[queries[todo]], k=k)
        d, j = d.reshape(len(todo), -1), j.reshape(len(todo), -1)
        jj = np.minimum(j, n - 1)
        ok = (j < n) & (np.abs(t[jj] - t[queries[todo], None]) > w) & (d > 0)
        has = ok.any(1)
        first = ok.argmax(1)
        sel = todo[has]
        idx[sel] = j[has, first[has]]
        dist[sel] = d[has, first[has]]
        todo = todo[~has]
        if k >= k_full:
            break
        k = k_full
    return idx, dist


def _subsample(n, max_points, rng):
    if n <= max_points:
        return np.arange(n)
    return np.sort(rng.choice(n, size=max_points, replace=False))


def _fnn_fractions(segs, delay, w, max_dim, rtol, atol, max_points, rng):
    allx = np.concatenate(segs)
    ra = float(allx.std()) or 1.0
    fr = []
    for m in range(1, max_dim + 1):
        Y, t, _ = _embed(segs, m, delay, extra=1)
        Ym, nxt = Y[:, :m], Y[:, m]
        tree = cKDTree(Ym)
        q = _subsample(len(Ym), max_points, rng)
        j, d = _theiler_nn(tree, Ym, t, q, w)
        ok = j >= 0
        if not ok.any():
            fr.append(np.nan)
            continue
        q, j, d = q[ok], j[ok], d[ok]
        gap = np.abs(nxt[q] - nxt[j])
        false = (gap / d > rtol) | (np.sqrt(d ** 2 + gap ** 2) / ra > atol)
        fr.append(float(false.mean()))
    return np.asarray(fr)


def embedding_dimension(x, delay: int | None = None, *, theiler: int | None = None,
                        max_dim: int = 10, threshold: float = 0.01, rtol: float = 10.0,
                        atol: float = 2.0, max_points: int = 2000, smooth=None,
                        seed: int = 0) -> tuple[int, np.ndarray]:
    """Embedding dimension by false nearest neighbours (Kennel, Brown & Abarbanel 1992).

    For m = 1..``max_dim``, the nearest neighbour (outside the Theiler window) of each of up to
    ``max_points`` delay vectors is false if adding the (m+1)-th coordinate stretches the
    distance by more than ``rtol`` or makes it exceed ``atol`` times the series' standard
    deviation. The dimension is the first m whose false fraction is below ``threshold``, else
    the one with the smallest fraction.

    Parameters
    ----------
    x : array of shape (n_bins,) or (n_bins, n_channels), or list of such arrays
    delay : int, optional
        Embedding delay (default :func:`embedding_delay`).
    theiler : int, optional
        Temporal neighbours |i − j| <= theiler are excluded (default: the mean period).

    Returns
    -------
    dim : int
    fractions : ndarray, shape (max_dim,)
        False-neighbour fraction for m = 1..max_dim.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(4000) * 0.05
    >>> embedding_dimension(np.sin(t), delay=30)[0]  # a limit cycle unfolds in 2 dimensions
    2
    """
    segs, _ = _scalar_series(_as_segments(x), smooth)
    if delay is None:
        delay = _delay(segs)[0]
    w = int(round(_mean_period(segs))) if theiler is None else int(theiler)
    fr = _fnn_fractions(segs, int(delay), w, int(max_dim), rtol, atol, max_points,
                        np.random.default_rng(seed))
    return _choose_dim(fr, threshold), fr


def _choose_dim(fr, threshold):
    below = np.flatnonzero(fr < threshold)
    if below.size:
        return int(below[0] + 1)
    return int(np.nanargmin(fr) + 1)


def _divergence_curve(Y, t, rem, H, w, max_points, rng):
    """Mean log distance y(k), k = 0..H, between reference points and their nearest
    neighbours (outside the Theiler window), both followed k steps along their segment."""
    valid = np.flatnonzero(rem >= H)
    if valid.size < 10:
        return None, 0
    Yv = Y[valid]
    tree = cKDTree(Yv)
    q = _subsample(len(valid), max_points, rng)
    j, _ = _theiler_nn(tree, Yv, t[valid], q, w)
    ok = j >= 0
    if ok.sum() < 10:
        return None, 0
    I, J = valid[q[ok]], valid[j[ok]]
    y = np.empty(H + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(H + 1):
            d = np.sqrt(np.sum((Y[I + k] - Y[J + k]) ** 2, axis=1))
            ld = np.log(d[d > 0])
            y[k] = ld.mean() if ld.size else np.nan
    return y, int(ok.sum())


def _levelled(y) -> bool:
    """Whether a divergence curve has levelled off: its last quarter rose by less than 5 % of
    its total rise."""
    q = max((len(y) - 1) // 4, 1)
    tail, total = y[-1] - y[-q - 1], np.nanmedian(y[-q:]) - y[0]
    return bool(np.isfinite(tail) and total > 0 and tail < 0.05 * total)


def _auto_fit_range(y, lo=0.1, hi=0.6):
    """Fit range of the linear part: from where y has risen by ``lo`` of its total rise
    (y(0) to the plateau, the median of the last quarter) to where it has risen by ``hi``."""
    n = len(y)
    y0, ys = y[0], float(np.nanmedian(y[-max(n // 4, 1):]))
    rise = ys - y0
    if not np.isfinite(rise) or rise <= 0:
        return None, float(rise)
    frac = (y - y0) / rise
    a = int(np.argmax(frac >= lo))
    b = int(np.argmax(frac >= hi))
    if b <= a:
        return None, float(rise)
    return (a, b), float(rise)


def lyapunov_max_data(x, dt: float = 1.0, *, delay: int | None = None, dim: int | None = None,
                      theiler: int | None = None, fit_range=None, max_points: int = 2000,
                      smooth: float | None = None, horizon: int | None = None,
                      max_dim: int = 10, seed: int = 0) -> dict:
    """Largest Lyapunov exponent of a recorded series by Rosenstein's method.

    1. Spike counts or noisy signals are smoothed first with a Gaussian kernel of ``smooth``
       bins. Several channels are z-scored and reduced to their leading principal component
       (the scalar series that is embedded); a single channel is used as it is.
    2. Delay: the first minimum of the auto mutual information (equiprobable bins), or, if it
       has none, the first lag where the autocorrelation falls below 1/e
       (:func:`embedding_delay`).
    3. Dimension: false nearest neighbours (Kennel et al. 1992; :func:`embedding_dimension`).
    4. Rosenstein et al. (1993): every one of up to ``max_points`` reference points (chosen at
       random, ``seed``) is paired with its nearest neighbour in the embedding (a KD-tree,
       excluding neighbours closer in time than the Theiler window, by default the mean period
       1 / mean frequency of the power spectrum); y(k) = mean log distance of the pairs after k
       steps. The horizon grows until y(k) levels off.
    5. λ_max is the least-squares slope of y(k) over the linear part: from where y has risen by
       10 % of its total rise (from y(0) to the plateau, the median of the last quarter of the
       horizon) to where it has risen by 60 % — or over ``fit_range`` when given.

    Parameters
    ----------
    x : array of shape (n_bins,) or (n_bins, n_channels), or list of such arrays
        The series (time on axis 0); a list holds separate segments or trials, which are
        embedded separately (no delay vector or trajectory crosses a segment boundary) and
        pooled: reference points and their neighbours come from all segments.
    dt : float
        Bin width (seconds): λ_max per second = slope per bin / dt.
    delay, dim : int, optional
        Embedding delay (bins) and dimension; chosen automatically when None.
    theiler : int, optional
        Theiler window (bins).
    fit_range : (int, int), optional
        First and last step k of the linear fit.
    max_points : int
        Number of reference points (and of false-nearest-neighbour queries).
    smooth : float, optional
        Width (bins) of the Gaussian smoothing kernel; use it for spike counts.
    horizon : int, optional
        Number of steps of the divergence curve (default: grows from 10 Theiler windows until
        the curve levels off, at most a quarter of the longest segment).
    max_dim : int
        Largest embedding dimension tried.
    seed : int
        Seed of the choice of reference points.

    Returns
    -------
    dict
        ``lambda_max_per_s`` and ``lambda_max_per_bin`` (NaN when no linear part was found),
        ``delay``, ``delay_method``, ``embedding_capped`` (True when short segments made the
        automatic delay and largest dimension smaller, so that a delay vector spans at most a
        quarter of the longest segment), ``dim``, ``fnn_fractions``, ``theiler``, ``fit_range``
        (steps), ``divergence`` (y(k) for k = 0..horizon, natural log), ``fit_r2``,
        ``n_pairs``, ``explained_variance`` (of the component used), ``dt``. Arrays are
        returned as lists so that the dict is JSON-serialisable.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.empty(20000); x[0] = 0.3
    >>> for i in range(1, len(x)):  # the logistic map at r = 4 has λ = ln 2
    ...     x[i] = 4.0 * x[i - 1] * (1.0 - x[i - 1])
    >>> res = lyapunov_max_data(x, delay=1, dim=1, fit_range=(0, 4))
    >>> bool(abs(res["lambda_max_per_bin"] - np.log(2)) < 0.1)
    True
    """
    if not float(dt) > 0:
        raise ValueError(f"dt must be a positive bin width; got {dt!r}.")
    max_points = _positive_int(max_points, "max_points", 10)
    rng = np.random.default_rng(seed)
    segs, evr = _scalar_series(_as_segments(x), smooth)
    longest = max(len(s) for s in segs)
    if longest < 50:
        raise ValueError(f"x is too short for Rosenstein's method: the longest segment has "
                         f"{longest} bins; give at least several hundred.")
    max_dim = _positive_int(max_dim, "max_dim")
    capped = False
    if delay is None:
        delay, how = _delay(segs)
        # short segments (trials): a delay vector spans at most a quarter of the longest one,
        # leaving the rest for the divergence curve; the delay shrinks before the dimension
        span = max(longest // 4, 2)
        if dim is None and (max_dim - 1) * delay > span:
            capped = True
            delay = max(1, min(delay, span // max(min(max_dim, 5) - 1, 1)))
            max_dim = int(max(2, min(max_dim, span // delay + 1)))
    else:
        delay, how = _positive_int(delay, "delay"), "given"
    w = int(round(_mean_period(segs))) if theiler is None else _positive_int(theiler, "theiler", 0)
    w = int(min(w, longest // 10))
    fr = None
    if dim is None:
        fr = _fnn_fractions(segs, delay, w, max_dim, 10.0, 2.0, max_points, rng)
        dim = _choose_dim(fr, 0.01)
    else:
        dim = _positive_int(dim, "dim")
    Y, t, rem = _embed(segs, dim, delay)
    h_max = max(int(rem.max()) // 4, 10)
    if horizon is not None:
        H = _positive_int(horizon, "horizon")
        if fit_range is not None:
            H = max(H, int(fit_range[1]))
        y, n_pairs = _divergence_curve(Y, t, rem, H, w, max_points, rng)
    else:
        H = int(min(max(10 * w, 50), h_max))
        if fit_range is not None:
            H = max(H, int(fit_range[1]) + 1)
        while True:
            y, n_pairs = _divergence_curve(Y, t, rem, H, w, max_points, rng)
            if y is None or H >= h_max or fit_range is not None:
                break
            if _levelled(y):
                break
            H = int(min(2 * H, h_max))
    if y is None:
        raise ValueError("too few delay vectors with enough future to follow: the segments are "
                         "too short for this horizon; give longer segments or a smaller horizon.")
    levelled = _levelled(y)
    if fit_range is None:
        rng_fit, _ = _auto_fit_range(y)
    else:
        a, b = (int(v) for v in fit_range)
        if not 0 <= a < b <= len(y) - 1:
            raise ValueError(f"fit_range must be (start, stop) with 0 <= start < stop <= "
                             f"{len(y) - 1}; got {fit_range!r}.")
        rng_fit = (a, b)
    lam, r2 = float("nan"), float("nan")
    if rng_fit is not None and rng_fit[1] - rng_fit[0] >= 2:
        k = np.arange(rng_fit[0], rng_fit[1] + 1)
        yy = y[rng_fit[0]:rng_fit[1] + 1]
        good = np.isfinite(yy)
        if good.sum() >= 3:
            slope, icpt = np.polyfit(k[good], yy[good], 1)
            res = yy[good] - (slope * k[good] + icpt)
            ss = np.sum((yy[good] - yy[good].mean()) ** 2)
            lam = float(slope)
            r2 = float(1.0 - np.sum(res ** 2) / ss) if ss > 0 else float("nan")
    return {
        "lambda_max_per_s": lam / float(dt),
        "lambda_max_per_bin": lam,
        "delay": int(delay),
        "delay_method": how,
        "embedding_capped": capped,
        "dim": int(dim),
        "fnn_fractions": None if fr is None else [float(v) for v in fr],
        "theiler": int(w),
        "fit_range": None if rng_fit is None else [int(rng_fit[0]), int(rng_fit[1])],
        "divergence": [float(v) for v in y],
        "levelled": levelled,
        "horizon_limited": bool(horizon is None and fit_range is None and not levelled
                                and H >= h_max),
        "fit_r2": r2,
        "n_pairs": int(n_pairs),
        "explained_variance": float(evr),
        "dt": float(dt),
    }


# ============================================================================ data: time scales
def spectral_peak(x, dt: float = 1.0, *, fmin: float | None = None, fmax: float | None = None,
                  min_prominence: float = 2.0) -> dict:
    """Dominant rhythm of a series: the largest peak of its spectrum above the 1/f background.

    The Welch power spectra of the z-scored channels (segments of about 4 s or 256 bins) are
    normalised and averaged; the aperiodic background is a straight line fitted to log power
    against log frequency over [``fmin``, ``fmax``] (as in the specparam / FOOOF convention),
    and the peak is the frequency where the spectrum rises furthest above it.

    Parameters
    ----------
    x : array of shape (n_bins,) or (n_bins, n_channels), or list of such arrays
    dt : float
        Bin width in seconds (frequencies are in Hz when it is in seconds).
    fmin, fmax : float, optional
        Frequency range searched (default: from the second frequency of the spectrum to 0.9 ×
        the Nyquist frequency). Frequencies with fewer than 4 cycles per Welch segment are
        never searched: the background fit is unreliable there, and a rhythm needs several
        cycles to count as one.
    min_prominence : float
        The peak counts only if its power is at least this multiple of the background.

    Returns
    -------
    dict
        ``frequency`` (None when no peak is prominent enough), ``prominence`` (power over
        background at the peak), ``period_bins``, ``max_power_frequency`` (the plain maximum of
        the spectrum in the range), ``fmin``, ``fmax``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(20000) * 0.01
    >>> x = np.sin(2 * np.pi * 10 * t) + rng.normal(size=t.size).cumsum() * 0.05
    >>> round(spectral_peak(x, dt=0.01)["frequency"])
    10
    """
    segs = _as_segments(x)
    fs = 1.0 / float(dt)
    longest = max(len(s) for s in segs)
    nper = int(min(longest, max(64, min(256, longest), round(4 * fs))))
    acc, n = None, 0
    for s in segs:
        if len(s) < nper:
            continue
        sd = s.std(0)
        if not np.any(sd > 0):
            continue
        z = (s[:, sd > 0] - s[:, sd > 0].mean(0)) / sd[sd > 0]
        f, P = _welch(z, fs, nper)
        P = P / np.maximum(P.sum(0), 1e-300)
        acc = P.mean(1) * len(s) if acc is None else acc + P.mean(1) * len(s)
        n += len(s)
    out = {"frequency": None, "prominence": None, "period_bins": None,
           "max_power_frequency": None, "fmin": fmin, "fmax": fmax}
    if acc is None:
        return out
    P = acc / n
    lo = max(f[1] if fmin is None else float(fmin), 4 * f[1])
    hi = 0.9 * fs / 2 if fmax is None else min(float(fmax), fs / 2)
    sel = (f >= lo) & (f <= hi) & (P > 0)
    if sel.sum() < 4:
        return out
    lf, lp = np.log(f[sel]), np.log(P[sel])
    slope, icpt = np.polyfit(lf, lp, 1)
    resid = lp - (slope * lf + icpt)
    i = int(np.argmax(resid))
    out.update(fmin=float(lo), fmax=float(hi), prominence=float(np.exp(resid[i])),
               max_power_frequency=float(f[sel][int(np.argmax(P[sel]))]))
    if np.exp(resid[i]) >= min_prominence:
        out["frequency"] = float(f[sel][i])
        out["period_bins"] = float(fs / f[sel][i])
    return out


def _welch(z, fs, nper):
    from scipy.signal import welch
    return welch(z, fs=fs, nperseg=nper, axis=0)


def signal_timescale(x, dt: float = 1.0, *, fmin: float | None = None,
                     fmax: float | None = None) -> dict:
    """The signal's own time scale: its dominant period, else its autocorrelation time.

    Parameters
    ----------
    x : array of shape (n_bins,) or (n_bins, n_channels), or list of such arrays
    dt : float
        Bin width in seconds.
    fmin, fmax : float, optional
        Frequency range of the peak search (:func:`spectral_peak`).

    Returns
    -------
    dict
        ``timescale_bins`` (the dominant period when the spectrum has a prominent peak, else the
        autocorrelation time), ``method`` (``"dominant_period"`` or
        ``"autocorrelation_time"``), ``dominant_frequency`` (Hz for ``dt`` in s, or None),
        ``autocorrelation_bins`` (first lag at which the mean autocorrelation of the z-scored
        channels falls below 1/e) and the ``peak`` record of :func:`spectral_peak`.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(5000) * 0.01
    >>> x = np.sin(2 * np.pi * 5 * t) + 0.1 * np.random.default_rng(0).normal(size=5000)
    >>> res = signal_timescale(x, dt=0.01)
    >>> res["method"], round(res["timescale_bins"])
    ('dominant_period', 20)
    """
    segs = _as_segments(x)
    peak = spectral_peak(segs, dt, fmin=fmin, fmax=fmax)
    zs = []
    allx = np.concatenate(segs)
    mu, sd = allx.mean(0), allx.std(0)
    keep = sd > 0
    for s in segs:
        zs.append((s[:, keep] - mu[keep]) / sd[keep])
    longest = max(len(s) for s in segs)
    max_lag = int(min(longest - 2, max(10, longest // 4)))
    acs = [_autocorrelation([z[:, j] for z in zs], max_lag) for j in range(int(keep.sum()))]
    ac = np.nanmean(np.stack(acs), axis=0) if acs else np.full(max_lag + 1, np.nan)
    below = np.flatnonzero(ac < 1.0 / np.e)
    ac_bins = float(below[0]) if below.size else float(max_lag)
    if peak["frequency"] is not None:
        ts, method = peak["period_bins"], "dominant_period"
    else:
        ts, method = ac_bins, "autocorrelation_time"
    return {"timescale_bins": float(ts), "method": method,
            "dominant_frequency": peak["frequency"], "autocorrelation_bins": ac_bins,
            "peak": peak}


#: Zero-exponent band of :func:`dynamics_class` in units of the inverse averaging time of the
#: estimate, 1 / (n_steps × bin width): a run's error on a zero exponent is of the order of its
#: own inverse averaging time, :data:`~nwb_dsr.config.LYAPUNOV_STARTS` such units for each of
#: the runs of the default estimate (which share the steps), and twenty units keep the limit
#: cycles of real fits (|λ_max| up to about 0.003 /s on 100,000 steps of 10 ms) apart from
#: chaos.
ZERO_EXPONENT_BAND = 20.0

#: The classes :func:`dynamics_class` returns.
DYNAMICS_CLASSES = ("fixed point", "periodic orbit of the map", "fixed point or periodic orbit",
                    "limit cycle", "chaos", "undetermined")


def zero_exponent_band(dt: float, n_steps: int = LYAPUNOV_STEPS) -> float:
    """ε of :func:`dynamics_class` (1/s) for λ_max estimated over ``n_steps`` steps of ``dt``
    seconds: :data:`ZERO_EXPONENT_BAND` / (n_steps · dt).

    Examples
    --------
    >>> round(zero_exponent_band(0.01, 100_000), 6)
    0.02
    """
    if not dt > 0 or not n_steps >= 1:
        raise ValueError(f"dt and n_steps must be positive; got {dt!r} and {n_steps!r}.")
    return ZERO_EXPONENT_BAND / (float(n_steps) * float(dt))


def dynamics_class(lambda_max, epsilon: float, at_rest: bool | None = None) -> str:
    """Dynamics class from the largest Lyapunov exponent of a fitted map.

    Parameters
    ----------
    lambda_max : float or None
        Largest Lyapunov exponent (1/s).
    epsilon : float
        Half-width of the band around 0 taken as a zero exponent (1/s), >= 0
        (e.g. :func:`zero_exponent_band`).
    at_rest : bool, optional
        Whether the free run comes to rest (e.g. a ``"fixed_point"`` collapse). A negative
        λ_max belongs to a fixed point or to a stable periodic orbit of the map (a run that
        repeats every k steps, which looks like an oscillation in the data); this tells them
        apart. None: not known.

    Returns
    -------
    str
        One of :data:`DYNAMICS_CLASSES`: for λ_max < −ε ``"fixed point"`` (at rest),
        ``"periodic orbit of the map"`` (not at rest) or ``"fixed point or periodic orbit"``
        (not known); ``"limit cycle"`` for |λ_max| ≤ ε (a zero exponent: a cycle or torus of
        the flow); ``"chaos"`` for λ_max > ε; ``"undetermined"`` for None or not finite.

    Examples
    --------
    >>> [dynamics_class(v, 0.02) for v in (-1.0, 0.01, 0.5, None)]
    ['fixed point or periodic orbit', 'limit cycle', 'chaos', 'undetermined']
    >>> dynamics_class(-1.0, 0.02, at_rest=True), dynamics_class(-1.0, 0.02, at_rest=False)
    ('fixed point', 'periodic orbit of the map')
    """
    if not epsilon >= 0:
        raise ValueError(f"epsilon must be a number >= 0; got {epsilon!r}.")
    if lambda_max is None or not np.isfinite(lambda_max):
        return "undetermined"
    if lambda_max < -epsilon:
        return {True: "fixed point", False: "periodic orbit of the map"}.get(
            at_rest, "fixed point or periodic orbit")
    return "limit cycle" if lambda_max <= epsilon else "chaos"


def at_rest_from_collapse(collapse) -> bool | None:
    """``at_rest`` of :func:`dynamics_class` from a collapse reason
    (:func:`nwb_dsr.collapse.detect_collapse`): True for ``"fixed_point"``, False for none,
    None (not known) for a run that exploded, drifted or became non-finite.

    Examples
    --------
    >>> [at_rest_from_collapse(c) for c in ("fixed_point", None, "exploding")]
    [True, False, None]
    """
    if collapse is None:
        return False
    return True if collapse == "fixed_point" else None


def predictability_time(lambda_max: float) -> float:
    """Predictability time τ_pred = ln 2 / λ_max (the time in which errors double).

    The unit is the inverse of ``lambda_max``'s: bins for an exponent per bin, seconds for one
    per second. Infinite for λ_max <= 0 (no exponential divergence); NaN for NaN.

    Examples
    --------
    >>> round(predictability_time(0.906), 3)  # Lorenz-63, in time units
    0.765
    >>> predictability_time(-0.1)
    inf
    """
    lam = float(lambda_max)
    if math.isnan(lam):
        return float("nan")
    return math.log(2.0) / lam if lam > 0 else float("inf")


def _finite(v):
    v = float(v)
    return v if math.isfinite(v) else None
