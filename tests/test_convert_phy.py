"""ncli convert on kilosort/phy output folders (spike_times.npy in samples + spike_clusters.npy)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ncli.cli import app
from ncli.formats.store import Store, validate

runner = CliRunner()
RATE = 30000.0
CLUSTERS = [0, 2, 5, 7]
GROUPS = {0: "good", 2: "mua", 5: "noise", 7: "good"}


def build_phy(folder: Path, *, params: str | None = None, seed: int = 0, group_tsv: bool = True,
              info_tsv: bool = True) -> tuple[Path, np.ndarray, np.ndarray]:
    """A small kilosort/phy folder; returns (folder, samples, clusters)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    samples = np.sort(rng.integers(1000, int(20 * RATE), size=3000)).astype(np.uint64)
    clusters = rng.choice(CLUSTERS, size=samples.size).astype(np.int32)
    np.save(folder / "spike_times.npy", samples[:, None])  # kilosort writes (S, 1)
    np.save(folder / "spike_clusters.npy", clusters)
    if params is None:
        params = ("dat_path = 'recording.bin'\nn_channels_dat = 385\ndtype = 'int16'\noffset = 0\n"
                  f"sample_rate = {RATE}\nhp_filtered = False\n")
    if params:
        (folder / "params.py").write_text(params)
    if group_tsv:
        rows = "".join(f"{c}\t{GROUPS[c]}\n" for c in CLUSTERS)
        (folder / "cluster_group.tsv").write_text("cluster_id\tgroup\n" + rows)
    if info_tsv:
        rows = "".join(f"{c}\t{'good' if c != 2 else 'mua'}\t{c * 3}\t{c * 20.0 + 0.5}\t{1.5 * c}\t\n"
                       for c in CLUSTERS)
        (folder / "cluster_info.tsv").write_text("cluster_id\tKSLabel\tch\tdepth\tfr\tgroup\n" + rows)
    return folder, samples, clusters


def run(*args):
    return runner.invoke(app, ["convert", *map(str, args)])


def convert(*args) -> Store:
    res = run(*args)
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1, res.stdout
    return Store.open(lines[0])


def digest(folder: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.iterdir())}


def expected_counts(times: np.ndarray, clusters: np.ndarray, ids: list[int], t0: float, bin_size: float,
                    n_bins: int) -> np.ndarray:
    edges = t0 + np.arange(n_bins + 1) * bin_size
    return np.stack([np.histogram(times[clusters == c], edges)[0] for c in ids], axis=1)


def test_phy_folder_counts_and_labels(tmp_path):
    folder, samples, clusters = build_phy(tmp_path / "ks_out")
    before = digest(folder)
    st = convert(folder, "-o", tmp_path / "s.zarr")
    assert digest(folder) == before
    assert validate(st) == []
    base = "sessions/ks_out"
    assert [str(c) for c in CLUSTERS] == list(st.read(f"{base}/units/id"))
    times = samples.astype(np.float64) / RATE
    a = st.attrs(f"{base}/binned")
    assert a["bin_size_s"] == pytest.approx(0.02)
    assert a["t_start_s"] == pytest.approx(times.min())
    counts = st.read(f"{base}/binned/counts")
    np.testing.assert_array_equal(
        counts, expected_counts(times, clusters, CLUSTERS, a["t_start_s"], a["bin_size_s"], counts.shape[0]))
    assert counts.sum() == samples.size == a["n_spikes_binned"]
    # samples -> seconds
    spk, idx = st.read(f"{base}/units/spike_times"), st.read(f"{base}/units/spike_index")
    for u, c in enumerate(CLUSTERS):
        np.testing.assert_allclose(spk[idx[u]:idx[u + 1]], np.sort(times[clusters == c]))
    # labels: cluster_group.tsv group wins over cluster_info.tsv's (empty) group
    assert list(st.read(f"{base}/units/group")) == [GROUPS[c] for c in CLUSTERS]
    assert list(st.read(f"{base}/units/KSLabel")) == ["good", "mua", "good", "good"]
    np.testing.assert_array_equal(st.read(f"{base}/units/ch"), [c * 3 for c in CLUSTERS])
    np.testing.assert_allclose(st.read(f"{base}/units/depth"), [c * 20.0 + 0.5 for c in CLUSTERS])
    np.testing.assert_allclose(st.read(f"{base}/units/fr"), [1.5 * c for c in CLUSTERS])
    sa = st.attrs(base)
    assert sa["format"] == "phy" and sa["sampling_rate_hz"] == RATE and sa["sampling_rate_source"] == "params.py"


def test_bin_size_option(tmp_path):
    folder, samples, clusters = build_phy(tmp_path / "ks")
    st = convert(folder, "--bin-size", "0.1", "-o", tmp_path / "s.zarr")
    a = st.attrs("sessions/ks/binned")
    assert a["bin_size_s"] == pytest.approx(0.1)
    counts = st.read("sessions/ks/binned/counts")
    times = samples.astype(np.float64) / RATE
    np.testing.assert_array_equal(
        counts, expected_counts(times, clusters, CLUSTERS, a["t_start_s"], 0.1, counts.shape[0]))


@pytest.mark.parametrize("where", ["group_tsv", "info_only", "kslabel_only"])
def test_phy_groups_selection(tmp_path, where):
    folder, samples, clusters = build_phy(tmp_path / "ks", group_tsv=where == "group_tsv")
    if where == "info_only":  # cluster_info.tsv's own group column
        rows = "".join(f"{c}\t{GROUPS[c]}\t{c}\n" for c in CLUSTERS)
        (folder / "cluster_info.tsv").write_text("cluster_id\tgroup\tch\n" + rows)
        want = [c for c in CLUSTERS if GROUPS[c] in ("good", "mua")]
    elif where == "kslabel_only":  # no group anywhere: KSLabel decides (cluster 2 is mua)
        want = CLUSTERS
    else:
        want = [0, 2, 7]
    st = convert(folder, "--phy-groups", "good,mua", "-o", tmp_path / "s.zarr")
    assert list(st.read("sessions/ks/units/id")) == [str(c) for c in want]
    a = st.attrs("sessions/ks/binned")
    counts = st.read("sessions/ks/binned/counts")
    times = samples.astype(np.float64) / RATE
    np.testing.assert_array_equal(
        counts, expected_counts(times, clusters, want, a["t_start_s"], a["bin_size_s"], counts.shape[0]))
    assert st.read("sessions/ks/units/ch").shape == (len(want),)
    good = convert(folder, "--phy-groups", "good", "-o", tmp_path / "g.zarr")
    assert list(good.read("sessions/ks/units/id")) == [str(c) for c in CLUSTERS
                                                       if (GROUPS[c] if where != "kslabel_only"
                                                           else ("mua" if c == 2 else "good")) == "good"]


def test_phy_groups_nothing_left_or_no_labels(tmp_path):
    folder, *_ = build_phy(tmp_path / "ks")
    res = run(folder, "--phy-groups", "unsorted", "-o", tmp_path / "s.zarr")
    assert res.exit_code == 1 and "no cluster has group unsorted" in res.stderr
    bare, *_ = build_phy(tmp_path / "bare", group_tsv=False, info_tsv=False)
    res = run(bare, "--phy-groups", "good", "-o", tmp_path / "b.zarr")
    assert res.exit_code == 2 and "no group labels" in res.stderr
    assert not (tmp_path / "s.zarr").exists() and not (tmp_path / "b.zarr").exists()


def test_sampling_rate_option_wins(tmp_path):
    folder, samples, clusters = build_phy(tmp_path / "ks")
    st = convert(folder, "--sampling-rate", "20000", "-o", tmp_path / "s.zarr")
    times = samples.astype(np.float64) / 20000.0
    spk, idx = st.read("sessions/ks/units/spike_times"), st.read("sessions/ks/units/spike_index")
    np.testing.assert_allclose(spk[idx[0]:idx[1]], np.sort(times[clusters == CLUSTERS[0]]))
    a = st.attrs("sessions/ks")
    assert a["sampling_rate_hz"] == 20000.0 and a["sampling_rate_source"] == "--sampling-rate"
    assert st.attrs("sessions/ks/binned")["t_start_s"] == pytest.approx(times.min())


@pytest.mark.parametrize("params", ["", "dtype = 'int16'\nn_channels_dat = 64\n"])
def test_missing_rate_is_a_usage_error(tmp_path, params):
    folder, *_ = build_phy(tmp_path / "ks", params=params)
    if not params:
        assert not (folder / "params.py").exists()
    out = tmp_path / "out"
    out.mkdir()
    res = run(folder, "-o", out / "s.zarr")
    assert res.exit_code == 2
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert "params.py" in lines[0] and "--sampling-rate" in lines[0]
    assert "suite2p" not in lines[0] and "Traceback" not in res.stderr
    assert res.stdout == "" and list(out.iterdir()) == []
    assert convert(folder, "--sampling-rate", "30000", "-o", out / "t.zarr")


def test_params_py_is_never_executed(tmp_path):
    marker = tmp_path / "executed"
    params = (f"open({str(marker)!r}, 'w').write('ran')\n"
              "raise RuntimeError('params.py was executed')\n"
              "import os; os._exit(3)\n"
              "sample_rate = 30000.0  # Hz\n")
    folder, samples, _ = build_phy(tmp_path / "ks", params=params)
    st = convert(folder, "-o", tmp_path / "s.zarr")
    assert not marker.exists()
    assert st.attrs("sessions/ks")["sampling_rate_hz"] == RATE
    assert st.read("sessions/ks/binned/counts").sum() == samples.size


def test_phy_folder_is_never_called_a_suite2p_folder(tmp_path):
    folder, *_ = build_phy(tmp_path / "ks", params="")
    res = run(folder, "-o", tmp_path / "s.zarr")
    assert "suite2p" not in res.stderr
    only_times = tmp_path / "half"
    only_times.mkdir()
    np.save(only_times / "spike_times.npy", np.arange(10, dtype=np.uint64))
    res = run(only_times, "-o", tmp_path / "h.zarr")
    assert res.exit_code == 1 and "lacks spike_clusters.npy" in res.stderr


def test_phy_options_refused_elsewhere(tmp_path):
    # --sampling-rate also applies to --spike-times of array files (sample indices), never to pre-binned counts
    np.savez(tmp_path / "a.npz", counts=np.ones((20, 3), dtype=int))
    res = run(tmp_path / "a.npz", "--counts", "counts", "--bin-size", "0.05", "--sampling-rate", "30000",
              "-o", tmp_path / "s.zarr")
    assert res.exit_code == 2 and "kilosort/phy folders and to --spike-times" in res.stderr
    res = run(tmp_path / "a.npz", "--counts", "counts", "--bin-size", "0.05", "--phy-groups", "good",
              "-o", tmp_path / "s.zarr")
    assert res.exit_code == 2 and "kilosort/phy folders only" in res.stderr


def test_mismatched_lengths_and_float_seconds_refused(tmp_path):
    folder, *_ = build_phy(tmp_path / "ks")
    np.save(folder / "spike_clusters.npy", np.zeros(5, dtype=np.int32))
    res = run(folder, "-o", tmp_path / "s.zarr")
    assert res.exit_code == 1 and "spike_clusters.npy has 5 cluster ids" in res.stderr
    other, *_ = build_phy(tmp_path / "secs")
    np.save(other / "spike_times.npy", np.linspace(0.1, 5.0, 3000))
    res = run(other, "-o", tmp_path / "t.zarr")
    assert res.exit_code == 1 and "sample indices" in res.stderr
