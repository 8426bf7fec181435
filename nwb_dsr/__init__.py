"""nwb_dsr: dynamical-systems reconstruction of neural recordings stored in NWB.

Read spikes or LFP from NWB into :class:`Observations`, fit a latent RNN by sparsely forced BPTT
with :class:`DSR`, check it with :func:`evaluate` and :func:`lyapunov_spectrum`, and write the
fitted dynamics back into NWB with :func:`write_dynamics` (read them back with
:func:`read_dynamics`). :func:`sweep` runs fits over many sessions, seeds and settings on Ray
Tune.

The readers do not need torch: names that do (the estimator, analysis, write-back) are imported
on first use, so ``nwb_dsr.read_lfp`` stays light on memory.
"""
from __future__ import annotations

import importlib

from .io import (NWBReadError, file_info, format_info, from_binned_spiketrain, from_neo,
                 from_pynapple, from_spiketrains, read_lfp, read_units, to_analogsignal)
from .observations import Observations

__version__ = "0.1.0"

_LAZY = {
    "DSR": "estimator", "NotFittedError": "estimator",
    "evaluate": "analysis", "prediction_error": "analysis", "co_bps": "analysis",
    "ensemble_summary": "analysis",
    "lyapunov_spectrum": "analysis", "lyapunov_max_data": "analysis", "choose_tau": "policies",
    "DSRConfig": "config", "EvaluationProtocol": "protocol",
    "state_space_divergence": "analysis", "power_spectrum_distance": "analysis",
    "CollapseWarning": "collapse", "detect_collapse": "collapse",
    "write_dynamics": "nwb", "read_dynamics": "nwb", "list_dynamics": "nwb",
    "read_results": "nwb",
    "sweep": "sweeps", "SweepResult": "sweeps",
}
_SUBMODULES = ("analysis", "collapse", "config", "datasets", "estimator", "io", "metrics",
               "models", "nwb", "policies", "protocol", "sweeps", "training")

__all__ = ["Observations", "read_units", "read_lfp", "file_info", "format_info",
           "from_spiketrains", "from_neo", "from_binned_spiketrain", "from_pynapple",
           "to_analogsignal", "NWBReadError", *_LAZY, "__version__"]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'nwb_dsr' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))
