"""No change of results: every command of tests/golden/runs.py reproduces its recording.

The recording was made with ncli 0.1.0 before the method-registry redesign
(issue 11). Numpy paths (simulate, convert, ridge, kalman, pca, fa, fit-lds,
spectrum, chunk, probes, features) must give identical arrays; torch models
(gru, poyo, possm, nuclr, candy) the same arrays within 1e-6 under the same
seed and one thread.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
import runs  # noqa: E402

TORCH_RUNS = {"gru", "poyo", "possm", "possm_units", "nuclr", "candy", "probe"}


def _close(a, b, path: str, tol: float, problems: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                problems.append(f"{path}/{k}: present in only one")
            else:
                _close(a[k], b[k], f"{path}/{k}", tol, problems)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            problems.append(f"{path}: length {len(a)} != {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]", tol, problems)
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if not math.isclose(a, b, rel_tol=tol, abs_tol=tol):
            problems.append(f"{path}: {a!r} != {b!r}")
    elif a != b:
        problems.append(f"{path}: {a!r} != {b!r}")


@pytest.fixture(scope="module")
def golden_outputs(tmp_path_factory):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        work = tmp_path_factory.mktemp("golden")
        yield runs.run_all(work, runs._cli_invoke)
    finally:
        torch.set_num_threads(threads)


def test_golden_arrays_and_metrics(golden_outputs):
    ref_arrays = np.load(runs.HERE / "golden.npz")
    ref = json.loads((runs.HERE / "golden.json").read_text())
    problems: list[str] = []
    seen = set()
    for name, loc in golden_outputs.items():
        tol = 1e-6 if name in TORCH_RUNS else 0.0
        arrays, metrics = runs.layer_contents(loc)
        _close(json.loads(json.dumps(metrics, default=str)), ref["metrics"][name], name, max(tol, 1e-12), problems)
        for k, v in arrays.items():
            key = f"{name}::{k}"
            if v.dtype.kind not in "biufc":
                continue
            seen.add(key)
            if key in ref["digests"]:
                d, r = runs.digest(v), ref["digests"][key]
                if d["sha256"] != r["sha256"] and (tol == 0 or d["shape"] != r["shape"]
                                                   or not math.isclose(d["sum"], r["sum"], rel_tol=tol, abs_tol=tol)
                                                   or not math.isclose(d["abs_sum"], r["abs_sum"], rel_tol=tol)):
                    problems.append(f"{key}: differs from the recording ({d} vs {r})")
            elif key not in ref_arrays.files:
                problems.append(f"{key}: not in the recording")
            else:
                want = ref_arrays[key]
                if v.shape != want.shape:
                    problems.append(f"{key}: shape {v.shape} != {want.shape}")
                elif tol == 0:
                    if not np.array_equal(v, want, equal_nan=v.dtype.kind in "fc"):
                        problems.append(f"{key}: not identical (max diff {np.nanmax(np.abs(v - want))})")
                elif not np.allclose(v, want, rtol=tol, atol=tol, equal_nan=True):
                    problems.append(f"{key}: max diff {np.nanmax(np.abs(v.astype(float) - want))}")
    missing = (set(ref_arrays.files) | set(ref["digests"])) - seen
    problems += [f"{k}: recorded but no longer written" for k in sorted(missing)]
    assert not problems, "\n".join(problems[:40])
