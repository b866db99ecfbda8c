"""ncli convert on NWB files with the Zarr backend (``*.nwb.zarr`` folders written by hdmf-zarr).

The fixture tests/fixtures/nwb_zarr/ holds one session as HDF5 (``session.nwb``) and the
same session exported by hdmf-zarr 0.13 (``session.nwb.zarr``); it is written by
bench/make_nwb_zarr_fixture.py in a separate environment (hdmf-zarr needs zarr < 3).
Both must give the same store. When ``NCLI_HDMF_ZARR_PYTHON`` names that environment's
python, the store is also checked against hdmf-zarr's own reader (NWBZarrIO).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

from ncli.cli import app
from ncli.core.errors import DataError
from ncli.formats.nwb_zarr import decode_reference_pickle

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "nwb_zarr"
ZARR_NWB = FIXTURE / "session.nwb.zarr"
HDF5_NWB = FIXTURE / "session.nwb"
runner = CliRunner()


def convert(*args) -> Path:
    res = runner.invoke(app, ["convert", *map(str, args)])
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1, res.stdout
    return Path(lines[0])


def walk(store: Path) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Every array (by path) and every attribute dict (by path) of a store."""
    arrays, attrs = {}, {}

    def visit(group, prefix: str):
        attrs[prefix or "/"] = dict(group.attrs)
        for name, arr in group.arrays():
            arrays[f"{prefix}/{name}"] = arr[...]
            attrs[f"{prefix}/{name}"] = dict(arr.attrs)
        for name, sub in group.groups():
            visit(sub, f"{prefix}/{name}")

    visit(zarr.open_group(str(store), mode="r"), "")
    return arrays, attrs


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(q for q in folder.rglob("*") if q.is_file()):
        h.update(str(f.relative_to(folder)).encode() + f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    out = tmp_path_factory.mktemp("nwbzarr")
    before = digest(ZARR_NWB)
    z = convert(ZARR_NWB, "-o", out / "z.zarr")
    h = convert(HDF5_NWB, "-o", out / "h.zarr")
    assert digest(ZARR_NWB) == before  # input untouched
    return z, h


def test_zarr_and_hdf5_give_identical_stores(stores):
    z, h = stores
    za, zattrs = walk(z)
    ha, hattrs = walk(h)
    assert sorted(za) == sorted(ha)
    assert len(za) >= 15
    for key in ha:
        assert za[key].dtype == ha[key].dtype, key
        np.testing.assert_array_equal(za[key], ha[key], err_msg=key)
    volatile = {"source"}  # the input's path and sha256
    assert sorted(zattrs) == sorted(hattrs)
    for key in hattrs:
        if key == "/":  # the root holds the layer's provenance (inputs, times, layer id)
            continue
        zs = {k: v for k, v in zattrs[key].items() if k not in volatile}
        hs = {k: v for k, v in hattrs[key].items() if k not in volatile}
        assert json.dumps(zs, sort_keys=True, default=str) == json.dumps(hs, sort_keys=True, default=str), key


def test_json_references_give_the_same_store(stores, tmp_path):
    _, h = stores
    j = convert(FIXTURE / "session_json.nwb.zarr", "-o", tmp_path / "j.zarr")
    ja, _ = walk(j)
    ha, _ = walk(h)
    ja = {k.replace("/sessions/session_json/", "/sessions/session/"): v for k, v in ja.items()}
    assert sorted(ja) == sorted(ha)
    for key in ha:
        np.testing.assert_array_equal(ja[key], ha[key], err_msg=key)


def test_content_matches_the_fixture(stores):
    z, _ = stores
    arrays, attrs = walk(z)
    sess = "/sessions/session"
    assert [int(u) for u in arrays[f"{sess}/units/id"]] == [11, 12, 15, 20]  # ids are stored as strings
    assert list(arrays[f"{sess}/units/area"]) == ["CA1", "CA1", "none", "V1"]
    assert list(arrays[f"{sess}/units/quality"]) == ["good", "mua", "good", "noise"]
    counts = arrays[f"{sess}/binned/counts"]
    assert counts.shape == (600, 4)
    # every spike lies inside [0, 12) s: the counts hold them all
    np.testing.assert_array_equal(counts.sum(0), np.diff(arrays[f"{sess}/units/spike_index"]))
    pos = arrays[f"{sess}/binned/behavior/position"]
    centres = 0.01 + 0.02 * np.arange(600)
    np.testing.assert_allclose(pos[:, 0], 2 * centres + 1, atol=1e-9)
    np.testing.assert_allclose(pos[:, 1], -centres, atol=1e-9)
    assert list(arrays[f"{sess}/trials/outcome"]) == ["hit", "miss", "hit", "hit", "false alarm"]
    source = attrs[sess]["source"]
    assert source["path"] == str(ZARR_NWB.resolve()) and len(source["sha256"]) == 64
    assert attrs[sess]["identifier"] == "ncli-nwb-zarr-0001" and attrs[sess]["nwb_version"] == "2.11.0"


def test_no_temporary_copy_left_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    convert(ZARR_NWB, "-o", tmp_path / "out.zarr")
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not any(p.name.startswith("ncli-nwbzarr") for p in FIXTURE.iterdir())


def _broken_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "broken.nwb.zarr"
    shutil.copytree(ZARR_NWB, copy)
    return copy


@pytest.mark.parametrize("damage, cause", [
    (lambda c: (c / ".zgroup").unlink(), "no .zgroup at its root"),
    (lambda c: shutil.rmtree(c / "specifications"), "no 'specifications' group"),
    (lambda c: (c / ".zattrs").write_text("{not json"), ".zattrs is unreadable or not JSON"),
    (lambda c: (c / "units/spike_times/.zarray").unlink(), "'units/spike_times' has neither .zgroup nor .zarray"),
    (lambda c: (c / "units/spike_times/0").write_bytes(b"\x00garbage"), "'units/spike_times'"),
    (lambda c: (c / "units/quality/0").write_bytes(b"\x00garbage"), "'units/quality': chunk 0 is corrupt"),
    (lambda c: shutil.rmtree(c / "general/devices"), "points to '/general/devices/probe', which the folder lacks"),
])
def test_corrupt_or_partial_folder_is_one_line(tmp_path, damage, cause):
    copy = _broken_copy(tmp_path)
    damage(copy)
    res = runner.invoke(app, ["convert", str(copy), "-o", str(tmp_path / "out.zarr")])
    assert res.exit_code == 1, res.stdout
    lines = [ln for ln in res.stderr.strip().splitlines() if "error:" in ln]
    assert len(lines) == 1 and cause in lines[0], res.stderr
    assert "Traceback" not in res.stderr and "ncli-nwbzarr" not in res.stderr
    assert not (tmp_path / "out.zarr").exists()


def test_pickle_chunks_are_never_unpickled():
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    refs = np.empty(2, dtype=object)
    refs[:] = [{"source": ".", "path": "/a"}, {"source": ".", "path": "/b"}]
    decoded = decode_reference_pickle(pickle.dumps(refs, protocol=5), "x")
    assert [r["path"] for r in decoded] == ["/a", "/b"]
    evil = np.empty(1, dtype=object)
    evil[0] = Evil()
    with pytest.raises(DataError, match="never unpickles"):
        decode_reference_pickle(pickle.dumps(evil, protocol=5), "x")
    with pytest.raises(DataError, match="never unpickles"):
        decode_reference_pickle(pickle.dumps(np.arange(3.0)), "x")


@pytest.mark.skipif(not os.environ.get("NCLI_HDMF_ZARR_PYTHON"),
                    reason="NCLI_HDMF_ZARR_PYTHON (a python with hdmf-zarr) not set")
def test_store_matches_hdmf_zarr_reader(stores, tmp_path):
    z, _ = stores
    script = Path(__file__).resolve().parents[1] / "bench" / "check_nwb_zarr_hdmf.py"
    res = subprocess.run([os.environ["NCLI_HDMF_ZARR_PYTHON"], str(script), str(ZARR_NWB), str(tmp_path / "ref.npz")],
                         check=False, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    ref = np.load(tmp_path / "ref.npz", allow_pickle=False)
    arrays, _ = walk(z)
    sess = "/sessions/session"
    assert [int(u) for u in arrays[f"{sess}/units/id"]] == ref["unit_ids"].tolist()
    np.testing.assert_array_equal(arrays[f"{sess}/units/spike_times"], ref["spike_times"])
    np.testing.assert_array_equal(arrays[f"{sess}/units/spike_index"], ref["spike_index"])
    np.testing.assert_array_equal(arrays[f"{sess}/behavior/position/data"], ref["position_data"])
    np.testing.assert_array_equal(arrays[f"{sess}/behavior/position/timestamps"], ref["position_timestamps"])
    assert list(arrays[f"{sess}/trials/outcome"]) == list(ref["trial_outcome"])
