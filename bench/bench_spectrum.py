"""Spectrum of a sampled E/I ring network: ncli's sparse path (ARPACK) vs dense numpy.linalg.eigvals.

Network: 1-D ring, N_E = 0.8 N, N_I = 0.2 N, in-degree 50 per projection,
Gaussian ranges 0.05 (E) and 0.1 (I), the "global" standard case (one real
k = 0 outlier at 2.73 plus k != 0 outliers; bulk radius about 0.5). For each N
the script times, in this one process:

- sampling the sparse connectivity (``sample_connectivity``);
- the theory (``network_theory``);
- ncli's large-N numerics: ARPACK (``scipy.sparse.linalg.eigs``, largest
  magnitude, the predicted outliers + 20) plus the matrix-free bulk-edge
  estimate (``empirical_bulk_radius``);
- the baseline, dense ``numpy.linalg.eigvals`` of the same matrix, where it
  fits (N <= ``--dense-max``, default 10,000: a dense 10^5 x 10^5 float64
  matrix alone needs 80 GB).

Each N runs in a fresh child process, so its memory is its own: peak resident
set size (``resource.getrusage``) at start, after the sparse steps and after
the dense baseline; reported as increases over the previous peak (the peak is
monotone). Times are wall clock (``perf_counter``) and CPU (``process_time``);
on a shared machine the CPU time is the steadier figure. Accuracy: the largest outlier's relative error against theory
and the bulk-edge estimate against the theory radius.

Usage::

    .venv/bin/python bench/bench_spectrum.py [--sizes 10000 100000] [--dense-max 10000]

Writes ``bench/results/spectrum.json`` (entries for sizes not run this time are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from ncli.models.spectral import (PAIRS, NetworkSpec, effective_connectivity, empirical_bulk_radius,  # noqa: E402
                                  network_theory, profile, sample_connectivity, spectrum_numerics)


def peak_mb() -> float:
    """Peak resident set size of this process so far, MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def spec_for(n: int, k: int = 50) -> NetworkSpec:
    """The benchmark network with N = n neurons."""
    n_e = int(round(0.8 * n))
    means = {"EE": 3.0, "EI": -1.0, "IE": 1.0, "II": -1.0}
    ranges = {"EE": 0.05, "EI": 0.1, "IE": 0.05, "II": 0.1}
    return NetworkSpec.from_dict({
        "dim": 1, "tau": 0.01,
        "populations": {"E": {"n": n_e}, "I": {"n": n - n_e}},
        "projections": {key: {"mean": means[key], "spread": 0.3, "range": ranges[key], "in_degree": k}
                        for key in PAIRS}})


def run(n: int, dense_max: int) -> dict:
    spec = spec_for(n)
    out: dict = {"N": n, "N_E": spec.populations["E"].n, "N_I": spec.populations["I"].n, "in_degree": 50}
    m0 = peak_mb()
    out["start_peak_mb"] = m0
    c0 = time.process_time()
    t = time.perf_counter()
    profiles = {key: profile(spec, key) for key in PAIRS}
    theory = network_theory(spec, profiles)
    out["theory_s"] = time.perf_counter() - t
    t = time.perf_counter()
    J = sample_connectivity(spec, seed=0, profiles=profiles)
    W = effective_connectivity(J, spec, theory)
    out["sample_s"] = time.perf_counter() - t
    out["nnz"] = int(W.nnz)
    out["sample_peak_mb_increase"] = peak_mb() - m0
    m1 = peak_mb()
    t = time.perf_counter()
    res = spectrum_numerics(W, theory, method="arpack")
    out["arpack_s"] = time.perf_counter() - t
    out["arpack_n_eigenvalues"] = int(res["eigenvalues"].size)
    t = time.perf_counter()
    edge = empirical_bulk_radius(W, spec, theory, profiles)
    out["bulk_estimate_s"] = time.perf_counter() - t
    out["arpack_peak_mb_increase"] = peak_mb() - m1
    lead_th = theory.eigenvalues[np.argmax(theory.eigenvalues.real)]
    lead = res["eigenvalues"][np.argmin(np.abs(res["eigenvalues"] - lead_th))]
    out["theory_bulk_radius"] = theory.bulk_radius
    out["sample_bulk_radius"] = edge
    out["arpack_bulk_edge"] = res["bulk_edge"]
    out["leading_outlier_theory"] = [float(lead_th.real), float(lead_th.imag)]
    out["leading_outlier_arpack"] = [float(lead.real), float(lead.imag)]
    out["leading_outlier_rel_error"] = float(abs(lead - lead_th) / abs(lead_th))
    out["ncli_total_s"] = out["sample_s"] + out["arpack_s"] + out["bulk_estimate_s"] + out["theory_s"]
    out["ncli_total_cpu_s"] = time.process_time() - c0
    if n <= dense_max:
        m2 = peak_mb()
        c2 = time.process_time()
        t = time.perf_counter()
        lam = np.linalg.eigvals(W.toarray())
        out["dense_s"] = time.perf_counter() - t
        out["dense_cpu_s"] = time.process_time() - c2
        out["dense_peak_mb_increase"] = peak_mb() - m2
        out["dense_p99_modulus"] = float(np.percentile(np.abs(lam), 99))
        out["speedup_numerics_vs_dense"] = out["dense_s"] / (out["arpack_s"] + out["bulk_estimate_s"])
    else:
        out["dense_s"] = None
        out["dense_note"] = f"skipped: a dense {n} x {n} float64 matrix needs {n * n * 8 / 1e9:.0f} GB"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--dense-max", type=int, default=10_000)
    ap.add_argument("--single", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.single is not None:
        print(json.dumps(run(args.single, args.dense_max)))
        return
    import subprocess

    results = []
    for n in args.sizes:
        proc = subprocess.run([sys.executable, __file__, "--single", str(n), "--dense-max", str(args.dense_max)],
                              capture_output=True, text=True, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(r)
        print(json.dumps(r, indent=1), flush=True)
    (HERE / "results").mkdir(exist_ok=True)
    path = HERE / "results" / "spectrum.json"
    # entries for other sizes from earlier runs are kept (the dense 10^4 baseline alone takes minutes)
    previous = json.loads(path.read_text()).get("results", []) if path.exists() else []
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for r in results:
        r["run"] = stamp
    merged = [r for r in previous if r["N"] not in {x["N"] for x in results}] + results
    doc = {"benchmark": "spectrum", "baseline": "numpy.linalg.eigvals (dense)",
           "machine": {"python": platform.python_version(), "numpy": np.__version__,
                       "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()},
           "results": sorted(merged, key=lambda r: r["N"])}
    path.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
