"""convert on NWB optical physiology (issue 12, fault kind 9): RoiResponseSeries -> a calcium session.

Every file is built here with pynwb, so the ground truth (the series' values,
rate, ROI ids, behaviour) is known exactly.
"""

from __future__ import annotations

import datetime as dt
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from ncli.cli import app
from ncli.formats.arrays import delta_f_over_f
from ncli.formats.store import Store, validate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nwb_factory import write_nwb

pytest.importorskip("pynwb")
runner = CliRunner()


def _ophys_nwb(path: Path, *, series: dict[str, dict[str, Any]], n_rois: int = 5, roi_ids: list[int] | None = None,
               location: str = "VISp", columns: dict[str, np.ndarray] | None = None,
               spikes: list[np.ndarray] | None = None, behavior: dict[str, dict[str, Any]] | None = None,
               trials: dict[str, np.ndarray] | None = None, planes: int = 1) -> Path:
    """Write an NWB file with ROI response series under processing/ophys.

    ``series``: name -> spec with ``container`` ('DfOverF' | 'Fluorescence'), ``data`` (T, N),
    ``rate`` (+ ``starting_time``) or ``timestamps``, optional ``plane`` (index), ``rows`` and
    ``name`` (the series' name when it differs from the key).
    """
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.file import Subject
    from pynwb.ophys import (
        DfOverF,
        Fluorescence,
        ImageSegmentation,
        OpticalChannel,
        RoiResponseSeries,
    )

    nwb = NWBFile(session_description="ophys test", identifier="ophys-1",
                  session_start_time=dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
                  subject=Subject(subject_id="m1", species="Mus musculus"))
    device = nwb.create_device(name="2p")
    seg = ImageSegmentation()
    tables = []
    for p in range(planes):
        channel = OpticalChannel(name="green", description="GCaMP", emission_lambda=520.0)
        plane = nwb.create_imaging_plane(name=f"plane{p}", optical_channel=channel, description="plane",
                                         device=device, excitation_lambda=920.0, indicator="GCaMP6f",
                                         location=location if p == 0 else f"{location}_{p}",
                                         imaging_rate=30.0)
        ps = seg.create_plane_segmentation(name=f"PlaneSegmentation{p}", description="rois",
                                           imaging_plane=plane)
        ids = roi_ids if (roi_ids is not None and p == 0) else list(range(n_rois))
        for r in range(n_rois):
            mask = np.zeros((4, 4))
            mask[r % 4, r // 4 % 4] = 1.0
            ps.add_roi(image_mask=mask, id=int(ids[r]))
        for col, values in (columns or {}).items():  # as suite2p writes them: whole columns, (N,) or (N, 2)
            ps.add_column(name=col, description=col, data=np.asarray(values))
        tables.append(ps)
    module = nwb.create_processing_module(name="ophys", description="optical physiology")
    module.add(seg)
    containers: dict[str, Any] = {}
    for name, spec in series.items():
        kind = spec["container"]
        if kind not in containers:
            containers[kind] = {"DfOverF": DfOverF, "Fluorescence": Fluorescence}[kind](name=kind)
            module.add(containers[kind])
        table = tables[spec.get("plane", 0)]
        rows = spec.get("rows", list(range(n_rois)))
        region = table.create_roi_table_region(region=rows, description="rois")
        kwargs: dict[str, Any] = {"name": spec.get("name", name), "data": np.asarray(spec["data"]), "rois": region,
                                  "unit": spec.get("unit", "n.a.")}
        if "timestamps" in spec:
            kwargs["timestamps"] = np.asarray(spec["timestamps"], dtype=np.float64)
        else:
            kwargs["rate"] = float(spec["rate"])
            kwargs["starting_time"] = float(spec.get("starting_time", 0.0))
        containers[kind].add_roi_response_series(RoiResponseSeries(**kwargs))
    if spikes is not None:
        for u, t in enumerate(spikes):
            nwb.add_unit(spike_times=np.asarray(t, dtype=np.float64), id=u)
    if behavior:
        from pynwb import TimeSeries
        from pynwb.behavior import BehavioralTimeSeries

        bmod = nwb.create_processing_module(name="behavior", description="behaviour")
        bts = BehavioralTimeSeries()
        bmod.add(bts)
        for name, spec in behavior.items():
            bts.add_timeseries(TimeSeries(name=name, data=np.asarray(spec["data"]), unit=spec.get("unit", "cm/s"),
                                          timestamps=np.asarray(spec["timestamps"], dtype=np.float64)))
    if trials:
        for col in trials:
            if col not in ("start_time", "stop_time"):
                nwb.add_trial_column(name=col, description=col)
        for i in range(len(trials["start_time"])):
            nwb.add_trial(**{k: v[i].item() for k, v in trials.items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with NWBHDF5IO(str(path), "w") as io:
            io.write(nwb)
    return path


def _traces(n_frames: int, n_rois: int, seed: int = 0, base: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (base + rng.gamma(2.0, 0.3, size=(n_frames, n_rois))).astype(np.float32)


def run(*args):
    return runner.invoke(app, ["convert", *map(str, args)])


def convert(*args) -> Store:
    res = run(*args)
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1, res.stdout
    return Store.open(lines[0])


def one_line_error(res, code: int, text: str) -> None:
    assert res.exit_code == code, (res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.startswith("ncli convert: error:")]
    assert len(lines) == 1 and text in lines[0], res.stderr
    assert "Traceback" not in res.stderr


BASE = "sessions/ophys"
RATE = 30.0


def test_dff_series_becomes_calcium_session(tmp_path):
    """Exact dF/F values, the frame grid from rate + starting_time, ROI ids, area, ROI columns, behaviour."""
    n_frames, n_rois = 600, 5
    dff = _traces(n_frames, n_rois)
    ids = [3, 8, 13, 21, 34]
    iscell = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    t_beh = np.arange(0.0, 25.0, 0.01)
    path = _ophys_nwb(tmp_path / "ophys.nwb", roi_ids=ids, columns={"iscell": iscell, "snr": np.arange(5) + 0.5},
                      series={"dff": {"container": "DfOverF", "data": dff, "rate": RATE, "starting_time": 2.5}},
                      behavior={"speed": {"timestamps": t_beh, "data": 3.0 * t_beh + 1.0}},
                      trials={"start_time": np.array([3.0, 10.0]), "stop_time": np.array([5.0, 12.0])})
    before = path.read_bytes()
    st = convert(path, "-o", tmp_path / "s.zarr")
    assert path.read_bytes() == before
    assert validate(st) == []
    a = st.attrs(f"{BASE}/binned")
    assert a["kind"] == "calcium" and a["n_bins"] == n_frames
    assert a["t_start_s"] == 2.5 and a["bin_size_s"] == pytest.approx(1.0 / RATE, rel=1e-12)
    counts = st.read(f"{BASE}/binned/counts")
    assert counts.dtype == np.float32 and counts.shape == (n_frames, n_rois)
    np.testing.assert_array_equal(counts, dff)
    assert list(st.read(f"{BASE}/units/id")) == [str(i) for i in ids]
    assert list(st.read(f"{BASE}/units/area")) == ["VISp"] * n_rois
    np.testing.assert_array_equal(st.read(f"{BASE}/units/iscell"), [1, 0, 1, 1, 0])
    np.testing.assert_allclose(st.read(f"{BASE}/units/snr"), np.arange(5) + 0.5)
    assert st.read(f"{BASE}/units/spike_index").tolist() == [0] * (n_rois + 1)
    # behaviour on the frame grid: speed = 3 t + 1 at bin centres 2.5 + (k + 0.5) / 30
    centres = 2.5 + (np.arange(n_frames) + 0.5) / RATE
    np.testing.assert_allclose(st.read(f"{BASE}/binned/behavior/speed")[:, 0], 3.0 * centres + 1.0, rtol=1e-9)
    assert st.read(f"{BASE}/binned/valid").all()
    np.testing.assert_array_equal(st.read(f"{BASE}/trials/start_time"), [3.0, 10.0])
    sa = st.attrs(BASE)
    assert sa["roi_series"] == "processing/ophys/DfOverF/dff" and sa["roi_series_type"] == "DfOverF"
    assert sa["frame_rate_hz"] == pytest.approx(RATE) and sa["dff_source"] == "DfOverF series of the file"


def test_dff_preferred_over_fluorescence_and_roi_series_choice(tmp_path):
    n_frames, n_rois = 400, 4
    f = _traces(n_frames, n_rois, seed=1, base=100.0)
    dff = _traces(n_frames, n_rois, seed=2)
    path = _ophys_nwb(tmp_path / "both.nwb", n_rois=n_rois,
                      series={"raw": {"container": "Fluorescence", "data": f, "rate": RATE},
                              "dff": {"container": "DfOverF", "data": dff, "rate": RATE}})
    st = convert(path, "-o", tmp_path / "a.zarr")
    np.testing.assert_array_equal(st.read("sessions/both/binned/counts"), dff)
    # --roi-series picks the Fluorescence series: dF/F computed with suite2p's routine, and said so
    res = run(path, "--roi-series", "raw", "-o", tmp_path / "b.zarr")
    assert res.exit_code == 0, res.stderr
    st = Store.open(res.stdout.strip())
    expected, _ = delta_f_over_f(f.T.astype(np.float64), np.zeros((n_rois, n_frames)), frame_rate=RATE)
    np.testing.assert_allclose(st.read("sessions/both/binned/counts"), expected, rtol=1e-6, atol=1e-7)
    sa = st.attrs("sessions/both")
    assert sa["roi_series"] == "processing/ophys/Fluorescence/raw"
    assert "delta_f_over_f" in sa["dff_source"] and sa["neuropil_coefficient"] == 0.0
    assert st.history[-1]["params"]["roi_series"] == "raw"
    # the path tail works as well
    st = convert(path, "--roi-series", "Fluorescence/raw", "-o", tmp_path / "c.zarr")
    assert st.attrs("sessions/both")["roi_series"] == "processing/ophys/Fluorescence/raw"


def test_fluorescence_only_with_neuropil_and_deconvolved(tmp_path):
    """suite2p's NWB export: Fluorescence, Neuropil and Deconvolved series; dF/F = suite2p importer's."""
    n_frames, n_rois = 500, 3
    f = _traces(n_frames, n_rois, seed=3, base=200.0)
    fneu = _traces(n_frames, n_rois, seed=4, base=50.0)
    spks = _traces(n_frames, n_rois, seed=5)
    path = _ophys_nwb(tmp_path / "s2p.nwb", n_rois=n_rois,
                      series={"Fluorescence": {"container": "Fluorescence", "data": f, "rate": RATE},
                              "Neuropil": {"container": "Fluorescence", "data": fneu, "rate": RATE},
                              "Deconvolved": {"container": "Fluorescence", "data": spks, "rate": RATE}})
    st = convert(path, "-o", tmp_path / "s.zarr")
    expected, _ = delta_f_over_f(f.T, fneu.T, frame_rate=RATE)
    np.testing.assert_allclose(st.read("sessions/s2p/binned/counts"), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(st.read("sessions/s2p/binned/spks"), spks)
    sa = st.attrs("sessions/s2p")
    assert sa["roi_series"].endswith("/Fluorescence") and sa["neuropil_series"].endswith("/Neuropil")
    assert sa["neuropil_coefficient"] == pytest.approx(0.7)


def test_regular_timestamps_give_the_grid(tmp_path):
    n_frames = 300
    t = 10.0 + np.arange(n_frames) / 15.0 + np.random.default_rng(0).uniform(-0.003, 0.003, n_frames)
    dff = _traces(n_frames, 3)
    path = _ophys_nwb(tmp_path / "ts.nwb", n_rois=3,
                      series={"dff": {"container": "DfOverF", "data": dff, "timestamps": t}})
    st = convert(path, "-o", tmp_path / "s.zarr")
    a = st.attrs("sessions/ts/binned")
    assert a["t_start_s"] == t[0] and a["bin_size_s"] == pytest.approx((t[-1] - t[0]) / (n_frames - 1))
    np.testing.assert_array_equal(st.read("sessions/ts/binned/counts"), dff)
    assert st.attrs("sessions/ts")["frame_timing"] == "timestamps"


def test_irregular_timestamps_are_resampled_with_a_warning(tmp_path):
    """Frames 100-109 dropped: the grid keeps the median interval, the gap's bins are invalid."""
    full = np.arange(200) / 20.0
    keep = np.r_[0:100, 110:200]
    t = full[keep]
    values = np.c_[2.0 * t + 1.0, -t].astype(np.float32)  # linear: interpolation is exact
    path = _ophys_nwb(tmp_path / "gap.nwb", n_rois=2,
                      series={"dff": {"container": "DfOverF", "data": values, "timestamps": t}})
    res = run(path, "-o", tmp_path / "s.zarr")
    assert res.exit_code == 0, res.stderr
    assert "irregular timestamps" in res.stderr and "resampled" in res.stderr
    st = Store.open(res.stdout.strip())
    a = st.attrs("sessions/gap/binned")
    assert a["n_bins"] == 200 and a["bin_size_s"] == pytest.approx(0.05) and a["t_start_s"] == 0.0
    counts = st.read("sessions/gap/binned/counts")
    np.testing.assert_allclose(counts, np.c_[2.0 * full + 1.0, -full], rtol=1e-6, atol=1e-6)
    valid = st.read("sessions/gap/binned/valid")
    assert not valid[100:110].any() and valid[:100].all() and valid[110:].all()
    assert st.attrs("sessions/gap")["frame_timing"] == "resampled"


def test_several_planes_logged_choice_and_errors(tmp_path):
    n_frames = 120
    d0, d1 = _traces(n_frames, 3, seed=6), _traces(n_frames, 3, seed=7)
    path = _ophys_nwb(tmp_path / "planes.nwb", n_rois=3, planes=2,
                      series={"plane0": {"container": "DfOverF", "data": d0, "rate": RATE, "plane": 0},
                              "plane1": {"container": "DfOverF", "data": d1, "rate": RATE, "plane": 1}})
    res = run(path, "-o", tmp_path / "a.zarr")
    assert res.exit_code == 0, res.stderr
    assert "2 candidate ROI response series" in res.stderr and "--roi-series" in res.stderr
    st = Store.open(res.stdout.strip())
    np.testing.assert_array_equal(st.read("sessions/planes/binned/counts"), d0)
    st = convert(path, "--roi-series", "plane1", "-o", tmp_path / "b.zarr")
    np.testing.assert_array_equal(st.read("sessions/planes/binned/counts"), d1)
    assert list(st.read("sessions/planes/units/area")) == ["VISp_1"] * 3
    one_line_error(run(path, "--roi-series", "nope", "-o", tmp_path / "c.zarr"), 2,
                   "--roi-series 'nope' matches no RoiResponseSeries")
    assert not (tmp_path / "c.zarr").exists()



def test_caiman_layout_same_name_in_both_containers(tmp_path):
    """CaImAn writes a series named RoiResponseSeries in both DfOverF and Fluorescence."""
    d0, f1 = _traces(150, 3, seed=6), _traces(150, 3, seed=7, base=100.0)
    path = _ophys_nwb(tmp_path / "caiman.nwb", n_rois=3,
                      series={"a": {"container": "DfOverF", "data": d0, "rate": RATE, "name": "RoiResponseSeries"},
                              "b": {"container": "Fluorescence", "data": f1, "rate": RATE,
                                    "name": "RoiResponseSeries"}})
    res = run(path, "-o", tmp_path / "a.zarr")
    assert res.exit_code == 0 and "candidate" not in res.stderr, res.stderr
    np.testing.assert_array_equal(Store.open(res.stdout.strip()).read("sessions/caiman/binned/counts"), d0)
    one_line_error(run(path, "--roi-series", "RoiResponseSeries", "-o", tmp_path / "b.zarr"), 2,
                   "matches 2 series")
    st = convert(path, "--roi-series", "DfOverF/RoiResponseSeries", "-o", tmp_path / "c.zarr")
    np.testing.assert_array_equal(st.read("sessions/caiman/binned/counts"), d0)


def test_units_win_unless_roi_series(tmp_path):
    rng = np.random.default_rng(9)
    spikes = [np.sort(rng.uniform(0.0, 10.0, 50)) for _ in range(2)]
    dff = _traces(300, 4, seed=8)
    path = _ophys_nwb(tmp_path / "mixed.nwb", n_rois=4, spikes=spikes,
                      series={"dff": {"container": "DfOverF", "data": dff, "rate": RATE}})
    st = convert(path, "-o", tmp_path / "a.zarr")
    a = st.attrs("sessions/mixed/binned")
    assert a["kind"] == "counts" and st.read("sessions/mixed/binned/counts").sum() == a["n_spikes_binned"] == 100
    st = convert(path, "--roi-series", "dff", "-o", tmp_path / "b.zarr")
    assert st.attrs("sessions/mixed/binned")["kind"] == "calcium"
    np.testing.assert_array_equal(st.read("sessions/mixed/binned/counts"), dff)


def test_roi_series_errors(tmp_path):
    plain = write_nwb(tmp_path / "units.nwb", spikes=[np.array([0.5, 1.5, 2.5])])
    one_line_error(run(plain, "--roi-series", "dff", "-o", tmp_path / "a.zarr"), 2, "has no RoiResponseSeries")
    mat = tmp_path / "x.npz"
    np.savez(mat, counts=np.zeros((10, 2)))
    one_line_error(run(mat, "--counts", "counts", "--bin-size", "0.1", "--roi-series", "dff", "-o",
                       tmp_path / "b.zarr"), 2, "--roi-series applies to NWB inputs only")


def test_transposed_data_is_repaired_and_bad_shapes_refused(tmp_path):
    dff = _traces(90, 4, seed=12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pynwb warns about the orientation it is asked to write
        path = _ophys_nwb(tmp_path / "tr.nwb", n_rois=4,
                          series={"dff": {"container": "DfOverF", "data": dff.T, "rate": RATE}})
    res = run(path, "-o", tmp_path / "a.zarr")
    assert res.exit_code == 0 and "stored as (ROIs, frames)" in res.stderr, res.stderr
    np.testing.assert_array_equal(Store.open(res.stdout.strip()).read("sessions/tr/binned/counts"), dff)
    bad = _ophys_nwb(tmp_path / "bad.nwb", n_rois=4, series={"dff": {"container": "DfOverF", "data": dff[:, :3],
                                                                     "rate": RATE}})
    one_line_error(run(bad, "-o", tmp_path / "b.zarr"), 1, "does not match its 4 ROIs")
    assert not (tmp_path / "b.zarr").exists()


def test_units_where_selects_rois(tmp_path):
    dff = _traces(200, 4, seed=10)
    path = _ophys_nwb(tmp_path / "sel.nwb", n_rois=4, columns={"accepted": np.array([True, False, True, True])},
                      series={"dff": {"container": "DfOverF", "data": dff, "rate": RATE}})
    st = convert(path, "--units-where", "accepted=1", "-o", tmp_path / "s.zarr")
    assert list(st.read("sessions/sel/units/id")) == ["0", "2", "3"]
    np.testing.assert_array_equal(st.read("sessions/sel/binned/counts"), dff[:, [0, 2, 3]])


def test_real_suite2p_output_as_nwb_matches_the_suite2p_importer(tmp_path, shared_data):
    """../shared/data/suite2p/plane0 written as suite2p's NWB export writes it converts like the folder."""
    plane = shared_data / "suite2p" / "plane0"
    f, fneu, spks = (np.load(plane / f"{n}.npy") for n in ("F", "Fneu", "spks"))
    iscell = np.load(plane / "iscell.npy")
    n_rois, n_frames = f.shape
    path = _ophys_nwb(tmp_path / "s2p.nwb", n_rois=n_rois, columns={"iscell": iscell},
                      series={"Fluorescence": {"container": "Fluorescence", "data": f.T, "rate": RATE},
                              "Neuropil": {"container": "Fluorescence", "data": fneu.T, "rate": RATE},
                              "Deconvolved": {"container": "Fluorescence", "data": spks.T, "rate": RATE}})
    folder = convert(plane, "--frame-rate", str(RATE), "-o", tmp_path / "folder.zarr")
    nwb = convert(path, "--units-where", "iscell=1", "-o", tmp_path / "nwb.zarr")
    a, b = "sessions/suite2p_plane0", "sessions/s2p"
    assert list(nwb.read(f"{b}/units/id")) == list(folder.read(f"{a}/units/id"))
    assert len(nwb.read(f"{b}/units/id")) == int((iscell[:, 0] == 1).sum()) == 20
    np.testing.assert_array_equal(nwb.read(f"{b}/binned/counts"), folder.read(f"{a}/binned/counts"))
    np.testing.assert_array_equal(nwb.read(f"{b}/binned/spks"), folder.read(f"{a}/binned/spks"))
    np.testing.assert_array_equal(nwb.read(f"{b}/units/iscell_prob"), folder.read(f"{a}/units/iscell_prob"))
    assert nwb.attrs(f"{b}/binned")["n_bins"] == n_frames
    # every ROI: the 78 whose F has no positive median (47 all-zero) get dF/F = 0, as with --all-rois
    empty = int((np.median(f, axis=1) <= 0).sum())
    res = run(path, "-o", tmp_path / "all.zarr")
    assert res.exit_code == 0 and f"{empty} ROI(s)" in res.stderr, res.stderr
    every = convert(plane, "--frame-rate", str(RATE), "--all-rois", "-o", tmp_path / "folder_all.zarr")
    np.testing.assert_array_equal(Store.open(res.stdout.strip()).read(f"{b}/binned/counts"),
                                  every.read(f"{a}/binned/counts"))


def test_embed_pca_on_the_calcium_session(tmp_path):
    n_frames = 900
    rng = np.random.default_rng(11)
    latent = np.sin(np.arange(n_frames) / 20.0)
    dff = (np.outer(latent, rng.normal(size=8)) + 0.05 * rng.normal(size=(n_frames, 8))).astype(np.float32)
    path = _ophys_nwb(tmp_path / "pca.nwb", n_rois=8,
                      series={"dff": {"container": "DfOverF", "data": dff, "rate": RATE}})
    convert(path, "-o", tmp_path / "s.zarr")
    res = runner.invoke(app, ["embed", str(tmp_path / "s.zarr"), "--method", "pca", "--dim", "2",
                              "-o", str(tmp_path / "pca.zarr")])
    assert res.exit_code == 0, res.stderr
    st = Store.open(res.stdout.strip())
    z = st.read("sessions/pca/latents/pca")
    assert z.shape == (n_frames, 2)
    r = np.corrcoef(z[:, 0], latent)[0, 1]
    assert abs(r) > 0.95
