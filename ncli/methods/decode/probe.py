"""``decode --target units/COLUMN``: a logistic-regression probe of a unit label from per-neuron embeddings.

Chosen automatically when the target starts with ``units/`` (the command's
``resolve`` hook); ``--neurons NAME`` picks the embedding ``neurons/NAME``
(default: the only per-neuron embedding in the nearest layer that has one).
Evaluated by the harness's classification task
(:func:`ncli.methods.harness.evaluate_units`): leave-one-session-out with two
or more sessions, else stratified K-fold over units (``--folds``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ncli.core.errors import UsageError
from ncli.formats.store import Store
from ncli.methods import harness
from ncli.methods.decode._base import DecodeMethod, Request
from ncli.methods.registry import Example, option, register
from ncli.methods.results import Job, write_neurons, write_summary

log = logging.getLogger("ncli")


@dataclass
class ProbeConfig:
    neurons: Optional[str] = option(None, "--target units/COLUMN: probe the per-neuron embeddings neurons/NAME "
                                    "(default: the only one in the nearest layer).")


def default_neurons(src: Store, sessions: list[str]) -> str:
    """The per-neuron embedding to probe: the only one in the nearest layer that has any.

    Raises
    ------
    UsageError
        Several embeddings in that layer, or none in the store.
    """
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


@register
class Probe(DecodeMethod):
    """Logistic-regression probe of a per-unit label (``--target units/COLUMN``)."""

    name = "probe"
    summary = "logistic-regression probe of a unit label, with --target units/COLUMN"
    Config = ProbeConfig
    example = Example(setup=(("simulate", "nuclr", "--sessions", "2", "--duration", "30", "--min-units", "12",
                              "--max-units", "14"),
                             ("embed", "{setup0}", "--method", "features")),
                      args=("--target", "units/area", "--folds", "2"))

    def job(self, src: Store, req: Request) -> Job:
        if not req.target.startswith("units/"):
            raise UsageError("--method probe needs --target units/COLUMN", "--target", hint="e.g. --target units/area")
        column = req.target[len("units/"):]
        if not column or "/" in column:
            raise UsageError(f"invalid --target 'units/{column}'", "--target", hint="e.g. --target units/area")
        sessions = src.sessions()
        name = self.config.neurons or default_neurons(src, sessions)
        used = [sid for sid in sessions if src.is_array(f"sessions/{sid}/neurons/{name}")]
        if not used:
            raise UsageError(f"unknown neurons '{name}'", src.location, hint="run ncli embed --method nuclr first")
        for sid in used:
            if not src.is_array(f"sessions/{sid}/units/{column}"):
                raise UsageError(f"unknown unit column '{column}'", f"session {sid}",
                                 hint=f"columns: {', '.join(src.children(f'sessions/{sid}/units'))}")
        if len(used) == 1 and req.folds < 2:
            raise UsageError(f"--folds must be at least 2, got {req.folds}", "--folds")
        X = [np.asarray(src.read(f"sessions/{sid}/neurons/{name}"), dtype=np.float64) for sid in used]
        raw = [np.asarray(src.read(f"sessions/{sid}/units/{column}")) for sid in used]
        y = [np.array([str(v) for v in values.tolist()]) for values in raw]
        for sid, xs, ys in zip(used, X, y):
            if ys.shape != (xs.shape[0],):  # e.g. units/spike_times: a flat array over all spikes, not a label
                raise UsageError(f"units/{column} is not a per-unit label ({ys.shape[0]} rows for {xs.shape[0]} "
                                 f"units)", f"session {sid}", hint="e.g. --target units/area")
        for sid, values in zip(used, raw):  # e.g. units/amplitude, units/isi_violations_ratio: measurements
            finite = values[np.isfinite(values)] if values.dtype.kind == "f" else None
            if finite is not None and finite.size and np.any(finite != np.round(finite)):
                raise UsageError(f"units/{column} holds continuous values, not a per-unit label",
                                 f"session {sid}", hint="probe a label column, e.g. --target units/area "
                                 "or units/quality")
        label = f"probe_{column}_{name}"
        params = {"target": f"units/{column}", "neurons": name, "folds": req.folds, "seed": req.seed}

        def build(w) -> None:
            preds, metrics = harness.evaluate_units(X, y, folds=req.folds, seed=req.seed)
            metrics["per_session"] = {used[i]: v for i, v in metrics["per_session"].items()}
            metrics["sessions"] = used
            for sid, p in zip(used, preds):
                write_neurons(w, sid, label, p, {"kind": "probe", "target": f"units/{column}", "neurons": name,
                                                 "model": f"models/{label}", "metrics": metrics})
            write_summary(w, f"models/{label}", "logistic-regression probe of a unit label", params, metrics)
            how = ("leave-one-session-out" if metrics["evaluation"] == "leave_one_session_out" else
                   f"{metrics['folds']}-fold cross-validation over units (one session: leave-one-session-out "
                   "is impossible)")
            log.info(f"decode probe units/{column} from neurons/{name}: balanced accuracy "
                     f"{metrics['balanced_accuracy']:.3f} (chance {metrics['chance']:.3f}), macro-F1 "
                     f"{metrics['macro_f1']:.3f}, {metrics['n_units']} units, {how}; RankMe "
                     f"{metrics['rankme']:.1f} of {metrics['embedding_dim']}")

        return Job(params=params, build=build)
