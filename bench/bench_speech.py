"""Sequence decoders on CPU: tmt vs gru-ctc, training throughput, decode and adaptation time, memory, FLOPs.

Data: ``ncli simulate speech`` (SpeechSimulator defaults: 32 electrodes -> 64 features, 24 phonemes
+ separator, 20 ms bins, a random walk of day-specific feature mixing), ``--trials`` sentences per
day, days 0-4 to train (the last 20 % of each held in), days 5-7 held out. Both models at the
defaults of ``ncli decode --method tmt|gru-ctc`` (tmt: d 64, 2 blocks, patch 5; gru-ctc: 2 x 128,
patch 14, stride 4) with the same number of steps and batch size (equal budget in steps).

Measured (one torch thread):

- training throughput: trials per second of training (``steps x batch / seconds``);
- per-trial decode time (greedy, one forward pass per trial) and per-trial adaptation time
  (tmt ``--adapt``: one step on 64 copies), median over the held-out trials;
- peak resident memory of a fresh process for each model (``ru_maxrss`` of a child that trains
  and decodes), in MiB;
- FLOPs per second of input: :class:`torch.utils.flop_counter.FlopCounterMode` of one forward pass
  over a 5 s trial, divided by 5;
- PER held-in / held-out (greedy) and, for tmt, held-out with adaptation; the last day separately.

Usage::

    .venv/bin/python bench/bench_speech.py [--trials 100] [--steps 800]

Prints a table and writes ``bench/results/speech.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


def data(n_trials: int, seed: int = 0):
    from ncli.core.sequences import encode
    from ncli.simulators.speech import SpeechSimulator

    sim = SpeechSimulator(n_trials=n_trials, seed=seed).init_params()
    out = {}
    for s in sim.sample():
        X = s.counts.astype(np.float64)
        X = ((X - X.mean(0)) / X.std(0)).astype(np.float32)
        a = np.round(s.trials["start_time"] / s.bin_size).astype(int)
        b = np.round(s.trials["stop_time"] / s.bin_size).astype(int)
        refs = [str(p) for p in s.trials["phonemes"]]
        out[s.session_id] = ([X[i:j] for i, j in zip(a, b)], refs, [encode(r, sim.vocabulary) for r in refs],
                             (b - a) * s.bin_size)
    return sim.vocabulary, out


def make(kind: str, steps: int, **kw):
    from ncli.models.tmt import GRUCTCDecoder, TMTDecoder

    return (TMTDecoder if kind == "tmt" else GRUCTCDecoder)(steps=steps, seed=0, **kw)


def flops_per_second(model, n_features: int, seconds: float = 5.0, bin_size: float = 0.02) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    net = model.net()
    x = torch.zeros(1, round(seconds / bin_size), n_features)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        net(x, None, torch.zeros(1, dtype=torch.long))
    return fc.get_total_flops() / seconds


def run_one(kind: str, n_trials: int, steps: int) -> dict:
    import torch

    from ncli.core.sequences import decode_ids, error_rates

    torch.set_num_threads(1)
    vocab, d = data(n_trials)
    n_fit = int(0.8 * n_trials)
    train = [f"day{i}" for i in range(5)]
    X, Y, D = [], [], []
    for s in train:
        X += d[s][0][:n_fit]
        Y += d[s][2][:n_fit]
        D += [s] * n_fit
    model = make(kind, steps)
    t0 = time.perf_counter()
    model.fit(X, Y, D)
    train_s = time.perf_counter() - t0

    def per(day, idx, ids):
        return error_rates([d[day][1][i] for i in idx], [decode_ids(p, vocab) for p in ids], "|")["per"]

    res = {"model": kind, "n_parameters": model.n_parameters(), "train_seconds": train_s,
           "train_trials_per_second": steps * model.batch / train_s,
           "flops_per_second_of_input": flops_per_second(model, X[0].shape[1])}
    held_in = []
    for s in train:
        idx = list(range(n_fit, n_trials))
        held_in.append(per(s, idx, model.predict([d[s][0][i] for i in idx], [s] * len(idx))))
    res["per_held_in"] = float(np.mean(held_in))
    times, held_out = [], {}
    for s in ("day5", "day6", "day7"):
        for x in d[s][0]:
            t = time.perf_counter()
            model.predict([x], [s])
            times.append(time.perf_counter() - t)
        held_out[s] = per(s, range(n_trials), model.predict(d[s][0], [s] * n_trials))
    res["per_held_out"] = float(np.mean(list(held_out.values())))
    res["per_held_out_by_day"] = held_out
    res["decode_ms_per_trial_p50"] = 1e3 * float(np.median(times))
    dur = np.concatenate([d[s][3] for s in ("day5", "day6", "day7")])
    res["real_time_factor"] = float(np.sum(times) / dur.sum())
    if kind == "tmt":
        timings, adapted = [], {}
        for s in ("day5", "day6", "day7"):
            ids = model.adapt(d[s][0], [s] * n_trials, timings=timings)
            adapted[s] = per(s, range(n_trials), ids)
        res["per_held_out_adapted_by_day"] = adapted
        res["per_held_out_adapted"] = float(np.mean(list(adapted.values())))
        res["adapt_ms_per_trial_p50"] = 1e3 * float(np.median([t[1] for t in timings]))
    res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--one", choices=("tmt", "gru-ctc"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:  # child process: one model, so its peak memory is its own
        print(json.dumps(run_one(args.one, args.trials, args.steps)))
        return 0
    results = {"machine": platform.platform(), "python": platform.python_version(), "trials_per_day": args.trials,
               "steps": args.steps, "batch": 16, "models": {}}
    for kind in ("tmt", "gru-ctc"):
        out = subprocess.run([sys.executable, __file__, "--one", kind, "--trials", str(args.trials), "--steps",
                              str(args.steps)], capture_output=True, text=True, check=True)
        results["models"][kind] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{'model':8s} {'params':>8s} {'train tr/s':>10s} {'decode ms':>9s} {'MFLOP/s':>8s} {'MiB':>6s} "
          f"{'PER in':>7s} {'PER out':>7s} {'adapted':>7s}")
    for kind, r in results["models"].items():
        print(f"{kind:8s} {r['n_parameters']:8d} {r['train_trials_per_second']:10.1f} "
              f"{r['decode_ms_per_trial_p50']:9.2f} {r['flops_per_second_of_input'] / 1e6:8.1f} "
              f"{r['peak_rss_mib']:6.0f} {100 * r['per_held_in']:6.1f}% {100 * r['per_held_out']:6.1f}% "
              f"{(100 * r['per_held_out_adapted']) if 'per_held_out_adapted' in r else float('nan'):6.1f}%")
    out = HERE / "results" / "speech.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
