"""What nwb_dsr can use in an NWB file: :func:`file_info` and :func:`format_info`.

Read with h5py only: fast on large files, and it works on files whose extension classes are not
installed (those are listed under ``extensions``, with what to install).
"""
from __future__ import annotations

import h5py
import numpy as np

from .._json import jsonable
from ._nwbfile import CORE_NAMESPACES, open_h5
from .errors import NWBReadError

__all__ = ["file_info", "format_info"]

DSR_NAMESPACE = "ndx-dsr"


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return _text(value[()] if value.shape == () else value.ravel()[0])
    return str(value)


def _attr(obj, name, default=None):
    return obj.attrs[name] if name in obj.attrs else default


def _colnames(group) -> list:
    names = _attr(group, "colnames")
    if names is None:
        return []
    return [_text(n) for n in np.atleast_1d(names)]


def _units(f) -> dict | None:
    g = f.get("units")
    if not isinstance(g, h5py.Group):
        return None
    n = int(g["id"].shape[0]) if "id" in g else 0
    out = {"n_units": n, "columns": _colnames(g), "obs_intervals": "obs_intervals" in g,
           "n_spikes": 0, "spikes_per_unit": None, "time_span": None}
    if "spike_times" in g and "spike_times_index" in g and n:
        ends = g["spike_times_index"][()].astype(np.int64)
        starts = np.concatenate([[0], ends[:-1]])
        per = ends - starts
        out["n_spikes"] = int(ends[-1]) if ends.size else 0
        out["spikes_per_unit"] = {"min": int(per.min()), "median": float(np.median(per)),
                                  "max": int(per.max()), "n_empty": int((per == 0).sum())}
        has = per > 0
        if has.any():
            st = g["spike_times"]
            firsts = st[np.unique(starts[has])]
            lasts = st[np.unique(ends[has] - 1)]
            out["time_span"] = [float(np.nanmin(firsts)), float(np.nanmax(lasts))]
    return out


def _trials(f) -> dict | None:
    g = f.get("intervals/trials")
    if not isinstance(g, h5py.Group):
        return None
    n = int(g["id"].shape[0]) if "id" in g else 0
    out = {"n_trials": n, "columns": _colnames(g), "n_nan_stop": 0, "time_span": None}
    if "stop_time" in g and n:
        stop = g["stop_time"][()]
        out["n_nan_stop"] = int(np.isnan(stop).sum())
        start = g["start_time"][()] if "start_time" in g else stop
        if np.isfinite(start).any() and np.isfinite(stop).any():
            out["time_span"] = [float(np.nanmin(start)), float(np.nanmax(stop))]
    return out


def _series(path: str, g) -> dict:
    d = g.get("data")
    out = {"path": "/" + path.lstrip("/"), "neurodata_type": _text(_attr(g, "neurodata_type")),
           "shape": None, "dtype": None, "rate": None, "starting_time": None,
           "duration": None, "conversion": 1.0, "offset": 0.0, "unit": None,
           "channel_conversion": "channel_conversion" in g, "timestamps": "timestamps" in g,
           "chunks": None, "compression": None}
    if isinstance(d, h5py.Dataset):
        out.update(shape=list(d.shape), dtype=str(d.dtype),
                   conversion=float(_attr(d, "conversion", 1.0)),
                   offset=float(_attr(d, "offset", 0.0)),
                   unit=_text(_attr(d, "unit", "")) or None,
                   chunks=list(d.chunks) if d.chunks else None, compression=d.compression)
    n = d.shape[0] if isinstance(d, h5py.Dataset) and d.ndim else 0
    st = g.get("starting_time")
    if isinstance(st, h5py.Dataset):
        out["starting_time"] = float(st[()])
        rate = _attr(st, "rate")
        out["rate"] = None if rate is None else float(rate)
        if out["rate"] and n:
            out["duration"] = n / out["rate"]
    ts = g.get("timestamps")
    if isinstance(ts, h5py.Dataset) and ts.shape and ts.shape[0] >= 2:
        t0, t1 = float(ts[0]), float(ts[-1])
        out["starting_time"] = t0
        if t1 > t0:
            out["rate"] = (ts.shape[0] - 1) / (t1 - t0)
            out["duration"] = t1 - t0 + 1.0 / out["rate"]
    return out


def _walk(f) -> tuple[list, list]:
    """(ElectricalSeries, ndx-dsr objects) found anywhere below the root."""
    series, dynamics = [], []

    def visit(prefix: str, group, depth: int = 0):
        if depth > 12:  # guards against link cycles
            return
        for name, obj in group.items():
            path = f"{prefix}/{name}"
            if not isinstance(obj, h5py.Group):
                continue
            ns = _text(_attr(obj, "namespace", ""))
            ndt = _text(_attr(obj, "neurodata_type", ""))
            if ns == DSR_NAMESPACE and path.startswith("/processing/"):
                parts = path.split("/")
                dynamics.append({"name": name, "neurodata_type": ndt, "module": parts[2],
                                 "path": path})
                continue  # its members belong to it
            if ndt == "ElectricalSeries":
                series.append(_series(path, obj))
                continue
            if path.startswith("/specifications") or path.startswith("/general"):
                continue
            visit(path, obj, depth + 1)

    visit("", f)
    return series, dynamics


def file_info(path) -> dict:
    """Summarise what nwb_dsr can use in an NWB file.

    Parameters
    ----------
    path : str or path-like
        An NWB (HDF5) file, or the http(s) URL of one (streamed with range requests, see
        :mod:`nwb_dsr.io.remote`).

    Returns
    -------
    dict
        JSON-serialisable: ``path``, ``size_bytes``, ``nwb_version``, ``identifier``,
        ``session_description``, ``session_start_time``, ``extensions`` (cached non-core
        namespaces → versions), ``units`` (``n_units``, ``n_spikes``, ``spikes_per_unit``,
        ``time_span``, ``columns``, ``obs_intervals``; None without a Units table),
        ``trials`` (``n_trials``, ``columns``, ``n_nan_stop``, ``time_span``; or None),
        ``electrical_series`` (one dict per ElectricalSeries: ``path``, ``shape``, ``rate``,
        ``dtype``, ``conversion``, ``offset``, ``unit``, ``duration``, ...) and ``dynamics``
        (objects of the ndx-dsr namespace under /processing: ``name``, ``neurodata_type``,
        ``module``, ``path``).

    Raises
    ------
    NWBReadError
        Missing file, not HDF5, not NWB 2, or unreadable.

    Examples
    --------
    >>> import tempfile, os, numpy as np
    >>> from pynwb import NWBHDF5IO
    >>> from pynwb.testing.mock.file import mock_NWBFile
    >>> from nwb_dsr.io import file_info, format_info
    >>> nwbfile = mock_NWBFile()
    >>> nwbfile.add_unit(spike_times=[0.1, 0.2, 3.0])
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "demo.nwb")
    >>> with NWBHDF5IO(path, "w") as io:
    ...     io.write(nwbfile)
    >>> info = file_info(path)
    >>> info["units"]["n_units"], info["units"]["n_spikes"], info["units"]["time_span"]
    (1, 3, [0.1, 3.0])
    >>> print(format_info(info).splitlines()[2])
    units: 1 units, 3 spikes, 0.1-3 s, obs_intervals: no
    >>> tmp.cleanup()
    """
    try:
        with open_h5(path) as (f, label, size):
            info = {
                "path": label,
                "size_bytes": size,
                "nwb_version": _text(_attr(f, "nwb_version", "")),
                "identifier": _text(f["identifier"][()]) if "identifier" in f else None,
                "session_description": (_text(f["session_description"][()])
                                        if "session_description" in f else None),
                "session_start_time": (_text(f["session_start_time"][()])
                                       if "session_start_time" in f else None),
                "extensions": {},
            }
            spec = f.get("specifications")
            if isinstance(spec, h5py.Group):
                info["extensions"] = {n: sorted(g.keys()) for n, g in spec.items()
                                      if n not in CORE_NAMESPACES and isinstance(g, h5py.Group)}
            info["units"] = _units(f)
            info["trials"] = _trials(f)
            info["electrical_series"], info["dynamics"] = _walk(f)
    except NWBReadError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise NWBReadError(f"{path} could not be summarised ({type(err).__name__}: {err}); the "
                           "file may be damaged: check it with nwbinspector.") from err
    return jsonable(info)


def _fmt_span(span) -> str:
    return "no times" if not span else f"{span[0]:.6g}-{span[1]:.6g} s"


def format_info(info: dict) -> str:
    """Human-readable text of a :func:`file_info` dict, one fact per line.

    Parameters
    ----------
    info : dict
        As returned by :func:`file_info`.

    Returns
    -------
    str
        Several lines (no trailing newline).

    Examples
    --------
    >>> from nwb_dsr.io import format_info
    >>> print(format_info({"path": "x.nwb", "nwb_version": "2.7.0", "units": None,
    ...                    "trials": None, "electrical_series": [], "dynamics": []}))
    x.nwb (NWB 2.7.0)
    usable: nothing nwb_dsr can read (no Units, no ElectricalSeries)
    units: none
    trials: none
    electrical series: none
    fitted dynamics (ndx-dsr): none
    """
    lines = [f"{info.get('path', '?')} (NWB {info.get('nwb_version') or '?'})"]
    units, trials = info.get("units"), info.get("trials")
    series, dyn = info.get("electrical_series") or [], info.get("dynamics") or []
    usable = []
    if units and units.get("n_units") and units.get("n_spikes"):
        usable.append("spikes (read_units)")
    if series:
        usable.append("continuous signals (read_lfp)")
    if trials and trials.get("n_trials"):
        usable.append("trials")
    if dyn:
        usable.append("fitted dynamics")
    lines.append("usable: " + (", ".join(usable) if usable else
                               "nothing nwb_dsr can read (no Units, no ElectricalSeries)"))
    if units:
        spu = units.get("spikes_per_unit") or {}
        lines.append(f"units: {units['n_units']} units, {units['n_spikes']} spikes, "
                     f"{_fmt_span(units.get('time_span'))}, obs_intervals: "
                     f"{'yes' if units.get('obs_intervals') else 'no'}")
        if spu.get("n_empty"):
            lines.append(f"  {spu['n_empty']} units have no spikes")
        lines.append(f"  columns: {', '.join(units.get('columns') or []) or '-'}")
    else:
        lines.append("units: none")
    if trials:
        lines.append(f"trials: {trials['n_trials']} trials, {_fmt_span(trials.get('time_span'))}"
                     f", {trials.get('n_nan_stop', 0)} with NaN stop time")
        lines.append(f"  columns: {', '.join(trials.get('columns') or []) or '-'}")
    else:
        lines.append("trials: none")
    if series:
        lines.append(f"electrical series: {len(series)}")
        for s in series:
            rate = f"{s['rate']:g} Hz" if s.get("rate") else "? Hz"
            dur = f", {s['duration']:.6g} s" if s.get("duration") else ""
            lines.append(f"  {s['path']}: shape {tuple(s['shape'] or ())} {s['dtype']} at {rate}"
                         f"{dur}, conversion {s['conversion']:g}"
                         + (f", offset {s['offset']:g}" if s.get("offset") else "")
                         + (", channel_conversion" if s.get("channel_conversion") else ""))
    else:
        lines.append("electrical series: none")
    if dyn:
        lines.append(f"fitted dynamics (ndx-dsr): {len(dyn)}")
        for d in dyn:
            lines.append(f"  {d['path']}: {d['neurodata_type']} (module {d['module']})")
    else:
        lines.append("fitted dynamics (ndx-dsr): none")
    ext = info.get("extensions") or {}
    if ext:
        lines.append("extensions: " + ", ".join(f"{k} {'/'.join(v)}" for k, v in ext.items()))
    size = info.get("size_bytes")
    if size:
        lines.append(f"size: {size / 2**20:.1f} MiB")
    return "\n".join(lines)
