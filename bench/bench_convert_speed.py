"""Speed of `ncli convert` against a raw h5py read + per-unit histogram and against pynapple.

Two files: a synthetic NWB of 1,000 units and 50 million spikes over one hour (written once
with the generator of bench_convert_memory.py and cached in the work folder) and the real
human MTL file of ../shared/data (35 units, 214,278 spikes). For each file, in this order,
each in its own subprocess so that peak RSS is its own:

1. ``ncli convert FILE --bin-size 0.02 -o OUT --no-cache`` (the CLI, imports included);
2. the raw bound: h5py reads ``units/spike_times`` and its index, then ``np.histogram`` per unit
   on the same grid ncli laid out (its ``t_start_s``, ``bin_size_s``, ``n_bins``);
3. pynapple: ``nap.load_file(FILE)["units"].count(0.02)`` with the same bin size, in a separate
   environment (``--pynapple-python``, default /tmp/pynapple_env/bin/python; skipped when absent).

Wall time (s) and peak RSS (MB) of each, and the ratios ncli / bound and ncli / pynapple, go to
stdout and bench/results/convert_speed.json. Counts are compared (ncli vs the bound) so the
three do the same work.

Usage::

    .venv/bin/python bench/bench_convert_speed.py [--spikes 50000000] [--units 1000] [--workdir DIR]
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

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MTL = REPO.parent / "shared" / "data" / "human_mtl" / "sub-4_ses-4_ecephys+image.nwb"

BOUND = r'''
import sys, json, h5py, numpy as np
path, t0, bs, n = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
with h5py.File(path, "r") as f:
    st = f["units/spike_times"][:]
    idx = f["units/spike_times_index"][:]
edges = t0 + np.arange(n + 1) * bs
starts = np.r_[0, idx[:-1]]
out = np.zeros((n, idx.size), np.int32)
for u, (a, b) in enumerate(zip(starts, idx)):
    out[:, u] = np.histogram(st[a:b], edges)[0]
np.save(sys.argv[5], out.sum(axis=0))
'''

PYNAPPLE = r'''
import sys, warnings
warnings.simplefilter("ignore")
import numpy as np, pynapple as nap
data = nap.load_file(sys.argv[1])
units = data["units"]
counts = units.count(float(sys.argv[2]))
print(int(np.asarray(counts).sum()))
'''


def run(cmd: list[str], env: dict | None = None) -> dict:
    """Wall time and peak RSS (polled every 20 ms) of one subprocess."""
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, proc.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err.decode()[-2000:]}")
    return {"wall_s": round(wall, 3), "peak_rss_mb": round(peak / 1e6, 1), "stdout": out.decode().strip()}


def bench_file(path: Path, work: Path, pynapple_python: str | None) -> dict:
    import numpy as np
    import zarr

    env = dict(os.environ, NCLI_CACHE=str(work / "cache"))
    out = work / f"{path.stem}.zarr"
    ncli = run([str(Path(sys.executable).with_name("ncli")), "convert", str(path), "--bin-size", "0.02", "-o",
                str(out), "--overwrite", "--no-cache", "--quiet"], env)
    root = zarr.open_group(str(out), mode="r")
    sid = next(iter(root["sessions"].group_keys()))
    g = root[f"sessions/{sid}/binned"]
    per_unit = np.asarray(g["counts"][:].sum(axis=0))
    bound = run([sys.executable, "-c", BOUND, str(path), repr(g.attrs["t_start_s"]), repr(g.attrs["bin_size_s"]),
                 str(g.attrs["n_bins"]), str(work / "bound.npy")])
    same = bool(np.array_equal(np.load(work / "bound.npy"), per_unit))
    res = {"file": str(path), "n_bins": int(g.attrs["n_bins"]), "n_units": int(per_unit.size),
           "n_spikes_binned": int(per_unit.sum()), "ncli": ncli, "h5py_histogram": bound,
           "counts_equal_to_bound": same, "ratio_ncli_over_bound": round(ncli["wall_s"] / bound["wall_s"], 3)}
    if pynapple_python and Path(pynapple_python).exists():
        nap = run([pynapple_python, "-c", PYNAPPLE, str(path), "0.02"])
        res["pynapple"] = nap
        res["ratio_ncli_over_pynapple"] = round(ncli["wall_s"] / nap["wall_s"], 3)
    else:
        res["pynapple"] = f"skipped: no python at {pynapple_python}"
    for k in ("ncli", "h5py_histogram", "pynapple"):
        if isinstance(res.get(k), dict):
            res[k].pop("stdout", None)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=1000)
    ap.add_argument("--spikes", type=int, default=50_000_000)
    ap.add_argument("--duration", type=float, default=3600.0)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ncli-bench-convert")
    ap.add_argument("--pynapple-python", default="/tmp/pynapple_env/bin/python")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HERE))
    from bench_convert_memory import write_big_nwb

    big = args.workdir / f"big_{args.units}u_{args.spikes}s.nwb"
    if not big.exists():
        write_big_nwb(big, args.units, args.spikes, args.duration)
    results = {"machine": f"{platform.node()} ({os.cpu_count()} cores), {platform.python_version()}",
               "load_average_before": os.getloadavg()[0], "files": []}
    for path in (big, MTL):
        if path.exists():
            results["files"].append(bench_file(path, args.workdir, args.pynapple_python))
    print(json.dumps(results, indent=2))
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "convert_speed.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
