"""The command-line contract under abuse: nothing lost, one line, the right exit code.

Each case here is a defect a new user found once; the table keeps it fixed.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from builders import make_store
from ncli.cli import app
from ncli.formats.store import Store, StoreWriter

runner = CliRunner()
NCLI = [sys.executable, "-c", "from ncli.cli import main; main()"]


def sha(path: Path) -> str:
    if path.is_dir():
        h = hashlib.sha256()
        for p in sorted(path.rglob("*")):
            if p.is_file():
                h.update(str(p.relative_to(path)).encode() + p.read_bytes())
        return h.hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line(stderr: str, command: str) -> str:
    lines = [l for l in stderr.splitlines() if l.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"ncli {command}: error: "), lines[0]
    return lines[0]


@pytest.fixture
def workdir(tmp_path, monkeypatch, shared_data):
    """tmp dir holding a small store `s.zarr` and a copy of a small NWB `m.nwb`."""
    monkeypatch.chdir(tmp_path)
    make_store(str(tmp_path / "s.zarr"), duration=60.0)
    shutil.copy(shared_data / "mouse_psb" / "A8604-211122.nwb", tmp_path / "m.nwb")
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("precious")
    return tmp_path


@pytest.mark.parametrize(
    "args, code, message",
    [
        # outputs never destroy inputs or things that are not stores
        (["convert", "m.nwb", "-o", "m.nwb", "--overwrite"], 2, "output would overwrite its own input"),
        (["convert", "m.nwb", "-o", "keep", "--overwrite"], 2, "refusing to replace something that is not an ncli store"),
        (["export", "s.zarr", "--flatten", "-o", "s.zarr", "--overwrite"], 2, "output would overwrite its own input"),
        (["embed", "s.zarr", "--method", "pca", "--dim", "2", "-o", "keep", "--overwrite"], 2,
         "refusing to replace something that is not an ncli store"),
        (["embed", "s.zarr", "--method", "pca", "--dim", "2", "-o", ".", "--overwrite"], 2,
         "output would replace a folder that holds an input"),
        # numbers are checked before anything runs (and before the cache is consulted)
        (["convert", "m.nwb", "--bin-size", "nan"], 2, "--bin-size must be a finite number"),
        (["convert", "m.nwb", "--bin-size", "inf"], 2, "--bin-size must be a finite number"),
        (["convert", "m.nwb", "--bin-size", "1e-9"], 1, "would make"),
        (["embed", "s.zarr", "--dim", "2", "--smooth", "nan"], 2, "--smooth must be a finite number"),
        (["embed", "s.zarr", "--dim", "2", "--smooth", "1e6"], 2, "longer than a quarter of session s1"),
        (["simulate", "lds", "--duration", "nan"], 2, "--duration must be a finite number"),
        (["decode", "s.zarr", "--target", "pos", "--lags", "100000"], 2, "--lags 100000 is too long"),
        (["decode", "s.zarr", "--target", "pos[0,0]"], 2, "the same column is chosen twice"),
    ],
)
def test_refused_requests_leave_everything_as_it_was(workdir, args, code, message):
    before = {p.name: sha(p) for p in workdir.iterdir()}
    res = runner.invoke(app, args)
    assert res.exit_code == code, res.stderr
    assert message in one_line(res.stderr, args[0])
    assert res.stdout == ""
    assert {p.name: sha(p) for p in workdir.iterdir()} == before


def test_parse_errors_are_one_line_in_the_real_cli(workdir):
    for args, needle in [(["convert", "m.nwb", "--bogus"], "No such option: --bogus"),
                         (["convert", "m.nwb", "--bin-size", "abc"], "Invalid value for '--bin-size'"),
                         (["embed", "s.zarr", "--seed", "-5"], "Invalid value for '--seed'"),
                         (["frobnicate"], "No such command 'frobnicate'")]:
        proc = subprocess.run(NCLI + args, capture_output=True, text=True, cwd=workdir)
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ncli") and needle in lines[0], proc.stderr
        assert "hint: see 'ncli" in lines[0]


def test_unwritable_cache_is_a_usage_error(workdir, monkeypatch):
    monkeypatch.setenv("NCLI_CACHE", str(workdir / "keep" / "notes.txt"))
    res = runner.invoke(app, ["embed", "s.zarr", "--dim", "2"])
    assert res.exit_code == 2
    assert "cannot create the run cache directory" in one_line(res.stderr, "embed")


def test_simulate_checks_every_target_before_writing(workdir):
    make_store(str(workdir / "taken.zarr"), duration=10.0)
    res = runner.invoke(app, ["simulate", "lds", "--duration", "10", "-o", "taken.zarr", "--nwb", "new.nwb"])
    assert res.exit_code == 2 and "output already exists" in one_line(res.stderr, "simulate")
    assert not (workdir / "new.nwb").exists()
    res = runner.invoke(app, ["simulate", "lds", "--duration", "10", "-o", "same.nwb", "--nwb", "same.nwb"])
    assert res.exit_code == 2 and "--nwb and -o name the same path" in one_line(res.stderr, "simulate")
    res = runner.invoke(app, ["simulate", "lds", "--duration", "10", "--nwb", "nodir/x.nwb"])
    assert res.exit_code == 2 and "NWB output directory does not exist" in one_line(res.stderr, "simulate")


def test_one_dimensional_counts_are_refused(workdir, shared_data):
    res = runner.invoke(app, ["convert", str(shared_data / "ibl" / "ephys_spikes.npz"), "--counts", "spike_times",
                              "--bin-size", "0.01", "-o", "x.zarr"])
    assert res.exit_code == 1
    assert "expected a 2-d bins x units matrix" in one_line(res.stderr, "convert")
    assert not (workdir / "x.zarr").exists()


def test_a_damaged_store_is_refused_with_one_line(workdir):
    parent = Store.open(str(workdir / "s.zarr"))
    with StoreWriter(str(workdir / "bad.zarr"), parent=parent, command="x") as w:
        w.array("sessions/s1/binned/valid", np.ones(10, dtype=bool))  # shadows with the wrong length
    res = runner.invoke(app, ["embed", "bad.zarr", "--dim", "2"])
    assert res.exit_code == 1
    line = one_line(res.stderr, "embed")
    assert "store does not match schema 1: sessions/s1/binned/valid: shape differs" in line


def test_python_warnings_become_single_lines(workdir):
    import warnings

    from ncli.commands._runtime import setup_logging

    setup_logging()
    proc = subprocess.run(
        [sys.executable, "-c",
         "import warnings; from ncli.commands._runtime import setup_logging; setup_logging(); "
         "warnings.warn('first line\\nsecond line', RuntimeWarning)"],
        capture_output=True, text=True)
    assert proc.stderr.strip() == "warning: first line second line (RuntimeWarning)"
    warnings.resetwarnings()


def test_cache_never_answers_for_a_copied_store(workdir):
    first = runner.invoke(app, ["embed", "s.zarr", "--dim", "2"])
    assert first.exit_code == 0, first.stderr
    shutil.copytree(workdir / "s.zarr", workdir / "copy.zarr")  # same layer id, another store
    second = runner.invoke(app, ["embed", "copy.zarr", "--dim", "2"])
    assert second.exit_code == 0
    assert second.stdout.strip() != first.stdout.strip()
    assert Store.open(second.stdout.strip()).layers[1].location == str(workdir / "copy.zarr")


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["align", "s.zarr", "--behavior", "pos"], 2, "align needs at least 2 sessions"),
        (["align", "two.zarr", "--behavior", "pos", "--smooth", "nan"], 2, "--smooth must be a finite number"),
        (["align", "two.zarr", "--behavior", "pos", "--lr", "inf"], 2, "must be finite numbers"),
        (["align", "two.zarr", "--behavior", "pos", "--dim", "100000"], 2, "--dim must be at most 256"),
        (["align", "two.zarr", "--behavior", "pos", "--dynamics-weight", "-1"], 2, "--dynamics-weight must be >= 0"),
        (["align", "two.zarr", "--behavior", "pos", "--refit-steps", "-1"], 2, "--refit-steps must be >= 0"),
        (["fit-lds", "flat.zarr", "--latents", "flat"], 1, "constant column(s) [1]"),
    ],
)
def test_align_and_fit_lds_refuse_bad_requests(workdir, args, code, message):
    make_store(str(workdir / "two.zarr"), duration=60.0, sessions=("a", "b"))
    parent = Store.open(str(workdir / "s.zarr"))
    latents = np.random.default_rng(0).normal(size=(3000, 2))
    latents[:, 1] = 1.5
    with StoreWriter(str(workdir / "flat.zarr"), parent=parent, command="x") as w:
        w.array("sessions/s1/latents/flat", latents)
    res = runner.invoke(app, args)
    assert res.exit_code == code, res.stderr
    assert message in one_line(res.stderr, args[0])


def test_info_lists_spectra(workdir):
    res = runner.invoke(app, ["spectrum", "--n-e", "400", "--n-i", "100", "--mean", "EE=2", "--mean", "EI=-3",
                              "--mean", "IE=2", "--mean", "II=-2", "-o", "net.zarr"])
    assert res.exit_code == 0, res.stderr
    shown = runner.invoke(app, ["info", "net.zarr"])
    assert shown.exit_code == 0, shown.stderr
    assert "spectra:" in shown.stdout and "regime=asynchronous" in shown.stdout


def test_output_inside_an_input_store_is_refused(workdir):
    before = sorted(p.name for p in (workdir / "s.zarr").iterdir())
    res = runner.invoke(app, ["embed", "s.zarr", "--dim", "2", "-o", "s.zarr/sub.zarr"])
    assert res.exit_code == 2
    assert "output would be written inside an input store" in one_line(res.stderr, "embed")
    assert sorted(p.name for p in (workdir / "s.zarr").iterdir()) == before


@pytest.mark.parametrize("args, message", [
    (["--units", "0"], "--units must be at least 2"),
    (["--states", "9"], "--states applies to --variant sequence only"),
    (["--variant", "sequence", "--bins", "100"], "--bins applies to --variant concepts only"),
])
def test_simulate_chunks_refuses_options_it_would_ignore(workdir, args, message):
    res = runner.invoke(app, ["simulate", "chunks", "-o", "c.zarr", *args])
    assert res.exit_code == 2
    assert message in one_line(res.stderr, "simulate")
    assert not (workdir / "c.zarr").exists()
