"""``ncli chunk`` (DSC, PA, UCD) on planted ground truth, the CLI's errors, and the real recordings."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from typer.testing import CliRunner

from ncli.cli import app
from ncli.formats.store import Store
from ncli.models.base import Estimator
from ncli.models.chunking import (DiscreteSequenceChunking, PopulationAveraging, UnsupervisedChunkDiscovery,
                                  _merge, detection_metrics, occurrences)
from ncli.simulators import ConceptChunkSimulator, SequenceChunkSimulator

runner = CliRunner()


def run(args, **kw):
    return runner.invoke(app, [str(a) for a in args], **kw)


def ok(args) -> str:
    res = run(args)
    assert res.exit_code == 0, res.stderr
    return res.stdout.strip()


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


# ----------------------------------------------------------------------------- small pieces


@pytest.mark.parametrize("labels, expected", [
    ([-1, 0, 0, -1, 1, 1, 1, 0], [(1, 3, 0), (4, 7, 1), (7, 8, 0)]),
    ([2, 2, 2], [(0, 3, 2)]),
    ([-1, -1], []),
    ([], []),
])
def test_occurrences_are_the_runs_of_one_label(labels, expected):
    assert occurrences(np.array(labels, dtype=int)) == expected


@pytest.mark.parametrize("tokens, pair, expected", [
    ([0, 1, 0, 1, 2], (0, 1), [9, 9, 2]),
    ([0, 0, 0, 1], (0, 0), [9, 0, 1]),  # non-overlapping, left to right
    ([0, 0, 0, 0], (0, 0), [9, 9]),
    ([1, 2, 3], (0, 1), [1, 2, 3]),
])
def test_merge_replaces_non_overlapping_pairs(tokens, pair, expected):
    assert _merge(np.array(tokens), *pair, 9).tolist() == expected


def test_detection_metrics_on_a_hand_made_case():
    scores = np.array([[0.5], [0.9], [1.5], [3.0], [0.8]])
    labels = np.array([0, 0, -1, -1, -1])
    m = detection_metrics(scores, labels, tolerance=1.0)
    assert m["tpr"] == [1.0] and m["fpr"] == pytest.approx([1 / 3])
    # ranks: positives 0.5, 0.9 vs negatives 0.8, 1.5, 3.0 -> 5 of 6 pairs ordered
    assert m["auc"] == pytest.approx([5 / 6])


def test_pa_model_round_trips_through_a_store_group(tmp_path):
    import zarr

    sim = ConceptChunkSimulator(n_units=60, subset_size=10, n_bins=2000, seed=3).init_params()
    d = sim.sample()
    X = np.sqrt(d["counts"].astype(float))
    pa = PopulationAveraging().fit(X[:1000], d["labels"][:1000], n_labels=5)
    g = zarr.open_group(str(tmp_path / "m.zarr"), mode="w")
    pa.to_group(g)
    back = Estimator.from_group(g)
    assert isinstance(back, PopulationAveraging)
    np.testing.assert_array_equal(back.predict(X[1000:]), pa.predict(X[1000:]))


def test_models_refuse_bad_input():
    from ncli.core.errors import DataError, NotFittedError, UsageError

    with pytest.raises(NotFittedError):
        UnsupervisedChunkDiscovery().predict(np.zeros((5, 3)))
    with pytest.raises(DataError, match="contains NaN"):
        UnsupervisedChunkDiscovery(n_chunks=2).fit(np.full((20, 3), np.nan))
    with pytest.raises(DataError, match="labels have shape"):
        PopulationAveraging().fit(np.zeros((10, 3)), np.zeros(9, int))
    with pytest.raises(UsageError, match="n_levels must be at least 2"):
        DiscreteSequenceChunking(n_levels=1).fit(np.zeros((10, 3)))
    with pytest.raises(DataError, match="no population state recurs"):
        DiscreteSequenceChunking().fit(np.random.default_rng(0).normal(size=(30, 40)))


# ----------------------------------------------------------------------------- acceptance on the generator


@pytest.fixture(scope="module")
def concepts(tmp_path_factory):
    """Simulated concept store (5 concepts on random 30-neuron subsets of 200) and its ground truth."""
    d = tmp_path_factory.mktemp("concepts")
    loc = d / "sim.zarr"
    ok(["simulate", "chunks", "-o", loc])
    return loc


def test_simulated_concepts_store_its_ground_truth(concepts):
    s = Store.open(concepts)
    lab = s.read("sessions/sim0/chunks/truth/labels")
    members = s.read("models/truth/members_")
    assert members.shape == (5, 200) and (members.sum(1) == 30).all()
    assert set(np.unique(lab)) == {-1, 0, 1, 2, 3, 4}
    assert 0.2 < np.mean(lab >= 0) < 0.4
    # the interval table marks exactly the labelled bins
    start = s.read("sessions/sim0/intervals/concepts/start_time")
    concept = s.read("sessions/sim0/intervals/concepts/concept")
    k = int(round(start[3] / 0.05))
    assert lab[k] == int(str(concept[3])[1:])


@pytest.mark.parametrize("labels, extra", [
    ("intervals/concepts/concept", []),
    ("chunks/truth", []),
    ("intervals/concepts/concept", ["--max-occurrences", 10]),  # templates from a few occurrences
])
def test_pa_detects_held_out_concepts_and_finds_their_sub_populations(concepts, tmp_path, labels, extra):
    out = ok(["chunk", concepts, "--method", "pa", "--labels", labels, *extra, "--control",
              "-o", tmp_path / "pa.zarr"])
    s = Store.open(out)
    m = s.attrs("models/chunk_pa/sim0")["metrics"]
    names = s.attrs("sessions/sim0/chunks/pa")["names"]
    assert names == ["c0", "c1", "c2", "c3", "c4"]
    assert m["tpr_mean"] >= 0.95 and min(m["tpr"]) >= 0.9, m["tpr"]
    assert m["fpr_mean"] <= 0.05 and max(m["fpr"]) <= 0.05, m["fpr"]
    assert min(m["auc"]) >= 0.98
    assert m["control_auc_mean"] < 0.6  # labels shifted in time carry no template
    found = s.read("models/chunk_pa/sim0/members_").astype(bool)
    truth = s.read("models/truth/members_").astype(bool)
    assert min(jaccard(found[k], truth[k]) for k in range(5)) >= 0.8
    # per-bin output: detected chunk labels agree with the truth on held-out concept bins
    lab = s.read("sessions/sim0/chunks/pa/labels")
    true = s.read("sessions/sim0/chunks/truth/labels")
    test = np.arange(len(lab)) >= s.attrs("sessions/sim0/chunks/pa")["test_start_bin"]
    on = test & (true >= 0)
    assert np.mean(lab[on] == true[on]) >= 0.9
    assert s.read("sessions/sim0/chunks/pa/score").shape == (len(lab), 5)
    assert s.read("models/chunk_pa/sim0/sweep_tpr").shape == (5, s.read("models/chunk_pa/sim0/sweep_tolerance").size)


def test_ucd_recovers_the_concepts_without_labels(concepts, tmp_path):
    out = ok(["chunk", concepts, "--method", "ucd", "--n-chunks", 5, "-o", tmp_path / "ucd.zarr"])
    s = Store.open(out)
    lab = s.read("sessions/sim0/chunks/ucd/labels")
    true = s.read("sessions/sim0/chunks/truth/labels")
    on = true >= 0
    test = np.arange(len(lab)) >= s.attrs("sessions/sim0/chunks/ucd")["test_start_bin"]
    assert adjusted_rand_score(true[on], lab[on]) >= 0.9
    assert adjusted_rand_score(true[on & test], lab[on & test]) >= 0.9
    assert np.mean(lab[~on] >= 0) < 0.05  # background bins belong to no chunk


def test_ucd_reseeds_dead_and_duplicate_prototypes():
    sim = ConceptChunkSimulator(n_units=100, subset_size=20, n_bins=3000, seed=5).init_params()
    d = sim.sample()
    X, y = np.sqrt(d["counts"].astype(float)), d["labels"]
    # more prototypes than concepts: the extra ones first split a concept, are re-seeded, and the
    # concepts stay whole
    u = UnsupervisedChunkDiscovery(n_chunks=7).fit(X)
    P = u.prototypes_
    assert u.n_reseeds_ >= 1
    assert (P @ P.T - np.eye(7)).max() <= 0.7
    lab = u.predict(X)
    assert adjusted_rand_score(y[y >= 0], lab[y >= 0]) >= 0.9


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    d = tmp_path_factory.mktemp("sequence")
    loc = d / "seq.zarr"
    ok(["simulate", "chunks", "--variant", "sequence", "-o", loc])
    return loc


def test_dsc_finds_the_planted_chunk_and_parses_to_the_true_length(sequence, tmp_path):
    out = ok(["chunk", sequence, "--method", "dsc", "--control", "-o", tmp_path / "dsc.zarr"])
    s = Store.open(out)
    truth = s.attrs("sessions/sim0/chunks/truth")
    model = s.attrs("models/chunk_dsc/sim0")
    m = model["metrics"]
    states = s.read("sessions/sim0/chunks/dsc/states")
    true_states = s.read("sessions/sim0/chunks/truth/states")
    # each found state is one true state
    to_true = {k: np.bincount(true_states[states == k]).argmax() for k in np.unique(states)}
    assert all(np.mean(true_states[states == k] == v) > 0.95 for k, v in to_true.items())
    chunks = s.read("models/chunk_dsc/sim0/chunk_states_")
    counts = s.read("models/chunk_dsc/sim0/counts_")
    expanded = [[int(to_true[x]) for x in row if x >= 0] for row in chunks]
    hits = [k for k, e in enumerate(expanded) if e == truth["chunk"]]
    assert hits, (expanded, truth["chunk"])
    assert counts[hits[0]] >= 0.9 * 0.7 * 300  # recurs in the training part
    assert abs(m["parse_length_all"] - truth["parse_length"]) <= 0.05 * truth["parse_length"]
    assert m["control_n_chunks"] == 0  # neurons shifted in time: no recurring state, no chunk


# ----------------------------------------------------------------------------- CLI errors


@pytest.mark.parametrize("args, code, message", [
    ([], 2, "missing --method"),
    (["--method", "kmeans"], 2, "invalid value 'kmeans' for --method"),
    (["--method", "pa"], 2, "--method pa needs --labels"),
    (["--method", "ucd", "--labels", "chunks/truth"], 2, "--labels applies to --method pa only"),
    (["--method", "pa", "--labels", "nowhere"], 2, "invalid --labels 'nowhere'"),
    (["--method", "pa", "--labels", "intervals/concepts/colour"], 2, "no column 'colour' in intervals/concepts"),
    (["--method", "pa", "--labels", "chunks/none"], 2, "no per-bin labels at"),
    # regression: a missing table read "no column 'start_time' in trials; hint: columns: (no such table)"
    (["--method", "pa", "--labels", "trials/x"], 2, "session sim0 has no table trials"),
    (["--method", "ucd", "--latents", "pca"], 2, "unknown latents 'pca'"),
    (["--method", "ucd", "--min-similarity", "nan"], 2, "--min-similarity must be a finite number"),
    (["--method", "pa", "--labels", "chunks/truth", "--tolerance", "-1"], 2, "--tolerance must be >= 0"),
    (["--method", "ucd", "--test-fraction", "0.95"], 2, "--test-fraction must be <= 0.9"),
    (["--method", "ucd", "--n-chunks", "0"], 2, "--n-chunks must be at least 1"),
    (["--method", "dsc", "--state-radius", "1.5"], 2, "--state-radius must be in [0, 1)"),
    (["--method", "ucd", "--name", "a/b"], 2, "invalid --name 'a/b'"),
    # regressions: a name zarr refuses was a ValueError with exit 1; an empty name silently meant the method
    (["--method", "ucd", "--name", ".."], 2, "invalid --name '..'"),
    (["--method", "ucd", "--name", ""], 2, "invalid --name ''"),
    # regression: more than 127 levels overflowed the int8 level tuples (negative levels in states_)
    (["--method", "dsc", "--n-levels", "200"], 2, "--n-levels must be at most 127"),
    # regression: a name already in the input mixed the new layer with the old result (e.g. the ground truth)
    (["--method", "ucd", "--name", "truth"], 2, "the input already holds chunks named 'truth'"),
])
def test_chunk_usage_errors(tmp_path, args, code, message):
    sim = tmp_path / "sim.zarr"
    ok(["simulate", "chunks", "--bins", 300, "--units", 40, "--subset-size", 8, "-o", sim])
    before = sorted(p.name for p in sim.rglob("*"))
    res = run(["chunk", sim, *args, "-o", tmp_path / "o.zarr"])
    assert res.exit_code == code, res.stderr
    assert message in res.stderr and res.stderr.startswith("ncli chunk: error: "), res.stderr
    assert not (tmp_path / "o.zarr").exists()
    assert sorted(p.name for p in sim.rglob("*")) == before


def test_chunk_data_errors(tmp_path):
    from tests.builders import make_store

    loc = make_store(str(tmp_path / "s.zarr"), n_units=4, duration=2.0, bin_size=0.5)
    res = run(["chunk", loc, "--method", "ucd", "-o", tmp_path / "o.zarr"])
    assert res.exit_code == 1 and "usable bins; chunking needs at least 10" in res.stderr
    # a trial table whose rows cover no bin
    loc2 = make_store(str(tmp_path / "t.zarr"), n_units=4, duration=20.0, bin_size=0.5)
    res = run(["chunk", loc2, "--method", "pa", "--labels", "trials/start_time", "--test-fraction", "0.5",
               "-o", tmp_path / "o2.zarr"])
    # every trial is its own label; the held-out ones never occur in training. The error names the labels
    # (their values in the table), not internal label indices
    assert res.exit_code == 1 and "label '10' of trials/start_time never occurs in the training bins" in res.stderr, \
        res.stderr
    assert not (tmp_path / "o2.zarr").exists()


def test_a_rerun_under_an_existing_name_is_refused_and_does_not_mix_models(tmp_path):
    """Regression: ``chunk pa.zarr --method ucd --name pa`` wrote a layer whose models/chunk_pa/<sid> merged
    the UCD arrays with the parent's PA arrays (thresholds_, sweep_*) under the UCD class."""
    sim = ok(["simulate", "chunks", "--bins", 600, "--units", 40, "--subset-size", 8, "-o", tmp_path / "s.zarr"])
    pa = ok(["chunk", sim, "--method", "pa", "--labels", "chunks/truth", "-o", tmp_path / "pa.zarr"])
    res = run(["chunk", pa, "--method", "ucd", "--name", "pa", "-o", tmp_path / "x.zarr"])
    assert res.exit_code == 2 and "the input already holds chunks named 'pa' (models/chunk_pa)" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.zarr").exists()
    ok(["chunk", pa, "--method", "ucd", "-o", tmp_path / "u.zarr"])  # another name is fine


def test_ucd_summary_says_what_it_was_evaluated_on_and_counts_empty_chunks(tmp_path):
    """Regressions: with --test-fraction 0 the summary said "held-out coverage" of training bins; with fewer
    distinct patterns than --n-chunks (1-d latents: two unit vectors) it reported 5 chunks, 3 of them empty."""
    sim = ok(["simulate", "chunks", "--bins", 600, "--units", 40, "--subset-size", 8, "-o", tmp_path / "s.zarr"])
    res = run(["chunk", sim, "--method", "ucd", "--test-fraction", 0, "-o", tmp_path / "a.zarr"])
    assert res.exit_code == 0 and "training (no held-out bins) coverage" in res.stderr and "held-out" not in \
        res.stderr.replace("no held-out", ""), res.stderr
    emb = ok(["embed", sim, "--method", "pca", "--dim", 1, "-o", tmp_path / "p.zarr"])
    res = run(["chunk", emb, "--latents", "pca", "--method", "ucd", "-o", tmp_path / "b.zarr"])
    assert res.exit_code == 0 and "(3 empty" in res.stderr, res.stderr
    m = Store.open(tmp_path / "b.zarr").attrs("models/chunk_ucd/sim0")["metrics"]
    assert m["n_chunks_used"] == 2


# ----------------------------------------------------------------------------- more seeds


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_acceptance_across_simulator_seeds(seed):
    sim = ConceptChunkSimulator(seed=seed).init_params()
    d = sim.sample()
    X, y = np.sqrt(d["counts"].astype(float)), d["labels"]
    n = int(0.7 * len(y))
    for few in (None, 10):
        pa = PopulationAveraging(max_occurrences=few).fit(X[:n], y[:n], n_labels=5)
        m = detection_metrics(pa.score(X[n:]), y[n:], 1.0)
        assert m["tpr_mean"] >= 0.95 and m["fpr_mean"] <= 0.05, (few, m["tpr"], m["fpr"])
        assert min(jaccard(pa.members_[k], sim.members_[k]) for k in range(5)) >= 0.8
    lab = UnsupervisedChunkDiscovery(n_chunks=5, seed=seed).fit(X[:n]).predict(X)
    assert adjusted_rand_score(y[y >= 0], lab[y >= 0]) >= 0.9
    seq = SequenceChunkSimulator(seed=seed).init_params()
    s = seq.sample()
    dsc = DiscreteSequenceChunking(seed=seed).fit(s["counts"].astype(float))
    p = dsc.parse(s["counts"].astype(float))
    assert abs(len(p["tokens"]) - s["parse_length"]) <= 0.05 * s["parse_length"]


# ----------------------------------------------------------------------------- real recordings


def test_ibl_population_chunks_recur_above_a_shuffle_control(shared_data, tmp_path):
    """IBL probe (289 clusters, 120 s, 50 ms bins): UCD chunks recur on held-out time far more than
    when each neuron is shifted in time on its own (which keeps every neuron's statistics)."""
    conv = ok(["convert", shared_data / "ibl" / "ephys_spikes.npz", "--spike-times", "spike_times",
               "--spike-clusters", "spike_clusters", "--bin-size", 0.05, "-o", tmp_path / "ibl.zarr"])
    for seed in (0, 1):
        out = ok(["chunk", conv, "--method", "ucd", "--control", "--seed", seed, "-o", tmp_path / f"u{seed}.zarr"])
        s = Store.open(out)
        sid = s.sessions()[0]
        m = s.attrs(f"models/chunk_ucd/{sid}")["metrics"]
        assert m["coverage"] >= 0.2 and m["coverage"] >= 1.5 * m["control_coverage"], m
        assert m["mean_similarity"] >= 1.5 * m["control_mean_similarity"], m


def test_human_mtl_clip_categories_are_not_detectable_from_single_bins(shared_data, tmp_path):
    """Human MTL (35 units), 0.5 s bins: PA templates of the three clip categories of the encoding
    task (no/soft/hard boundary) do not detect held-out clip bins better than chance, and neither
    does the time-shifted label control: a null result, which also guards against any train/test
    leakage (in-sample detection would score far above chance)."""
    conv = ok(["convert", shared_data / "human_mtl" / "sub-4_ses-4_ecephys+image.nwb", "--bin-size", 0.5,
               "-o", tmp_path / "mtl.zarr"])
    out = ok(["chunk", conv, "--method", "pa", "--labels", "intervals/encoding_table/stimCategory", "--control",
              "-o", tmp_path / "pa.zarr"])
    s = Store.open(out)
    sid = s.sessions()[0]
    m = s.attrs(f"models/chunk_pa/{sid}")["metrics"]
    assert s.attrs(f"sessions/{sid}/chunks/pa")["names"] == ["0", "1", "2"]
    assert abs(m["auc_mean"] - 0.5) < 0.15 and abs(m["control_auc_mean"] - 0.5) < 0.15, m


def test_latents_are_chunked_as_they_are(sequence, tmp_path):
    emb = ok(["embed", sequence, "--method", "pca", "--dim", 6, "-o", tmp_path / "pca.zarr"])
    out = ok(["chunk", emb, "--method", "dsc", "--latents", "pca", "-o", tmp_path / "dsc.zarr"])
    s = Store.open(out)
    g = s.attrs("sessions/sim0/chunks/dsc")
    assert g["source"] == "latents/pca"
    # 6 principal components of 8 well-separated patterns still carry the planted 4-state chunk
    lengths = s.read("models/chunk_dsc/sim0/lengths_")
    counts = s.read("models/chunk_dsc/sim0/counts_")
    assert (counts[lengths >= 4] >= 150).any(), (lengths, counts)


def test_calcium_dff_is_chunked_without_the_square_root(shared_data, tmp_path):
    conv = ok(["convert", shared_data / "suite2p" / "plane0", "--frame-rate", 30, "-o", tmp_path / "c.zarr"])
    out = ok(["chunk", conv, "--method", "ucd", "--n-chunks", 3, "-o", tmp_path / "u.zarr"])
    s = Store.open(out)
    sid = s.sessions()[0]
    assert s.attrs(f"sessions/{sid}/chunks/ucd")["source"] == "binned/counts (dF/F)"
    X = np.asarray(s.read(f"sessions/{sid}/binned/counts"), dtype=float)
    templates = s.read(f"models/chunk_ucd/{sid}/templates_")
    lab = s.read(f"sessions/{sid}/chunks/ucd/labels")[: s.attrs(f"sessions/{sid}/chunks/ucd")["test_start_bin"]]
    X = X[: len(lab)]  # templates are the means of the training bins of each chunk (raw dF/F)
    k = int(np.argmax(np.bincount(lab[lab >= 0])))
    np.testing.assert_allclose(templates[k], X[lab == k].mean(0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", ["concepts", "sequence"])
def test_simulate_chunks_is_deterministic_under_its_seed(tmp_path, variant):
    opts = ["--bins", 400] if variant == "concepts" else ["--repeats", 20]
    a, b, c = (ok(["simulate", "chunks", "--variant", variant, *opts, "--seed", seed, "-o", tmp_path / f"{i}.zarr"])
               for i, seed in enumerate((4, 4, 5)))
    read = lambda loc: Store.open(loc).read("sessions/sim0/binned/counts")  # noqa: E731
    np.testing.assert_array_equal(read(a), read(b))
    assert not np.array_equal(read(a), read(c))
