"""nwb_dsr: dynamical-systems reconstruction of neural recordings stored in NWB."""
from .estimator import DSR, NotFittedError
from .observations import Observations

__version__ = "0.1.0"
