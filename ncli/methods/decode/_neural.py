"""Shared pieces of the neural decoders (``decode --method gru|poyo|possm``).

They use the same splits as ridge and Kalman (:mod:`ncli.methods.harness`):
time-blocked K-fold per session (training windows lie inside the training
blocks, minus ``--lags`` bins on both sides of the test block) or a split by
sessions. Predictions come from one causal pass over the whole session
(inputs only: the model never sees a test bin's target), and the test
blocks' predictions are kept.

With ``--train-sessions/--test-sessions`` one model is trained on all usable
bins of the training sessions (multi-session, one unit vocabulary, one session
embedding each). Test sessions (which have no session embedding, and maybe
unseen units) need ``--finetune units`` (only the new unit and session
embeddings train, Azabou et al. 2023 §3.4) or ``--finetune full``;
fine-tuning is evaluated with blocked K-fold inside each test session.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ncli.core.errors import DataError, UsageError
from ncli.formats.store import Store
from ncli.formats.view import SessionView
from ncli.methods import harness
from ncli.methods.decode._base import BehaviourMethod, Request, load_session
from ncli.methods.registry import fields_of, option
from ncli.methods.results import Job

log = logging.getLogger("ncli")

#: parameters ncli 0.1.0 recorded for every neural decoder, with the values it recorded for a method that does
#: not take them; kept so the parameters (run-cache key, history, models/<label> config) stay the same
_RECORDED_DEFAULTS = {"backbone": "gru", "chunk": 0.05, "context": 1.0, "window": 64}

#: help of the options that several neural decoders declare (``decode --help`` shows one text per flag)
HIDDEN_HELP = "Network width: the recurrent state (gru, possm) or the tokens (poyo)."
LAYERS_HELP = "Layers: recurrent (gru, possm); poyo has layers + 1 self-attention layers."
N_LATENTS_HELP = "Latent queries: per chunk for possm (default 4), per context window for poyo (default 8)."


def spike_session(src: Store, sid: str, Y: np.ndarray | None = None, *, shared_units: bool = False,
                  counts: bool = False):
    """A :class:`~ncli.models.possm.SpikeSession` of ``sessions/<sid>`` of a store.

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
        No binned grid.
    """
    from ncli.models.possm import SpikeSession

    view = SessionView(src, sid)
    if not view.has("binned"):
        raise DataError(f"session '{sid}' has no binned grid", src.location)
    sp = view.spikes()
    keys = np.array(sp.ids if shared_units else [f"{sid}/{u}" for u in sp.ids], dtype=object)
    C = view.counts() if counts else None
    return SpikeSession(sid, keys, sp.times, sp.index, view.t_start, view.bin_size, view.n_bins, Y, C)


@dataclass
class NeuralConfig:
    """Options every neural decoder takes (training, adaptation, unit identity)."""

    steps: int = option(600, "Training steps.")
    lr: float = option(3e-3, "Peak learning rate.", positive=True)
    refit: bool = option(True, "Refit on all usable bins for models/ (else keep the last fold's model).",
                         secondary="--no-refit")
    finetune: Optional[str] = option(None, "Adapt to the test sessions: units (new unit/session embeddings only) "
                                     "or full.")
    finetune_steps: int = option(500, "Steps of --finetune.")
    shared_units: bool = option(False, "Units with the same id in different sessions are the same neuron "
                                "(one embedding).")

    def __post_init__(self):
        if self.finetune is not None and self.finetune not in ("units", "full"):
            raise UsageError(f"invalid value '{self.finetune}' for --finetune", "--finetune",
                             hint="choose units or full")
        for f in fields_of(type(self)):  # integer sizes and counts: > 0 (floats are checked by the registry)
            value = getattr(self, f.name)
            if isinstance(value, int) and not isinstance(value, bool) and value <= 0:
                raise UsageError(f"{f.flag} must be > 0, got {float(value):g}", f.flag)


class NeuralLearner:
    """The harness learner of a :class:`~ncli.models.possm.SequenceDecoder` (POSSM, POYO, GRU)."""

    def __init__(self, make, sessions: dict, *, finetune: str | None, finetune_steps: int):
        self.make, self.sessions = make, sessions
        self.finetune, self.finetune_steps = finetune, finetune_steps

    def fit(self, bins: dict, tag: str):
        return self.make().fit([self.sessions[s] for s in bins], dict(bins), log=_progress(tag))

    def adapt(self, base, sid: str, bins: np.ndarray, tag: str):
        return copy_decoder(base).fit([self.sessions[sid]], {sid: bins}, finetune=self.finetune,
                                      steps=self.finetune_steps, log=_progress(f"finetune {tag}"))

    def predict(self, model, sid: str, bins: np.ndarray) -> np.ndarray:
        return model.predict(self.sessions[sid])[bins]

    def n_parameters(self, model) -> int:
        return model.n_parameters()

    def fit_note(self, fitted_on: str) -> str:
        return f"trained on {fitted_on}"

    def check_sessions(self, sessions) -> None:
        """Nothing to check: the unit vocabulary maps every session's units."""


def _progress(tag: str):
    def cb(step, loss):
        log.debug("%s step %d loss %.4f", tag, step, loss)
    return cb


def copy_decoder(model):
    """An independent copy of a fitted decoder (same config and weights)."""
    clone = type(model)(**model.get_config())
    for k in model._fitted + model._learned + model._learned_scalars:
        v = getattr(model, k)
        setattr(clone, k, {a: b.copy() for a, b in v.items()} if isinstance(v, dict) else
                (v.copy() if isinstance(v, np.ndarray) else v))
    clone._net = None
    return clone


class NeuralMethod(BehaviourMethod):
    """A neural decoder evaluated by the harness; subclasses define :meth:`make_decoder`."""

    #: causal by construction (bins see only earlier spikes; tested bit for bit in tests/test_possm.py), but a
    #: session split needs --finetune, which trains on the test session, so the contract's "causal" check
    #: (train on one session, perturb the other) does not apply
    invariances = ("seed",)
    #: reads ``binned/counts`` (the GRU) rather than spike times
    reads_counts = False

    def make_decoder(self, seed: int, device: str):
        """A new unfitted decoder with this method's options."""
        raise NotImplementedError

    def params(self, req: Request, split: harness.Split) -> dict:
        """The parameters that identify the result (run cache, history, ``models/<label>`` config)."""
        c = dataclasses.asdict(self.config)
        recorded = {k: c.get(k, _RECORDED_DEFAULTS.get(k)) for k in
                    ("backbone", "hidden", "layers", "chunk", "context", "steps", "window", "lr", "finetune",
                     "finetune_steps", "shared_units")}
        return {"method": self.name, "target": req.target, "lags": req.lags, "folds": req.folds,
                "train_sessions": split.train, "test_sessions": split.test, "seed": req.seed, **recorded,
                "device": req.device, "n_latents": c.get("n_latents") or 0, "refit": c["refit"]}

    def check_spikes(self, sess, where: str) -> None:
        """Refuse a session without spike times (unless the method reads counts)."""
        if not self.reads_counts and sess.spike_times.size == 0:
            raise DataError(f"session '{sess.session_id}' has no spike times (units/spike_times is empty)", where,
                            hint="spike-token decoders need spike times; use --method gru on binned counts")

    def job(self, src: Store, req: Request) -> Job:
        name, colspec, split, used = self.prepare(src, req)
        c = self.config
        if req.by_session and c.finetune is None:
            raise UsageError(f"--method {self.name} has no embedding for sessions it was not trained on",
                             "--test-sessions", hint="pass --finetune units (or full) to adapt to the test sessions")
        params = self.params(req, split)
        data = {sid: load_session(src, sid, target=name, colspec=colspec, latents=None, sqrt=False, lags=0)[0]
                for sid in used}
        if c.finetune and not req.by_session:
            raise UsageError("--finetune needs --train-sessions and --test-sessions", "--finetune")
        sessions = {sid: spike_session(src, sid, data[sid].fit_values(), shared_units=c.shared_units,
                                       counts=self.reads_counts) for sid in used}
        for s in sessions.values():
            self.check_spikes(s, src.location)
        features = {"source": "binned/counts" if self.reads_counts else "units/spike_times",
                    "sqrt": self.reads_counts, "lags": req.lags, "shared_units": bool(c.shared_units)}
        split.adapt, split.adapt_steps, split.refit = c.finetune, c.finetune_steps, c.refit
        learner = NeuralLearner(lambda: self.make_decoder(req.seed, req.device), sessions, finetune=c.finetune,
                                finetune_steps=c.finetune_steps)
        return self.evaluate(name=name, split=split, data=data, learner=learner, features=features, params=params)
