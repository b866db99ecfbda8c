"""Cross-day alignment (issue 13): the crossday simulator's planted instabilities and the FA + Procrustes
stabiliser (Degenhart et al. 2020) recovering a fixed day-0 decoder."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from ncli.cli import app
from ncli.core.errors import DataError
from ncli.formats.store import Store
from ncli.models.stabilizer import FAStabilizer, orthonormal_map, stable_rows
from ncli.simulators import CrossDaySimulator

runner = CliRunner()


def cli(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.stderr
    return res.stdout.strip()


def test_simulator_plants_what_it_says():
    sim = CrossDaySimulator(n_channels=60, n_days=5, scenarios=("shuffle", "lost", "tuning", "mixed"),
                            n_trials=5, seed=3).init_params()
    days = sim.sample()
    n = 60
    assert np.array_equal(sim.perm_[0], np.arange(n))
    moved = sim.perm_[1] != np.arange(n)
    assert moved.sum() == 6 and set(sim.perm_[1][moved]) == set(np.flatnonzero(moved))  # a permutation among them
    assert days[1].counts.shape == (8 * 5 * 50, n)
    lost = sim.lost_[2]
    assert lost.sum() == 9 and sim.new_[2].sum() == 3
    assert np.all(days[2].counts[:, lost] == 0) and np.all(days[2].counts[:, ~lost].sum(axis=0) > 0)
    assert sim.changed_[3].sum() == 6 and np.array_equal(sim.perm_[3], np.arange(n))
    # a shuffled channel records exactly the day-0 tuning of the channel it came from
    j = int(np.flatnonzero(moved)[0])
    np.testing.assert_allclose(sim.preferred_[1][j], sim.preferred_[0][sim.perm_[1][j]])
    # the same kinematics every day: the trials' targets are balanced
    assert np.all(np.bincount(days[4].trials["target"]) == 5)


def test_orthonormal_map_and_stable_rows_recover_a_rotation():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(40, 4))
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    new = ref @ q  # new = ref Q  ->  ref = new Qᵀ : the map is Q itself
    new[:6] = rng.normal(size=(6, 4)) * 2  # six channels changed
    o = orthonormal_map(ref[6:], new[6:])
    np.testing.assert_allclose(o @ o.T, np.eye(4), atol=1e-10)
    np.testing.assert_allclose(new[6:] @ o.T, ref[6:], atol=1e-10)
    keep = stable_rows(ref, new, 30)
    assert keep.sum() == 30 and not keep[:6].any()


def test_stabiliser_refuses_different_channel_counts():
    with pytest.raises(DataError, match="same channels"):
        FAStabilizer(n_latents=2).fit([np.random.default_rng(0).poisson(3, (200, 10)).astype(float),
                                       np.random.default_rng(1).poisson(3, (200, 9)).astype(float)])


@pytest.fixture(scope="module")
def crossday_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("cd") / "cd.zarr"
    return cli("simulate", "crossday", "--channels", "60", "--days", "3", "--scenarios", "lost,mixed",
               "--trials", "25", "--seed", "1", "-o", str(out))


def _r2_per_day(store: str, tmp, *extra: str) -> dict[str, float]:
    res = runner.invoke(app, ["decode", store, "--method", "ridge", "--target", "velocity",
                              "--train-sessions", "day0", "--test-sessions", "day1,day2", *extra,
                              "-o", str(tmp / f"d{len(extra)}.zarr"), "--overwrite"])
    assert res.exit_code == 0, res.stderr
    st = Store.open(res.stdout.strip())
    return {sid: float(np.mean(st.attrs(f"sessions/{sid}/predictions/ridge_velocity")["metrics"]["r2"]))
            for sid in ("day1", "day2")}


def test_procrustes_restores_a_fixed_day0_decoder(crossday_store, tmp_path):
    aligned = cli("align", crossday_store, "--method", "procrustes", "--dim", "6", "-o", str(tmp_path / "p.zarr"))
    st = Store.open(aligned)
    model = st.attrs("models/procrustes")
    assert model["sessions"] == ["day0", "day1", "day2"]
    truth = Store.open(crossday_store)
    lost = truth.read("models/truth/lost_")
    stable = st.read("models/procrustes/stable_")
    assert not np.any(stable[1] & lost[1])  # silenced channels never serve the alignment
    raw = _r2_per_day(aligned, tmp_path)
    fixed = _r2_per_day(aligned, tmp_path, "--latents", "procrustes")
    assert fixed["day1"] >= 0.8 and fixed["day2"] >= 0.8, fixed
    assert fixed["day2"] > raw["day2"] + 0.05, (raw, fixed)


def test_procrustes_refuses_bad_reference_and_mismatched_channels(crossday_store, tmp_path):
    res = runner.invoke(app, ["align", crossday_store, "--method", "procrustes", "--reference", "day9",
                              "-o", str(tmp_path / "x.zarr")])
    assert res.exit_code == 2 and "unknown reference session 'day9'" in res.stderr
    reach = cli("simulate", "reach", "--duration", "20", "-o", str(tmp_path / "r.zarr"))
    res = runner.invoke(app, ["align", reach, "--method", "procrustes", "-o", str(tmp_path / "y.zarr")])
    assert res.exit_code == 1 and "same array channels" in res.stderr
