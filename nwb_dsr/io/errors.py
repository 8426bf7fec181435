"""Errors and warnings raised by the :mod:`nwb_dsr.io` readers.

Every problem with an input file or argument surfaces as one :class:`NWBReadError` (a
:class:`ValueError`) whose message is a sentence naming the problem and what to do. Errors from
h5py, hdmf or pynwb are chained (``raise ... from err``) so the original traceback is kept below
the clear message. Where the data remain usable the readers warn with :class:`NWBReadWarning`.
"""
from __future__ import annotations

__all__ = ["NWBReadError", "NWBFileNotFoundError", "NWBReadWarning"]


class NWBReadError(ValueError):
    """An NWB input (file, object or argument) that nwb_dsr cannot read as asked.

    Examples
    --------
    >>> from nwb_dsr.io import NWBReadError
    >>> issubclass(NWBReadError, ValueError)
    True
    """


class NWBFileNotFoundError(NWBReadError, FileNotFoundError):
    """The path given as an NWB file does not exist (also a :class:`FileNotFoundError`)."""


class NWBReadWarning(UserWarning):
    """Data were read, but part of the input was skipped or is suspicious (for example trials
    with NaN stop times, or a unit with no spikes)."""
