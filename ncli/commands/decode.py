"""``ncli decode``: decode a behaviour from binned counts or latents (ridge, Kalman).

The neural decoders (``--method gru|poyo|possm``, spike times or counts) use
the same splits; they are run by :mod:`ncli.commands._decode_neural`.

Evaluation is either time-blocked K-fold cross-validation within each session
(contiguous folds, ``--lags`` bins removed from training on both sides of each
test block) or a split by sessions (``--train-sessions``/``--test-sessions``).
Writes ``sessions/<sid>/predictions/<method>_<target>`` (T, D) with metrics in
its attributes, and the model refit on all usable bins under
``models/<method>_<target>/<sid>`` (``.../cross_session`` for a session split).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Annotated, Optional

import numpy as np
import typer

from ncli import __version__
from ncli.commands._common import (Debug, Device, InputStore, NoCache, Output, Overwrite, Quiet, Seed, choice,
                                   ncli_command, open_input, write_result)
from ncli.core.errors import DataError, UsageError
from ncli.core.features import angles_to_xy, lag_features, sqrt_counts, xy_to_angles
from ncli.core.metrics import decoding_metrics
from ncli.core.splits import blocked_folds, contiguous_segments, cross_val_predict, session_split
from ncli.formats.store import Store, StoreWriter

log = logging.getLogger("ncli")
METHODS = ["ridge", "kalman", "gru", "poyo", "possm"]
_TARGET = re.compile(r"^(?P<name>[^\[\]:]+?)(?:\[(?P<cols>[^\]]*)\])?$")


@dataclass
class SessionData:
    """Everything decode needs from one session (already lagged)."""

    X: np.ndarray  # (T, F) features
    Y: np.ndarray  # (T, D) target, selected columns
    usable: np.ndarray  # (T,) bool
    columns: list
    circular: bool
    unit: str
    n_inputs: int  # features before lagging (units or latent dims)


def parse_target(spec: str) -> tuple[str, list[str] | None]:
    """Split ``NAME`` or ``NAME[c1,c2]`` (column indices or names) into name and column list.

    Raises
    ------
    UsageError
        A malformed specification.
    """
    m = _TARGET.match(spec.strip())
    if not m:
        raise UsageError(f"cannot parse --target '{spec}'", "--target",
                         hint="use NAME or NAME[0,1] / NAME[x,y] to choose columns")
    cols = m.group("cols")
    if cols is None:
        return m.group("name"), None
    chosen = [c.strip() for c in cols.split(",") if c.strip()]
    if not chosen:
        raise UsageError(f"no columns given in --target '{spec}'", "--target")
    return m.group("name"), chosen


def _select_columns(spec: list[str] | None, columns: list[str], target: str) -> list[int]:
    if spec is None:
        return list(range(len(columns)))
    picked = []
    for c in spec:
        if c.lstrip("-").isdigit():
            i = int(c)
            if not -len(columns) <= i < len(columns):
                raise UsageError(f"column {i} out of range for '{target}' ({len(columns)} columns)", "--target")
            picked.append(i % len(columns))
        elif c in columns:
            picked.append(columns.index(c))
        else:
            raise UsageError(f"unknown column '{c}' of '{target}'", "--target",
                             hint=f"columns: {', '.join(columns)}")
    if len(set(picked)) != len(picked):
        raise UsageError(f"the same column is chosen twice in --target '{target}[{','.join(spec)}]'", "--target")
    return picked


def _load(src: Store, sid: str, *, target: str, colspec, latents: str | None, sqrt: bool,
          lags: int) -> SessionData:
    base = f"sessions/{sid}"
    ypath = f"{base}/binned/behavior/{target}"
    yattrs = src.attrs(ypath)
    Y = np.asarray(src.array(ypath)[...], dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    columns = list(yattrs.get("columns") or [str(i) for i in range(Y.shape[1])])
    if len(columns) != Y.shape[1]:
        columns = [str(i) for i in range(Y.shape[1])]
    pick = _select_columns(colspec, columns, target)
    Y, columns = Y[:, pick], [columns[i] for i in pick]
    T = Y.shape[0]
    valid = src.read(f"{base}/binned/valid").astype(bool) if src.exists(f"{base}/binned/valid") \
        else np.ones(T, dtype=bool)
    if latents:
        F = np.asarray(src.array(f"{base}/latents/{latents}")[...], dtype=np.float64)
    else:
        if not src.exists(f"{base}/binned/counts"):
            raise DataError(f"session '{sid}' has no binned counts", src.location)
        F = np.asarray(src.array(f"{base}/binned/counts")[...], dtype=np.float64)
        if sqrt and src.attrs(f"{base}/binned").get("kind", "counts") != "calcium":
            F = sqrt_counts(F)
    if F.shape[0] != T:
        raise DataError(f"features have {F.shape[0]} bins but the target has {T}", f"session {sid}")
    X, usable = lag_features(F, lags, valid)
    usable &= np.all(np.isfinite(Y), axis=1)
    return SessionData(X, Y, usable, columns, bool(yattrs.get("circular", False)),
                       str(yattrs.get("unit", "")), F.shape[1])


def _summary(method: str, target: str, metrics: dict, how: str, sid: str | None) -> str:
    parts = ", ".join(f"{c} {v:.2f}" for c, v in zip(metrics.get("columns", []), metrics["r2"]))
    where = f" [{sid}]" if sid else ""
    line = f"decode {method} {target}{where}: R² = {metrics['r2_mean']:.2f} ({parts}), {how}"
    if "circular_error_deg_mean" in metrics:
        line += f", circular error {metrics['circular_error_deg_mean']:.1f}°"
    return line


@ncli_command("decode")
def decode(
    store: InputStore = None,
    method: Annotated[str, typer.Option("--method", help="Decoder: ridge, kalman, gru, poyo or possm.")] = "ridge",
    target: Annotated[str, typer.Option("--target", help="Behaviour under binned/behavior; NAME[0,1] or "
                                        "NAME[x,y] picks columns.", show_default=False)] = "",
    latents: Annotated[Optional[str], typer.Option("--latents", help="Decode from latents/NAME instead of "
                                                   "counts.")] = None,
    neurons: Annotated[Optional[str], typer.Option("--neurons", help="--target units/COLUMN: probe the "
                                                   "per-neuron embeddings neurons/NAME (default: the only "
                                                   "one in the nearest layer).")] = None,
    lags: Annotated[int, typer.Option("--lags", help="Past bins added as features (causal); also the gap "
                                      "between training and test blocks.")] = 0,
    folds: Annotated[int, typer.Option("--folds", help="Contiguous cross-validation folds.")] = 5,
    train_sessions: Annotated[Optional[str], typer.Option("--train-sessions", help="Comma-separated sessions "
                                                          "to train on (with --test-sessions).")] = None,
    test_sessions: Annotated[Optional[str], typer.Option("--test-sessions", help="Comma-separated sessions "
                                                         "to test on.")] = None,
    alpha: Annotated[Optional[str], typer.Option("--alpha", help="Ridge penalty: one value, or a "
                                                 "comma-separated grid chosen by generalised cross-validation "
                                                 "(default 1e-2..1e6).")] = None,
    derivative: Annotated[bool, typer.Option("--derivative/--no-derivative", help="Kalman: add the "
                                             "behaviour's temporal derivative to the state.")] = True,
    sqrt: Annotated[bool, typer.Option("--sqrt/--no-sqrt", help="Square-root transform counts (ignored "
                                       "for --latents).")] = True,
    backbone: Annotated[str, typer.Option("--backbone", help="possm: recurrent backbone, gru or s4d.")] = "gru",
    hidden: Annotated[int, typer.Option("--hidden", help="gru/possm: recurrent width; poyo: token width.")] = 64,
    layers: Annotated[int, typer.Option("--layers", help="gru/possm: recurrent layers (poyo: layers + 1 "
                                        "self-attention layers).")] = 1,
    chunk: Annotated[float, typer.Option("--chunk", help="possm: chunk length (s); the bin width must be a "
                                         "whole multiple of it.")] = 0.05,
    context: Annotated[float, typer.Option("--context", help="poyo: context window (s).")] = 1.0,
    n_latents: Annotated[Optional[int], typer.Option("--n-latents", help="possm: latent queries per chunk; poyo: "
                                                     "per context window (default 4 and 8).",
                                                     show_default=False)] = None,
    refit: Annotated[bool, typer.Option("--refit/--no-refit", help="gru/poyo/possm: refit on all usable bins "
                                        "for models/ (else keep the last fold's model).")] = True,
    steps: Annotated[int, typer.Option("--steps", help="gru/poyo/possm: training steps.")] = 600,
    window: Annotated[int, typer.Option("--window", help="gru/possm: training window (bins).")] = 64,
    lr: Annotated[float, typer.Option("--lr", help="gru/poyo/possm: peak learning rate.")] = 3e-3,
    finetune: Annotated[Optional[str], typer.Option("--finetune", help="Adapt to the test sessions: units "
                                                    "(new unit/session embeddings only) or full.")] = None,
    finetune_steps: Annotated[int, typer.Option("--finetune-steps", help="Steps of --finetune.")] = 500,
    shared_units: Annotated[bool, typer.Option("--shared-units", help="Units with the same id in different "
                                               "sessions are the same neuron (one embedding).")] = False,
    stream: Annotated[bool, typer.Option("--stream", help="possm: decode online with the model in STORE; "
                                         "NDJSON predictions on stdout.")] = False,
    session: Annotated[Optional[str], typer.Option("--session", help="--stream: the session.")] = None,
    spikes: Annotated[Optional[str], typer.Option("--spikes", help="--stream: NDJSON spike events from FILE "
                                                  "or - (stdin) instead of replaying the store.")] = None,
    realtime: Annotated[bool, typer.Option("--realtime", help="--stream: replay at the recording's pace.")] = False,
    device: Device = "cpu",
    seed: Seed = 0,
    output: Output = None,
    overwrite: Overwrite = False,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Decode a behaviour with cross-validation and write predictions and the model.

    Output layer: sessions/<sid>/predictions/<method>_<target> (T, D), NaN where
    not predicted, attrs.metrics (r2, r2_mean, pearson_r, ...); models/<method>_<target>/...
    A summary line goes to stderr; stdout is the output location.
    """
    from ncli.models.kalman import KalmanDecoder
    from ncli.models.ridge import DEFAULT_ALPHAS, RidgeDecoder

    if target.startswith("units/"):
        return _probe_units(store, column=target[len("units/"):], neurons=neurons, folds=folds, seed=seed,
                            output=output, overwrite=overwrite, no_cache=no_cache)
    if neurons is not None:
        raise UsageError("--neurons applies to --target units/COLUMN only", "--neurons")

    choice(method, METHODS, "--method")
    neural = method in ("gru", "poyo", "possm")
    if not target:
        raise UsageError("missing --target", "--target", hint="name a behaviour under binned/behavior")
    name, colspec = parse_target(target)
    if lags < 0:
        raise UsageError(f"--lags must be >= 0, got {lags}", "--lags")
    alphas = DEFAULT_ALPHAS
    if alpha is not None:
        if method != "ridge":
            raise UsageError("--alpha applies to --method ridge only", "--alpha")
        try:
            alphas = tuple(float(a) for a in alpha.split(",") if a.strip())
        except ValueError:
            raise UsageError(f"invalid --alpha '{alpha}'", "--alpha", hint="e.g. --alpha 100 or "
                             "--alpha 1,10,100") from None
        if not alphas or any(not np.isfinite(a) or a < 0 for a in alphas):
            raise UsageError(f"invalid --alpha '{alpha}'", "--alpha", hint="values must be >= 0")

    if neural:
        from ncli.commands._decode_neural import check_options
        check_options(method, latents=latents, finetune=finetune, stream=stream, spikes=spikes, store=store,
                      values={"--hidden": hidden, "--layers": layers, "--chunk": chunk, "--context": context,
                              "--steps": steps, "--window": window, "--lr": lr, "--finetune-steps": finetune_steps,
                              "--n-latents": 1 if n_latents is None else n_latents})
    elif stream or finetune:
        raise UsageError("--stream and --finetune apply to --method gru, poyo or possm", "--method")
    if not stream:
        for option, value in (("--spikes", spikes), ("--session", session), ("--realtime", realtime or None)):
            if value is not None:
                raise UsageError(f"{option} applies to --stream only", option)
    src = open_input(store)
    sessions = src.sessions()
    if not sessions:
        raise DataError("store has no sessions", src.location)
    if stream:
        from ncli.commands._decode_neural import run_stream
        run_stream(src, method=method, name=name, session=session, spikes=spikes, realtime=realtime)
        return
    by_session = train_sessions is not None or test_sessions is not None
    if by_session:
        train, test = session_split(sessions, (train_sessions or "").split(","), (test_sessions or "").split(","))
        used = train + test
    else:
        if folds < 2:
            raise UsageError(f"--folds must be at least 2, got {folds}", "--folds")
        train, test, used = [], [], sessions
    for sid in used:
        names = src.children(f"sessions/{sid}/binned/behavior")
        if name not in names:
            raise UsageError(f"unknown target '{name}'", f"session {sid}",
                             hint=f"behaviours: {', '.join(names) or '(none)'}")
        n_bins = src.array(f"sessions/{sid}/binned/behavior/{name}").shape[0]
        if lags >= n_bins // 2:
            raise UsageError(f"--lags {lags} is too long for session {sid} ({n_bins} bins)", "--lags",
                             hint="lags are counted in bins; use fewer than half the session")
        if latents and not src.is_array(f"sessions/{sid}/latents/{latents}"):
            avail = src.children(f"sessions/{sid}/latents")
            raise UsageError(f"unknown latents '{latents}'", f"session {sid}",
                             hint=f"latents: {', '.join(avail) or '(none; run ncli embed first)'}")

    def make_model():
        if method == "ridge":
            return RidgeDecoder(alphas=alphas)
        return KalmanDecoder(derivative=derivative)

    if neural:
        from ncli.commands._decode_neural import run_neural
        if by_session and finetune is None:
            raise UsageError(f"--method {method} has no embedding for sessions it was not trained on",
                             "--test-sessions", hint="pass --finetune units (or full) to adapt to the test sessions")
        opts = {"backbone": backbone, "hidden": hidden, "layers": layers, "chunk": chunk, "context": context,
                "steps": steps, "window": window, "lr": lr, "finetune": finetune, "finetune_steps": finetune_steps,
                "shared_units": shared_units, "device": device, "n_latents": n_latents or 0, "refit": refit}
        params = {"method": method, "target": target, "lags": lags, "folds": folds, "train_sessions": train,
                  "test_sessions": test, "seed": seed, **opts}
        data = {sid: _load(src, sid, target=name, colspec=colspec, latents=None, sqrt=False, lags=0)
                for sid in used}
        return run_neural(src, method=method, name=name, used=used, train=train, test=test, by_session=by_session,
                          folds=folds, lags=lags, data=data, opts=opts, params=params, seed=seed, output=output,
                          overwrite=overwrite, no_cache=no_cache, summary_line=_summary)
    label = f"{method}_{name}"
    features = {"source": f"latents/{latents}" if latents else "binned/counts",
                "sqrt": bool(sqrt and not latents), "lags": lags}
    params = {"method": method, "target": target, "latents": latents, "lags": lags, "folds": folds,
              "train_sessions": train, "test_sessions": test, "alpha": list(alphas) if method == "ridge" else None,
              "derivative": derivative if method == "kalman" else None,
              "sqrt": sqrt, "seed": seed}
    data = {sid: _load(src, sid, target=name, colspec=colspec, latents=latents, sqrt=sqrt, lags=lags)
            for sid in used}
    for sid, d in data.items():
        if d.usable.sum() < 3:
            raise DataError(f"session '{sid}' has only {int(d.usable.sum())} usable bins "
                            f"(valid, finite target, full lag window)", src.location)

    def fit_target(d: SessionData) -> np.ndarray:
        return angles_to_xy(d.Y) if d.circular else d.Y

    def from_fit(d: SessionData, pred: np.ndarray) -> np.ndarray:
        return xy_to_angles(pred) if d.circular else pred

    def write_prediction(w: StoreWriter, sid: str, d: SessionData, pred: np.ndarray, metrics: dict,
                         extra: dict) -> None:
        w.array(f"sessions/{sid}/predictions/{label}", pred.astype(np.float32),
                unit=d.unit or None,
                attrs={"method": method, "target": name, "columns": d.columns, "circular": d.circular,
                       "metrics": metrics, "features": features, **extra})

    def build(w: StoreWriter) -> None:
        summary: dict = {}
        if not by_session:
            for sid in used:
                d = data[sid]
                Yfit = fit_target(d)
                splits = blocked_folds(d.usable, folds, gap=lags)
                pred_fit, fold = cross_val_predict(make_model, d.X, Yfit, splits)
                pred = from_fit(d, pred_fit)
                rows = fold >= 0
                metrics = decoding_metrics(d.Y[rows], pred[rows], circular=d.circular, columns=d.columns)
                per_fold = [decoding_metrics(d.Y[fold == k], pred[fold == k], circular=d.circular)["r2_mean"]
                            for k in range(folds)]
                metrics.update(n_folds=folds, gap_bins=lags, fold_r2_mean=per_fold, evaluation="blocked_kfold")
                idx = np.flatnonzero(d.usable)
                model = make_model().fit(d.X[idx], Yfit[idx], segments=contiguous_segments(idx))
                write_prediction(w, sid, d, pred, metrics, {"model": f"models/{label}/{sid}"})
                model.to_group(w.group(f"models/{label}/{sid}"), metrics=metrics,
                               extra={"features": features, "target": name, "columns": d.columns,
                                      "session": sid, "fit": "refit on all usable bins"})
                summary[sid] = metrics
                log.info(_summary(method, name, metrics, f"{folds} folds", sid if len(used) > 1 else None))
        else:
            dims = {sid: data[sid].X.shape[1] for sid in used}
            if len(set(dims.values())) > 1:
                detail = ", ".join(f"{s}: {data[s].n_inputs}" for s in used)
                raise UsageError(f"training and test sessions have different feature dimensions ({detail})",
                                 "--train-sessions/--test-sessions",
                                 hint="decode from shared latents (--latents NAME) with the same dimension")
            if len({data[s].Y.shape[1] for s in used}) > 1:
                raise UsageError(f"target '{name}' has different numbers of columns across sessions", "--target")
            Xs, Ys, segs, offset = [], [], [], 0
            for sid in train:
                d = data[sid]
                idx = np.flatnonzero(d.usable)
                Xs.append(d.X[idx])
                Ys.append(fit_target(d)[idx])
                seg = contiguous_segments(idx) + offset
                segs.append(seg)
                offset = int(seg.max()) + 1
            model = make_model().fit(np.vstack(Xs), np.vstack(Ys), segments=np.concatenate(segs))
            trues, preds = [], []
            for sid in test:
                d = data[sid]
                idx = np.flatnonzero(d.usable)
                pred = np.full(d.Y.shape, np.nan)
                pred[idx] = from_fit(d, model.predict(d.X[idx], segments=contiguous_segments(idx)))
                metrics = decoding_metrics(d.Y[idx], pred[idx], circular=d.circular, columns=d.columns)
                metrics.update(evaluation="sessions", train_sessions=train)
                write_prediction(w, sid, d, pred, metrics, {"model": f"models/{label}/cross_session"})
                summary[sid] = metrics
                trues.append(d.Y[idx])
                preds.append(pred[idx])
                log.info(_summary(method, name, metrics, f"trained on {','.join(train)}", sid))
            pooled = decoding_metrics(np.vstack(trues), np.vstack(preds), circular=data[test[0]].circular,
                                      columns=data[test[0]].columns)
            pooled.update(evaluation="sessions", train_sessions=train, test_sessions=test)
            model.to_group(w.group(f"models/{label}/cross_session"), metrics=pooled,
                           extra={"features": features, "target": name, "train_sessions": train,
                                  "test_sessions": test})
            summary = {"pooled": pooled, **summary}
        means = [m["r2_mean"] for k, m in summary.items() if k != "pooled" and m["r2_mean"] is not None]
        w.group(f"models/{label}", {"class": f"{method} decoder of {name}", "config": params,
                                    "version": __version__,
                                    "metrics": {"r2_mean": float(np.nanmean(means)) if means else None,
                                                "sessions": summary}})

    write_result("decode", parent=src, params=params, build=build, output=output,
                 overwrite=overwrite, no_cache=no_cache)


# ----------------------------------------------------------------------------- per-unit probes


def _default_neurons(src: Store, sessions: list[str]) -> str:
    """The per-neuron embedding to probe: the only one in the nearest layer that has any."""
    for layer in src.layers:
        names = set()
        for sid in sessions:
            path = f"sessions/{sid}/neurons"
            if path in layer.group:
                names |= {k for k, v in layer.group[path].arrays() if v.ndim == 2}
        names = {n for n in names if not n.startswith("probe_")}
        if len(names) == 1:
            return names.pop()
        if len(names) > 1:
            raise UsageError(f"several per-neuron embeddings ({', '.join(sorted(names))})", "--neurons",
                             hint="choose one with --neurons NAME")
    raise UsageError("no per-neuron embeddings (neurons/NAME) in the store", "--target",
                     hint="run ncli embed --method nuclr (or features) first")


def _probe_units(store, *, column: str, neurons: str | None, folds: int, seed: int, output, overwrite,
                 no_cache) -> None:
    """``decode --target units/COLUMN``: logistic-regression probe of a unit label from neurons/NAME."""
    from ncli.models.nuclr import probe_units

    src = open_input(store)
    sessions = src.sessions()
    if not sessions:
        raise DataError("store has no sessions", src.location)
    if not column or "/" in column:
        raise UsageError(f"invalid --target 'units/{column}'", "--target", hint="e.g. --target units/area")
    name = neurons or _default_neurons(src, sessions)
    used = [sid for sid in sessions if src.is_array(f"sessions/{sid}/neurons/{name}")]
    if not used:
        raise UsageError(f"unknown neurons '{name}'", src.location, hint="run ncli embed --method nuclr first")
    for sid in used:
        if not src.is_array(f"sessions/{sid}/units/{column}"):
            raise UsageError(f"unknown unit column '{column}'", f"session {sid}",
                             hint=f"columns: {', '.join(src.children(f'sessions/{sid}/units'))}")
    if len(used) == 1 and folds < 2:
        raise UsageError(f"--folds must be at least 2, got {folds}", "--folds")
    X = [np.asarray(src.read(f"sessions/{sid}/neurons/{name}"), dtype=np.float64) for sid in used]
    y = [np.array([str(v) for v in src.read(f"sessions/{sid}/units/{column}").tolist()]) for sid in used]
    for sid, xs, ys in zip(used, X, y):
        if ys.shape != (xs.shape[0],):  # e.g. units/spike_times: a flat array over all spikes, not a label
            raise UsageError(f"units/{column} is not a per-unit label ({ys.shape[0]} rows for {xs.shape[0]} "
                             f"units)", f"session {sid}", hint="e.g. --target units/area")
    label = f"probe_{column}_{name}"
    params = {"target": f"units/{column}", "neurons": name, "folds": folds, "seed": seed}

    def build(w: StoreWriter) -> None:
        preds, metrics = probe_units(X, y, folds=folds, seed=seed)
        metrics["per_session"] = {used[i]: v for i, v in metrics["per_session"].items()}
        metrics["sessions"] = used
        for sid, p in zip(used, preds):
            w.array(f"sessions/{sid}/neurons/{label}", p,
                    attrs={"kind": "probe", "target": f"units/{column}", "neurons": name,
                           "model": f"models/{label}", "metrics": metrics})
        w.group(f"models/{label}", {"class": "logistic-regression probe of a unit label", "config": params,
                                    "version": __version__, "metrics": metrics})
        how = ("leave-one-session-out" if metrics["evaluation"] == "leave_one_session_out" else
               f"{metrics['folds']}-fold cross-validation over units (one session: leave-one-session-out "
               "is impossible)")
        log.info(f"decode probe units/{column} from neurons/{name}: balanced accuracy "
                 f"{metrics['balanced_accuracy']:.3f} (chance {metrics['chance']:.3f}), macro-F1 "
                 f"{metrics['macro_f1']:.3f}, {metrics['n_units']} units, {how}; RankMe "
                 f"{metrics['rankme']:.1f} of {metrics['embedding_dim']}")

    write_result("decode", parent=src, params=params, build=build, output=output,
                 overwrite=overwrite, no_cache=no_cache)
