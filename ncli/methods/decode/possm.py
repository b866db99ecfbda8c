"""``decode --method possm``: POSSM, the causal real-time spike decoder (:class:`ncli.models.possm.POSSMDecoder`).

Spikes cut into ``--chunk`` chunks are tokens (unit embedding, rotary time)
cross-attended by ``--n-latents`` queries; a recurrent backbone (``--backbone
gru|s4d``) runs over the chunks; an output query per bin reads the last states
(Ryoo et al., NeurIPS 2025).

``--stream`` decodes online with a model a previous ``decode --method possm``
wrote into the store: spikes are fed chunk by chunk (the store's session
replayed, or NDJSON spike events from a file or stdin, :mod:`ncli.formats.events`)
through the chunk clock of :mod:`ncli.core.online`; predictions go to stdout as
NDJSON lines as they are made, latency p50/p99 to stderr. No store is written.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ncli.core.errors import UsageError
from ncli.core.online import latency_stats, run_chunks
from ncli.formats.events import open_events, prediction_record, read_spike_events, write_record
from ncli.formats.store import Store
from ncli.methods.decode._base import Request, parse_target
from ncli.methods.decode._neural import (HIDDEN_HELP, LAYERS_HELP, N_LATENTS_HELP, NeuralConfig, NeuralMethod,
                                         spike_session)
from ncli.methods.registry import Example, option, register
from ncli.models.possm import POSSMDecoder

log = logging.getLogger("ncli")


@dataclass
class POSSMConfig(NeuralConfig):
    backbone: str = option("gru", "Recurrent backbone: gru or s4d.")
    hidden: int = option(64, HIDDEN_HELP)
    layers: int = option(1, LAYERS_HELP)
    window: int = option(64, "Training window (bins).")
    chunk: float = option(0.05, "Chunk length (s); the bin width must be a whole multiple of it.", positive=True)
    n_latents: Optional[int] = option(None, N_LATENTS_HELP, show_default=False)
    stream: bool = option(False, "Decode online with the model in STORE; NDJSON predictions on stdout.")
    session: Optional[str] = option(None, "--stream: the session.", requires="stream")
    spikes: Optional[str] = option(None, "--stream: NDJSON spike events from FILE or - (stdin) instead of "
                                   "replaying the store.", requires="stream")
    realtime: bool = option(False, "--stream: replay at the recording's pace.", requires="stream")


@register
class POSSM(NeuralMethod):
    """POSSM decoder on spike times, trained in windows, run chunk by chunk (also online)."""

    name = "possm"
    summary = "causal chunked spike-token decoder with a recurrent backbone, also online"
    Config = POSSMConfig
    estimator = POSSMDecoder
    example = Example(setup=(("simulate", "reach", "--units", "12", "--duration", "30"),),
                      args=("--target", "velocity", "--steps", "5", "--folds", "2", "--hidden", "16", "--no-refit"))

    def make_decoder(self, seed: int, device: str):
        c = self.config
        return POSSMDecoder(chunk=c.chunk, backbone=c.backbone, hidden=c.hidden, layers=c.layers, window=c.window,
                            n_latents=c.n_latents or 4, steps=c.steps, seed=seed, device=device, lr=c.lr)

    def check(self, req: Request) -> None:
        super().check(req)
        if self.config.spikes == "-" and req.store in (None, "-"):
            raise UsageError("with --spikes - the store must be named as an argument (stdin carries the spikes)",
                             "STORE")

    def streams(self) -> bool:
        return bool(self.config.stream)

    def stream(self, src: Store, req: Request, out=None) -> dict:
        """``decode --stream``: online POSSM decoding; NDJSON predictions on ``out`` (stdout), latency on stderr.

        Returns
        -------
        dict
            ``{"n_chunks", "n_predictions", "latency_ms_p50", "latency_ms_p99", "latency_ms_max"}``.

        Raises
        ------
        UsageError
            No fitted model in the store, or an unknown session.
        DataError
            Malformed spike events.
        """
        name, _ = parse_target(req.target)
        session, spikes, realtime = self.config.session, self.config.spikes, self.config.realtime
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
            source, where = open_events(spikes)
            events = read_spike_events(source, {u: i for i, u in enumerate(ids)}, session, t0, where)
            t_end = None

        def emit(j, end, y):
            write_record(out, prediction_record(session, (j + 1) // r - 1, end, columns, y))

        run = run_chunks(events, streamer.push, emit, t0=t0, chunk=chunk, t_end=t_end, realtime=realtime,
                         chunks_per_output=r)
        res = {"n_chunks": run.n_chunks, "n_predictions": run.n_chunks // r, **latency_stats(run.latencies_ms)}
        if run.n_chunks:
            log.info(f"decode possm --stream [{session}]: {res['n_predictions']} predictions from {run.n_chunks} "
                     f"chunks of {chunk * 1e3:g} ms; latency per chunk p50 {res['latency_ms_p50']:.2f} ms, "
                     f"p99 {res['latency_ms_p99']:.2f} ms")
        return res
