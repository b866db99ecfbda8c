"""NuCLR benchmark: training throughput (windows/s), peak memory, and probe accuracy.

Simulates the ``ncli simulate nuclr`` setting (4 training sessions and 3
unseen sessions of 300 s, easy and hard variants), trains NuCLR with the
command's defaults on the training sessions, embeds the unseen sessions
zero-shot and probes cell type and region (leave-one-session-out), beside the
hand-crafted features baseline. Peak memory is the process's maximum resident
set size (CPU) and ``torch.cuda.max_memory_allocated`` on a GPU. Writes
bench/results/nuclr.json.

Usage: ``python bench/bench_nuclr.py [--steps N] [--batch-size B] [--device cpu|cuda|auto] [--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ncli.core.unit_features import unit_features  # noqa: E402
from ncli.methods.harness import evaluate_units as probe_units  # noqa: E402
from ncli.models.nuclr import NuCLR, rankme, retrieval_top1  # noqa: E402
from ncli.simulators import NuclrSimulator  # noqa: E402


def counts(sess: dict, bin_size: float = 0.02) -> np.ndarray:
    edges = np.arange(int(sess["duration"] / bin_size) + 1) * bin_size
    return np.stack([np.histogram(s, edges)[0] for s in sess["spike_times"]], 1).astype(np.float32)


def run(hard: bool, steps: int, batch_size: int, device: str, duration: float) -> dict:
    import torch

    train = NuclrSimulator(n_sessions=4, duration=duration, hard=hard, seed=0).init_params().sample()
    test = NuclrSimulator(n_sessions=3, duration=duration, hard=hard, seed=1).init_params().sample()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    model = NuCLR(steps=steps, batch_size=batch_size, seed=0, device=device).fit([counts(s) for s in train])
    fit_s = time.perf_counter() - t0
    E = [model.transform(counts(s)) for s in test]
    F = [unit_features(s["spike_times"], s["duration"])[0] for s in test]
    H, _ = model.transform_windows(counts(test[0]))
    half = len(H) // 2
    out = {"hard": hard, "steps": steps, "batch_size": batch_size, "fit_s": fit_s, "windows_per_s": model.windows_per_s_,
           "final_loss": float(model.loss_history_[-20:].mean()), "retrieval_top1": retrieval_top1(H[0], H[1]),
           "retrieval_top1_halves": retrieval_top1(H[:half].mean(0), H[half:].mean(0)),
           "rankme": rankme(np.vstack(E)), "embedding_dim": model.d_model}
    for key, name in (("cell_type", "type"), ("areas", "region")):
        for label, X in (("nuclr", E), ("features", F)):
            m = probe_units(X, [s[key] for s in test])[1]
            out[f"{label}_{name}_balanced_accuracy"] = m["balanced_accuracy"]
            out[f"{label}_{name}_macro_f1"] = m["macro_f1"]
    if torch.cuda.is_available() and device != "cpu":
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return out


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=NuCLR().steps)
    ap.add_argument("--batch-size", type=int, default=NuCLR().batch_size)
    ap.add_argument("--duration", type=float, default=300.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(HERE / "results" / "nuclr.json"))
    args = ap.parse_args()
    results = {"device": args.device, "torch_threads": torch.get_num_threads(),
               "runs": [run(h, args.steps, args.batch_size, args.device, args.duration) for h in (False, True)]}
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2), file=sys.stderr)


if __name__ == "__main__":
    main()
