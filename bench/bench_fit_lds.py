"""EM time to convergence: ncli's LinearDynamicalSystem vs pykalman's KalmanFilter.em.

Data: a sampled LDS (K = 4 states: a rotating pair 0.97·e^{±i2π/40} and decays
0.95, 0.8; p = 30 outputs; T = 5,000 bins; the acceptance setting of issue 3).
Both EMs start from the same parameters (ncli's subspace identification, full
R), update the same parameters (A, Q, C, d, R, x0, P0) and stop at the same
rule: relative change of the log-likelihood below ``--tol`` (default 1e-6) or
``--max-iter`` iterations. pykalman has no stopping rule, so it is run one
iteration at a time and its log-likelihood evaluated after each (that
evaluation is not counted in its time). Timed: the EM iterations only.

pykalman is not a dependency of ncli: it is looked for in this interpreter,
else in the interpreter named by ``$PYKALMAN_PYTHON`` (default
``/tmp/pykalman-venv/bin/python``; create it with
``python3 -m venv /tmp/pykalman-venv && /tmp/pykalman-venv/bin/pip install pykalman``),
which then runs the pykalman half in a subprocess on the same data. Without
it, the pykalman half is skipped with a message.

Usage::

    .venv/bin/python bench/bench_fit_lds.py [--T 5000] [--p 30] [--tol 1e-6] [--max-iter 200]

Prints both times, the ratio and both final log-likelihoods, and writes
``bench/results/fit_lds.json``.
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

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

PYKALMAN_EM = r'''
import json, sys, time
import numpy as np
from pykalman import KalmanFilter
z = np.load(sys.argv[1])
tol, max_iter = float(sys.argv[2]), int(sys.argv[3])
Y = z["Y"]
kf = KalmanFilter(transition_matrices=z["A"], observation_matrices=z["C"], transition_covariance=z["Q"],
                  observation_covariance=z["R"], transition_offsets=np.zeros(z["A"].shape[0]),
                  observation_offsets=z["d"], initial_state_mean=z["x0"], initial_state_covariance=z["P0"],
                  em_vars=["transition_matrices", "observation_matrices", "transition_covariance",
                           "observation_covariance", "observation_offsets", "initial_state_mean",
                           "initial_state_covariance"])
curve = [float(kf.loglikelihood(Y))]
spent, converged = 0.0, False
for it in range(max_iter):
    t0 = time.perf_counter()
    kf = kf.em(Y, n_iter=1)
    spent += time.perf_counter() - t0
    curve.append(float(kf.loglikelihood(Y)))
    if abs(curve[-1] - curve[-2]) <= tol * abs(curve[-2]):
        converged = True
        break
print(json.dumps({"seconds": spent, "n_iter": it + 1, "loglik": curve[-1], "converged": converged,
                  "curve": curve, "version": __import__("pykalman").__version__ if hasattr(__import__("pykalman"), "__version__") else "?"}))
'''


def sample(T: int, p: int, seed: int = 0):
    """Outputs of the benchmark LDS, (T, p)."""
    rng = np.random.default_rng(seed)
    th = 2 * np.pi / 40
    A = np.zeros((4, 4))
    A[:2, :2] = 0.97 * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    A[2, 2], A[3, 3] = 0.95, 0.8
    C = rng.standard_normal((p, 4))
    d = rng.standard_normal(p)
    r = rng.uniform(0.5, 1.5, p)
    x = np.zeros((T, 4))
    for t in range(1, T):
        x[t] = A @ x[t - 1] + np.sqrt(0.1) * rng.standard_normal(4)
    return x @ C.T + d + rng.standard_normal((T, p)) * np.sqrt(r)


def pykalman_python() -> str | None:
    """An interpreter that can import pykalman, or None."""
    try:
        import pykalman  # noqa: F401

        return sys.executable
    except ImportError:
        pass
    cand = os.environ.get("PYKALMAN_PYTHON", "/tmp/pykalman-venv/bin/python")
    if cand and Path(cand).exists():
        ok = subprocess.run([cand, "-c", "import pykalman"], capture_output=True).returncode == 0
        if ok:
            return cand
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=5000)
    ap.add_argument("--p", type=int, default=30)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--max-iter", type=int, default=200)
    args = ap.parse_args()

    from ncli.models.lds import LinearDynamicalSystem

    Y = sample(args.T, args.p)
    init = LinearDynamicalSystem(n_states=4, method="ssid", obs_noise="full").fit(Y)
    t0 = time.perf_counter()
    ours = LinearDynamicalSystem(n_states=4, method="em", obs_noise="full", tol=args.tol,
                                 max_iter=args.max_iter).fit(Y)
    t_ours = time.perf_counter() - t0
    t_ssid = None
    t1 = time.perf_counter()
    LinearDynamicalSystem(n_states=4, method="ssid", obs_noise="full").fit(Y)
    t_ssid = time.perf_counter() - t1
    result = {
        "data": {"T": args.T, "p": args.p, "K": 4, "tol": args.tol, "max_iter": args.max_iter},
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                    "platform": platform.platform()},
        "ncli": {"seconds": t_ours, "seconds_ssid_init": t_ssid, "n_iter": int(ours.n_iter_),
                 "loglik": float(ours.loglik_[-1]), "converged": bool(ours.converged_),
                 "note": "fit() time including the subspace identification start"},
    }
    print(f"ncli EM: {t_ours:.2f} s ({ours.n_iter_} iterations, incl. {t_ssid:.2f} s subspace id), "
          f"log-likelihood {ours.loglik_[-1]:.2f}, converged={ours.converged_}")
    py = pykalman_python()
    if py is None:
        msg = ("pykalman is not importable: skipped (python3 -m venv /tmp/pykalman-venv && "
               "/tmp/pykalman-venv/bin/pip install pykalman, or set PYKALMAN_PYTHON)")
        print(msg)
        result["pykalman"] = {"skipped": msg}
    else:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data.npz"
            script = Path(tmp) / "pk.py"
            np.savez(data, Y=Y, A=init.A_, C=init.C_, Q=init.Q_, R=init.R_, d=init.d_, x0=init.x0_, P0=init.P0_)
            script.write_text(PYKALMAN_EM)
            proc = subprocess.run([py, str(script), str(data), str(args.tol), str(args.max_iter)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return 1
            pk = json.loads(proc.stdout.strip().splitlines()[-1])
        ratio = pk["seconds"] / t_ours
        result["pykalman"] = {k: pk[k] for k in ("seconds", "n_iter", "loglik", "converged", "version")}
        result["pykalman"]["python"] = py
        result["ratio_pykalman_over_ncli"] = ratio
        result["loglik_difference_ncli_minus_pykalman"] = float(ours.loglik_[-1]) - pk["loglik"]
        print(f"pykalman EM: {pk['seconds']:.2f} s ({pk['n_iter']} iterations), log-likelihood {pk['loglik']:.2f}, "
              f"converged={pk['converged']}")
        print(f"ratio (pykalman / ncli): {ratio:.1f}x; log-likelihood difference (ncli - pykalman): "
              f"{result['loglik_difference_ncli_minus_pykalman']:.3f}")
    out = HERE / "results" / "fit_lds.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
