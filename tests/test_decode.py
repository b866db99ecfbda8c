"""``ncli decode --method ridge|kalman``: simulated ground truth, real M1 reaching, errors, pipes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ncli.cli import app
from ncli.formats.session import BehaviorSeries, UnitsSource, write_session
from ncli.formats.store import Store, StoreWriter
from ncli.models.base import Estimator
from ncli.simulators import PoissonLDS

runner = CliRunner()
NCLI = str(Path(sys.executable).with_name("ncli"))


def make_store(location: Path, *, units=(50,), duration=300.0, bin_size=0.05, rate=10.0,
               epochs=None, extra_behavior=False, seed=0) -> str:
    """Simulated sessions s0, s1, ... (one per entry of ``units``) written with write_session.

    With ``extra_behavior`` the session also has 'heading' (circular, rad) and 'noise'
    (a smooth random signal independent of the neurons).
    """
    with StoreWriter(str(location), command="convert") as w:
        for i, n in enumerate(units):
            sess = PoissonLDS(n_units=n, latent_dim=4, bin_size=bin_size, baseline_rate=rate,
                              seed=seed + i).init_params().sample(duration)[0]
            b = sess.behavior["velocity"]
            behavior = {"velocity": BehaviorSeries(b["timestamps"], b["data"], unit="cm/s", columns=["x", "y"])}
            if extra_behavior:
                heading = np.arctan2(b["data"][:, 1], b["data"][:, 0])
                behavior["heading"] = BehaviorSeries(b["timestamps"], heading, unit="rad", columns=["heading"],
                                                     circular=True)
                rng = np.random.default_rng(99)
                noise = np.convolve(rng.standard_normal(len(b["timestamps"])), np.ones(50) / 50, mode="same")
                behavior["noise"] = BehaviorSeries(b["timestamps"], noise, unit="a.u.", columns=["n"])
            write_session(w, f"s{i}", units=UnitsSource(sess.ids, sess.areas, lambda u, s=sess: s.spike_times[u]),
                          bin_size=bin_size, t_start=0.0, t_stop=duration,
                          epochs=None if epochs is None else np.array(epochs), behavior=behavior)
            w.array(f"sessions/s{i}/latents/truth", sess.latents)
    return str(location)


def run(args, **kw):
    return runner.invoke(app, [str(a) for a in args], **kw)


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("method, lags", [("ridge", 3), ("kalman", 0)])
def test_decoders_recover_simulated_velocity_through_the_cli(tmp_path, monkeypatch, method, lags):
    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    src = make_store(tmp_path / "in.zarr", epochs=((0.0, 140.0), (141.0, 300.0)))
    out = tmp_path / "dec.zarr"
    res = run(["decode", src, "--method", method, "--target", "velocity", "--lags", lags, "-o", out])
    assert res.exit_code == 0, res.stderr
    assert res.stdout == f"{out}\n"
    summary = one_line(res.stderr)
    assert summary.startswith(f"decode {method} velocity: R² = ") and summary.endswith(", 5 folds")
    st = Store.open(out)
    pred = st.read(f"sessions/s0/predictions/{method}_velocity")
    attrs = st.attrs(f"sessions/s0/predictions/{method}_velocity")
    m = attrs["metrics"]
    assert pred.shape == (6000, 2)
    assert m["r2_mean"] > 0.8 and len(m["r2"]) == 2 and len(m["pearson_r"]) == 2
    assert m["n_folds"] == 5 and m["gap_bins"] == lags and len(m["fold_r2_mean"]) == 5
    valid = st.read("sessions/s0/binned/valid")
    assert np.isnan(pred[~valid]).all()
    assert np.isnan(pred[:lags]).all() and np.isfinite(pred[lags:2800]).all()
    assert attrs["columns"] == ["x", "y"] and attrs["unit"] == "cm/s"
    model = Estimator.from_group(st.root[f"models/{method}_velocity/s0"])
    assert model.is_fitted
    group_attrs = st.attrs(f"models/{method}_velocity")
    assert group_attrs["metrics"]["r2_mean"] == pytest.approx(m["r2_mean"])
    if method == "ridge":
        assert st.root["models/ridge_velocity/s0/coef_"].shape == (50 * (lags + 1), 2)
        assert "alpha_" in st.attrs("models/ridge_velocity/s0")["learned"]
    else:
        assert {"A_", "W_", "H_", "Q_"} <= set(st.root["models/kalman_velocity/s0"].array_keys())


def test_target_unrelated_to_the_neurons_is_not_decoded_so_folds_do_not_leak(tmp_path, monkeypatch):
    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    src = make_store(tmp_path / "in.zarr", duration=200.0, extra_behavior=True)
    res = run(["decode", src, "--target", "noise", "--lags", 6, "-o", tmp_path / "o.zarr"])
    assert res.exit_code == 0, res.stderr
    r2 = Store.open(tmp_path / "o.zarr").attrs("sessions/s0/predictions/ridge_noise")["metrics"]["r2_mean"]
    assert r2 < 0.05


def test_circular_target_reports_circular_error(tmp_path, monkeypatch):
    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    src = make_store(tmp_path / "in.zarr", duration=200.0, extra_behavior=True)
    res = run(["decode", src, "--target", "heading", "--lags", 2, "-o", tmp_path / "o.zarr"])
    assert res.exit_code == 0, res.stderr
    st = Store.open(tmp_path / "o.zarr")
    pred = st.read("sessions/s0/predictions/ridge_heading")
    m = st.attrs("sessions/s0/predictions/ridge_heading")["metrics"]
    assert pred.shape == (4000, 1) and np.nanmax(np.abs(pred)) <= np.pi
    assert 0 < m["circular_error_deg_mean"] < 45 and m["circular_error_deg"][0] == m["circular_error_deg_mean"]
    assert "circular error" in res.stderr


@pytest.mark.parametrize("target, columns", [("velocity[0]", ["x"]), ("velocity[y]", ["y"]),
                                             ("velocity[x,y]", ["x", "y"])])
def test_target_columns_can_be_chosen(tmp_path, monkeypatch, target, columns):
    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    src = make_store(tmp_path / "in.zarr", duration=60.0)
    res = run(["decode", src, "--target", target, "-o", tmp_path / "o.zarr"])
    assert res.exit_code == 0, res.stderr
    st = Store.open(tmp_path / "o.zarr")
    assert st.attrs("sessions/s0/predictions/ridge_velocity")["columns"] == columns
    assert st.read("sessions/s0/predictions/ridge_velocity").shape == (1200, len(columns))


@pytest.mark.parametrize("args, code, message", [
    (["--target", "hand_vel"], 2, "ncli decode: error: unknown target 'hand_vel' (session s0); "
                                  "hint: behaviours: velocity"),
    ([], 2, "ncli decode: error: missing --target"),
    (["--target", "velocity", "--method", "svm"], 2, "ncli decode: error: invalid value 'svm' for --method"),
    (["--target", "velocity[z]"], 2, "ncli decode: error: unknown column 'z' of 'velocity'"),
    (["--target", "velocity", "--latents", "pca"], 2, "ncli decode: error: unknown latents 'pca' (session s0); "
                                                      "hint: latents: truth"),
    (["--target", "velocity", "--lags", "-1"], 2, "ncli decode: error: --lags must be >= 0, got -1"),
    (["--target", "velocity", "--folds", "1"], 2, "ncli decode: error: --folds must be at least 2, got 1"),
    (["--target", "velocity", "--method", "kalman", "--alpha", "1"], 2,
     "ncli decode: error: --alpha applies to --method ridge only"),
    (["--target", "velocity", "--alpha", "x"], 2, "ncli decode: error: invalid --alpha 'x'"),
    (["--target", "velocity", "--train-sessions", "s0"], 2,
     "ncli decode: error: --train-sessions and --test-sessions must be given together"),
    (["--target", "velocity", "--folds", "5000"], 1, "ncli decode: error: 1200 usable bins are too few for 5000 folds"),
])
def test_bad_requests_are_one_line_errors(tmp_path, monkeypatch, args, code, message):
    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    src = make_store(tmp_path / "in.zarr", duration=60.0)
    res = run(["decode", src, "-o", tmp_path / "o.zarr", *args])
    assert res.exit_code == code
    assert one_line(res.stderr).startswith(message), res.stderr
    assert not (tmp_path / "o.zarr").exists()


def test_fixed_alpha_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    src = make_store(tmp_path / "in.zarr", duration=60.0)
    res = run(["decode", src, "--target", "velocity", "--alpha", "123", "-o", tmp_path / "o.zarr"])
    assert res.exit_code == 0, res.stderr
    assert Store.open(tmp_path / "o.zarr").attrs("models/ridge_velocity/s0")["learned"]["alpha_"] == 123.0


def test_train_and_test_sessions_on_shared_latents(tmp_path, monkeypatch):
    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    sim = tmp_path / "sim.zarr"
    res = run(["simulate", "lds", "-o", sim, "--sessions", 3, "--units", 30, "--duration", 60, "--bin-size", 0.05])
    assert res.exit_code == 0, res.stderr
    for method in ("ridge", "kalman"):
        out = tmp_path / f"{method}.zarr"
        res = run(["decode", sim, "--method", method, "--target", "velocity", "--latents", "truth",
                   "--train-sessions", "sim0,sim1", "--test-sessions", "sim2", "-o", out])
        assert res.exit_code == 0, res.stderr
        assert "[sim2]" in res.stderr and "trained on sim0,sim1" in res.stderr
        st = Store.open(out)
        assert list(st.root["sessions"].keys()) == ["sim2"]  # predictions only for the test session
        m = st.attrs(f"sessions/sim2/predictions/{method}_velocity")["metrics"]
        assert m["evaluation"] == "sessions" and m["r2_mean"] > 0.9
        assert st.attrs(f"models/{method}_velocity/cross_session")["train_sessions"] == ["sim0", "sim1"]


def test_train_and_test_sessions_with_different_units_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    src = make_store(tmp_path / "in.zarr", units=(20, 25), duration=30.0)
    res = run(["decode", src, "--target", "velocity", "--train-sessions", "s0", "--test-sessions", "s1",
               "-o", tmp_path / "o.zarr"])
    assert res.exit_code == 2
    assert one_line(res.stderr).startswith(
        "ncli decode: error: training and test sessions have different feature dimensions (s0: 20, s1: 25)")
    assert "--latents" in res.stderr


def test_subprocess_pipe_simulate_embed_decode(tmp_path):
    env = dict(os.environ, NCLI_CACHE=str(tmp_path / "cache"))
    cmd = (f"{NCLI} simulate lds --duration 120 --bin-size 0.05 --baseline-rate 10 "
           f"| {NCLI} embed --method pca --dim 4 --smooth 0.1 "
           f"| {NCLI} decode --method ridge --target velocity --latents pca --lags 2")
    proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(str(tmp_path / "cache"))
    st = Store.open(lines[0])
    assert [layer.meta["history"][-1]["command"] for layer in st.layers] == ["decode", "embed", "simulate"]
    m = st.attrs("sessions/sim0/predictions/ridge_velocity")["metrics"]
    assert m["r2_mean"] > 0.7
    assert "decode ridge velocity: R² =" in proc.stderr


# ----------------------------------------------------------------------------- the real M1 recording


@pytest.fixture(scope="module")
def m1_store(tmp_path_factory):
    nwb = Path(__file__).resolve().parents[2] / "shared" / "data" / "monkey_reach" / "m1_stevenson_2011.nwb"
    if not nwb.is_file():
        pytest.skip(f"real recording not found: {nwb}")
    out = tmp_path_factory.mktemp("m1") / "m1.zarr"
    res = runner.invoke(app, ["convert", str(nwb), "--bin-size", "0.05", "-o", str(out)],
                        env={"NCLI_CACHE": str(out.parent / "cache")})
    if res.exit_code != 0 and "NotImplementedError" in res.stderr:
        pytest.skip("ncli convert is not implemented yet")
    assert res.exit_code == 0, res.stderr
    return str(out)


@pytest.mark.parametrize("method, lags, threshold", [("ridge", 6, 0.70), ("kalman", 0, 0.60)])
def test_real_m1_hand_velocity(m1_store, tmp_path, monkeypatch, method, lags, threshold):
    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    res = run(["decode", m1_store, "--method", method, "--target", "hand_velocity", "--lags", lags,
               "-o", tmp_path / "o.zarr"])
    assert res.exit_code == 0, res.stderr
    m = Store.open(tmp_path / "o.zarr").attrs(f"sessions/{Store.open(m1_store).sessions()[0]}"
                                              f"/predictions/{method}_hand_velocity")["metrics"]
    assert m["n_folds"] == 5
    # z is constant (planar reach): its R² is undefined (NaN, stored as null) and left out of the mean
    assert m["r2"][2] is None
    assert m["r2_mean"] == pytest.approx(np.mean(m["r2"][:2]))
    assert m["r2_mean"] >= threshold, m


# ----------------------------------------------------------------------------- popmean (the baseline)


def _gain_store(location: Path, n_units: int = 40, duration: float = 200.0, seed: int = 0) -> str:
    """Units sharing one slow gain g(t) (Poisson, 10 Hz x g); behaviour 'gain' is g itself."""
    rng = np.random.default_rng(seed)
    dt = 0.01
    t = np.arange(0.0, duration, dt)
    g = np.exp(0.6 * np.sin(2 * np.pi * t / 7.0) + 0.4 * np.sin(2 * np.pi * t / 2.3))
    spikes = []
    for _ in range(n_units):
        counts = rng.poisson(10.0 * g * dt * rng.uniform(0.5, 1.5))
        spikes.append(np.sort(np.repeat(t, counts) + rng.uniform(0, dt, counts.sum())))
    with StoreWriter(str(location), command="convert") as w:
        write_session(w, "s0", units=UnitsSource(np.array([f"u{k}" for k in range(n_units)]),
                                                 np.array([""] * n_units), lambda u: spikes[u]),
                      bin_size=0.05, t_start=0.0, t_stop=duration,
                      behavior={"gain": BehaviorSeries(t, g, unit="", columns=["gain"])})
    return str(location)


def test_popmean_carries_the_gain_but_not_the_population_code(tmp_path):
    """Ground truth both ways: the LDS velocity is a zero-mean readout (the population mean carries
    almost none of it, ridge on the units does); a shared gain is the population mean itself."""
    sim = tmp_path / "lds.zarr"
    assert runner.invoke(app, ["simulate", "lds", "--duration", 120, "--units", 30, "--seed", 1, "-o", str(sim)]
                         ).exit_code == 0
    r2 = {}
    for method in ("popmean", "ridge"):
        out = tmp_path / f"{method}.zarr"
        res = runner.invoke(app, ["decode", str(sim), "--method", method, "--target", "velocity", "--lags", 3,
                                  "-o", str(out)])
        assert res.exit_code == 0, res.stderr
        r2[method] = Store.open(str(out)).attrs(f"sessions/sim0/predictions/{method}_velocity")["metrics"]["r2_mean"]
    assert r2["popmean"] < 0.1 and r2["ridge"] > 0.3, r2
    gain = _gain_store(tmp_path / "gain.zarr")
    out = tmp_path / "g.zarr"
    res = runner.invoke(app, ["decode", gain, "--method", "popmean", "--target", "gain", "-o", str(out)])
    assert res.exit_code == 0, res.stderr
    st = Store.open(str(out))
    m = st.attrs("sessions/s0/predictions/popmean_gain")["metrics"]
    assert m["r2_mean"] > 0.8, m
    model = Estimator.from_group(st.root["models/popmean_gain/s0"])
    assert model.coef_.shape == (1, 1)  # one feature: the population mean (no lags)
    assert st.attrs("sessions/s0/predictions/popmean_gain")["features"]["source"] == "binned/counts (population mean)"


def test_popmean_takes_only_its_options(tmp_path):
    res = runner.invoke(app, ["decode", "x.zarr", "--method", "popmean", "--latents", "pca", "--target", "v"])
    assert res.exit_code == 2
    assert "--latents applies to --method ridge, kalman only" in res.stderr


# ----------------------------------------------------------------------------- bounded memory (blocked fits)


def _decode_both(tmp_path, monkeypatch, method, args):
    """Run ``decode`` on the whole matrix and with blocks of a few dozen bins; return both layers."""
    import ncli.formats.view as view_mod
    from ncli.formats.view import SessionView

    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    src = make_store(tmp_path / "in.zarr", units=(12,), duration=60.0, epochs=[[0, 20], [21, 60]])
    whole = run(["decode", src, "--method", method, "--target", "velocity", *args, "-o", tmp_path / "w.zarr",
                 "--no-cache", "-q"])
    assert whole.exit_code == 0, whole.output
    calls = []
    real = SessionView.blocks
    monkeypatch.setattr(SessionView, "blocks", lambda self, n, **kw: (calls.append(n), real(self, n, **kw))[1])
    monkeypatch.setattr(view_mod, "BLOCK_BYTES", 8 * 12 * 4 * 40)  # 40 bins of 12 units x 4 lags
    monkeypatch.setattr("ncli.methods.decode._blocked.SPILL_BYTES", 0)  # session totals wait on disk
    blocked = run(["decode", src, "--method", method, "--target", "velocity", *args, "-o", tmp_path / "b.zarr",
                   "--no-cache", "-q"])
    assert blocked.exit_code == 0, blocked.output
    assert calls and max(calls) == 40  # 1200 bins > one block: the blocked path ran
    return Store.open(tmp_path / "w.zarr"), Store.open(tmp_path / "b.zarr")


def test_blocked_ridge_equals_the_whole_matrix_fit(tmp_path, monkeypatch):
    w, b = _decode_both(tmp_path, monkeypatch, "ridge", ["--lags", "3", "--folds", "4"])
    for name in ("coef_", "intercept_", "feature_mean_", "feature_scale_", "gcv_score_"):
        ref, got = w.read(f"models/ridge_velocity/s0/{name}"), b.read(f"models/ridge_velocity/s0/{name}")
        np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-8 * np.abs(ref).max())
    pw, pb = w.read("sessions/s0/predictions/ridge_velocity"), b.read("sessions/s0/predictions/ridge_velocity")
    assert np.array_equal(np.isnan(pw), np.isnan(pb)) and np.isnan(pw[:3]).all()  # lag window and the gap
    np.testing.assert_allclose(pb, pw, rtol=1e-5, atol=1e-5)  # out-of-fold: total minus each fold's statistics
    mw = w.attrs("sessions/s0/predictions/ridge_velocity")["metrics"]
    mb = b.attrs("sessions/s0/predictions/ridge_velocity")["metrics"]
    assert mb["r2_mean"] == pytest.approx(mw["r2_mean"], abs=1e-6) and mw["r2_mean"] > 0.3


def test_blocked_kalman_equals_the_whole_matrix_fit(tmp_path, monkeypatch):
    w, b = _decode_both(tmp_path, monkeypatch, "kalman", ["--lags", "3", "--folds", "3"])
    pw, pb = w.read("sessions/s0/predictions/kalman_velocity"), b.read("sessions/s0/predictions/kalman_velocity")
    assert np.array_equal(np.isnan(pw), np.isnan(pb))
    np.testing.assert_allclose(pb, pw, rtol=1e-5, atol=1e-5 * np.nanmax(np.abs(pw)))
    for name in ("A_", "W_", "H_", "Q_", "P0_", "obs_mean_", "state_mean_"):
        ref, got = w.read(f"models/kalman_velocity/s0/{name}"), b.read(f"models/kalman_velocity/s0/{name}")
        np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-8 * np.abs(ref).max())


def test_session_blocks_match_lagged_whole_session(tmp_path):
    """SessionView.blocks == lag_features(activity) for every block size, with smoothing and invalid bins."""
    from ncli.core.features import lag_features
    from ncli.formats.view import SessionView

    src = make_store(tmp_path / "in.zarr", units=(7,), duration=30.0, epochs=[[0, 10], [10.5, 30]])
    view = SessionView(Store.open(src), "s0")
    X, usable, _ = view.activity(sqrt=True, smooth_s=0.1)
    ref, ref_ok = lag_features(X, 2, usable)
    for n in (1, 37, 250, 10_000):
        got = list(view.blocks(n, lags=2, smooth_s=0.1))
        assert [s for s, _, _ in got] == list(range(0, X.shape[0], n))
        Xb = np.vstack([x for _, x, _ in got])
        ok = np.concatenate([u for _, _, u in got])
        assert np.array_equal(ok, ref_ok)
        np.testing.assert_allclose(Xb[ok], ref[ok], rtol=1e-12, atol=1e-12)
