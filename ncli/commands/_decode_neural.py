"""``ncli decode --method possm|poyo|gru``: the neural decoders, their evaluation and ``--stream``.

Called by :mod:`ncli.commands.decode` after its common checks, with the same
splits as ridge and Kalman: time-blocked K-fold per session (training windows
lie inside the training blocks, minus ``--lags`` bins on both sides of the test
block) or a split by sessions. Predictions come from one causal pass over the
whole session (inputs only: the model never sees a test bin's target), and
the test blocks' predictions are kept.

With ``--train-sessions/--test-sessions`` one model is trained on all usable
bins of the training sessions (multi-session, one unit vocabulary, one session
embedding each). Test sessions (which have no session embedding, and maybe unseen units) need
``--finetune units`` (only the new unit and session embeddings train, Azabou et
al. 2023 §3.4) or ``--finetune full``; fine-tuning is evaluated with blocked
K-fold inside each test session.

``--stream`` decodes online with a model a previous ``decode --method possm``
wrote into the store: spikes are fed chunk by chunk (the store's session
replayed, or NDJSON spike events on stdin) and predictions go to stdout as
NDJSON lines as they are made; latency p50/p99 goes to stderr.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

import numpy as np

from ncli import __version__
from ncli.commands._common import write_result
from ncli.core.errors import DataError, UsageError
from ncli.core.features import angles_to_xy, xy_to_angles
from ncli.core.metrics import decoding_metrics
from ncli.core.splits import blocked_folds
from ncli.formats.store import Store, StoreWriter

log = logging.getLogger("ncli")
NEURAL_METHODS = ["gru", "poyo", "possm"]


def spike_session(src: Store, sid: str, Y: np.ndarray | None, *, shared_units: bool, counts: bool):
    """Build a :class:`~ncli.models.possm.SpikeSession` from ``sessions/<sid>`` of a store.

    Parameters
    ----------
    src : Store
    sid : str
    Y : (T, D) or None
        Target at the bin centres.
    shared_units : bool
        Unit vocabulary keys are the unit ids (the same id in two sessions is
        the same neuron); otherwise ``"<session>/<unit id>"``.
    counts : bool
        Also read ``binned/counts`` (GRU baseline).

    Raises
    ------
    DataError
        No binned grid, or (for spike methods) no spike times.
    """
    from ncli.models.possm import SpikeSession

    base = f"sessions/{sid}"
    if not src.exists(f"{base}/binned"):
        raise DataError(f"session '{sid}' has no binned grid", src.location)
    at = src.attrs(f"{base}/binned")
    ids = [str(u) for u in src.read(f"{base}/units/id").tolist()]
    st = np.asarray(src.read(f"{base}/units/spike_times"), dtype=np.float64)
    si = np.asarray(src.read(f"{base}/units/spike_index"), dtype=np.int64)
    n_bins = int(src.array(f"{base}/binned/counts").shape[0]) if src.exists(f"{base}/binned/counts") \
        else int(at.get("n_bins", 0))
    keys = np.array(ids if shared_units else [f"{sid}/{u}" for u in ids], dtype=object)
    C = np.asarray(src.array(f"{base}/binned/counts")[...], dtype=np.float64) if counts else None
    return SpikeSession(sid, keys, st, si, float(at["t_start_s"]), float(at["bin_size_s"]), n_bins, Y, C)


def check_options(method: str, *, latents, finetune, stream: bool, spikes, store, values: dict) -> None:
    """Validate the neural decoders' options before any data is read.

    Raises
    ------
    UsageError
        ``--latents`` given, an unknown ``--finetune``, ``--spikes`` without
        ``--stream``, ``--spikes -`` without an explicit STORE, or a
        non-finite or non-positive numeric option.
    """
    from ncli.commands._common import finite

    if latents:
        raise UsageError(f"--latents applies to ridge and kalman; --method {method} reads spikes or counts",
                         "--latents")
    if finetune is not None and finetune not in ("units", "full"):
        raise UsageError(f"invalid value '{finetune}' for --finetune", "--finetune", hint="choose units or full")
    if spikes is not None and not stream:
        raise UsageError("--spikes applies to --stream only", "--spikes")
    if spikes == "-" and store in (None, "-"):
        raise UsageError("with --spikes - the store must be named as an argument (stdin carries the spikes)",
                         "STORE")
    for option, value in values.items():
        finite(float(value), option, positive=True)


def make_decoder(method: str, opts: dict, seed: int):
    """A new unfitted decoder for ``--method`` with the command's options."""
    from ncli.models.neural_decoders import GRUDecoder, POYODecoder
    from ncli.models.possm import POSSMDecoder

    common = {"steps": opts["steps"], "seed": seed, "device": opts["device"], "lr": opts["lr"]}
    if method == "possm":
        return POSSMDecoder(chunk=opts["chunk"], backbone=opts["backbone"], hidden=opts["hidden"],
                            layers=opts["layers"], window=opts["window"], n_latents=opts["n_latents"] or 4, **common)
    if method == "gru":
        return GRUDecoder(hidden=opts["hidden"], layers=opts["layers"], window=opts["window"], **common)
    return POYODecoder(context=opts["context"], dim=opts["hidden"], depth=max(1, opts["layers"] + 1),
                       n_latents=opts["n_latents"] or 8, **common)


def _check_spikes(sess, method: str, where: str) -> None:
    if method != "gru" and sess.spike_times.size == 0:
        raise DataError(f"session '{sess.session_id}' has no spike times (units/spike_times is empty)", where,
                        hint="spike-token decoders need spike times; use --method gru on binned counts")


def run_neural(src: Store, *, method: str, name: str, used: list[str], train: list[str], test: list[str],
               by_session: bool, folds: int, lags: int, data: dict, opts: dict, params: dict, seed: int,
               output, overwrite: bool, no_cache: bool, summary_line) -> None:
    """Evaluate a neural decoder with the decode splits and write the result layer.

    ``data`` maps session -> :class:`ncli.commands.decode.SessionData` (lags 0),
    which gives the target, usable bins, columns and circularity.
    """
    label = f"{method}_{name}"
    finetune = opts["finetune"]
    if finetune and not by_session:
        raise UsageError("--finetune needs --train-sessions and --test-sessions", "--finetune")

    def fit_target(d):
        return angles_to_xy(d.Y) if d.circular else d.Y

    sessions = {sid: spike_session(src, sid, fit_target(data[sid]), shared_units=opts["shared_units"],
                                   counts=method == "gru") for sid in used}
    for sid, s in sessions.items():
        _check_spikes(s, method, src.location)
    features = {"source": "binned/counts" if method == "gru" else "units/spike_times",
                "sqrt": method == "gru", "lags": lags, "shared_units": bool(opts["shared_units"])}
    def progress(tag):
        def cb(step, loss):
            log.debug("%s step %d loss %.4f", tag, step, loss)
        return cb

    def out_pred(d, pred_fit):
        return xy_to_angles(pred_fit) if d.circular else pred_fit

    def write_prediction(w: StoreWriter, sid, d, pred, metrics, model_path):
        w.array(f"sessions/{sid}/predictions/{label}", pred.astype(np.float32), unit=d.unit or None,
                attrs={"method": method, "target": name, "columns": d.columns, "circular": d.circular,
                       "metrics": metrics, "features": features, "model": model_path})

    def kfold(sid, fit_fold):
        """Out-of-fold predictions of one session and the last fold's model; fit_fold(train_idx) -> model."""
        d, sess = data[sid], sessions[sid]
        splits = blocked_folds(d.usable, folds, gap=lags)
        pred = np.full(d.Y.shape, np.nan)
        fold = np.full(d.Y.shape[0], -1)
        for k, (tr, te) in enumerate(splits):
            t0 = time.perf_counter()
            model = fit_fold(tr, k)
            pred[te] = out_pred(d, model.predict(sess)[te])
            fold[te] = k
            log.debug("%s fold %d: %.1f s", label, k + 1, time.perf_counter() - t0)
        rows = fold >= 0
        metrics = decoding_metrics(d.Y[rows], pred[rows], circular=d.circular, columns=d.columns)
        metrics.update(n_folds=folds, gap_bins=lags, evaluation="blocked_kfold",
                       fold_r2_mean=[decoding_metrics(d.Y[fold == k], pred[fold == k],
                                                      circular=d.circular)["r2_mean"] for k in range(folds)])
        return pred, metrics, model

    def final(fit_fold, d, last):
        """The model saved under models/: refit on all usable bins, or the last fold's (--no-refit)."""
        if opts["refit"]:
            return fit_fold(np.flatnonzero(d.usable), -1), "all usable bins"
        return last, "the last fold's training bins (--no-refit)"

    def build(w: StoreWriter) -> None:
        summary = {}
        n_params = None
        if not by_session:
            for sid in used:
                d, sess = data[sid], sessions[sid]

                def fit_fold(tr, k, sess=sess):
                    return make_decoder(method, opts, seed).fit([sess], {sess.session_id: tr},
                                                                log=progress(f"fold {k + 1}"))
                pred, metrics, last = kfold(sid, fit_fold)
                model, fitted_on = final(fit_fold, d, last)
                n_params = model.n_parameters()
                metrics["n_parameters"] = n_params
                write_prediction(w, sid, d, pred, metrics, f"models/{label}/{sid}")
                model.to_group(w.group(f"models/{label}/{sid}"), metrics=metrics,
                               extra={"features": features, "target": name, "columns": d.columns,
                                      "session": sid, "fit": f"trained on {fitted_on}"})
                summary[sid] = metrics
                log.info(summary_line(method, name, metrics, f"{folds} folds", sid if len(used) > 1 else None))
        else:
            base = make_decoder(method, opts, seed).fit(
                [sessions[s] for s in train], {s: np.flatnonzero(data[s].usable) for s in train},
                log=progress("pretrain"))
            n_params = base.n_parameters()
            base.to_group(w.group(f"models/{label}/cross_session"),
                          extra={"features": features, "target": name, "train_sessions": train})
            trues, preds = [], []
            for sid in test:
                d, sess = data[sid], sessions[sid]
                if finetune:
                    def fit_fold(tr, k, sess=sess):
                        m = _copy(base)
                        return m.fit([sess], {sess.session_id: tr}, finetune=finetune, steps=opts["finetune_steps"],
                                     log=progress(f"finetune fold {k + 1}"))
                    pred, metrics, last = kfold(sid, fit_fold)
                    metrics.update(evaluation="finetune_blocked_kfold", finetune=finetune,
                                   finetune_steps=opts["finetune_steps"], train_sessions=train)
                    model, fitted_on = final(fit_fold, d, last)
                    model_path = f"models/{label}/{sid}"
                    model.to_group(w.group(model_path), metrics=metrics,
                                   extra={"features": features, "target": name, "columns": d.columns,
                                          "session": sid, "fit": f"fine-tuned ({finetune}) on {fitted_on}",
                                          "train_sessions": train})
                    how = f"fine-tuned ({finetune}, {opts['finetune_steps']} steps, {folds} folds) from " \
                          f"{','.join(train)}"
                else:
                    try:
                        p = base.predict(sess)
                    except DataError as exc:
                        raise DataError(exc.what, f"session {sid}",
                                        hint="pass --finetune units (or full) to adapt to a new session, or "
                                             "--shared-units when unit ids match across sessions") from None
                    idx = np.flatnonzero(d.usable)
                    pred = np.full(d.Y.shape, np.nan)
                    pred[idx] = out_pred(d, p[idx])
                    metrics = decoding_metrics(d.Y[idx], pred[idx], circular=d.circular, columns=d.columns)
                    metrics.update(evaluation="sessions", train_sessions=train)
                    model_path = f"models/{label}/cross_session"
                    how = f"trained on {','.join(train)}"
                metrics["n_parameters"] = n_params
                write_prediction(w, sid, d, pred, metrics, model_path)
                rows = np.isfinite(pred).all(1)
                trues.append(d.Y[rows])
                preds.append(pred[rows])
                summary[sid] = metrics
                log.info(summary_line(method, name, metrics, how, sid))
            pooled = decoding_metrics(np.vstack(trues), np.vstack(preds), circular=data[test[0]].circular,
                                      columns=data[test[0]].columns)
            summary = {"pooled": pooled, **summary}
        means = [m["r2_mean"] for k, m in summary.items() if k != "pooled" and m["r2_mean"] is not None]
        w.group(f"models/{label}", {"class": f"{method} decoder of {name}", "config": params,
                                    "version": __version__,
                                    "metrics": {"r2_mean": float(np.nanmean(means)) if means else None,
                                                "n_parameters": n_params, "sessions": summary}})

    write_result("decode", parent=src, params=params, build=build, output=output, overwrite=overwrite,
                 no_cache=no_cache)


def _copy(model):
    """An independent copy of a fitted decoder (same config and weights)."""
    clone = type(model)(**model.get_config())
    for k in model._fitted + model._learned + model._learned_scalars:
        v = getattr(model, k)
        setattr(clone, k, {a: b.copy() for a, b in v.items()} if isinstance(v, dict) else
                (v.copy() if isinstance(v, np.ndarray) else v))
    clone._net = None
    return clone


# ----------------------------------------------------------------------------- streaming


MAX_JUMP_S = 3600.0  # an event may lie at most this far after the previous one (or the session start)


def _read_events(stream, unit_index: dict, sid: str, t0: float, where: str = "stdin"):
    """Yield (time, unit index or -1) from NDJSON lines ``{"t": s, "unit": id}``; a line without unit is a tick.

    Raises
    ------
    DataError
        A line that is not an object with a finite numeric ``t`` (booleans and strings are refused),
        a null unit, times out of order or jumping more than ``MAX_JUMP_S`` ahead, or an unknown unit.
    """
    last, prev = -np.inf, t0
    for n, line in enumerate(stream, 1):
        line = line.strip()
        if not line:
            continue
        try:
            ev = json.loads(line)
            t = ev["t"]
        except (ValueError, KeyError, TypeError):
            raise DataError(f"line {n} of the spike events is not a JSON object with a time 't'", where,
                            hint='e.g. {"t": 12.345, "unit": "17"}') from None
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not np.isfinite(t):
            raise DataError(f"line {n} of the spike events: 't' must be a finite number of seconds, got {t!r}",
                            where)
        t = float(t)
        if t < last:
            raise DataError(f"spike events must come in time order (line {n}: t = {t})", where)
        if t - prev > MAX_JUMP_S:
            raise DataError(f"line {n} of the spike events jumps {t - prev:.6g} s ahead (at most {MAX_JUMP_S:g} s "
                            "after the previous event)", where, hint="check the rig's clock")
        last = prev = t
        if "unit" in ev and ev["unit"] is None:
            raise DataError(f"line {n} of the spike events has a null unit", where,
                            hint='leave "unit" out for a clock tick')
        unit = ev.get("unit")
        if unit is None:
            yield t, -1
            continue
        if str(unit) not in unit_index:
            raise DataError(f"unknown unit '{unit}' on line {n}", f"session {sid}")
        yield t, unit_index[str(unit)]


def run_stream(src: Store, *, method: str, name: str, session: str | None, spikes: str | None, realtime: bool,
               out=None) -> dict:
    """``decode --stream``: online POSSM decoding; NDJSON predictions on stdout, latency on stderr.

    Returns
    -------
    dict
        ``{"n_chunks", "n_predictions", "latency_ms_p50", "latency_ms_p99", "latency_ms_max"}``.

    Raises
    ------
    UsageError
        Not possm, no fitted model in the store, or an unknown session.
    DataError
        Malformed spike events.
    """
    from ncli.models.possm import POSSMDecoder

    if method != "possm":
        raise UsageError("--stream works with --method possm only", "--stream",
                         hint="POSSM is the recurrent, chunk-by-chunk decoder")
    label = f"possm_{name}"
    sessions = src.sessions()
    if session is None:
        candidates = [s for s in sessions if src.exists(f"models/{label}/{s}")]
        if len(candidates) > 1:
            raise UsageError(f"choose the session to stream with --session ({len(candidates)} have a fitted "
                             f"models/{label}/<session>)", "--session", hint=f"sessions: {', '.join(candidates)}")
        session = candidates[0] if candidates else (sessions[0] if len(sessions) == 1 else None)
        if session is None:
            raise UsageError(f"no fitted models/{label}/<session> in the store", src.location,
                             hint=f"run ncli decode --method possm --target {name} first and stream its output")
    if session not in sessions:
        raise UsageError(f"unknown session '{session}'", "--session", hint=f"sessions: {', '.join(sessions)}")
    path = f"models/{label}/{session}"
    if not src.exists(path):
        raise UsageError(f"no fitted model {path} in the store", src.location,
                         hint=f"run ncli decode --method possm --target {name} first and stream its output")
    model = POSSMDecoder.from_group(src._find(path))
    attrs = src.attrs(path)
    columns = list(attrs.get("columns") or [str(i) for i in range(model.n_out_)])
    shared = bool((attrs.get("features") or {}).get("shared_units", False))
    sess = spike_session(src, session, None, shared_units=shared, counts=False)
    ids = [str(u) for u in src.read(f"sessions/{session}/units/id").tolist()]
    streamer = model.stream(session, sess.unit_keys)
    chunk, r = model.chunk, model.bin_ratio_
    t0 = sess.t_start
    out = out or sys.stdout

    if spikes is None:
        units = sess.unit_of_spike()
        order = np.argsort(sess.spike_times, kind="stable")
        events = zip(sess.spike_times[order].tolist(), units[order].tolist())
        t_end = t0 + sess.n_bins * sess.bin_size
    else:
        if spikes != "-" and not os.path.isfile(spikes):
            raise UsageError("no such spike-event file (or not a file)", spikes, hint="give an NDJSON file or - for stdin")
        source = sys.stdin if spikes == "-" else open(spikes, encoding="utf-8")  # closed at process exit
        events = _read_events(source, {u: i for i, u in enumerate(ids)}, session, t0,
                              "stdin" if spikes == "-" else spikes)
        t_end = None

    lat: list[float] = []
    state = {"j": 0, "u": [], "t": []}
    wall0 = time.perf_counter()

    def flush_until(t_limit):
        """Close every chunk that ends at or before t_limit."""
        while t0 + (state["j"] + 1) * chunk <= t_limit + 1e-12:
            end = t0 + (state["j"] + 1) * chunk
            if realtime:
                delay = (end - t0) - (time.perf_counter() - wall0)
                if delay > 0:
                    time.sleep(delay)
            tic = time.perf_counter()
            y = streamer.push(np.asarray(state["u"], dtype=np.int64), np.asarray(state["t"]) - end)
            lat.append((time.perf_counter() - tic) * 1e3)
            if y is not None:
                k = (state["j"] + 1) // r - 1
                rec = {"session": session, "bin": int(k), "t": round(end, 9)}
                rec.update({c: float(v) for c, v in zip(columns, y)})
                out.write(json.dumps(rec) + "\n")
                out.flush()
            state["j"] += 1
            state["u"], state["t"] = [], []

    last_t = t0
    for t, u in events:
        if t < t0:
            continue
        if t_end is not None and t >= t_end:
            break
        flush_until(t)
        if u >= 0:
            state["u"].append(u)
            state["t"].append(t)
        last_t = t
    flush_until(t_end if t_end is not None else t0 + np.ceil((last_t - t0) / (chunk * r) - 1e-9) * chunk * r)
    res = {"n_chunks": len(lat), "n_predictions": len(lat) // r,
           "latency_ms_p50": float(np.percentile(lat, 50)) if lat else None,
           "latency_ms_p99": float(np.percentile(lat, 99)) if lat else None,
           "latency_ms_max": float(np.max(lat)) if lat else None}
    if lat:
        log.info(f"decode possm --stream [{session}]: {res['n_predictions']} predictions from {len(lat)} chunks "
                 f"of {chunk * 1e3:g} ms; latency per chunk p50 {res['latency_ms_p50']:.2f} ms, "
                 f"p99 {res['latency_ms_p99']:.2f} ms")
    return res
