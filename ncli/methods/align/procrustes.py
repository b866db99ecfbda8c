"""``ncli align --method procrustes``: the FA + stable rows + orthonormal-map stabiliser (Degenhart et al. 2020).

Every session must record the same channels (electrodes of one array, in the
same order: ``units/id`` equal). The reference session (``--reference``,
default the first) gets a ``--dim``-factor FA model; every other session its
own FA model, whose loadings are rotated onto the reference's through the
``--stable`` channels whose loading rows agree best
(:class:`ncli.models.stabilizer.FAStabilizer`). Writes
``sessions/<sid>/latents/procrustes`` (T, dim) float32, the FA posterior means
in the reference's latent space (NaN rows for invalid bins), and
``models/procrustes`` (means, rotated loadings, noise variances, rotations,
alignment channels per session, in the order of ``attrs.sessions``). A decoder
fitted on the reference's latents applies to every session unchanged:

    ncli align day.zarr --method procrustes | \
        ncli decode --method ridge --latents procrustes --target velocity \
            --train-sessions day0 --test-sessions day1,day2
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np

from ncli.core.errors import DataError, UsageError
from ncli.formats.store import StoreWriter
from ncli.formats.view import SessionView
from ncli.methods.align._base import AlignMethod, AlignRun
from ncli.methods.registry import Example, option, register
from ncli.methods.results import Job, write_latents, write_model

log = logging.getLogger("ncli")


@dataclass
class ProcrustesConfig:
    """Options of ``--method procrustes``."""

    reference: str = option("", "Reference session (default: the first recorded: convert's input order).",
                            show_default=False)
    dim: int = option(10, "FA latent dimension (the paper used 10).", minimum=1, param="n_latents")
    stable: int = option(0, "Alignment channels kept (0: 70 % of the channels).", minimum=0, param="n_stable")
    sqrt: bool = option(False, "Square-root transform the counts first (the paper uses raw counts).",
                        secondary="--no-sqrt")


def recording_order(src, sessions: list[str]) -> list[str]:
    """``sessions`` in the order they were converted (the ``sessions`` of the earliest history entry that
    lists them: convert's inputs, simulate's days), the rest in natural order (``day2`` before ``day10``)."""
    def natural(s: str):
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]

    listed: list[str] = []
    for entry in src.history:
        got = (entry.get("params") or {}).get("sessions")
        if isinstance(got, list) and any(s in got for s in sessions):
            listed = [str(s) for s in got]
            break
    first = [s for s in listed if s in sessions]
    return first + sorted((s for s in sessions if s not in first), key=natural)


def reference_order(sessions: list[str], reference: str, where: str, src=None) -> list[str]:
    """``sessions`` with ``reference`` first (default: the first recorded, see :func:`recording_order`).

    Raises
    ------
    UsageError
        An unknown reference, or fewer than 2 sessions.
    """
    if len(sessions) < 2:
        raise UsageError(f"align needs at least 2 sessions, the store has {len(sessions)}", where,
                         hint="convert several recordings into one store, or ncli merge A B -o OUT")
    if src is not None:
        sessions = recording_order(src, sessions)
    ref = reference or sessions[0]
    if ref not in sessions:
        raise UsageError(f"unknown reference session '{ref}'", "--reference",
                         hint=f"sessions: {', '.join(sessions)}")
    return [ref] + [s for s in sessions if s != ref]


def same_channels(src, sessions: list[str]) -> np.ndarray:
    """The channel ids every session shares, in order.

    Raises
    ------
    DataError
        Sessions with different channel ids (count or order).
    """
    ref = np.array([str(u) for u in src.read(f"sessions/{sessions[0]}/units/id").tolist()])
    for sid in sessions[1:]:
        ids = np.array([str(u) for u in src.read(f"sessions/{sid}/units/id").tolist()])
        if ids.shape != ref.shape or not np.array_equal(ids, ref):
            raise DataError(f"session '{sid}' records {ids.size} channels with other ids than the reference "
                            f"'{sessions[0]}' ({ref.size})", src.location,
                            hint="cross-day alignment needs the same array channels on every day (units/id); "
                                 "for different neurons use --method candy")
    return ref


@register
class Procrustes(AlignMethod):
    """FA on each day, loadings rotated onto the reference's through the channels that stayed stable.

    Insensitive by construction to per-channel offsets (absorbed by each day's FA mean), to a rotation
    of the latent space, and to a minority of changed, swapped or silenced channels (left out of the
    alignment set); not to a majority of them.
    """

    name = "procrustes"
    estimator = "ncli.models.stabilizer:FAStabilizer"
    summary = "FA + stable loading rows + orthonormal map (Degenhart 2020 BCI stabiliser)"
    Config = ProcrustesConfig
    example = Example(setup=(("simulate", "crossday", "--days", "2", "--trials", "10", "--channels", "20"),),
                      args=("--dim", "3"))

    def estimator_config(self, seed: int) -> dict:
        """The :class:`~ncli.models.stabilizer.FAStabilizer` hyperparameters."""
        c = self.config
        return dict(n_latents=c.dim, n_stable=c.stable or None, seed=seed)

    def job(self, run: AlignRun) -> Job:
        """Check sessions and channels, read every session's valid bins; fitting happens when written.

        Raises
        ------
        UsageError
            Fewer than 2 sessions, an unknown ``--reference``.
        DataError
            Sessions with different channels, too few valid bins.
        """
        c, src = self.config, run.src
        sessions = reference_order(list(run.sessions), c.reference, src.location, src)
        channels = same_channels(src, sessions)
        config = self.estimator_config(run.seed)
        Xs, valid = [], []
        for sid in sessions:
            X, v, _ = SessionView(src, sid).activity(sqrt=c.sqrt)
            Xs.append(X)
            valid.append(v)
        params = {"method": self.name, "reference": sessions[0], "sqrt": c.sqrt, **config}

        def build(w: StoreWriter) -> None:
            from ncli.models.stabilizer import FAStabilizer

            model = FAStabilizer(**config).fit([X[v] for X, v in zip(Xs, valid)])
            n_stable = model.stable_.sum(axis=1).astype(int)
            metrics = {"sessions": sessions, "reference": sessions[0], "n_channels": int(channels.size),
                       "n_stable": n_stable.tolist(),
                       "evaluation": "unsupervised: no behaviour is used; decode the latents with a reference-"
                                     "session decoder (ncli decode --latents procrustes --train-sessions REF)"}
            for s, sid in enumerate(sessions):
                z = model.transform(Xs[s], s).astype(np.float32)
                z[~valid[s]] = np.nan
                write_latents(w, sid, "procrustes", z, attrs={
                    "method": self.name, "model": "models/procrustes", "reference": sessions[0],
                    "sqrt": c.sqrt, "source": "binned/counts",
                    "stable_channels": channels[model.stable_[s]].tolist()})
            write_model(w, "models/procrustes", model, metrics=metrics,
                        extra={"sessions": sessions, "channels": channels.tolist(), "sqrt": c.sqrt})
            log.info("align procrustes: reference %s; alignment channels %s of %d",
                     sessions[0], ", ".join(f"{sid} {k}" for sid, k in zip(sessions[1:], n_stable[1:])),
                     channels.size)

        return Job(params, build)
