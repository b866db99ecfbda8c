"""Inpainting benchmark: NeuroPaint, NeuroPaint-Linear (rrr), the consistency ablation and the GLM baseline.

On ``ncli simulate areas`` at its default size (5 areas x 200 RNN units, 10
sessions of 48 trials x 50 bins, each missing 1-2 areas) and on its
``--low-rate`` variant, each method runs ``ncli inpaint --evaluate`` (one
recorded area held out per session, 60/40 split of trials, neurons with < 20
test spikes dropped). Reported per method: mean and median fraction of
deviance explained on the held-out neurons, bits/spike pooled and per-neuron
median, the GLM baseline and the true-rate ceiling, the fraction of the
ceiling, training time per epoch and peak memory (RSS of the process). Then
the acceptance checks of issue 15 as booleans (neuropaint >= 0.6 x ceiling,
above the GLM on the mean, above rrr, the ablation lower), and, when
``../shared/data/human_mtl`` is present, leave-one-area-out on the human MTL
session (hippocampus_right, amygdala_right; no trials: windows of 50 bins of
50 ms). torch runs on one thread (``OMP_NUM_THREADS``, default 1); the number of
optimiser steps is ``NCLI_BENCH_STEPS`` (default 300). Writes
bench/results/inpaint.json.

Usage: ``.venv/bin/python bench/bench_inpaint.py [--quick]`` (``--quick``:
5 sessions, 100 units per area).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NCLI = [sys.executable, "-c", "import sys; from ncli.cli import main; sys.argv[0] = 'ncli'; main()"]
MTL = ROOT.parent / "shared" / "data" / "human_mtl"


def ncli(*args: str) -> tuple[str, float]:
    """Run ``ncli ARGS``; returns (stderr, wall seconds). Raises on failure."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    t0 = time.perf_counter()
    res = subprocess.run([*NCLI, *args], check=False, capture_output=True, text=True, env=env, cwd=str(ROOT))
    if res.returncode != 0:
        raise RuntimeError(f"ncli {' '.join(args)} failed: {res.stderr.strip()}")
    return res.stderr, time.perf_counter() - t0


def summary(path: Path, name: str) -> dict:
    """The ``models/inpaint_NAME`` attributes of an output store."""
    sys.path.insert(0, str(ROOT))
    from ncli.formats.store import Store

    return dict(Store.open(str(path)).attrs(f"models/inpaint_{name}"))


def run_sim(tmp: Path, tag: str, sim_args: list, steps: int) -> dict:
    """Simulate, then every method with --evaluate; the metrics per method."""
    store = tmp / f"{tag}.zarr"
    ncli("simulate", "areas", *sim_args, "-o", str(store))
    out = {}
    runs = {"glm": ["--method", "glm"],
            "rrr": ["--method", "rrr", "--steps", str(steps)],
            "neuropaint": ["--method", "neuropaint", "--steps", str(steps)],
            "neuropaint_no_consistency": ["--method", "neuropaint", "--steps", str(steps), "--consistency", "0",
                                          "--name", "neuropaint_nc"]}
    for key, args in runs.items():
        dst = tmp / f"{tag}_{key}.zarr"
        _, wall = ncli("inpaint", str(store), *args, "--evaluate", "-o", str(dst))
        name = args[args.index("--name") + 1] if "--name" in args else args[1]
        s = summary(dst, name)
        out[key] = {"metrics": s.get("metrics"), "epoch_seconds": s.get("epoch_seconds"),
                    "peak_memory_mb": s.get("peak_memory_mb"), "wall_seconds": wall}
        print(tag, key, json.dumps(s.get("metrics", {}).get("model") or s.get("metrics", {}).get("glm")),
              file=sys.stderr)
    m = {k: v["metrics"] for k, v in out.items()}
    npm = m["neuropaint"]["model"]["deviance_explained_mean"]
    ceil = m["glm"]["ceiling"]["deviance_explained_mean"]
    out["checks"] = {
        "neuropaint_mean": npm, "ceiling_mean": ceil, "glm_mean": m["glm"]["glm"]["deviance_explained_mean"],
        "rrr_mean": m["rrr"]["model"]["deviance_explained_mean"],
        "ablation_mean": m["neuropaint_no_consistency"]["model"]["deviance_explained_mean"],
        "fraction_of_ceiling": npm / ceil if ceil else None,
        "ge_0.6_ceiling": bool(ceil and npm >= 0.6 * ceil),
        "above_glm": bool(npm > m["glm"]["glm"]["deviance_explained_mean"]),
        "above_rrr": bool(npm > m["rrr"]["model"]["deviance_explained_mean"]),
        "ablation_lower": bool(m["neuropaint_no_consistency"]["model"]["deviance_explained_mean"] < npm),
    }
    return out


def run_mtl(tmp: Path, steps: int) -> dict:
    """Leave-one-area-out on the human MTL session (rrr and neuropaint, with the GLM baseline)."""
    nwb = sorted(MTL.glob("*.nwb"))
    if not nwb:
        return {"skipped": f"no NWB file under {MTL}"}
    store = tmp / "mtl.zarr"
    ncli("convert", str(nwb[0]), "--bin-size", "0.05", "-o", str(store))
    out = {"file": nwb[0].name, "bin_size_s": 0.05, "window_bins": 50}
    for area in ("hippocampus_right", "amygdala_right"):
        for method in ("rrr", "neuropaint"):
            dst = tmp / f"mtl_{method}_{area}.zarr"
            ncli("inpaint", str(store), "--method", method, "--steps", str(steps), "--evaluate", "--holdout", area,
                 "-o", str(dst))
            out[f"{method}_{area}"] = summary(dst, method).get("metrics")
    return out


def main() -> None:
    quick = "--quick" in sys.argv
    steps = int(os.environ.get("NCLI_BENCH_STEPS", "300"))
    size = ["--units-per-area", "100", "--sessions", "5"] if quick else []
    results = {"steps": steps, "quick": quick, "threads": os.environ.get("OMP_NUM_THREADS", "1")}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        results["default"] = run_sim(tmp, "default", size, steps)
        results["low_rate"] = run_sim(tmp, "low_rate", size + ["--low-rate"], steps)
        results["human_mtl"] = run_mtl(tmp, steps)
    out = HERE / "results" / "inpaint.json"
    out.write_text(json.dumps(results, indent=2, default=float))
    print(out)


if __name__ == "__main__":
    main()
