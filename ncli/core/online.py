"""The online loop: a chunk clock over time-ordered events, real-time pacing and latency statistics.

An online decoder (or a closed-loop controller) consumes events as they
arrive and acts once per fixed-length *chunk* of time. :func:`run_chunks`
drives any such model through a callable ``push(units, offsets)``; it knows
nothing about the model:

- chunk ``j`` covers ``[t0 + j·chunk, t0 + (j+1)·chunk)``; it is closed (pushed)
  as soon as an event at or after its end arrives, or at the end of the input;
  empty chunks are pushed too (the model's state still advances);
- with ``realtime`` the loop waits until the wall clock reaches each chunk's end
  (measured from the start of the loop), so a recording replays at its own pace;
- the compute time of every ``push`` is recorded (ms); :func:`latency_stats`
  summarises it as p50/p99/max.

Used by ``ncli decode --stream``; the event protocol is :mod:`ncli.formats.events`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np


@dataclass
class ChunkRun:
    """What one online run did.

    Attributes
    ----------
    latencies_ms : list of float
        Compute time of each ``push`` (ms), one per chunk.
    n_outputs : int
        Chunks for which ``push`` returned an output.
    """

    latencies_ms: list = field(default_factory=list)
    n_outputs: int = 0

    @property
    def n_chunks(self) -> int:
        """Chunks pushed."""
        return len(self.latencies_ms)


def run_chunks(events: Iterable[tuple[float, int]], push: Callable, emit: Callable, *, t0: float, chunk: float,
               t_end: float | None = None, realtime: bool = False, chunks_per_output: int = 1) -> ChunkRun:
    """Feed time-ordered events to ``push`` chunk by chunk.

    Parameters
    ----------
    events : iterable of (t, unit)
        Event times (s, non-decreasing) and unit indices; ``unit < 0`` is a clock
        tick (it advances time, no spike). Events before ``t0`` are skipped.
    push : callable
        ``push(units, offsets) -> output or None`` for each chunk in order:
        ``units`` (n,) int64 and ``offsets`` (n,) float64, the spike times minus the
        chunk's end (s, in ``[-chunk, 0)``).
    emit : callable
        ``emit(j, end, output)`` for each chunk ``j`` whose ``push`` returned an
        output; ``end`` is the chunk's end (s).
    t0 : float
        Start of chunk 0 (s).
    chunk : float
        Chunk length (s).
    t_end : float, optional
        End of the input (s): events at or after it are ignored and every chunk up
        to it is closed. Without it, the chunks are closed up to the first whole
        multiple of ``chunks_per_output`` chunks at or after the last event.
    realtime : bool
        Pace the loop by the wall clock (a chunk is pushed no earlier than its end).
    chunks_per_output : int
        Chunks that make one output (the final flush is aligned to it).

    Returns
    -------
    ChunkRun
    """
    run = ChunkRun()
    lat = run.latencies_ms
    state = {"j": 0, "u": [], "t": []}
    wall0 = time.perf_counter()

    def flush_until(t_limit: float) -> None:
        """Close every chunk that ends at or before ``t_limit``."""
        while t0 + (state["j"] + 1) * chunk <= t_limit + 1e-12:
            end = t0 + (state["j"] + 1) * chunk
            if realtime:
                delay = (end - t0) - (time.perf_counter() - wall0)
                if delay > 0:
                    time.sleep(delay)
            tic = time.perf_counter()
            y = push(np.asarray(state["u"], dtype=np.int64), np.asarray(state["t"]) - end)
            lat.append((time.perf_counter() - tic) * 1e3)
            if y is not None:
                emit(state["j"], end, y)
                run.n_outputs += 1
            state["j"] += 1
            state["u"], state["t"] = [], []

    last_t = t0
    for t, u in events:
        if t < t0:
            continue
        if t_end is not None and t >= t_end:
            break
        flush_until(t)
        if u >= 0:
            state["u"].append(u)
            state["t"].append(t)
        last_t = t
    r = chunks_per_output
    flush_until(t_end if t_end is not None else t0 + np.ceil((last_t - t0) / (chunk * r) - 1e-9) * chunk * r)
    return run


def latency_stats(latencies_ms) -> dict:
    """``{"latency_ms_p50", "latency_ms_p99", "latency_ms_max"}`` of per-chunk latencies (None when empty)."""
    lat = list(latencies_ms)
    return {"latency_ms_p50": float(np.percentile(lat, 50)) if lat else None,
            "latency_ms_p99": float(np.percentile(lat, 99)) if lat else None,
            "latency_ms_max": float(np.max(lat)) if lat else None}
