"""``ncli decode --method possm|poyo|gru`` and ``ncli simulate reach``.

Ground truth from the reach simulator (cosine-tuned Poisson units leading an OU
velocity by 80 ms); exactness properties of POSSM (causality, spike order,
streaming == batch, empty chunks); fine-tuning on a second session; the
streaming CLI; errors; and (slow) the real M1 recording.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ncli.cli import app
from ncli.core.metrics import decoding_metrics
from ncli.formats.store import Store
from ncli.models.neural_decoders import GRUDecoder, POYODecoder
from ncli.models.possm import POSSMDecoder, SpikeSession, chunk_spikes, gather_chunks
from ncli.simulators import ReachSimulator

torch = pytest.importorskip("torch")
runner = CliRunner()
NCLI = str(Path(sys.executable).with_name("ncli"))
# tiny configurations that still reach the thresholds on the small simulations below
TINY = ["--hidden", "32", "--window", "24", "--steps", "150"]  # about 3 s per fold


def run(args, **kw):
    return runner.invoke(app, [str(a) for a in args], **kw)


def sim_session(n_units=20, duration=30.0, bin_size=0.05, seed=1, sid="s", gap=None) -> SpikeSession:
    """A SpikeSession straight from the simulator (no store); ``gap=(a, b)`` removes every spike in [a, b)."""
    sim = ReachSimulator(n_units=n_units, n_sessions=1, seed=seed).init_params()
    ss = sim.sample(duration)[0]
    spikes = [s if gap is None else s[(s < gap[0]) | (s >= gap[1])] for s in ss.spike_times]
    st = np.concatenate(spikes)
    si = np.concatenate([[0], np.cumsum([len(s) for s in spikes])]).astype(np.int64)
    T = int(round(duration / bin_size))
    tb, v = ss.behavior["velocity"]["timestamps"], ss.behavior["velocity"]["data"]
    Y = np.column_stack([np.interp((np.arange(T) + 0.5) * bin_size, tb, v[:, j]) for j in range(2)])
    return SpikeSession(sid, np.array([f"{sid}/{u}" for u in ss.ids], dtype=object), st, si, 0.0, bin_size, T, Y)


def with_spikes(sess: SpikeSession, spikes: list) -> SpikeSession:
    st = np.concatenate(spikes)
    si = np.concatenate([[0], np.cumsum([len(s) for s in spikes])]).astype(np.int64)
    return SpikeSession(sess.session_id, sess.unit_keys, st, si, sess.t_start, sess.bin_size, sess.n_bins, sess.Y)


def unit_spikes(sess: SpikeSession) -> list:
    return [sess.spike_times[sess.spike_index[u]:sess.spike_index[u + 1]] for u in range(len(sess.unit_keys))]


def quick_possm(sess, **kw) -> POSSMDecoder:
    cfg = dict(steps=3, hidden=16, dim=16, window=16, warmup=2)
    cfg.update(kw)
    return POSSMDecoder(**cfg).fit([sess], {sess.session_id: np.arange(sess.n_bins)})


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Small models on a shared 2-core machine: one intra-op thread avoids synchronisation stalls."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def reach1(tmp_path_factory) -> str:
    """One simulated session, 40 units, 150 s, 50 ms bins."""
    out = tmp_path_factory.mktemp("reach") / "reach1.zarr"
    res = run(["simulate", "reach", "--units", 40, "--sessions", 1, "--duration", 150, "--seed", 3, "-o", out])
    assert res.exit_code == 0, res.stderr
    return str(out)


@pytest.fixture(scope="module")
def decoded(reach1, tmp_path_factory) -> dict:
    """possm, gru and ridge on reach1 with the same 3 contiguous folds."""
    d = tmp_path_factory.mktemp("dec")
    out = {}
    for method, extra in [("ridge", ["--lags", 6]), ("possm", [*TINY, "--no-refit"]), ("gru", [*TINY, "--no-refit"])]:
        res = run(["decode", reach1, "--method", method, "--target", "velocity", "--folds", 3, *extra,
                   "-o", d / f"{method}.zarr"])
        assert res.exit_code == 0, res.stderr
        st = Store.open(d / f"{method}.zarr")
        out[method] = (str(d / f"{method}.zarr"), st.attrs(f"sessions/reach0/predictions/{method}_velocity"))
    return out


# ----------------------------------------------------------------------------- simulator


def test_simulate_reach_writes_two_sessions_with_shared_and_new_units(tmp_path):
    res = run(["simulate", "reach", "--units", 30, "--duration", 20, "-o", tmp_path / "r.zarr"])
    assert res.exit_code == 0, res.stderr
    st = Store.open(tmp_path / "r.zarr")
    assert st.sessions() == ["reach0", "reach1"]
    ids0 = set(st.read("sessions/reach0/units/id").tolist())
    ids1 = set(st.read("sessions/reach1/units/id").tolist())
    assert len(ids0) == 30 and len(ids1) == 21 + 20
    assert len(ids0 & ids1) == 21 and len(ids1 - ids0) == 20  # 30 % dropped, 20 new
    v = st.read("sessions/reach0/binned/behavior/velocity")
    assert v.shape == (400, 2) and 5 < np.std(v) < 15  # OU stationary SD 10 cm/s
    counts = st.read("sessions/reach0/binned/counts")
    assert 2 < counts.sum() / 20 / 30 < 20  # mean rate per unit (Hz) inside the drawn range


def test_simulated_units_lead_the_velocity_by_the_lag():
    """Cross-correlation of a unit's rate with its preferred-direction velocity peaks at +80 ms."""
    sim = ReachSimulator(n_units=30, n_sessions=1, seed=0, depth_range=(1.0, 1.0)).init_params()
    ss = sim.sample(200.0)[0]
    dt = 0.01
    tb, v = ss.behavior["velocity"]["timestamps"], ss.behavior["velocity"]["data"]
    grid = np.arange(0, 199.0, dt)
    proj_total = np.zeros(41)
    for u in range(30):
        counts = np.histogram(ss.spike_times[u], bins=np.append(grid, grid[-1] + dt))[0].astype(float)
        drive = np.interp(grid, tb, v @ sim.preferred_[u])
        counts -= counts.mean()
        drive -= drive.mean()
        for i, lag in enumerate(range(-20, 21)):  # drive shifted by lag*10 ms
            proj_total[i] += np.dot(counts[max(0, -lag):len(grid) - max(0, lag)],
                                    drive[max(0, lag):len(grid) - max(0, -lag)])
    assert (np.argmax(proj_total) - 20) * dt == pytest.approx(0.08, abs=0.015)


# ----------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("backbone", ["gru", "s4d"])
def test_possm_is_exactly_causal(backbone):
    sess = sim_session()
    m = quick_possm(sess, backbone=backbone, chunk=0.025)
    before = m.predict(sess)
    t = 12.0
    rng = np.random.default_rng(0)
    changed = [np.sort(np.concatenate([s[s < t], rng.uniform(t, 30.0, rng.integers(0, 40))]))
               for s in unit_spikes(sess)]
    after = m.predict(with_spikes(sess, changed))
    k = int(round(t / sess.bin_size))  # bins 0..k-1 end at or before t
    assert np.array_equal(before[:k], after[:k])
    assert np.abs(before[k + 1:] - after[k + 1:]).max() > 1e-3  # the change is seen after t


def test_poyo_and_gru_baselines_are_causal():
    sess = sim_session()
    sess.counts = np.stack([np.histogram(s, bins=np.arange(601) * 0.05)[0] for s in unit_spikes(sess)], 1)
    t, k = 12.0, 240
    rng = np.random.default_rng(1)
    changed = [np.sort(np.concatenate([s[s < t], rng.uniform(t, 30.0, 30)])) for s in unit_spikes(sess)]
    other = with_spikes(sess, changed)
    other.counts = np.stack([np.histogram(s, bins=np.arange(601) * 0.05)[0] for s in changed], 1)
    for model in (POYODecoder(steps=3, dim=16, context=0.5), GRUDecoder(steps=3, hidden=16, window=16)):
        model.fit([sess], {"s": np.arange(600)})
        a, b = model.predict(sess), model.predict(other)
        assert np.array_equal(a[:k], b[:k]), type(model).__name__
        assert not np.allclose(a[k:], b[k:])


@pytest.mark.parametrize("backbone", ["gru", "s4d"])
def test_streaming_equals_batch_and_spike_order_inside_a_chunk_does_not_matter(backbone):
    sess = sim_session()
    m = quick_possm(sess, backbone=backbone, chunk=0.025)
    batch = m.predict(sess)
    cs = chunk_spikes(sess.spike_times, sess.unit_of_spike(), 0.0, 0.025, 2 * sess.n_bins)
    rng = np.random.default_rng(0)
    outs = {"sorted": [], "shuffled": []}
    streams = {k: m.stream("s", sess.unit_keys) for k in outs}
    for j in range(cs.n_chunks):
        u, off = cs.token[cs.ptr[j]:cs.ptr[j + 1]], cs.offset[cs.ptr[j]:cs.ptr[j + 1]]
        perm = rng.permutation(u.size)
        for key, (uu, oo) in {"sorted": (u, off), "shuffled": (u[perm], off[perm])}.items():
            y = streams[key].push(uu, oo)
            assert (y is None) == (j % 2 == 0)  # two 25 ms chunks per 50 ms bin
            if y is not None:
                outs[key].append(y)
    for key in outs:
        assert np.abs(np.array(outs[key]) - batch).max() < 1e-5, key


def test_encoder_is_invariant_to_token_order_within_a_chunk():
    sess = sim_session()
    m = quick_possm(sess)
    cs = chunk_spikes(sess.spike_times, sess.unit_of_spike(), 0.0, 0.05, sess.n_bins)
    tok, off, seg = gather_chunks(cs, np.arange(200))
    rng = np.random.default_rng(2)
    perm = np.lexsort((rng.random(seg.size), seg))  # shuffle inside each chunk
    perm_all = rng.permutation(seg.size)  # and across the whole token list
    net = m.net()
    s = torch.zeros(200, dtype=torch.long)
    with torch.no_grad():
        ref = net.encode(torch.as_tensor(tok), torch.as_tensor(off, dtype=torch.float64), torch.as_tensor(seg), 200, s)
        for p in (perm, perm_all):
            other = net.encode(torch.as_tensor(tok[p]), torch.as_tensor(off[p], dtype=torch.float64),
                               torch.as_tensor(seg[p]), 200, s)
            assert (ref - other).abs().max().item() < 1e-5


@pytest.mark.parametrize("backbone", ["gru", "s4d"])
def test_empty_chunks_give_finite_predictions(backbone):
    sess = sim_session(gap=(10.0, 14.0))
    m = quick_possm(sess, backbone=backbone)
    pred = m.predict(sess)
    assert np.isfinite(pred).all()
    empty = with_spikes(sess, [np.zeros(0)] * len(sess.unit_keys))
    silent = m.predict(empty)
    assert np.isfinite(silent).all()
    y = m.stream("s", sess.unit_keys).push(np.zeros(0, dtype=np.int64), np.zeros(0))
    assert np.isfinite(y).all() and np.abs(y - silent[0]).max() < 1e-9


def test_s4d_convolution_mode_equals_its_recurrence():
    from ncli.models.possm import modules

    layer = modules()["S4DLayer"](8, state=8)
    u = torch.randn(3, 50, 8)
    with torch.no_grad():
        assert (layer(u, conv=True) - layer(u, conv=False)).abs().max().item() < 1e-4


# ----------------------------------------------------------------------------- accuracy


def test_possm_decodes_simulated_velocity_as_well_as_ridge(decoded):
    ridge = decoded["ridge"][1]["metrics"]["r2_mean"]
    possm = decoded["possm"][1]["metrics"]
    print("reach1 R² (3 folds):", {m: round(decoded[m][1]["metrics"]["r2_mean"], 4) for m in decoded})
    assert possm["r2_mean"] >= 0.6 and possm["r2_mean"] >= ridge - 0.05, (possm["r2_mean"], ridge)
    assert possm["n_folds"] == 3 and len(possm["fold_r2_mean"]) == 3
    assert decoded["gru"][1]["metrics"]["r2_mean"] >= 0.6


def test_poyo_baseline_decodes_held_out_velocity(reach1):
    from ncli.methods.decode._neural import spike_session

    st = Store.open(reach1)
    Y = st.read("sessions/reach0/binned/behavior/velocity")
    sess = spike_session(st, "reach0", Y, shared_units=False, counts=False)
    model = POYODecoder(context=0.5, dim=32, steps=150, batch_size=32).fit([sess], {"reach0": np.arange(2000)})
    assert model.context_bins_ == 10
    r2 = decoding_metrics(Y[2000:], model.predict(sess)[2000:])["r2_mean"]
    assert r2 >= 0.5, r2


def test_possm_model_is_saved_and_reloads_to_the_same_predictions(decoded, reach1):
    from ncli.methods.decode._neural import spike_session

    st = Store.open(decoded["possm"][0])
    model = POSSMDecoder.from_group(st.root["models/possm_velocity/reach0"])
    assert model.backbone == "gru" and model.hidden == 32 and model.bin_ratio_ == 1
    assert list(model.unit_vocab_[:2]) == ["reach0/u000", "reach0/u001"]
    sess = spike_session(Store.open(reach1), "reach0", None, shared_units=False, counts=False)
    p1, p2 = model.predict(sess), POSSMDecoder.from_group(st.root["models/possm_velocity/reach0"]).predict(sess)
    assert np.array_equal(p1, p2)
    truth = Store.open(reach1).read("sessions/reach0/binned/behavior/velocity")
    assert decoding_metrics(truth, p1)["r2_mean"] > 0.6  # refit on all bins: in-sample, but a sanity check


def test_classification_target_trains_with_cross_entropy():
    sess = sim_session(n_units=40, duration=60.0)
    quadrant = (sess.Y[:, :1] > 0).astype(float)  # is the x velocity positive?
    sess.Y = quadrant
    m = POSSMDecoder(task="classification", steps=120, hidden=16, dim=16, window=16, warmup=2)
    m.fit([sess], {"s": np.arange(800)})
    logits = m.predict(sess)
    assert logits.shape == (1200, 2)
    acc = np.mean(logits[800:].argmax(1) == quadrant[800:, 0])
    assert acc > 0.75, acc


def test_finetuning_unit_embeddings_on_the_second_session(tmp_path):
    src = tmp_path / "two.zarr"
    assert run(["simulate", "reach", "--units", 40, "--new-units", 20, "--duration", 80, "--seed", 5,
                "-o", src]).exit_code == 0
    res = run(["decode", src, "--method", "possm", "--target", "velocity", *TINY, "--train-sessions", "reach0",
               "--test-sessions", "reach1", "--finetune", "units", "--finetune-steps", 200, "--folds", 2,
               "--no-refit", "-o", tmp_path / "ft.zarr"])
    assert res.exit_code == 0, res.stderr
    st = Store.open(tmp_path / "ft.zarr")
    m = st.attrs("sessions/reach1/predictions/possm_velocity")["metrics"]
    assert m["evaluation"] == "finetune_blocked_kfold" and m["finetune_steps"] == 200
    print("fine-tuned (units, 200 steps) R² on reach1:", round(m["r2_mean"], 4), m["fold_r2_mean"])
    assert m["r2_mean"] >= 0.5, m["r2_mean"]
    # only embeddings moved: the backbone of the fine-tuned model equals the pretrained one
    pre = st.root["models/possm_velocity/cross_session/weights"]
    ft = st.root["models/possm_velocity/reach1/weights"]
    assert np.array_equal(pre["backbone__rnn__weight_hh_l0"][...], ft["backbone__rnn__weight_hh_l0"][...])
    old = pre["encoder__unit_emb__weight"][...]
    assert np.array_equal(ft["encoder__unit_emb__weight"][: old.shape[0]], old)  # reach0's units unchanged
    assert ft["encoder__unit_emb__weight"].shape[0] == 40 + 48  # reach0 + reach1 units (session keys)
    # without --finetune the new session has no embedding: a usage error before any training
    res = run(["decode", src, "--method", "possm", "--target", "velocity", "--steps", 2, "--train-sessions",
               "reach0", "--test-sessions", "reach1", "-o", tmp_path / "zs.zarr"])
    assert res.exit_code == 2 and "has no embedding for sessions it was not trained on" in res.stderr
    assert "--finetune units" in res.stderr and not (tmp_path / "zs.zarr").exists()


# ----------------------------------------------------------------------------- streaming CLI


def test_stream_replay_writes_ndjson_equal_to_the_batch_pass(decoded, reach1):
    from ncli.methods.decode._neural import spike_session

    store = decoded["possm"][0]
    res = run(["decode", store, "--method", "possm", "--target", "velocity", "--stream"])
    assert res.exit_code == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(rows) == 3000 and rows[0]["bin"] == 0 and rows[-1]["bin"] == 2999
    assert rows[0]["t"] == pytest.approx(0.05) and set(rows[0]) == {"session", "bin", "t", "x", "y"}
    model = POSSMDecoder.from_group(Store.open(store).root["models/possm_velocity/reach0"])
    batch = model.predict(spike_session(Store.open(reach1), "reach0", None, shared_units=False, counts=False))
    streamed = np.array([[r["x"], r["y"]] for r in rows])
    assert np.abs(streamed - batch).max() < 1e-5
    assert "latency per chunk p50" in res.stderr and "p99" in res.stderr

    # NDJSON spike events on stdin (first 5 s), with clock ticks: same predictions
    st = Store.open(reach1)
    ids = st.read("sessions/reach0/units/id")
    times = st.read("sessions/reach0/units/spike_times")
    unit = np.repeat(np.arange(len(ids)), np.diff(st.read("sessions/reach0/units/spike_index")))
    order = np.argsort(times, kind="stable")
    lines = [json.dumps({"t": float(times[i]), "unit": str(ids[unit[i]])}) for i in order if times[i] < 5.0]
    lines.append(json.dumps({"t": 5.0}))
    res = run(["decode", store, "--method", "possm", "--target", "velocity", "--stream", "--spikes", "-"],
              input="\n".join(lines) + "\n")
    assert res.exit_code == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(rows) == 100
    assert np.abs(np.array([[r["x"], r["y"]] for r in rows]) - batch[:100]).max() < 1e-5

    # a real process: the NDJSON stream on a pipe, errors are one line with exit 1
    proc = subprocess.run([NCLI, "decode", store, "--method", "possm", "--target", "velocity", "--stream",
                           "--spikes", "-"], input='{"t": 1.0, "unit": "u000"}\n{"t": 0.5, "unit": "nope"}\n',
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "spike events must come in time order (line 2" in proc.stderr
    # malformed or runaway events are refused with the line number, before anything floods stdout
    for bad, message in (('{"t": true, "unit": "u000"}', "'t' must be a finite number of seconds, got True"),
                         ('{"t": "0.1", "unit": "u000"}', "'t' must be a finite number of seconds, got '0.1'"),
                         ('{"t": NaN}', "'t' must be a finite number of seconds, got nan"),
                         ('{"t": 0.1, "unit": null}', "has a null unit"),
                         ('{"t": 1e300}', "line 1 of the spike events jumps")):
        res = run(["decode", store, "--method", "possm", "--target", "velocity", "--stream", "--spikes", "-"],
                  input=bad + "\n")
        assert res.exit_code == 1 and message in res.stderr, (bad, res.stderr)
        assert len(res.stdout.splitlines()) == 0


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("args, code, message", [
    (["--method", "possm", "--chunk", "nan"], 2, "--chunk must be a finite number"),
    (["--method", "possm", "--chunk", "0.03"], 2, "must be a whole multiple of --chunk"),
    (["--method", "possm", "--backbone", "lstm"], 2, "--backbone must be gru or s4d"),
    (["--method", "possm", "--finetune", "all"], 2, "invalid value 'all' for --finetune"),
    (["--method", "possm", "--finetune", "units"], 2, "--finetune needs --train-sessions and --test-sessions"),
    (["--method", "possm", "--steps", "0"], 2, "--steps must be > 0"),
    (["--method", "gru", "--latents", "truth"], 2, "--latents applies to --method ridge, kalman only"),
    (["--method", "ridge", "--stream"], 2, "--stream applies to --method possm only"),
    (["--method", "poyo", "--stream"], 2, "--stream applies to --method possm only"),
    (["--method", "possm", "--stream"], 2, "no fitted model models/possm_velocity/reach0"),
    (["--method", "possm", "--spikes", "-"], 2, "--spikes applies to --stream only"),
])
def test_bad_options_are_one_line_errors(reach1, tmp_path, args, code, message):
    res = run(["decode", reach1, "--target", "velocity", *args, "-o", tmp_path / "o.zarr"])
    assert res.exit_code == code, res.stderr
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert not (tmp_path / "o.zarr").exists()


def test_spike_decoders_refuse_a_store_without_spike_times(tmp_path):
    out = tmp_path / "candy.zarr"
    assert run(["simulate", "candy", "--sessions", 1, "--bins", 300, "-o", out]).exit_code == 0
    res = run(["decode", out, "--method", "possm", "--target", "velocity", "-o", tmp_path / "o.zarr"])
    assert res.exit_code == 1 and "has no spike times" in res.stderr and "--method gru" in res.stderr


# ----------------------------------------------------------------------------- real data (slow)


@pytest.mark.slow
def test_real_m1_possm_beats_ridge_and_reports_every_method(shared_data, tmp_path):
    nwb = shared_data / "monkey_reach" / "m1_stevenson_2011.nwb"
    if not nwb.exists():
        pytest.skip(f"real recording not found: {nwb}")
    res = run(["convert", nwb, "--bin-size", 0.05, "-o", tmp_path / "m1.zarr"])
    assert res.exit_code == 0, res.stderr
    r2 = {}
    runs = {"ridge": ["--lags", 6], "kalman": ["--lags", 6], **REAL_CONFIG}
    for method, extra in runs.items():
        res = run(["decode", tmp_path / "m1.zarr", "--method", method, "--target", "hand_velocity[0,1]", *extra,
                   "-o", tmp_path / f"{method}.zarr"])
        assert res.exit_code == 0, res.stderr
        st = Store.open(tmp_path / f"{method}.zarr")
        m = st.attrs(f"sessions/{st.sessions()[0]}/predictions/{method}_hand_velocity")["metrics"]
        assert m["n_folds"] == 5
        r2[method] = m["r2_mean"]
    print("real M1 hand velocity R² (5 contiguous folds):", json.dumps(r2))
    assert r2["ridge"] == pytest.approx(0.76, abs=0.02)
    assert r2["possm"] > r2["ridge"], r2


#: settings used for the real recording (2 shared CPU cores, one torch thread; measured 2026-11-29 on a shared
#: machine: ridge 0.763, kalman 0.730, gru 0.869 (1.6 min), possm 0.827 (14.6 min), poyo 0.395 (25 min))
REAL_CONFIG = {
    "gru": ["--hidden", "64", "--window", "32", "--steps", "400"],
    "possm": ["--hidden", "64", "--window", "32", "--steps", "400", "--n-latents", "2", "--no-refit"],
    "poyo": ["--hidden", "32", "--n-latents", "4", "--steps", "200", "--context", "0.5", "--no-refit"],
}


def test_session_split_without_finetune_and_stream_only_options_are_usage_errors(tmp_path):
    from typer.testing import CliRunner

    from ncli.cli import app

    runner = CliRunner()
    store = str(tmp_path / "r.zarr")
    res = runner.invoke(app, ["simulate", "reach", "--units", "10", "--duration", "30", "-o", store])
    assert res.exit_code == 0, res.stderr
    for args, message in (
        (["--method", "possm", "--train-sessions", "reach0", "--test-sessions", "reach1"],
         "has no embedding for sessions it was not trained on"),
        (["--method", "ridge", "--session", "reach0"], "--session applies to --method possm only"),
        (["--method", "ridge", "--realtime"], "--realtime applies to --method possm only"),
        (["--method", "possm", "--n-latents", "0"], "--n-latents must be"),
    ):
        res = runner.invoke(app, ["decode", store, "--target", "velocity", *args])
        assert res.exit_code == 2, res.stderr
        assert message in res.stderr
