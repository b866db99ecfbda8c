"""Peak memory of ``embed --method pca`` and ``decode --method ridge --lags 6`` after convert (DESIGN §4).

The acceptance limit (issue 12) is a peak RSS under 1 GB per step on one hour
at 20 ms x 1,000 units (180,000 bins). This script

1. writes a synthetic store once (cached in ``--workdir``): Poisson counts of
   ``--units`` units driven by a smooth 4-d latent, and a 2-d 'velocity' read
   out from it, streamed to ``sessions/s0/binned/counts`` in chunks through
   :func:`ncli.formats.session.write_session` (never the whole matrix in memory);
2. runs each step in a subprocess (``ncli embed STORE --method pca`` and
   ``ncli decode STORE --method ridge --target velocity --lags 6``) and polls its
   RSS with psutil every 50 ms;
3. measures the whole-matrix figure it replaces: the old path (the same
   commands with the block size set beyond the session, so nothing is blocked)
   on sessions of half and all of ``--baseline-fraction`` of the length,
   extrapolated linearly to the full length (its (T, F) float64 matrices grow
   linearly with T), and a numpy
   baseline that only loads the full (T, N) float64 counts (plus the size of
   the lagged float64 matrix, computed);
4. prints the result and writes ``bench/results/memory_pipeline.json``.

Usage::

    .venv/bin/python bench/bench_memory_pipeline.py [--units 1000] [--duration 3600]
        [--decode-units N] [--workdir DIR] [--steps embed,decode] [--baseline-fraction 0.1]

``--decode-units`` decodes from the first N units only (``decode`` has no unit
selection, so a second store with N units is written): on a small machine the
O(F³) eigendecomposition of 7,000 lagged features dominates the time, not the
memory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LIMIT_BYTES = 1e9
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NCLI = [sys.executable, "-c", "from ncli.cli import main; main()"]
#: the old, whole-matrix path: one block bigger than any session
WHOLE = [sys.executable, "-c", ("import ncli.formats.view as v; v.BLOCK_BYTES = 1 << 62; "
                                 "from ncli.cli import main; main()")]


class LazyCounts:
    """Poisson counts (T, N) int32 generated per requested row range (reproducible, never held whole)."""

    def __init__(self, latent: np.ndarray, n_units: int, seed: int):
        rng = np.random.default_rng(seed)
        self.latent = latent
        self.C = rng.normal(0.0, 0.4, (latent.shape[1], n_units))
        self.b = np.log(rng.lognormal(np.log(5.0), 0.6, n_units) * 0.02)  # ~5 Hz at 20 ms
        self.shape = (latent.shape[0], n_units)
        self.dtype = np.dtype(np.int32)
        self.seed = seed

    def __getitem__(self, rows: slice) -> np.ndarray:
        lo, hi, _ = rows.indices(self.shape[0])
        rng = np.random.default_rng([self.seed, lo])
        return rng.poisson(np.exp(self.b + self.latent[lo:hi] @ self.C)).astype(np.int32)


def smooth_latent(n_bins: int, dim: int, seed: int) -> np.ndarray:
    """An AR(1) latent (T, dim) with a 0.5 s time constant at 20 ms bins."""
    rng = np.random.default_rng(seed)
    a = np.exp(-0.02 / 0.5)
    z = np.empty((n_bins, dim))
    z[0] = rng.standard_normal(dim)
    e = rng.standard_normal((n_bins, dim)) * np.sqrt(1 - a * a)
    for t in range(1, n_bins):
        z[t] = a * z[t - 1] + e[t]
    return z


def write_store(location: Path, n_units: int, duration: float, seed: int = 0) -> None:
    """The synthetic session s0 (1 ms-exact 20 ms grid, velocity at the bin centres)."""
    from ncli.formats.session import BehaviorSeries, write_session
    from ncli.formats.store import StoreWriter

    bin_size = 0.02
    n_bins = round(duration / bin_size)
    z = smooth_latent(n_bins, 4, seed)
    counts = LazyCounts(z, n_units, seed)
    t = (np.arange(n_bins) + 0.5) * bin_size
    vel = z[:, :2] @ np.array([[10.0, 2.0], [-3.0, 8.0]])
    with StoreWriter(str(location), command="convert", overwrite=True) as w:
        write_session(w, "s0", units=None, counts=counts, bin_size=bin_size, t_start=0.0,
                      behavior={"velocity": BehaviorSeries(t, vel, unit="cm/s", columns=["x", "y"])})


def measure(cmd: list[str], env: dict) -> dict:
    """Run ``cmd``; poll the RSS of it and its children every 50 ms."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
        except psutil.Error:
            rss = 0
        peak = max(peak, rss)
        time.sleep(0.05)
    _, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    return {"returncode": proc.returncode, "stderr": stderr.strip()[-1500:], "wall_s": round(wall, 1),
            "peak_rss_polled_bytes": int(peak)}


NUMPY_BASELINE = ("import sys, numpy as np; from ncli.formats.store import Store; from ncli.formats.view import "
                  "SessionView; X = SessionView(Store.open(sys.argv[1]), 's0').counts(); print(X.nbytes)")


def step_commands(store: Path, out: Path, step: str) -> list[str]:
    if step == "embed":
        return ["embed", str(store), "--method", "pca", "-o", str(out), "--no-cache", "-q", "--overwrite"]
    return ["decode", str(store), "--method", "ridge", "--target", "velocity", "--lags", "6", "-o", str(out),
            "--no-cache", "-q", "--overwrite"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", type=int, default=1000)
    ap.add_argument("--decode-units", type=int, default=None, help="units decoded (default --units)")
    ap.add_argument("--duration", type=float, default=3600.0, help="session length (s)")
    ap.add_argument("--steps", default="embed,decode")
    ap.add_argument("--baseline-fraction", type=float, default=0.1,
                    help="fraction of the session the old whole-matrix path runs on (0: skip)")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ncli-bench-memory")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(REPO), NCLI_CACHE=str(args.workdir / "cache"))

    def store_for(units: int, duration: float) -> tuple[Path, float]:
        path = args.workdir / f"s_{units}u_{int(duration)}s.zarr"
        t0 = time.perf_counter()
        if not (path / "zarr.json").exists():
            write_store(path, units, duration)
        return path, round(time.perf_counter() - t0, 1)

    results: dict = {"benchmark": "memory_pipeline", "units": args.units, "duration_s": args.duration,
                     "bin_size_s": 0.02, "n_bins": round(args.duration / 0.02), "limit_gb": LIMIT_BYTES / 1e9,
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "steps": {}}
    for step in args.steps.split(","):
        units = args.units if step == "embed" else (args.decode_units or args.units)
        store, gen_s = store_for(units, args.duration)
        res = measure(NCLI + step_commands(store, args.workdir / f"{step}.zarr", step), env)
        peak = res["peak_rss_polled_bytes"]
        entry = {"units": units, "duration_s": args.duration, "features": units * (7 if step == "decode" else 1), "generate_s": gen_s,
                 "blocked": {**res, "peak_rss_gb": round(peak / 1e9, 3)},
                 "passed": res["returncode"] == 0 and peak < LIMIT_BYTES}
        base = measure([sys.executable, "-c", NUMPY_BASELINE, str(store)], env)
        n_bins = round(args.duration / 0.02)
        entry["numpy_full_float64_counts"] = {"peak_rss_gb": round(base["peak_rss_polled_bytes"] / 1e9, 3),
                                              "wall_s": base["wall_s"],
                                              "counts_gb": round(n_bins * units * 8 / 1e9, 3),
                                              "lagged_matrix_gb": round(n_bins * units * 7 * 8 / 1e9, 3)}
        if args.baseline_fraction > 0:  # old path at f/2 and f of the session, extrapolated linearly to 1
            fr = (args.baseline_fraction / 2, args.baseline_fraction)
            olds = []
            for f in fr:
                part, _ = store_for(units, round(args.duration * f))
                olds.append(measure(WHOLE + step_commands(part, args.workdir / f"{step}_old.zarr", step), env))
            p = [o["peak_rss_polled_bytes"] for o in olds]
            slope = (p[1] - p[0]) / (fr[1] - fr[0])
            entry["whole_matrix_old_path"] = {
                "fractions": list(fr), "returncode": [o["returncode"] for o in olds],
                "wall_s": [o["wall_s"] for o in olds], "peak_rss_gb": [round(x / 1e9, 3) for x in p],
                "peak_rss_gb_extrapolated_to_full": round((p[1] + slope * (1 - fr[1])) / 1e9, 2),
                "wall_s_extrapolated_to_full": round(olds[1]["wall_s"] / fr[1], 1)}
        results["steps"][step] = entry
        print(json.dumps({step: entry}, indent=1), flush=True)
    out = HERE / "results" / "memory_pipeline.json"
    if out.exists():  # steps not run this time keep their last result
        last = json.loads(out.read_text()).get("steps", {})
        results["steps"] = {**{k: v for k, v in last.items() if k not in results["steps"]}, **results["steps"]}
    results["passed"] = all(e["passed"] for e in results["steps"].values())
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")
    if not results["passed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
