"""ncli convert: NWB round trips, the real recordings, the arrays and suite2p importers."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from ncli.cli import app
from ncli.formats.store import Store, validate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nwb_factory import standard_nwb, write_nwb  # noqa: E402

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
NCLI = [sys.executable, "-m", "ncli.cli"]


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def convert(*args: str) -> Store:
    """Run `ncli convert ARGS` through the Typer app; return the store it printed."""
    res = runner.invoke(app, ["convert", *map(str, args)])
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1, res.stdout
    return Store.open(lines[0])


def grid_of(store: Store, sid: str) -> tuple[float, float, int]:
    a = store.attrs(f"sessions/{sid}/binned")
    return a["t_start_s"], a["bin_size_s"], store.array(f"sessions/{sid}/binned/counts").shape[0]


def wrap(x):
    return np.angle(np.exp(1j * np.asarray(x)))


# ----------------------------------------------------------------------------- synthetic NWB


@pytest.fixture(scope="module")
def std_nwb(tmp_path_factory):
    return standard_nwb(tmp_path_factory.mktemp("nwb") / "std.nwb")


def test_synthetic_nwb_round_trip(std_nwb, tmp_path):
    path, truth = std_nwb
    before = sha(path)
    st = convert(path, "-o", tmp_path / "s.zarr")
    assert sha(path) == before
    assert validate(st) == []
    base = "sessions/std"
    assert st.sessions() == ["std"]
    # units: ids, areas (electrode location, else the group's), exact spike times
    assert list(st.read(f"{base}/units/id")) == truth["ids"]
    assert list(st.read(f"{base}/units/area")) == truth["areas"]
    for u, spikes in enumerate(truth["spikes"]):
        np.testing.assert_array_equal(st.unit_spikes("std", u), spikes)
    # grid = the one epoch [0, 20); counts = a histogram per unit
    t0, bs, n = grid_of(st, "std")
    assert (t0, bs, n) == (0.0, 0.02, 1000)
    edges = t0 + np.arange(n + 1) * bs
    counts = st.read(f"{base}/binned/counts")
    for u, spikes in enumerate(truth["spikes"]):
        np.testing.assert_array_equal(counts[:, u], np.histogram(spikes, edges)[0])
    assert st.read(f"{base}/binned/valid").all()
    # behaviour at bin centres equals the analytical functions
    c = t0 + (np.arange(n) + 0.5) * bs
    pos = st.read(f"{base}/binned/behavior/position")
    np.testing.assert_allclose(pos, np.c_[2 * c + 1, -c], rtol=0, atol=1e-9)
    speed = st.read(f"{base}/binned/behavior/speed")[:, 0]  # stored with a rate, not timestamps
    np.testing.assert_allclose(speed, 3.0 + 0.5 * c, rtol=0, atol=1e-9)
    assert st.attrs(f"{base}/binned/behavior/position")["unit"] == "cm"
    assert st.attrs(f"{base}/binned/behavior/position")["columns"] == ["x", "y"]
    # circular: interpolated on the circle, also across the +-pi wrap
    hd = st.read(f"{base}/binned/behavior/head_direction")[:, 0]
    assert st.attrs(f"{base}/binned/behavior/head_direction")["circular"] is True
    assert np.max(np.abs(wrap(hd - (c - 3.0)))) < 1e-9
    across = np.flatnonzero(np.abs(np.diff(wrap(c - 3.0))) > np.pi)
    assert across.size >= 2
    for k in across:
        assert abs(hd[k]) > 3.0 and abs(hd[k + 1]) > 3.0  # never pulled through 0
    # the integer TTL series (first timestamp -1.5e9 s) is kept natively and does not touch the grid
    assert st.exists(f"{base}/behavior/ttl/data") and not st.exists(f"{base}/binned/behavior/ttl")
    assert st.attrs(f"{base}/behavior/ttl")["binned"] is False
    # tables
    np.testing.assert_array_equal(st.read(f"{base}/trials/start_time"), truth["trials"]["start_time"])
    np.testing.assert_array_equal(st.read(f"{base}/trials/target"), [3, 1, 4, 1, 5])
    assert list(st.read(f"{base}/trials/label")) == list("abcde")
    assert list(st.read(f"{base}/intervals/epochs/tags")) == ["run"]
    np.testing.assert_array_equal(st.read(f"{base}/intervals/stimuli/contrast"), [0.5, 1.0])
    # session attributes
    attrs = st.attrs(base)
    assert attrs["subject"] == "mouse-7" and attrs["species"] == "Mus musculus"
    assert attrs["start_time"] == "2024-05-06T07:08:09+00:00"
    assert attrs["source"] == {"path": str(path.resolve()), "sha256": before}
    assert attrs["identifier"] == "ncli-test-0001"


def test_epochs_define_valid_and_range(tmp_path):
    spikes = [np.array([0.1, 1.5, 3.2, 9.9]), np.array([2.0, 2.5, 7.7])]
    path = write_nwb(tmp_path / "ep.nwb", spikes=spikes, epochs=[(0.0, 4.0, "a"), (6.0, 10.0, "b")])
    st = convert(path, "--bin-size", "0.5", "-o", tmp_path / "ep.zarr")
    t0, bs, n = grid_of(st, "ep")
    assert (t0, bs, n) == (0.0, 0.5, 20)
    valid = st.read("sessions/ep/binned/valid")
    np.testing.assert_array_equal(valid, (np.arange(20) < 8) | (np.arange(20) >= 12))
    assert st.read("sessions/ep/binned/counts").sum() == 7


def test_behaviour_outside_grid_and_events_stay_native(tmp_path):
    spikes = [np.linspace(10.0, 20.0, 50)]
    t = np.linspace(100.0, 110.0, 101)
    path = write_nwb(tmp_path / "far.nwb", spikes=spikes, behavior={
        "late": {"timestamps": t, "data": t, "container": "BehavioralTimeSeries"},
        "licks": {"timestamps": np.array([11.0, 12.0, 15.0]), "data": np.ones(3), "container": "BehavioralEvents"},
        "near": {"timestamps": np.linspace(9.0, 21.0, 121), "data": np.zeros(121), "container": None},
    })
    res = runner.invoke(app, ["convert", str(path), "-o", str(tmp_path / "far.zarr")])
    assert res.exit_code == 0, res.stderr
    assert "'late'" in res.stderr and "does not overlap" in res.stderr
    st = Store.open(res.stdout.strip())
    base = "sessions/far"
    assert st.read(f"{base}/binned/valid").all()
    assert st.children(f"{base}/binned/behavior") == ["near"]
    assert set(st.children(f"{base}/behavior")) == {"late", "licks", "near"}


def test_several_inputs_one_store_with_distinct_session_ids(std_nwb, tmp_path):
    path, _ = std_nwb
    other = tmp_path / "odd name+1.nwb"
    other.write_bytes(path.read_bytes())
    st = convert(path, other, path, "-o", tmp_path / "many.zarr")
    assert st.sessions() == ["odd_name_1", "std", "std_2"]


def test_cache_reuses_result_and_no_cache_recomputes(std_nwb):
    path, _ = std_nwb
    first = runner.invoke(app, ["convert", str(path)])
    again = runner.invoke(app, ["convert", str(path)])
    assert first.exit_code == again.exit_code == 0
    assert again.stdout == first.stdout and "using cached result" in again.stderr
    fresh = runner.invoke(app, ["convert", str(path), "--no-cache"])
    assert fresh.exit_code == 0 and fresh.stdout == first.stdout and "cached" not in fresh.stderr


def test_subprocess_pipe_convert_into_info(std_nwb, tmp_path):
    path, _ = std_nwb
    conv = subprocess.run([*NCLI, "convert", str(path), "--quiet"], capture_output=True, text=True, cwd=REPO)
    assert conv.returncode == 0, conv.stderr
    assert conv.stderr == "" and len(conv.stdout.splitlines()) == 1
    info = subprocess.run([*NCLI, "info", "--json"], input=conv.stdout, capture_output=True, text=True, cwd=REPO)
    assert info.returncode == 0, info.stderr
    assert "std" in info.stdout


def test_help_documents_the_importers():
    res = runner.invoke(app, ["convert", "--help"])
    assert res.exit_code == 0
    for word in ("--counts", "--behavior", "--spike-times", "--frame-rate", "--transpose", "suite2p", "NAME=VAR"):
        assert word in res.stdout


# ----------------------------------------------------------------------------- real NWB files


def spikes_in_range_pynwb(path: Path, t0: float, t1: float) -> int:
    """Count spikes inside [t0, t1) with pynwb itself, independently of ncli."""
    import warnings

    from pynwb import NWBHDF5IO

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with NWBHDF5IO(str(path), "r", load_namespaces=True) as io:
            units = io.read().units
            total = 0
            for u in range(len(units.id)):
                t = np.asarray(units["spike_times"][u])
                total += int(np.count_nonzero((t >= t0) & (t < t1)))
    return total


def test_m1_nwb_shapes_and_exact_counts(shared_data, tmp_path):
    path = shared_data / "monkey_reach" / "m1_stevenson_2011.nwb"
    st = convert(path, "--bin-size", "0.05", "-o", tmp_path / "m1.zarr")
    sid = "m1_stevenson_2011"
    t0, bs, n = grid_of(st, sid)
    assert bs == 0.05 and 15530 <= n <= 15540
    base = f"sessions/{sid}"
    assert st.array(f"{base}/binned/counts").shape == (n, 171)
    assert st.array(f"{base}/binned/behavior/hand_velocity").shape == (n, 3)
    assert st.array(f"{base}/binned/behavior/hand_position").shape == (n, 3)
    assert st.read(f"{base}/units/spike_index")[-1] == 2352815
    assert set(st.read(f"{base}/units/area")) == {"M1"}
    total = int(st.read(f"{base}/binned/counts").sum(dtype=np.int64))
    assert total == spikes_in_range_pynwb(path, t0, t0 + n * bs)
    assert total == st.attrs(f"{base}/binned")["n_spikes_binned"]
    assert st.read(f"{base}/binned/valid").mean() > 0.99
    assert st.attrs(base)["species"] == "Macaca mulatta"


@pytest.mark.parametrize("rel, n_units, areas", [
    ("mouse_psb/A8604-211122.nwb", 3, {""}),
    ("human_mtl/sub-4_ses-4_ecephys+image.nwb", 35, {"hippocampus_right", "amygdala_right"}),
])
def test_shared_nwbs_convert(shared_data, tmp_path, rel, n_units, areas):
    path = shared_data / rel
    before = sha(path)
    st = convert(path, "-o", tmp_path / "x.zarr")
    assert sha(path) == before
    assert validate(st) == []
    sid = st.sessions()[0]
    base = f"sessions/{sid}"
    t0, bs, n = grid_of(st, sid)
    assert st.array(f"{base}/binned/counts").shape == (n, n_units)
    assert set(st.read(f"{base}/units/area")) == areas
    total = int(st.read(f"{base}/binned/counts").sum(dtype=np.int64))
    with h5py.File(path, "r") as f:
        t = f["units/spike_times"][:]
    assert total == int(np.count_nonzero((t >= t0) & (t < t0 + n * bs)))
    assert st.read(f"{base}/binned/valid").mean() > 0.99
    if rel.startswith("mouse_psb"):  # one wake epoch defines the grid
        assert t0 == 0.0 and n == int(1087.5289 / 0.02)
        assert list(st.read(f"{base}/intervals/epochs/tags")) == ["wake"]
    else:  # the TTL series starting at -1.5e9 s does not wreck the grid
        assert 0.0 <= t0 < 1.0 and n < 150_000
        assert set(st.children(f"{base}/intervals")) == {"encoding_table", "recognition_table",
                                                          "timediscrimination_table"}
        assert st.array(f"{base}/intervals/recognition_table/start_time").shape == (180,)
        assert not st.exists(f"{base}/binned/behavior/events")


# ----------------------------------------------------------------------------- arrays importer


def test_m1_mat_counts_with_time_and_behaviour(shared_data, tmp_path):
    import scipy.io

    path = shared_data / "monkey_reach" / "m1_stevenson_2011.mat"
    st = convert(path, "--counts", "spikes", "--time", "time", "--behavior", "hand_velocity=handVel:0,1",
                 "-o", tmp_path / "m.zarr")
    base = "sessions/m1_stevenson_2011"
    t0, bs, n = grid_of(st, "m1_stevenson_2011")
    m = scipy.io.loadmat(str(path))
    assert n == 15536 and abs(bs - 0.05) < 1e-9 and t0 == pytest.approx(m["time"].ravel()[0])
    counts = st.read(f"{base}/binned/counts")
    assert counts.shape == (15536, 171)
    np.testing.assert_array_equal(counts, m["spikes"].T)
    np.testing.assert_array_equal(st.read(f"{base}/binned/behavior/hand_velocity"), m["handVel"][:2].T)
    assert st.read(f"{base}/binned/valid").all()
    assert st.array(f"{base}/units/id").shape == (171,)


def test_s1_mat_rows_are_bins(shared_data, tmp_path):
    path = shared_data / "monkey_reach" / "s1_data.mat"
    st = convert(path, "--counts", "spikes", "--bin-size", "0.05", "--behavior", "velocity=vel",
                 "-o", tmp_path / "s1.zarr")
    base = "sessions/s1_data"
    assert st.array(f"{base}/binned/counts").shape == (35129, 52)
    assert st.array(f"{base}/binned/behavior/velocity").shape == (35129, 2)


def test_mat_with_two_sessions(shared_data, tmp_path):
    path = shared_data / "monkey_reach_sessions" / "mihi_demo.mat"
    st = convert(path, "--counts", "Ytr", "--counts", "Yte", "--bin-size", "0.1",
                 "--behavior", "velocity=Xtr,Xte", "--behavior", "target=Ttr,Tte", "-o", tmp_path / "mihi.zarr")
    assert st.sessions() == ["mihi_demo_Yte", "mihi_demo_Ytr"]
    assert st.array("sessions/mihi_demo_Ytr/binned/counts").shape == (623, 174)
    assert st.array("sessions/mihi_demo_Yte/binned/counts").shape == (803, 187)
    assert st.array("sessions/mihi_demo_Yte/binned/behavior/velocity").shape == (803, 2)
    assert st.array("sessions/mihi_demo_Ytr/binned/behavior/target").shape == (623, 1)
    single = convert(shared_data / "monkey_reach_sessions" / "chewie_demo.mat", "--counts", "Ytr",
                     "--behavior", "velocity=Xtr", "--bin-size", "0.1", "-o", tmp_path / "chewie.zarr")
    assert single.array("sessions/chewie_demo/binned/counts").shape == (1200, 71)


def test_ibl_npz_spike_arrays(shared_data, tmp_path):
    path = shared_data / "ibl" / "ephys_spikes.npz"
    st = convert(path, "--spike-times", "spike_times", "--spike-clusters", "spike_clusters",
                 "-o", tmp_path / "ibl.zarr")
    base = "sessions/ephys_spikes"
    with np.load(path, allow_pickle=False) as z:
        times, clusters = z["spike_times"], z["spike_clusters"]
    ids = np.unique(clusters)
    assert list(st.read(f"{base}/units/id")) == [str(i) for i in ids]
    assert st.read(f"{base}/units/spike_index")[-1] == times.size
    t0, bs, n = grid_of(st, "ephys_spikes")
    inside = int(np.count_nonzero((times >= t0) & (times < t0 + n * bs)))
    assert st.read(f"{base}/binned/counts").sum() == inside
    u = int(np.flatnonzero(ids == clusters[0])[0])
    np.testing.assert_array_equal(st.unit_spikes("ephys_spikes", u), times[clusters == clusters[0]])


def test_suite2p_folder(shared_data, tmp_path):
    folder = shared_data / "suite2p" / "plane0"
    st = convert(folder, "--frame-rate", "30", "-o", tmp_path / "s2p.zarr")
    sid = st.sessions()[0]
    base = f"sessions/{sid}"
    counts = st.array(f"{base}/binned/counts")
    assert counts.shape == (2000, 20) and counts.dtype == np.float32
    assert st.attrs(f"{base}/binned")["kind"] == "calcium"
    assert st.attrs(f"{base}/binned")["bin_size_s"] == pytest.approx(1 / 30)
    assert st.array(f"{base}/binned/spks").shape == (2000, 20)
    iscell = np.load(folder / "iscell.npy", allow_pickle=False)
    assert list(st.read(f"{base}/units/id")) == [str(i) for i in np.flatnonzero(iscell[:, 0] == 1)]
    assert np.all(np.isfinite(st.read(f"{base}/binned/counts")))
    res = runner.invoke(app, ["convert", str(folder), "--frame-rate", "30", "--all-rois", "-o",
                              str(tmp_path / "all.zarr")])
    assert res.exit_code == 0, res.stderr
    assert "empty fluorescence" in res.stderr
    assert Store.open(res.stdout.strip()).array(f"{base}/binned/counts").shape == (2000, 219)


def test_suite2p_dff_of_a_known_trace(tmp_path):
    folder = tmp_path / "suite2p" / "plane0"
    folder.mkdir(parents=True)
    t = np.arange(3000) / 10.0
    f = np.full((2, t.size), 100.0)
    f[0, 1000:1010] = 150.0  # one transient of +50 %
    np.save(folder / "F.npy", f.astype(np.float32))
    np.save(folder / "Fneu.npy", np.zeros_like(f, dtype=np.float32))
    np.save(folder / "iscell.npy", np.array([[1.0, 0.9], [0.0, 0.2]]))
    st = convert(folder, "--frame-rate", "10", "-o", tmp_path / "k.zarr")
    dff = st.read("sessions/suite2p_plane0/binned/counts")[:, 0]
    assert dff.shape == (3000,)
    assert abs(dff[1005] - 0.5) < 0.05 and np.max(np.abs(dff[:900])) < 1e-6


def test_npz_and_mat_v73_counts_orientation(tmp_path):
    rng = np.random.default_rng(1)
    counts = rng.poisson(2.0, size=(7, 300))  # (N, T)
    vel = rng.normal(size=(300, 2))
    np.savez(tmp_path / "a.npz", counts=counts, vel=vel)
    st = convert(tmp_path / "a.npz", "--counts", "counts", "--behavior", "v=vel", "--bin-size", "0.1",
                 "--t-start", "5", "-o", tmp_path / "a.zarr")
    np.testing.assert_array_equal(st.read("sessions/a/binned/counts"), counts.T)
    assert st.attrs("sessions/a/binned")["t_start_s"] == 5.0
    # MATLAB v7.3 (HDF5) stores arrays transposed: the reader gives MATLAB's shapes back
    with h5py.File(tmp_path / "b.mat", "w") as f:
        f["Y"] = counts  # MATLAB sees (300, 7)
        f["t"] = (np.arange(300) * 0.1 + 2.0)[:, None]  # MATLAB sees (300, 1)... a column vector
    st = convert(tmp_path / "b.mat", "--counts", "Y", "--time", "t", "-o", tmp_path / "b.zarr")
    np.testing.assert_array_equal(st.read("sessions/b/binned/counts"), counts.T)
    assert st.attrs("sessions/b/binned")["bin_size_s"] == pytest.approx(0.1)
    # explicit orientation when nothing tells the time axis
    st = convert(tmp_path / "a.npz", "--counts", "counts", "--bin-size", "0.1", "--transpose", "yes",
                 "-o", tmp_path / "c.zarr")
    assert st.array("sessions/a/binned/counts").shape == (300, 7)
