"""Per-chunk inference latency at batch 1: POSSM (recurrent) vs POYO (context window), contexts 1, 5, 20 s.

Data: the reach simulator with 171 units at 5-40 Hz (the unit count and
about the spike rate of the M1 recording, ~3,000 spikes/s). Both models are built at their configuration with
random weights (latency does not depend on training) and run in float64 on
one CPU thread, the way ``ncli decode --stream`` runs them.

- POSSM (default model: 50 ms chunks, 4 latents of width 32, GRU 64, k = 3):
  cost of one :meth:`StreamState.push` (one chunk of spikes in, one prediction
  out), measured after 1 s, 5 s and 20 s of stream: the recurrent state
  summarises the past, so the cost per chunk does not depend on the context.
- POYO (ncli's :class:`POYODecoder`, width chosen so its parameter count is
  the closest to POSSM's): one forward pass over every spike of the context
  window (1 s, 5 s, 20 s) per output chunk, as a POYO-style decoder must do
  to predict causally chunk by chunk. Its latents are kept at 8 whatever the
  context (POYO adds latents as the window grows, so this understates its
  cost).

torch_brain's POYO is not benchmarked: torch_brain 0.2.1 needs torch, ray,
pynwb and pandas in its own environment, which cannot be installed quickly
here (no network beyond the package index, no torch wheel for a second venv).

Usage::

    .venv/bin/python bench/bench_possm.py [--chunks 300] [--contexts 1,5,20]

Prints a table and writes ``bench/results/possm.json`` (p50/p99/mean per chunk
in ms, parameter counts, ratios POYO / POSSM of p50 and mean).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))


def session(duration: float):
    """A simulated 171-unit session as a SpikeSession."""
    from ncli.models.possm import SpikeSession
    from ncli.simulators import ReachSimulator

    ss = ReachSimulator(n_units=171, n_sessions=1, seed=0, rate_range=(5.0, 40.0)).init_params().sample(duration)[0]
    st = np.concatenate(ss.spike_times)
    si = np.concatenate([[0], np.cumsum([len(s) for s in ss.spike_times])]).astype(np.int64)
    T = int(round(duration / 0.05))
    Y = np.zeros((T, 2))
    return SpikeSession("b", np.array([f"b/{u}" for u in ss.ids], dtype=object), st, si, 0.0, 0.05, T, Y)


def stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=300, help="timed chunks per setting")
    ap.add_argument("--contexts", default="1,5,20", help="context lengths (s)")
    args = ap.parse_args()

    import torch

    from ncli.models.neural_decoders import POYODecoder
    from ncli.models.possm import POSSMDecoder, chunk_spikes

    torch.set_num_threads(1)
    contexts = [float(c) for c in args.contexts.split(",")]
    n_warm = 20
    duration = max(contexts) + (args.chunks + n_warm) * 0.05 + 1.0
    sess = session(duration)
    fit_bins = {"b": np.arange(int(max(contexts) / 0.05) + 50)}
    possm = POSSMDecoder(steps=1).fit([sess], fit_bins)
    n_possm = possm.n_parameters()
    # POYO at (about) the same parameter count: choose its width
    poyo = None
    for dim in (24, 32, 40, 48, 56, 64):
        cand = POYODecoder(steps=1, dim=dim, depth=2, n_latents=8, context=1.0).fit([sess], fit_bins)
        if poyo is None or abs(cand.n_parameters() - n_possm) < abs(poyo.n_parameters() - n_possm):
            poyo = cand
    poyo_dim = poyo.dim
    cs = chunk_spikes(sess.spike_times, possm._vocab_index(sess)[0][sess.unit_of_spike()], 0.0, 0.05,
                      sess.n_bins)
    spikes_per_s = sess.spike_times.size / duration
    results = {"machine": platform.processor() or platform.machine(), "threads": 1,
               "units": 171, "spikes_per_s": spikes_per_s, "chunk_s": 0.05,
               "possm": {"parameters": n_possm, "config": possm.get_config(), "contexts": {}},
               "poyo": {"parameters": None, "dim": poyo_dim, "contexts": {}}, "ratio_poyo_over_possm": {},
               "torch_brain": "skipped: torch_brain 0.2.1 needs torch, ray, pynwb, pandas in a separate "
                              "environment that cannot be installed quickly here"}

    for ctx in contexts:
        # POSSM: stream ctx seconds, then time the next chunks one by one
        stream = possm.stream("b", sess.unit_keys)
        start = int(round(ctx / 0.05))
        for j in range(start):
            stream.push(cs.token[cs.ptr[j]:cs.ptr[j + 1]], cs.offset[cs.ptr[j]:cs.ptr[j + 1]])
        lat = []
        for j in range(start, start + n_warm + args.chunks):
            u, o = cs.token[cs.ptr[j]:cs.ptr[j + 1]], cs.offset[cs.ptr[j]:cs.ptr[j + 1]]
            t0 = time.perf_counter()
            stream.push(u, o)
            lat.append((time.perf_counter() - t0) * 1e3)
        results["possm"]["contexts"][f"{ctx:g}s"] = stats(lat[n_warm:])

        # POYO: one forward over the whole context window per chunk
        model = POYODecoder(steps=1, dim=poyo_dim, depth=2, n_latents=8, context=ctx).fit([sess], fit_bins)
        results["poyo"]["parameters"] = model.n_parameters()
        net = model.net()
        prep = model._prepare(sess, None)
        lat = []
        with torch.no_grad():
            for k in range(start, start + n_warm + args.chunks):
                t0 = time.perf_counter()
                model._forward_bins(net, prep, np.array([k]), "cpu")
                lat.append((time.perf_counter() - t0) * 1e3)
        results["poyo"]["contexts"][f"{ctx:g}s"] = {**stats(lat[n_warm:]),
                                                     "tokens_per_prediction": spikes_per_s * ctx}
        a, b = results["possm"]["contexts"][f"{ctx:g}s"], results["poyo"]["contexts"][f"{ctx:g}s"]
        results["ratio_poyo_over_possm"][f"{ctx:g}s"] = {"p50": b["p50_ms"] / a["p50_ms"],
                                                         "mean": b["mean_ms"] / a["mean_ms"]}

    p = results["possm"]["contexts"]
    flat = max(v["p50_ms"] for v in p.values()) / min(v["p50_ms"] for v in p.values())
    results["possm_cost_growth_1s_to_max"] = flat
    print(f"{'context':>8} {'possm p50':>10} {'p99':>8} {'poyo p50':>10} {'p99':>8} {'poyo/possm':>11}")
    for key in p:
        a, b = p[key], results["poyo"]["contexts"][key]
        print(f"{key:>8} {a['p50_ms']:10.3f} {a['p99_ms']:8.3f} {b['p50_ms']:10.3f} {b['p99_ms']:8.3f} "
              f"{results['ratio_poyo_over_possm'][key]['p50']:11.1f}")
    print(f"parameters: possm {n_possm}, poyo {results['poyo']['parameters']} (dim {poyo_dim}); "
          f"{spikes_per_s:.0f} spikes/s; possm p50 max/min over contexts {flat:.2f}")
    out = HERE / "results" / "possm.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
