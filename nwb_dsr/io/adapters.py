"""Adapters between the neuroscience Python ecosystem and :class:`~nwb_dsr.Observations`.

In: neo ``SpikeTrain`` lists, ``Segment`` / ``Block`` / ``AnalogSignal``, elephant
``BinnedSpikeTrain``, pynapple ``TsGroup`` / ``TsdFrame`` (plain arrays: use
:meth:`Observations.from_array`). Out: neo ``AnalogSignal`` so elephant can go on from model
outputs. neo, elephant and pynapple are imported inside the functions that need them.

Time conventions: an Observations segment's ``start_times`` entry is the left edge of its first
bin; a neo ``AnalogSignal``'s ``t_start`` is the time of its first sample, taken as the bin
centre. Converting one into the other shifts by half a bin, so round trips keep times.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..observations import Observations
from .._json import jsonable
from ._nwbfile import BIN_EPS, seconds
from .errors import NWBReadError, NWBReadWarning
from .units import bin_spike_times

__all__ = ["from_spiketrains", "from_neo", "from_binned_spiketrain", "from_pynapple",
           "to_analogsignal"]


def _sec(q) -> float:
    """Seconds from a quantities Quantity (or a float already in seconds)."""
    return float(q.rescale("s").magnitude) if hasattr(q, "rescale") else float(q)


def _train_ids(trains) -> np.ndarray:
    for key in ("id", "unit_id", "channel_id"):
        vals = [getattr(st, "annotations", {}).get(key) for st in trains]
        if all(v is not None for v in vals) and len(set(map(str, vals))) == len(vals):
            return np.asarray(vals)
    names = [getattr(st, "name", None) for st in trains]
    if all(names) and len(set(names)) == len(names):
        return np.asarray(names)
    return np.arange(len(trains))


def _bin_trains(trains, bs: float, t_start=None, t_stop=None):
    trains = list(trains)
    if not trains:
        raise NWBReadError("no spike trains given; pass a non-empty list of neo.SpikeTrain.")
    for k, st in enumerate(trains):
        if not (hasattr(st, "times") and hasattr(st, "t_start") and hasattr(st, "t_stop")):
            raise NWBReadError(f"item {k} is a {type(st).__name__}, not a neo.SpikeTrain; pass "
                               "neo.SpikeTrain objects (times with units).")
    t0 = min(_sec(st.t_start) for st in trains) if t_start is None else seconds(
        t_start, "t_start", positive=False)
    t1 = max(_sec(st.t_stop) for st in trains) if t_stop is None else seconds(
        t_stop, "t_stop", positive=False)
    if bs > t1 - t0:
        raise NWBReadError(f"bin_size={bs:g} s is longer than the spike trains' span "
                           f"({t1 - t0:g} s from t_start to t_stop); choose a smaller bin_size.")
    nb = int(np.floor((t1 - t0) / bs + BIN_EPS))
    times = [np.sort(np.asarray(st.times.rescale("s").magnitude, dtype=float).ravel())
             for st in trains]
    return bin_spike_times(times, [t0], [nb], bs), t0


def from_spiketrains(spiketrains, bin_size, *, t_start=None, t_stop=None) -> Observations:
    """Bin a list of neo SpikeTrains into counts.

    Parameters
    ----------
    spiketrains : list of neo.SpikeTrain
        One train per unit (any time units).
    bin_size : float or quantities.Quantity
        Bin width in seconds, or a Quantity in time units.
    t_start, t_stop : float or Quantity, optional
        Span to bin (default: the earliest ``t_start`` and latest ``t_stop`` of the trains).
        Bins are ``[t_start + k * bin_size, t_start + (k + 1) * bin_size)``; a last partial
        bin is left out.

    Returns
    -------
    Observations
        ``kind="counts"``, one segment of shape (n_bins, n_units); ``ids`` from the trains'
        ``id`` / ``unit_id`` annotation or names, else 0..n-1.

    Raises
    ------
    NWBReadError
        An empty list, items that are not SpikeTrains, or ``bin_size`` <= 0 or longer than
        the span.

    Examples
    --------
    >>> import neo, quantities as pq
    >>> from nwb_dsr.io import from_spiketrains
    >>> st = [neo.SpikeTrain([0.05, 0.15, 0.17] * pq.s, t_stop=0.3 * pq.s),
    ...       neo.SpikeTrain([250.0] * pq.ms, t_stop=0.3 * pq.s)]
    >>> obs = from_spiketrains(st, 100 * pq.ms)
    >>> obs.data[0].tolist()                      # (n_bins, n_units)
    [[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]]
    """
    bs = seconds(bin_size, "bin_size")
    trains = list(spiketrains) if not hasattr(spiketrains, "times") else [spiketrains]
    counts, t0 = _bin_trains(trains, bs, t_start, t_stop)
    return Observations([counts], kind="counts", bin_size=bs, start_times=[t0],
                        ids=_train_ids(trains),
                        provenance={"source": "neo.SpikeTrain", "object": None,
                                    "selection": {"n_units": len(trains), "bin_size": bs}})


def _signal_ids(sig) -> np.ndarray:
    ann = getattr(sig, "array_annotations", {}) or {}
    for key in ("channel_ids", "channel_id", "channel_index", "channel_names"):
        if key in ann and len(ann[key]) == sig.shape[1]:
            return np.asarray(ann[key])
    return np.arange(sig.shape[1])


def _analog(signals, bin_size):
    """(array (T, C), bin_size, start of first sample, ids, units) of side-by-side signals."""
    sig0 = signals[0]
    bs = _sec(sig0.sampling_period)
    t0 = _sec(sig0.t_start)
    for s in signals[1:]:
        if (abs(_sec(s.sampling_period) - bs) > 1e-9 * bs or s.shape[0] != sig0.shape[0]
                or abs(_sec(s.t_start) - t0) > 1e-9 * max(1.0, abs(t0))):
            raise NWBReadError("the segment's AnalogSignals differ in sampling rate, start or "
                               "length, so they cannot be put side by side; pass one "
                               "AnalogSignal to from_neo.")
    if bin_size is not None:
        want = seconds(bin_size, "bin_size")
        if abs(want - bs) > 1e-6 * bs:
            raise NWBReadError(f"bin_size={want:g} s differs from the AnalogSignal's sampling "
                               f"period ({bs:g} s); leave bin_size=None, or resample first "
                               "(e.g. elephant.signal_processing or AnalogSignal.downsample).")
    data = np.concatenate([np.asarray(s.magnitude, dtype=float).reshape(s.shape[0], -1)
                           for s in signals], axis=1)
    ids = np.concatenate([_signal_ids(s) for s in signals])
    if len(set(map(str, ids.tolist()))) != ids.size:
        ids = np.arange(data.shape[1])
    units = str(sig0.units.dimensionality)
    return data, bs, t0, ids, units


def _segment_parts(seg, bin_size):
    """('counts' or 'continuous', array, bin_size, first-bin left edge, ids, extra)."""
    trains = list(getattr(seg, "spiketrains", []))
    sigs = [s for s in getattr(seg, "analogsignals", []) if s.shape[0] > 0]
    if trains and (bin_size is not None or not sigs):
        if bin_size is None:
            raise NWBReadError("bin_size is needed to bin the segment's spike trains; pass "
                               "e.g. bin_size=0.01 (seconds) or 10 * pq.ms.")
        bs = seconds(bin_size, "bin_size")
        counts, t0 = _bin_trains(trains, bs)
        return "counts", counts, bs, t0, _train_ids(trains), {}
    if sigs:
        data, bs, t0, ids, units = _analog(sigs, bin_size)
        return "continuous", data, bs, t0 - bs / 2, ids, {"units": units}
    raise NWBReadError("the neo Segment holds no spike trains and no analog signals; there "
                       "is nothing to convert.")


def from_neo(obj, bin_size=None) -> Observations:
    """Observations from a neo Block, Segment, AnalogSignal or SpikeTrain(s).

    Parameters
    ----------
    obj : neo.Block, neo.Segment, neo.AnalogSignal, neo.SpikeTrain or list of SpikeTrain
        A Block gives one segment (trial) per neo Segment. A Segment's spike trains are
        binned into counts when it has any and ``bin_size`` is given (or it has no analog
        signals); otherwise its AnalogSignals (same rate, start and length) are put side by
        side as continuous channels.
    bin_size : float or quantities.Quantity, optional
        Bin width for spike trains (required for them). For analog signals leave it None: the
        sampling period is used (a different value is an error: resample first).

    Returns
    -------
    Observations
        ``kind="counts"`` (spike trains) or ``"continuous"`` (analog signals, in the signals'
        units, recorded in ``provenance["units"]``).

    Raises
    ------
    NWBReadError
        Unsupported object, empty segment, missing ``bin_size`` for spikes, segments of a
        Block with different channels.

    Examples
    --------
    >>> import numpy as np, neo, quantities as pq
    >>> from nwb_dsr.io import from_neo
    >>> sig = neo.AnalogSignal(np.zeros((100, 4)), units="mV", sampling_rate=1 * pq.kHz,
    ...                        t_start=2 * pq.s)
    >>> obs = from_neo(sig)
    >>> obs.kind, obs.data[0].shape, obs.bin_size, float(obs.times(0)[0])
    ('continuous', (100, 4), 0.001, 2.0)
    """
    import neo

    if isinstance(obj, neo.SpikeTrain) or (isinstance(obj, (list, tuple)) and obj
                                          and all(isinstance(s, neo.SpikeTrain) for s in obj)):
        if bin_size is None:
            raise NWBReadError("bin_size is needed to bin spike trains; pass e.g. "
                               "bin_size=0.01 (seconds) or 10 * pq.ms.")
        return from_spiketrains(obj, bin_size)
    if isinstance(obj, neo.AnalogSignal):
        data, bs, t0, ids, units = _analog([obj], bin_size)
        return Observations([data], kind="continuous", bin_size=bs, start_times=[t0 - bs / 2],
                            ids=ids, provenance={"source": "neo.AnalogSignal",
                                                 "object": obj.name, "units": units,
                                                 "selection": {}})
    if isinstance(obj, neo.Segment):
        segs = [obj]
    elif isinstance(obj, neo.Block):
        segs = list(obj.segments)
        if not segs:
            raise NWBReadError("the neo Block has no segments; there is nothing to convert.")
    else:
        raise NWBReadError(f"from_neo takes a neo Block, Segment, AnalogSignal or SpikeTrain "
                           f"(list); got {type(obj).__name__}.")
    parts = [_segment_parts(s, bin_size) for s in segs]
    kinds = {p[0] for p in parts}
    widths = {p[1].shape[1] for p in parts}
    if len(kinds) > 1 or len(widths) > 1:
        raise NWBReadError("the Block's segments hold different kinds or numbers of channels "
                           f"({sorted(kinds)}, {sorted(widths)}); convert segments one by one.")
    kind, _, bs, _, ids, extra = parts[0]
    return Observations([p[1] for p in parts], kind=kind, bin_size=bs,
                        start_times=[p[3] for p in parts], ids=ids,
                        provenance={"source": f"neo.{type(obj).__name__}",
                                    "object": getattr(obj, "name", None), **extra,
                                    "selection": {"n_segments": len(parts)}})


def from_binned_spiketrain(binned, ids=None) -> Observations:
    """Observations from an elephant BinnedSpikeTrain.

    Parameters
    ----------
    binned : elephant.conversion.BinnedSpikeTrain
        Binned spike trains of n_units units.
    ids : sequence, optional
        One id per unit (e.g. the NWB unit ids of the trains that were binned); a
        BinnedSpikeTrain does not keep them. Default 0..n_units-1.

    Returns
    -------
    Observations
        ``kind="counts"``, one segment of shape (n_bins, n_units); ``bin_size`` and the
        segment start from the binned train.

    Examples
    --------
    >>> import neo, quantities as pq
    >>> from elephant.conversion import BinnedSpikeTrain
    >>> from nwb_dsr.io import from_binned_spiketrain
    >>> st = neo.SpikeTrain([0.01, 0.02, 0.31] * pq.s, t_stop=0.4 * pq.s)
    >>> obs = from_binned_spiketrain(BinnedSpikeTrain([st, st], bin_size=0.1 * pq.s))
    >>> obs.data[0].shape, obs.data[0][:, 0].tolist()
    ((4, 2), [2.0, 0.0, 0.0, 1.0])
    >>> from_binned_spiketrain(BinnedSpikeTrain([st, st], bin_size=0.1 * pq.s), ids=[7, 9]).ids
    array([7, 9])
    """
    if not (hasattr(binned, "to_array") and hasattr(binned, "bin_size")):
        raise NWBReadError(f"from_binned_spiketrain takes an elephant BinnedSpikeTrain; got "
                           f"{type(binned).__name__}.")
    counts = np.asarray(binned.to_array()).T
    if ids is not None and len(ids) != counts.shape[1]:
        raise NWBReadError(f"ids has {len(ids)} entries but the BinnedSpikeTrain holds "
                           f"{counts.shape[1]} units; give one id per unit.")
    bs = _sec(binned.bin_size)
    return Observations([counts], kind="counts", bin_size=bs, ids=ids,
                        start_times=[_sec(binned.t_start)],
                        provenance={"source": "elephant.BinnedSpikeTrain", "object": None,
                                    "selection": {"bin_size": bs}})


def _import_pynapple():
    try:
        import pynapple
    except ImportError as err:
        raise ImportError("from_pynapple needs pynapple, which is not installed: "
                          "`pip install pynapple`.") from err
    return pynapple


def from_pynapple(obj, bin_size=None) -> Observations:
    """Observations from a pynapple TsGroup (spike times) or TsdFrame / Tsd (signals).

    Parameters
    ----------
    obj : pynapple.TsGroup, pynapple.TsdFrame or pynapple.Tsd
        A TsGroup is binned into counts, one segment per epoch of its ``time_support``; a
        TsdFrame / Tsd gives continuous channels, one segment per epoch.
    bin_size : float or quantities.Quantity, optional
        Bin width in seconds: required for a TsGroup. For a TsdFrame, None keeps its sampling
        (which must be regular); a value averages it into bins with ``bin_average``.

    Returns
    -------
    Observations
        ``ids`` are the TsGroup keys (``channel_info`` its metadata columns) or the TsdFrame
        columns.

    Raises
    ------
    ImportError
        If pynapple is not installed (``pip install pynapple``).
    NWBReadError
        Missing ``bin_size`` for a TsGroup, irregular sampling, unsupported objects.

    Examples
    --------
    >>> import numpy as np, pynapple as nap
    >>> from nwb_dsr.io import from_pynapple
    >>> group = nap.TsGroup({1: nap.Ts(t=np.array([0.05, 0.15, 0.16])),
    ...                      7: nap.Ts(t=np.array([0.25, 0.28]))},
    ...                     time_support=nap.IntervalSet(0, 0.3))
    >>> obs = from_pynapple(group, bin_size=0.1)
    >>> obs.ids.tolist(), obs.data[0].tolist()
    ([1, 7], [[1.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    """
    nap = _import_pynapple()
    if isinstance(obj, nap.TsGroup):
        if bin_size is None:
            raise NWBReadError("bin_size is needed to bin a TsGroup; pass e.g. bin_size=0.01 "
                               "(seconds).")
        bs = seconds(bin_size, "bin_size")
        ep = obj.time_support
        starts, ends = np.asarray(ep.start, float), np.asarray(ep.end, float)
        nb = np.floor((ends - starts) / bs + BIN_EPS).astype(np.int64)
        if not (nb >= 1).any():
            raise NWBReadError(f"bin_size={bs:g} s is longer than every epoch of the TsGroup's "
                               "time_support; choose a smaller bin_size.")
        if (nb < 1).any():
            warnings.warn(f"{int((nb < 1).sum())} epochs are shorter than one bin and were "
                          "skipped.", NWBReadWarning, stacklevel=2)
        ok = nb >= 1
        keys = list(obj.keys())
        times = [np.sort(np.asarray(obj[k].t, float)) for k in keys]
        counts = bin_spike_times(times, starts[ok], nb[ok], bs)
        data = np.split(counts, np.cumsum(nb[ok])[:-1], axis=0)
        info = {}
        meta = getattr(obj, "metadata", None)
        if meta is not None:
            for col in meta.columns:
                vals = np.asarray(meta[col])
                if vals.ndim == 1 and vals.size == len(keys):
                    info[str(col)] = vals
        return Observations(data, kind="counts", bin_size=bs, start_times=starts[ok],
                            ids=np.asarray(keys), channel_info=info,
                            provenance={"source": "pynapple.TsGroup", "object": None,
                                        "selection": {"bin_size": bs}})
    if isinstance(obj, (nap.TsdFrame, nap.Tsd)):
        if bin_size is not None:
            obj = obj.bin_average(seconds(bin_size, "bin_size"))
        ids = (np.asarray(obj.columns) if isinstance(obj, nap.TsdFrame) else np.arange(1))
        segs, starts, bs = [], [], None
        for s, e in zip(np.asarray(obj.time_support.start), np.asarray(obj.time_support.end)):
            part = obj.get(s, e)
            t = np.asarray(part.t, float)
            if t.size == 0:
                continue
            if t.size > 1:
                d = np.diff(t)
                step = float(np.median(d))
                if np.any(np.abs(d - step) > 1e-3 * step):
                    raise NWBReadError("the pynapple signal is not regularly sampled; pass "
                                       "bin_size= to average it into regular bins.")
                if bs is not None and abs(step - bs) > 1e-6 * bs:
                    raise NWBReadError("the epochs of the pynapple signal have different "
                                       "sampling rates; pass bin_size= to resample them.")
                bs = step if bs is None else bs
            segs.append(np.asarray(part.values, float).reshape(t.size, -1))
            starts.append(t[0])
        if bs is None:
            raise NWBReadError("the pynapple signal has fewer than two samples per epoch; "
                               "there is no sampling rate to use.")
        return Observations(segs, kind="continuous", bin_size=bs,
                            start_times=np.asarray(starts) - bs / 2, ids=ids,
                            provenance={"source": f"pynapple.{type(obj).__name__}",
                                        "object": None, "selection": {}})
    raise NWBReadError(f"from_pynapple takes a TsGroup, TsdFrame or Tsd; got "
                       f"{type(obj).__name__}.")


def to_analogsignal(data, bin_size=None, t_start=0.0, units="dimensionless", name=None,
                    annotations=None):
    """Arrays (or Observations) → neo AnalogSignal(s), for elephant and neo tools.

    Parameters
    ----------
    data : ndarray, list of ndarray, or Observations
        One (n_samples, n_channels) array (a 1-D array is one channel), a list of them (one
        signal per segment), or an :class:`~nwb_dsr.Observations` (one signal per segment,
        its bin size, times and ids).
    bin_size : float or quantities.Quantity, optional
        Sampling period in seconds; required for arrays.
    t_start : float, Quantity or list, default 0.0
        Time of the first sample of the (first) signal. With a list of arrays, a scalar makes
        the segments consecutive; a list gives one start per segment. For Observations the
        segments' bin centres are used.
    units : str or quantities.Quantity, default "dimensionless"
        Units of the values (e.g. ``"V"``, ``"Hz"``).
    name : str, optional
        Name of the signal(s).
    annotations : dict, optional
        Annotations added to each signal (``signal.annotations``).

    Returns
    -------
    neo.AnalogSignal or list of neo.AnalogSignal
        One signal for one array; a list for a list or an Observations.

    Examples
    --------
    >>> import numpy as np
    >>> from nwb_dsr.io import to_analogsignal
    >>> sig = to_analogsignal(np.zeros((50, 3)), bin_size=0.01, units="V", name="rates",
    ...                       annotations={"model": "plrnn"})
    >>> sig.shape, float(sig.sampling_rate.rescale("Hz").magnitude), sig.annotations["model"]
    ((50, 3), 100.0, 'plrnn')
    """
    import neo
    import quantities as pq

    ann = dict(annotations or {})
    if isinstance(data, Observations):
        bs = data.bin_size if bin_size is None else seconds(bin_size, "bin_size")
        arrays = list(data.data)
        starts = [float(s) + bs / 2 for s in data.start_times]
        ids = np.asarray(data.ids)
        ann.setdefault("kind", data.kind)
        if data.provenance:
            ann.setdefault("provenance", jsonable(data.provenance))
        single = False
    else:
        if bin_size is None:
            raise NWBReadError("bin_size (the sampling period, seconds) is needed to turn "
                               "arrays into AnalogSignals.")
        bs = seconds(bin_size, "bin_size")
        single = not isinstance(data, (list, tuple))
        arrays = [data] if single else list(data)
        if not arrays:
            raise NWBReadError("data is an empty list; give at least one array.")
        arrays = [np.asarray(a) for a in arrays]
        for k, a in enumerate(arrays):
            if a.ndim not in (1, 2):
                raise NWBReadError(f"array {k} has {a.ndim} dimensions; give (n_samples, "
                                   "n_channels) arrays.")
        arrays = [a[:, None] if a.ndim == 1 else a for a in arrays]
        if isinstance(t_start, (list, tuple, np.ndarray)):
            starts = [seconds(t, "t_start", positive=False) for t in t_start]
            if len(starts) != len(arrays):
                raise NWBReadError(f"t_start has {len(starts)} entries for {len(arrays)} "
                                   "arrays; give one per array or a scalar.")
        else:
            t = seconds(t_start, "t_start", positive=False)
            starts = []
            for a in arrays:
                starts.append(t)
                t += a.shape[0] * bs
        ids = None
    out = []
    for a, t0 in zip(arrays, starts):
        sig = neo.AnalogSignal(np.asarray(a), units=units, sampling_period=bs * pq.s,
                               t_start=t0 * pq.s, name=name)
        if ids is not None:
            sig.array_annotate(channel_ids=ids)
        if ann:
            sig.annotate(**ann)
        out.append(sig)
    return out[0] if single else out
