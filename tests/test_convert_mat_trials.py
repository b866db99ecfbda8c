"""ncli convert FILE.mat --trials VAR: MATLAB struct arrays of trials laid end to end on one grid."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from typer.testing import CliRunner

from ncli.cli import app
from ncli.formats.store import Store, validate

runner = CliRunner()
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
N_CH = 5
BINS = [4, 0, 1, 6, 3]  # trial 2 has no bins, trial 3 one bin (loadmat squeezes it to a vector)


def make_trials(seed: int = 0) -> list[dict]:
    """Five trials as MATLAB would hold them: counts bins x channels, pos with one extra sample, labels."""
    rng = np.random.default_rng(seed)
    trials = []
    for k, n in enumerate(BINS):
        trials.append({
            "binCounts": rng.poisson(2.0, size=(n, N_CH)).astype(np.uint8),
            "pos": rng.normal(size=(n + 1, 2)) if n else np.zeros((0, 2)),
            "vel": rng.normal(size=(n, 2)) if n else np.zeros((0, 2)),
            "success": int(k % 2),
            "type": ["center", "out", "center", "out", "catch"][k],
            "target": np.array([10.0 * k, -5.0 * k]),
            "decoder": rng.normal(size=(3, 3)),  # neither per bin nor scalar: skipped
        })
    return trials


def struct_array(trials: list[dict], transpose: bool = False) -> np.ndarray:
    fields = list(trials[0])
    out = np.empty((1, len(trials)), dtype=[(f, object) for f in fields])
    for k, t in enumerate(trials):
        for f in fields:
            v = t[f]
            out[0, k][f] = v.T if transpose and f in ("binCounts", "pos", "vel") else v
    return out


def save(path: Path, trials: list[dict], *, transpose: bool = False, **top) -> Path:
    scipy.io.savemat(str(path), {"trialData": struct_array(trials, transpose), **top})
    return path


def run(*args):
    return runner.invoke(app, ["convert", *map(str, args)])


def convert(*args) -> Store:
    res = run(*args)
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1, res.stdout
    return Store.open(lines[0])


def error_lines(res) -> list[str]:
    return [line for line in res.stderr.splitlines() if "error:" in line]


def first_bins(bins: list[int], gap: int = 1) -> list[int]:
    out, pos = [], 0
    for n in bins:
        if n and pos:
            pos += gap
        out.append(pos)
        pos += n
    return out


def check_layout(store: Store, sid: str, trials: list[dict], bin_size: float) -> None:
    s = f"sessions/{sid}"
    counts = store.read(f"{s}/binned/counts")
    valid = store.read(f"{s}/binned/valid")
    pos = store.read(f"{s}/binned/behavior/pos")
    vel = store.read(f"{s}/binned/behavior/vel")
    first = first_bins(BINS)
    assert counts.shape == (sum(BINS) + 3, N_CH)  # 4 trials with bins -> 3 gap bins
    in_trial = np.zeros(counts.shape[0], dtype=bool)
    for k, t in enumerate(trials):
        sl = slice(first[k], first[k] + BINS[k])
        in_trial[sl] = True
        np.testing.assert_array_equal(counts[sl], t["binCounts"])
        np.testing.assert_array_equal(pos[sl], t["pos"][: BINS[k]])  # the extra (last) sample dropped
        np.testing.assert_array_equal(vel[sl], t["vel"])
    np.testing.assert_array_equal(valid, in_trial)
    assert counts[~in_trial].sum() == 0 and np.isnan(pos[~in_trial]).all()
    assert int(counts.sum()) == sum(int(t["binCounts"].sum()) for t in trials)
    tr = f"{s}/trials"
    np.testing.assert_array_equal(store.read(f"{tr}/n_bins"), BINS)
    np.testing.assert_allclose(store.read(f"{tr}/start_time"), np.array(first) * bin_size)
    np.testing.assert_allclose(store.read(f"{tr}/stop_time"), (np.array(first) + BINS) * bin_size)
    np.testing.assert_array_equal(store.read(f"{tr}/success"), [t["success"] for t in trials])
    assert list(store.read(f"{tr}/type")) == [t["type"] for t in trials]
    np.testing.assert_array_equal(store.read(f"{tr}/target_0"), [t["target"][0] for t in trials])
    np.testing.assert_array_equal(store.read(f"{tr}/target_1"), [t["target"][1] for t in trials])
    assert "decoder" not in store.children(tr) and "decoder" not in store.children(f"{s}/binned/behavior")
    assert store.attrs(f"{s}/binned")["bin_size_s"] == pytest.approx(bin_size)


def test_struct_array_exact_placement(tmp_path):
    trials = make_trials()
    f = save(tmp_path / "bci.mat", trials, goodChannels=np.array([1, 3, 4]), dt=0.05)
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    store = convert(f, "--trials", "trialData", "-o", tmp_path / "out.zarr")
    check_layout(store, "bci", trials, 0.05)
    assert list(store.read("sessions/bci/units/good")) == [True, False, True, True, False]
    assert list(store.read("sessions/bci/units/id")) == ["1", "2", "3", "4", "5"]
    assert validate(store) == []
    assert hashlib.sha256(f.read_bytes()).hexdigest() == digest


def test_channels_by_bins_orientation_and_bin_size_option(tmp_path):
    trials = make_trials(1)
    f = save(tmp_path / "bci_t.mat", trials, transpose=True)
    res = run(f, "--trials", "trialData", "-o", tmp_path / "x.zarr")
    assert res.exit_code == 2 and "holds no bin width; give --bin-size" in res.stderr
    assert len(error_lines(res)) == 1 and len(res.stderr.strip().splitlines()) == 1
    store = convert(f, "--trials", "trialData", "--bin-size", "0.02", "-o", tmp_path / "out.zarr")
    check_layout(store, "bci_t", trials, 0.02)


def test_explicit_behavior_columns_and_missing_trials(tmp_path):
    trials = make_trials(2)
    trials[3]["vel"] = np.zeros((0, 2))  # vel missing in one trial with bins
    f = save(tmp_path / "m.mat", trials)
    res = run(f, "--trials", "trialData", "--bin-size", "0.01", "--trial-behavior", "speed=vel:1",
              "-o", tmp_path / "out.zarr")
    assert res.exit_code == 0, res.stderr
    assert "missing in 1 trials" in res.stderr
    store = Store.open(res.stdout.strip())
    s = "sessions/m"
    speed = store.read(f"{s}/binned/behavior/speed")
    valid = store.read(f"{s}/binned/valid")
    first = first_bins(BINS)
    assert speed.shape[1] == 1 and store.children(f"{s}/binned/behavior") == ["speed"]
    np.testing.assert_array_equal(speed[first[0] : first[0] + 4, 0], trials[0]["vel"][:, 1])
    assert np.isnan(speed[first[3] : first[3] + 6]).all() and not valid[first[3] : first[3] + 6].any()
    assert valid.sum() == sum(BINS) - BINS[3]
    # pos is not named: it is not behaviour, and not a trial column either
    assert "pos" not in store.children(f"{s}/trials")


def test_bad_names_are_one_line_errors(tmp_path):
    f = save(tmp_path / "e.mat", make_trials(), dt=0.05)
    cases = [
        (["--trials", "nope"], "no variable 'nope'", "trialData"),
        (["--trials", "trialData", "--trial-counts", "spikes"], "no field 'spikes'", "binCounts, pos, vel"),
        (["--trials", "trialData", "--trial-behavior", "x=nope"], "no field 'nope'", "binCounts"),
        (["--trials", "trialData", "--trial-counts", "vel"], "negative values", None),
        (["--trial-counts", "binCounts"], "applies to --trials only", None),
        (["--trials", "trialData", "--counts", "x"], "give --trials or --counts", None),
        (["--trials", "trialData", "--trial-behavior", "t=target"], "not one sample per bin", None),
    ]
    for args, what, names in cases:
        res = run(f, *args, "-o", tmp_path / "out.zarr")
        assert res.exit_code in (1, 2), (args, res.stderr)
        assert what in res.stderr, (args, res.stderr)
        if names:
            assert names in res.stderr, (args, res.stderr)
        assert "Traceback" not in res.stderr and len(error_lines(res)) == 1, res.stderr
        assert not (tmp_path / "out.zarr").exists()


def test_struct_of_cells_nested_and_stored_dt(tmp_path):
    """Golub et al.'s layout: a struct whose fields are cells, one per condition, channels x bins."""
    rng = np.random.default_rng(3)
    k, n_ch, n = 3, 4, 7
    spikes = np.empty(k, dtype=object)
    kin = np.empty(k, dtype=object)
    for i in range(k):
        spikes[i] = rng.poisson(1.0, size=(n_ch, n)).astype(np.uint8)
        kin[i] = rng.normal(size=(2, n))
    clouds = {"spikes": spikes, "kin": kin, "angles": np.array([0, 90, 180], dtype=np.uint16),
              "windowIdx": np.arange(10)}
    f = tmp_path / "golub.mat"
    scipy.io.savemat(str(f), {"before": {"name": "Data", "clouds": clouds},
                              "params": {"mapping": {"dt": 0.045}}})
    store = convert(f, "--trials", "before", "-o", tmp_path / "out.zarr")
    s = "sessions/golub"
    counts = store.read(f"{s}/binned/counts")
    assert counts.shape == (k * n + k - 1, n_ch)
    for i in range(k):
        np.testing.assert_array_equal(counts[i * (n + 1) : i * (n + 1) + n], spikes[i].T)
        np.testing.assert_array_equal(store.read(f"{s}/binned/behavior/kin")[i * (n + 1) : i * (n + 1) + n],
                                      kin[i].T)
    np.testing.assert_array_equal(store.read(f"{s}/trials/angles"), [0, 90, 180])
    assert "windowIdx" not in store.children(f"{s}/trials")
    assert store.attrs(f"{s}/binned")["bin_size_s"] == pytest.approx(0.045)
    assert store.attrs(s)["source"]["variable"] == "before.clouds"


def test_v73_refused(tmp_path):
    import h5py

    f = tmp_path / "v73.mat"
    with h5py.File(f, "w") as h:
        h.create_group("trialData").create_dataset("binCounts", data=np.zeros((3, 2)))
    res = run(f, "--trials", "trialData", "--bin-size", "0.02", "-o", tmp_path / "out.zarr")
    assert res.exit_code == 1 and "v7.3 (HDF5) trial structs are not supported" in res.stderr
    assert error_lines(res) == res.stderr.strip().splitlines() and "save(FILE, '-v7')" in res.stderr


STABILITY = DATA / "monkey_bci_stability" / "20160325.mat"
GOLUB = DATA / "monkey_bci" / "exampleData.mat"


@pytest.mark.skipif(not STABILITY.is_file(), reason="shared data not present")
def test_real_stability_file(tmp_path):
    mat = scipy.io.loadmat(str(STABILITY), squeeze_me=True, struct_as_record=False)
    td = mat["trialData"]
    bins = np.array([np.asarray(t.binCounts).shape[0] if np.size(t.binCounts) else 0 for t in td])
    store = convert(STABILITY, "--trials", "trialData", "--bin-size", "0.045", "-o", tmp_path / "s.zarr")
    s = "sessions/20160325"
    n_bins = store.read(f"{s}/trials/n_bins")
    assert len(n_bins) == len(td) == 1268
    np.testing.assert_array_equal(n_bins, bins)
    valid = store.read(f"{s}/binned/valid")
    assert int(valid.sum()) == int(bins.sum()) == 38015
    counts = store.read(f"{s}/binned/counts")
    assert counts.shape[1] == 96
    assert int(counts.sum()) == sum(int(np.asarray(t.binCounts, dtype=np.int64).sum()) for t in td)
    good = store.read(f"{s}/units/good")
    assert int(good.sum()) == len(mat["goodElectrodes"]) == 93
    assert not good[np.setdiff1d(np.arange(96), np.asarray(mat["goodElectrodes"]) - 1)].any()
    start = store.read(f"{s}/trials/start_time")
    k = int(np.argmax(bins > 0)) + 5
    b0 = round(float(start[k]) / 0.045)
    np.testing.assert_array_equal(counts[b0 : b0 + bins[k]], td[k].binCounts)
    assert list(store.read(f"{s}/trials/type")[:1]) == [td[0].type]


@pytest.mark.skipif(not GOLUB.is_file(), reason="shared data not present")
def test_real_golub_file(tmp_path):
    mat = scipy.io.loadmat(str(GOLUB), squeeze_me=True, struct_as_record=False)
    spikes = mat["afterLearning"].clouds.spikes
    store = convert(GOLUB, "--trials", "beforeLearning", "--trials", "afterLearning.clouds",
                    "-o", tmp_path / "g.zarr")
    s = "sessions/exampleData_afterLearning.clouds"
    assert store.sessions() == ["exampleData_afterLearning.clouds", "exampleData_beforeLearning"]
    assert store.attrs(f"{s}/binned")["bin_size_s"] == pytest.approx(mat["expParams"].intuitiveMapping.dt)
    counts = store.read(f"{s}/binned/counts")
    assert counts.shape[1] == spikes[0].shape[0] == 86
    assert int(counts.sum()) == sum(int(x.astype(np.int64).sum()) for x in spikes)
    n = spikes[0].shape[1]
    np.testing.assert_array_equal(counts[n + 1 : 2 * n + 1], spikes[1].T)
    np.testing.assert_array_equal(store.read(f"{s}/trials/angles"), mat["afterLearning"].clouds.angles)
