"""ncli convert on times that are not seconds (issue 12, fault kind 6).

Each case is built twice: once in seconds (the ground truth) and once in the
other unit; converted with the right option the two stores must agree exactly,
and without it the file is refused with one line naming what the times look like.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from typer.testing import CliRunner

from ncli.cli import app
from ncli.formats.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nwb_factory import write_nwb  # noqa: E402

runner = CliRunner()


def convert(*args: str):
    res = runner.invoke(app, ["convert", *args])
    assert "Traceback" not in res.stderr
    return res


def ok(*args: str) -> tuple[Store, str]:
    res = convert(*args)
    assert res.exit_code == 0, res.stderr
    return Store.open(res.stdout.strip()), res.stderr


def refused(*args: str) -> str:
    res = convert(*args)
    assert res.exit_code != 0
    lines = [ln for ln in res.stderr.splitlines() if "error:" in ln]
    assert len(lines) == 1, res.stderr
    return res.stderr


def R(store: Store, path: str) -> np.ndarray:
    """Array ``path`` of the store's one session."""
    return store.read(f"sessions/{store.sessions()[0]}/{path}")


def A(store: Store, path: str = "") -> dict:
    """Attributes of ``path`` in the store's one session."""
    return store.attrs(f"sessions/{store.sessions()[0]}/{path}".rstrip("/"))


def _spikes(seed: int = 0, duration: float = 60.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.sort(rng.uniform(1.0, duration - 1.0, rng.poisson(r * duration))) for r in (4.0, 9.0, 15.0)]


def _nwb(path: Path, spikes: list[np.ndarray], f_spikes: float, f_other: float) -> Path:
    """A session without epochs; spike times times ``f_spikes``, behaviour and trial times times ``f_other``."""
    t = np.arange(0.0, 60.0, 0.01)
    trials = {"start_time": (np.arange(10) * 5.0 + 2.0) * f_other, "stop_time": (np.arange(10) * 5.0 + 4.0) * f_other,
              "go_cue_time": (np.arange(10) * 5.0 + 3.0) * f_other, "target": np.arange(10) % 4}
    return write_nwb(path, spikes=[s * f_spikes for s in spikes], trials=trials,
                     behavior={"position": {"timestamps": t * f_other, "data": np.c_[np.sin(t), np.cos(t)],
                                            "container": "Position", "unit": "cm"}})


def test_nwb_spikes_in_ms_refused_then_converted(tmp_path):
    spikes = _spikes()
    ref = _nwb(tmp_path / "s.nwb", spikes, 1.0, 1.0)
    ms = _nwb(tmp_path / "ms.nwb", spikes, 1e3, 1.0)
    before = ms.read_bytes()
    err = refused(str(ms), "-o", str(tmp_path / "x.zarr"))
    assert "look like milliseconds" in err and "--spike-time-unit ms" in err
    assert not (tmp_path / "x.zarr").exists()
    a, _ = ok(str(ref), "-o", str(tmp_path / "a.zarr"))
    b, _ = ok(str(ms), "--spike-time-unit", "ms", "-o", str(tmp_path / "b.zarr"))
    sa, sb = a, b
    np.testing.assert_array_equal(R(sa, "binned/counts"), R(sb, "binned/counts"))
    np.testing.assert_allclose(R(sa, "units/spike_times"), R(sb, "units/spike_times"), rtol=1e-12)
    np.testing.assert_array_equal(R(sa, "trials/start_time"), R(sb, "trials/start_time"))
    assert int(A(sb, "binned")["n_spikes_binned"]) == int(np.asarray(R(sb, "binned/counts")).sum())
    assert ms.read_bytes() == before
    hist = b.history[-1]["params"]
    assert hist["spike_time_unit"] == "ms"


def test_nwb_everything_in_ms(tmp_path):
    spikes = _spikes(1)
    ref = _nwb(tmp_path / "s.nwb", spikes, 1.0, 1.0)
    ms = _nwb(tmp_path / "ms.nwb", spikes, 1e3, 1e3)
    a, _ = ok(str(ref), "-o", str(tmp_path / "a.zarr"))
    b, _ = ok(str(ms), "--time-unit", "ms", "-o", str(tmp_path / "b.zarr"))
    sa, sb = a, b
    np.testing.assert_array_equal(R(sa, "binned/counts"), R(sb, "binned/counts"))
    np.testing.assert_allclose(R(sa, "binned/behavior/position"), R(sb, "binned/behavior/position"), atol=1e-9)
    for col in ("start_time", "stop_time", "go_cue_time"):  # every *_time column of the table is rescaled
        np.testing.assert_allclose(R(sa, f"trials/{col}"), R(sb, f"trials/{col}"), rtol=1e-12)
    np.testing.assert_array_equal(R(sa, "trials/target"), R(sb, "trials/target"))


def test_nwb_behaviour_in_ms_spikes_in_s(tmp_path):
    spikes = _spikes(2)
    bad = _nwb(tmp_path / "b.nwb", spikes, 1.0, 1e3)
    err = refused(str(bad), "-o", str(tmp_path / "x.zarr"))
    assert "look like milliseconds" in err and "--time-unit ms --spike-time-unit s" in err
    ref, _ = ok(str(_nwb(tmp_path / "s.nwb", spikes, 1.0, 1.0)), "-o", str(tmp_path / "a.zarr"))
    fixed, _ = ok(str(bad), "--time-unit", "ms", "--spike-time-unit", "s", "-o", str(tmp_path / "c.zarr"))
    np.testing.assert_array_equal(R(ref, "binned/counts"), R(fixed, "binned/counts"))


def test_spikes_in_microseconds_detected(tmp_path):
    spikes = _spikes(3)
    us = _nwb(tmp_path / "us.nwb", spikes, 1e6, 1.0)
    assert "look like microseconds" in refused(str(us), "-o", str(tmp_path / "x.zarr"))


def _npz(path: Path, spikes: list[np.ndarray], factor: float, dtype=np.float64) -> Path:
    times = np.concatenate(spikes) * factor
    clusters = np.concatenate([np.full(s.size, k) for k, s in enumerate(spikes)])
    np.savez(path, spike_times=np.round(times).astype(dtype) if dtype != np.float64 else times,
             spike_clusters=clusters)
    return path


def test_npz_sample_indices(tmp_path):
    rate = 30_000.0
    samples = [np.round(s * rate) for s in _spikes(4)]
    spikes = [k / rate for k in samples]  # on the sample grid, so both files agree exactly
    ref = _npz(tmp_path / "s.npz", spikes, 1.0)
    smp = _npz(tmp_path / "smp.npz", spikes, rate, np.int64)
    args = ["--spike-times", "spike_times", "--spike-clusters", "spike_clusters"]
    err = refused(str(smp), *args, "-o", str(tmp_path / "x.zarr"))
    assert "sample indices" in err and "int64" in err and "--sampling-rate" in err
    a, _ = ok(str(ref), *args, "-o", str(tmp_path / "a.zarr"))
    b, _ = ok(str(smp), *args, "--sampling-rate", str(rate), "-o", str(tmp_path / "b.zarr"))
    np.testing.assert_array_equal(R(a, "binned/counts"), R(b, "binned/counts"))
    assert A(b)["source"]["spike_time_unit"] == "samples at 30000 Hz"
    # whole-number float64 sample indices (as MATLAB saves them) are caught too
    dbl = _npz(tmp_path / "dbl.npz", spikes, rate, np.float64)
    np.savez(dbl, spike_times=np.round(np.concatenate(spikes) * rate),
             spike_clusters=np.concatenate([np.full(s.size, k) for k, s in enumerate(spikes)]))
    assert "whole numbers" in refused(str(dbl), *args, "-o", str(tmp_path / "y.zarr"))


def test_npz_ms_float_times(tmp_path):
    spikes = _spikes(5)
    args = ["--spike-times", "spike_times", "--spike-clusters", "spike_clusters"]
    a, _ = ok(str(_npz(tmp_path / "s.npz", spikes, 1.0)), *args, "-o", str(tmp_path / "a.zarr"))
    b, _ = ok(str(_npz(tmp_path / "ms.npz", spikes, 1e3)), *args, "--time-unit", "ms", "-o", str(tmp_path / "b.zarr"))
    np.testing.assert_array_equal(R(a, "binned/counts"), R(b, "binned/counts"))


def test_long_ms_recording_and_too_many_bins(tmp_path):
    """A 3-hour recording in ms read as s spans 125 days: refused by the firing-rate check, hint names ms."""
    rng = np.random.default_rng(6)
    spikes = [np.sort(rng.uniform(0, 3 * 3600.0, 2000)) for _ in range(3)]
    args = ["--spike-times", "spike_times", "--spike-clusters", "spike_clusters"]
    f = _npz(tmp_path / "ms.npz", spikes, 1e3 + np.pi * 1e-6)  # not whole numbers
    err = refused(str(f), *args, "-o", str(tmp_path / "x.zarr"))
    assert "milliseconds" in err and "--time-unit ms" in err
    # told they are seconds, the grid is too long: the hint names the unit, not only --bin-size
    err = refused(str(f), *args, "--time-unit", "s", "--bin-size", "0.0001", "-o", str(tmp_path / "y.zarr"))
    assert "longer than a recording" in err and "--time-unit" in err


def test_mat_counts_time_in_ms(tmp_path):
    rng = np.random.default_rng(7)
    counts = rng.poisson(2.0, (200, 5))
    f = tmp_path / "c.mat"
    scipy.io.savemat(f, {"counts": counts, "t_ms": np.arange(200) * 50.0 + 1000.0})
    res = convert(str(f), "--counts", "counts", "--time", "t_ms", "-o", str(tmp_path / "a.zarr"))
    assert res.exit_code == 0 and "--time-unit ms" in res.stderr  # 50 s bins: warned
    b, _ = ok(str(f), "--counts", "counts", "--time", "t_ms", "--time-unit", "ms", "-o", str(tmp_path / "b.zarr"))
    attrs = A(b, "binned")
    assert attrs["bin_size_s"] == pytest.approx(0.05) and attrs["t_start_s"] == pytest.approx(1.0)
    np.testing.assert_array_equal(R(b, "binned/counts"), counts)


def test_unit_options_refused_where_they_do_not_apply(tmp_path):
    nwb = _nwb(tmp_path / "s.nwb", _spikes(8), 1.0, 1.0)
    err = refused(str(nwb), "--sampling-rate", "30000", "-o", str(tmp_path / "x.zarr"))
    assert "--sampling-rate applies to" in err
    phy = tmp_path / "phy"
    phy.mkdir()
    np.save(phy / "spike_times.npy", np.arange(10, dtype=np.uint64) * 300)
    np.save(phy / "spike_clusters.npy", np.zeros(10, dtype=np.int32))
    err = refused(str(phy), "--sampling-rate", "30000", "--time-unit", "ms", "-o", str(tmp_path / "y.zarr"))
    assert "--time-unit applies to NWB and .mat/.npz inputs only" in err
    res = convert(str(nwb), "--time-unit", "hours", "-o", str(tmp_path / "z.zarr"))
    assert res.exit_code == 2 and "hours" in res.stderr


def test_nwb_everything_in_ms_without_option_is_refused(tmp_path):
    """A one-minute session in ms reads as 16 h at 1/1000 of its rates: the rate check names ms."""
    ms = _nwb(tmp_path / "ms.nwb", _spikes(9), 1e3, 1e3)
    err = refused(str(ms), "-o", str(tmp_path / "x.zarr"))
    assert "milliseconds read as seconds" in err and "--time-unit ms" in err
    ok(str(ms), "--time-unit", "s", "-o", str(tmp_path / "y.zarr"))  # told, it converts as given


def test_stated_unit_that_leaves_spikes_and_trials_apart_is_warned(tmp_path):
    """Spikes in ms, the rest in s, but the user says everything is ms: converted as told, with a warning."""
    ms = _nwb(tmp_path / "ms.nwb", _spikes(10), 1e3, 1.0)
    _, stderr = ok(str(ms), "--time-unit", "ms", "-o", str(tmp_path / "x.zarr"))
    assert "warning:" in stderr and "with the time units given" in stderr and "look like milliseconds" in stderr


def test_sampling_rate_on_fractional_spike_times_is_refused(tmp_path):
    args = ["--spike-times", "spike_times", "--spike-clusters", "spike_clusters", "--sampling-rate", "30000"]
    err = refused(str(_npz(tmp_path / "s.npz", _spikes(11), 1.0)), *args, "-o", str(tmp_path / "x.zarr"))
    assert "fractional values" in err and "drop --sampling-rate" in err


def test_output_inside_another_store_is_refused(tmp_path):
    a, _ = ok(str(_npz(tmp_path / "s.npz", _spikes(12), 1.0)), "--spike-times", "spike_times", "--spike-clusters",
              "spike_clusters", "-o", str(tmp_path / "a.zarr"))
    res = convert(str(tmp_path / "s.npz"), "--spike-times", "spike_times", "--spike-clusters", "spike_clusters",
                  "-o", str(tmp_path / "a.zarr" / "sessions" / "x.zarr"))
    assert res.exit_code == 2 and "inside the store" in res.stderr
    assert Store.open(str(tmp_path / "a.zarr")).sessions() == ["s"]
