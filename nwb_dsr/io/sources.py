"""One entry point for both kinds of recording: ``read_source(path, "units" | "lfp", ...)``."""
from __future__ import annotations

from ..config import DEFAULT_SPIKE_BIN_SIZE
from ..observations import Observations
from .lfp import read_lfp
from .units import read_units

__all__ = ["read_source", "SOURCES"]

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
