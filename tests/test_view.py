"""SessionView, the one reader of a session: the same arrays as the store, windows read on demand."""

from __future__ import annotations

import numpy as np
import pytest

from builders import make_store
from ncli.core.errors import DataError, UsageError
from ncli.formats.store import Store
from ncli.formats.view import SessionView, select_columns


@pytest.fixture
def view(tmp_path):
    loc = make_store(str(tmp_path / "s.zarr"), n_units=6, duration=20.0, bin_size=0.05)
    return SessionView(Store.open(loc), "s1")


def test_activity_counts_and_windows_agree(view):
    counts = np.asarray(view.store.read("sessions/s1/binned/counts"), dtype=np.float64)
    X, usable, source = view.activity(sqrt=True)
    np.testing.assert_array_equal(X, np.sqrt(counts))
    assert source == "binned/counts (sqrt)" and usable.all() and X.shape == (400, 6)
    starts = []
    for start, W, ok in view.windows(64, step=50, sqrt=True):
        np.testing.assert_array_equal(W, X[start:start + 64])
        assert ok.shape == (64,) and ok.all()
        starts.append(start)
    assert starts == list(range(0, 400 - 64 + 1, 50))
    assert view.n_bins == 400 and view.n_units == 6 and view.duration == pytest.approx(20.0)


def test_unit_counts_rebin_the_spikes(view):
    C, source = view.unit_counts(0.1)
    assert source == "units/spike_times" and C.shape == (200, 6)
    fine = np.asarray(view.store.read("sessions/s1/binned/counts"))
    np.testing.assert_array_equal(C, fine.reshape(200, 2, 6).sum(1))


def test_target_columns_and_errors(view):
    t = view.target("pos", ["y"])
    assert t.columns == ["y"] and t.Y.shape == (400, 1) and t.unit == "cm"
    assert select_columns(["-1", "x"], ["x", "y"], "pos") == [1, 0]
    with pytest.raises(UsageError, match="unknown column 'z'"):
        view.target("pos", ["z"])
    with pytest.raises(UsageError, match="unknown latents 'pca'"):
        view.latents("pca")
    with pytest.raises(UsageError, match="window length"):
        next(view.windows(0))
    assert view.table("trials")["start_time"].shape == (2,)
    assert view.stim() == {}


def test_missing_counts_is_a_data_error(tmp_path):
    import zarr

    loc = make_store(str(tmp_path / "s.zarr"), n_units=3, duration=10.0)
    zarr.open_group(loc, mode="r+")["sessions/s1/binned"].__delitem__("counts")
    v = SessionView(Store.open(loc), "s1")
    with pytest.raises(DataError, match="has no binned counts"):
        v.counts()
