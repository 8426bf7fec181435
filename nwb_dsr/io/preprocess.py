"""Default preprocessing of field potentials (LFP, ECoG, EEG) for dynamical-systems reconstruction.

:func:`nwb_dsr.read_lfp` applies these steps unless ``preprocess=False``; each one can be
overridden by its own keyword, and every choice is recorded in ``obs.provenance["preprocess"]``.

1. **Band limit** ``DEFAULT_BAND`` = (0.1, 30) Hz: a zero-phase Butterworth band-pass that removes
   DC offsets and drifts below and muscle activity, spikes and line noise above. It keeps delta
   to beta (the band of clinical EEG and of most LFP analyses; the low edge is MNE's usual ERP
   high-pass, and the high edge that of resting-state pipelines) and the slow rhythms that
   dynamical-systems reconstructions of EEG model (the DSR papers smooth EEG to well below
   30 Hz before embedding it). A higher low edge (e.g. 0.5 or 1 Hz) would cut into slow
   dynamics such as those of a Lorenz-like system at one time unit per second.
2. **Output rate** ``RATE_FACTOR`` × the band's high edge (75 Hz for the default band), at most
   the series' rate: the band is resolved with at least 2.5 samples per period of its highest
   frequency, so the anti-aliasing filter's transition lies above the band, while 50- and 60-Hz
   mains (and everything above 0.58 × the output rate) fall into its stop band. Sampling far
   faster than the dynamics (500 Hz for 10-Hz alpha) makes one step of the latent map nearly
   the identity and the one-step prediction trivially good while long-term behaviour is lost.
3. **Line-noise notch**: the mains frequency (50 or 60 Hz) is detected from the spectrum of
   the raw series (:func:`detect_line_frequency`); its harmonics that would survive the
   anti-aliasing filter (below 0.58 × the output rate) are notched (zero-phase IIR notch, Q 30)
   at the frequency they appear at after resampling (aliases folded into the output band).
4. **Channel reduction** for wide recordings: with more than ``MAX_CHANNELS`` channels the
   z-scored channels are projected onto their leading principal components, as many as explain
   ``PCA_VARIANCE`` of the variance (at most ``MAX_CHANNELS``) (:func:`principal_components`).
5. **Artefact rejection** (before z-scoring and channel reduction): the signal is cut into
   ``REJECT_WINDOW`` (1-s) windows, and a window in which some channel's peak-to-peak amplitude
   exceeds ``REJECT_FACTOR`` (4) times that channel's median over all windows is set aside
   (on wide recordings: at least ``REJECT_CHANNEL_FRACTION`` of the channels, 5 %), as
   are clean stretches shorter than ``MIN_CLEAN`` (4 s) between such windows
   (:func:`reject_artefacts`). This is the peak-to-peak rule of MNE's epoch rejection
   (``reject=dict(eeg=...)``), with the threshold taken from the recording itself rather than a
   fixed number of volts, so that it applies to EEG, ECoG and LFP alike: eye blinks, muscle
   bursts (a jaw clench), electrode pops and movement artefacts are many times the background;
   rhythms that wax and wane are not. With trials, a trial holding such a window is dropped
   whole, as MNE drops an epoch. Recordings of fewer than ``MIN_REJECT_WINDOWS`` windows are
   not tested (the median of a few windows says little). Set-aside time is recorded (and
   warned about); the recording's high-amplitude events that are part of the dynamics (sleep
   slow waves, seizures, sharp waves) are kept with ``reject=None`` or a larger factor.
6. **z-scoring** per channel (or component) over all segments.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import signal

__all__ = ["DEFAULT_BAND", "RATE_FACTOR", "MAX_CHANNELS", "PCA_VARIANCE", "LINE_FREQUENCIES",
           "REJECT_FACTOR", "REJECT_WINDOW", "MIN_CLEAN", "MIN_REJECT_WINDOWS",
           "REJECT_CHANNEL_FRACTION",
           "default_band_and_rate", "detect_line_frequency", "notch_frequencies", "notch_sos",
           "principal_components", "reject_artefacts"]

#: Default band limit in Hz (low, high).
DEFAULT_BAND = (0.1, 30.0)
#: Default output rate as a multiple of the band's high edge.
RATE_FACTOR = 2.5
#: Recordings with more channels are reduced to principal components by default.
MAX_CHANNELS = 16
#: Fraction of the variance the principal components kept by default explain.
PCA_VARIANCE = 0.95
#: Mains frequencies looked for (Hz).
LINE_FREQUENCIES = (50.0, 60.0)
#: A line is detected when its power exceeds that of the neighbouring frequencies this much.
LINE_RATIO = 5.0
#: Harmonics above this fraction of the output rate lie in the resampler's stop band.
STOPBAND_FRACTION = 0.58
#: Artefact rejection: a window whose peak-to-peak amplitude on some channel exceeds this
#: multiple of the channel's median peak-to-peak amplitude (over all windows) is set aside.
REJECT_FACTOR = 4.0
#: Length of the windows tested for artefacts (s).
REJECT_WINDOW = 1.0
#: Clean stretches shorter than this (s) left between artefacts are set aside as well.
MIN_CLEAN = 4.0
#: Recordings of fewer windows than this are not tested for artefacts.
MIN_REJECT_WINDOWS = 20
#: A window is an artefact when at least this fraction of the channels (and at least one)
#: exceed the threshold: on a wide probe an event on a few channels is those channels'
#: problem (bad channels), not a reason to set aside the time of all the others.
REJECT_CHANNEL_FRACTION = 0.05


def default_band_and_rate(fs_in: float, band=DEFAULT_BAND, rate=None):
    """The default band and output rate for a series sampled at ``fs_in`` Hz.

    Parameters
    ----------
    fs_in : float
        Sampling rate of the series (Hz).
    band : (float or None, float or None)
        Band wanted; its high edge is lowered to 0.4 × the output rate if needed.
    rate : float, optional
        Output rate wanted (default ``RATE_FACTOR`` × the band's high edge, at most ``fs_in``).

    Returns
    -------
    (band, rate) : ((float or None, float or None), float)

    Examples
    --------
    >>> default_band_and_rate(500.0)
    ((0.1, 30.0), 75.0)
    >>> default_band_and_rate(40.0)       # a slow series keeps its rate; the band fits under it
    ((0.1, 16.0), 40.0)
    """
    lo, hi = band
    if rate is None:
        rate = fs_in if hi is None else min(fs_in, RATE_FACTOR * float(hi))
    rate = float(rate)
    if hi is not None and hi > rate / RATE_FACTOR:
        hi = rate / RATE_FACTOR
    if lo is not None and hi is not None and lo >= hi:
        lo = None
    return (lo, hi), rate


def detect_line_frequency(x: np.ndarray, fs: float, candidates=LINE_FREQUENCIES,
                          min_ratio: float = LINE_RATIO):
    """The mains frequency of a raw recording, from its power spectrum.

    For each candidate f0 below the Nyquist frequency, the Welch power (1-Hz resolution, channels
    averaged after removing their means) in f0 ± 1 Hz is compared with the median power in the
    flanks f0 ± (2–6) Hz (each channel's spectrum normalised to its total power first, so that
    no channel dominates). The candidate with the largest ratio is the line frequency if the
    ratio exceeds ``min_ratio``.

    Parameters
    ----------
    x : ndarray of shape (n_samples, n_channels)
        Raw samples (any units).
    fs : float
        Sampling rate in Hz.
    candidates : sequence of float
        Frequencies tried (default 50 and 60 Hz).
    min_ratio : float
        Smallest peak-to-flank power ratio taken as a line.

    Returns
    -------
    frequency : float or None
        The detected line frequency, or None.
    ratios : dict
        ``{str(f0): ratio}`` for every candidate that could be tested.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(20000) / 500.0
    >>> x = rng.normal(size=(20000, 2)) + 3 * np.sin(2 * np.pi * 60 * t)[:, None]
    >>> detect_line_frequency(x, 500.0)[0]
    60.0
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    ratios = {}
    nper = int(min(len(x), max(16, round(fs))))
    if len(x) < 16:
        return None, ratios
    f, P = signal.welch(x - x.mean(0), fs=fs, nperseg=nper, axis=0)
    tot = P.sum(0)
    P = (P[:, tot > 0] / tot[tot > 0]).mean(1) if np.any(tot > 0) else P.mean(1)
    for f0 in candidates:
        if f0 + 6.0 >= fs / 2:
            continue
        peak = P[np.abs(f - f0) <= 1.0]
        flank = P[(np.abs(f - f0) >= 2.0) & (np.abs(f - f0) <= 6.0)]
        if peak.size == 0 or flank.size == 0:
            continue
        ref = float(np.median(flank))
        ratios[str(float(f0))] = float(peak.max() / ref) if ref > 0 else float("inf")
    if not ratios:
        return None, ratios
    best = max(ratios, key=ratios.get)
    return (float(best) if ratios[best] > min_ratio else None), ratios


def notch_frequencies(line: float, fs_in: float, fs_out: float) -> list:
    """Frequencies (at the output rate) to notch for a line at ``line`` Hz.

    Every harmonic k·line below the series' Nyquist frequency and below ``STOPBAND_FRACTION``
    × ``fs_out`` (above that the resampler's anti-aliasing filter removes it) is folded into
    [0, fs_out / 2] as resampling aliases it; the folded frequencies strictly inside (0, Nyquist)
    are returned.

    Examples
    --------
    >>> notch_frequencies(60.0, 1000.0, 250.0)   # 60 and 120 Hz stay where they are
    [60.0, 120.0]
    >>> notch_frequencies(60.0, 500.0, 75.0)     # removed by the anti-aliasing filter
    []
    """
    out = []
    k = 1
    while k * line < min(fs_in / 2, STOPBAND_FRACTION * fs_out):
        f = math.fmod(k * line, fs_out)
        f = fs_out - f if f > fs_out / 2 else f
        if 0.5 < f < fs_out / 2 - 0.5 and all(abs(f - g) > 1e-6 for g in out):
            out.append(float(f))
        k += 1
    return out


def notch_sos(freqs, fs: float, q: float = 30.0):
    """Second-order sections of IIR notches (``scipy.signal.iirnotch``) at ``freqs`` Hz."""
    secs = [signal.tf2sos(*signal.iirnotch(f, q, fs=fs)) for f in freqs]
    return np.concatenate(secs) if secs else None


def principal_components(segs, n_components="auto", *, max_channels: int = MAX_CHANNELS,
                         variance: float = PCA_VARIANCE):
    """Project z-scored channels onto their leading principal components.

    Parameters
    ----------
    segs : list of ndarray of shape (n_samples_k, n_channels)
        Segments (z-scored, or at least centred, per channel).
    n_components : int, "auto" or None
        Components kept. ``"auto"``: none (channels kept) when there are at most
        ``max_channels`` channels, else as many as explain ``variance`` of the variance, at most
        ``max_channels``. None or 0: channels kept.
    max_channels, variance
        See ``n_components="auto"``.

    Returns
    -------
    segs : list of ndarray of shape (n_samples_k, k)
        The component scores (or the input unchanged).
    info : dict or None
        ``{"n_components", "explained_variance" (fractions per component),
        "components" (k × n_channels loadings, largest entry of each positive)}``; None when
        the channels are kept.

    Examples
    --------
    >>> import numpy as np
    >>> z = np.random.default_rng(0).normal(size=(500, 2))
    >>> x = z @ np.random.default_rng(1).normal(size=(2, 20))
    >>> out, info = principal_components([x], "auto")
    >>> out[0].shape, info["n_components"]
    ((500, 2), 2)
    """
    n_ch = segs[0].shape[1]
    if n_components is None or n_components == 0:
        return segs, None
    allx = np.concatenate(segs, dtype=np.float64)   # float64 whatever the segments' dtype
    mu = allx.mean(0)
    _, sv, vt = np.linalg.svd(allx - mu, full_matrices=False)
    ev = sv ** 2 / max(float(np.sum(sv ** 2)), 1e-300)
    if n_components == "auto":
        if n_ch <= max_channels:
            return segs, None
        k = int(np.searchsorted(np.cumsum(ev), variance) + 1)
        k = int(min(max(k, 1), max_channels, n_ch))
    else:
        k = int(n_components)
        if k < 1 or k > n_ch:
            raise ValueError(f"n_components must be between 1 and the number of channels "
                             f"({n_ch}); got {n_components!r}.")
    V = vt[:k]
    sign = np.sign(V[np.arange(k), np.argmax(np.abs(V), axis=1)])
    V = V * sign[:, None]
    out = [(s - mu) @ V.T for s in segs]
    return out, {"n_components": k, "explained_variance": ev[:k].tolist(),
                 "components": V.tolist()}


def reject_artefacts(segs, starts, fs: float, factor: float = REJECT_FACTOR, *,
                     whole_segments: bool = False, window: float = REJECT_WINDOW,
                     min_clean: float = MIN_CLEAN, min_windows: int = MIN_REJECT_WINDOWS,
                     min_channels: int | None = None):
    """Set aside the windows of a recording that hold artefacts (peak-to-peak amplitude).

    Each segment is cut into windows of ``window`` seconds (a segment's remainder joins its last
    window; a segment shorter than a window is one window). A window is an artefact when, on
    at least ``min_channels`` channels, its peak-to-peak amplitude exceeds ``factor`` times the
    channel's median peak-to-peak amplitude over all windows of all segments.

    Parameters
    ----------
    segs : list of ndarray of shape (n_samples_k, n_channels)
        The band-limited signal (before z-scoring), one array per segment.
    starts : sequence of float
        Start time (s) of each segment (the left edge of its first sample's bin).
    fs : float
        Sampling rate (Hz).
    factor : float
        Threshold as a multiple of the median peak-to-peak amplitude (> 1).
    whole_segments : bool
        Drop every segment that holds an artefact (trials) instead of cutting the artefacts
        out of it (continuous recordings, where the clean stretches of at least ``min_clean``
        seconds between artefacts become segments of their own).
    window, min_clean : float
        Window length and shortest clean stretch kept, in seconds.
    min_windows : int
        With fewer windows in all, nothing is tested (``record["tested"]`` False).
    min_channels : int, optional
        Channels that must exceed the threshold together; default
        ``REJECT_CHANNEL_FRACTION`` of the channels, at least one (one on up to 20 channels).

    Returns
    -------
    segs : list of ndarray
        The kept segments (views of the input).
    starts : list of float
        Their start times.
    origin : list of int
        For each kept segment, the index of the input segment it comes from.
    record : dict
        ``factor``, ``window_s``, ``min_clean_s``, ``min_channels``, ``windows`` (tested),
        ``tested``, ``artefact_windows``, ``rejected_s``, ``kept_s``, ``rejected`` (the
        set-aside time intervals ``[t0, t1]``, merged) and ``segments_dropped`` (input
        segments left with nothing).

    Raises
    ------
    ValueError
        When nothing would be kept.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(3000, 2))    # 30 s at 100 Hz
    >>> x[1250:1300, 1] += 40.0                                 # a half-second artefact
    >>> segs, starts, origin, rec = reject_artefacts([x], [0.0], 100.0)
    >>> rec["rejected"], [s.shape[0] for s in segs], starts
    ([[12.0, 13.0]], [1200, 1700], [0.0, 13.0])
    """
    factor = float(factor)
    w = max(1, int(round(window * fs)))
    dt = 1.0 / fs
    n_ch = int(segs[0].shape[1]) if segs and segs[0].ndim == 2 else 1
    if min_channels is None:
        min_channels = max(1, int(math.ceil(REJECT_CHANNEL_FRACTION * n_ch - 1e-9)))
    min_channels = int(min(max(int(min_channels), 1), n_ch))
    total = float(sum(len(s) for s in segs) * dt)
    record = {"factor": factor, "window_s": w * dt, "min_clean_s": float(min_clean),
              "min_channels": min_channels, "windows": 0, "tested": False,
              "artefact_windows": 0, "rejected_s": 0.0, "kept_s": total, "rejected": [],
              "segments_dropped": 0}
    lefts, ptps = [], []
    for s in segs:
        e = np.arange(max(1, len(s) // w)) * w
        lefts.append(e)
        ptps.append(np.maximum.reduceat(s, e, axis=0) - np.minimum.reduceat(s, e, axis=0))
    P = np.concatenate(ptps).astype(np.float64)
    record["windows"] = int(len(P))
    keep_all = (list(segs), [float(t) for t in starts], list(range(len(segs))), record)
    if len(P) < min_windows:
        return keep_all
    record["tested"] = True
    ref = np.median(P, axis=0)
    limit = np.where(ref > 0, factor * ref, np.inf)          # flat channels are never artefacts
    n_min = int(math.ceil(min_clean * fs - 1e-9))
    out, out_t, origin, rejected, n_bad = [], [], [], [], 0
    for k, (s, t0, e, p) in enumerate(zip(segs, starts, lefts, ptps)):
        bad = (p > limit).sum(axis=1) >= min_channels
        n_bad += int(bad.sum())
        if not bad.any():
            out.append(s); out_t.append(float(t0)); origin.append(k)
            continue
        if whole_segments:
            rejected.append([float(t0), float(t0) + len(s) * dt])
            record["segments_dropped"] += 1
            continue
        good = np.ones(len(s), bool)
        for i in np.flatnonzero(bad):
            good[e[i]:(e[i + 1] if i + 1 < len(e) else len(s))] = False
        edges = np.flatnonzero(np.diff(np.concatenate([[0], good.astype(np.int8), [0]])))
        kept_any = False
        for a, b in zip(edges[::2], edges[1::2]):
            if b - a >= n_min:
                out.append(s[a:b]); out_t.append(float(t0) + int(a) * dt); origin.append(k)
                kept_any = True
            else:
                good[a:b] = False
        record["segments_dropped"] += int(not kept_any)
        flips = np.flatnonzero(np.diff(np.concatenate([[1], good.astype(np.int8), [1]])))
        rejected += [[float(t0) + int(a) * dt, float(t0) + int(b) * dt]
                     for a, b in zip(flips[::2], flips[1::2])]
    record["artefact_windows"] = n_bad
    if not out:
        raise ValueError(f"every window holds an artefact under the peak-to-peak rule (factor "
                         f"{factor:g} × the median in {w * dt:g}-s windows)")
    merged = []
    for a, b in sorted(rejected):
        if merged and a <= merged[-1][1] + 1e-9:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    record["rejected"] = [[round(a, 6), round(b, 6)] for a, b in merged]
    record["kept_s"] = float(sum(len(s) for s in out) * dt)
    record["rejected_s"] = total - record["kept_s"]
    return out, out_t, origin, record
