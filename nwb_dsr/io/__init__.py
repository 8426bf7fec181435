"""Readers and adapters: NWB Units / ElectricalSeries, neo, elephant and pynapple objects →
:class:`~nwb_dsr.Observations`, and observations → neo AnalogSignal.

- :func:`read_units`: spike times of an NWB Units table → binned counts.
- :func:`read_lfp`: an ElectricalSeries (LFP) → continuous signal in volts, resampled and
  band-passed in bounded memory.
- :func:`from_spiketrains`, :func:`from_neo`, :func:`from_binned_spiketrain`,
  :func:`from_pynapple`: ecosystem objects in; :func:`to_analogsignal`: arrays out.
- :func:`read_source`: either, by name (``"units"`` or ``"lfp"``).
- :func:`file_info` / :func:`format_info`: what nwb_dsr can use in a file.
"""
from .adapters import (from_binned_spiketrain, from_neo, from_pynapple, from_spiketrains,
                       to_analogsignal)
from .errors import NWBReadError, NWBReadWarning
from .info import file_info, format_info
from .lfp import read_lfp
from .sources import read_provenance, read_source
from .units import read_units

__all__ = ["read_units", "read_lfp", "read_source", "read_provenance", "file_info", "format_info", "from_spiketrains", "from_neo",
           "from_binned_spiketrain", "from_pynapple", "to_analogsignal", "NWBReadError",
           "NWBReadWarning"]
