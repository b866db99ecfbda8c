"""What ``ncli align`` hands its methods, and the shuffle controls they share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ncli.formats.store import Store
from ncli.methods.registry import Method
from ncli.methods.results import Job


@dataclass
class AlignRun:
    """What the command hands an align method: the opened input and the common options.

    Attributes
    ----------
    src : Store
    sessions : list of str
    seed : int
    device : str
        ``cpu``, ``cuda`` or ``auto``.
    """

    src: Store
    sessions: list
    seed: int = 0
    device: str = "cpu"


class AlignMethod(Method):
    """Base of the align methods: :meth:`check` before the input is read, :meth:`job` after."""

    command = "align"

    def check(self) -> None:
        """Cross-option rules, before any data is read (UsageError)."""

    def job(self, run: AlignRun) -> Job:
        """The aligned layer of ``run.src`` (not yet written)."""
        raise NotImplementedError


def shuffle_labels(Y: np.ndarray, rows: np.ndarray, how: str, seed: int) -> np.ndarray:
    """Control labels: ``Y`` with its ``rows`` permuted in time or circularly shifted.

    Parameters
    ----------
    Y : (T, D) array
    rows : (T,) bool
        Rows that are shuffled among themselves (the training rows).
    how : {"shuffle-behavior", "shuffle-time"}
        A random permutation of the rows, or a circular shift by a random
        offset between 25 % and 75 % of their number.
    seed : int

    Returns
    -------
    (T, D) array
        A copy; rows outside ``rows`` are unchanged.
    """
    rng = np.random.default_rng([int(seed), 7])
    idx = np.flatnonzero(rows)
    out = Y.copy()
    if how == "shuffle-behavior":
        out[idx] = Y[idx[rng.permutation(idx.size)]]
    else:
        shift = int(rng.integers(max(1, idx.size // 4), max(2, 3 * idx.size // 4)))
        out[idx] = Y[np.roll(idx, shift)]
    return out
