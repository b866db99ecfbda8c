"""The evaluation harness: one path from a learner and a split to predictions, metrics and saved models.

Every decoder is evaluated here, whatever it is (ridge and Kalman on lagged
features, the neural decoders on spikes or counts): the method wraps its
estimator in a *learner* (``fit`` on some bins of some sessions, ``predict``
bins of a session, optionally ``adapt`` a fitted model to a new session) and
the harness runs the split, computes the task's metrics and writes the
layer through :mod:`ncli.methods.results`.

Splits (:class:`Split`)
-----------------------
``blocked_kfold``
    Time-blocked K-fold within each session (:func:`ncli.core.splits.blocked_folds`):
    the usable bins cut in time order into K contiguous test blocks, each tested
    by a model trained on the other bins minus ``gap`` bins on both sides of the
    block; metrics on the pooled out-of-fold predictions. The model saved is
    refit on every usable bin (or the last fold's, ``refit=False``).
``sessions``
    Train on some sessions, test on others. Without adaptation the trained model
    predicts each test session; with adaptation (``adapt``: ``decode
    --finetune``) it is adapted to each test session and evaluated there with
    blocked K-fold.
Not yet implemented (room for the coming methods): ``trailing`` (train on the
first fraction of each session, test on the rest), ``held_out_areas``,
``held_out_stimuli`` and ``cross_day``; see :data:`SPLITS`.

Tasks
-----
``regression``
    R², Pearson r and, for circular targets, the circular error
    (:func:`ncli.core.metrics.decoding_metrics`); angles are fit as (cos, sin)
    pairs (:class:`Behaviour`).
``classification``
    Balanced accuracy and macro-F1 of held-out labels
    (:func:`ncli.core.metrics.classification_metrics`), with leave-one-session-out
    or stratified K-fold over units (:func:`evaluate_units`: the unit probes).
``sequence``
    Per-trial label sequences (``decode --target trials/COLUMN``, :func:`evaluate_sequences`):
    token and word error rates of the decoded sequences (:func:`ncli.core.sequences.error_rates`)
    and the real-time factor, on held-out trials of the training sessions (held-in) and
    on every trial of the test sessions (held-out), optionally adapting trial by trial.
Not yet implemented: ``encoding`` (noise-ceiling-normalised encoding scores); see :data:`TASKS`.

The order of every fit, prediction and random draw is that of ncli 0.1.0, so
results are identical (tests/test_golden.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from ncli.core.errors import UsageError
from ncli.core.features import angles_to_xy, xy_to_angles
from ncli.core.metrics import classification_metrics, decoding_metrics
from ncli.core.splits import blocked_folds
from ncli.formats.store import StoreWriter
from ncli.methods.results import write_model, write_prediction, write_sequences

log = logging.getLogger("ncli")

#: split kinds: a description, or None where not implemented yet
SPLITS: dict[str, str | None] = {
    "blocked_kfold": "time-blocked K-fold within each session, with a gap around each test block",
    "sessions": "train on some sessions, test on others (optionally adapting to each test session)",
    "trailing": None,
    "held_out_areas": None,
    "held_out_stimuli": None,
    "cross_day": None,
}

#: tasks: a description, or None where not implemented yet
TASKS: dict[str, str | None] = {
    "regression": "R², Pearson r, circular error",
    "classification": "balanced accuracy, macro-F1",
    "sequence": "token (phoneme/character) and word error rates of decoded sequences, real-time factor",
    "encoding": None,
}


# ----------------------------------------------------------------------------- regression data and task


@dataclass
class Behaviour:
    """One session's regression target, as the harness evaluates it.

    Attributes
    ----------
    Y : (T, D) float64
        Target at the bin centres.
    usable : (T,) bool
        Bins that may be used for training and testing.
    columns : list of str
    circular : bool
        Angles (radians): fit as (cos, sin) pairs, scored with the circular error.
    unit : str
        Physical unit of the target ('' when unknown).
    """

    Y: np.ndarray
    usable: np.ndarray
    columns: list
    circular: bool
    unit: str

    @property
    def n_fit(self) -> int:
        """Columns of the values a learner fits (two per angle)."""
        return 2 * self.Y.shape[1] if self.circular else self.Y.shape[1]

    def fit_values(self) -> np.ndarray:
        """The values a learner fits: ``Y``, or (cos, sin) of each angle."""
        return angles_to_xy(self.Y) if self.circular else self.Y

    def from_fit(self, P: np.ndarray) -> np.ndarray:
        """Predictions of the fitted values back in the target's units (angles from (cos, sin))."""
        return xy_to_angles(P) if self.circular else P

    def score(self, rows, pred: np.ndarray, columns: bool = True) -> dict:
        """:func:`~ncli.core.metrics.decoding_metrics` of ``pred`` against ``Y`` on ``rows``."""
        return decoding_metrics(self.Y[rows], pred[rows], circular=self.circular,
                                columns=self.columns if columns else None)


class Learner(Protocol):
    """What the harness needs from a method (the method's adapter around its estimator).

    ``bins`` are sorted bin indices; ``tag`` names the fit for progress logs
    (``"fold 2"``, ``"pretrain"``).
    """

    def fit(self, bins: dict[str, np.ndarray], tag: str) -> Any:
        """A new model trained on ``bins`` of each session (in the dict's order)."""

    def predict(self, model: Any, sid: str, bins: np.ndarray) -> np.ndarray:
        """``(len(bins), n_fit)`` predictions of the fitted values at ``bins`` of session ``sid``."""

    def adapt(self, base: Any, sid: str, bins: np.ndarray, tag: str) -> Any:
        """A copy of ``base`` adapted to ``bins`` of session ``sid`` (only for adapting splits)."""

    def n_parameters(self, model: Any) -> int | None:
        """Trainable parameters of ``model``, or None when not counted."""

    def fit_note(self, fitted_on: str) -> str:
        """How the saved model was fit, for its ``fit`` attribute (``fitted_on``: which bins)."""

    def check_sessions(self, sessions: Sequence[str]) -> None:
        """Refuse a session split the learner cannot do (e.g. features of different dimensions)."""


@dataclass
class Split:
    """How a regression is evaluated (see :data:`SPLITS`).

    Attributes
    ----------
    kind : str
        ``"blocked_kfold"`` or ``"sessions"``.
    folds : int
        K of the blocked K-fold (also inside test sessions when adapting).
    gap : int
        Bins removed from training on both sides of a test block.
    sessions : list of str
        ``blocked_kfold``: the sessions evaluated.
    train, test : list of str
        ``sessions``: training and test sessions.
    adapt : str, optional
        ``sessions``: adapt the trained model to each test session in this mode
        (``"units"`` or ``"full"``, ``decode --finetune``).
    adapt_steps : int
        Training steps of the adaptation.
    refit : bool
        Save a model refit on every usable bin (else the last fold's).
    """

    kind: str
    folds: int
    gap: int
    sessions: list = field(default_factory=list)
    train: list = field(default_factory=list)
    test: list = field(default_factory=list)
    adapt: str | None = None
    adapt_steps: int = 0
    refit: bool = True

    def __post_init__(self):
        if SPLITS.get(self.kind, None) is None:
            raise NotImplementedError(f"split '{self.kind}' is not implemented yet")


@dataclass
class Layout:
    """Where and how a regression result is written.

    Attributes
    ----------
    method : str
        The method's name (``attrs.method`` of the predictions).
    target : str
        The behaviour decoded.
    features : dict
        Provenance of the inputs (``attrs.features`` of predictions and models).
    describe : callable
        ``describe(metrics, how, sid or None) -> str``: the summary line logged per session.
    """

    method: str
    target: str
    features: dict
    describe: Callable[[dict, str, str | None], str]

    @property
    def label(self) -> str:
        """The result's name: ``<method>_<target>``."""
        return f"{self.method}_{self.target}"

    def prediction(self, w: StoreWriter, sid: str, d: Behaviour, pred: np.ndarray, metrics: dict,
                   model_path: str) -> None:
        """``sessions/<sid>/predictions/<label>`` with its metrics and provenance."""
        write_prediction(w, sid, self.label, pred, unit=d.unit,
                         attrs={"method": self.method, "target": self.target, "columns": d.columns,
                                "circular": d.circular, "metrics": metrics, "features": self.features,
                                "model": model_path})


# ----------------------------------------------------------------------------- regression


def evaluate_regression(w: StoreWriter, learner: Learner, data: dict[str, Behaviour], split: Split,
                        layout: Layout) -> tuple[dict, int | None]:
    """Run ``split`` with ``learner``; write predictions and models; return the per-session metrics.

    Parameters
    ----------
    w : StoreWriter
        The layer being written.
    learner : Learner
    data : dict
        Session id -> :class:`Behaviour`, for every session the split uses.
    split : Split
    layout : Layout

    Returns
    -------
    summary : dict
        Session id -> metrics (plus ``"pooled"`` first for a session split).
    n_parameters : int or None
        Of the model saved last (the trained model for a session split).

    Raises
    ------
    UsageError
        A session split whose sessions differ in feature dimension or target columns.
    DataError
        Too few usable bins for the folds.
    """
    if split.kind == "blocked_kfold":
        return _blocked_kfold(w, learner, data, split, layout)
    learner.check_sessions(split.train + split.test)
    if len({data[s].Y.shape[1] for s in split.train + split.test}) > 1:
        raise UsageError(f"target '{layout.target}' has different numbers of columns across sessions", "--target")
    if split.adapt:
        return _sessions_adapted(w, learner, data, split, layout)
    return _sessions(w, learner, data, split, layout)


def summary_metrics(summary: dict, n_parameters: int | None) -> dict:
    """The metrics of a result's summary group: mean R² over sessions, the parameter count, per session."""
    means = [m["r2_mean"] for k, m in summary.items() if k != "pooled" and m["r2_mean"] is not None]
    out: dict = {"r2_mean": float(np.nanmean(means)) if means else None}
    if n_parameters is not None:
        out["n_parameters"] = n_parameters
    out["sessions"] = summary
    return out


def _kfold(fit: Callable, learner: Learner, sid: str, d: Behaviour, split: Split, label: str):
    """Out-of-fold predictions of one session, their metrics, and the last fold's model."""
    splits = blocked_folds(d.usable, split.folds, gap=split.gap)
    pred_fit = np.full((d.Y.shape[0], d.n_fit), np.nan)
    fold = np.full(d.Y.shape[0], -1, dtype=np.int64)
    model = None
    for k, (tr, te) in enumerate(splits):
        t0 = time.perf_counter()
        model = fit(tr, f"fold {k + 1}")
        pred_fit[te] = learner.predict(model, sid, te)
        fold[te] = k
        log.debug("%s fold %d: %.1f s", label, k + 1, time.perf_counter() - t0)
    pred = d.from_fit(pred_fit)
    metrics = d.score(fold >= 0, pred)
    metrics.update(n_folds=split.folds, gap_bins=split.gap, evaluation="blocked_kfold",
                   fold_r2_mean=[d.score(fold == k, pred, columns=False)["r2_mean"] for k in range(split.folds)])
    return pred, metrics, model


def _final(fit: Callable, d: Behaviour, last, refit: bool):
    """The model to save: refit on every usable bin, or the last fold's; and which bins it saw."""
    if refit:
        return fit(np.flatnonzero(d.usable), "fold 0"), "all usable bins"
    return last, "the last fold's training bins (--no-refit)"


def _blocked_kfold(w, learner, data, split, layout):
    summary: dict = {}
    n_params = None
    for sid in split.sessions:
        d = data[sid]

        def fit(bins, tag, sid=sid):
            return learner.fit({sid: bins}, tag)

        pred, metrics, last = _kfold(fit, learner, sid, d, split, layout.label)
        model, fitted_on = _final(fit, d, last, split.refit)
        n_params = learner.n_parameters(model)
        if n_params is not None:
            metrics["n_parameters"] = n_params
        path = f"models/{layout.label}/{sid}"
        layout.prediction(w, sid, d, pred, metrics, path)
        write_model(w, path, model, metrics=metrics,
                    extra={"features": layout.features, "target": layout.target, "columns": d.columns,
                           "session": sid, "fit": learner.fit_note(fitted_on)})
        summary[sid] = metrics
        log.info(layout.describe(metrics, f"{split.folds} folds", sid if len(split.sessions) > 1 else None))
    return summary, n_params


def _train_bins(data, sessions):
    return {s: np.flatnonzero(data[s].usable) for s in sessions}


def _pooled(data, split, trues, preds) -> dict:
    first = data[split.test[0]]
    return decoding_metrics(np.vstack(trues), np.vstack(preds), circular=first.circular, columns=first.columns)


def _sessions(w, learner, data, split, layout):
    """Train on the training sessions, predict every test session with that model."""
    train, test = split.train, split.test
    model = learner.fit(_train_bins(data, train), "pretrain")
    n_params = learner.n_parameters(model)
    path = f"models/{layout.label}/cross_session"
    summary: dict = {}
    trues, preds = [], []
    for sid in test:
        d = data[sid]
        idx = np.flatnonzero(d.usable)
        pred = np.full(d.Y.shape, np.nan)
        pred[idx] = d.from_fit(learner.predict(model, sid, idx))
        metrics = d.score(idx, pred)
        metrics.update(evaluation="sessions", train_sessions=train)
        if n_params is not None:
            metrics["n_parameters"] = n_params
        layout.prediction(w, sid, d, pred, metrics, path)
        summary[sid] = metrics
        trues.append(d.Y[idx])
        preds.append(pred[idx])
        log.info(layout.describe(metrics, f"trained on {','.join(train)}", sid))
    pooled = _pooled(data, split, trues, preds)
    pooled.update(evaluation="sessions", train_sessions=train, test_sessions=test)
    write_model(w, path, model, metrics=pooled,
                extra={"features": layout.features, "target": layout.target, "train_sessions": train,
                       "test_sessions": test})
    return {"pooled": pooled, **summary}, n_params


def _sessions_adapted(w, learner, data, split, layout):
    """Train on the training sessions, adapt to each test session (evaluated with blocked K-fold in it)."""
    train, test, mode = split.train, split.test, split.adapt
    base = learner.fit(_train_bins(data, train), "pretrain")
    n_params = learner.n_parameters(base)
    write_model(w, f"models/{layout.label}/cross_session", base,
                extra={"features": layout.features, "target": layout.target, "train_sessions": train})
    summary: dict = {}
    trues, preds = [], []
    for sid in test:
        d = data[sid]

        def fit(bins, tag, sid=sid):
            return learner.adapt(base, sid, bins, tag)

        pred, metrics, last = _kfold(fit, learner, sid, d, split, layout.label)
        metrics.update(evaluation="finetune_blocked_kfold", finetune=mode, finetune_steps=split.adapt_steps,
                       train_sessions=train)
        model, fitted_on = _final(fit, d, last, split.refit)
        path = f"models/{layout.label}/{sid}"
        write_model(w, path, model, metrics=metrics,
                    extra={"features": layout.features, "target": layout.target, "columns": d.columns,
                           "session": sid, "fit": f"fine-tuned ({mode}) on {fitted_on}", "train_sessions": train})
        if n_params is not None:  # the prediction (not the saved model) records the pretrained model's size
            metrics["n_parameters"] = n_params
        layout.prediction(w, sid, d, pred, metrics, path)
        rows = np.isfinite(pred).all(1)
        trues.append(d.Y[rows])
        preds.append(pred[rows])
        summary[sid] = metrics
        log.info(layout.describe(metrics, f"fine-tuned ({mode}, {split.adapt_steps} steps, {split.folds} folds) "
                                          f"from {','.join(train)}", sid))
    return {"pooled": _pooled(data, split, trues, preds), **summary}, n_params


# ----------------------------------------------------------------------------- classification (unit probes)


def default_classifier():
    """Standardised features, then a class-balanced logistic regression (scikit-learn)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, class_weight="balanced"))


def evaluate_units(X: Sequence[np.ndarray], y: Sequence[np.ndarray], *, folds: int = 5, seed: int = 0,
                   make_classifier: Callable | None = None) -> tuple[list[np.ndarray], dict]:
    """Classify a per-unit label from per-unit features, held out by session or by unit.

    Leave-one-session-out with two or more sessions; with one session,
    stratified K-fold over units (``folds``, fewer when a class is small;
    shuffled with ``seed``). Units with an empty label are left out.

    Parameters
    ----------
    X : list of (N_s, K) arrays
        Features (embeddings) per session.
    y : list of (N_s,) str arrays
        Labels per session.
    folds : int
        Folds for the one-session case.
    seed : int
    make_classifier : callable, optional
        A new unfitted scikit-learn classifier (default :func:`default_classifier`).

    Returns
    -------
    predictions : list of (N_s,) str arrays
        Held-out prediction of each unit ('' for unlabelled units).
    metrics : dict
        ``balanced_accuracy``, ``macro_f1``, ``chance``, ``classes``, ``n_units``,
        ``evaluation`` ("leave_one_session_out" or "stratified_kfold_over_units"),
        ``per_session`` balanced accuracy (by session index, LOSO), ``rankme``,
        ``embedding_dim``, and ``folds`` (one session).

    Raises
    ------
    DataError
        Fewer than two classes, or a class with a single unit in the one-session case.
    """
    from sklearn.model_selection import StratifiedKFold

    from ncli.core.errors import DataError
    from ncli.models.base import check_array
    from ncli.models.nuclr import rankme

    clf = make_classifier or default_classifier
    X = [check_array(x, "embeddings", allow_nan=False) for x in X]
    y = [np.asarray(v).astype(str) for v in y]
    lab = [v != "" for v in y]
    classes = sorted(set(np.concatenate([v[m] for v, m in zip(y, lab)]).tolist()))
    if len(classes) < 2:
        raise DataError(f"the probe needs at least 2 classes, got {classes}")
    preds = [np.full(len(v), "", dtype=object) for v in y]
    per_session = {}
    if len(X) >= 2:
        evaluation = "leave_one_session_out"
        for i in range(len(X)):
            tr = [j for j in range(len(X)) if j != i]
            ytr = np.concatenate([y[j][lab[j]] for j in tr])
            if len(set(ytr.tolist())) < 2 or not lab[i].any():
                continue
            model = clf().fit(np.vstack([X[j][lab[j]] for j in tr]), ytr)
            preds[i][lab[i]] = model.predict(X[i][lab[i]])
            per_session[i] = classification_metrics(y[i][lab[i]], preds[i][lab[i]].astype(str),
                                                    classes)["balanced_accuracy"]
    else:
        evaluation = "stratified_kfold_over_units"
        Xs, ys = X[0][lab[0]], y[0][lab[0]]
        k = min(folds, min(int((ys == c).sum()) for c in classes))
        if k < 2:
            raise DataError("a class has a single unit; cross-validation over units is impossible")
        p = np.empty(len(ys), dtype=object)
        for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(Xs, ys):
            p[te] = clf().fit(Xs[tr], ys[tr]).predict(Xs[te])
        preds[0][lab[0]] = p
    yt = np.concatenate([v[m] for v, m in zip(y, lab)])
    yp = np.concatenate([p[m] for p, m in zip(preds, lab)]).astype(str)
    done = yp != ""
    metrics = {**classification_metrics(yt[done], yp[done], classes), "classes": classes,
               "n_units": int(done.sum()), "evaluation": evaluation, "per_session": per_session,
               "rankme": rankme(np.vstack(X)), "embedding_dim": int(X[0].shape[1])}
    if evaluation == "stratified_kfold_over_units":
        metrics["folds"] = k
    return [p.astype(str) for p in preds], metrics


# ----------------------------------------------------------------------------- sequences


@dataclass
class SequenceTrials:
    """One session's trials for the sequence task.

    Attributes
    ----------
    X : list of (T_i, F) float32
        Features of each trial.
    refs : list of str
        Reference token sequences (space-separated).
    labels : list of (L_i,) int64
        The same as class ids (1-based; 0 is the CTC blank).
    durations : (n_trials,) float64
        Trial durations (s).
    """

    X: list
    refs: list
    labels: list
    durations: np.ndarray


def held_in_trials(n_trials: int, folds: int) -> np.ndarray:
    """Trials of a training session kept out of training: the last ``ceil(n / folds)`` (none when folds < 2)."""
    if folds < 2 or n_trials < 2:
        return np.zeros(0, dtype=np.int64)
    k = max(1, -(-n_trials // folds))
    return np.arange(n_trials - k, n_trials)


def evaluate_sequences(w: StoreWriter, learner: Any, data: dict[str, SequenceTrials], *, train: list, test: list,
                       folds: int, label: str, vocabulary: list, separator: str | None, attrs: dict,
                       describe: Callable[[str, dict], str]) -> dict:
    """Train on ``train`` sessions, decode held-in and held-out trials, write predictions and the model.

    The last ``ceil(n / folds)`` trials of each training session are held out
    (held-in evaluation, no adaptation); every trial of each ``test`` session is
    decoded, in session and trial order, by ``learner.decode`` (which may adapt
    as it goes). Writes ``sessions/<sid>/predictions/<label>`` (n_trials,) str
    (decoded tokens; "" for trials used in training, listed in ``attrs.trained_on``),
    and the trained model (before any adaptation) under ``models/<label>/cross_session``.

    Parameters
    ----------
    w : StoreWriter
    learner : object
        ``fit({sid: trial indices}) -> model``; ``decode(model, sid, trials, adapt) -> (list of id arrays,
        seconds)``; ``n_parameters(model)``.
    data : dict
        Session id -> :class:`SequenceTrials`.
    train, test : list of str
        Sessions (``test`` may be empty: held-in only).
    folds : int
    label : str
        ``<method>_<column>``.
    vocabulary : list of str
    separator : str, optional
        Word separator token (word error rate when given).
    attrs : dict
        Provenance added to every prediction's attributes.
    describe : callable
        ``describe(sid or "pooled", metrics) -> str`` logged per session.

    Returns
    -------
    dict
        Pooled metrics: ``per_held_in``, ``per_held_out`` (and ``wer_*``), ``rtf``, ``per_session``.
    """
    from ncli.core.sequences import decode_ids, error_rates

    held = {sid: held_in_trials(len(data[sid].X), folds) for sid in train}
    fit_on = {sid: np.setdiff1d(np.arange(len(data[sid].X)), held[sid]) for sid in train}
    t0 = time.perf_counter()
    model = learner.fit(fit_on, "train")
    train_seconds = time.perf_counter() - t0
    model_path = f"models/{label}/cross_session"
    write_model(w, model_path, model, extra={"fit": f"trained on {', '.join(train)} (held-in trials excluded)",
                                             "sessions": list(train), "vocabulary": list(vocabulary)})
    per_session, pooled = {}, {"held_in": ([], []), "held_out": ([], [])}
    seconds = duration = 0.0
    for kind, sessions in (("held_in", train), ("held_out", test)):
        for sid in sessions:
            d = data[sid]
            idx = held[sid] if kind == "held_in" else np.arange(len(d.X))
            ids, sec = learner.decode(model, sid, idx, adapt=kind == "held_out")
            hyps = [decode_ids(i, vocabulary) for i in ids]
            refs = [d.refs[i] for i in idx]
            m = error_rates(refs, hyps, separator)
            dur = float(d.durations[idx].sum())
            m.update({"kind": kind, "n_trials": int(idx.size), "rtf": sec / max(dur, 1e-12),
                      "decode_seconds": sec})
            seconds, duration = seconds + sec, duration + dur
            pooled[kind][0].extend(refs)
            pooled[kind][1].extend(hyps)
            per_session[sid] = {k: v for k, v in m.items() if k != "per_trial"}
            out = np.array([""] * len(d.X), dtype=object)
            for i, h in zip(idx, hyps):
                out[i] = h
            trained = fit_on.get(sid, np.zeros(0, dtype=np.int64))
            write_sequences(w, sid, label, out, attrs={**attrs, "metrics": per_session[sid],
                                                        "per_trial": dict(zip(map(int, idx), m["per_trial"])),
                                                        "trained_on": trained.tolist(), "model": model_path})
            log.info(describe(sid, per_session[sid]))
    summary: dict = {"per_session": per_session, "train_sessions": list(train), "test_sessions": list(test),
                     "train_seconds": train_seconds, "rtf": seconds / max(duration, 1e-12),
                     "n_parameters": learner.n_parameters(model)}
    for kind, (refs, hyps) in pooled.items():
        if refs:
            m = error_rates(refs, hyps, separator)
            summary[f"per_{kind}"] = m["per"]
            if "wer" in m:
                summary[f"wer_{kind}"] = m["wer"]
    log.info(describe("pooled", summary))
    return summary
