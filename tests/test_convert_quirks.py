"""ncli convert on real-world NWB quirks that are repaired (with one warning each), not refused.

Each quirk is built synthetically with pynwb and compared against the same file
written without the quirk; the real file in ../shared/data is checked where one exists.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from ncli.cli import app
from ncli.core.binning import repair_series
from ncli.formats.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nwb_factory import write_nwb  # noqa: E402

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
ALM = REPO.parent / "shared" / "data" / "dandi_alm" / "sub-anm369963_ses-20170228.nwb"


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run(path: Path, out: Path, *extra: str) -> tuple[Store, list[str]]:
    """Convert; return the store and the stderr lines that start with 'warning:'."""
    res = runner.invoke(app, ["convert", str(path), "-o", str(out), *extra])
    assert res.exit_code == 0, res.stderr
    assert "Traceback" not in res.stderr
    return Store.open(res.stdout.strip()), [ln for ln in res.stderr.splitlines() if ln.startswith("warning:")]


def session(st: Store) -> str:
    (sid,) = st.sessions()
    return f"sessions/{sid}"


# ----------------------------------------------------------------------------- 1. unsorted spike times


def test_unsorted_spikes_are_sorted_per_unit_with_one_warning(tmp_path):
    rng = np.random.default_rng(3)
    ordered = [np.sort(rng.uniform(0.0, 10.0, 40)) for _ in range(8)]
    shuffled = [t.copy() for t in ordered]
    steps = 0
    for u in range(1, 8):  # unit 0 stays sorted; units 1..7 are assembled out of order
        rng.shuffle(shuffled[u])
        steps += int(np.count_nonzero(np.diff(shuffled[u]) < 0))
    ids = [100 + u for u in range(8)]
    bad = write_nwb(tmp_path / "unsorted.nwb", spikes=shuffled, unit_ids=ids)
    good = write_nwb(tmp_path / "sorted.nwb", spikes=ordered, unit_ids=ids)
    before = sha(bad)
    st_bad, warns = run(bad, tmp_path / "bad.zarr")
    st_good, clean = run(good, tmp_path / "good.zarr")
    assert sha(bad) == before
    assert clean == []
    assert len(warns) == 1, warns
    assert "7 units" in warns[0] and f"{steps} backward steps" in warns[0]
    assert "101, 102, 103, 104, 105" in warns[0] and "106" not in warns[0]  # first few, then the count
    assert "100" not in warns[0].split("sorted per unit:")[1]
    b, g = session(st_bad), session(st_good)
    np.testing.assert_array_equal(st_bad.read(f"{b}/binned/counts"), st_good.read(f"{g}/binned/counts"))
    np.testing.assert_array_equal(st_bad.read(f"{b}/units/spike_times"), st_good.read(f"{g}/units/spike_times"))
    np.testing.assert_array_equal(st_bad.read(f"{b}/units/spike_index"), st_good.read(f"{g}/units/spike_index"))
    assert st_bad.attrs(f"{b}/binned") == st_good.attrs(f"{g}/binned")


def test_nan_spike_times_stay_an_error(tmp_path):
    path = write_nwb(tmp_path / "nan.nwb", spikes=[np.array([0.3, 0.1, np.nan, 4.0])])
    res = runner.invoke(app, ["convert", str(path), "-o", str(tmp_path / "x.zarr")])
    assert res.exit_code == 1
    assert "unit 0 has 1 NaN or infinite spike times" in res.stderr
    assert not (tmp_path / "x.zarr").exists()


@pytest.mark.skipif(not ALM.exists(), reason="real DANDI ALM file not available")
def test_real_alm_file_with_unsorted_spikes_converts(tmp_path):
    before = sha(ALM)
    st, warns = run(ALM, tmp_path / "alm.zarr")
    assert sha(ALM) == before
    spike_warns = [w for w in warns if "spike times" in w]
    assert len(spike_warns) == 1 and "1001" in spike_warns[0] and "21 backward steps" in spike_warns[0]
    s = session(st)
    with h5py.File(ALM, "r") as f:
        raw = np.asarray(f["units/spike_times"][:], dtype=np.float64)
    times = st.read(f"{s}/units/spike_times")
    np.testing.assert_array_equal(times, np.sort(raw))
    a = st.attrs(f"{s}/binned")
    counts = st.read(f"{s}/binned/counts")
    edges = a["t_start_s"] + np.arange(a["n_bins"] + 1) * a["bin_size_s"]
    expected, _ = np.histogram(np.sort(raw), bins=edges)
    inside = int(np.count_nonzero((raw >= edges[0]) & (raw < edges[-1])))
    assert int(counts.sum()) == a["n_spikes_binned"] == inside
    np.testing.assert_array_equal(counts[:, 0], expected)


# ----------------------------------------------------------------------------- 2. NaN behaviour timestamps

T = np.round(np.arange(0.0, 10.0 + 1e-9, 0.05), 10)
SPIKES = [np.array([0.1, 2.0, 5.0, 9.9])]


def test_nan_behaviour_timestamps_are_dropped(tmp_path):
    t = T.copy()
    bad_rows = [7, 80, 81]
    t[bad_rows] = [np.nan, np.nan, np.inf]
    x = 2.0 * T + 1.0
    x[150] = np.nan  # a NaN value stays NaN
    bad = write_nwb(tmp_path / "nants.nwb", spikes=SPIKES,
                    behavior={"speed": {"timestamps": t, "data": x, "container": "BehavioralTimeSeries"}})
    keep = np.isfinite(t)
    good = write_nwb(tmp_path / "clean.nwb", spikes=SPIKES,
                     behavior={"speed": {"timestamps": T[keep], "data": x[keep],
                                         "container": "BehavioralTimeSeries"}})
    before = sha(bad)
    st_bad, warns = run(bad, tmp_path / "bad.zarr")
    st_good, clean = run(good, tmp_path / "good.zarr")
    assert sha(bad) == before and clean == []
    assert len(warns) == 1 and "'speed'" in warns[0] and "3 samples with NaN" in warns[0]
    b, g = session(st_bad), session(st_good)
    for key in ("behavior/speed/timestamps", "behavior/speed/data", "binned/behavior/speed", "binned/valid",
                "binned/counts"):
        np.testing.assert_array_equal(st_bad.read(f"{b}/{key}"), st_good.read(f"{g}/{key}"))
    assert np.all(np.isfinite(st_bad.read(f"{b}/behavior/speed/timestamps")))
    assert np.isnan(st_bad.read(f"{b}/behavior/speed/data")).sum() == 1
    valid = st_bad.read(f"{b}/binned/valid")
    assert not valid.all() and valid.any()  # bins next to the NaN value are invalid


def test_nan_behaviour_timestamps_do_not_set_the_time_span(tmp_path):
    t = T.copy()
    t[0] = np.nan
    t[-1] = np.nan
    path = write_nwb(tmp_path / "span.nwb",
                     behavior={"pos": {"timestamps": t, "data": T, "container": "Position"}})
    st, warns = run(path, tmp_path / "span.zarr", "--allow-no-units", "--bin-size", "0.05")
    assert len(warns) == 1 and "'pos'" in warns[0] and "2 samples" in warns[0]
    a = st.attrs(f"{session(st)}/binned")
    assert a["t_start_s"] == pytest.approx(T[1])
    assert a["t_start_s"] + a["n_bins"] * a["bin_size_s"] <= T[-2] + 1e-9


# ----------------------------------------------------------------------------- 3. duplicated / backward timestamps


def test_unordered_and_duplicate_behaviour_timestamps_are_sorted_and_averaged(tmp_path):
    t, x = T.copy(), 3.0 * T
    t[[20, 21]] = t[[21, 20]]  # one swap: a backward step
    x[[20, 21]] = x[[21, 20]]  # the values travel with their timestamps
    t = np.insert(t, 60, t[60])  # a duplicate sample, one below and one above the line
    x = np.insert(x, 60, x[60] - 1.0)
    x[61] += 1.0
    bad = write_nwb(tmp_path / "order.nwb", spikes=SPIKES,
                    behavior={"hand": {"timestamps": t, "data": x, "container": "Position"}})
    good = write_nwb(tmp_path / "clean.nwb", spikes=SPIKES,
                     behavior={"hand": {"timestamps": T, "data": 3.0 * T, "container": "Position"}})
    st_bad, warns = run(bad, tmp_path / "bad.zarr")
    st_good, clean = run(good, tmp_path / "good.zarr")
    assert clean == []
    assert len(warns) == 1 and "'hand'" in warns[0]
    assert "1 backward step" in warns[0] and "1 duplicate timestamp" in warns[0]
    b, g = session(st_bad), session(st_good)
    ts = st_bad.read(f"{b}/behavior/hand/timestamps")
    assert np.all(np.diff(ts) > 0)
    for key in ("behavior/hand/timestamps", "behavior/hand/data", "binned/behavior/hand", "binned/valid"):
        np.testing.assert_allclose(st_bad.read(f"{b}/{key}"), st_good.read(f"{g}/{key}"), rtol=0, atol=1e-12)


def test_repair_series_is_stable_and_circular_aware():
    t = np.array([0.0, 2.0, 1.0, 2.0, np.nan, 3.0])
    x = np.array([0.0, np.pi - 0.1, 1.0, -np.pi + 0.1, 5.0, 3.0])
    tt, xx, rep = repair_series(t, x, circular=True)
    assert (rep.dropped_nan, rep.backward, rep.duplicates) == (1, 1, 1)
    np.testing.assert_array_equal(tt, [0.0, 1.0, 2.0, 3.0])
    assert abs(abs(xx[2]) - np.pi) < 1e-9  # the circular mean of pi-0.1 and -pi+0.1 is pi, not 0
    tt, xx, _ = repair_series(np.array([1.0, 1.0, 0.0]), np.array([[1.0, np.nan], [3.0, 4.0], [7.0, 8.0]]))
    np.testing.assert_array_equal(tt, [0.0, 1.0])
    np.testing.assert_array_equal(xx[0], [7.0, 8.0])
    assert xx[1, 0] == 2.0 and np.isnan(xx[1, 1])  # a NaN value stays NaN


# ----------------------------------------------------------------------------- 4. structured location strings


def test_structured_location_gives_the_region_as_area_and_keeps_the_raw_string(tmp_path):
    locs = ["brain_region: ALM; brain_subregion: N/A; cortical_layer: 5; hemisphere: left",
            "brain_region: N/A; hemisphere: right", "CA1"]
    path = write_nwb(tmp_path / "loc.nwb", spikes=[np.array([0.5, 1.0]), np.array([0.7]), np.array([2.0])],
                     unit_locations=locs)
    st, _ = run(path, tmp_path / "loc.zarr")
    s = session(st)
    assert list(st.read(f"{s}/units/area")) == ["ALM", "", "CA1"]
    assert list(st.read(f"{s}/units/location")) == locs


def test_plain_locations_add_no_column(tmp_path):
    path = write_nwb(tmp_path / "plain.nwb", spikes=[np.array([0.5, 1.0]), np.array([0.7, 2.0])],
                     unit_locations=["CA1", "hippocampus: CA3"])
    st, _ = run(path, tmp_path / "plain.zarr")
    s = session(st)
    assert list(st.read(f"{s}/units/area")) == ["CA1", "hippocampus: CA3"]
    assert not st.exists(f"{s}/units/location")


@pytest.mark.skipif(not ALM.exists(), reason="real DANDI ALM file not available")
def test_real_alm_file_area_is_the_region(tmp_path):
    st, _ = run(ALM, tmp_path / "alm.zarr")
    s = session(st)
    assert list(st.read(f"{s}/units/area")) == ["ALM"]
    assert st.read(f"{s}/units/location")[0].startswith("brain_region: ALM; brain_subregion: N/A")


# ----------------------------------------------------------------------------- 5. versions pynwb cannot read


def _one_error(res) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == 1 and len(lines) == 1, res.stderr
    assert lines[0].startswith("ncli convert: error: ") and "Traceback" not in res.stderr
    return lines[0]


@pytest.mark.parametrize("stored", ["NWB-1.0.6", "1.0.5"])
def test_nwb1_file_names_its_version(tmp_path, stored):
    path = tmp_path / "old.nwb"
    with h5py.File(path, "w") as f:  # NWB 1.x: the version is a dataset, not a root attribute
        f["nwb_version"] = stored
        f["identifier"] = "abc"
        f.create_group("acquisition")
        f.create_group("processing")
    before = sha(path)
    out = tmp_path / "o.zarr"
    line = _one_error(runner.invoke(app, ["convert", str(path), "-o", str(out)]))
    assert f"unsupported NWB version '{stored}'" in line and "NWB 2.x" in line
    assert "not an NWB file" not in line
    assert not out.exists() and sha(path) == before


def test_prerelease_nwb2_that_pynwb_cannot_read_names_its_version(tmp_path):
    path = write_nwb(tmp_path / "beta.nwb", spikes=[np.array([0.5, 1.0])])
    with h5py.File(path, "r+") as f:  # a matnwb 2.0b-era layout pynwb cannot build
        f.attrs["nwb_version"] = "2.0b"
        del f["specifications"]
        f["units"].attrs["neurodata_type"] = "Clustering"
    before = sha(path)
    out = tmp_path / "o.zarr"
    line = _one_error(runner.invoke(app, ["convert", str(path), "-o", str(out)]))
    assert "nwb_version '2.0b'" in line and "pre-release" in line and "NWB 2.x" in line
    assert not out.exists() and sha(path) == before


def test_prerelease_version_that_pynwb_reads_still_converts(tmp_path):
    path = write_nwb(tmp_path / "beta_ok.nwb", spikes=[np.array([0.5, 1.0, 3.0])])
    with h5py.File(path, "r+") as f:
        f.attrs["nwb_version"] = "2.0b"
    st, _ = run(path, tmp_path / "ok.zarr")
    assert int(st.read(f"{session(st)}/binned/counts").sum()) == 3


# ----------------------------------------------------------------------------- 6. Units outside /units; units columns


def _units_nwb(path: Path, where: str, *, extra: bool = True, also_units: bool = False,
               empty: bool = False) -> tuple[Path, list[np.ndarray]]:
    """A file whose Units table sits at ``where`` ('units', 'processing' or 'acquisition'), with sorter columns.

    Units: ids 7, 8, 9 on electrodes at x = 10, 20, 30 (y = 1, 2, 3; z = 0); columns
    ``quality`` (str), ``isi_violations_ratio``, ``amplitude`` (float), ``n_chan`` (int),
    ``id_ks`` ... plus a ragged ``spike_amplitudes`` column (skipped) and a units
    ``location`` column (kept as ``nwb_location``: the store owns ``units/location``).
    """
    import warnings

    from pynwb import NWBHDF5IO
    from pynwb.misc import Units

    from nwb_factory import _nwbfile

    rng = np.random.default_rng(5)
    spikes = [np.sort(rng.uniform(0.0, 10.0, k)) for k in (30, 12, 50)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nwb = _nwbfile()
        device = nwb.create_device(name="probe")
        group = nwb.create_electrode_group(name="shank0", description="s", location="CA1", device=device)
        for e in range(3):
            nwb.add_electrode(group=group, location="CA1", x=10.0 * (e + 1), y=float(e + 1), z=0.0)
        if where == "units":
            nwb.units = Units(name="units", electrode_table=nwb.electrodes)
            table = nwb.units
        else:
            table = Units(name="units_kilosort", electrode_table=nwb.electrodes)
        if extra:
            table.add_column("quality", "curation label")
            table.add_column("isi_violations_ratio", "ISI violations")
            table.add_column("amplitude", "mean amplitude (uV)")
            table.add_column("n_chan", "channels")
            table.add_column("location", "sorter's own location string")
            table.add_column("spike_amplitudes", "per-spike amplitudes", index=True)
        if not empty:
            for u, (q, isi, amp) in enumerate([("good", 0.01, 80.5), ("mua", 0.4, 40.0), ("good", 0.0, 120.0)]):
                row = {"quality": q, "isi_violations_ratio": isi, "amplitude": amp, "n_chan": 4 + u,
                       "location": f"shank {u}", "spike_amplitudes": list(rng.uniform(10, 100, 3))} if extra else {}
                table.add_unit(spike_times=spikes[u], id=7 + u, electrodes=[u], **row)
        if where == "processing":
            nwb.create_processing_module(name="ecephys", description="sorting").add(table)
        elif where == "acquisition":
            nwb.add_acquisition(table)
        if also_units:
            nwb.create_processing_module(name="spikesorting", description="a second sorting")
            other = Units(name="units_other")
            other.add_unit(spike_times=np.array([1.0]), id=99)
            nwb.processing["spikesorting"].add(other)
        with NWBHDF5IO(str(path), "w") as io:
            io.write(nwb)
    return path, spikes


@pytest.mark.parametrize("where", ["processing", "acquisition"])
def test_units_table_outside_units_is_found(tmp_path, where):
    path, spikes = _units_nwb(tmp_path / f"{where}.nwb", where)
    ref, _ = _units_nwb(tmp_path / "ref.nwb", "units")
    before = sha(path)
    st, _ = run(path, tmp_path / "o.zarr")
    sr, _ = run(ref, tmp_path / "r.zarr")
    s, r = session(st), session(sr)
    assert st.read(f"{s}/units/id").tolist() == ["7", "8", "9"]
    assert int(st.read(f"{s}/binned/counts").sum()) == sum(t.size for t in spikes)
    for arr in ("binned/counts", "units/spike_times", "units/spike_index", "units/area", "units/quality"):
        assert np.array_equal(st.read(f"{s}/{arr}"), sr.read(f"{r}/{arr}")), arr
    assert sha(path) == before


def test_several_units_tables_prefer_units_then_first_and_say_which(tmp_path):
    path, spikes = _units_nwb(tmp_path / "two.nwb", "units", also_units=True)
    res = runner.invoke(app, ["convert", str(path), "-o", str(tmp_path / "a.zarr")])
    assert res.exit_code == 0, res.stderr
    assert "2 Units tables" in res.stderr and "reading 'units'" in res.stderr
    st = Store.open(res.stdout.strip())
    assert st.read(f"{session(st)}/units/id").tolist() == ["7", "8", "9"]
    path2, _ = _units_nwb(tmp_path / "two_elsewhere.nwb", "processing", also_units=True)
    res = runner.invoke(app, ["convert", str(path2), "-o", str(tmp_path / "b.zarr")])
    assert res.exit_code == 0, res.stderr
    assert "reading 'processing/ecephys/units_kilosort'" in res.stderr


def test_empty_units_table_elsewhere_is_not_called_no_sorted_spikes(tmp_path):
    path, _ = _units_nwb(tmp_path / "empty.nwb", "processing", extra=False, empty=True)
    line = _one_error(runner.invoke(app, ["convert", str(path), "-o", str(tmp_path / "o.zarr")]))
    assert "processing/ecephys/units_kilosort" in line and "holds no units" in line
    assert "no sorted spikes" not in line


def test_units_columns_and_electrode_xyz_are_kept(tmp_path):
    path, _ = _units_nwb(tmp_path / "cols.nwb", "units")
    st, _ = run(path, tmp_path / "o.zarr")
    s = session(st)
    cols = set(st.children(f"{s}/units"))
    assert {"quality", "isi_violations_ratio", "amplitude", "n_chan", "nwb_location",
            "electrode_x", "electrode_y", "electrode_z"} <= cols
    assert "spike_amplitudes" not in cols  # ragged: one value per spike, not per unit
    assert st.read(f"{s}/units/quality").tolist() == ["good", "mua", "good"]
    assert np.allclose(st.read(f"{s}/units/isi_violations_ratio"), [0.01, 0.4, 0.0])
    assert np.allclose(st.read(f"{s}/units/amplitude"), [80.5, 40.0, 120.0])
    assert st.read(f"{s}/units/n_chan").tolist() == [4, 5, 6]
    assert st.read(f"{s}/units/nwb_location").tolist() == ["shank 0", "shank 1", "shank 2"]
    assert np.allclose(st.read(f"{s}/units/electrode_x"), [10.0, 20.0, 30.0])
    assert np.allclose(st.read(f"{s}/units/electrode_y"), [1.0, 2.0, 3.0])
    assert st.read(f"{s}/units/area").tolist() == ["CA1"] * 3  # the electrodes' location, not the clashing column
    assert len(st.read(f"{s}/units/spike_index")) == 4


def test_units_where_keeps_matching_units_and_records_it(tmp_path):
    path, spikes = _units_nwb(tmp_path / "where.nwb", "processing")
    st, _ = run(path, tmp_path / "o.zarr", "--units-where", "quality=good")
    s = session(st)
    assert st.read(f"{s}/units/id").tolist() == ["7", "9"]
    assert st.read(f"{s}/units/quality").tolist() == ["good", "good"]
    assert np.allclose(st.read(f"{s}/units/electrode_x"), [10.0, 30.0])
    counts = st.read(f"{s}/binned/counts")
    assert counts.shape[1] == 2 and int(counts.sum()) == spikes[0].size + spikes[2].size
    idx = st.read(f"{s}/units/spike_index")
    assert np.allclose(st.read(f"{s}/units/spike_times")[idx[1]:idx[2]], spikes[2])
    assert st.history[-1]["params"]["units_where"] == ["quality=good"]
    st2, _ = run(path, tmp_path / "o2.zarr", "--units-where", "quality=good,mua", "--units-where", "n_chan=5")
    assert st2.read(f"{session(st2)}/units/id").tolist() == ["8"]


def test_units_where_unknown_column_and_no_match(tmp_path):
    path, _ = _units_nwb(tmp_path / "where.nwb", "units")
    res = runner.invoke(app, ["convert", str(path), "-o", str(tmp_path / "a.zarr"), "--units-where", "grade=A"])
    assert res.exit_code == 2 and "Traceback" not in res.stderr
    assert "unknown units column 'grade'" in res.stderr and "quality" in res.stderr and "amplitude" in res.stderr
    assert not (tmp_path / "a.zarr").exists()
    line = _one_error(runner.invoke(app, ["convert", str(path), "-o", str(tmp_path / "b.zarr"),
                                          "--units-where", "quality=noise"]))
    assert "no unit" in line and "quality=noise" in line
    assert not (tmp_path / "b.zarr").exists()
    res = runner.invoke(app, ["convert", str(path), "-o", str(tmp_path / "c.zarr"), "--units-where", "quality"])
    assert res.exit_code == 2 and "COLUMN=VALUE" in res.stderr


def test_probe_takes_label_columns_and_refuses_measurements(tmp_path):
    path, _ = _units_nwb(tmp_path / "probe.nwb", "units")
    st, _ = run(path, tmp_path / "o.zarr")
    feats = tmp_path / "feat.zarr"
    res = runner.invoke(app, ["embed", str(tmp_path / "o.zarr"), "--method", "features", "-o", str(feats)])
    assert res.exit_code == 0, res.stderr
    for column in ("amplitude", "isi_violations_ratio"):
        res = runner.invoke(app, ["decode", str(feats), "--target", f"units/{column}", "-o", str(tmp_path / "b.zarr")])
        assert res.exit_code == 2 and f"units/{column} holds continuous values" in res.stderr, res.stderr
    res = runner.invoke(app, ["decode", str(feats), "--target", "units/spike_times", "-o", str(tmp_path / "c.zarr")])
    assert res.exit_code == 2 and "is not a per-unit label" in res.stderr, res.stderr


# ----------------------------------------------------------------------------- 7. bare TimeSeries in /acquisition


def test_bare_float_timeseries_in_acquisition_is_behaviour(tmp_path):
    t = np.arange(0.0, 10.0, 0.01)
    spikes = [np.array([0.5, 2.0, 9.0])]
    acq = {"wheel_speed": {"timestamps": t, "data": 2.0 * t + 1.0, "unit": "cm/s"},
           "ttl": {"timestamps": np.array([1.0, 4.0]), "data": np.array([1, 2], dtype=np.int8), "unit": "NA"}}
    path = write_nwb(tmp_path / "acq.nwb", spikes=spikes, acquisition=acq)
    ref = write_nwb(tmp_path / "mod.nwb", spikes=spikes, behavior={"wheel_speed": dict(acq["wheel_speed"])})
    st, _ = run(path, tmp_path / "a.zarr")
    sr, _ = run(ref, tmp_path / "b.zarr")
    s, r = session(st), session(sr)
    assert np.allclose(st.read(f"{s}/binned/behavior/wheel_speed"), sr.read(f"{r}/binned/behavior/wheel_speed"),
                       equal_nan=True)
    assert st.attrs(f"{s}/binned/behavior/wheel_speed")["unit"] == "cm/s"
    assert not st.is_array(f"{s}/binned/behavior/ttl")  # integer codes: an event series, native sampling only
    assert st.read(f"{s}/behavior/ttl/data").ravel().tolist() == [1, 2]
