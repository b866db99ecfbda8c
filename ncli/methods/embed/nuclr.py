"""``ncli embed --method nuclr``: per-neuron identity embeddings learned from population context.

One :class:`ncli.models.nuclr.NuCLR` is trained on every session of the input
(and of the ``--train-with`` stores), or loaded from ``--model STORE`` for
zero-shot embedding; each unit's embedding is the mean of its representation
over the non-overlapping windows of its session. Writes
``sessions/<sid>/neurons/nuclr`` (N, K) and ``models/nuclr``.
Reference: NuCLR, "Know Thyself by Knowing Others: Learning Neuron Identity
from Population Context", NeurIPS 2025.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ncli.core.errors import DataError, UsageError
from ncli.formats.store import Store, StoreWriter
from ncli.formats.view import SessionView
from ncli.methods.embed._base import EmbedMethod, EmbedRun
from ncli.methods.registry import Example, option, register
from ncli.methods.results import Job, write_model, write_neurons

log = logging.getLogger("ncli")


@dataclass
class NuclrConfig:
    """Options of ``--method nuclr`` (the other NuCLR hyperparameters keep the class defaults)."""

    dim: int = option(64, "Embedding width K.", param="d_model")
    model: Optional[str] = option(None, "Embed zero-shot with the model in models/nuclr of this store "
                                  "(no training).", metavar="STORE")
    steps: int = option(2500, "Training steps.", minimum=1)
    batch_size: int = option(8, "Window pairs per training step.")
    train_with: list[str] = option(None, "A further store whose sessions join the training set (repeatable); "
                                   "only STORE's sessions are embedded.", factory=list, metavar="STORE")


@register
class Nuclr(EmbedMethod):
    """NuCLR per-neuron embeddings (trained here, or zero-shot with ``--model``)."""

    name = "nuclr"
    estimator = "ncli.models.nuclr:NuCLR"
    summary = "per neuron, contrastive identity from population context"
    Config = NuclrConfig
    example = Example(setup=(("simulate", "nuclr", "--sessions", "2", "--duration", "20", "--min-units", "8",
                              "--max-units", "10"),),
                      args=("--steps", "3", "--dim", "16", "--batch-size", "2"))

    def job(self, run: EmbedRun) -> Job:
        """Check the options, load or configure the model, open the ``--train-with`` stores.

        Raises
        ------
        UsageError
            ``--dim``/``--steps``/``--batch-size``/``--train-with`` with ``--model``; a ``--model``
            store without ``models/nuclr``; an unavailable ``--device``; a ``--train-with`` refused by
            :func:`ncli.commands._io.open_inputs`.
        DataError
            (when written) a session shorter than one window, or without spikes and counts.
        """
        from ncli.models.nuclr import NuCLR

        cfg, src = self.config, run.src
        mstore = mgroup = None
        if cfg.model is not None:
            if "dim" in run.given:
                raise UsageError("--dim cannot be combined with --model (the saved model fixes it)", "--dim")
            for name, flag in (("steps", "--steps"), ("batch_size", "--batch-size"), ("train_with", "--train-with")):
                if name in run.given:
                    raise UsageError(f"{flag} cannot be combined with --model (no training)", flag)
            mstore = run.open_store(cfg.model)
            if not mstore.exists("models/nuclr"):
                raise UsageError("no models/nuclr in the --model store", mstore.location,
                                 hint="train first: ncli embed STORE --method nuclr")
            mgroup = find_group(mstore, "models/nuclr")
            net = NuCLR.from_group(mgroup)
            net.device = run.device
        else:
            net = NuCLR(d_model=cfg.dim, proj_dim=cfg.dim, steps=cfg.steps, batch_size=cfg.batch_size,
                        seed=run.seed, device=run.device)
            net._check_params()
        net._torch_device()  # an unavailable --device is a usage error before any data is read
        others = run.open_stores(cfg.train_with, option="--train-with", input=src,
                                 why="they would be trained on twice")
        params = {"method": self.name, "dim": net.d_model, "steps": net.steps, "batch_size": net.batch_size,
                  "seed": run.seed, "model": mstore.id if mstore is not None else None,
                  "train_with": [o.id for o in others]}
        reads = others + ([mstore] if mstore is not None else [])  # stores read besides the input
        return Job(params, lambda w: _build(w, net, run.sessions, src, others, mstore, mgroup),
                   inputs=[st.location for st in (src, *reads)],
                   identity=[x for st in (src, *reads) for x in (st.id, st.location)],
                   protect=[layer.location for st in reads for layer in st.layers])


def session_counts(net, st: Store) -> dict:
    """``{sid: (counts (T, N) float32, source)}`` of every session of ``st`` at the model's bin size.

    Raises
    ------
    DataError
        A session shorter than one NuCLR window.
    """
    out = {sid: SessionView(st, sid).unit_counts(net.bin_size) for sid in st.sessions()}
    for sid, (C, _) in out.items():
        if C.shape[0] < net.window_bins:
            raise DataError(f"session '{sid}' is {C.shape[0] * net.bin_size:g} s long, shorter than one "
                            f"NuCLR window ({net.window_bins * net.bin_size:g} s)", st.location,
                            hint="NuCLR needs sessions of at least one window; "
                                 "--method features takes short ones")
    return out


def _build(w: StoreWriter, net, sessions: list, src: Store, others: list, mstore, mgroup) -> None:
    """Train (unless zero-shot), embed the input's sessions, write neurons/nuclr and models/nuclr."""
    from ncli.models.nuclr import rankme, retrieval_top1

    data = session_counts(net, src)
    if mstore is None:
        train = [C for C, _ in data.values()]
        for other in others:
            train += [C for C, _ in session_counts(net, other).values()]
        log.info("nuclr: training on %d session(s), %d steps", len(train), net.steps)
        net.fit(train)
    summary = {}
    for sid in sessions:
        C, source = data[sid]
        H, starts = net.transform_windows(C)
        write_neurons(w, sid, "nuclr", H.mean(0).astype(np.float32),
                      attrs={"method": "nuclr", "model": "models/nuclr", "source": source,
                             "n_windows": int(len(starts)), "zero_shot": mstore is not None,
                             "bin_size_s": net.bin_size})
        summary[sid] = {"n_windows": int(len(starts)), "n_units": int(C.shape[1]), "rankme": rankme(H.mean(0))}
        if len(starts) >= 2:  # same-unit retrieval: two windows, and the two halves of the session
            half = len(starts) // 2
            summary[sid]["retrieval_top1_window"] = retrieval_top1(H[0], H[1])
            summary[sid]["retrieval_top1_halves"] = retrieval_top1(H[:half].mean(0), H[half:].mean(0))
            log.info("nuclr %s: same-unit retrieval top-1 %.2f (two windows), %.2f (two halves), "
                     "RankMe %.1f", sid, summary[sid]["retrieval_top1_window"],
                     summary[sid]["retrieval_top1_halves"], summary[sid]["rankme"])
    metrics = {"sessions": summary, "windows_per_s": net.windows_per_s_,
               "final_loss": float(np.mean(net.loss_history_[-20:]))}
    if mstore is None:
        extra = {"sessions_trained": sessions,
                 "trained_with": [{"store": o.location, "sessions": o.sessions()} for o in others],
                 "loaded_from": None}
    else:  # zero-shot: the loaded model's training provenance is carried over
        saved = dict(mgroup.attrs)
        extra = {"sessions_trained": saved.get("sessions_trained"), "trained_with": saved.get("trained_with", []),
                 "loaded_from": mstore.location}
    write_model(w, "models/nuclr", net, metrics=metrics, extra=extra)


def find_group(store: Store, path: str):
    """The group ``path`` from the nearest layer of ``store`` that has it.

    Raises
    ------
    DataError
        No layer holds it.
    """
    for layer in store.layers:
        if path in layer.group:
            return layer.group[path]
    raise DataError(f"no {path} in {store.location}")
