"""Shared helpers of the NWB readers: opening files, checking arguments, trial windows.

Private to :mod:`nwb_dsr.io`; the public readers document the behaviour.
"""
from __future__ import annotations

import math
import os
import re
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np


from .errors import NWBFileNotFoundError, NWBReadError, NWBReadWarning

#: Namespaces every NWB file caches; anything else in /specifications is an extension.
CORE_NAMESPACES = ("core", "hdmf-common", "hdmf-experimental")

#: Relative tolerance used when a length in seconds is turned into a whole number of bins.
BIN_EPS = 1e-9


# ---------------------------------------------------------------------------------------------
# arguments
# ---------------------------------------------------------------------------------------------

def seconds(value: Any, name: str, *, positive: bool = True) -> float:
    """A duration in seconds from a float or a ``quantities`` Quantity (rescaled to s)."""
    if hasattr(value, "rescale") and hasattr(value, "magnitude"):
        try:
            value = value.rescale("s").magnitude
        except Exception as err:  # quantities raises ValueError for incompatible units
            raise NWBReadError(f"{name} must be a time; got {value!r}, which cannot be "
                               "converted to seconds. Pass a float in seconds or a "
                               "Quantity in time units (e.g. 10 * pq.ms).") from err
    try:
        out = float(np.asarray(value).item()) if np.ndim(value) == 0 else None
    except (TypeError, ValueError):
        out = None
    if out is None:
        raise NWBReadError(f"{name} must be a number of seconds; got {value!r}.")
    if positive and not (math.isfinite(out) and out > 0):
        raise NWBReadError(f"{name} must be a positive number of seconds; got {out!r}. "
                           "Pass e.g. 0.01 for 10 ms bins.")
    if not math.isfinite(out):
        raise NWBReadError(f"{name} must be a finite number of seconds; got {out!r}.")
    return out


def check_interval(interval, name: str = "interval"):
    """``(t0, t1)`` in seconds with t0 < t1, or None."""
    if interval is None:
        return None
    try:
        t0, t1 = interval
    except (TypeError, ValueError):
        raise NWBReadError(f"{name} must be a pair (t0, t1) of times in seconds; got "
                           f"{interval!r}.") from None
    t0, t1 = (seconds(t0, f"{name}[0]", positive=False), seconds(t1, f"{name}[1]", positive=False))
    if not t1 > t0:
        raise NWBReadError(f"{name} must satisfy t0 < t1; got ({t0}, {t1}). Give the start "
                           "and the end of the time window in seconds.")
    return (t0, t1)


def n_whole_bins(length: float, bin_size: float) -> int:
    """Number of whole bins of ``bin_size`` in ``length`` seconds (tolerant to rounding)."""
    return int(math.floor(length / bin_size + BIN_EPS))


def short_error(err: BaseException, limit: int = 300) -> str:
    """One line describing ``err`` (hdmf's construct errors embed whole builders: trimmed)."""
    text = " ".join(str(err).split())
    m = re.search(r"(Could not construct .*)$", text)
    if m:
        text = m.group(1).rstrip("\"')")
    if len(text) > limit:
        text = text[:limit] + " ..."
    return f"{type(err).__name__}: {text}"


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------

def check_path(source) -> Path:
    """The path of an existing HDF5 NWB 2 file, or one clear :class:`NWBReadError`."""
    from .remote import is_url
    if is_url(source):
        raise NWBReadError(f"{source} is a URL; this operation needs a local NWB file. Download "
                           "it first (nwb_dsr.io.remote.download) and give its path.")
    if not isinstance(source, (str, os.PathLike)):
        raise NWBReadError(f"source must be the path of an NWB file or an open pynwb.NWBFile; "
                           f"got {type(source).__name__}.")
    path = Path(source).expanduser()
    if not path.exists():
        raise NWBFileNotFoundError(f"no file at {path}; check the path of the NWB file.")
    if path.is_dir():
        raise NWBReadError(f"{path} is a directory, not an NWB HDF5 file; nwb_dsr reads NWB "
                           "files stored in HDF5 (.nwb). A Zarr NWB store can be converted with "
                           "hdmf_zarr's NWBZarrIO.export to HDF5.")
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError as err:
        raise NWBReadError(f"cannot open {path}: {err}. Check the file's permissions.") from err
    if not is_hdf5:
        raise NWBReadError(f"{path} is not an HDF5 file, so it cannot be an NWB 2 file; give "
                           "the path of an .nwb file (NWB stored in HDF5).")
    try:
        with h5py.File(path, "r") as f:
            has_version = "nwb_version" in f.attrs
    except OSError as err:
        raise NWBReadError(f"{path} looks like HDF5 but h5py cannot open it ({err}); the file "
                           "may be truncated or still being written. Re-copy or re-export "
                           "it.") from err
    if not has_version:
        raise NWBReadError(f"{path} is an HDF5 file but not an NWB 2 file (its root has no "
                           "'nwb_version' attribute); give an NWB file, or convert NWB 1.x "
                           "files to NWB 2 first.")
    return path


def cached_extensions(path) -> dict:
    """Extension namespaces cached in a file: ``{name: [versions]}`` (core ones left out)."""
    out = {}
    try:
        with h5py.File(path, "r") as f:
            spec = f.get("specifications")
            if isinstance(spec, h5py.Group):
                for name, grp in spec.items():
                    if name in CORE_NAMESPACES:
                        continue
                    out[name] = sorted(grp.keys()) if isinstance(grp, h5py.Group) else []
    except OSError:
        pass
    return out


def _build_error(path: Path, err: BaseException) -> NWBReadError:
    detail = short_error(err)
    ext = cached_extensions(path)
    if ext:
        names = ", ".join(f"{n} {'/'.join(v)}".strip() for n, v in ext.items())
        pip = " ".join(ext)
        mods = ", ".join(f"`import {n.replace('-', '_')}`" for n in ext)
        return NWBReadError(
            f"pynwb could not build the objects in {path} ({detail}). The file uses the NWB "
            f"extension namespace(s) {names}, whose Python classes are not installed: install "
            f"them (`pip install {pip}`) and import them ({mods}) before reading.")
    return NWBReadError(
        f"pynwb could not read {path} ({detail}). The file may be damaged or written by an "
        "incompatible tool; check it with `nwbinspector` or `python -m pynwb.validate`.")


def source_label(nwbfile) -> str:
    """A path (if the NWBFile was read from one) or an identifier for provenance."""
    src = getattr(nwbfile, "container_source", None)
    if src:
        return str(src)
    return f"NWBFile:{getattr(nwbfile, 'identifier', '?')}"


@contextmanager
def open_nwb(source) -> Iterator[tuple]:
    """Yield ``(nwbfile, label)``; a path is opened read-only and closed on exit.

    An :class:`pynwb.NWBFile` is used as is (not closed). Errors while building the file are
    re-raised as :class:`NWBReadError` naming any extension namespace to install.
    """
    from pynwb import NWBFile, NWBHDF5IO

    if isinstance(source, NWBFile):
        yield source, source_label(source)
        return
    from .remote import is_url
    if is_url(source):  # streamed with range requests
        with _open_remote_nwb(source) as opened:
            yield opened
        return
    path = check_path(source)
    try:
        io = NWBHDF5IO(str(path), "r", load_namespaces=True)
    except Exception as err:
        raise _build_error(path, err) from err
    try:
        try:
            nwbfile = io.read()
        except Exception as err:
            raise _build_error(path, err) from err
        yield nwbfile, str(path.resolve())
    finally:
        io.close()


@contextmanager
def _open_remote_nwb(url: str) -> Iterator[tuple]:
    """:func:`open_nwb` for an http(s) URL: pynwb on an h5py file streamed by remfile."""
    from pynwb import NWBHDF5IO

    from .remote import open_url
    with open_url(url) as f:
        try:
            io = NWBHDF5IO(file=f, mode="r", load_namespaces=True)
            nwbfile = io.read()
        except Exception as err:
            raise NWBReadError(f"pynwb could not read the streamed file {url} "
                               f"({short_error(err)}); if it uses NWB extensions, install and "
                               "import their Python classes first.") from err
        try:
            yield nwbfile, url
        finally:
            io.close()


@contextmanager
def open_h5(source) -> Iterator[tuple]:
    """Yield ``(h5py.File, label, size_bytes)`` for a path or an http(s) URL, read-only.

    A path is checked first (:func:`check_path`); a URL is streamed with range requests.
    """
    from .remote import is_url, open_url, remote_size
    if is_url(source):
        size = remote_size(source)
        with open_url(source) as f:
            yield f, source, size
        return
    path = check_path(source)
    with h5py.File(path, "r") as f:
        yield f, str(path.resolve()), path.stat().st_size


# ---------------------------------------------------------------------------------------------
# data access
# ---------------------------------------------------------------------------------------------

def raw_data(obj):
    """The array-like behind a column or series (``obj.data``), with H5DataIO unwrapped.

    An h5py Dataset (file-backed), hdmf's string-dataset wrapper, or a numpy array (data held
    in memory, lists converted).
    """
    from hdmf.data_utils import DataIO

    data = obj if isinstance(obj, (np.ndarray, h5py.Dataset)) else obj.data
    while isinstance(data, DataIO):
        data = data.data
    if isinstance(data, (h5py.Dataset, np.ndarray)) or hasattr(data, "dataset"):
        return data
    return np.asarray(data)


def read_all(obj, dtype=None) -> np.ndarray:
    """The whole of a column / dataset as a numpy array (a fresh one for file data)."""
    data = raw_data(obj)
    if isinstance(data, h5py.Dataset):
        arr = data[()]
    elif isinstance(data, np.ndarray):
        arr = data
    else:  # wrappers such as hdmf's StrDataset
        arr = np.asarray(data[:])
    return arr if dtype is None else np.asarray(arr, dtype=dtype)


def column_names(table) -> list:
    """Column names of an hdmf DynamicTable (ragged columns listed once)."""
    return [str(c) for c in table.colnames]


def is_ragged(table, name: str) -> bool:
    from hdmf.common.table import VectorIndex

    return isinstance(table[name], VectorIndex)


def scalar_column(table, name: str, n: int):
    """A 1-D column of length ``n`` as a numpy array, or None if ragged / multi-dimensional."""
    from hdmf.common.table import DynamicTableRegion

    if is_ragged(table, name):
        return None
    col = table[name]
    if isinstance(col, DynamicTableRegion):
        return None
    data = raw_data(col)
    shape = getattr(data, "shape", None)
    if shape is None or len(shape) != 1 or shape[0] != n:
        return None
    try:
        values = col.data[:] if not isinstance(data, np.ndarray) else data
    except Exception:  # unreadable references etc.
        return None
    values = np.asarray([getattr(v, "name", v) for v in values]) if np.asarray(
        values).dtype == object else np.asarray(values)
    if values.dtype.kind not in "biufUS" and values.dtype != object:
        return None
    if values.dtype.kind == "S":
        values = values.astype(str)
    return values


def boolean_column(table, name: str, what: str) -> np.ndarray:
    """A boolean column (bool, or integers 0/1) of a table as a bool array."""
    cols = column_names(table)
    if name not in cols:
        raise NWBReadError(f"the {what} table has no column {name!r}; its columns are "
                           f"{cols}. Give the name of a boolean column.")
    values = scalar_column(table, name, len(table))
    if values is None:
        raise NWBReadError(f"column {name!r} of the {what} table is not a 1-D column; give the "
                           "name of a boolean column (one True/False per row).")
    if values.dtype.kind == "b":
        return values.astype(bool)
    if values.dtype.kind in "iu" and np.all(np.isin(values, (0, 1))):
        return values.astype(bool)
    raise NWBReadError(f"column {name!r} of the {what} table holds {values.dtype} values, not "
                       "booleans; pass a callable such as lambda df: df[col] == value to "
                       "select rows by value.")


def mask_from_callable(fn, table, what: str) -> np.ndarray:
    """Apply a user callable to the table as a DataFrame; check it returns a boolean mask."""
    n = len(table)
    try:
        df = table.to_dataframe()
    except Exception as err:
        raise NWBReadError(f"the {what} table cannot be turned into a pandas DataFrame "
                           f"({short_error(err)}); select rows by ids or a boolean column "
                           "instead.") from err
    try:
        mask = fn(df)
    except Exception as err:
        raise NWBReadError(f"the {what} selection callable failed on the table as a "
                           f"DataFrame ({short_error(err)}); its columns are "
                           f"{list(df.columns)}.") from err
    mask = np.asarray(mask)
    if mask.shape != (n,) or mask.dtype.kind != "b":
        raise NWBReadError(f"the {what} selection callable must return a boolean mask with one "
                           f"entry per row ({n}); got an array of dtype {mask.dtype} and shape "
                           f"{mask.shape}.")
    return mask


# ---------------------------------------------------------------------------------------------
# trials
# ---------------------------------------------------------------------------------------------

def trial_windows(nwbfile, trials, *, trial_window=None, align_to=None, trial_filter=None,
                  interval=None) -> dict:
    """Time windows ``[start, stop)`` of the selected trials.

    Returns a dict with ``starts``, ``stops`` (float arrays) and ``rows`` (row indices in the
    trials table), in table order. Trials with NaN stop (or NaN alignment) times are dropped
    with a warning that says how many.
    """
    table = getattr(nwbfile, "trials", None)
    if table is None:
        raise NWBReadError("trials were requested but the file has no trials table "
                           "(/intervals/trials); leave trials=None to read the whole "
                           "recording, or give interval=(t0, t1).")
    n = len(table)
    if n == 0:
        raise NWBReadError("the trials table (/intervals/trials) is empty; leave trials=None.")
    keep = np.zeros(n, bool)
    if trials is True or (isinstance(trials, str) and trials == "all"):
        keep[:] = True
    elif isinstance(trials, str):
        keep = boolean_column(table, trials, "trials")
    elif callable(trials):
        keep = mask_from_callable(trials, table, "trials")
    else:
        try:
            idx = np.asarray(list(trials))
        except TypeError:
            raise NWBReadError(f"trials must be True, 'all', a list of trial indices, a boolean "
                               f"column name or a callable; got {trials!r}.") from None
        if idx.dtype.kind == "b":
            if idx.shape != (n,):
                raise NWBReadError(f"a boolean trials mask needs one entry per trial ({n}); "
                                   f"got {idx.shape}.")
            keep = idx
        else:
            if idx.size == 0 or idx.dtype.kind not in "iu":
                raise NWBReadError("trials must list integer trial indices (rows of the "
                                   f"trials table, 0..{n - 1}); got {trials!r}.")
            bad = idx[(idx < 0) | (idx >= n)]
            if bad.size:
                raise NWBReadError(f"trial indices {bad[:10].tolist()} are out of range: the "
                                   f"trials table has {n} rows (0..{n - 1}).")
            keep[idx] = True
    if trial_filter is not None:
        if isinstance(trial_filter, str):
            keep &= boolean_column(table, trial_filter, "trials")
        elif callable(trial_filter):
            keep &= mask_from_callable(trial_filter, table, "trials")
        elif isinstance(trial_filter, dict):
            import pandas as pd

            for col, want in trial_filter.items():
                values = scalar_column(table, col, n) if col in column_names(table) else None
                if values is None:
                    raise NWBReadError(f"trial_filter names column {col!r}, which is not a 1-D "
                                       f"column of the trials table; columns: "
                                       f"{column_names(table)}.")
                want = list(want) if isinstance(want, (list, tuple, set)) else [want]
                keep &= pd.Series(values).isin(want).to_numpy()
        else:
            raise NWBReadError("trial_filter must be a boolean column name, a dict "
                               "{column: value(s)} or a callable taking the trials table as a "
                               f"DataFrame; got {trial_filter!r}.")

    rows = np.flatnonzero(keep)
    if rows.size == 0:
        raise NWBReadError("the trial selection (trials / trial_filter) kept no trials; "
                           "relax the selection.")
    start = read_all(table["start_time"], float)[rows]
    stop = read_all(table["stop_time"], float)[rows]
    if trial_window is not None:
        w = check_interval(trial_window, "trial_window")
    if align_to is not None:
        if trial_window is None:
            raise NWBReadError(f"align_to={align_to!r} needs trial_window=(before, after) in "
                               "seconds relative to that event, e.g. (-0.5, 1.0).")
        if align_to not in column_names(table):
            raise NWBReadError(f"align_to names column {align_to!r}, which the trials table "
                               f"does not have; its columns are {column_names(table)}.")
        ref = scalar_column(table, align_to, n)
        if ref is None or ref.dtype.kind not in "iuf":
            raise NWBReadError(f"align_to column {align_to!r} must hold one event time in "
                               "seconds per trial.")
        ref = ref.astype(float)[rows]
        starts, stops, what = ref + w[0], ref + w[1], f"NaN {align_to!r} times"
    elif trial_window is not None:
        starts, stops, what = start + w[0], start + w[1], "NaN start times"
    else:
        starts, stops, what = start, stop, "NaN start or stop times"
    bad = ~(np.isfinite(starts) & np.isfinite(stops))
    if bad.any():
        warnings.warn(f"{int(bad.sum())} of {rows.size} selected trials have {what} and were "
                      "skipped.", NWBReadWarning, stacklevel=3)
    ok = ~bad
    if interval is not None:
        ok &= (starts >= interval[0]) & (stops <= interval[1])
    if not ok.any():
        raise NWBReadError("no selected trial has a usable time window (finite times"
                           + (f" inside interval {interval}" if interval is not None else "")
                           + "); check the trials table or the selection.")
    return {"starts": starts[ok], "stops": stops[ok], "rows": rows[ok]}


def drop_short(starts, stops, bin_size, what="trials"):
    """Number of whole bins per window; windows shorter than one bin are dropped (warning)."""
    nb = np.floor((stops - starts) / bin_size + BIN_EPS).astype(np.int64)
    short = nb < 1
    if short.all():
        raise NWBReadError(f"every selected {what} window is shorter than one bin "
                           f"(bin_size={bin_size:g} s, longest window "
                           f"{float(np.max(stops - starts)):g} s); choose a smaller bin_size.")
    if short.any():
        warnings.warn(f"{int(short.sum())} {what} windows are shorter than one bin "
                      f"({bin_size:g} s) and were skipped.", NWBReadWarning, stacklevel=4)
    return nb, ~short
