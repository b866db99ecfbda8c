"""Pipes, run cache, exit codes and one-line errors (DESIGN.md §3), via info and export."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from builders import make_store
from ncli.cli import app
from ncli.core.errors import UsageError
from ncli.formats.pipe import read_location
from ncli.formats.store import Store, StoreWriter

runner = CliRunner()
NCLI = [sys.executable, "-m", "ncli.cli"]


def one_error_line(stderr: str, command: str) -> str:
    lines = [l for l in stderr.splitlines() if l.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"ncli {command}: error: "), lines[0]
    assert "Traceback" not in stderr
    return lines[0]


def layered(tmp_path: Path) -> str:
    parent = Store.open(make_store(str(tmp_path / "p.zarr")))
    with StoreWriter(str(tmp_path / "c.zarr"), parent=parent, command="embed", argv=["embed"]) as w:
        w.array("sessions/s1/latents/pca", np.arange(10000.0).reshape(5000, 2))
        w.group("models/pca/s1", {"class": "PCAEmbedding", "config": {"dim": 2},
                                  "metrics": {"explained_variance": 0.42}})
        w.array("sessions/s1/predictions/ridge_pos", np.zeros((5000, 2)),
                attrs={"metrics": {"r2": [0.5, 0.7], "r2_mean": 0.6}})
    return str(tmp_path / "c.zarr")


def test_info_shows_layers_sessions_arrays_models_and_history(tmp_path):
    res = runner.invoke(app, ["info", layered(tmp_path)])
    assert res.exit_code == 0, res.stderr
    out = res.stdout
    for needle in ["layers (nearest first):", "embed", "convert", "session s1",
                   "binned: 5000 bins x 5 units, 0.02 s bins", "behavior pos [cm]: x, y",
                   "table trials: 10 rows", "latents/pca", "(5000, 2)", "count  [parent]",
                   "models:", "pca/s1: PCAEmbedding  explained_variance=0.420",
                   "metrics predictions/ridge_pos: r2=[0.500, 0.700] r2_mean=0.600", "history:"]:
        assert needle in out, f"{needle!r} not in:\n{out}"


def test_info_json_is_machine_readable(tmp_path):
    res = runner.invoke(app, ["info", "--json", layered(tmp_path)])
    assert res.exit_code == 0
    d = json.loads(res.stdout)
    assert [l["command"] for l in d["layers"]] == ["embed", "convert"]
    s = d["sessions"]["s1"]
    assert s["binned"]["n_units"] == 5 and s["binned"]["n_bins"] == 5000
    assert s["arrays"]["binned/counts"] == {"shape": [5000, 5], "dtype": "int32", "unit": "count",
                                            "layer": str(tmp_path / "p.zarr")}
    assert s["behavior"]["pos"]["columns"] == ["x", "y"]
    assert d["models"]["pca/s1"]["metrics"]["explained_variance"] == 0.42
    assert [h["command"] for h in d["history"]] == ["convert", "embed"]


def test_store_location_is_read_from_stdin(tmp_path):
    loc = layered(tmp_path)
    proc = subprocess.run(NCLI + ["info", "--json"], input=loc + "\n", capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["location"] == loc
    proc = subprocess.run(NCLI + ["info", "-"], input=loc + "\n", capture_output=True, text=True)
    assert proc.returncode == 0


def test_no_store_and_a_terminal_on_stdin_is_a_usage_error():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    with pytest.raises(UsageError, match="missing input store"):
        read_location(None, stdin=Tty(""))
    assert read_location(None, stdin=io.StringIO("x.zarr\n")) == "x.zarr"
    assert read_location("y.zarr", stdin=io.StringIO("x.zarr\n")) == "y.zarr"


@pytest.mark.parametrize(
    "args, stdin, code, message",
    [
        (["info"], "", 2, "no store location on stdin (stdin)"),
        (["info", "nope.zarr"], None, 1, "store not found"),
        (["export", "nope.zarr", "--flatten"], None, 1, "store not found"),
        (["export", "x.zarr"], None, 2, "nothing to export"),
    ],
)
def test_errors_are_one_line_with_the_right_exit_code(tmp_path, monkeypatch, args, stdin, code, message):
    monkeypatch.chdir(tmp_path)
    make_store(str(tmp_path / "x.zarr"))
    res = runner.invoke(app, args, input=stdin)
    assert res.exit_code == code
    assert message in one_error_line(res.stderr, args[0])
    assert res.stdout == ""


def test_unknown_option_is_exit_2():
    res = runner.invoke(app, ["info", "--frobnicate"])
    assert res.exit_code == 2


def test_missing_parent_error_names_it(tmp_path):
    loc = layered(tmp_path)
    shutil.rmtree(tmp_path / "p.zarr")
    res = runner.invoke(app, ["info", loc])
    assert res.exit_code == 1
    line = one_error_line(res.stderr, "info")
    assert f"parent store not found: {tmp_path / 'p.zarr'}" in line


def test_export_flatten_is_self_contained_and_keeps_history(tmp_path):
    loc = layered(tmp_path)
    out = tmp_path / "flat.zarr"
    res = runner.invoke(app, ["export", loc, "--flatten", "-o", str(out)])
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == str(out)
    shutil.rmtree(tmp_path / "p.zarr")
    shutil.rmtree(tmp_path / "c.zarr")
    flat = Store.open(str(out))
    assert len(flat.layers) == 1 and flat.meta["parent"] is None
    assert flat.read("sessions/s1/binned/counts").shape == (5000, 5)
    np.testing.assert_array_equal(flat.read("sessions/s1/latents/pca"), np.arange(10000.0).reshape(5000, 2))
    assert flat.read("sessions/s1/units/id").tolist() == [f"u{k}" for k in range(5)]
    assert flat.attrs("models/pca/s1")["metrics"]["explained_variance"] == 0.42
    assert flat.attrs("sessions/s1/binned")["bin_size_s"] == 0.02
    assert [h["command"] for h in flat.history] == ["convert", "embed", "export"]
    assert runner.invoke(app, ["info", "--check", str(out)]).exit_code == 0


def test_existing_output_needs_overwrite(tmp_path):
    loc = layered(tmp_path)
    out = tmp_path / "flat.zarr"
    assert runner.invoke(app, ["export", loc, "--flatten", "-o", str(out)]).exit_code == 0
    res = runner.invoke(app, ["export", loc, "--flatten", "-o", str(out)])
    assert res.exit_code == 2
    assert "output already exists" in one_error_line(res.stderr, "export")
    assert runner.invoke(app, ["export", loc, "--flatten", "-o", str(out), "--overwrite"]).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.zarr", "flat.zarr", "p.zarr"]


def test_run_cache_returns_the_same_store_until_no_cache(tmp_path):
    loc = layered(tmp_path)
    first = runner.invoke(app, ["export", loc, "--flatten"])
    assert first.exit_code == 0
    path = first.stdout.strip()
    assert Path(path).parent == Path(os.environ["NCLI_CACHE"])
    id1 = Store.open(path).id
    again = runner.invoke(app, ["export", loc, "--flatten"])
    assert again.stdout.strip() == path and "using cached result" in again.stderr
    assert Store.open(path).id == id1
    fresh = runner.invoke(app, ["export", loc, "--flatten", "--no-cache"])
    assert fresh.stdout.strip() == path and Store.open(path).id != id1


def test_quiet_silences_info_logs(tmp_path):
    loc = layered(tmp_path)
    runner.invoke(app, ["export", loc, "--flatten"])
    res = runner.invoke(app, ["export", loc, "--flatten", "--quiet"])
    assert res.exit_code == 0 and res.stderr == ""


def test_info_check_fails_on_an_invalid_store(tmp_path):
    parent = Store.open(make_store(str(tmp_path / "p.zarr")))
    with StoreWriter(str(tmp_path / "bad.zarr"), parent=parent, command="x") as w:
        w.array("sessions/s1/latents/bad", np.zeros((3, 2)))
    res = runner.invoke(app, ["info", "--check", str(tmp_path / "bad.zarr")])
    assert res.exit_code == 1
    assert "latents/bad: shape (3, 2)" in res.stdout
    assert "does not match schema 1" in one_error_line(res.stderr, "info")


def test_acceptance_pipe_on_the_real_m1_recording(tmp_path, shared_data):
    """`ncli convert m1.nwb --bin-size 0.05 | ncli decode --method ridge --target hand_velocity --lags 6`."""
    nwb = shared_data / "monkey_reach" / "m1_stevenson_2011.nwb"
    env = dict(os.environ, NCLI_CACHE=str(tmp_path / "cache"))
    cmd = " ".join(NCLI)
    proc = subprocess.run(f"{cmd} convert '{nwb}' --bin-size 0.05 | "
                          f"{cmd} decode --method ridge --target hand_velocity --lags 6",
                          shell=True, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.strip()
    assert len(proc.stdout.splitlines()) == 1
    store = Store.open(out)
    (sid,) = store.sessions()
    metrics = store.attrs(f"sessions/{sid}/predictions/ridge_hand_velocity")["metrics"]
    assert metrics["n_folds"] == 5
    r2_xy = np.mean(metrics["r2"][:2])
    assert r2_xy >= 0.70, metrics
    assert abs(r2_xy - 0.76) < 0.03  # the known value for ridge on sqrt counts with 6 lags
