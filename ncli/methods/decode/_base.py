"""Shared pieces of the ``decode`` methods: the common request, the target, the session checks, the linear learner.

:class:`DecodeMethod` is the base of every decode method; :class:`BehaviourMethod`
of those that decode a behaviour under ``binned/behavior`` (ridge, Kalman and
the neural decoders), all evaluated by :mod:`ncli.methods.harness`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ncli.core.errors import DataError, UsageError
from ncli.core.features import lag_features, sqrt_counts
from ncli.core.splits import contiguous_segments, session_split
from ncli.formats.store import Store
from ncli.formats.view import SessionView
from ncli.methods import harness
from ncli.methods.registry import Method
from ncli.methods.results import Job, write_summary

_TARGET = re.compile(r"^(?P<name>[^\[\]:]+?)(?:\[(?P<cols>[^\]]*)\])?$")


@dataclass
class Request:
    """The options every decode method gets (the command's common options).

    Attributes
    ----------
    store : str or None
        The STORE argument as given (None or '-': read from stdin).
    target : str
        ``--target``: ``NAME``, ``NAME[cols]`` or ``units/COLUMN``.
    lags, folds : int
    train_sessions, test_sessions : str or None
        Comma-separated session ids.
    seed : int
    device : str
    """

    store: str | None
    target: str
    lags: int = 0
    folds: int = 5
    train_sessions: str | None = None
    test_sessions: str | None = None
    seed: int = 0
    device: str = "cpu"

    @property
    def by_session(self) -> bool:
        """A split by sessions (``--train-sessions``/``--test-sessions``) rather than K-fold."""
        return self.train_sessions is not None or self.test_sessions is not None


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


def summary_line(method: str, target: str, metrics: dict, how: str, sid: str | None) -> str:
    """The line logged per session: ``decode ridge velocity [s0]: R² = 0.80 (x 0.81, y 0.79), 5 folds``."""
    parts = ", ".join(f"{c} {v:.2f}" for c, v in zip(metrics.get("columns", []), metrics["r2"]))
    where = f" [{sid}]" if sid else ""
    line = f"decode {method} {target}{where}: R² = {metrics['r2_mean']:.2f} ({parts}), {how}"
    if "circular_error_deg_mean" in metrics:
        line += f", circular error {metrics['circular_error_deg_mean']:.1f}°"
    return line


class DecodeMethod(Method):
    """A method of ``ncli decode``: checks its options, then makes the :class:`Job` that writes its result."""

    command = "decode"

    def check(self, req: Request) -> None:
        """Refuse bad option combinations before the store is read (default: nothing to check)."""

    def streams(self) -> bool:
        """True when this invocation decodes online (``--stream``) instead of writing a store."""
        return False

    def stream(self, src: Store, req: Request, out=None) -> dict:  # pragma: no cover - possm overrides
        raise NotImplementedError

    def job(self, src: Store, req: Request) -> Job:
        """Read what the method needs from ``src`` and return the result to write."""
        raise NotImplementedError


class BehaviourMethod(DecodeMethod):
    """A decoder of a behaviour (``binned/behavior/NAME``), evaluated by the harness.

    A subclass's :meth:`job` calls :meth:`prepare` (target, split, checks), reads
    its inputs (:func:`load_session`), wraps its estimator in a harness learner
    and returns :meth:`evaluate`.
    """

    def latents(self) -> str | None:
        """``--latents NAME`` when the method declares it and it is given, else None."""
        return getattr(self.config, "latents", None)

    def check(self, req: Request) -> None:
        parse_target(req.target)
        if req.lags < 0:
            raise UsageError(f"--lags must be >= 0, got {req.lags}", "--lags")

    def split(self, sessions: list[str], req: Request) -> harness.Split:
        """The split the request asks for (sessions checked against the store, folds >= 2 for K-fold)."""
        if req.by_session:
            train, test = session_split(sessions, (req.train_sessions or "").split(","),
                                        (req.test_sessions or "").split(","))
            return harness.Split("sessions", req.folds, req.lags, train=train, test=test)
        if req.folds < 2:
            raise UsageError(f"--folds must be at least 2, got {req.folds}", "--folds")
        return harness.Split("blocked_kfold", req.folds, req.lags, sessions=list(sessions))

    def prepare(self, src: Store, req: Request) -> tuple[str, list | None, harness.Split, list[str]]:
        """The target, the split and the sessions used, after checking each session has what is asked for.

        Raises
        ------
        UsageError
            Unknown target or latents, or lags too long for a session.
        """
        name, colspec = parse_target(req.target)
        split = self.split(src.sessions(), req)
        used = split.sessions or split.train + split.test
        latents = self.latents()
        for sid in used:
            view = SessionView(src, sid)
            names = view.behaviors()
            if name not in names:
                raise UsageError(f"unknown target '{name}'", f"session {sid}",
                                 hint=f"behaviours: {', '.join(names) or '(none)'}")
            n_bins = src.array(f"sessions/{sid}/binned/behavior/{name}").shape[0]
            if req.lags >= n_bins // 2:
                raise UsageError(f"--lags {req.lags} is too long for session {sid} ({n_bins} bins)", "--lags",
                                 hint="lags are counted in bins; use fewer than half the session")
            if latents and not src.is_array(f"sessions/{sid}/latents/{latents}"):
                avail = src.children(f"sessions/{sid}/latents")
                raise UsageError(f"unknown latents '{latents}'", f"session {sid}",
                                 hint=f"latents: {', '.join(avail) or '(none; run ncli embed or ncli align first)'}")
        return name, colspec, split, used

    def evaluate(self, *, name: str, split: harness.Split, data: dict, learner: Any, features: dict,
                 params: dict) -> Job:
        """The job that runs the harness with ``learner`` and writes the summary group."""
        method = self.name
        layout = harness.Layout(method, name, features,
                                lambda metrics, how, sid: summary_line(method, name, metrics, how, sid))

        def build(w) -> None:
            summary, n_params = harness.evaluate_regression(w, learner, data, split, layout)
            write_summary(w, f"models/{layout.label}", f"{method} decoder of {name}", params,
                          harness.summary_metrics(summary, n_params))

        return Job(params=params, build=build)


def load_session(src: Store, sid: str, *, target: str, colspec, latents: str | None, sqrt: bool,
                 lags: int, transform: Callable | None = None) -> tuple[harness.Behaviour, np.ndarray, int]:
    """One session's target and (lagged) features.

    ``transform(F) -> F'`` (optional) maps the (T, F) features before lagging
    (e.g. the population mean of :mod:`ncli.methods.decode.popmean`).

    Returns
    -------
    behaviour : harness.Behaviour
        Usable bins: valid, a finite target and a full, finite lag window.
    X : (T, F * (lags + 1)) float64
        Features: ``latents/NAME``, or binned counts (square-rooted when ``sqrt``, never dF/F).
    n_inputs : int
        ``F``, features before lagging.

    Raises
    ------
    DataError
        No binned counts, or features and target of different lengths.
    """
    view = SessionView(src, sid)
    t = view.target(target, colspec)
    T = t.Y.shape[0]
    valid = view.valid(T)
    if latents:
        F = view.latents(latents)
    else:
        view.require_counts(hint=False)
        F = view.counts()
        if sqrt and not view.calcium:
            F = sqrt_counts(F)
    if F.shape[0] != T:
        raise DataError(f"features have {F.shape[0]} bins but the target has {T}", f"session {sid}")
    if transform is not None:
        F = transform(F)
    X, usable = lag_features(F, lags, valid)
    usable &= np.all(np.isfinite(t.Y), axis=1)
    return harness.Behaviour(t.Y, usable, t.columns, t.circular, t.unit), X, F.shape[1]


class LinearLearner:
    """The harness learner of estimators fit on lagged features: ``fit(X, Y, segments)``, ``predict(X, segments)``.

    Several sessions are stacked in order, with segment labels that never join
    two sessions (a Kalman filter restarts at every segment).
    """

    def __init__(self, make_model: Callable, X: dict, Y: dict, n_inputs: dict):
        self.make_model, self.X, self.Y, self.n_inputs = make_model, X, Y, n_inputs

    def fit(self, bins: dict, tag: str):
        Xs, Ys, segs, offset = [], [], [], 0
        for sid, idx in bins.items():
            Xs.append(self.X[sid][idx])
            Ys.append(self.Y[sid][idx])
            seg = contiguous_segments(idx) + offset
            segs.append(seg)
            offset = int(seg.max()) + 1
        return self.make_model().fit(np.vstack(Xs), np.vstack(Ys), segments=np.concatenate(segs))

    def predict(self, model, sid: str, bins: np.ndarray) -> np.ndarray:
        return model.predict(self.X[sid][bins], segments=contiguous_segments(bins))

    def adapt(self, base, sid, bins, tag):  # pragma: no cover - linear decoders are not adapted
        raise NotImplementedError

    def n_parameters(self, model) -> None:
        return None

    def fit_note(self, fitted_on: str) -> str:
        return "refit on all usable bins"

    def check_sessions(self, sessions) -> None:
        if len({self.X[s].shape[1] for s in sessions}) > 1:
            detail = ", ".join(f"{s}: {self.n_inputs[s]}" for s in sessions)
            raise UsageError(f"training and test sessions have different feature dimensions ({detail})",
                             "--train-sessions/--test-sessions",
                             hint="decode from shared latents (--latents NAME) with the same dimension")


class LinearMethod(BehaviourMethod):
    """Ridge and Kalman: an estimator on lagged counts or latents (``--latents``, ``--sqrt``)."""

    def make_model(self):
        """A new unfitted estimator with this method's options."""
        raise NotImplementedError

    def transform(self, F: np.ndarray) -> np.ndarray:
        """Features (T, F) -> the estimator's inputs before lagging (default: unchanged)."""
        return F

    def feature_source(self) -> str:
        """What the features are, recorded in the ``features`` attribute of the result."""
        latents = getattr(self.config, "latents", None)
        return f"latents/{latents}" if latents else "binned/counts"

    def params(self, req: Request, split: harness.Split) -> dict:
        """The parameters that identify the result (run cache, history, ``models/<label>`` config)."""
        c = self.config
        return {"method": self.name, "target": req.target, "latents": getattr(c, "latents", None), "lags": req.lags,
                "folds": req.folds, "train_sessions": split.train, "test_sessions": split.test,
                "alpha": self.alpha_param(), "derivative": getattr(c, "derivative", None), "sqrt": c.sqrt,
                "seed": req.seed}

    def alpha_param(self):
        """The ridge penalty grid recorded in the parameters (None for other methods)."""
        return None

    def job(self, src: Store, req: Request) -> Job:
        name, colspec, split, used = self.prepare(src, req)
        c = self.config
        latents = getattr(c, "latents", None)
        data, X, n_inputs = {}, {}, {}
        for sid in used:
            data[sid], X[sid], n_inputs[sid] = load_session(src, sid, target=name, colspec=colspec,
                                                            latents=latents, sqrt=c.sqrt, lags=req.lags,
                                                            transform=self.transform)
        for sid, d in data.items():
            if d.usable.sum() < 3:
                raise DataError(f"session '{sid}' has only {int(d.usable.sum())} usable bins "
                                f"(valid, finite target, full lag window)", src.location)
        features = {"source": self.feature_source(), "sqrt": bool(c.sqrt and not latents), "lags": req.lags}
        learner = LinearLearner(self.make_model, X, {s: d.fit_values() for s, d in data.items()}, n_inputs)
        return self.evaluate(name=name, split=split, data=data, learner=learner, features=features,
                             params=self.params(req, split))
