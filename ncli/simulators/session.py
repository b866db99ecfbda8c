"""The record a simulator returns for one simulated recording (plain arrays, no file access)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SimulatedSession:
    """One simulated recording, as plain arrays.

    Attributes
    ----------
    session_id : str
    ids : (N,) str
        Unit ids ("0", "1", ...).
    areas : (N,) str
        Brain area of each unit.
    spike_times : list of (S_u,) float64
        Sorted spike times (s) of each unit; each spike lies strictly inside its bin.
    counts : (T, N) int32
        Spike counts on the simulation grid.
    latents : (T, K) float64
        True latent state at each bin.
    t_start : float
        Left edge of the first bin (s).
    bin_size : float
        Bin width (s).
    behavior : dict
        ``name -> {"timestamps": (Tb,), "data": (Tb, D), "unit": str, "columns": [..]}``.
    trials : dict
        ``column -> (n_trials,)`` with ``start_time``, ``stop_time``, ``condition``.
    epochs : (1, 2) float64
        The recorded epoch ``[t_start, t_stop]`` (s).
    """

    session_id: str
    ids: np.ndarray
    areas: np.ndarray
    spike_times: list
    counts: np.ndarray
    latents: np.ndarray
    t_start: float
    bin_size: float
    behavior: dict = field(default_factory=dict)
    trials: dict = field(default_factory=dict)
    epochs: np.ndarray | None = None
