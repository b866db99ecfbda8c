"""CANDY benchmark: training time per epoch and unified decoder R², beside CEBRA multi-session.

Datasets: the candy simulator (4 sessions x 2,000 bins, 0.05 s) and the two
monkeys' reaching sessions in ../shared/data/monkey_reach_sessions (4 sessions,
0.1 s bins) when present. Both methods see the same features (sqrt counts
smoothed as in the align settings, z-scored on the training bins), the same
split (first 80 % of each session trains, last 20 % is held out) and the same
unified ridge decoder (:func:`ncli.models.candy.unified_decoder_r2`).

CEBRA is never a dependency of ncli. It runs in a separate interpreter given by
``$CEBRA_PYTHON`` (default ``/tmp/cebra-venv/bin/python``; made with
``python -m venv /tmp/cebra-venv``, a ``.pth`` file pointing at this project's
site-packages so that its CPU torch is reused, then ``pip install cebra``).
When that interpreter cannot import cebra the comparison is skipped with the
reason in the results. Writes bench/results/candy.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from ncli.core.features import smooth, sqrt_counts  # noqa: E402
from ncli.models.candy import CANDY, pca_baseline_r2, unified_decoder_r2  # noqa: E402
from ncli.simulators import CandySimulator  # noqa: E402

CEBRA_PYTHON = os.environ.get("CEBRA_PYTHON", "/tmp/cebra-venv/bin/python")
CEBRA_ITERATIONS = int(os.environ.get("CEBRA_ITERATIONS", "2000"))

CEBRA_SCRIPT = r"""
import json, sys, time
import numpy as np
import cebra
d = np.load(sys.argv[1])
S = int(d["n_sessions"])
Xs = [d[f"X{i}"].astype("float32") for i in range(S)]
ys = [d[f"y{i}"].astype("float32") for i in range(S)]
tr = [d[f"train{i}"] for i in range(S)]
m = cebra.CEBRA(model_architecture="offset10-model", batch_size=512, learning_rate=3e-4,
                temperature=1.0, output_dimension=int(d["dim"]), max_iterations=int(d["iterations"]),
                distance="cosine", conditional="time_delta", time_offsets=10, device="cpu",
                verbose=False)
t0 = time.perf_counter()
m.fit([X[t] for X, t in zip(Xs, tr)], [y[t] for y, t in zip(ys, tr)])
fit_s = time.perf_counter() - t0
out = {f"Z{i}": m.transform(Xs[i], session_id=i) for i in range(S)}
np.savez(sys.argv[2], fit_s=fit_s, version=cebra.__version__, **out)
"""


def features(counts, bin_size, smooth_s):
    X = sqrt_counts(counts)
    return smooth(X, smooth_s, bin_size) if smooth_s > 0 else X


def split(n, frac=0.8):
    tr = np.arange(n) < int(frac * n)
    return tr, ~tr


def simulated():
    sessions = CandySimulator(n_sessions=4, n_bins=2000, seed=0).init_params().sample()
    Xs = [features(s["counts"], 0.05, 0.15) for s in sessions]
    return Xs, [s["velocity"] for s in sessions], dict(dim=8, state_dim=4, epochs=10, refit_steps=300)


def monkeys():
    from scipy.io import loadmat

    root = ROOT.parent / "shared" / "data" / "monkey_reach_sessions"
    if not root.exists():
        return None
    Xs, Ys = [], []
    for name in ("chewie_demo.mat", "mihi_demo.mat"):
        d = loadmat(root / name)
        for c, b in (("Yte", "Xte"), ("Ytr", "Xtr")):
            Xs.append(features(np.asarray(d[c], float), 0.1, 0.1))
            Ys.append(np.asarray(d[b], float))
    return Xs, Ys, dict(dim=8, epochs=50, refit_steps=300)


def run_candy(Xs, Ys, cfg):
    train = [split(len(X))[0] for X in Xs]
    test = [~t for t in train]
    t0 = time.perf_counter()
    model = CANDY(seed=0, **cfg).fit(Xs, Ys, train)
    fit_s = time.perf_counter() - t0
    Z = [model.transform(X, i) for i, X in enumerate(Xs)]
    r2 = unified_decoder_r2(Z, Ys, train, test)
    base = pca_baseline_r2(Xs, Ys, train, test, cfg["dim"])
    return {"epoch_seconds": model.epoch_seconds_, "epochs": cfg["epochs"], "fit_seconds": fit_s,
            "unified_r2_mean": r2["unified_r2_mean"], "per_session_r2_mean": r2["per_session_r2_mean"],
            "baseline_pca_unified_r2_mean": base["unified_r2_mean"], "config": cfg}


def run_cebra(Xs, Ys, dim):
    probe = subprocess.run([CEBRA_PYTHON, "-c", "import cebra"], capture_output=True, text=True) \
        if Path(CEBRA_PYTHON).exists() else None
    if probe is None or probe.returncode != 0:
        why = f"{CEBRA_PYTHON} not found" if probe is None else probe.stderr.strip().splitlines()[-1]
        return {"skipped": f"cebra not importable ({why})"}
    train = [split(len(X))[0] for X in Xs]
    test = [~t for t in train]
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        arrays = {"n_sessions": len(Xs), "dim": dim, "iterations": CEBRA_ITERATIONS}
        for i, (X, Y, t) in enumerate(zip(Xs, Ys, train)):
            mu, sd = X[t].mean(0), X[t].std(0)
            arrays[f"X{i}"] = (X - mu) / np.where(sd > 1e-8, sd, 1.0)
            arrays[f"y{i}"] = Y
            arrays[f"train{i}"] = t
        np.savez(inp, **arrays)
        res = subprocess.run([CEBRA_PYTHON, "-c", CEBRA_SCRIPT, str(inp), str(out)], capture_output=True,
                             text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if res.returncode != 0:
            return {"skipped": "cebra run failed: " + (res.stderr.strip().splitlines() or ["?"])[-1]}
        d = np.load(out)
        Z = [d[f"Z{i}"] for i in range(len(Xs))]
        fit_s = float(d["fit_s"])
        version = str(d["version"])
    r2 = unified_decoder_r2(Z, Ys, train, test)
    n_train = sum(int(t.sum()) for t in train)
    samples = CEBRA_ITERATIONS * 512  # batch of 512 per iteration (per session in multi-session mode)
    return {"version": version, "iterations": CEBRA_ITERATIONS, "fit_seconds": fit_s,
            "epoch_seconds_equivalent": fit_s / (samples * len(Xs) / n_train),
            "unified_r2_mean": r2["unified_r2_mean"], "per_session_r2_mean": r2["per_session_r2_mean"],
            "settings": "offset10-model, time_delta conditional on the behaviour, cosine, T=1, "
                        "batch 512, lr 3e-4, CPU"}


def main() -> int:
    results = {"note": "epoch = one pass over all training bins; CEBRA's epoch-equivalent is its fit "
                       "time divided by (iterations * 512 samples * sessions / training bins)"}
    for name, data in (("simulated", simulated()), ("monkey_reach_sessions", monkeys())):
        if data is None:
            results[name] = {"skipped": "data not present"}
            continue
        Xs, Ys, cfg = data
        entry = {"candy": run_candy(Xs, Ys, cfg), "cebra": run_cebra(Xs, Ys, cfg["dim"])}
        c, b = entry["candy"], entry["cebra"]
        if "skipped" not in b:
            entry["ratio_epoch_seconds_cebra_over_candy"] = b["epoch_seconds_equivalent"] / c["epoch_seconds"]
        results[name] = entry
        print(name, json.dumps(entry, indent=1), flush=True)
    out = HERE / "results" / "candy.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
