"""Zero-phase resampling and filtering of long multichannel signals in blocks.

1. **Anti-aliased resampling** to ``rate``: the polyphase FIR filter of
:func:`scipy.signal.resample_poly` (Kaiser window, beta 5, ``20 * max(up, down) + 1`` taps,
delay compensated so it is zero-phase), applied by overlap-add: the input is cut into short
chunks, every chunk goes through the same small matrix (one batched matrix product per
step, each input sample used once) and the chunks' outputs, which overlap by the filter's
length, are summed (partial sums carry over to the next step). The recording's two ends are
extended by odd reflection, so a whole-recording read equals
``resample_poly(x, up, down, padtype="antireflect")`` (to float32 rounding of the raw
integers' products; the filter is linear, so the conversion to volts is applied after it,
to the output, in float64).
2. **Band-pass** at the output rate: a Butterworth filter (second-order sections) run
forward and backward (:func:`scipy.signal.sosfiltfilt`, zero phase, so no latency is added
between channels or to spikes), applied in overlapping blocks whose overlap is the filter's
impulse-response length (decay below 1e-10), so blocks equal a whole-signal
``sosfiltfilt`` to ~1e-10 relative.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from scipy import signal

from ._nwbfile import short_error
from .errors import NWBReadError

__all__ = ["Resampler", "design_band", "filtfilt_stream", "iir_margin", "ratio", "CHUNK"]

CHUNK = 40  # input samples per chunk of the resampler (at least; times down)


class Resampler:
    """Polyphase FIR resampling by ``up / down``, as overlap-add of chunk products.

    Output k sits at input position ``k * down / up``; the filter is resample_poly's. The input
    is cut into chunks of ``W = w * down`` samples (``w`` from ``CHUNK``), which each feed
    ``rows`` consecutive outputs through one ``(rows, W)`` matrix ``M``, the same for every
    chunk: the next chunk feeds the same outputs shifted by ``U = w * up``. In groups of ``U``
    outputs, chunk j adds to groups ``j - extra .. j`` (``_parts`` says which of its rows go
    where), so group g is complete once chunk ``g + extra`` is in. A run of chunks is thus one
    batched matrix product ``(chunks, rows, C)`` and ``extra + 1`` shifted sums. Each input
    sample enters one product only, and ``rows`` is ``U`` plus the filter's length in outputs,
    so little of the work multiplies zeros when decimating (``down >> up``).
    """

    def __init__(self, up: int, down: int, dtype):
        self.up, self.down = up, down
        m = max(up, down)
        self.half = 10 * m
        h = signal.firwin(2 * self.half + 1, 1.0 / m, window=("kaiser", 5.0)) * up
        w = max(1, math.ceil(CHUNK / down))
        W, U = self.W, self.U = w * down, w * up
        # outputs fed by a chunk that starts at input `shift`, relative to output 0; the shift
        # giving the fewest rows, then the fewest groups of U outputs, is used
        s = np.arange(W)
        r_min = -((self.half - s * up) // down)
        r_max = ((s + W - 1) * up + self.half) // down
        q_min, q_max = r_min // U, r_max // U
        self.shift = int(np.lexsort((q_max - q_min, r_max - r_min))[0])
        r0, r1 = int(r_min[self.shift]), int(r_max[self.shift]) + 1
        q0, self.q1 = int(q_min[self.shift]), int(q_max[self.shift])
        self.extra = self.q1 - q0
        idx = np.arange(r0, r1)[:, None] * down - (self.shift + s[None, :]) * up + self.half
        ok = (idx >= 0) & (idx <= 2 * self.half)
        self.M = np.where(ok, h[np.clip(idx, 0, 2 * self.half)], 0.0).astype(dtype)
        # chunk j adds its rows [j0, j1) to outputs [u0, u1) of group j - c: (c, j0, j1, u0, u1)
        self._parts = []
        for q in range(q0, self.q1 + 1):
            a, b = max(r0, q * U), min(r1, (q + 1) * U)
            self._parts.append((self.q1 - q, a - r0, b - r0, a - q * U, b - q * U))
        # the DC gain of output k (its taps' sum) depends on k mod up only
        self.gain = np.array([h[(q * down + self.half) % up::up].sum() for q in range(up)])
        self._obuf = None

    def first_input(self, k0: int) -> int:
        """Input index of the first of the ``extra + 1`` chunks that feed the group of outputs
        starting at k0 (a multiple of ``up``)."""
        return k0 * self.down // self.up + self.shift - self.q1 * self.W

    def accumulate(self, X: np.ndarray, Y: np.ndarray) -> None:
        """Add the outputs of the n chunks of ``X`` ((n * W, C), C-contiguous) to the
        ``n + extra`` groups ``Y`` ((n + extra, U, C)), ``Y[0]`` being the group that the first
        chunk completes."""
        C = X.shape[1]
        n = X.shape[0] // self.W
        if self._obuf is None or self._obuf.shape[0] < n or self._obuf.shape[2] != C:
            self._obuf = np.empty((n, self.M.shape[0], C), dtype=self.M.dtype)
        O = np.matmul(self.M, X.reshape(n, self.W, C), out=self._obuf[:n])
        e = self.extra
        for c, j0, j1, u0, u1 in self._parts:
            Y[e - c:e - c + n, u0:u1] += O[:, j0:j1]

    def dc_gain(self, k0: int, n_out: int) -> np.ndarray:
        """The filter's DC gain (sum of its taps) for each output in [k0, k0 + n_out)."""
        return self.gain[(k0 + np.arange(n_out)) % self.up]


def iir_margin(sos, fs: float, limit: int) -> int:
    """Samples after which the filter's impulse response stays below 1e-10 of its peak."""
    n = 1024
    while True:
        imp = np.zeros(n)
        imp[0] = 1.0
        h = np.abs(signal.sosfilt(sos, imp))
        above = np.flatnonzero(h > 1e-10 * h.max())
        last = int(above[-1]) + 1
        if last < n // 2 or n >= limit:
            return min(last, limit)
        n *= 2


def design_band(band, fs_out: float, order: int):
    try:
        lo, hi = band
    except (TypeError, ValueError):
        raise NWBReadError(f"band must be a pair (low, high) in Hz (either may be None); got "
                           f"{band!r}.") from None
    nyq = fs_out / 2
    lo = None if lo is None or lo == 0 else float(lo)
    hi = None if hi is None else float(hi)
    if lo is None and hi is None:
        return None
    if (lo is not None and lo < 0) or (hi is not None and hi <= 0) or (
            lo is not None and hi is not None and lo >= hi):
        raise NWBReadError(f"band must satisfy 0 <= low < high; got {band!r}.")
    if hi is not None and hi >= nyq:
        raise NWBReadError(f"band's high edge {hi:g} Hz must be below the Nyquist frequency "
                           f"({nyq:g} Hz) of the output rate {fs_out:g} Hz; lower it, or raise "
                           "rate.")
    if lo is not None and lo >= nyq:
        raise NWBReadError(f"band's low edge {lo:g} Hz must be below the Nyquist frequency "
                           f"({nyq:g} Hz) of the output rate {fs_out:g} Hz.")
    if lo is None:
        return signal.butter(order, hi, btype="lowpass", fs=fs_out, output="sos")
    if hi is None:
        return signal.butter(order, lo, btype="highpass", fs=fs_out, output="sos")
    return signal.butter(order, [lo, hi], btype="bandpass", fs=fs_out, output="sos")


def filtfilt_stream(blocks, sos, margin: int):
    """Zero-phase ``sosfiltfilt`` over a stream of consecutive blocks, in overlapping pieces.

    Yields filtered blocks in order (not the same partition); each emitted sample had at least
    ``margin`` samples of real context on both sides, or the true signal edge.
    """
    hist = None           # raw samples just before the pending ones (already emitted)
    pend, npend = [], 0   # raw samples not yet emitted
    for blk in blocks:
        pend.append(blk)
        npend += blk.shape[0]
        if npend >= 3 * margin:
            raw = np.concatenate(pend, axis=0)
            full = raw if hist is None else np.concatenate([hist, raw], axis=0)
            h = 0 if hist is None else hist.shape[0]
            n_emit = raw.shape[0] - margin
            y = signal.sosfiltfilt(sos, full, axis=0)
            yield y[h:h + n_emit]
            hist = full[max(0, h + n_emit - margin):h + n_emit].copy()
            pend, npend = [raw[n_emit:]], margin
    if npend:
        raw = np.concatenate(pend, axis=0)
        full = raw if hist is None else np.concatenate([hist, raw], axis=0)
        h = 0 if hist is None else hist.shape[0]
        try:
            y = signal.sosfiltfilt(sos, full, axis=0)
        except ValueError as err:
            raise NWBReadError(f"a segment of {full.shape[0]} samples is too short for the "
                               f"band-pass filter ({short_error(err)}); use longer trial "
                               "windows or no band.") from err
        yield y[h:]


def ratio(rate, fs: float):
    if rate is None:
        return 1, 1, fs
    if hasattr(rate, "rescale"):
        try:
            rate = rate.rescale("Hz").magnitude
        except Exception as err:
            raise NWBReadError(f"rate must be a frequency; got {rate!r}.") from err
    try:
        r = float(np.asarray(rate).item())
    except (TypeError, ValueError):
        raise NWBReadError(f"rate must be a number in Hz; got {rate!r}.") from None
    if not (math.isfinite(r) and r > 0):
        raise NWBReadError(f"rate must be a positive number in Hz; got {rate!r}.")
    if r > fs * (1 + 1e-9):
        raise NWBReadError(f"rate={r:g} Hz is above the series' sampling rate ({fs:g} Hz); "
                           "nwb_dsr only decimates: give rate <= the series' rate.")
    frac = Fraction(r / fs).limit_denominator(1000)
    if frac.numerator == 0:
        raise NWBReadError(f"rate={r:g} Hz is too low for a series sampled at {fs:g} Hz "
                           "(more than 1000-fold decimation); decimate in two reads or choose "
                           "a higher rate.")
    return frac.numerator, frac.denominator, fs * frac.numerator / frac.denominator
