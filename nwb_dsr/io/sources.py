"""Reading by name: ``read_source(path, "units" | "lfp", ...)``, and ``read_provenance`` to
read again the data a fit recorded in its provenance."""
from __future__ import annotations

from ..config import DEFAULT_SPIKE_BIN_SIZE
from ..observations import Observations
from .lfp import read_lfp
from .units import read_units

__all__ = ["read_source", "read_provenance", "SOURCES"]

#: The kinds of recording nwb_dsr reads: spike counts of a Units table, or an LFP series.
SOURCES = ("units", "lfp")


def read_source(path, source: str, *, bin_size: float | None = None, **options) -> Observations:
    """Observations of a recording: :func:`read_units` or :func:`read_lfp` by name.

    Parameters
    ----------
    path : str, path-like or http(s) URL
    source : {"units", "lfp"}
    bin_size : float, optional
        Bin width in seconds: for units the counts' bins (default
        :data:`~nwb_dsr.config.DEFAULT_SPIKE_BIN_SIZE`, 10 ms); for LFP the series is resampled
        to ``1 / bin_size`` Hz (default: the reader's own rate).
    **options
        Further keyword arguments of the reader (``units``, ``channels``, ``interval``,
        ``trials``, ...).

    Returns
    -------
    Observations

    Raises
    ------
    ValueError
        For an unknown ``source``.
    """
    if source == "units":
        return read_units(path, DEFAULT_SPIKE_BIN_SIZE if bin_size is None else bin_size,
                          **options)
    if source == "lfp":
        if bin_size is not None:
            options["rate"] = 1.0 / float(bin_size)
        return read_lfp(path, **options)
    raise ValueError(f"source must be one of {list(SOURCES)}; got {source!r}.")


def read_provenance(provenance: dict, kind: str, bin_size: float, *,
                    search=()) -> Observations:
    """The data a fit was made on, read again with the selection its provenance recorded.

    Parameters
    ----------
    provenance : dict
        A fit's provenance (``DSR.provenance_``): ``source`` (file), ``object`` (path of the
        Units table or ElectricalSeries in it), ``selection`` (the reader's settings: unit ids,
        channels, interval, trials, bin size, rate, preprocessing) and ``input_rate``.
    kind : {"counts", "continuous"}
        The kind of the fitted data (units or LFP).
    bin_size : float
        The fit's bin size in seconds (used when the selection does not record one).
    search : sequence of path-like
        Files to look in first (e.g. a written result, which holds a copy of the source); the
        recorded source file is tried after them.

    Returns
    -------
    Observations

    Raises
    ------
    ValueError
        If the fit was made on an array (no source object), or the object is in none of the
        files.
    """
    import h5py
    from pathlib import Path
    obj = str(provenance.get("object") or "")
    if not obj:
        raise ValueError("this fit stores no source object (it was fitted to an array); "
                         "evaluate it in Python with nwb_dsr.evaluate(estimator, data).")
    candidates = [Path(p) for p in search]
    if provenance.get("source"):
        candidates.append(Path(provenance["source"]))
    for candidate in candidates:
        if candidate.is_file():
            with h5py.File(candidate, "r") as f:
                found = obj in f
            if found:
                return _read_with_selection(candidate, kind, bin_size,
                                            dict(provenance.get("selection") or {}), obj,
                                            provenance.get("input_rate"))
    raise ValueError(f"the source object {obj} was found neither in "
                     f"{', '.join(str(c) for c in search) or 'the given files'} nor in "
                     f"{provenance.get('source') or 'the original file (unknown)'}.")


def _read_with_selection(path, kind, bin_size, selection: dict, obj: str, input_rate=None):
    """Call the reader with the selection it recorded."""
    sel = {k: v for k, v in selection.items() if v is not None}
    if kind == "counts":
        kwargs = {"units": sel.get("unit_ids"), "interval": sel.get("interval"),
                  "trials": sel.get("trials"), "trial_window": sel.get("trial_window"),
                  "align_to": sel.get("align_to")}
        if "obs_intervals" in sel:
            kwargs["obs_intervals"] = sel["obs_intervals"]
        return read_units(path, sel.get("bin_size", bin_size), **kwargs)
    kwargs = {"series": obj, "channels": sel.get("channels"), "interval": sel.get("interval"),
              "zscore": bool(sel.get("zscore", False)), "trials": sel.get("trials"),
              "trial_window": sel.get("trial_window"), "align_to": sel.get("align_to"),
              # the reader's preprocessing as recorded (None values are explicit choices there)
              "preprocess": bool(selection.get("preprocess", False)),
              "band": selection.get("band"), "notch": selection.get("notch"),
              "n_components": selection.get("n_components"),
              # artefact rejection as recorded (fits written before it existed: none)
              "reject": selection.get("reject")}
    rate = sel.get("rate")
    if rate is not None and (input_rate is None or rate < float(input_rate) * (1 - 1e-9)):
        kwargs["rate"] = float(rate)  # only when the fit's data were resampled
    return read_lfp(path, **kwargs)
