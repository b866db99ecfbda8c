"""The ncli store: layers, parents, atomic writes, validation (DESIGN.md §2-3)."""

from __future__ import annotations

import shutil
import uuid

import numpy as np
import pytest
import zarr

from builders import make_store, make_units
from ncli.core.binning import Grid, bin_spikes, n_inside
from ncli.core.errors import StoreError, UsageError
from ncli.formats.store import Store, StoreWriter, validate


@pytest.fixture(params=["local", "memory"])
def location(request, tmp_path):
    """A fresh store location on each back-end (local directory, fsspec memory)."""
    if request.param == "local":
        return str(tmp_path / "s.zarr")
    return f"memory://ncli-test-{uuid.uuid4().hex}/s.zarr"


def test_roundtrip_on_every_backend(location):
    make_store(location, n_units=4, duration=20.0)
    s = Store.open(location)
    assert s.sessions() == ["s1"]
    counts = s.read("sessions/s1/binned/counts")
    assert counts.shape == (1000, 4)
    assert s.read("sessions/s1/units/id").tolist() == ["u0", "u1", "u2", "u3"]
    assert s.read("sessions/s1/units/area").tolist() == ["CA1", "CA1", "DG", "DG"]
    spikes = make_units(4, 20.0, seed=0)
    grid = Grid(0.0, 0.02, 1000)
    for u in range(4):
        np.testing.assert_array_equal(s.unit_spikes("s1", u), spikes[u])
        np.testing.assert_array_equal(counts[:, u], bin_spikes(spikes[u], grid))
    assert int(counts.sum()) == sum(n_inside(t, grid) for t in spikes)
    assert s.attrs("sessions/s1/binned/behavior/pos")["columns"] == ["x", "y"]
    assert validate(s) == []
    h = s.history
    assert len(h) == 1 and h[0]["command"] == "convert" and h[0]["finished"] is not None


def test_behaviour_is_interpolated_at_bin_centres(tmp_path):
    s = Store.open(make_store(str(tmp_path / "a.zarr"), duration=10.0, bin_size=0.05))
    centres = 0.05 * (np.arange(200) + 0.5)
    got = s.read("sessions/s1/binned/behavior/pos")
    # linear interpolation of a 100 Hz sampled sine: error below h^2/8 = 1.25e-5
    np.testing.assert_allclose(got[:, 0], np.sin(centres), atol=2e-5)
    np.testing.assert_allclose(got[:, 1], np.cos(centres), atol=2e-5)
    assert s.read("sessions/s1/binned/valid").all()


def test_layers_resolve_nearest_first_and_never_mutate_the_parent(tmp_path):
    parent = Store.open(make_store(str(tmp_path / "p.zarr")))
    before = parent.read("sessions/s1/binned/counts").copy()
    with StoreWriter(str(tmp_path / "c.zarr"), parent=parent, command="embed") as w:
        w.array("sessions/s1/latents/pca", np.ones((5000, 2)))
        w.array("sessions/s1/binned/counts", np.zeros((5000, 5), dtype=np.int32))  # shadows
    child = Store.open(str(tmp_path / "c.zarr"))
    assert [l.location for l in child.layers] == [str(tmp_path / "c.zarr"), str(tmp_path / "p.zarr")]
    assert child.read("sessions/s1/binned/counts").sum() == 0
    assert child.read("sessions/s1/units/id").shape == (5,)
    assert "latents" in child.children("sessions/s1") and "units" in child.children("sessions/s1")
    assert child.meta["parent"] == "p.zarr"  # relative to the child's directory
    assert [h["command"] for h in child.history] == ["convert", "embed"]
    np.testing.assert_array_equal(Store.open(str(tmp_path / "p.zarr")).read("sessions/s1/binned/counts"), before)


def test_relative_parent_survives_moving_both_stores(tmp_path):
    (tmp_path / "a").mkdir()
    parent = Store.open(make_store(str(tmp_path / "a" / "p.zarr")))
    with StoreWriter(str(tmp_path / "a" / "c.zarr"), parent=parent, command="embed") as w:
        w.array("sessions/s1/latents/x", np.zeros((5000, 1)))
    shutil.move(str(tmp_path / "a"), str(tmp_path / "b"))
    assert Store.open(str(tmp_path / "b" / "c.zarr")).read("sessions/s1/units/id").shape == (5,)


def test_missing_parent_is_a_clear_error_naming_it(tmp_path):
    parent = Store.open(make_store(str(tmp_path / "p.zarr")))
    with StoreWriter(str(tmp_path / "c.zarr"), parent=parent, command="embed") as w:
        w.array("sessions/s1/latents/x", np.zeros((5000, 1)))
    shutil.rmtree(tmp_path / "p.zarr")
    with pytest.raises(StoreError, match=r"parent store not found: .*p\.zarr"):
        Store.open(str(tmp_path / "c.zarr"))


@pytest.mark.parametrize(
    "setup, message",
    [
        ("missing", "store not found"),
        ("empty_dir", r"not an ncli store \(no Zarr v3 group here\)"),
        ("plain_zarr", r"not an ncli store \(root attribute 'ncli' missing\)"),
        ("file", r"not an ncli store"),
        ("future_schema", r"unsupported store schema 99"),
    ],
)
def test_opening_something_that_is_not_a_store(tmp_path, setup, message):
    path = tmp_path / "x.zarr"
    if setup == "empty_dir":
        path.mkdir()
    elif setup == "plain_zarr":
        zarr.open_group(str(path), mode="w")
    elif setup == "file":
        path.write_text("hello")
    elif setup == "future_schema":
        zarr.open_group(str(path), mode="w").attrs["ncli"] = {"schema": 99, "history": []}
    with pytest.raises(StoreError, match=message):
        Store.open(str(path))


def test_parent_loop_is_detected(tmp_path):
    a = zarr.open_group(str(tmp_path / "a.zarr"), mode="w")
    b = zarr.open_group(str(tmp_path / "b.zarr"), mode="w")
    a.attrs["ncli"] = {"schema": 1, "parent": "b.zarr", "history": []}
    b.attrs["ncli"] = {"schema": 1, "parent": "a.zarr", "history": []}
    with pytest.raises(StoreError, match="parent chain loops"):
        Store.open(str(tmp_path / "a.zarr"))


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failed_write_leaves_nothing(tmp_path, exc):
    target = tmp_path / "out.zarr"
    with pytest.raises(type(exc)):
        with StoreWriter(str(target), command="convert") as w:
            w.array("sessions/s1/binned/counts", np.zeros((10, 2)))
            raise exc
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_old_store(tmp_path):
    target = make_store(str(tmp_path / "out.zarr"))
    with pytest.raises(RuntimeError):
        with StoreWriter(target, command="convert", overwrite=True):
            raise RuntimeError("boom")
    assert Store.open(target).read("sessions/s1/units/id").shape == (5,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]


def test_existing_target_needs_overwrite(tmp_path):
    target = make_store(str(tmp_path / "out.zarr"))
    with pytest.raises(UsageError, match="output already exists"):
        StoreWriter(target, command="convert").__enter__()
    with StoreWriter(target, command="convert", overwrite=True) as w:
        w.array("sessions/s2/units/id", np.array(["a"]))
    assert Store.open(target).sessions() == ["s2"]


def test_output_cannot_be_its_own_input(tmp_path):
    parent = Store.open(make_store(str(tmp_path / "p.zarr")))
    with pytest.raises(UsageError, match="overwrite its own input"):
        StoreWriter(parent.location, parent=parent, command="embed", overwrite=True).__enter__()


@pytest.mark.parametrize(
    "path, data, problem",
    [
        ("sessions/s1/binned/valid", np.ones(7, dtype=bool), "binned/valid: shape differs"),
        ("sessions/s1/latents/bad", np.zeros((7, 2)), "latents/bad: shape (7, 2), expected (5000, K)"),
        ("sessions/s1/neurons/bad", np.zeros((2, 3)), "neurons/bad: 2 rows but 5 units"),
        ("sessions/s1/trials/extra", np.zeros(3), "trials: columns have different lengths"),
    ],
)
def test_validator_finds_inconsistent_layers(tmp_path, path, data, problem):
    parent = Store.open(make_store(str(tmp_path / "p.zarr")))
    with StoreWriter(str(tmp_path / "c.zarr"), parent=parent, command="x") as w:
        w.array(path, data)
    problems = validate(Store.open(str(tmp_path / "c.zarr")))
    assert any(problem in p for p in problems), problems
