"""String arrays: one representation for the variable-length strings of a store."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_str_array(data: Any) -> np.ndarray:
    """Any array of strings (numpy U/O or StringDType) as a fixed-width numpy str array."""
    data = np.asarray(data)
    if data.dtype.kind == "U":
        return data
    return np.asarray(data.astype(object), dtype=str)
