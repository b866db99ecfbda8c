"""The one layout of torch weights in a store: ``<model group>/weights/<parameter>``, one array each.

A ``state_dict`` entry ``encoder.unit_emb.weight`` is the array
``weights/encoder__unit_emb__weight`` (dots become ``__``, since a dot in a
Zarr name would read as a path), so a saved network is inspectable with zarr
alone and needs no pickle. POSSM, POYO, GRU and NuCLR save this way, as
ncli 0.1.0 did. CANDY keeps its own layout (per-session ``encoders/<session>``
arrays of a numpy forward pass, and the LDS matrices ``A_``, ``C_``, ...):
those are what its ``transform`` reads, and stores written by 0.1.0 hold them.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ncli.core.errors import DataError
from ncli.models.base import read_arrays, write_arrays

#: What a dot in a parameter name becomes in its array name.
SEP = "__"


def state_to_arrays(state: Mapping) -> dict[str, np.ndarray]:
    """A torch ``state_dict`` as numpy arrays (copies, on the CPU), names unchanged.

    Parameters
    ----------
    state : mapping name -> torch.Tensor

    Returns
    -------
    dict name -> ndarray
    """
    return {k: v.detach().cpu().numpy().copy() for k, v in state.items()}


def arrays_to_state(arrays: Mapping) -> dict:
    """Numpy arrays as a ``state_dict`` of tensors (the inverse of :func:`state_to_arrays`)."""
    import torch

    return {k: torch.as_tensor(np.asarray(v)) for k, v in arrays.items()}


def save_weights(group, weights: Mapping[str, np.ndarray], path: str = "weights") -> int:
    """Write named weight arrays into ``group/path``, one array per parameter.

    Parameters
    ----------
    group : zarr.Group
        The model's (writable) group.
    weights : mapping name -> ndarray
        Parameter name (``a.b.c``) to values, e.g. :func:`state_to_arrays` of a module.
    path : str
        Subgroup name.

    Returns
    -------
    int
        Number of scalars written (the parameter count).
    """
    write_arrays(group, path, {k.replace(".", SEP): v for k, v in weights.items()})
    return int(sum(np.asarray(v).size for v in weights.values()))


def load_weights(group, path: str = "weights") -> dict[str, np.ndarray]:
    """Read the weights written by :func:`save_weights` (also every store written by ncli 0.1.0).

    Parameters
    ----------
    group : zarr.Group
    path : str

    Returns
    -------
    dict name -> ndarray
        Parameter names with their dots restored.

    Raises
    ------
    KeyError
        ``group`` has no ``path`` subgroup.
    """
    return {k.replace(SEP, "."): v for k, v in read_arrays(group[path]).items()}


def save_strings(group, name: str, values: Sequence[str]) -> None:
    """Write a (n,) array of strings (a vocabulary) as one chunk.

    Parameters
    ----------
    group : zarr.Group
    name : str
    values : sequence of str
    """
    arr = group.create_array(name, shape=(len(values),), dtype=str, chunks=(max(1, len(values)),),
                             overwrite=True)
    if len(values):
        data = np.asarray(list(values))
        arr[...] = data if data.dtype.kind == "U" else np.asarray(data.astype(object), dtype=str)


def load_strings(group, name: str) -> np.ndarray:
    """Read an array written by :func:`save_strings` as a (n,) object array of ``str``."""
    return np.array([str(x) for x in group[name][...]], dtype=object)


def rebuild_network(build, name: str):
    """Build a restored model's network from its loaded weights (``build()``), or refuse in one line.

    Raises
    ------
    DataError
        The weights do not fit the saved configuration (a shape or a name mismatch).
    """
    try:
        return build()
    except (RuntimeError, KeyError) as exc:
        raise DataError(f"saved {name} weights do not match its configuration: {exc}") from None
