"""The fixed list of small seeded commands whose outputs are recorded in ``golden.npz``/``golden.json``.

Recorded once before the method-registry redesign (issue 11) with ncli 0.1.0;
``tests/test_golden.py`` reruns every command and compares every array of the
layer it writes, and every metric in its attributes, with the recording. Run
``python tests/golden/runs.py --record`` only when a change of results is
intended (and say so in the commit).

Each run is ``(name, argv)``; ``{name}`` in argv is the output store of an
earlier run, ``{data}`` the examples/data folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "examples" / "data"

RUNS: list[tuple[str, list[str]]] = [
    ("lds", ["simulate", "lds", "--duration", "60", "--units", "20", "--bin-size", "0.05", "--sessions", "2",
             "--seed", "3"]),
    ("convert", ["convert", "{data}/m1_stevenson_2011.nwb", "--bin-size", "0.1"]),
    ("pca", ["embed", "{lds}", "--method", "pca", "--dim", "4", "--smooth", "0.1"]),
    ("fa", ["embed", "{lds}", "--method", "fa", "--dim", "3", "--seed", "1"]),
    ("ridge", ["decode", "{pca}", "--method", "ridge", "--target", "velocity", "--lags", "2", "--folds", "3"]),
    ("ridge_sessions", ["decode", "{pca}", "--method", "ridge", "--target", "velocity", "--latents", "pca",
                        "--train-sessions", "sim0", "--test-sessions", "sim1"]),
    ("kalman", ["decode", "{pca}", "--method", "kalman", "--target", "velocity", "--latents", "pca",
                "--folds", "3"]),
    ("ridge_m1", ["decode", "{convert}", "--method", "ridge", "--target", "hand_velocity", "--lags", "2",
                  "--folds", "2", "--alpha", "10"]),
    ("fit_lds", ["fit-lds", "{pca}", "--latents", "pca", "--max-iter", "20"]),
    ("spectrum", ["spectrum", "--n-e", "400", "--n-i", "100", "--mean", "EE=2", "--mean", "EI=-3", "--mean",
                  "IE=2", "--mean", "II=-2", "--seed", "2", "--simulate", "0.5"]),
    ("spectrum_lds", ["spectrum", "{fit_lds}", "--from", "models/lds"]),
    ("reach", ["simulate", "reach", "--units", "16", "--new-units", "4", "--duration", "40", "--seed", "1"]),
    ("gru", ["decode", "{reach}", "--method", "gru", "--target", "velocity", "--steps", "15",
             "--folds", "2", "--hidden", "16", "--no-refit", "--train-sessions", "reach0",
             "--test-sessions", "reach1", "--finetune", "full", "--finetune-steps", "5"]),
    ("poyo", ["decode", "{reach}", "--method", "poyo", "--target", "velocity", "--steps", "10",
              "--folds", "2", "--hidden", "16", "--no-refit"]),
    ("possm", ["decode", "{reach}", "--method", "possm", "--target", "velocity", "--steps", "15",
               "--folds", "2", "--hidden", "16"]),
    ("possm_units", ["decode", "{reach}", "--method", "possm", "--target", "velocity", "--steps", "10",
                     "--hidden", "16", "--backbone", "s4d", "--train-sessions", "reach0", "--test-sessions",
                     "reach1", "--finetune", "units", "--finetune-steps", "5", "--folds", "2", "--no-refit"]),
    ("nuclr_sim", ["simulate", "nuclr", "--sessions", "2", "--duration", "40", "--min-units", "20",
                   "--max-units", "24", "--seed", "2"]),
    ("nuclr", ["embed", "{nuclr_sim}", "--method", "nuclr", "--steps", "4", "--dim", "16", "--batch-size", "2"]),
    ("features", ["embed", "{nuclr_sim}", "--method", "features"]),
    ("probe", ["decode", "{nuclr}", "--target", "units/area", "--folds", "2"]),
    ("candy_sim", ["simulate", "candy", "--sessions", "2", "--bins", "400", "--seed", "4"]),
    ("candy", ["align", "{candy_sim}", "--method", "candy", "--behavior", "velocity", "--epochs", "3",
               "--refit-steps", "2"]),
    ("chunks_sim", ["simulate", "chunks", "--bins", "400", "--units", "30", "--subset-size", "6", "--seed", "5"]),
    ("pa", ["chunk", "{chunks_sim}", "--method", "pa", "--labels", "chunks/truth", "--control"]),
    ("ucd", ["chunk", "{chunks_sim}", "--method", "ucd", "--n-chunks", "4"]),
    ("seq_sim", ["simulate", "chunks", "--variant", "sequence", "--seed", "6"]),
    ("dsc", ["chunk", "{seq_sim}", "--method", "dsc"]),
]

# metrics that measure the machine, not the result
_TIMING = ("per_s", "seconds", "_s_", "latency", "wall", "time_s", "duration_s")


def _is_timing(key: str) -> bool:
    return any(t in key for t in _TIMING) or key.endswith("_s") and "time" in key


def _clean(value):
    """Metrics without machine timings (recursively)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if not _is_timing(str(k))}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def layer_contents(location: str) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Every array of the top layer of a store, and every ``metrics`` attribute, by path."""
    import zarr

    root = zarr.open_group(location, mode="r")
    arrays: dict[str, np.ndarray] = {}
    metrics: dict[str, object] = {}

    def walk(group, prefix: str) -> None:
        if "metrics" in group.attrs:
            metrics[prefix or "/"] = _clean(dict(group.attrs)["metrics"])
        for name, arr in group.arrays():
            path = f"{prefix}/{name}".lstrip("/")
            arrays[path] = np.asarray(arr[...])
            if "metrics" in arr.attrs:
                metrics[path] = _clean(dict(arr.attrs)["metrics"])
        for name, sub in group.groups():
            walk(sub, f"{prefix}/{name}".lstrip("/"))

    walk(root, "")
    return arrays, metrics


BIG = 48_000  # bytes: larger arrays are recorded by digest and sums, not in full


def digest(v: np.ndarray) -> dict:
    """SHA-256 of an array's bytes with its shape, dtype and float sums (for a tolerance check)."""
    import hashlib

    a = np.ascontiguousarray(v)
    f = a.astype(np.float64)
    return {"sha256": hashlib.sha256(a.tobytes()).hexdigest(), "shape": list(a.shape), "dtype": str(a.dtype),
            "sum": float(np.nansum(f)), "abs_sum": float(np.nansum(np.abs(f))), "n_nan": int(np.isnan(f).sum())}


def run_all(workdir: Path, invoke) -> dict[str, str]:
    """Run every command of RUNS with ``invoke(argv) -> output location``; returns name -> location."""
    out: dict[str, str] = {}
    for name, argv in RUNS:
        args = [a.format(data=DATA, **out) for a in argv]
        args += ["-o", str(workdir / f"{name}.zarr")]
        out[name] = invoke(args)
    return out


def _cli_invoke(args: list[str]) -> str:
    from typer.testing import CliRunner

    from ncli.cli import app

    res = CliRunner().invoke(app, args)
    if res.exit_code != 0:
        raise RuntimeError(f"ncli {' '.join(args)} failed ({res.exit_code}): {res.stderr}")
    return res.stdout.strip().splitlines()[-1]


def record(workdir: Path) -> None:
    """Run everything and write golden.npz + golden.json next to this file."""
    locs = run_all(workdir, _cli_invoke)
    arrays, metrics, digests = {}, {}, {}
    for name, loc in locs.items():
        a, m = layer_contents(loc)
        for k, v in a.items():
            if v.dtype.kind not in "biufc":
                continue
            if v.nbytes > BIG:
                digests[f"{name}::{k}"] = digest(v)
            else:
                arrays[f"{name}::{k}"] = v
        metrics[name] = m
    np.savez_compressed(HERE / "golden.npz", **arrays)
    (HERE / "golden.json").write_text(json.dumps({"metrics": metrics, "digests": digests}, indent=1,
                                                 sort_keys=True, default=str) + "\n")


if __name__ == "__main__":
    import os
    import tempfile

    if "--record" not in sys.argv:
        sys.exit("usage: python tests/golden/runs.py --record")
    import torch
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NCLI_CACHE"] = str(Path(tmp) / "cache")
        record(Path(tmp))
