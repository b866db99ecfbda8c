"""The one conversion of Python/numpy values to JSON-friendly values (store attributes, history, cache keys).

Used by the store writer (:mod:`ncli.formats.store`), by models saving their
attributes (:meth:`ncli.models.base.Estimator.to_group`), by ``ncli info
--json`` and by the run cache's key.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def jsonable(value: Any, *, numpy_nonfinite_to_none: bool = False) -> Any:
    """A JSON-friendly copy of ``value``.

    Dicts (keys as ``str``), lists and tuples (as lists) and numpy arrays (via
    ``tolist``) are converted element by element; numpy scalars become their
    Python value; a non-finite Python float becomes ``None``; ``None``, ``str``,
    ``int``, ``float`` and ``bool`` are kept; an enum becomes its ``value``;
    anything else (paths, ...) its ``str``.

    Parameters
    ----------
    value : Any
    numpy_nonfinite_to_none : bool
        Also turn a non-finite *numpy* float scalar into ``None`` (and pass
        every numpy scalar through the same rules as Python values), as saved
        models do. By default a numpy scalar becomes ``value.item()`` as is
        (``np.float64('inf')`` stays ``inf``), as store attributes, history
        and cache keys have been written since ncli 0.1.0. The two differ only
        for numpy scalars outside arrays; both are kept so that nothing a store
        holds changes.

    Returns
    -------
    Any
        Built from dict, list, str, int, float, bool and None.
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v, numpy_nonfinite_to_none=numpy_nonfinite_to_none) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, numpy_nonfinite_to_none=numpy_nonfinite_to_none) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist(), numpy_nonfinite_to_none=numpy_nonfinite_to_none)
    if isinstance(value, np.generic):
        value = value.item()
        if not numpy_nonfinite_to_none:
            return value
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "value") and isinstance(getattr(value, "value"), (str, int)):
        return value.value  # enums
    return str(value)
