"""Peak memory of `ncli convert` on a large synthetic NWB (1,000 units, 50 million spikes).

The acceptance limit (issue 2) is a peak RSS under 1.5 GB for the convert
process. This script

1. writes the NWB once (cached beside the results; ``--regenerate`` rewrites
   it): the units table's ``spike_times`` column is streamed to HDF5 in 1 M
   spike chunks through hdmf's ``GenericDataChunkIterator``, so the generator
   never holds all spikes either;
2. runs ``ncli convert FILE --bin-size 0.02 -o OUT`` in a subprocess and polls
   its RSS with psutil (and reads ``getrusage(RUSAGE_CHILDREN)`` afterwards);
3. prints the result and writes ``bench/results/convert_memory.json``.

Usage::

    .venv/bin/python bench/bench_convert_memory.py [--units 1000] [--spikes 50000000]
        [--duration 3600] [--workdir DIR] [--regenerate]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

LIMIT_BYTES = 1.5e9
HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def unit_sizes(n_units: int, n_spikes: int, seed: int) -> np.ndarray:
    """Spikes per unit: log-normal firing rates scaled to ``n_spikes`` in total."""
    rng = np.random.default_rng(seed)
    w = rng.lognormal(0.0, 0.7, n_units)
    sizes = np.floor(w / w.sum() * n_spikes).astype(np.int64)
    sizes[: n_spikes - sizes.sum()] += 1
    return sizes


def unit_spikes(u: int, size: int, duration: float, seed: int) -> np.ndarray:
    """Sorted spike times of unit ``u`` (s), reproducible per unit."""
    rng = np.random.default_rng([seed, u])
    return np.sort(rng.uniform(0.0, duration, size))


def write_big_nwb(path: Path, n_units: int, n_spikes: int, duration: float, seed: int = 0) -> None:
    """Write the synthetic NWB, streaming spike times in chunks."""
    import datetime as dt

    from hdmf.backends.hdf5 import H5DataIO
    from hdmf.common import ElementIdentifiers
    from hdmf.data_utils import GenericDataChunkIterator
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.misc import Units

    sizes = unit_sizes(n_units, n_spikes, seed)
    ends = np.cumsum(sizes)
    starts = ends - sizes

    class SpikeStream(GenericDataChunkIterator):
        """The concatenated spike times of all units, generated per requested range."""

        def __init__(self, **kwargs):
            self._cache: dict[int, np.ndarray] = {}
            super().__init__(**kwargs)

        def _unit(self, u: int) -> np.ndarray:
            if u not in self._cache:
                if len(self._cache) > 4:
                    self._cache.clear()
                self._cache[u] = unit_spikes(u, int(sizes[u]), duration, seed)
            return self._cache[u]

        def _get_data(self, selection):
            sl = selection[0]
            lo, hi = sl.start or 0, sl.stop
            out = np.empty(hi - lo, dtype=np.float64)
            u = int(np.searchsorted(ends, lo, side="right"))
            pos = lo
            while pos < hi:
                take_hi = min(hi, int(ends[u]))
                out[pos - lo : take_hi - lo] = self._unit(u)[pos - starts[u] : take_hi - starts[u]]
                pos, u = take_hi, u + 1
            return out

        def _get_maxshape(self):
            return (int(n_spikes),)

        def _get_dtype(self):
            return np.dtype(np.float64)

    stream = SpikeStream(buffer_shape=(min(n_spikes, 1 << 22),), chunk_shape=(min(n_spikes, 1 << 20),),
                         display_progress=False)
    units = Units(name="units", description="synthetic units",
                  id=ElementIdentifiers(name="id", data=np.arange(n_units)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        units.add_column(name="spike_times", description="spike times (s)",
                         data=H5DataIO(stream, compression=None), index=[int(e) for e in ends])
    nwb = NWBFile(session_description="ncli memory benchmark", identifier="bench-convert-memory",
                  session_start_time=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc))
    nwb.units = units
    tmp = path.with_suffix(".tmp.nwb")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with NWBHDF5IO(str(tmp), "w") as io:
            io.write(nwb)
    os.replace(tmp, path)


def measure(cmd: list[str], env: dict) -> dict:
    """Run ``cmd``; poll the RSS of it and its children every 50 ms."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak = 0
    samples = []
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
        except psutil.Error:
            rss = 0
        peak = max(peak, rss)
        samples.append((round(time.perf_counter() - t0, 2), rss))
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    step = max(1, len(samples) // 60)
    return {"returncode": proc.returncode, "stdout": stdout.strip(), "stderr": stderr.strip()[-2000:],
            "wall_s": round(wall, 1), "peak_rss_polled_bytes": int(peak), "peak_rss_getrusage_bytes": int(ru) * 1024,
            "rss_timeline": samples[::step]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", type=int, default=1000)
    ap.add_argument("--spikes", type=int, default=50_000_000)
    ap.add_argument("--duration", type=float, default=3600.0, help="recording length (s)")
    ap.add_argument("--bin-size", type=float, default=0.02)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ncli-bench-convert")
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--keep-output", action="store_true")
    args = ap.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    nwb = args.workdir / f"big_{args.units}u_{args.spikes}s.nwb"
    gen_s = 0.0
    if args.regenerate or not nwb.exists():
        print(f"writing {nwb} ({args.units} units, {args.spikes:,} spikes) ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        write_big_nwb(nwb, args.units, args.spikes, args.duration)
        gen_s = time.perf_counter() - t
    out = args.workdir / "out.zarr"
    shutil.rmtree(out, ignore_errors=True)
    ncli = Path(sys.executable).with_name("ncli")
    cmd = [str(ncli) if ncli.exists() else sys.executable, *([] if ncli.exists() else ["-m", "ncli.cli"]),
           "convert", str(nwb), "--bin-size", str(args.bin_size), "-o", str(out), "--quiet"]
    env = dict(os.environ, NCLI_CACHE=str(args.workdir / "cache"))
    print("running:", " ".join(cmd), file=sys.stderr, flush=True)
    res = measure(cmd, env)
    peak = max(res["peak_rss_polled_bytes"], res["peak_rss_getrusage_bytes"])
    result = {
        "benchmark": "convert_memory",
        "units": args.units, "spikes": args.spikes, "duration_s": args.duration, "bin_size_s": args.bin_size,
        "nwb_bytes": nwb.stat().st_size, "generate_s": round(gen_s, 1),
        "convert_wall_s": res["wall_s"], "returncode": res["returncode"],
        "peak_rss_bytes": peak, "peak_rss_gb": round(peak / 1e9, 3),
        "limit_gb": LIMIT_BYTES / 1e9, "ratio_to_limit": round(peak / LIMIT_BYTES, 3),
        "passed": res["returncode"] == 0 and peak < LIMIT_BYTES,
        "peak_rss_polled_bytes": res["peak_rss_polled_bytes"],
        "peak_rss_getrusage_bytes": res["peak_rss_getrusage_bytes"],
        "stderr_tail": res["stderr"], "rss_timeline": res["rss_timeline"],
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
    }
    if not args.keep_output:
        shutil.rmtree(out, ignore_errors=True)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "convert_memory.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"convert: {args.units} units, {args.spikes:,} spikes, {res['wall_s']} s, exit {res['returncode']}; "
          f"peak RSS {peak / 1e9:.3f} GB = {peak / LIMIT_BYTES:.0%} of the 1.5 GB limit "
          f"({'PASS' if result['passed'] else 'FAIL'})")
    if res["returncode"] != 0:
        print(res["stderr"], file=sys.stderr)
    sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
