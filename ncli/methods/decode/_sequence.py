"""Shared pieces of the sequence decoders (``decode --method tmt|gru-ctc --target trials/COLUMN``).

A sequence target is a trials-table column of space-separated tokens whose
attributes declare ``{"sequence": true, "vocabulary": [...]}`` (docs/store.md;
class id ``i + 1`` is ``vocabulary[i]``, 0 is the CTC blank). The inputs of a
trial are the session's binned features (``binned/counts``: e.g. threshold
crossings and spike-band power) of the bins whose centres lie in
``[start_time, stop_time)``, z-scored per session with that session's own
statistics over its trials (inputs only, no labels: the per-block normalisation
of Willett et al. 2023). Evaluation: :func:`ncli.methods.harness.evaluate_sequences`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from ncli.core.errors import DataError, UsageError
from ncli.core.sequences import encode, separator_of
from ncli.core.splits import session_split
from ncli.formats.store import Store
from ncli.formats.view import SessionView
from ncli.methods import harness
from ncli.methods.decode._base import DecodeMethod, Request
from ncli.methods.registry import option
from ncli.methods.results import Job, write_summary

log = logging.getLogger("ncli")


def sequence_column(target: str) -> str:
    """``trials/COLUMN`` -> ``COLUMN``.

    Raises
    ------
    UsageError
        Not a ``trials/COLUMN`` target.
    """
    column = target[len("trials/"):] if target.startswith("trials/") else ""
    if not column or "/" in column:
        raise UsageError(f"invalid sequence target '{target}'", "--target", hint="e.g. --target trials/phonemes")
    return column


def read_vocabulary(src: Store, sessions: list[str], column: str) -> list[str]:
    """The column's vocabulary (attrs ``vocabulary``), the same in every session that declares one.

    Without the attribute in any session, the sorted set of the tokens of every
    session, with a warning (a token outside a declared vocabulary is refused
    when the trials are read).

    Raises
    ------
    UsageError
        The column is missing or holds no strings.
    DataError
        Sessions with different vocabularies.
    """
    declared, tokens = None, set()
    for sid in sessions:
        path = f"sessions/{sid}/trials/{column}"
        if not src.is_array(path):
            cols = src.children(f"sessions/{sid}/trials") if src.exists(f"sessions/{sid}/trials") else []
            raise UsageError(f"unknown trials column '{column}'", f"session {sid}",
                             hint=f"columns: {', '.join(cols) or '(no trials table)'}")
        attrs = src.attrs(path)
        values = np.asarray(src.read(path))
        if values.dtype.kind not in ("U", "O", "T"):
            raise UsageError(f"trials/{column} holds numbers, not token sequences", f"session {sid}",
                             hint="a sequence column holds space-separated tokens, e.g. 'HH AH L OW'")
        if attrs.get("vocabulary"):
            v = [str(t) for t in attrs["vocabulary"]]
            if declared is not None and v != declared:
                raise DataError(f"trials/{column} has another vocabulary in session {sid}", src.location,
                                hint="every session must list the same tokens in the same order")
            declared = v
        else:
            tokens |= {t for s in values.tolist() for t in str(s).split()}
    if declared is not None:
        return declared
    vocab = sorted(tokens)
    log.warning("trials/%s has no 'vocabulary' attribute; using its %d distinct tokens in sorted order",
                column, len(vocab))
    return vocab


def load_trials(src: Store, sid: str, column: str, vocabulary: list[str]) -> harness.SequenceTrials:
    """One session's per-trial features (z-scored per session) and reference sequences.

    Raises
    ------
    DataError
        No binned features, or a trial with no bins.
    """
    view = SessionView(src, sid)
    view.require_counts(hint=False)
    F = view.counts(np.float64)
    table = view.table("trials")
    start, stop = np.asarray(table["start_time"], float), np.asarray(table["stop_time"], float)
    centres = view.t_start + (np.arange(F.shape[0]) + 0.5) * view.bin_size
    lo, hi = np.searchsorted(centres, start), np.searchsorted(centres, stop)
    empty = np.flatnonzero(hi <= lo)
    if empty.size:
        raise DataError(f"trial {int(empty[0])} of session {sid} has no bins", src.location,
                        hint="trials/start_time and stop_time must span at least one bin")
    inside = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)])
    mu, sd = F[inside].mean(axis=0), F[inside].std(axis=0)
    Z = ((F - mu) / np.where(sd > 0, sd, 1.0)).astype(np.float32)
    refs = [str(s) for s in np.asarray(src.read(f"sessions/{sid}/trials/{column}")).tolist()]
    labels = [encode(r, vocabulary, f"session {sid}, trial {i}") for i, r in enumerate(refs)]
    return harness.SequenceTrials([Z[a:b] for a, b in zip(lo, hi)], refs, labels, stop - start)


@dataclass
class SequenceConfig:
    """Options every sequence decoder takes."""

    steps: int = option(600, "Training steps.", minimum=1)
    batch: int = option(16, "Trials per training step.", minimum=1)
    lr: float = option(2e-3, "Peak learning rate (AdamW, warm-up then cosine decay).", positive=True)
    smooth: float = option(2.0, "Gaussian input smoothing (standard deviation, bins; 0: none).", minimum=0.0)
    causal: bool = option(True, "Causal input smoothing (past bins only); --no-causal smooths symmetrically.",
                          secondary="--no-causal")
    noise: float = option(0.5, "White-noise standard deviation added in training (z-scored units).", minimum=0.0)
    offset_noise: float = option(0.2, "Per-channel offset standard deviation added in training.", minimum=0.0)


class SequenceLearner:
    """The harness learner of a :class:`~ncli.models.tmt._CTCDecoder` on per-trial data."""

    def __init__(self, make, data: dict, *, adapt: dict | None = None):
        self.make, self.data, self.adapt_options = make, data, adapt

    def fit(self, trials: dict, tag: str):
        """A new decoder trained on ``trials`` (session id -> trial indices), one input layer per session."""
        X, Y, D = [], [], []
        for sid, idx in trials.items():
            X += [self.data[sid].X[i] for i in idx]
            Y += [self.data[sid].labels[i] for i in idx]
            D += [sid] * len(idx)
        return self.make().fit(X, Y, D, log=lambda step, loss: log.debug("%s step %d loss %.4f", tag, step, loss))

    def decode(self, model, sid: str, idx, adapt: bool):
        """Decoded class ids of trials ``idx`` of ``sid`` (adapting as it goes when asked) and the decode seconds.

        With adaptation the seconds count the decoding only, not the adaptation steps.
        """
        X = [self.data[sid].X[i] for i in idx]
        t0 = time.perf_counter()
        if adapt and self.adapt_options is not None:
            timings: list = []
            ids = model.adapt(X, [sid] * len(X), timings=timings, **self.adapt_options)
            return ids, float(sum(t[0] for t in timings))
        ids = model.predict(X, [sid] * len(X))
        return ids, time.perf_counter() - t0

    def n_parameters(self, model) -> int:
        """Trainable parameters of ``model``."""
        return model.n_parameters()


class SequenceMethod(DecodeMethod):
    """A CTC decoder of a per-trial label sequence (``--target trials/COLUMN``)."""

    #: the harness task (``decode``'s ``_resolve`` sends ``--target trials/...`` only to these methods)
    task = "sequence"
    invariances = ("seed",)

    def make_decoder(self, seed: int, device: str, n_classes: int):
        """A new unfitted decoder with this method's options."""
        raise NotImplementedError

    def adapt_options(self) -> dict | None:
        """Options of test-time adaptation when asked for (default: none)."""
        return None

    def check(self, req: Request) -> None:
        sequence_column(req.target)
        if req.lags:
            raise UsageError(f"--lags does not apply to --method {self.name}", "--lags",
                             hint="a sequence decoder reads whole trials")

    def params(self, req: Request, train: list, test: list) -> dict:
        """The parameters that identify the result."""
        import dataclasses

        return {"method": self.name, "target": req.target, "folds": req.folds, "train_sessions": train,
                "test_sessions": test, "seed": req.seed, "device": req.device, **dataclasses.asdict(self.config)}

    def job(self, src: Store, req: Request) -> Job:
        column = sequence_column(req.target)
        sessions = src.sessions()
        if req.by_session:
            train, test = session_split(sessions, (req.train_sessions or "").split(","),
                                        (req.test_sessions or "").split(","))
        else:
            train, test = list(sessions), []
            if req.folds < 2:
                raise UsageError(f"--folds must be at least 2 without a session split, got {req.folds}", "--folds",
                                 hint="the last 1/K of each session's trials are held out")
        vocab = read_vocabulary(src, train + test, column)
        data = {sid: load_trials(src, sid, column, vocab) for sid in train + test}
        n_fit = sum(len(d.X) - harness.held_in_trials(len(d.X), req.folds).size for s, d in data.items() if s in train)
        if n_fit < 1:
            raise DataError("no training trials left", src.location, hint="use more trials or a larger --folds")
        separator = separator_of(vocab)
        label = f"{self.name}_{column}"
        params = self.params(req, train, test)
        learner = SequenceLearner(lambda: self.make_decoder(req.seed, req.device, len(vocab)), data,
                                  adapt=self.adapt_options())
        attrs = {"method": self.name, "target": req.target, "vocabulary": vocab, "separator": separator,
                 "features": {"source": "binned/counts", "zscore": "per session, over its trials"}}

        def describe(sid: str, m: dict) -> str:
            if sid == "pooled":
                parts = [f"{k.replace('_', ' ')} {100 * m[k]:.1f} %" for k in
                         ("per_held_in", "per_held_out", "wer_held_in", "wer_held_out") if k in m]
                return f"decode {self.name} {req.target}: {', '.join(parts)}, real-time factor {m['rtf']:.4f}"
            wer = f", WER {100 * m['wer']:.1f} %" if "wer" in m else ""
            return (f"decode {self.name} {req.target} [{sid}, {m['kind'].replace('_', '-')}]: PER "
                    f"{100 * m['per']:.1f} %{wer} ({m['n_trials']} trials)")

        def build(w) -> None:
            summary = harness.evaluate_sequences(w, learner, data, train=train, test=test, folds=req.folds,
                                                 label=label, vocabulary=vocab, separator=separator, attrs=attrs,
                                                 describe=describe)
            write_summary(w, f"models/{label}", f"{self.name} CTC decoder of trials/{column}", params, summary)

        return Job(params=params, build=build)
