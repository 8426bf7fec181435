"""The ndx-dsr NWB extension: its YAML specification and the script that generates it.

The YAML files next to this module (``ndx-dsr.namespace.yaml``, ``ndx-dsr.extensions.yaml``) are
shipped in the wheel and loaded by :mod:`nwb_dsr.nwb` at import. Regenerate them with
``python -m nwb_dsr.spec.create_extension_spec`` after editing that script.
"""
from pathlib import Path

SPEC_DIR = Path(__file__).resolve().parent
NAMESPACE = "ndx-dsr"
NAMESPACE_FILE = f"{NAMESPACE}.namespace.yaml"

__all__ = ["SPEC_DIR", "NAMESPACE", "NAMESPACE_FILE"]
