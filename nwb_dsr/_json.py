"""Conversion of nested results (NumPy scalars and arrays, non-finite floats) to JSON values."""
from __future__ import annotations

import math

import numpy as np

__all__ = ["jsonable"]


def jsonable(obj):
    """A JSON-serialisable copy of ``obj``: arrays become lists, NaN/inf become None.

    Examples
    --------
    >>> import numpy as np
    >>> jsonable({"a": np.arange(2), "b": np.float32(float("nan")), 3: (np.int64(1),)})
    {'a': [0, 1], 'b': None, '3': [1]}
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)
