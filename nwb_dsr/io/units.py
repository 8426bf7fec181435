"""NWB Units (sorted spikes) → binned spike counts: :func:`read_units`.

Binning is vectorised: the ragged ``spike_times`` column is read as one array with its index,
each unit's times are located in the segments with :func:`numpy.searchsorted`, assigned to bins
by one division (corrected against the exact bin edges, so counts equal :func:`numpy.histogram`
on edges ``start + k * bin_size``) and counted with :func:`numpy.bincount`.
"""
from __future__ import annotations

import warnings

import h5py
import numpy as np

from .._json import jsonable
from ..observations import Observations
from ._nwbfile import (boolean_column, check_interval, column_names, drop_short,
                       mask_from_callable, n_whole_bins, open_nwb, raw_data, read_all,
                       scalar_column, seconds, short_error, trial_windows)
from .errors import NWBReadError, NWBReadWarning

__all__ = ["read_units", "bin_spike_times"]

#: Units columns that are never copied into ``channel_info``.
_SKIP_COLUMNS = {"spike_times", "obs_intervals", "electrodes", "waveforms", "waveform_mean",
                 "waveform_sd"}
OBS_MODES = ("split", "ignore")


# ---------------------------------------------------------------------------------------------
# binning (pure numpy)
# ---------------------------------------------------------------------------------------------

def bin_spike_times(times, starts, n_bins, bin_size: float) -> np.ndarray:
    """Count spikes in consecutive bins of one or more segments.

    Bins are half-open, ``[start + k * bin_size, start + (k + 1) * bin_size)``; segments may
    overlap (e.g. trial windows) and each counts its own spikes.

    Parameters
    ----------
    times : list of ndarray
        Spike times in seconds of each of ``n_units`` units, each sorted ascending.
    starts : array_like of float, shape (n_segments,)
        Left edge of each segment's first bin, in seconds.
    n_bins : array_like of int, shape (n_segments,)
        Number of bins of each segment (>= 1).
    bin_size : float
        Bin width in seconds.

    Returns
    -------
    ndarray of float32, shape (sum(n_bins), n_units)
        Counts, segments stacked along axis 0 in the given order.

    Examples
    --------
    >>> import numpy as np
    >>> from nwb_dsr.io.units import bin_spike_times
    >>> bin_spike_times([np.array([0.05, 0.15, 0.16, 0.95])], [0.0], [10], 0.1).ravel()
    array([1., 2., 0., 0., 0., 0., 0., 0., 0., 1.], dtype=float32)
    """
    starts = np.asarray(starts, dtype=float).ravel()
    n_bins = np.asarray(n_bins, dtype=np.int64).ravel()
    n_seg = starts.size
    offsets = np.concatenate([[0], np.cumsum(n_bins)])
    total = int(offsets[-1])
    ends = starts + n_bins * bin_size  # == the last edge, computed like every other edge
    n_units = len(times)
    out = np.empty((total, n_units), dtype=np.float32)
    group = 64  # units per transposed write: rows of `group` contiguous values in `out`
    tmp = np.empty((min(group, max(n_units, 1)), total), dtype=np.float32)
    seg_ids = np.arange(n_seg)
    for g0 in range(0, n_units, group):
        g1 = min(n_units, g0 + group)
        for u in range(g0, g1):
            tmp[u - g0] = _count_one(times[u], starts, ends, n_bins, offsets, seg_ids,
                                     bin_size, total)
        out[:, g0:g1] = tmp[:g1 - g0].T
    return out


def _count_one(t, starts, ends, n_bins, offsets, seg_ids, bin_size, total) -> np.ndarray:
    """Counts of one unit's sorted spike times in all segments' bins, shape (total,)."""
    lo = np.searchsorted(t, starts, side="left")
    hi = np.searchsorted(t, ends, side="left")
    cnt = hi - lo
    m = int(cnt.sum())
    if m == 0:
        return np.zeros(total)
    if starts.size == 1:
        tt = t[lo[0]:hi[0]]
        s = starts[0]
        seg = None
    else:
        seg = np.repeat(seg_ids, cnt)
        pos = np.arange(m) + np.repeat(lo - (np.cumsum(cnt) - cnt), cnt)
        tt = t[pos]
        s = starts[seg]
    j = np.floor((tt - s) / bin_size)
    # exact against the edges s + j * bin_size (a division can be off by one at an edge)
    j -= tt < s + j * bin_size
    j += tt >= s + (j + 1) * bin_size
    idx = j.astype(np.int64)
    if seg is None:
        np.clip(idx, 0, total - 1, out=idx)
    else:
        np.clip(idx, 0, n_bins[seg] - 1, out=idx)
        idx += offsets[seg]
    return np.bincount(idx, minlength=total)


# ---------------------------------------------------------------------------------------------
# interval algebra for obs_intervals
# ---------------------------------------------------------------------------------------------

def _merge(iv: np.ndarray) -> np.ndarray:
    """Sorted, non-overlapping union of intervals (k, 2)."""
    iv = np.asarray(iv, dtype=float).reshape(-1, 2)
    iv = iv[np.isfinite(iv).all(1) & (iv[:, 1] > iv[:, 0])]
    if iv.shape[0] == 0:
        return iv
    iv = iv[np.argsort(iv[:, 0], kind="stable")]
    out = [iv[0].copy()]
    for a, b in iv[1:]:
        if a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append(np.array([a, b]))
    return np.asarray(out)


def _intersect(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection of two sorted disjoint interval lists."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i, 0], b[j, 0]), min(a[i, 1], b[j, 1])
        if hi > lo:
            out.append((lo, hi))
        if a[i, 1] < b[j, 1]:
            i += 1
        else:
            j += 1
    return np.asarray(out, dtype=float).reshape(-1, 2)


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------

def _ragged(table, name: str, rows: np.ndarray, dtype=float) -> list:
    """Values of a ragged column for the given rows, read as one array with its index."""
    col = getattr(table, name)
    index = read_all(getattr(table, f"{name}_index"), np.int64)
    starts = np.concatenate([[0], index[:-1]])
    data = raw_data(col)
    sel_starts, sel_ends = starts[rows], index[rows]
    n_sel = int((sel_ends - sel_starts).sum())
    n_all = int(index[-1]) if index.size else 0
    if isinstance(data, h5py.Dataset) and n_sel < 0.5 * n_all:
        # a few units out of a large table: read only their slices
        return [np.asarray(data[a:b], dtype=dtype) for a, b in zip(sel_starts, sel_ends)]
    flat = read_all(col, dtype)
    return [flat[a:b] for a, b in zip(sel_starts, sel_ends)]


def _select_units(table, units, ids: np.ndarray) -> np.ndarray:
    n = ids.size
    if units is None:
        return np.arange(n)
    if isinstance(units, str):
        return np.flatnonzero(boolean_column(table, units, "Units"))
    if callable(units):
        return np.flatnonzero(mask_from_callable(units, table, "Units"))
    try:
        want = np.asarray(list(units))
    except TypeError:
        raise NWBReadError(f"units must be None, a list of unit ids, a boolean column name or a "
                           f"callable; got {units!r}.") from None
    if want.dtype.kind == "b":
        if want.shape != (n,):
            raise NWBReadError(f"a boolean units mask needs one entry per unit ({n}); got shape "
                               f"{want.shape}.")
        return np.flatnonzero(want)
    pos = {v: i for i, v in enumerate(ids.tolist())}
    missing = [u for u in want.tolist() if u not in pos]
    if missing:
        raise NWBReadError(f"unit ids {missing[:10]} are not in the Units table (its ids run "
                           f"{ids[:5].tolist()}{'...' if n > 5 else ''}); give ids from "
                           "the table's id column.")
    return np.asarray([pos[u] for u in want.tolist()], dtype=np.int64)


def _channel_info(table, rows: np.ndarray, n: int) -> dict:
    info = {}
    for name in column_names(table):
        if name in _SKIP_COLUMNS:
            continue
        values = scalar_column(table, name, n)
        if values is not None:
            info[name] = values[rows]
    if "electrodes" in column_names(table):  # location of each unit's first electrode
        try:
            region = table.electrodes
            etable = region.table
            if "location" in column_names(etable):
                loc = scalar_column(etable, "location", len(etable))
                flat = read_all(region, np.int64)
                if hasattr(table, "electrodes_index") and table.electrodes_index is not None:
                    ends = read_all(table.electrodes_index, np.int64)
                    first = np.concatenate([[0], ends[:-1]])
                    has = ends > first
                else:
                    first, has = np.arange(flat.size), np.ones(flat.size, bool)
                out = np.where(has, loc[flat[np.minimum(first, flat.size - 1)]], "")
                info["electrode_location"] = out[rows]
        except Exception:  # an unresolvable region is metadata only: leave it out
            pass
    return info


def read_units(source, bin_size, *, units=None, interval=None, trials=None, trial_window=None,
               align_to=None, trial_filter=None, obs_intervals: str = "split") -> Observations:
    """Bin the spike times of an NWB Units table into counts.

    Parameters
    ----------
    source : str, path-like or pynwb.NWBFile
        An NWB file (opened read-only and closed again), the http(s) URL of one (streamed with
        range requests, see :mod:`nwb_dsr.io.remote`) or an NWBFile already in memory.
    bin_size : float or quantities.Quantity
        Bin width in seconds (or a Quantity in time units). Must be positive and not longer
        than the recording span read.
    units : None, list of ids, str or callable, optional
        Which units (columns) to read: all (None), the given unit ids (in that order), those
        with True in a boolean column of that name, or those for which a callable taking the
        Units table as a :class:`pandas.DataFrame` returns True (e.g.
        ``lambda df: df.quality == "good"``).
    interval : (float, float), optional
        Time window ``(t0, t1)`` in seconds. Without trials, the bins run from ``t0`` in whole
        bins up to ``t1``; with trials, only trials whose window lies inside are kept.
        Default: from the first spike of the selected units (rounded down to a multiple of
        ``bin_size``) to the bin holding the last spike.
    trials : True, "all", list of int, str or callable, optional
        One segment per trial of the trials table (/intervals/trials): all trials (True or
        ``"all"``), the given row indices, the rows with True in a boolean column, or rows
        selected by a callable on the trials DataFrame. Default None: one continuous read.
    trial_window : (float, float), optional
        Window ``(before, after)`` in seconds relative to ``align_to`` (or to each trial's
        start_time when ``align_to`` is None). Default: each trial's [start_time, stop_time).
    align_to : str, optional
        Name of a trials column of event times (e.g. ``"go_cue_time"``) to align windows to;
        needs ``trial_window``. All segments then have the same number of bins.
    trial_filter : str, dict or callable, optional
        Further selection of trials: a boolean column name (e.g. a train/test ``"split"``
        column of booleans), ``{column: value or list of values}`` or a callable on the trials
        DataFrame returning a boolean mask.
    obs_intervals : {"split", "ignore"}, default "split"
        How the Units ``obs_intervals`` column (if present) is used. ``"split"``: only time
        where *all* selected units were observed is analysed: the read span is intersected with
        the intersection of the units' observation intervals, each remaining piece becomes one
        segment (bins never straddle a gap), and trials not entirely observed are dropped with
        a warning. ``"ignore"``: bin as if every unit were observed throughout.

    Returns
    -------
    Observations
        ``kind="counts"``; one (n_bins_k, n_units) array per segment (trial or observed
        piece); ``ids`` are the unit ids; ``start_times`` the left edge of each segment's first
        bin; ``channel_info`` holds the scalar Units columns (e.g. ``location``, ``quality``)
        and ``electrode_location`` when the electrodes are resolvable; ``provenance`` =
        ``{"source": path or "NWBFile:<identifier>", "object": "/units", "selection": {...}}``.

    Raises
    ------
    NWBReadError
        For a missing or non-NWB file, a file whose extension namespace is not installed, no
        or an empty Units table, a bad selection, ``bin_size <= 0`` or longer than the span,
        ``align_to`` without ``trial_window``, or no time left to analyse.

    Warns
    -----
    NWBReadWarning
        Units with no spikes in the analysed time (their columns are all zeros and kept);
        trials with NaN stop or alignment times (skipped); trials or pieces shorter than one
        bin or not fully observed (skipped).

    Examples
    --------
    >>> from pynwb.testing.mock.file import mock_NWBFile
    >>> from nwb_dsr.io import read_units
    >>> nwbfile = mock_NWBFile()
    >>> nwbfile.add_unit(spike_times=[0.01, 0.02, 0.25])
    >>> nwbfile.add_unit(spike_times=[0.11, 0.31])
    >>> obs = read_units(nwbfile, 0.1)
    >>> obs.kind, obs.n_segments, obs.data[0].shape          # (n_bins, n_units)
    ('counts', 1, (4, 2))
    >>> obs.data[0].T.tolist()
    [[2.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]]
    """
    bs = seconds(bin_size, "bin_size")
    interval = check_interval(interval)
    if obs_intervals not in OBS_MODES:
        raise NWBReadError(f"obs_intervals must be one of {OBS_MODES}; got {obs_intervals!r}.")
    if trials is None and (align_to is not None or trial_filter is not None
                           or trial_window is not None):
        raise NWBReadError("align_to, trial_window and trial_filter apply to trials; pass "
                           "trials=True (or a trial selection) as well.")

    with open_nwb(source) as (nwbfile, label):
        table = getattr(nwbfile, "units", None)
        if table is None:
            raise NWBReadError(f"{label} has no Units table (/units), so it holds no sorted "
                               "spikes; use read_lfp for continuous signals, or a file with "
                               "spike-sorted units.")
        n = len(table)
        if n == 0:
            raise NWBReadError(f"the Units table of {label} is empty (0 units); there are no "
                               "spikes to bin.")
        if "spike_times" not in column_names(table):
            raise NWBReadError(f"the Units table of {label} has no spike_times column; "
                               "read_units needs spike times.")
        try:
            ids = read_all(table.id)
            rows = _select_units(table, units, ids)
            if rows.size == 0:
                raise NWBReadError("the unit selection kept no units; relax the selection.")
            times = _ragged(table, "spike_times", rows)
            obs_iv = None
            if obs_intervals == "split" and "obs_intervals" in column_names(table):
                obs_iv = [_merge(v) for v in _ragged(table, "obs_intervals", rows)]
            info = _channel_info(table, rows, n)
            tw = None
            if trials is not None:
                tw = trial_windows(nwbfile, trials, trial_window=trial_window,
                                   align_to=align_to, trial_filter=trial_filter,
                                   interval=interval)
        except NWBReadError:
            raise
        except (OSError, KeyError, TypeError, ValueError) as err:
            raise NWBReadError(f"the Units table of {label} could not be read "
                               f"({short_error(err)}); check the file with nwbinspector."
                               ) from err

    sel_ids = ids[rows]
    for k, t in enumerate(times):
        if t.size and not np.all(np.isfinite(t)):
            raise NWBReadError(f"unit {sel_ids[k]!r} has NaN or infinite spike times; fix the "
                               "Units table or leave the unit out with units=[...].")
        if t.size > 1 and np.any(t[1:] < t[:-1]):
            times[k] = np.sort(t)

    starts, nbins, piece = _segments(times, obs_iv, sel_ids, bs, interval, tw)
    counts = bin_spike_times(times, starts, nbins, bs)
    silent = np.flatnonzero(counts.sum(axis=0) == 0)
    if silent.size:
        warnings.warn(f"{silent.size} of {rows.size} units have no spikes in the analysed time "
                      f"(ids {sel_ids[silent][:10].tolist()}{'...' if silent.size > 10 else ''}"
                      "); their columns are all zeros. Leave them out with units=[...] if they "
                      "should not be modelled.", NWBReadWarning, stacklevel=2)
    bounds = np.cumsum(nbins)[:-1]
    data = np.split(counts, bounds, axis=0) if bounds.size else [counts]
    selection = {"unit_ids": sel_ids, "interval": interval, "bin_size": bs,
                 "obs_intervals": obs_intervals if obs_iv is not None else None,
                 "trials": None if tw is None else tw["rows"][piece]}
    if tw is not None:
        selection.update(align_to=align_to, trial_window=trial_window)
    prov = {"source": label, "object": "/units", "selection": jsonable(selection)}
    return Observations(data, kind="counts", bin_size=bs, start_times=starts, ids=sel_ids,
                        provenance=prov, channel_info=info)


def _segments(times, obs_iv, ids, bs, interval, tw):
    """(starts, n_bins, kept-trial mask) of the segments to bin."""
    if tw is not None:
        starts, stops = tw["starts"], tw["stops"]
        nb, keep = drop_short(starts, stops, bs)
        if obs_iv is not None:
            common = _common_observed(obs_iv, ids)
            pos = np.searchsorted(common[:, 0], starts, side="right") - 1
            inside = (pos >= 0) & (stops <= common[np.maximum(pos, 0), 1])
            lost = keep & ~inside
            if not (keep & inside).any():
                raise NWBReadError("no selected trial lies within time when all selected units "
                                   "were observed (obs_intervals); select fewer units or pass "
                                   "obs_intervals='ignore'.")
            if lost.any():
                warnings.warn(f"{int(lost.sum())} trials are not entirely inside the time when "
                              "all selected units were observed (obs_intervals) and were "
                              "skipped.", NWBReadWarning, stacklevel=3)
            keep &= inside
        return starts[keep], nb[keep], keep

    if obs_iv is not None:
        pieces = _common_observed(obs_iv, ids)
        if interval is not None:
            pieces = _intersect(pieces, np.array([interval], dtype=float))
            if pieces.shape[0] == 0:
                raise NWBReadError(f"no time in interval {interval} was observed for all "
                                   "selected units (obs_intervals); choose another interval, "
                                   "fewer units, or obs_intervals='ignore'.")
        nb = np.array([n_whole_bins(b - a, bs) for a, b in pieces], dtype=np.int64)
        if not (nb >= 1).any():
            raise NWBReadError(f"bin_size={bs:g} s is longer than every observed piece of the "
                               f"recording (longest {float(np.ptp(pieces, 1).max()):g} s); "
                               "choose a smaller bin_size.")
        if (nb < 1).any():
            warnings.warn(f"{int((nb < 1).sum())} observed pieces are shorter than one bin and "
                          "were skipped.", NWBReadWarning, stacklevel=3)
        ok = nb >= 1
        return pieces[ok, 0], nb[ok], np.ones(int(ok.sum()), bool)

    if interval is not None:
        t0, t1 = interval
        if bs > t1 - t0:
            raise NWBReadError(f"bin_size={bs:g} s is longer than the interval ({t1 - t0:g} s); "
                               "choose a smaller bin_size or a longer interval.")
        return np.array([t0]), np.array([n_whole_bins(t1 - t0, bs)]), np.ones(1, bool)

    nonempty = [t for t in times if t.size]
    if not nonempty:
        raise NWBReadError("the selected units have no spikes at all; give interval=(t0, t1) "
                           "to bin them anyway, or select other units.")
    first = min(float(t[0]) for t in nonempty)
    last = max(float(t[-1]) for t in nonempty)
    if bs > last - first:
        raise NWBReadError(f"bin_size={bs:g} s is longer than the recording span of the "
                           f"selected units ({last - first:g} s from first to last spike); "
                           "choose a smaller bin_size.")
    start = np.floor(first / bs) * bs
    nb = int(np.floor((last - start) / bs)) + 1
    if start + nb * bs <= last:  # rounding: make sure the last spike is inside
        nb += 1
    return np.array([start]), np.array([nb]), np.ones(1, bool)


def _common_observed(obs_iv, ids) -> np.ndarray:
    common = None
    for uid, iv in zip(ids, obs_iv):
        if iv.shape[0] == 0:
            raise NWBReadError(f"unit {uid!r} has no observation intervals (obs_intervals is "
                               "empty), so there is no time when all selected units were "
                               "observed; leave it out with units=[...] or pass "
                               "obs_intervals='ignore'.")
        common = iv if common is None else _intersect(common, iv)
        if common.shape[0] == 0:
            raise NWBReadError("the selected units were never all observed at the same time "
                               f"(obs_intervals; the intersection became empty at unit "
                               f"{uid!r}); select fewer units or pass obs_intervals='ignore'.")
    return common
