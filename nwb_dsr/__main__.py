"""``python -m nwb_dsr``: the ``nwb-dsr`` command line (see :mod:`nwb_dsr.cli`)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
