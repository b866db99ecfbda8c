"""ncli convert on bad input: one error line, a non-zero exit, no output, an untouched input.

Repaired real-world quirks (unsorted spikes, NaN or unordered behaviour timestamps) are
tested in test_convert_quirks.py.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from ncli.cli import app
from ncli.formats.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nwb_factory import standard_nwb, write_nwb  # noqa: E402

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]

SPIKES = [np.array([0.5, 1.0, 2.0, 3.5]), np.array([0.2, 0.4, 4.0])]
T = np.linspace(0.0, 5.0, 51)


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("ncli convert: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def digest(path: Path) -> str | None:
    if not path.exists():
        return None
    if path.is_dir():
        return "".join(digest(p) or "" for p in sorted(path.iterdir()))
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- builders


def missing(d: Path) -> Path:
    return d / "nope.nwb"


def empty(d: Path) -> Path:
    (d / "empty.nwb").write_bytes(b"")
    return d / "empty.nwb"


def text_named_nwb(d: Path) -> Path:
    (d / "notes.nwb").write_text("this is not an NWB file\n")
    return d / "notes.nwb"


def hdf5_not_nwb(d: Path) -> Path:
    with h5py.File(d / "plain.nwb", "w") as f:
        f["x"] = np.arange(3)
    return d / "plain.nwb"


def truncated(d: Path) -> Path:
    full, _ = standard_nwb(d / "full.nwb")
    data = full.read_bytes()
    (d / "cut.nwb").write_bytes(data[: len(data) // 2])
    return d / "cut.nwb"


def no_units_with_behaviour(d: Path) -> Path:
    return write_nwb(d / "beh.nwb", behavior={"x": {"timestamps": T, "data": T, "container": "Position"}})


def no_units_nothing(d: Path) -> Path:
    return write_nwb(d / "bare.nwb")


def nan_spikes(d: Path) -> Path:
    return write_nwb(d / "nan.nwb", spikes=[SPIKES[0], np.array([0.2, np.nan, 4.0])])


def mat_file(d: Path) -> Path:
    import scipy.io

    scipy.io.savemat(d / "a.mat", {"Y": np.ones((40, 3)), "Z": np.ones((40, 40))})
    return d / "a.mat"


def npz_objects(d: Path) -> Path:
    np.savez(d / "obj.npz", counts=np.array([{"a": 1}, None], dtype=object))
    return d / "obj.npz"


def suite2p_folder(d: Path) -> Path:
    folder = d / "plane0"
    folder.mkdir()
    for name in ("F", "Fneu", "spks"):
        np.save(folder / f"{name}.npy", np.ones((3, 50), dtype=np.float32))
    np.save(folder / "iscell.npy", np.array([[1.0, 0.9], [0.0, 0.1], [1.0, 0.8]]))
    return folder


def plain_folder(d: Path) -> Path:
    (d / "somewhere").mkdir()
    return d / "somewhere"


CASES = [
    # (id, builder, extra args, exit code, words in the message)
    ("missing", missing, [], 1, "input not found"),
    ("empty", empty, [], 1, "input file is empty"),
    ("text", text_named_nwb, [], 1, "not an NWB file: not an HDF5 file"),
    ("hdf5", hdf5_not_nwb, [], 1, "not an NWB file: HDF5 file has no 'nwb_version' attribute"),
    ("truncated", truncated, [], 1, "cannot read NWB file"),
    ("no-units", no_units_with_behaviour, [], 1, "no units table"),
    ("no-units-nothing", no_units_nothing, ["--allow-no-units"], 1, "nothing to convert"),
    ("nan-spikes", nan_spikes, [], 1, "unit 1 has 1 NaN or infinite spike times"),
    ("mat-no-counts", mat_file, [], 2, "array files need --counts"),
    ("mat-unknown-var", mat_file, ["--counts", "Q", "--bin-size", "0.1"], 2, "no variable 'Q' in a.mat"),
    ("mat-ambiguous", mat_file, ["--counts", "Z", "--bin-size", "0.1"], 1, "cannot tell which axis of 'Z'"),
    ("mat-bad-behavior", mat_file, ["--counts", "Y", "--behavior", "oops"], 2, "invalid --behavior 'oops'"),
    ("npz-pickle", npz_objects, ["--counts", "counts", "--bin-size", "0.1"], 1, "never unpickles"),
    ("suite2p-no-rate", suite2p_folder, [], 2, "suite2p folders need --frame-rate"),
    ("not-suite2p", plain_folder, [], 1, "not a suite2p plane folder"),
    ("nwb-with-counts", nan_spikes, ["--counts", "Y"], 2, "--counts apply to .mat/.npz inputs only"),
]


@pytest.mark.parametrize("builder, extra, code, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, builder, extra, code, words):
    src = tmp_path / "in"
    src.mkdir()
    path = builder(src)
    before = digest(path)
    out = tmp_path / "out"
    out.mkdir()
    res = runner.invoke(app, ["convert", str(path), *extra, "-o", str(out / "x.zarr")])
    assert res.exit_code == code, res.stderr
    assert words in one_error_line(res.stderr)
    assert res.stdout == ""
    assert list(out.iterdir()) == []  # no store, no hidden .partial- directory
    assert digest(path) == before


def test_no_units_allowed_converts_behaviour_only(tmp_path):
    path = no_units_with_behaviour(tmp_path)
    res = runner.invoke(app, ["convert", str(path), "--allow-no-units", "-o", str(tmp_path / "b.zarr")])
    assert res.exit_code == 0, res.stderr
    st = Store.open(res.stdout.strip())
    assert st.exists("sessions/beh/binned/behavior/x") and not st.exists("sessions/beh/binned/counts")


def test_existing_output_needs_overwrite(tmp_path):
    path = write_nwb(tmp_path / "ok.nwb", spikes=SPIKES)
    target = tmp_path / "x.zarr"
    assert runner.invoke(app, ["convert", str(path), "-o", str(target)]).exit_code == 0
    stamp = digest(target)
    res = runner.invoke(app, ["convert", str(path), "-o", str(target)])
    assert res.exit_code == 2
    assert "output already exists" in one_error_line(res.stderr)
    assert digest(target) == stamp
    res = runner.invoke(app, ["convert", str(path), "-o", str(target), "--overwrite", "--bin-size", "0.5"])
    assert res.exit_code == 0, res.stderr
    assert Store.open(target).attrs("sessions/ok/binned")["bin_size_s"] == 0.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.nwb", "x.zarr"]


def test_debug_shows_the_traceback(tmp_path):
    res = runner.invoke(app, ["convert", str(hdf5_not_nwb(tmp_path)), "--debug", "-o", str(tmp_path / "o.zarr")])
    assert res.exit_code == 1 and "Traceback" in res.stderr


# ----------------------------------------------------------------------------- interrupted writes


@pytest.fixture(scope="module")
def slow_nwb(tmp_path_factory) -> Path:
    """An NWB whose conversion at 0.5 ms bins takes several seconds (4M bins x 60 units)."""
    rng = np.random.default_rng(0)
    spikes = [np.sort(rng.uniform(0.0, 2000.0, 2000)) for _ in range(120)]
    return write_nwb(tmp_path_factory.mktemp("slow") / "slow.nwb", spikes=spikes)


def _default_sigint() -> None:
    """In the child: SIGINT back to its default, so Python installs its KeyboardInterrupt handler even when
    the test runner was started with SIGINT ignored (a background job without job control, nohup)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_interrupt_leaves_no_output(slow_nwb, tmp_path, sig, code):
    before = digest(slow_nwb)
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, NCLI_CACHE=str(tmp_path / "cache"))
    proc = subprocess.Popen([sys.executable, "-m", "ncli.cli", "convert", str(slow_nwb), "--bin-size", "0.0001",
                             "-o", str(out / "x.zarr")], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".x.zarr.partial-") for p in out.iterdir()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.1)  # well inside the write (20 M bins x 120 units: many seconds)
    assert proc.poll() is None, "conversion finished before it could be interrupted"
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert stdout == ""
    line = one_error_line(stderr)
    assert "no output was written" in line
    assert list(out.iterdir()) == []
    assert digest(slow_nwb) == before
