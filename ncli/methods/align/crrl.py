"""``ncli align --method crrl``: later days' channels put back in the reference's order, lost ones restored (CRRL).

Every session must record the same channels (``units/id`` equal: one array on
several days). The reference (``--reference``, default the first session) gives
the condition-average templates: each trial's square-root counts averaged into
``--profile-bins`` equal fractions, averaged over the trials of each condition.
The conditions come from ``--behavior``: a trial column (``trials/target``, the
default when the sessions have one) or a binned behaviour (each trial's
condition is then the sector, of ``--conditions``, of the angle of its mean
2-d behaviour, or the quantile of a 1-d one). Later days are never labelled:
their trials are pseudo-labelled from the reference templates
(:mod:`ncli.models.crrl`). Without a trials table the sessions are cut into
blocks of ``5 x --profile-bins`` bins with one condition (a warning).

Writes ``sessions/<sid>/latents/crrl`` (T, N) float32: the session's counts in
the reference's channel order (the reference's own counts unchanged), restored
channels replaced by the autoencoder's expected counts, attrs ``kind =
"aligned_counts"`` and ``channels`` (the reference's ids); and ``models/crrl``
(weights, ``perm_`` (S, N): for each reference channel the session's channel
assigned, ``missing_`` (S, N) the restored channels, ``match_r_``, the
templates), sessions in the order of ``attrs.sessions`` (the reference first).
A decoder fitted on the reference applies to every session unchanged:

    ncli align days.zarr --method crrl | \
        ncli decode --method ridge --latents crrl --target velocity --train-sessions day0 --test-sessions day1,day2

Reference: "Learning Channel-invariant Neural Representations for
High-performance Cross-day Decoding" (CRRL), NeurIPS 2025.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ncli.core.errors import DataError, UsageError
from ncli.formats.store import StoreWriter
from ncli.formats.view import SessionView
from ncli.methods.align._base import AlignMethod, AlignRun
from ncli.methods.align.procrustes import reference_order, same_channels
from ncli.methods.registry import Example, option, register
from ncli.methods.results import Job, write_latents, write_model

log = logging.getLogger("ncli")


@dataclass
class CrrlConfig:
    """Options of ``--method crrl``."""

    reference: str = option("", "Reference session (default: the first recorded: convert's input order).",
                            show_default=False)
    behavior: str = option("", "Condition of each reference trial for the templates: a trial column "
                           "(trials/target, the default when present) or a binned behaviour.", show_default=False)
    conditions: int = option(8, "Conditions a binned --behavior is cut into (angle sectors or quantiles).",
                             minimum=2)
    profile_bins: int = option(10, "Values per trial in a template (equal fractions of the trial).", minimum=1,
                               param="n_profile")
    epochs: int = option(60, "Rearrangement optimisation steps per round.", minimum=1)
    rounds: int = option(2, "Pseudo-label and correlation-row refinement rounds.", minimum=1)
    lr: float = option(1e-3, "Adam learning rate.", positive=True)
    tau_start: float = option(1.0, "Sinkhorn temperature at the start (annealed geometrically).", positive=True)
    tau_end: float = option(1e-3, "Sinkhorn temperature at the end.", positive=True)
    entropy_weight: float = option(0.01, "Weight of the row-entropy penalty toward a permutation.", minimum=0.0)
    unmatched_cost: float = option(2.0, "Cost, in median best-match costs, of leaving a reference channel "
                                   "unmatched (restored) instead of forcing a match; 0 = always match.",
                                   minimum=0.0)
    min_match: float = option(0.3, "Template correlation below which an assignment is rejected and the "
                              "channel restored.")
    dead_fraction: float = option(0.05, "A channel below this fraction of its reference rate is dead (restored).",
                                  minimum=0.0)
    window: int = option(8, "Bins per autoencoder token window.", minimum=2)
    recon_steps: int = option(600, "Autoencoder optimisation steps (0: restored channels are the "
                              "reference means).", minimum=0)
    batch_size: int = option(32, "Windows per autoencoder step.", minimum=1)


def _trial_bins(view: SessionView, n_bins: int, block: int) -> tuple[np.ndarray, bool]:
    """(M, 2) ``[start, stop)`` bins of the session's trials, and whether a trials table gave them."""
    tab = view.table("trials")
    if "start_time" in tab and "stop_time" in tab and len(tab["start_time"]):
        dt, t0 = view.bin_size, view.t_start
        a = np.floor((np.asarray(tab["start_time"], float) - t0) / dt + 1e-9).astype(np.int64)
        b = np.floor((np.asarray(tab["stop_time"], float) - t0) / dt + 1e-9).astype(np.int64)
        return np.column_stack([np.clip(a, 0, n_bins), np.clip(b, 0, n_bins)]), True
    starts = np.arange(0, n_bins - block + 1, block)
    return np.column_stack([starts, starts + block]), False


def _conditions(view: SessionView, behavior: str, trials: np.ndarray, n_conditions: int) -> np.ndarray:
    """Condition (0..C-1) of each reference trial from a trial column or a binned behaviour.

    Raises
    ------
    UsageError
        Neither a trial column nor a binned behaviour of the reference.
    """
    tab = view.table("trials")
    col = behavior.removeprefix("trials/")
    if col in tab and len(tab[col]) == len(trials):
        values = np.asarray(tab[col])
        if values.dtype.kind == "f" and np.unique(values).size > n_conditions:
            edges = np.quantile(values, np.linspace(0, 1, n_conditions + 1)[1:-1])
            return np.digitize(values, edges)
        return np.unique(values.astype(str), return_inverse=True)[1]
    if behavior.startswith("trials/") or behavior not in view.behaviors():
        raise UsageError(f"unknown --behavior '{behavior}'", f"session {view.session}",
                         hint=f"trial columns: {', '.join('trials/' + c for c in tab) or '(no trials)'}; "
                              f"behaviours: {', '.join(view.behaviors()) or '(none)'}")
    Y = view.target(behavior).Y
    means = np.stack([np.nanmean(Y[a:b], axis=0) for a, b in trials])
    if means.shape[1] >= 2:
        ang = np.mod(np.arctan2(means[:, 1], means[:, 0]), 2 * np.pi)
        return np.minimum((ang / (2 * np.pi) * n_conditions).astype(np.int64), n_conditions - 1)
    edges = np.nanquantile(means[:, 0], np.linspace(0, 1, n_conditions + 1)[1:-1])
    return np.digitize(means[:, 0], edges)


@register
class Crrl(AlignMethod):
    """CRRL: Gumbel-Sinkhorn channel rearrangement onto reference templates, masked VQ channel reconstruction."""

    name = "crrl"
    estimator = "ncli.models.crrl:CRRL"
    summary = "channel rearrangement (Gumbel-Sinkhorn) + masked VQ channel reconstruction (CRRL 2025)"
    Config = CrrlConfig
    invariances = ()
    example = Example(setup=(("simulate", "crossday", "--days", "2", "--trials", "4", "--channels", "16",
                              "--bins", "20"),),
                      args=("--epochs", "3", "--recon-steps", "3", "--rounds", "1"))

    def check(self) -> None:
        """``--tau-end`` at most ``--tau-start``; ``--min-match`` in [-1, 1]; ``--dead-fraction`` below 1.

        Raises
        ------
        UsageError
        """
        c = self.config
        if c.tau_end > c.tau_start:
            raise UsageError(f"--tau-end {c.tau_end} is above --tau-start {c.tau_start}", "--tau-end")
        if not -1 <= c.min_match <= 1:
            raise UsageError(f"--min-match must be in [-1, 1], got {c.min_match}", "--min-match")
        if c.dead_fraction >= 1:
            raise UsageError(f"--dead-fraction must be below 1, got {c.dead_fraction}", "--dead-fraction")

    def estimator_config(self, seed: int, device: str) -> dict:
        """The :class:`~ncli.models.crrl.CRRL` hyperparameters."""
        c = self.config
        return dict(n_profile=c.profile_bins, epochs=c.epochs, rounds=c.rounds, lr=c.lr, tau_start=c.tau_start,
                    tau_end=c.tau_end, entropy_weight=c.entropy_weight, unmatched_cost=c.unmatched_cost,
                    min_match=c.min_match, dead_fraction=c.dead_fraction, window=c.window,
                    recon_steps=c.recon_steps, batch_size=c.batch_size, seed=seed, device=device)

    def job(self, run: AlignRun) -> Job:
        """Check sessions, channels and conditions, read every session; fitting happens when written.

        Raises
        ------
        UsageError
            Fewer than 2 sessions, an unknown ``--reference`` or ``--behavior``.
        DataError
            Sessions with different channels, no binned counts, too few usable trials.
        """
        from ncli.models.crrl import CRRL

        c, src = self.config, run.src
        sessions = reference_order(list(run.sessions), c.reference, src.location, src)
        channels = same_channels(src, sessions)
        config = self.estimator_config(run.seed, run.device)
        CRRL(**config)._check_params()
        counts, trials, had = [], [], []
        for sid in sessions:
            view = SessionView(src, sid)
            X = view.counts()
            if not np.all(np.isfinite(X)):
                raise DataError(f"session '{sid}' has non-finite counts", src.location)
            X = np.where(view.valid(X.shape[0])[:, None], X, 0.0)
            tr, ok = _trial_bins(view, X.shape[0], 5 * c.profile_bins)
            counts.append(X)
            trials.append(tr)
            had.append(ok)
        ref_view = SessionView(src, sessions[0])
        behavior = c.behavior or ("trials/target" if "target" in ref_view.table("trials") else "")
        if not all(had):
            log.warning("align crrl: %s without a trials table: cut into blocks of %d bins, one condition",
                        ", ".join(s for s, h in zip(sessions, had) if not h), 5 * c.profile_bins)
            behavior = ""
        labels = _conditions(ref_view, behavior, trials[0], c.conditions) if behavior else None
        params = {"method": self.name, "reference": sessions[0], "behavior": behavior, "conditions": c.conditions,
                  **config}

        def build(w: StoreWriter) -> None:
            model = CRRL(**config).fit(counts[0], trials[0], labels, counts[1:], trials[1:])
            moved = (model.perm_ != np.arange(channels.size)).mean(axis=1)
            metrics = {
                "sessions": sessions, "reference": sessions[0], "n_channels": int(channels.size),
                "conditions": int(model.n_classes_), "behavior": behavior or None,
                "sinkhorn_error": model.sinkhorn_error_.tolist(),
                "moved_fraction": moved.tolist(), "n_restored": model.missing_.sum(axis=1).astype(int).tolist(),
                "match_r_median": [float(np.median(r)) for r in model.match_r_],
                "train_seconds": float(model.train_seconds_),
                "evaluation": "unsupervised on the later days (no labels, no truth): decode latents/crrl with a "
                              "reference-session decoder (ncli decode --latents crrl --train-sessions REF)"}
            for s, sid in enumerate(sessions):
                A = counts[0] if s == 0 else model.transform(counts[s], s)
                write_latents(w, sid, "crrl", A.astype(np.float32), attrs={
                    "method": self.name, "model": "models/crrl", "kind": "aligned_counts",
                    "reference": sessions[0], "source": "binned/counts", "channels": channels.tolist(),
                    "restored_channels": channels[model.missing_[s]].tolist() if s else []})
            write_model(w, "models/crrl", model, metrics=metrics,
                        extra={"sessions": sessions, "channels": channels.tolist(), "behavior": behavior or None})
            log.info("align crrl: reference %s; %s", sessions[0], "; ".join(
                f"{sid} {moved[s]:.0%} moved, {int(model.missing_[s].sum())} restored"
                for s, sid in enumerate(sessions) if s))

        return Job(params, build)
