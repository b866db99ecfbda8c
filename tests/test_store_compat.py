"""Stores written by ncli 0.1.0 keep opening: tests/fixtures/store_v010.zarr (ridge, possm, nuclr models).

The fixture and ``expected_v010.npz`` were written by ncli 0.1.0
(tests/fixtures/make_store_v010.py); the saved models must load through
today's code and predict exactly what they predicted then.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from compat_predict import predict_all
from ncli.cli import app

FIXTURES = Path(__file__).resolve().parent / "fixtures"
runner = CliRunner()


def _copy(tmp_path) -> str:
    """A copy of the fixture (tests never write into tests/fixtures)."""
    dst = tmp_path / "store_v010.zarr"
    shutil.copytree(FIXTURES / "store_v010.zarr", dst)
    return str(dst)


def test_v010_store_opens_and_info_shows_it(tmp_path):
    loc = _copy(tmp_path)
    res = runner.invoke(app, ["info", loc])
    assert res.exit_code == 0, res.stderr
    for name in ("ridge_velocity", "possm_velocity", "nuclr", "predictions/possm_velocity", "neurons/nuclr"):
        assert name in res.stdout
    checked = runner.invoke(app, ["info", loc, "--check"])
    assert checked.exit_code == 0, checked.stderr + checked.stdout


def test_v010_models_predict_exactly_as_before(tmp_path):
    got = predict_all(_copy(tmp_path))
    want = np.load(FIXTURES / "expected_v010.npz")
    assert sorted(got) == sorted(want.files) == ["nuclr/reach0", "possm/reach0", "ridge/reach0"]
    for key in want.files:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_v010_store_feeds_a_new_command(tmp_path):
    """A 0.1.0 store is a valid parent: decode and stream from it with today's version."""
    loc = _copy(tmp_path)
    out = tmp_path / "k.zarr"
    res = runner.invoke(app, ["decode", loc, "--method", "kalman", "--target", "velocity", "--folds", "2",
                              "-o", str(out)])
    assert res.exit_code == 0, res.stderr
    streamed = runner.invoke(app, ["decode", loc, "--method", "possm", "--target", "velocity", "--stream"])
    assert streamed.exit_code == 0, streamed.stderr
    assert len(streamed.stdout.strip().splitlines()) == 480
