"""Tiny synthetic store builders for tests (no fixtures hidden in files)."""

from __future__ import annotations

import numpy as np

from ncli.formats.session import BehaviorSeries, UnitsSource, write_session
from ncli.formats.store import StoreWriter


def make_units(n: int, duration: float = 100.0, rate: float = 10.0, seed: int = 0) -> list[np.ndarray]:
    """``n`` sorted homogeneous-Poisson spike trains on [0, duration) s."""
    rng = np.random.default_rng(seed)
    return [np.sort(rng.uniform(0.0, duration, rng.poisson(rate * duration))) for _ in range(n)]


def make_store(location: str, *, n_units: int = 5, duration: float = 100.0, bin_size: float = 0.02,
               sessions: tuple[str, ...] = ("s1",), seed: int = 0) -> str:
    """Write a small convert-like store with spikes, a sine behaviour and a trials table."""
    with StoreWriter(location, command="convert", params={"bin_size": bin_size}) as w:
        for i, sid in enumerate(sessions):
            spikes = make_units(n_units, duration, seed=seed + i)
            ts = np.linspace(0.0, duration, int(duration * 100) + 1)
            write_session(
                w, sid,
                units=UnitsSource(np.array([f"u{k}" for k in range(n_units)]),
                                  np.array(["CA1"] * (n_units // 2) + ["DG"] * (n_units - n_units // 2)),
                                  lambda u, s=spikes: s[u]),
                bin_size=bin_size, t_start=0.0, t_stop=duration,
                behavior={"pos": BehaviorSeries(ts, np.c_[np.sin(ts), np.cos(ts)], unit="cm", columns=["x", "y"])},
                trials={"start_time": np.arange(0.0, duration, 10.0), "stop_time": np.arange(5.0, duration + 5, 10.0)},
            )
    return location
