"""``ncli fit-lds``: subspace identification + EM on sampled LDS data, missing bins, the CLI, real M1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.linalg import solve_discrete_lyapunov
from scipy.optimize import linear_sum_assignment
from typer.testing import CliRunner

from ncli.cli import app
from ncli.core.errors import NotFittedError
from ncli.formats.store import Store
from ncli.models.base import Estimator
from ncli.models.lds import LinearDynamicalSystem, stabilize, timescales

runner = CliRunner()
NCLI = str(Path(sys.executable).with_name("ncli"))


def run(args, **kw):
    return runner.invoke(app, [str(a) for a in args], **kw)


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


# ----------------------------------------------------------------------------- builders


def rotating_A(r=0.97, period=40.0, decays=(0.95, 0.8)) -> np.ndarray:
    """A rotating pair ``r e^{±i 2π/period}`` plus real decays (block diagonal)."""
    th = 2 * np.pi / period
    K = 2 + len(decays)
    A = np.zeros((K, K))
    A[:2, :2] = r * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    A[2:, 2:] = np.diag(decays)
    return A


def sample_lds(T=5000, p=30, A=None, q=0.1, seed=0):
    """Data from a known LDS and the model holding the true parameters."""
    rng = np.random.default_rng(seed)
    A = rotating_A() if A is None else A
    K = A.shape[0]
    Q = q * np.eye(K)
    C = rng.standard_normal((p, K))
    d = rng.standard_normal(p)
    R = np.diag(rng.uniform(0.5, 1.5, p))
    P0 = solve_discrete_lyapunov(A, Q)
    x = np.zeros((T, K))
    x[0] = rng.multivariate_normal(np.zeros(K), P0)
    w = rng.standard_normal((T, K)) * np.sqrt(q)
    for t in range(1, T):
        x[t] = A @ x[t - 1] + w[t]
    Y = x @ C.T + d + rng.standard_normal((T, p)) * np.sqrt(np.diag(R))
    truth = LinearDynamicalSystem(n_states=K)
    truth.A_, truth.C_, truth.d_, truth.Q_, truth.R_, truth.x0_, truth.P0_ = A, C, d, Q, R, np.zeros(K), P0
    return Y, truth


def eig_error(A_true: np.ndarray, eig_fit: np.ndarray) -> float:
    """Largest |λ_true - λ_fit| after matching the eigenvalues by optimal assignment."""
    lt = np.linalg.eigvals(A_true)
    lf = eig_fit[:, 0] + 1j * eig_fit[:, 1] if eig_fit.ndim == 2 else eig_fit
    D = np.abs(lt[:, None] - lf[None, :])
    r, c = linear_sum_assignment(D)
    return float(D[r, c].max())


def assert_monotone(curve: np.ndarray) -> None:
    steps = np.diff(curve)
    assert np.all(steps >= -1e-8 * np.abs(curve[1:])), steps.min()


@pytest.fixture(scope="module")
def lds_data():
    return sample_lds()


# ----------------------------------------------------------------------------- acceptance on sampled data


def test_em_reaches_the_likelihood_of_the_true_parameters(lds_data):
    Y, truth = lds_data
    ll_true = truth.score(Y)
    for noise in ("diag", "full"):
        model = LinearDynamicalSystem(n_states=4, obs_noise=noise).fit(Y)
        assert model.converged_ and model.n_iter_ < 200
        assert_monotone(model.loglik_)
        # within 1 % of the truth, and not below it by more than that (EM is the MLE: usually above)
        assert abs(model.loglik_[-1] - ll_true) <= 0.01 * abs(ll_true), (model.loglik_[-1], ll_true)
        assert model.score(Y) == pytest.approx(model.loglik_[-1], rel=1e-9)
        assert eig_error(truth.A_, model.eigenvalues_) < 0.05


def test_subspace_identification_alone_recovers_the_eigenvalues(lds_data):
    Y, truth = lds_data
    model = LinearDynamicalSystem(n_states=4, method="ssid").fit(Y)
    assert model.n_iter_ == 0 and model.loglik_.shape == (1,)
    assert eig_error(truth.A_, model.eigenvalues_) < 0.05
    # deterministic: a second fit gives the same numbers
    again = LinearDynamicalSystem(n_states=4, method="ssid").fit(Y)
    assert np.array_equal(model.A_, again.A_)


def test_no_nan_in_500_em_iterations_on_73_rank_deficient_outputs():
    rng = np.random.default_rng(1)
    T, K = 1000, 3
    A = np.diag([0.99, 0.9, 0.5])
    x = np.zeros((T, K))
    for t in range(1, T):
        x[t] = A @ x[t - 1] + 0.3 * rng.standard_normal(K)
    Y0 = x @ rng.standard_normal((53, K)).T + 0.1 * rng.standard_normal((T, 53))
    Y = np.hstack([Y0, Y0 @ rng.standard_normal((53, 20)) / 5])  # 20 outputs are exact combinations
    Y[:, -1] = 3.0  # and one is constant: the output covariance is singular
    model = LinearDynamicalSystem(n_states=6, obs_noise="full", max_iter=500, tol=1e-300).fit(Y)
    assert model.n_iter_ == 500 and model.loglik_.shape == (501,)
    assert np.isfinite(model.loglik_).all()
    assert all(np.isfinite(getattr(model, a)).all() for a in LinearDynamicalSystem._learned)
    assert_monotone(model.loglik_)
    assert np.all(np.linalg.eigvalsh(model.R_) > 0) and np.all(np.linalg.eigvalsh(model.Q_) > 0)
    post = model.smooth(Y)[0]
    assert np.isfinite(post.smoothed).all() and np.isfinite(post.smoothed_cov).all()
    assert np.abs(model.eigenvalues_[:, 0] + 1j * model.eigenvalues_[:, 1]).max() == pytest.approx(0.99, abs=0.02)


def test_missing_rows_and_an_invalid_block_are_handled(lds_data):
    Y, truth = lds_data
    Y, truth = Y[:3000], truth
    full = LinearDynamicalSystem(n_states=4, obs_noise="diag").fit(Y)
    rng = np.random.default_rng(5)
    Ym = Y.copy()
    Ym[rng.random(len(Y)) < 0.1] = np.nan  # 10 % random rows
    Ym[1200:1400] = np.nan  # an invalid block of 200 bins
    Ym[2000, 3] = np.nan  # a partly missing row counts as missing
    model = LinearDynamicalSystem(n_states=4, obs_noise="diag").fit(Ym)
    assert all(np.isfinite(getattr(model, a)).all() for a in LinearDynamicalSystem._learned)
    assert_monotone(model.loglik_)
    # the parameters fitted with missing bins explain the complete data almost as well
    assert model.score(Y) >= full.score(Y) - 0.005 * abs(full.score(Y))
    assert eig_error(truth.A_, model.eigenvalues_) < 0.05
    post = model.smooth(Ym)[0]
    assert np.isfinite(post.smoothed).all()  # missing bins get states from their neighbours
    # the smoother's uncertainty grows inside the gap
    assert np.trace(post.smoothed_cov[1300]) > 3 * np.trace(post.smoothed_cov[1000])


def test_several_sequences_share_one_system():
    Y1, truth = sample_lds(T=2000, seed=2)
    rng = np.random.default_rng(9)
    x = np.zeros((2000, 4))
    for t in range(1, 2000):
        x[t] = truth.A_ @ x[t - 1] + np.sqrt(0.1) * rng.standard_normal(4)
    Y2 = x @ truth.C_.T + truth.d_ + rng.standard_normal((2000, 30)) * np.sqrt(np.diag(truth.R_))
    model = LinearDynamicalSystem(n_states=4, obs_noise="diag").fit([Y1, Y2])
    assert eig_error(truth.A_, model.eigenvalues_) < 0.05
    assert model.score([Y1, Y2]) == pytest.approx(model.loglik_[-1], rel=1e-9)
    assert len(model.smooth([Y1, Y2])) == 2


def test_timescales_of_a_known_eigenvalue():
    # λ = 0.9 e^{iπ/10}, Δt = 0.05 s: τ = -0.05 / ln 0.9 = 0.474561 s, f = (π/10) / (2π 0.05) = 1 Hz
    out = timescales(np.array([0.9 * np.exp(1j * np.pi / 10), -0.5, 1.0, 0.0]), 0.05)
    assert out["time_constants_s"][0] == pytest.approx(0.474561, abs=1e-6)
    assert out["rotation_hz"][0] == pytest.approx(1.0, abs=1e-12)
    assert out["time_constants_s"][1] == pytest.approx(0.05 / np.log(2)) and out["rotation_hz"][1] == pytest.approx(10.0)
    assert out["time_constants_s"][2] == np.inf and out["rotation_hz"][2] == 0
    assert out["time_constants_s"][3] == 0
    # real/imag columns give the same answer
    lam = 0.9 * np.exp(1j * np.pi / 10)
    assert timescales(np.array([[lam.real, lam.imag]]), 0.05)["rotation_hz"][0] == pytest.approx(1.0)


def test_stabilize_pulls_eigenvalues_inside_the_unit_circle():
    A = np.array([[1.05, 0.0], [0.0, 0.5]])
    B = stabilize(A)
    assert np.abs(np.linalg.eigvals(B)).max() == pytest.approx(0.999)
    assert np.allclose(stabilize(0.5 * np.eye(2)), 0.5 * np.eye(2))


def test_forecast_uses_only_the_past(lds_data):
    Y, _ = lds_data
    model = LinearDynamicalSystem(n_states=4, method="ssid").fit(Y[:1000])
    F = model.forecast(Y[:300], max_k=3)
    Z = Y[:300].copy()
    Z[200:] += 100.0  # changing the future does not change forecasts made before it
    G = model.forecast(Z, max_k=3)
    assert np.allclose(F[0, :201], G[0, :201]) and np.allclose(F[2, :203], G[2, :203], equal_nan=True)
    assert np.isnan(F[2, :2]).all() and np.isfinite(F[2, 2:]).all()
    assert not np.allclose(F[0, 201], G[0, 201])


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "gibbs"}, "invalid value 'gibbs' for method"),
    ({"obs_noise": "banded"}, "invalid value 'banded' for obs_noise"),
    ({"n_states": 0}, "n_states must be a positive integer, got 0"),  # the command shows --dim
    ({"tol": 0}, "tol must be > 0, got 0"),
])
def test_bad_hyperparameters(kwargs, message):
    with pytest.raises(Exception, match=message):
        LinearDynamicalSystem(**kwargs).fit(np.random.default_rng(0).standard_normal((200, 3)))


def test_unfitted_model_says_so():
    with pytest.raises(NotFittedError, match="LinearDynamicalSystem is not fitted yet; call fit\\(\\) first"):
        LinearDynamicalSystem().smooth(np.zeros((10, 2)))


# ----------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def sim_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "sim.zarr"
    res = run(["simulate", "lds", "--duration", "120", "--seed", "1", "-o", out],
              env={"NCLI_CACHE": str(out.parent / "cache")})
    assert res.exit_code == 0, res.stderr
    return str(out)


def test_cli_pipeline_simulate_embed_fit_lds(sim_store, tmp_path):
    emb = run(["embed", sim_store, "--method", "pca", "--dim", 4, "-o", tmp_path / "pca.zarr"])
    assert emb.exit_code == 0, emb.stderr
    res = run(["fit-lds", "--latents", "pca", "--max-iter", 100, "-o", tmp_path / "lds.zarr"],
              input=str(tmp_path / "pca.zarr") + "\n")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == str(tmp_path / "lds.zarr")
    assert "fit-lds em: K=4" in res.stderr and "forecast R² on held-out time" in res.stderr
    st = Store.open(tmp_path / "lds.zarr")
    assert [layer.meta["history"][-1]["command"] for layer in st.layers] == ["fit-lds", "embed", "simulate"]
    Z = st.read("sessions/sim0/latents/lds")
    assert Z.shape == (6000, 4) and Z.dtype == np.float32 and np.isfinite(Z).all()
    la = st.attrs("sessions/sim0/latents/lds")
    assert la["test_start_bin"] == 4800 and la["model"] == "models/lds" and la["source"] == "latents/pca"
    g = st.root["models/lds"]
    attrs = dict(g.attrs)
    assert attrs["class"] == "ncli/lds@1" and "version" in attrs
    assert attrs["config"]["n_states"] == 4 and attrs["config"]["method"] == "em"
    for name, shape in {"A_": (4, 4), "C_": (4, 4), "Q_": (4, 4), "R_": (4, 4), "d_": (4,), "x0_": (4,),
                        "P0_": (4, 4), "eigenvalues_": (4, 2), "time_constants_s": (4,), "rotation_hz": (4,),
                        "forecast_r2": (4,)}.items():
        assert g[name].shape == shape, name
    m = attrs["metrics"]
    for key in ("loglik", "n_iter", "converged", "eigenvalues", "time_constants_s", "rotation_hz", "forecast_r2"):
        assert key in m, key
    assert len(m["forecast_r2"]) == 4 and m["forecast_r2"][0] > 0
    assert g["loglik_"].shape == (m["n_iter"] + 1,) and m["loglik"] == pytest.approx(g["loglik_"][-1])
    # the saved model reproduces the stored latents
    model = Estimator.from_group(g)
    Y = st.read("sessions/sim0/latents/pca").astype(np.float64)
    assert np.allclose(model.smooth(Y)[0].smoothed, Z, atol=1e-3)
    # time constants stored = those of the stored eigenvalues
    ts = timescales(g["eigenvalues_"][...], 0.02)
    assert np.allclose(g["time_constants_s"][...], ts["time_constants_s"])


def test_subprocess_pipe_simulate_embed_fit_lds(tmp_path):
    env = dict(os.environ, NCLI_CACHE=str(tmp_path / "cache"))
    cmd = (f"{NCLI} simulate lds --duration 60 --seed 2 | {NCLI} embed --method pca --dim 4 "
           f"| {NCLI} fit-lds --latents pca --max-iter 30")
    proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(str(tmp_path / "cache"))
    st = Store.open(lines[0])
    assert st.read("sessions/sim0/latents/lds").shape == (3000, 4)
    assert "fit-lds em: K=4" in proc.stderr and "eigenvalues: |λ|" in proc.stderr
    again = subprocess.run(f"echo {st.layers[1].location} | {NCLI} fit-lds --latents pca --max-iter 30 --quiet",
                           shell=True, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and again.stdout == proc.stdout and again.stderr == ""  # the run cache


def test_fit_lds_on_true_latents_recovers_the_true_eigenvalues(sim_store, tmp_path):
    res = run(["fit-lds", sim_store, "--latents", "truth", "--max-iter", 50, "-o", tmp_path / "t.zarr"])
    assert res.exit_code == 0, res.stderr
    st = Store.open(tmp_path / "t.zarr")
    true = st.read("models/truth/eigenvalues_")
    fit = st.read("models/lds/eigenvalues_")
    mod_true = np.sort(np.hypot(true[:, 0], true[:, 1]))
    mod_fit = np.sort(np.hypot(fit[:, 0], fit[:, 1]))
    assert np.abs(mod_true - mod_fit).max() < 0.05, (mod_true, mod_fit)
    assert eig_error(np.diag(true[:, 0] + 1j * true[:, 1]), fit) < 0.05
    # rotation frequencies of the simulator (0.5 and 2 Hz at 0.02 s bins) come back
    f = np.sort(np.unique(np.round(st.read("models/lds/rotation_hz"), 2)))
    assert np.allclose(f, [0.5, 2.0], atol=0.1)


def test_ssid_method_missing_bins_and_counts_input(sim_store, tmp_path):
    res = run(["fit-lds", sim_store, "--counts", "--dim", 4, "--method", "ssid", "--obs-noise", "diag",
               "--test-fraction", 0.25, "-o", tmp_path / "c.zarr"])
    assert res.exit_code == 0, res.stderr
    st = Store.open(tmp_path / "c.zarr")
    assert st.attrs("models/lds")["metrics"]["n_iter"] == 0
    assert st.attrs("sessions/sim0/latents/lds")["source"] == "binned/counts (sqrt)"
    assert st.read("sessions/sim0/latents/lds").shape == (6000, 4)
    assert st.attrs("sessions/sim0/latents/lds")["test_start_bin"] == 4500


@pytest.mark.parametrize("args, code, message", [
    (["--latents", "nope"], 2, "ncli fit-lds: error: unknown latents 'nope' (session sim0); "
                               "hint: latents in this store: truth"),
    ([], 2, "ncli fit-lds: error: missing --latents (--latents); hint: latents in this store: truth"),
    (["--latents", "truth", "--counts"], 2, "ncli fit-lds: error: --latents and --counts are mutually exclusive"),
    (["--latents", "truth", "--method", "gibbs"], 2, "ncli fit-lds: error: invalid value 'gibbs' for --method"),
    (["--latents", "truth", "--test-fraction", "1"], 2,
     "ncli fit-lds: error: --test-fraction must be in [0, 0.9), got 1.0"),
    (["--latents", "truth", "--dim", "0"], 2, "ncli fit-lds: error: --dim must be a positive integer, got 0"),
])
def test_bad_requests_are_one_line_errors(sim_store, tmp_path, args, code, message):
    res = run(["fit-lds", sim_store, "-o", tmp_path / "o.zarr", *args])
    assert res.exit_code == code
    assert one_line(res.stderr).startswith(message), res.stderr
    assert not (tmp_path / "o.zarr").exists()


# ----------------------------------------------------------------------------- the real M1 recording


def test_real_m1_pca_latents_forecast(tmp_path):
    nwb = Path(__file__).resolve().parents[2] / "shared" / "data" / "monkey_reach" / "m1_stevenson_2011.nwb"
    if not nwb.is_file():
        pytest.skip(f"real recording not found: {nwb}")
    conv = run(["convert", nwb, "--bin-size", "0.05", "-o", tmp_path / "m1.zarr"])
    assert conv.exit_code == 0, conv.stderr
    emb = run(["embed", tmp_path / "m1.zarr", "--method", "pca", "--dim", 8, "-o", tmp_path / "pca.zarr"])
    assert emb.exit_code == 0, emb.stderr
    res = run(["fit-lds", tmp_path / "pca.zarr", "--latents", "pca", "-o", tmp_path / "lds.zarr"])
    assert res.exit_code == 0, res.stderr
    m = Store.open(tmp_path / "lds.zarr").attrs("models/lds")["metrics"]
    assert m["forecast_r2"][0] > 0.2, m["forecast_r2"]  # 0.43 measured (20 % held-out time)
    assert all(a >= b for a, b in zip(m["forecast_r2"], m["forecast_r2"][1:]))  # worse further ahead
    assert max(m["eigenvalue_modulus"]) < 1 and m["converged"]


@pytest.mark.slow
def test_em_on_a_long_sequence_with_full_noise_and_many_outputs():
    Y, truth = sample_lds(T=20000, p=60, seed=3)
    model = LinearDynamicalSystem(n_states=4, obs_noise="full", max_iter=500).fit(Y)
    ll_true = truth.score(Y)
    assert abs(model.loglik_[-1] - ll_true) <= 0.002 * abs(ll_true)
    assert eig_error(truth.A_, model.eigenvalues_) < 0.02
    assert_monotone(model.loglik_)
