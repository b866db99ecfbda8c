"""``ncli simulate lds``: store layout, ground truth, determinism, NWB round trip through convert."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ncli.cli import app
from ncli.core.binning import Grid, bin_spikes
from ncli.formats.store import Store, validate
from ncli.models.base import Estimator

runner = CliRunner()
SMALL = ["--units", "12", "--latent-dim", "3", "--duration", "20", "--bin-size", "0.02"]


def simulate(tmp_path: Path, name: str, *extra: str) -> tuple[str, Store]:
    out = tmp_path / name
    res = runner.invoke(app, ["simulate", "lds", "-o", str(out), *SMALL, *extra])
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == str(out)
    return str(out), Store.open(out)


def test_lds_store_holds_session_ground_truth_and_is_valid(tmp_path, monkeypatch):
    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    _, st = simulate(tmp_path, "sim.zarr")
    assert validate(st) == []
    assert st.sessions() == ["sim0"]
    base = "sessions/sim0"
    counts = st.read(f"{base}/binned/counts")
    assert counts.shape == (1000, 12)
    assert st.read(f"{base}/latents/truth").shape == (1000, 3)
    assert list(st.read(f"{base}/units/area")) == ["M1"] * 6 + ["PMd"] * 6
    assert list(st.read(f"{base}/units/id")) == [str(i) for i in range(12)]
    vel = st.attrs(f"{base}/binned/behavior/velocity")
    assert vel["unit"] == "cm/s" and vel["columns"] == ["x", "y"]
    assert st.read(f"{base}/behavior/velocity/timestamps")[1] == pytest.approx(0.01)  # 100 Hz
    assert st.read(f"{base}/trials/start_time").shape == (10,)
    assert set(st.children(f"{base}/trials")) == {"start_time", "stop_time", "condition"}
    # spike times lie inside their bins: re-binning on the store's grid gives the counts exactly
    grid = Grid(0.0, 0.02, 1000)
    for u in range(12):
        assert np.array_equal(bin_spikes(st.unit_spikes("sim0", u), grid), counts[:, u])
    truth = Estimator.from_group(st.root["models/truth"])
    assert truth.A_.shape == (3, 3) and truth.C_.shape == (1, 12, 3) and truth.readout_.shape == (2, 3)
    assert np.all(np.abs(np.linalg.eigvals(truth.A_)) < 1)
    assert st.attrs("models/truth")["class"] == "ncli/sim-lds@1"
    assert st.attrs("models/truth")["config"]["seed"] == 0


def test_same_seed_gives_identical_stores_and_another_seed_does_not(tmp_path, monkeypatch):
    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    _, a = simulate(tmp_path, "a.zarr", "--seed", "7")
    _, b = simulate(tmp_path, "b.zarr", "--seed", "7")
    _, c = simulate(tmp_path, "c.zarr", "--seed", "8")
    paths = [p for p, _ in a.walk()]
    assert paths == [p for p, _ in b.walk()]
    for p in paths:
        assert np.array_equal(a.read(p), b.read(p)), p
    assert not np.array_equal(a.read("sessions/sim0/binned/counts"), c.read("sessions/sim0/binned/counts"))


def test_several_sessions_share_dynamics_but_not_units(tmp_path, monkeypatch):
    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    nwb = tmp_path / "multi.nwb"
    _, st = simulate(tmp_path, "m.zarr", "--sessions", "2", "--nwb", str(nwb))
    assert st.sessions() == ["sim0", "sim1"]
    assert (tmp_path / "multi_sim0.nwb").is_file() and (tmp_path / "multi_sim1.nwb").is_file()
    truth = Estimator.from_group(st.root["models/truth"])
    assert truth.C_.shape[0] == 2 and not np.allclose(truth.C_[0], truth.C_[1])


def test_simulate_without_output_goes_to_the_run_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    first = runner.invoke(app, ["simulate", "lds", *SMALL])
    second = runner.invoke(app, ["simulate", "lds", *SMALL])
    assert first.exit_code == 0 and second.exit_code == 0
    assert first.stdout == second.stdout and first.stdout.startswith(str(tmp_path / "cache"))
    assert "cached" in second.stderr


@pytest.mark.parametrize("args, message", [
    (["--units", "1"], "--units must be at least 2, got 1"),
    (["--latent-dim", "20", "--units", "10"], "--latent-dim 20 exceeds --units 10"),
    (["--duration", "0.05"], "--duration 0.05 s is shorter than 10 bins of 0.02 s"),
    (["--baseline-rate", "0"], "--baseline-rate must be > 0 Hz, got 0.0"),
])
def test_bad_settings_are_one_line_usage_errors(tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    res = runner.invoke(app, ["simulate", "lds", "-o", str(tmp_path / "x.zarr"), *args])
    assert res.exit_code == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"ncli simulate: error: {message}")
    assert not (tmp_path / "x.zarr").exists()


def test_existing_nwb_needs_overwrite(tmp_path, monkeypatch):
    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    nwb = tmp_path / "s.nwb"
    nwb.write_bytes(b"keep me")
    res = runner.invoke(app, ["simulate", "lds", "-o", str(tmp_path / "x.zarr"), "--nwb", str(nwb), *SMALL])
    assert res.exit_code == 2 and "NWB output already exists" in res.stderr
    assert nwb.read_bytes() == b"keep me" and not (tmp_path / "x.zarr").exists()


def convert_available() -> bool:
    try:
        from ncli.formats import nwb  # noqa: F401
    except ImportError:
        return False
    return True


def test_nwb_round_trip_through_convert_is_exact(tmp_path, monkeypatch):
    if not convert_available():
        pytest.skip("ncli convert is not implemented yet")
    monkeypatch.setenv("NCLI_CACHE", str(tmp_path / "cache"))
    nwb = tmp_path / "roundtrip.nwb"
    _, sim = simulate(tmp_path, "sim.zarr", "--nwb", str(nwb))
    res = runner.invoke(app, ["convert", str(nwb), "--bin-size", "0.02", "-o", str(tmp_path / "conv.zarr")])
    if res.exit_code != 0 and "NotImplementedError" in res.stderr:
        pytest.skip("ncli convert is not implemented yet")
    assert res.exit_code == 0, res.stderr
    conv = Store.open(tmp_path / "conv.zarr")
    assert len(conv.sessions()) == 1
    a, b = "sessions/sim0", f"sessions/{conv.sessions()[0]}"
    for path in ["units/id", "units/area", "units/spike_index", "units/spike_times", "binned/counts",
                 "binned/valid", "binned/behavior/velocity", "behavior/velocity/data",
                 "behavior/velocity/timestamps", "trials/start_time", "trials/stop_time", "trials/condition"]:
        assert np.array_equal(sim.read(f"{a}/{path}"), conv.read(f"{b}/{path}")), path
    for key in ("bin_size_s", "t_start_s", "n_bins"):
        assert sim.attrs(f"{a}/binned")[key] == conv.attrs(f"{b}/binned")[key]
    assert conv.attrs(f"{b}/binned/behavior/velocity")["unit"] == "cm/s"
