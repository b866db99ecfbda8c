"""A real BCI instability with a known answer: re-apply 20160325.mat's online perturbation offline.

Data: ../shared/data/monkey_bci_stability/20160325.mat (Degenhart et al. 2020, MIT). Its
``pertParams`` hold the instability applied online (10 base electrodes whose counts were
replaced by those of held-out electrodes, 5 silenced channels, per-channel offsets), re-applied
here as ``y' = max(S P y + S O, 0)`` (the source repository's ``generatePertMatrices``/``perturbCounts``)
to the unperturbed ``baselineEvaluation`` trials. The baseline trials are split in time: the first
half is the reference "day" (a fixed decoder is fitted there), the second half is the later day,
once as recorded (control) and once perturbed.

Everything goes through ncli: the three trial sets are written as MATLAB trial structs and
converted with ``ncli convert --trials``; ``ncli align --method procrustes`` (and ``crrl`` when
registered) aligns them; ``ncli decode --method ridge --train-sessions reference`` is the fixed
decoder. Reported: R² per bin of the cursor-to-target direction (cos, sin), target accuracy per
trial (mean decoded direction over the trial -> nearest of the 8 targets), and for crrl how many
of the 10 replaced electrodes and 5 silenced ones it catches (reference channel not assigned to the
same later channel, or reconstructed) and how many untouched channels it keeps in place.

Usage::

    .venv/bin/python bench/bench_bci_instability.py [--workdir DIR] [--methods procrustes,crrl]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.io

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MAT = REPO.parent / "shared" / "data" / "monkey_bci_stability" / "20160325.mat"
NCLI = str(Path(sys.executable).with_name("ncli"))
BIN_S = 0.045  # this lab's BCI bin width; not stored in this version of the file


def perturbation(pp) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P, S, O) of ``pertParams`` (1-based electrode numbers), as in generatePertMatrices.m."""
    n = int(pp.nArrayChs)
    P = np.eye(n)
    for a, b in np.atleast_2d(pp.swapElectrodesMap).astype(int):
        P[a - 1, a - 1] = 0.0
        P[a - 1, b - 1] = 1.0
    s = np.ones(n)
    base = np.asarray(pp.baseElectrodes, dtype=int) - 1
    s[base] = (~np.asarray(pp.silentChs, dtype=bool)).astype(float)
    O = np.zeros(n)
    O[base] = np.asarray(pp.offsets, dtype=float)
    return P, np.diag(s), O


def trial_arrays(t) -> tuple[np.ndarray, np.ndarray, int]:
    """counts (bins, 96), cursor-to-target direction (bins, 2) unit vectors, target angle index."""
    counts = np.asarray(t.binCounts, dtype=float)
    ref = np.asarray(t.refPos, dtype=float)
    ref = ref[1:] if not np.all(np.isfinite(ref[0])) else ref[:-1]  # one more row than bins
    tgt = np.asarray(t.tgtPos, dtype=float)
    d = tgt[None, :] - ref
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    k = int(np.round(np.arctan2(tgt[1], tgt[0]) / (np.pi / 4))) % 8
    return counts, d, k


def write_structs(path: Path) -> dict:
    m = scipy.io.loadmat(MAT, squeeze_me=True, struct_as_record=False)
    P, S, O = perturbation(m["pertParams"])
    base = sorted((t for t in m["trialData"] if t.type == "baselineEvaluation"), key=lambda t: int(t.id))
    half = len(base) // 2
    sets = {"reference": base[:half], "later": base[half:], "perturbed": base[half:]}
    out = {}
    clipped = total = 0
    dtype = [("binCounts", object), ("direction", object), ("target", object)]
    for name, trials in sets.items():
        rec = np.zeros(len(trials), dtype=dtype)
        for i, t in enumerate(trials):
            c, d, k = trial_arrays(t)
            if name == "perturbed":
                c = c @ (S @ P).T + (S @ O)[None, :]
                clipped += int(np.count_nonzero(c < 0))
                total += c.size
                c = np.maximum(c, 0.0)  # a negative offset on an empty bin: counts stay >= 0
            rec[i] = (c, d, k)
        out[name] = rec
    scipy.io.savemat(path, out)
    swapped = [(int(a), int(b)) for a, b in np.atleast_2d(m["pertParams"].swapElectrodesMap) if a != b]
    silenced = (np.asarray(m["pertParams"].baseElectrodes)[np.asarray(m["pertParams"].silentChs, bool)]).tolist()
    return {"n_trials": {k: len(v) for k, v in sets.items()}, "swapped": swapped, "silenced": silenced,
            "perturbed_entries_clipped_at_0": clipped / max(total, 1)}


def ncli(*args: str) -> str:
    res = subprocess.run([NCLI, *args], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"ncli {' '.join(args)} failed:\n{res.stderr}")
    return res.stdout.strip()


def evaluate(store: str, latents: str | None, work: Path, tag: str) -> dict:
    from ncli.formats.store import Store

    extra = ["--latents", latents] if latents else []
    out = ncli("decode", store, "--method", "ridge", "--target", "direction", "--train-sessions", "bci_days_reference",
               "--test-sessions", "bci_days_later,bci_days_perturbed", *extra, "-o", str(work / f"dec_{tag}.zarr"), "--overwrite")
    st = Store.open(out)
    res = {}
    for name in ("later", "perturbed"):
        sid = f"bci_days_{name}"
        base = f"sessions/{sid}"
        pred = st.read(f"{base}/predictions/ridge_direction")
        metrics = st.attrs(f"{base}/predictions/ridge_direction")["metrics"]
        start, stop = st.read(f"{base}/trials/start_time"), st.read(f"{base}/trials/stop_time")
        target = st.read(f"{base}/trials/target").astype(int)
        g = st.attrs(f"{base}/binned")
        centres = g["t_start_s"] + (np.arange(pred.shape[0]) + 0.5) * g["bin_size_s"]
        hits = []
        for a, b, k in zip(start, stop, target):
            rows = (centres >= a) & (centres < b) & np.all(np.isfinite(pred), axis=1)
            if rows.any():
                m = pred[rows].mean(axis=0)
                hits.append(int(np.round(np.arctan2(m[1], m[0]) / (np.pi / 4))) % 8 == k)
        res[name] = {"r2_mean": float(np.mean(metrics["r2"])), "accuracy": float(np.mean(hits)),
                    "n_trials": len(hits)}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--methods", default="procrustes,crrl")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="ncli-bci-"))
    work.mkdir(parents=True, exist_ok=True)
    info = write_structs(work / "bci_days.mat")
    store = ncli("convert", str(work / "bci_days.mat"), "--trials", "reference", "--trials", "later",
                 "--trials", "perturbed", "--trial-counts", "binCounts", "--bin-size", str(BIN_S), "-o", str(work / "bci.zarr"), "--overwrite")
    from ncli.methods import registry

    results = {"data": str(MAT), "perturbation": info, "raw": evaluate(store, None, work, "raw")}
    for method in [m for m in args.methods.split(",") if m]:
        if method not in registry.methods("align"):
            results[method] = "not registered"
            continue
        t0 = time.perf_counter()
        aligned = ncli("align", store, "--method", method, "--reference", "bci_days_reference",
                       *(["--behavior", "trials/target"] if method == "crrl" else []),
                       "-o", str(work / f"al_{method}.zarr"), "--overwrite")
        results[method] = {"align_s": time.perf_counter() - t0, **evaluate(aligned, method, work, method)}
        if method == "crrl":
            from ncli.formats.store import Store

            st = Store.open(aligned)
            sessions = st.attrs("models/crrl")["sessions"]
            i = sessions.index("bci_days_perturbed")
            p, missing = st.read("models/crrl/perm_")[i], st.read("models/crrl/missing_")[i]
            # a replaced electrode a (now carrying b's counts) is caught when reference channel a is not
            # assigned to later channel a: matched elsewhere, or marked missing and reconstructed
            caught = [a for a, _ in info["swapped"] if p[a - 1] != a - 1 or missing[a - 1]]
            silent = [c for c in info["silenced"] if p[c - 1] != c - 1 or missing[c - 1]]
            unmoved = [c for c in range(p.size) if c + 1 not in {a for a, _ in info["swapped"]}
                       and c + 1 not in info["silenced"]]
            results[method]["swaps_caught"] = f"{len(caught)} of {len(info['swapped'])}"
            results[method]["silenced_caught"] = f"{len(silent)} of {len(info['silenced'])}"
            results[method]["untouched_kept"] = (f"{sum(p[c] == c and not missing[c] for c in unmoved)} of "
                                                 f"{len(unmoved)}")
    print(json.dumps(results, indent=2))
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "bci_instability.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
