"""``ncli align --method candy`` and ``ncli simulate candy``: RnC loss, ground truth, CLI, real data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ncli.cli import app
from ncli.formats.store import Store
from ncli.models.candy import CANDY, match_eigenvalues, rnc_loss

runner = CliRunner()
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "monkey_reach_sessions"


def run(args, **kw):
    return runner.invoke(app, [str(a) for a in args], **kw)


def naive_rnc(z: torch.Tensor, y: torch.Tensor, tau: float) -> float:
    """Rank-N-Contrast by its definition (Zha et al. 2023, Eq. 2): O(n³) loops, ties counted (>=)."""
    n = z.shape[0]
    dy = torch.cdist(y.double(), y.double(), p=1)
    s = -torch.cdist(z.double(), z.double(), p=2) / tau
    total, count = 0.0, 0
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            den = sum(math.exp(s[i, k]) for k in range(n) if k != i and dy[i, k] >= dy[i, j])
            total += -(float(s[i, j]) - math.log(den))
            count += 1
    return total / count


# ----------------------------------------------------------------------------- Rank-N-Contrast


def test_rnc_matches_a_hand_computed_value_for_three_samples():
    z = torch.tensor([[0.0], [1.0], [3.0]])
    y = torch.tensor([[0.0], [1.0], [2.0]])
    tau = 0.5
    e = math.exp
    # anchor 0: d_y = (1, 2) to samples 1, 2; s = (-2, -6)
    l0 = -math.log(e(-2) / (e(-2) + e(-6))) - math.log(e(-6) / e(-6))
    # anchor 1: d_y = (1, 1) to samples 0, 2 (a tie: each denominator holds both); s = (-2, -4)
    l1 = -math.log(e(-2) / (e(-2) + e(-4))) - math.log(e(-4) / (e(-2) + e(-4)))
    # anchor 2: d_y = (2, 1) to samples 0, 1; s = (-6, -4)
    l2 = -math.log(e(-6) / e(-6)) - math.log(e(-4) / (e(-4) + e(-6)))
    expected = (l0 + l1 + l2) / 6
    assert float(rnc_loss(z, y, tau)) == pytest.approx(expected, rel=1e-5)
    assert naive_rnc(z, y, tau) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("ties", [False, True])
def test_rnc_equals_the_naive_cubic_definition(ties):
    g = torch.Generator().manual_seed(1)
    z = torch.randn(40, 3, generator=g)
    y = torch.randn(40, 2, generator=g)
    if ties:  # integer labels: many equal label distances
        y = torch.randint(0, 3, (40, 2), generator=g).float()
    assert float(rnc_loss(z, y, 0.5)) == pytest.approx(naive_rnc(z, y, 0.5), rel=1e-5)


def test_rnc_is_invariant_to_sample_order():
    g = torch.Generator().manual_seed(2)
    z, y = torch.randn(64, 4, generator=g), torch.randn(64, 2, generator=g)
    perm = torch.randperm(64, generator=g)
    assert float(rnc_loss(z[perm], y[perm])) == pytest.approx(float(rnc_loss(z, y)), rel=1e-5)


def test_a_monotone_embedding_of_the_label_scores_lower_than_a_shuffled_one():
    y = torch.linspace(-2, 2, 100)[:, None]
    z = torch.cat([torch.tanh(y), y**3], 1)  # monotone in y
    shuffled = z[torch.randperm(100, generator=torch.Generator().manual_seed(0))]
    assert float(rnc_loss(z, y)) < float(rnc_loss(shuffled, y)) - 0.1


def test_rnc_has_finite_gradients_with_identical_features():
    z = torch.zeros(8, 3, requires_grad=True)
    rnc_loss(z, torch.randn(8, 1)).backward()
    assert torch.isfinite(z.grad).all()


# ----------------------------------------------------------------------------- ground truth


def test_eigenvalue_matching_uses_the_optimal_assignment():
    true = np.array([0.9 + 0.1j, 0.9 - 0.1j, 0.5])
    learned = np.array([0.51, 0.88 - 0.12j, 0.2, 0.88 + 0.12j])
    m = match_eigenvalues(true, learned)
    np.testing.assert_allclose(m["matched"][:, 0], [0.88, 0.88, 0.51])
    assert m["abs_error"].max() < 0.03


SIM_FIT = ["--dim", 8, "--state-dim", 4, "--smooth", 0.15, "--epochs", 10, "--refit-steps", 300]


def test_candy_recovers_dynamics_and_aligns_sessions_with_a_shuffle_control(tmp_path, monkeypatch):
    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    sim = tmp_path / "sim.zarr"
    res = run(["simulate", "candy", "--sessions", 4, "--bins", 2000, "-o", sim])
    assert res.exit_code == 0, res.stderr
    st = Store.open(sim)
    assert st.sessions() == ["sim0", "sim1", "sim2", "sim3"]
    assert len({st.array(f"sessions/{s}/binned/counts").shape[1] for s in st.sessions()}) > 1
    out = tmp_path / "al.zarr"
    res = run(["align", sim, "--method", "candy", "--behavior", "velocity", *SIM_FIT,
               "--control", "shuffle-behavior", "-o", out])
    assert res.exit_code == 0, res.stderr
    assert res.stdout == f"{out}\n"
    assert "align candy velocity: unified R² = " in res.stderr
    al = Store.open(out)
    m = al.attrs("models/candy")["metrics"]
    assert m["unified_r2_mean"] >= 0.8, m
    assert m["control_unified_r2_mean"] < 0.3, m
    assert m["unified_r2_mean"] > m["baseline_pca_unified_r2_mean"] + 0.3
    true = st.read("models/truth/eigenvalues_")
    learned = al.read("models/candy/eigenvalues_")
    match = match_eigenvalues(true[:, 0] + 1j * true[:, 1], learned[:, 0] + 1j * learned[:, 1])
    assert match["abs_error"].max() < 0.03, (match, learned)
    assert match["angle_error"].max() < 0.05, (match, learned)
    z = al.read("sessions/sim0/latents/candy")
    assert z.shape == (2000, 8) and np.isfinite(z).all()
    assert al.read("models/candy/encoders/sim1/weight_0").shape == (64, st.array(
        "sessions/sim1/binned/counts").shape[1])
    model = CANDY.from_group(al.root["models/candy"])
    counts = np.sqrt(st.read("sessions/sim0/binned/counts").astype(float))
    assert model.transform(counts, 0).shape == (2000, 8)


def test_same_seed_gives_the_same_fit():
    rng = np.random.default_rng(0)
    Xs = [rng.poisson(2.0, (200, n)).astype(float) for n in (10, 12)]
    Ys = [rng.standard_normal((200, 2)) for _ in Xs]
    kw = dict(dim=3, epochs=1, window=16, batch_size=4, refit_steps=2)
    a, b = CANDY(seed=3, **kw).fit(Xs, Ys), CANDY(seed=3, **kw).fit(Xs, Ys)
    np.testing.assert_array_equal(a.A_, b.A_)
    np.testing.assert_array_equal(a.transform(Xs[1], 1), b.transform(Xs[1], 1))
    assert np.abs(np.linalg.eigvals(a.A_)).max() < 1


@pytest.mark.parametrize("args, code, message", [
    (["--behavior", "nope"], 2, "unknown behaviour 'nope'"),
    (["--behavior", "velocity", "--encoder", "rnn"], 2, "invalid value 'rnn' for --encoder"),
    (["--behavior", "velocity", "--control", "x"], 2, "invalid value 'x' for --control"),
    (["--behavior", "velocity", "--temperature", 0], 2, "--temperature must be > 0"),
    (["--behavior", "velocity", "--hidden", "a"], 2, "invalid --hidden 'a'"),
    ([], 2, "missing --behavior"),
])
def test_align_usage_errors(tmp_path, args, code, message):
    sim = tmp_path / "sim.zarr"
    assert run(["simulate", "candy", "--sessions", 3, "--bins", 100, "-o", sim]).exit_code == 0
    res = run(["align", sim, *args, "-o", tmp_path / "o.zarr"])
    assert res.exit_code == code
    assert message in res.stderr and res.stderr.startswith("ncli align: error: ")
    assert not (tmp_path / "o.zarr").exists()


@pytest.mark.skipif(not DATA.exists(), reason="shared monkey reach data not present")
@pytest.mark.slow
def test_real_monkey_sessions_beat_the_pca_baseline(tmp_path, monkeypatch):
    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    conv = tmp_path / "m.zarr"
    res = run(["convert", DATA / "mihi_demo.mat", DATA / "chewie_demo.mat", "--counts", "Ytr", "--counts", "Yte",
               "--bin-size", 0.1, "--behavior", "velocity=Xtr,Xte", "-o", conv])
    assert res.exit_code == 0, res.stderr
    out = tmp_path / "al.zarr"
    res = run(["align", conv, "--behavior", "velocity", "--smooth", 0.1, "--epochs", 50, "-o", out])
    assert res.exit_code == 0, res.stderr
    m = Store.open(out).attrs("models/candy")["metrics"]
    assert m["unified_r2_mean"] > m["baseline_pca_unified_r2_mean"]


@pytest.mark.parametrize("how", ["shuffle-behavior", "shuffle-time"])
def test_control_labels_keep_values_and_untouched_rows(how):
    from ncli.methods.align._base import shuffle_labels

    Y = np.arange(40, dtype=float).reshape(20, 2)
    rows = np.arange(20) < 16
    out = shuffle_labels(Y, rows, how, seed=0)
    np.testing.assert_array_equal(out[~rows], Y[~rows])
    assert sorted(out[rows, 0]) == sorted(Y[rows, 0]) and not np.array_equal(out, Y)
    if how == "shuffle-time":  # a circular shift keeps neighbours together
        d = np.diff(out[rows, 0])
        assert np.sum(d != 2) == 1


def test_simulate_and_align_chain_in_a_shell_pipe(tmp_path):
    import os
    import subprocess
    import sys

    ncli = str(Path(sys.executable).with_name("ncli"))
    env = {**os.environ, "NCLI_CACHE": str(tmp_path / "cache")}
    cmd = (f"'{ncli}' simulate candy --sessions 3 --bins 200 | '{ncli}' align --behavior velocity --dim 3 "
           "--epochs 1 --refit-steps 2 --window 16 --batch-size 3 --quiet")
    res = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    location = res.stdout.strip()
    assert len(res.stdout.splitlines()) == 1 and res.stderr == ""
    st = Store.open(location)
    assert st.read("sessions/sim2/latents/candy").shape == (200, 3)
    assert st.history[-1]["command"] == "align"


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_candy_recovers_dynamics_across_simulator_seeds(tmp_path, monkeypatch, seed):
    """Other draws: the rotating pair meets the acceptance thresholds; the two slow real
    eigenvalues (0.98, 0.92) are looser (|Δ|λ|| < 0.05), see docs/commands/align.md."""
    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    sim, out = tmp_path / "sim.zarr", tmp_path / "al.zarr"
    assert run(["simulate", "candy", "--bins", 2000, "--seed", seed, "-o", sim]).exit_code == 0
    res = run(["align", sim, "--behavior", "velocity", *SIM_FIT, "--seed", seed, "-o", out])
    assert res.exit_code == 0, res.stderr
    st, al = Store.open(sim), Store.open(out)
    assert al.attrs("models/candy")["metrics"]["unified_r2_mean"] >= 0.8
    true = st.read("models/truth/eigenvalues_")
    learned = al.read("models/candy/eigenvalues_")
    match = match_eigenvalues(true[:, 0] + 1j * true[:, 1], learned[:, 0] + 1j * learned[:, 1])
    pair = np.abs(true[:, 1]) > 0
    assert match["abs_error"][pair].max() < 0.03 and match["angle_error"][pair].max() < 0.05, match
    assert match["abs_error"][~pair].max() < 0.05 and match["angle_error"][~pair].max() < 0.05, match
