"""nwb_dsr: dynamical-systems reconstruction of neural recordings stored in NWB.

Read spikes or LFP from NWB into :class:`Observations`, fit a latent RNN by sparsely forced BPTT
with :class:`DSR`, check it with :func:`evaluate` and :func:`lyapunov_spectrum`, and write the
fitted dynamics back into NWB with :func:`write_dynamics` (read them back with
:func:`read_dynamics`).
"""
__version__ = "0.1.0"

from .observations import Observations  # noqa: E402
from .estimator import DSR, NotFittedError  # noqa: E402
from .io import (NWBReadError, file_info, from_binned_spiketrain, from_neo, from_pynapple,  # noqa: E402
                 from_spiketrains, read_lfp, read_units, to_analogsignal)
from .analysis import (choose_tau, co_bps, evaluate, lyapunov_max_data, lyapunov_spectrum,  # noqa: E402
                       power_spectrum_distance, prediction_error, state_space_divergence)
from .nwb import list_dynamics, read_dynamics, write_dynamics  # noqa: E402
from . import datasets  # noqa: E402

__all__ = ["Observations", "DSR", "NotFittedError", "read_units", "read_lfp", "file_info",
           "from_spiketrains", "from_neo", "from_binned_spiketrain", "from_pynapple",
           "to_analogsignal", "NWBReadError", "evaluate", "prediction_error", "co_bps",
           "lyapunov_spectrum", "lyapunov_max_data", "choose_tau", "state_space_divergence",
           "power_spectrum_distance", "write_dynamics", "read_dynamics", "list_dynamics",
           "datasets", "__version__"]
