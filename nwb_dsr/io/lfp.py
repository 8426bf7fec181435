"""NWB ElectricalSeries (LFP or any continuous voltage) → continuous observations: :func:`read_lfp`.

The series is read in blocks of time, so memory stays bounded whatever the recording's length
(the output and a few blocks are in memory, never the whole dataset). Reads are of whole HDF5
chunks (each read and decompressed once; gzip chunks by worker threads, ahead of the filters);
blocks of a few MiB are converted and filtered while still in the processor's cache.

1. **Anti-aliased resampling** to ``rate`` and 2. an **optional band-pass** and mains notch,
   zero phase, in blocks (:mod:`nwb_dsr.io.filters`).
3. **Optional artefact rejection** (:func:`nwb_dsr.io.preprocess.reject_artefacts`) on the
   filtered signal: windows of outlying peak-to-peak amplitude are cut out, or trials holding
   them dropped.
4. **Optional z-scoring** per channel over all segments (and principal components).

Trial and interval segments take their filter context from the recording around them (real
samples where the recording has them), so a segment equals the same span cut from a filtered
whole recording.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import math
import os
import queue
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np

from .._json import jsonable
from ..observations import Observations
from ._nwbfile import (check_interval, column_names, open_nwb, raw_data, read_all,
                       scalar_column, seconds, short_error, trial_windows)
from .errors import NWBReadError, NWBReadWarning
from .filters import Resampler, design_band, filtfilt_stream, iir_margin, ratio
from .preprocess import (DEFAULT_BAND, LINE_FREQUENCIES, MAX_CHANNELS, RATE_FACTOR,
                         REJECT_FACTOR, REJECT_WINDOW, default_band_and_rate,
                         detect_line_frequency, notch_frequencies, notch_sos,
                         principal_components, reject_artefacts)

__all__ = ["read_lfp", "find_electrical_series"]

_CACHE_BYTES = 1 << 22  # input of one filter step (working dtype): a few MiB, to stay in cache
_AHEAD_BYTES = 1 << 25  # decoded chunk rows held ahead of the filters, at most
_MAX_THREADS = 4        # decoding threads, at most (one keeps ahead of the filters on 2 cores)
_DEFLATE, _SHUFFLE = 1, 2  # HDF5 filter ids decoded here


# ---------------------------------------------------------------------------------------------
# locating the series
# ---------------------------------------------------------------------------------------------

def _candidates(nwbfile) -> list:
    """(path, series, tier) of every continuous ElectricalSeries; tier 1 = inside an LFP
    container in /processing, tier 2 = anything else."""
    from pynwb.ecephys import LFP, ElectricalSeries, FilteredEphys, SpikeEventSeries

    out = []

    def add(path, obj, tier):
        if isinstance(obj, ElectricalSeries) and not isinstance(obj, SpikeEventSeries):
            out.append((path, obj, tier))
        elif isinstance(obj, (LFP, FilteredEphys)):
            for name, es in obj.electrical_series.items():
                add(f"{path}/{name}", es, tier if isinstance(obj, LFP) else 2)

    for mod_name, mod in nwbfile.processing.items():
        for name, obj in mod.data_interfaces.items():
            add(f"/processing/{mod_name}/{name}", obj, 1)
    for name, obj in nwbfile.acquisition.items():
        add(f"/acquisition/{name}", obj, 2)
    return out


def find_electrical_series(nwbfile, series=None):
    """The ElectricalSeries to read and its path in the file.

    Parameters
    ----------
    nwbfile : pynwb.NWBFile
        An open NWB file.
    series : str, optional
        A name (``"LFP"``) or a path (``"/processing/ecephys/LFP/ElectricalSeries"``).
        Default: the series of the LFP container in /processing if there is exactly one, else
        the only ElectricalSeries in /acquisition or /processing.

    Returns
    -------
    (str, pynwb.ecephys.ElectricalSeries)
        Its path and the series.

    Raises
    ------
    NWBReadError
        If there is none, the name matches nothing, or several series qualify (the message
        lists their paths).

    Examples
    --------
    >>> import numpy as np
    >>> from pynwb.testing.mock.file import mock_NWBFile
    >>> from pynwb.testing.mock.ecephys import mock_ElectricalSeries
    >>> from nwb_dsr.io.lfp import find_electrical_series
    >>> nwbfile = mock_NWBFile()
    >>> _ = mock_ElectricalSeries(name="raw", data=np.zeros((10, 2)), nwbfile=nwbfile)
    >>> find_electrical_series(nwbfile)[0]
    '/acquisition/raw'
    """
    cands = _candidates(nwbfile)
    paths = [p for p, _, _ in cands]
    if not cands:
        raise NWBReadError("the file has no ElectricalSeries (no LFP in /processing and none "
                           "in /acquisition), so there is no continuous signal to read; use "
                           "read_units for sorted spikes.")
    if series is not None:
        if not isinstance(series, str):
            # an ElectricalSeries object from this file
            for p, es, _ in cands:
                if es is series:
                    return p, es
            raise NWBReadError("series must be a name or path of an ElectricalSeries in the "
                               f"file; found {paths}.")
        want = "/" + series.strip("/")
        hits = [(p, es) for p, es, _ in cands if p == want]
        if not hits:
            hits = [(p, es) for p, es, _ in cands if p.rsplit("/", 1)[-1] == series.strip("/")]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise NWBReadError(f"no ElectricalSeries named {series!r}; the file has {paths}. "
                               "Give one of these paths as series=.")
        raise NWBReadError(f"several ElectricalSeries are named {series!r}: "
                           f"{[p for p, _ in hits]}; give the full path as series=.")
    tier1 = [(p, es) for p, es, t in cands if t == 1]
    pick = tier1 if tier1 else [(p, es) for p, es, _ in cands]
    if len(pick) == 1:
        return pick[0]
    raise NWBReadError(f"several ElectricalSeries qualify: {[p for p, _ in pick]}; choose one "
                       "with series=<path>.")


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------

class _Inflate:
    """Inflation of zlib streams (HDF5's deflate filter) into a given buffer, by libdeflate
    where the system has it (found with :func:`ctypes.util.find_library`; about 1.6 times
    faster than zlib), else by :mod:`zlib`. Both release the GIL while they inflate, and both
    give the same bytes."""

    _lib = None          # the libdeflate library, False where there is none
    _free = queue.SimpleQueue()   # libdeflate decompressors not in use (one per thread)

    @classmethod
    def libdeflate(cls):
        if cls._lib is None:
            cls._lib = False
            name = ctypes.util.find_library("deflate")
            try:
                lib = ctypes.CDLL(name) if name else None
                if lib is not None:
                    lib.libdeflate_alloc_decompressor.restype = ctypes.c_void_p
                    lib.libdeflate_alloc_decompressor.argtypes = []
                    lib.libdeflate_zlib_decompress.restype = ctypes.c_int
                    lib.libdeflate_zlib_decompress.argtypes = [
                        ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p,
                        ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
                    cls._lib = lib
            except (OSError, AttributeError):  # not loadable, or not libdeflate's interface
                cls._lib = False
        return cls._lib

    @classmethod
    def into(cls, raw: bytes, out: np.ndarray) -> None:
        """Inflate the zlib stream ``raw`` into ``out`` (C-contiguous), which it must fill
        exactly; ValueError otherwise."""
        lib = cls.libdeflate()
        if not lib:
            b = zlib.decompress(raw, zlib.MAX_WBITS, out.nbytes)
            if len(b) != out.nbytes:
                raise ValueError("a chunk decoded to an unexpected size")
            out.reshape(-1).view(np.uint8)[:] = np.frombuffer(b, np.uint8)
            return
        try:
            dec = cls._free.get_nowait()
        except queue.Empty:
            dec = lib.libdeflate_alloc_decompressor()
            if not dec:
                raise MemoryError("libdeflate could not allocate a decompressor")
        try:
            got = ctypes.c_size_t(0)
            rc = lib.libdeflate_zlib_decompress(dec, raw, len(raw), out.ctypes.data,
                                                out.nbytes, ctypes.byref(got))
        finally:
            cls._free.put(dec)
        if rc != 0 or got.value != out.nbytes:
            raise ValueError("a chunk could not be inflated")


class _ChunkRows:
    """Decoder of the chunks of an HDF5 dataset compressed with HDF5's deflate filter (after
    its byte shuffle or not), one row of chunks at a time, for rows ``[i * rows, (i + 1) *
    rows)`` and columns ``[lo, hi)`` (then ``pick`` of those, if given).

    The stored chunks are read with ``read_direct_chunk`` and inflated with :mod:`zlib`, which
    releases the GIL while it inflates (HDF5 holds it for a whole read); with ``threads`` > 0
    the chunk rows after the one asked for are decoded by that many worker threads meanwhile,
    at most ``_AHEAD_BYTES`` ahead, so decompression runs beside the caller's filters.
    :meth:`get` returns None for a chunk row it cannot decode (a chunk not stored, a filter
    skipped, corrupt data): the caller then reads those rows through h5py, which reports any
    error. :meth:`close` cancels what is pending and waits for the threads to end.
    """

    @classmethod
    def of(cls, data, lo: int, hi: int, pick, threads: int):
        """A decoder for ``data`` (an h5py.Dataset), or None where its chunks are not deflate
        (with or without shuffle) or not chunked."""
        chunks = getattr(data, "chunks", None)
        if not isinstance(data, h5py.Dataset) or not chunks or data.ndim not in (1, 2):
            return None
        try:
            plist = data.id.get_create_plist()
            filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
        except Exception:  # an HDF5 without these calls: h5py reads the chunks
            return None
        if _DEFLATE not in filters or not set(filters) <= {_DEFLATE, _SHUFFLE}:
            return None
        return cls(data, filters, lo, hi, pick, threads)

    def __init__(self, data, filters, lo, hi, pick, threads):
        self.id, self.filters = data.id, filters[::-1]       # undone in reverse order
        self.dtype = np.dtype(data.dtype)
        self.n = int(data.shape[0])
        self.rows = int(data.chunks[0])
        self.cols = 1 if data.ndim == 1 else int(data.chunks[1])
        self.one_d = data.ndim == 1
        self.lo, self.hi, self.pick = lo, hi, pick
        self.n_rows = -(-self.n // self.rows)
        width = hi - lo if pick is None else len(pick)
        row_bytes = self.rows * max(width, self.cols) * self.dtype.itemsize
        self.ahead = max(1, min(2 * threads, _AHEAD_BYTES // max(1, row_bytes)))
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="nwb_dsr-inflate") \
            if threads > 0 else None
        self.pending = {}                                     # chunk row -> Future

    def _chunk(self, offset) -> np.ndarray:
        """One stored chunk, decoded: (rows, cols) of the dataset's dtype."""
        mask, raw = self.id.read_direct_chunk(offset)
        if mask:
            raise ValueError("a filter was skipped for this chunk")
        size = self.rows * self.cols * self.dtype.itemsize
        x = None
        for f in self.filters:
            if f == _DEFLATE:
                x = np.empty(size, np.uint8)
                _Inflate.into(raw, x)
            else:   # shuffle: byte j of every element stored together, j = 0 .. itemsize - 1
                b = np.frombuffer(raw, np.uint8) if x is None else x
                if b.size != size:
                    raise ValueError("a chunk decoded to an unexpected size")
                x = b.reshape(self.dtype.itemsize, -1).T.copy()
            raw = x
        return x.reshape(-1).view(self.dtype).reshape(self.rows, self.cols)

    def _decode(self, i: int):
        """Rows of chunk row ``i`` (the last one cut to the dataset's length) of the selected
        columns, or None if they cannot be decoded here."""
        try:
            a = i * self.rows
            m = min(self.n, a + self.rows) - a
            if self.one_d:
                return self._chunk((a,))[:m]
            q0, q1 = self.lo // self.cols, (self.hi - 1) // self.cols
            if q0 == q1:
                x = self._chunk((a, q0 * self.cols))[:m, self.lo - q0 * self.cols:
                                                     self.hi - q0 * self.cols]
            else:
                x = np.empty((m, self.hi - self.lo), dtype=self.dtype)
                for q in range(q0, q1 + 1):
                    c0, c1 = max(self.lo, q * self.cols), min(self.hi, (q + 1) * self.cols)
                    x[:, c0 - self.lo:c1 - self.lo] = self._chunk((a, q * self.cols))[
                        :m, c0 - q * self.cols:c1 - q * self.cols]
            return x if self.pick is None else x[:, self.pick]
        except Exception:  # read through h5py instead, which raises any real error
            return None

    def get(self, i: int):
        """Decoded rows of chunk row ``i`` (see :meth:`_decode`), the next ones queued."""
        if self.pool is None:
            return self._decode(i)
        keep = range(i, min(self.n_rows, i + 1 + self.ahead))
        for j in list(self.pending):
            if j not in keep:                               # a jump: drop what is not needed
                self.pending.pop(j).cancel()
        for j in keep:
            if j not in self.pending:
                self.pending[j] = self.pool.submit(self._decode, j)
        return self.pending.pop(i).result()

    def close(self) -> None:
        for f in self.pending.values():
            f.cancel()
        self.pending.clear()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


class _Source:
    """Block reader of one ElectricalSeries: selected channels, odd extension at the ends.

    Requests are served from a slab of whole HDF5 chunks, converted to the working dtype from
    there: consecutive requests read (and decompress) each chunk once, and each sample is
    copied once, by the conversion. Deflate-compressed chunks are decoded by
    :class:`_ChunkRows` (in worker threads, ahead of the requests, with ``threads`` > 0);
    other data are read through h5py into one reused buffer. :meth:`close` ends the threads.
    """

    def __init__(self, data, cols, work_dtype, name, threads: int = 0):
        self.data, self.name = data, name
        self.n = int(data.shape[0])
        self.one_d = data.ndim == 1
        n_ch = 1 if self.one_d else int(data.shape[1])
        cols = np.asarray(cols, dtype=np.int64)
        self.all = cols.size == n_ch and np.array_equal(cols, np.arange(n_ch))
        self.contig = (not self.all and cols.size > 0
                       and np.array_equal(cols, np.arange(cols[0], cols[0] + cols.size)))
        self.cols, self.width = cols, int(cols.size)
        self.dtype = work_dtype
        self.raw_dtype = np.dtype(data.dtype)
        self.check_nan = self.raw_dtype.kind in "fc"
        self.h5 = isinstance(data, h5py.Dataset)
        chunks = data.chunks if self.h5 else None
        self.align = int(chunks[0]) if chunks else 1
        self.direct = self.h5 and not self.one_d and (self.all or self.contig)
        self._buf = None                   # reused slab buffer (HDF5 reads)
        self._rows = (0, 0, None)          # (first row, end row, raw rows) of the current slab
        lo = 0 if self.one_d or cols.size == 0 else int(cols.min())
        hi = 1 if self.one_d or cols.size == 0 else int(cols.max()) + 1
        pick = None if self.one_d or self.all or self.contig else cols - lo
        self.chunk_rows = _ChunkRows.of(data, lo, hi, pick, threads) if self.h5 else None

    def close(self) -> None:
        """End the decoding threads, if any."""
        if self.chunk_rows is not None:
            self.chunk_rows.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fetch(self, a: int, b: int, buf=None) -> np.ndarray:
        """Raw rows [a, b) of the selected channels; read into ``buf`` where it can be."""
        if self.direct and buf is not None:
            raw = buf[:b - a]
            sel = np.s_[a:b] if self.all else np.s_[a:b, int(self.cols[0]):
                                                  int(self.cols[-1]) + 1]
            self.data.read_direct(raw, source_sel=sel)
            return raw
        if self.one_d:
            return np.asarray(self.data[a:b])[:, None]
        if self.all:
            return np.asarray(self.data[a:b])
        if self.contig:
            return np.asarray(self.data[a:b, int(self.cols[0]):int(self.cols[-1]) + 1])
        return np.asarray(self.data[a:b])[:, self.cols]

    def _finite(self, raw: np.ndarray, a: int) -> np.ndarray:
        """``raw`` (rows from a), after checking a float series has no NaN or inf there."""
        if self.check_nan and not np.isfinite(raw).all():
            r, c = np.argwhere(~np.isfinite(raw))[0]
            raise NWBReadError(f"{self.name} has NaN or infinite samples (first at sample "
                               f"{a + r}, selected channel {c}); read an interval without them, "
                               "or interpolate the gaps before fitting.")
        return raw

    def _rows_into(self, out: np.ndarray, a: int, b: int) -> None:
        """Real rows [a, b) (0 <= a < b <= n) into ``out``, converting the dtype."""
        while a < b:
            s0, s1, raw = self._rows
            if not s0 <= a < s1:             # the chunks holding rows [a, b)
                s0 = a - a % self.align
                raw = None
                if self.chunk_rows is not None:    # one row of chunks, decoded here
                    s1 = min(self.n, s0 + self.align)
                    raw = self.chunk_rows.get(s0 // self.align)
                else:
                    s1 = min(self.n, -(-b // self.align) * self.align)
                if raw is None:
                    if self.direct and (self._buf is None or self._buf.shape[0] < s1 - s0):
                        self._buf = np.empty((s1 - s0, self.width), dtype=self.raw_dtype)
                    raw = self._fetch(s0, s1, self._buf)
                self._rows = (s0, s1, raw)
            k = min(b, s1) - a
            out[:k] = self._finite(raw[a - s0:a - s0 + k], a)
            out, a = out[k:], a + k

    def read_into(self, out: np.ndarray, a: int, b: int) -> None:
        """Write virtual rows [a, b) (odd reflection outside [0, n)) into ``out``."""
        n = self.n
        pos = 0
        if a < 0:
            p = min(b, 0) - a
            head = np.array(self._finite(self._fetch(0, min(n, -a + 1)), 0), dtype=self.dtype)
            ext = np.pad(head, ((-a, 0), (0, 0)), mode="reflect", reflect_type="odd")[:-a]
            out[:p] = ext[:p]
            pos = p
        lo, hi = max(a, 0), min(b, n)
        if hi > lo:
            self._rows_into(out[pos:pos + hi - lo], lo, hi)
            pos += hi - lo
        if b > n:
            q = b - max(a, n)
            t0 = max(0, n - (b - n) - 1)
            tail = np.array(self._finite(self._fetch(t0, n), t0), dtype=self.dtype)
            ext = np.pad(tail, ((0, b - n), (0, 0)), mode="reflect", reflect_type="odd")
            out[pos:pos + q] = ext[tail.shape[0] + (max(a, n) - n):]


def _stream_raw(src: _Source, res, i0: int, k_lo: int, k_hi: int, block: int):
    """Yield ``(k, Y, gain)``: output samples k .. k + len(Y) - 1 of a segment whose output 0
    sits at input i0, in raw units (before conversion to volts), about ``block`` at a time.
    ``Y`` may be a view of a reused buffer; ``gain`` is the filter's DC gain per output (None
    without resampling)."""
    C = src.width
    if res is None:
        buf = np.empty((min(block, k_hi - k_lo), C), dtype=src.dtype)
        for a in range(k_lo, k_hi, block):
            b = min(k_hi, a + block)
            Y = buf[:b - a]
            src.read_into(Y, i0 + a, i0 + b)
            yield a, Y, None
        return
    U, e = res.U, res.extra
    k = k_lo - (k_lo % res.up)            # groups of U outputs start at a multiple of up
    n_groups = -(-(k_hi - k) // U)
    first = i0 + res.first_input(k)
    per = max(1, block // U)              # chunks per step
    X = np.empty((per * res.W, C), dtype=src.dtype)
    acc = np.zeros((per + e, U, C), dtype=src.dtype)
    # chunk j (from `first`) completes group j - e; in a step from chunk j0, acc[0] is group j0 - e
    for j0 in range(0, n_groups + e, per):
        n = min(per, n_groups + e - j0)
        src.read_into(X[:n * res.W], first + j0 * res.W, first + (j0 + n) * res.W)
        res.accumulate(X[:n * res.W], acc[:n + e])
        g0, g1 = max(j0 - e, 0), min(j0 - e + n, n_groups)
        if g1 > g0:
            Y = acc[g0 - j0 + e:g1 - j0 + e].reshape(-1, C)
            ks = k + g0 * U
            lo, hi = max(ks, k_lo), min(ks + Y.shape[0], k_hi)
            yield lo, Y[lo - ks:hi - ks], res.dc_gain(lo, hi - lo)
        acc[:e] = acc[n:n + e]              # partial sums of the next groups
        acc[e:] = 0


def _timebase(es, n: int, label: str):
    """(t0, fs, timestamps or None) of a series; checks timestamps are increasing."""
    ts = es.timestamps
    if ts is None:
        fs = float(es.rate)
        t0 = float(es.starting_time or 0.0)
        if not (math.isfinite(fs) and fs > 0):
            raise NWBReadError(f"{label} has rate={fs!r}; a positive sampling rate is needed.")
        return t0, fs, None
    if hasattr(ts, "timestamps"):  # timestamps linked from another TimeSeries
        ts = ts.timestamps
    t = read_all(ts, float).ravel()
    if t.size != n:
        raise NWBReadError(f"{label} has {t.size} timestamps for {n} samples; the series is "
                           "inconsistent.")
    if n < 2:
        raise NWBReadError(f"{label} has fewer than 2 samples.")
    if not np.all(np.isfinite(t)):
        raise NWBReadError(f"{label} has NaN or infinite timestamps (first at sample "
                           f"{int(np.flatnonzero(~np.isfinite(t))[0])}); fix the timestamps.")
    d = np.diff(t)
    if np.any(d <= 0):
        i = int(np.flatnonzero(d <= 0)[0])
        raise NWBReadError(f"the timestamps of {label} are not strictly increasing (sample "
                           f"{i + 1} at {t[i + 1]:.6g} s follows {t[i]:.6g} s); nwb_dsr needs "
                           "monotonic timestamps: sort or repair them.")
    fs = 1.0 / float(np.median(d))
    return float(t[0]), fs, t


def _check_regular(t, i0: int, i1: int, fs: float, label: str):
    if t is None:
        return
    d = np.diff(t[i0:i1]) * fs
    bad = np.flatnonzero(np.abs(d - 1.0) > 0.5)
    if bad.size:
        i = i0 + int(bad[0])
        raise NWBReadError(f"the timestamps of {label} are irregular (a step of "
                           f"{t[i + 1] - t[i]:.6g} s at {t[i]:.6g} s, for a sampling period of "
                           f"{1 / fs:.6g} s); read gap-free stretches with interval=(t0, t1).")


def read_lfp(source, *, series=None, channels=None, electrodes=None, rate="auto", band="auto",
             notch="auto", n_components="auto", reject="auto", interval=None, trials=None,
             trial_window=None,
             align_to=None, trial_filter=None, zscore=None, preprocess: bool = True,
             chunk_seconds: float = 5.0, filter_order: int = 4,
             threads: int | None = None) -> Observations:
    """Read an ElectricalSeries (LFP, ECoG, EEG) as continuous observations.

    By default (``preprocess=True``) the signal is prepared for dynamical-systems
    reconstruction (:mod:`nwb_dsr.io.preprocess`): band-limited to 0.1–30 Hz, resampled to
    75 Hz, mains (50 or 60 Hz, detected from the spectrum) removed, artefacts (blinks, muscle
    bursts, electrode pops: 1-s windows of more than 4 times a channel's typical peak-to-peak
    amplitude) set aside, reduced to principal components when there are more than 16 channels,
    and z-scored. Every step can be changed by its keyword; ``preprocess=False`` reads the
    samples in volts as stored (each keyword left at ``"auto"`` then does nothing). The choices
    made are recorded in ``obs.provenance["preprocess"]``.

    Parameters
    ----------
    source : str, path-like or pynwb.NWBFile
        An NWB file (opened read-only and closed again), the http(s) URL of one (streamed with
        range requests, see :mod:`nwb_dsr.io.remote`) or an NWBFile already in memory.
    series : str, optional
        Name or path of the ElectricalSeries. Default: found by type: the series in the LFP
        container of /processing (e.g. processing/ecephys/LFP), else the only ElectricalSeries
        in /acquisition or /processing; if several qualify the error lists their paths.
    channels : sequence of int, optional
        Column indices of the series to read (default all).
    electrodes : sequence of int, optional
        Electrode ids (the electrodes table's ``id``) to read instead of ``channels``.
    rate : float, "auto" or None
        Output sampling rate in Hz, at most the series' rate; None keeps the series' rate.
        ``"auto"``: 2.5 × the band's high edge (75 Hz for the default band) with
        ``preprocess``, else the series' rate. The ratio is made rational (denominator
        <= 1000); the exact output rate is ``1 / obs.bin_size``.
    band : (float or None, float or None), "auto" or None
        Band-pass edges in Hz at the output rate (None for a low- or high-pass), applied
        zero-phase (Butterworth of ``filter_order``, forward and backward); None: no band.
        ``"auto"``: (0.1, 30) Hz with ``preprocess`` (the high edge lowered to 0.4 × ``rate``
        for slowly sampled series), else none.
    notch : float, "auto" or None
        Mains frequency in Hz whose harmonics are notched (those the resampling does not
        remove, at the frequencies they alias to); None: no notch. ``"auto"``: detected from
        the spectrum of the raw series (50 or 60 Hz, or none) with ``preprocess``.
    n_components : int, "auto" or None
        Keep this many principal components of the z-scored channels instead of the channels
        (ids become ``"PC1"``, ``"PC2"``, ...). ``"auto"``: with ``preprocess``, and more than
        16 channels, as many components as explain 95 % of the variance (at most 16); None:
        keep the channels.
    reject : float, "auto" or None
        Set aside artefacts: the 1-s windows in which some channel's peak-to-peak amplitude
        exceeds ``reject`` times its median over all windows (on more than 20 channels: at
        least 5 % of the channels), with the clean stretches shorter
        than 4 s left between them (:func:`nwb_dsr.io.preprocess.reject_artefacts`); the
        clean stretches become segments of their own, and with trials a trial holding an
        artefact is dropped. Done on the band-limited signal, before z-scoring, so that
        the scale of the channels is that of the clean signal. ``"auto"``: 4 with
        ``preprocess`` (recordings of at least 20 s; shorter ones are not tested), else none;
        None: keep everything. What was set aside is in
        ``obs.provenance["preprocess"]["reject"]`` (``rejected``: the time intervals) and in
        a warning.
    interval : (float, float), optional
        Time window ``(t0, t1)`` in seconds (default the whole series). With trials, only
        trials inside it are kept.
    trials, trial_window, align_to, trial_filter
        One segment per trial, as in :func:`nwb_dsr.io.read_units`; trials whose window is
        not inside the recording are skipped with a warning.
    zscore : bool, optional
        Z-score each channel (or component) over all segments (the output is then
        dimensionless). Default: ``preprocess``.
    preprocess : bool, default True
        Apply the defaults above; False reads raw volts (``rate``, ``band``, ``notch``,
        ``n_components`` and ``zscore`` left at their defaults do nothing).
    chunk_seconds : float, default 5.0
        Longest read block in seconds of output; bounds the memory used beyond the output
        itself. Blocks are also kept to a few MiB of samples, so that they are filtered while
        still in the processor's cache.
    filter_order : int, default 4
        Order of the Butterworth band-pass.
    threads : int, optional
        Threads decompressing gzip (deflate) HDF5 chunks ahead of the filters, which run in
        the calling thread meanwhile. Default: one per processor core beyond the first, at most
        4 (none on one core); 0 decompresses in the calling thread. The output does not depend
        on it.

    Returns
    -------
    Observations
        ``kind="continuous"``, one (n_samples_k, n_channels) array per segment, in volts
        (``conversion``, ``offset`` and ``channel_conversion`` applied) unless ``zscore``
        (then in standard deviations; with principal components, one column per component);
        float32 for series of 8- or 16-bit integers or float32 (whose precision float32
        holds), else float64, and float64 for principal components; ``bin_size = 1 / output
        rate``; ``start_times`` the time of each segment's first sample minus half a sample,
        so ``obs.times(k)`` are sample times; ``ids`` the electrode ids (column indices if the
        series has no electrodes); ``channel_info`` the electrodes table's scalar columns.

    Raises
    ------
    NWBReadError
        Missing or non-NWB file, extension not installed, no or ambiguous series, bad
        channels, ``rate`` above the series' rate, band outside (0, Nyquist), non-monotonic or
        irregular timestamps, NaN samples, an interval outside the recording.

    Warns
    -----
    NWBReadWarning
        Trials with NaN times or windows outside the recording (skipped); constant channels
        when z-scoring; time set aside as artefacts.

    Notes
    -----
    The data are read in blocks of at most ``chunk_seconds`` (rounded to the HDF5 chunking,
    each chunk read once), so memory is the output plus a few blocks whatever the recording's
    length. Gzip-compressed chunks are decompressed by ``threads`` worker threads (with
    libdeflate where the system has it, else zlib) while the calling thread filters the
    blocks before them.
    A series with ``timestamps`` has them read whole (8 bytes per sample, small next to the
    data); they must be strictly increasing and regular within the segments read. See the
    module docstring for the filters.

    Examples
    --------
    >>> import numpy as np
    >>> from pynwb.testing.mock.file import mock_NWBFile
    >>> from pynwb.testing.mock.ecephys import mock_ElectricalSeries
    >>> from nwb_dsr.io import read_lfp
    >>> nwbfile = mock_NWBFile()
    >>> t = np.arange(2000) / 1000.0
    >>> x = (1000 * np.sin(2 * np.pi * 5 * t)).astype("int16")[:, None].repeat(3, axis=1)
    >>> _ = mock_ElectricalSeries(name="lfp", data=x, rate=1000.0, conversion=1e-6,
    ...                           nwbfile=nwbfile)
    >>> obs = read_lfp(nwbfile, rate=250.0, preprocess=False)
    >>> obs.kind, obs.data[0].shape, obs.bin_size               # (n_samples, n_channels)
    ('continuous', (500, 3), 0.004)
    >>> round(float(obs.data[0][100:400, 0].max()), 4)            # volts
    0.001
    >>> obs = read_lfp(nwbfile)                                   # the defaults
    >>> obs.bin_size, obs.provenance["preprocess"]["band"]
    (0.013333333333333334, [0.1, 30.0])
    """
    chunk = seconds(chunk_seconds, "chunk_seconds")
    interval = check_interval(interval)
    threads = _threads(threads)
    if channels is not None and electrodes is not None:
        raise NWBReadError("give channels (column indices) or electrodes (electrode ids), not "
                           "both.")
    if trials is None and (align_to is not None or trial_filter is not None
                           or trial_window is not None):
        raise NWBReadError("align_to, trial_window and trial_filter apply to trials; pass "
                           "trials=True (or a trial selection) as well.")

    with open_nwb(source) as (nwbfile, label):
        path, es = find_electrical_series(nwbfile, series)
        name = f"{path} in {label}"
        try:
            data = raw_data(es)
            if not hasattr(data, "shape") or data.ndim not in (1, 2):
                raise NWBReadError(f"{name} has data of shape {getattr(data, 'shape', '?')}; "
                                   "an ElectricalSeries needs (n_samples, n_channels).")
            n = int(data.shape[0])
            n_ch = 1 if data.ndim == 1 else int(data.shape[1])
            if n == 0 or n_ch == 0:
                raise NWBReadError(f"{name} is empty (shape {data.shape}).")
            eids, info = _electrodes(es, n_ch)
            cols = _columns(channels, electrodes, eids, n_ch, name)
            t0, fs, ts = _timebase(es, n, name)
            conv = float(es.conversion if es.conversion is not None else 1.0)
            offset = float(getattr(es, "offset", 0.0) or 0.0)
            cc = es.channel_conversion
            cc = np.ones(n_ch) if cc is None else read_all(cc, float).ravel()
            scale = conv * cc[cols]
            rate, band, notch, reject, pre = _resolve_preprocess(preprocess, rate, band, notch,
                                                                 reject, fs, data, cols)
            up, down, fs_out = ratio(rate, fs)
            sos = design_band(band, fs_out, filter_order) if band is not None else None
            notches = [] if notch is None else notch_frequencies(notch, fs, fs_out)
            if notches:
                ns = notch_sos(notches, fs_out)
                sos = ns if sos is None else np.concatenate([sos, ns])
            pre["notch_applied_hz"] = notches
            # segments as input sample ranges [i0, i1)
            segs, rows = _sample_ranges(nwbfile, n, t0, fs, ts, interval, trials,
                                        trial_window, align_to, trial_filter, name)
            for i0, i1 in segs:
                _check_regular(ts, i0, i1, fs, name)
            work = np.float32 if np.dtype(data.dtype).itemsize <= 2 or \
                np.dtype(data.dtype) == np.float32 else np.float64
            res = Resampler(up, down, work) if (up, down) != (1, 1) else None
            step = _step(res, max(64, int(round(chunk * fs_out))), work, cols.size)
            margin = 0 if sos is None else iir_margin(sos, fs_out, limit=int(
                max(1024, 600 * fs_out)))
            out = []
            with _one_blas_thread(), _Source(data, cols, work, name, threads) as src:
                for i0, i1 in segs:
                    out.append(_read_segment(src, res, scale, offset, i0, i1, n, up, down, sos,
                                             margin, step))
        except NWBReadError:
            raise
        except (OSError, KeyError, TypeError, ValueError, AttributeError) as err:
            raise NWBReadError(f"{name} could not be read ({short_error(err)}); check the "
                               "file with nwbinspector.") from err

    bin_size = down / (up * fs)
    starts = [(t0 + i0 / fs if ts is None else ts[i0]) - bin_size / 2 for i0, _ in segs]
    read_rows = rows   # the selection records the trials read, so a re-read drops the same
    if reject is not None:
        out, starts, rows = _reject(out, starts, rows, reject, bin_size, pre, name)
    if zscore is None:
        zscore = bool(preprocess)
    ids, ch_info = eids[cols], {k: v[cols] for k, v in info.items()}
    if n_components == "auto" and not preprocess:
        n_components = None
    if n_components not in (None, "auto") and (isinstance(n_components, bool) or not isinstance(
            n_components, (int, np.integer)) or not 1 <= n_components <= cols.size):
        raise NWBReadError(f"n_components must be 'auto', None or an integer from 1 to the "
                           f"number of channels read ({cols.size}); got {n_components!r}.")
    if zscore or n_components not in (None, "auto") or (
            n_components == "auto" and cols.size > MAX_CHANNELS):
        _zscore(out, ids)
    out, pca = principal_components(out, n_components)
    if pca is not None:
        ids = np.array([f"PC{i + 1}" for i in range(pca["n_components"])])
        ch_info = {}
        if zscore:
            _zscore(out, ids)
    selection = {"channels": cols, "electrode_ids": eids[cols], "interval": interval,
                 "rate": 1.0 / bin_size, "band": band, "zscore": bool(zscore),
                 "notch": notch, "reject": reject,
                 "n_components": None if pca is None else pca["n_components"],
                 "preprocess": bool(preprocess), "trials": read_rows}
    if rows is not None:
        selection.update(align_to=align_to, trial_window=trial_window)
    pre.update(rate=1.0 / bin_size, band=band, notch=notch, zscore=bool(zscore),
               channels_in=int(cols.size), channels_out=len(ids),
               pca=None if pca is None else {k: pca[k] for k in ("n_components",
                                                                 "explained_variance")})
    prov = {"source": label, "object": path, "selection": jsonable(selection),
            "input_rate": fs, "unit": "z-score" if zscore else (
                "principal components of z-scored channels" if pca is not None else "volts"),
            "filter": _filter_text(res, sos, band, filter_order, notches),
            "preprocess": jsonable(pre)}
    if pca is not None:
        prov["pca_components"] = pca["components"]
    return Observations(out, kind="continuous", bin_size=bin_size, start_times=starts,
                        ids=ids, provenance=prov, channel_info=ch_info)


def _reject(out, starts, rows, factor, bin_size, pre, name):
    """Artefact rejection of :func:`read_lfp`: the kept segments, their start times and trial
    rows; records what was set aside in ``pre["reject"]`` and warns about it."""
    try:
        out, starts, origin, rec = reject_artefacts(out, starts, 1.0 / bin_size, factor,
                                                    whole_segments=rows is not None)
    except ValueError as err:
        raise NWBReadError(f"{name}: {err}, so nothing is left to fit; pass reject=None to "
                           "keep the signal as it is, or a larger factor.") from None
    if rows is not None:
        kept = set(origin)
        rec["trials_dropped"] = [r for k, r in enumerate(rows) if k not in kept]
        rows = [rows[k] for k in origin]
    pre["reject"] = rec
    if rec["rejected"]:
        total = rec["kept_s"] + rec["rejected_s"]
        spans = ", ".join(f"{round(a, 1) + 0.0:.1f}–{round(b, 1) + 0.0:.1f} s"
                          for a, b in rec["rejected"][:6])
        more = f" and {len(rec['rejected']) - 6} more" if len(rec["rejected"]) > 6 else ""
        what = (f"{len(rec['trials_dropped'])} trials" if rows is not None else
                f"{rec['rejected_s']:.1f} s of {total:.1f} s")
        on = "" if rec["min_channels"] == 1 else f" on at least {rec['min_channels']} channels"
        rule = (f"{rec['window_s']:g}-s windows whose peak-to-peak amplitude exceeds "
                f"{rec['factor']:g} times the channel's median{on}")
        rule = (f"trials holding {rule}" if rows is not None else
                f"{rule}, and clean stretches shorter than {rec['min_clean_s']:g} s between them")
        warnings.warn(f"{name}: {what} set aside as artefacts ({spans}{more}): {rule}; pass "
                      "reject=None to keep them.", NWBReadWarning, stacklevel=3)
    return out, starts, rows


def _resolve_preprocess(preprocess, rate, band, notch, reject, fs, data, cols):
    """Turn the ``"auto"`` values of :func:`read_lfp` into numbers; returns (rate, band, notch,
    reject, record of how each was chosen)."""
    pre = {"enabled": bool(preprocess), "reject": None}   # filled in by _reject when applied
    if reject is not None and not _is_auto(reject) and (
            isinstance(reject, bool) or not isinstance(reject, (int, float, np.number))
            or not float(reject) > 1.0):
        raise NWBReadError(f"reject must be 'auto', None or a factor above 1 (a multiple of the "
                           f"median peak-to-peak amplitude); got {reject!r}.")
    if not preprocess:
        pre["how"] = "raw: values as stored, in volts unless zscore"
        reject = None if _is_auto(reject) else reject
        return (None if _is_auto(rate) else rate, None if _is_auto(band) else band,
                None if _is_auto(notch) else notch, None if reject is None else float(reject),
                pre)
    how = {}
    if _is_auto(reject):
        reject = REJECT_FACTOR
        how["reject"] = (f"peak-to-peak amplitude above {REJECT_FACTOR:g} x the channel's median "
                         f"in {REJECT_WINDOW:g}-s windows")
    else:
        how["reject"] = "given" if reject is not None else "off (reject=None)"
        reject = None if reject is None else float(reject)
    want_band = DEFAULT_BAND if _is_auto(band) else band
    if _is_auto(rate):
        hi = None if want_band is None else want_band[1]
        rate = fs if hi is None else min(fs, RATE_FACTOR * float(hi))
        how["rate"] = f"{RATE_FACTOR:g} x the band's high edge, at most the series' rate"
    else:
        how["rate"] = "given" if rate is not None else "the series' rate (rate=None)"
    if _is_auto(band):
        r = fs if rate is None else float(rate)
        band, _ = default_band_and_rate(fs, DEFAULT_BAND, r)
        how["band"] = "default"
    else:
        how["band"] = "given"
    if _is_auto(notch):
        notch, ratios = _detect_line(data, cols, fs)
        how["notch"] = "detected from the spectrum" if notch else \
            "none detected" if ratios else "not testable (series' rate too low)"
        pre["line_ratios"] = ratios
    else:
        if notch is not None and not (isinstance(notch, (int, float, np.number)) and
                                      not isinstance(notch, bool) and 0 < float(notch) < fs / 2):
            raise NWBReadError(f"notch must be 'auto', None or a mains frequency in Hz below the "
                               f"Nyquist frequency ({fs / 2:g} Hz); got {notch!r}.")
        notch = None if notch is None else float(notch)
        how["notch"] = "given"
    pre["how"] = how
    return rate, band, notch, reject, pre


def _is_auto(v) -> bool:
    return isinstance(v, str) and v == "auto"


def _detect_line(data, cols, fs, max_rows: int = 1 << 17, max_cols: int = 16):
    """Mains frequency from up to ``max_rows`` samples of up to ``max_cols`` of the selected
    channels taken from the middle of the recording."""
    n = int(data.shape[0])
    if fs < 2 * (min(LINE_FREQUENCIES) + 6):
        return None, {}
    width = 1 if data.ndim == 1 else int(data.shape[1])
    rows = int(min(max_rows, max(4096, (1 << 23) // width)))   # at most ~8M values read
    a = max(0, n // 2 - rows // 2)
    b = min(n, a + rows)
    pick = np.asarray(cols)[np.unique(np.linspace(0, len(cols) - 1, min(len(cols), max_cols))
                                      .round().astype(int))]
    raw = np.asarray(data[a:b])
    raw = raw[:, None] if raw.ndim == 1 else raw[:, pick]
    raw = raw.astype(np.float64)
    if not np.isfinite(raw).all():
        raw = np.nan_to_num(raw)
    return detect_line_frequency(raw, fs)


def _threads(threads) -> int:
    """Decoding threads: ``threads`` checked, or the default for this machine's cores."""
    if threads is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # no affinity on this platform
            cores = os.cpu_count() or 1
        return min(_MAX_THREADS, cores - 1)
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 0:
        raise NWBReadError(f"threads must be None or an integer >= 0 (0: no decoding threads); "
                           f"got {threads!r}.")
    return int(threads)


def _one_blas_thread():
    """Context limiting BLAS to one thread: the resampler runs many small matrix products,
    for which BLAS threads only add synchronisation (several times slower on a busy machine)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it BLAS keeps its own setting
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _filter_text(res, sos, band, order, notches=()) -> str:
    parts = []
    if res is not None:
        parts.append(f"resample_poly FIR x{res.up}/{res.down} (kaiser 5.0, "
                     f"{2 * res.half + 1} taps, zero-phase)")
    if band is not None:
        parts.append(f"butterworth order {order} band {list(band)} Hz, sosfiltfilt (zero-phase)")
    if notches:
        parts.append(f"iirnotch Q 30 at {[round(f, 3) for f in notches]} Hz, sosfiltfilt "
                     "(zero-phase)")
    return "; ".join(parts) or "none"


def _step(res, block: int, dtype, width: int) -> int:
    """Outputs per filter step: at most about ``block``, and few enough that the step's input
    (``width`` channels of ``dtype``) stays within ``_CACHE_BYTES``, so it is still in cache
    when filtered."""
    rows = max(1, _CACHE_BYTES // (np.dtype(dtype).itemsize * width))
    if res is None:
        return min(block, rows)
    fit = max(1, rows * res.up // res.down // res.U)
    return res.U * min(-(-block // res.U), fit)


def _read_segment(src, res, scale, offset, i0, i1, n, up, down, sos, margin, block):
    """One segment, (n_out, channels) of the working dtype (float32 for 16-bit data)."""
    n_out = -(-(i1 - i0) * up // down)
    out = np.empty((n_out, scale.size), dtype=src.dtype)
    if sos is None:
        for k, Y, rs in _stream_raw(src, res, i0, 0, n_out, block):
            dest = out[k:k + Y.shape[0]]
            np.multiply(Y, scale, out=dest)
            if offset:
                dest += offset if rs is None else offset * rs[:, None]
        return out
    # band-pass: context from real samples around the segment, where the recording has them
    k_min = -((i0 * up) // down)                 # outputs at input position >= 0
    k_max = ((n - 1 - i0) * up) // down + 1      # outputs at input position <= n - 1
    k_lo, k_hi = max(-margin, k_min), max(min(n_out + margin, k_max), n_out)

    def volts():
        for _, Y, rs in _stream_raw(src, res, i0, k_lo, k_hi, block):
            y = Y.astype(np.float64)
            y *= scale
            if offset:
                y += offset if rs is None else offset * rs[:, None]
            yield y

    k = k_lo
    for y in filtfilt_stream(volts(), sos, max(margin, 1)):
        a, b = max(k, 0), min(k + y.shape[0], n_out)
        if b > a:
            out[a:b] = y[a - k:b - k]
        k += y.shape[0]
    return out


def _zscore(segs, ids, block: int = 1 << 19) -> None:
    """Z-score each channel over all segments, in place and in row blocks of about ``block``
    values (no full copies); sums in float64 whatever the segments' dtype."""
    rows = max(1, block // max(1, segs[0].shape[1]))
    n = sum(s.shape[0] for s in segs)
    mean = sum(s.sum(axis=0, dtype=np.float64) for s in segs) / n
    var = np.zeros_like(mean)
    for s in segs:
        for a in range(0, s.shape[0], rows):
            var += ((s[a:a + rows] - mean) ** 2).sum(axis=0)
    sd = np.sqrt(var / n)
    flat = sd == 0
    if flat.any():
        warnings.warn(f"channels {np.asarray(ids)[flat][:10].tolist()} are constant; they were "
                      "centred but not scaled by z-scoring.", NWBReadWarning, stacklevel=3)
        sd[flat] = 1.0
    for s in segs:
        for a in range(0, s.shape[0], rows):
            blk = s[a:a + rows]
            blk -= mean
            blk /= sd


def _electrodes(es, n_ch: int):
    """Electrode ids of the series' columns and the electrodes table's scalar columns."""
    region = getattr(es, "electrodes", None)
    if region is None:
        return np.arange(n_ch), {}
    try:
        rows = read_all(region, np.int64).ravel()
        table = region.table
        ids = read_all(table.id)[rows]
        info = {}
        for col in column_names(table):
            values = scalar_column(table, col, len(table))
            if values is not None:
                info[col] = values[rows]
    except Exception:  # metadata only: fall back to column indices
        return np.arange(n_ch), {}
    if ids.size != n_ch:
        return np.arange(n_ch), {}
    return ids, info


def _columns(channels, electrodes, eids, n_ch: int, name: str) -> np.ndarray:
    if electrodes is not None:
        pos = {v: i for i, v in enumerate(np.asarray(eids).tolist())}
        want = list(np.atleast_1d(electrodes).tolist())
        missing = [e for e in want if e not in pos]
        if missing or not want:
            raise NWBReadError(f"electrode ids {missing[:10]} are not among the electrodes of "
                               f"{name} ({np.asarray(eids)[:10].tolist()}"
                               f"{'...' if n_ch > 10 else ''}).")
        return np.asarray([pos[e] for e in want], dtype=np.int64)
    if channels is None:
        return np.arange(n_ch)
    cols = np.atleast_1d(np.asarray(channels))
    if cols.dtype.kind == "b":
        if cols.shape != (n_ch,):
            raise NWBReadError(f"a boolean channel mask needs {n_ch} entries; got {cols.shape}.")
        cols = np.flatnonzero(cols)
    if cols.size == 0 or cols.dtype.kind not in "iu":
        raise NWBReadError(f"channels must be column indices (0..{n_ch - 1}) of {name}; got "
                           f"{channels!r}. Use electrodes=[...] for electrode ids.")
    bad = cols[(cols < 0) | (cols >= n_ch)]
    if bad.size:
        raise NWBReadError(f"channels {bad[:10].tolist()} are out of range: {name} has {n_ch} "
                           f"channels (0..{n_ch - 1}).")
    return cols.astype(np.int64)


def _sample_ranges(nwbfile, n, t0, fs, ts, interval, trials, trial_window, align_to,
                   trial_filter, name):
    """List of input sample ranges [i0, i1) and the trial rows (or None)."""
    t_end = (t0 + n / fs) if ts is None else ts[-1] + 1.0 / fs

    def index(t):  # first sample at or after time t
        if ts is None:
            return int(math.ceil((t - t0) * fs - 1e-6))
        return int(np.searchsorted(ts, t - 1e-6 / fs, side="left"))

    if trials is None:
        if interval is None:
            return [(0, n)], None
        i0, i1 = max(0, index(interval[0])), min(n, index(interval[1]))
        if i1 - i0 < 1:
            raise NWBReadError(f"interval {interval} holds no samples of {name}, which spans "
                               f"{t0:.6g} to {t_end:.6g} s; choose an interval inside it.")
        return [(i0, i1)], None
    tw = trial_windows(nwbfile, trials, trial_window=trial_window, align_to=align_to,
                       trial_filter=trial_filter, interval=interval)
    segs, rows, outside = [], [], 0
    for s, e, r in zip(tw["starts"], tw["stops"], tw["rows"]):
        i0 = index(s)
        length = int(math.floor((e - s) * fs + 1e-6))
        if i0 < 0 or i0 + length > n or s < t0 - 0.5 / fs:
            outside += 1
            continue
        if length < 1:
            continue
        segs.append((i0, i0 + length))
        rows.append(int(r))
    if outside:
        warnings.warn(f"{outside} trial windows are not inside the recording of {name} "
                      f"({t0:.6g} to {t_end:.6g} s) and were skipped.", NWBReadWarning,
                      stacklevel=3)
    if not segs:
        raise NWBReadError(f"no trial window lies inside the recording of {name} ({t0:.6g} to "
                           f"{t_end:.6g} s); check trial_window and align_to.")
    return segs, rows
