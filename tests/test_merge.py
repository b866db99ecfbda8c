"""``ncli merge``: sessions of several stores in one self-contained store (issue 12, Also)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from builders import make_store
from typer.testing import CliRunner

from ncli.cli import app
from ncli.commands import merge as merge_module
from ncli.formats.store import Store, StoreWriter, validate

runner = CliRunner()


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("ncli merge: error: "), lines[0]
    return lines[0]


def tree_digest(path: str) -> str:
    """SHA-256 over every file's relative path and bytes (the input must not change)."""
    h = hashlib.sha256()
    for f in sorted(Path(path).rglob("*")):
        if f.is_file():
            h.update(str(f.relative_to(path)).encode() + f.read_bytes())
    return h.hexdigest()


def merge(*args: str, input: str | None = None):
    return runner.invoke(app, ["merge", *args], input=input)


@pytest.fixture
def two_stores(tmp_path):
    a = make_store(str(tmp_path / "a.zarr"), sessions=("s1", "s2"), n_units=4, duration=30.0, seed=0)
    b = make_store(str(tmp_path / "b.zarr"), sessions=("s1",), n_units=6, duration=20.0, bin_size=0.05, seed=7)
    return a, b


def test_merge_keeps_every_array_and_renames_colliding_sessions(tmp_path, two_stores):
    a, b = two_stores
    before = [tree_digest(a), tree_digest(b)]
    out = str(tmp_path / "ab.zarr")
    res = merge(a, b, "-o", out)
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == out
    assert "session 's1' of" in res.stderr and "renamed 's1_2'" in res.stderr
    assert [tree_digest(a), tree_digest(b)] == before  # inputs untouched

    m = Store.open(out)
    assert len(m.layers) == 1 and m.meta["parent"] is None  # self-contained
    assert m.sessions() == ["s1", "s1_2", "s2"]
    pairs = [(Store.open(a), "s1", "s1"), (Store.open(a), "s2", "s2"), (Store.open(b), "s1", "s1_2")]
    for src, sid, new in pairs:
        paths = [p for p, _ in src.walk(f"sessions/{sid}")]
        assert paths and sorted(p.split("/", 2)[2] for p, _ in m.walk(f"sessions/{new}")) == \
            sorted(p.split("/", 2)[2] for p in paths)
        for p in paths:
            got = m.read(p.replace(f"sessions/{sid}/", f"sessions/{new}/", 1))
            want = src.read(p)
            assert got.dtype == want.dtype or want.dtype.kind in "OTU"
            np.testing.assert_array_equal(got, want)
        assert m.attrs(f"sessions/{new}/binned")["bin_size_s"] == src.attrs(f"sessions/{sid}/binned")["bin_size_s"]
        assert m.attrs(f"sessions/{new}")["merged_from"] == {"store": src.location, "store_id": src.id,
                                                             "session": sid}
    # b's session has 6 units at 50 ms bins, a's 4 units at 20 ms: not mixed up
    assert m.array("sessions/s1_2/binned/counts").shape == (400, 6)
    assert m.array("sessions/s1/binned/counts").shape == (1500, 4)

    meta = m.meta
    sa, sb = Store.open(a), Store.open(b)
    assert [h["command"] for h in meta["history"]] == ["convert", "convert", "merge"]
    assert meta["history"][:2] == sa.history + sb.history
    assert meta["history"][-1]["inputs"] == [sa.location, sb.location]
    assert [(s["location"], s["id"], s["sessions"]) for s in meta["merged_from"]] == \
        [(sa.location, sa.id, {"s1": "s1", "s2": "s2"}), (sb.location, sb.id, {"s1": "s1_2"})]
    assert meta["merged_from"][1]["history"] == sb.history
    assert validate(m) == []
    check = runner.invoke(app, ["info", "--check", out])
    assert check.exit_code == 0 and "store is valid" in check.stdout


def test_session_ids_never_take_an_id_a_later_store_keeps():
    class Fake:
        def __init__(self, ids):
            self.ids = ids

        def sessions(self):
            return self.ids

    plan = merge_module.plan_session_ids([Fake(["s1"]), Fake(["s1"]), Fake(["s1", "s1_2"])])
    assert plan == [{"s1": "s1"}, {"s1": "s1_3"}, {"s1": "s1_4", "s1_2": "s1_2"}]


def test_layered_inputs_are_materialised_and_models_are_not_carried(tmp_path, two_stores):
    a, b = two_stores
    parent = Store.open(b)
    child = str(tmp_path / "b_pca.zarr")
    latents = np.arange(800.0).reshape(400, 2)
    with StoreWriter(child, parent=parent, command="embed", argv=["embed"]) as w:
        w.array("sessions/s1/latents/pca", latents)
        w.group("models/pca/s1", {"class": "ncli/pca@1", "config": {"dim": 2}})
    out = str(tmp_path / "m.zarr")
    res = merge(a, child, "-o", out)
    assert res.exit_code == 0, res.stderr
    assert "models/ of" in res.stderr and "not carried" in res.stderr
    m = Store.open(out)
    assert "models" not in m.children("")
    np.testing.assert_array_equal(m.read("sessions/s1_2/latents/pca"), latents)
    np.testing.assert_array_equal(m.read("sessions/s1_2/binned/counts"), parent.read("sessions/s1/binned/counts"))
    assert [h["command"] for h in m.history] == ["convert", "convert", "embed", "merge"]
    assert m.meta["merged_from"][1]["layers"] == [Store.open(child).location, parent.location]
    # a store and a store built on it share their sessions: refused
    res = merge(b, child, "-o", str(tmp_path / "twice.zarr"))
    assert res.exit_code == 2
    assert "two inputs share a layer" in one_error_line(res.stderr)


def test_simulated_stores_merge_and_keep_ground_truth_latents(tmp_path):
    locs = []
    for seed in (0, 1):
        loc = str(tmp_path / f"sim{seed}.zarr")
        res = runner.invoke(app, ["simulate", "candy", "--sessions", "2", "--bins", "200", "--seed", str(seed),
                                  "-o", loc])
        assert res.exit_code == 0, res.stderr
        locs.append(loc)
    out = str(tmp_path / "sims.zarr")
    res = merge(*locs, "-o", out)
    assert res.exit_code == 0, res.stderr
    m, s1 = Store.open(out), Store.open(locs[1])
    assert m.sessions() == ["sim0", "sim0_2", "sim1", "sim1_2"]
    np.testing.assert_array_equal(m.read("sessions/sim1_2/latents/truth"), s1.read("sessions/sim1/latents/truth"))
    np.testing.assert_array_equal(m.read("sessions/sim0_2/binned/behavior/velocity"),
                                  s1.read("sessions/sim0/binned/behavior/velocity"))
    assert validate(m) == []


def test_rename_behavior_renames_paths_and_default_columns(tmp_path, two_stores):
    a, b = two_stores
    out = str(tmp_path / "r.zarr")
    res = merge(a, b, "--rename-behavior", "pos=position", "-o", out)
    assert res.exit_code == 0, res.stderr
    m, sa = Store.open(out), Store.open(a)
    for sid in m.sessions():
        assert m.children(f"sessions/{sid}/behavior") == ["position"]
        assert m.children(f"sessions/{sid}/binned/behavior") == ["position"]
    np.testing.assert_array_equal(m.read("sessions/s2/binned/behavior/position"),
                                  sa.read("sessions/s2/binned/behavior/pos"))
    np.testing.assert_array_equal(m.read("sessions/s2/behavior/position/timestamps"),
                                  sa.read("sessions/s2/behavior/pos/timestamps"))
    assert m.attrs("sessions/s2/binned/behavior/position")["columns"] == ["x", "y"]  # named columns stay
    assert m.meta["history"][-1]["params"]["rename_behavior"] == {"pos": "position"}
    assert validate(m) == []


def test_rename_attrs_rewrites_default_column_names():
    path, attrs = merge_module._rename("binned/behavior/hand_velocity",
                                       {"columns": ["hand_velocity_0", "hand_velocity_1"], "unit": ""},
                                       {"hand_velocity": "velocity"})
    assert path == "binned/behavior/velocity" and attrs["columns"] == ["velocity_0", "velocity_1"]
    assert merge_module._rename("behavior/hand_velocity/data", {}, {"hand_velocity": "v"})[0] == "behavior/v/data"
    assert merge_module._rename("latents/hand_velocity", {}, {"hand_velocity": "v"})[0] == "latents/hand_velocity"


def test_merge_reads_one_location_from_stdin(tmp_path, two_stores):
    a, b = two_stores
    out = str(tmp_path / "p.zarr")
    res = merge("-", b, "-o", out, input=a + "\n")
    assert res.exit_code == 0, res.stderr
    assert Store.open(out).sessions() == ["s1", "s1_2", "s2"]


@pytest.mark.parametrize("case, message, code", [
    ("one", "merge needs at least two stores, got 1", 2),
    ("none", "merge needs at least two stores, got 0", 2),
    ("two-stdin", "only one input may be '-'", 2),
    ("not-a-store", "not an ncli store", 1),
    ("missing", "store not found", 1),
    ("same", "store given twice", 2),
    ("exists", "output already exists", 2),
    ("bad-rename", "invalid --rename-behavior 'pos'", 2),
    ("unknown-behaviour", "no session has a behaviour 'speed'", 2),
    ("rename-clash", "already has a behaviour 'pos'", 2),
])
def test_refusals_are_one_line_and_leave_no_output(tmp_path, two_stores, case, message, code):
    a, b = two_stores
    out = tmp_path / "out.zarr"
    plain = tmp_path / "plain"
    plain.mkdir()
    args = {
        "one": [a], "none": [], "two-stdin": ["-", "-"], "not-a-store": [a, str(plain)],
        "missing": [a, str(tmp_path / "nope.zarr")], "same": [a, a], "exists": [a, b],
        "bad-rename": [a, b, "--rename-behavior", "pos"],
        "unknown-behaviour": [a, b, "--rename-behavior", "speed=velocity"],
        "rename-clash": [a, b, "--rename-behavior", "pos=pos2", "--rename-behavior", "pos2=pos"],
    }[case]
    if case == "exists":
        make_store(str(out), sessions=("old",), duration=5.0)
        before = tree_digest(str(out))
    if case == "rename-clash":
        # a behaviour renamed onto a name the session already holds
        with StoreWriter(str(tmp_path / "c.zarr"), command="convert") as w:
            w.array("sessions/x/binned/behavior/pos", np.zeros((3, 1)))
            w.array("sessions/x/binned/behavior/vel", np.zeros((3, 1)))
        args = [a, str(tmp_path / "c.zarr"), "--rename-behavior", "vel=pos"]
    res = merge(*args, "-o", str(out))
    assert res.exit_code == code, res.stderr
    assert message in one_error_line(res.stderr)
    if case == "exists":
        assert tree_digest(str(out)) == before  # not replaced without --overwrite
    else:
        assert not out.exists()
    assert not list(tmp_path.glob(".*partial*"))


def test_failure_while_copying_leaves_no_partial_output(tmp_path, two_stores, monkeypatch):
    a, b = two_stores
    real = merge_module.copy_array
    calls = []

    def failing(src, w, path, **kw):
        calls.append(path)
        if len(calls) == 5:
            raise OSError("disk full")
        return real(src, w, path, **kw)

    monkeypatch.setattr(merge_module, "copy_array", failing)
    out = tmp_path / "x.zarr"
    res = merge(a, b, "-o", str(out))
    assert res.exit_code == 1
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("ncli merge: error: OSError: disk full") and "Traceback" not in res.stderr
    assert not out.exists() and not list(tmp_path.glob(".x.zarr*"))


def test_copy_is_block_by_block(tmp_path):
    """A (T, N) array bigger than one block is read in several slices, each of whole chunks."""
    src_loc = str(tmp_path / "big.zarr")
    data = np.arange(600_000, dtype=np.int32).reshape(100_000, 6)
    with StoreWriter(src_loc, command="convert") as w:
        w.create("a", data.shape, data.dtype, chunks=(1000, 6))[...] = data
    src = Store.open(src_loc).array("a")

    class Spy:
        def __init__(self, arr):
            self.arr, self.reads = arr, []
            self.dtype, self.shape, self.chunks, self.ndim = arr.dtype, arr.shape, arr.chunks, arr.ndim
            self.fill_value, self.attrs = arr.fill_value, {}

        def __getitem__(self, key):
            self.reads.append(key)
            return self.arr[key]

    spy = Spy(src)
    old = merge_module.COPY_BLOCK_BYTES
    merge_module.COPY_BLOCK_BYTES = 100_000  # about 4 chunks of 24 kB
    try:
        with StoreWriter(str(tmp_path / "copy.zarr"), command="merge") as w:
            merge_module.copy_array(spy, w, "a")
    finally:
        merge_module.COPY_BLOCK_BYTES = old
    assert len(spy.reads) == 25 and all((k.stop - k.start) == 4000 for k in spy.reads)
    np.testing.assert_array_equal(Store.open(str(tmp_path / "copy.zarr")).read("a"), data)


def _merge_m1_s1(tmp_path, shared_data) -> str:
    """Convert the M1 and S1 MAT files with their documented (different) options and merge them."""
    reach = shared_data / "monkey_reach"
    m1, s1, out = str(tmp_path / "m1.zarr"), str(tmp_path / "s1.zarr"), str(tmp_path / "reach.zarr")
    res = runner.invoke(app, ["convert", str(reach / "m1_stevenson_2011.mat"), "--counts", "spikes", "--time",
                              "time", "--behavior", "hand_velocity=handVel:0,1", "-o", m1])
    assert res.exit_code == 0, res.stderr
    res = runner.invoke(app, ["convert", str(reach / "s1_data.mat"), "--counts", "spikes", "--bin-size", "0.05",
                              "--behavior", "velocity=vel", "-o", s1])
    assert res.exit_code == 0, res.stderr
    res = merge(m1, s1, "--rename-behavior", "hand_velocity=velocity", "-o", out)
    assert res.exit_code == 0, res.stderr
    m = Store.open(out)
    assert m.sessions() == ["m1_stevenson_2011", "s1_data"]
    assert m.array("sessions/m1_stevenson_2011/binned/counts").shape == (15536, 171)
    assert m.array("sessions/s1_data/binned/counts").shape == (35129, 52)
    for sid, src, name in (("m1_stevenson_2011", m1, "hand_velocity"), ("s1_data", s1, "velocity")):
        np.testing.assert_array_equal(m.read(f"sessions/{sid}/binned/counts"),
                                      Store.open(src).read(f"sessions/{sid}/binned/counts"))
        np.testing.assert_array_equal(m.read(f"sessions/{sid}/binned/behavior/velocity"),
                                      Store.open(src).read(f"sessions/{sid}/binned/behavior/{name}"))
    assert m.attrs("sessions/m1_stevenson_2011/binned/behavior/velocity")["columns"] == ["velocity_0", "velocity_1"]
    check = runner.invoke(app, ["info", "--check", out])
    assert check.exit_code == 0 and "store is valid" in check.stdout
    return out


def test_m1_and_s1_mat_files_merge(tmp_path, shared_data):
    """The issue's case: two MAT files converted with different options end up in one valid store."""
    _merge_m1_s1(tmp_path, shared_data)


def _align(store: str, out: str) -> Store:
    res = runner.invoke(app, ["align", store, "--method", "candy", "--behavior", "velocity", "--epochs", "1",
                              "--refit-steps", "1", "--batch-size", "64", "--encoder", "linear", "--dim", "4",
                              "--window", "16", "-o", out])
    assert res.exit_code == 0, res.stderr
    return Store.open(out)


def test_align_candy_runs_on_merged_simulated_stores(tmp_path):
    locs = []
    for seed in (0, 1):
        loc = str(tmp_path / f"sim{seed}.zarr")
        assert runner.invoke(app, ["simulate", "candy", "--sessions", "1", "--bins", "300", "--seed", str(seed),
                                   "-o", loc]).exit_code == 0
        locs.append(loc)
    assert merge(*locs, "-o", str(tmp_path / "m.zarr")).exit_code == 0
    al = _align(str(tmp_path / "m.zarr"), str(tmp_path / "al.zarr"))
    for sid in ("sim0", "sim0_2"):
        lat = al.read(f"sessions/{sid}/latents/candy")
        assert lat.shape == (300, 4) and np.isfinite(lat).any()


@pytest.mark.slow
def test_m1_and_s1_mat_files_merge_and_align(tmp_path, shared_data):
    """Merged M1 + S1, then ``align --method candy`` (about 20-60 s on 2 busy cores: slow suite)."""
    al = _align(_merge_m1_s1(tmp_path, shared_data), str(tmp_path / "aligned.zarr"))
    assert al.array("sessions/m1_stevenson_2011/latents/candy").shape == (15536, 4)
    assert al.array("sessions/s1_data/latents/candy").shape == (35129, 4)
