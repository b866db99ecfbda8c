"""``ncli align --method candy``: align sessions into a shared latent with shared dynamics.

For every session: counts -> square root -> optional Gaussian smoothing ->
the first ``--train-fraction`` of the valid bins (in time) train the model,
the rest is held out. The model (:class:`ncli.models.candy.CANDY`) is fitted
on all sessions' training bins at once; latents are then computed for every
valid bin. Writes ``sessions/<sid>/latents/candy`` (T, dim) float32 (NaN rows
for invalid bins) and ``models/candy`` (A, C, Q, R, eigenvalues, per-session
encoders under ``models/candy/encoders/<sid>``) with the metrics in its
attributes; the time constants and rotation frequencies of the shared
dynamics are those of :func:`ncli.models.lds.timescales`, as in ``fit-lds``.
With ``--control`` the same fit on shuffled labels is added
(``latents/candy_control``, ``models/candy_control``, metrics ``control_*``).
Reference: CANDY, NeurIPS 2025.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ncli.core.errors import DataError, UsageError
from ncli.formats.store import StoreWriter
from ncli.formats.view import SessionView
from ncli.methods.align._base import AlignMethod, AlignRun, shuffle_labels
from ncli.methods.registry import Example, option, register
from ncli.methods.results import Job, write_latents, write_model

log = logging.getLogger("ncli")
CONTROLS = ("none", "shuffle-behavior", "shuffle-time")


@dataclass
class CandyConfig:
    """Options of ``--method candy`` (weights and rates are checked by the estimator, finite or not)."""

    behavior: str = option("", "Continuous behaviour under binned/behavior used as the contrastive label.",
                           show_default=False)
    dim: int = option(8, "Shared latent dimension.")
    state_dim: Optional[int] = option(None, "LDS state dimension (default --dim).", show_default=False)
    encoder: str = option("mlp", "Per-session encoder: mlp or linear.", choices=("mlp", "linear"))
    hidden: str = option("64,16", "MLP hidden sizes, comma-separated.")
    smooth: float = option(0.1, "Gaussian kernel SD (s) applied to the sqrt counts; 0 = none.", minimum=0.0)
    temperature: float = option(0.5, "Rank-N-Contrast temperature.", finite=False)
    dynamics: bool = option(True, "Learn the shared LDS jointly (Kalman filter, k-step prediction loss).",
                            secondary="--no-dynamics")
    dynamics_weight: float = option(1.0, "Weight of the prediction loss.", finite=False)
    horizon: int = option(4, "Prediction steps k = 1..horizon.")
    recon_weight: float = option(0.0, "Weight of the per-session reconstruction of the activity; 0 = no "
                                 "decoders.", finite=False)
    window: int = option(32, "Bins per training window.")
    batch_size: int = option(16, "Windows per mini-batch (over all sessions).")
    epochs: int = option(50, "Training epochs.")
    lr: float = option(3e-3, "Adam learning rate.", finite=False)
    refit_steps: int = option(300, "LDS-only steps after training.")
    train_fraction: float = option(0.8, "Leading fraction of each session's valid bins used for training; the "
                                   "rest is held out for the metrics.")
    control: str = option("none", "Also fit on shuffled labels: none, shuffle-behavior or shuffle-time.",
                          choices=CONTROLS)


def parse_hidden(text: str) -> tuple[int, ...]:
    """``"64,16"`` -> ``(64, 16)``.

    Raises
    ------
    UsageError
        Not comma-separated positive integers.
    """
    try:
        sizes = tuple(int(h) for h in text.split(",") if h.strip())
    except ValueError:
        raise UsageError(f"invalid --hidden '{text}'", "--hidden", hint="e.g. --hidden 64,16") from None
    if not sizes or any(h < 1 for h in sizes):
        raise UsageError(f"invalid --hidden '{text}'", "--hidden", hint="positive sizes, e.g. 64,16")
    return sizes


@dataclass
class _Data:
    """Every session's features, labels and masks, in session order."""

    Xs: list
    Ys: list
    valid: list
    train: list
    test: list
    columns: list | None


@register
class Candy(AlignMethod):
    """CANDY: rank-contrastive per-session encoders into a shared latent with shared linear dynamics."""

    name = "candy"
    estimator = "ncli.models.candy:CANDY"
    summary = "rank-contrastive per-session encoders, shared latent dynamics"
    Config = CandyConfig
    example = Example(setup=(("simulate", "candy", "--sessions", "2", "--bins", "300"),),
                      args=("--behavior", "velocity", "--epochs", "2", "--refit-steps", "2"))

    def check(self) -> None:
        """``--behavior`` is required, ``--train-fraction`` in [0.1, 1), ``--hidden`` positive sizes.

        Raises
        ------
        UsageError
        """
        c = self.config
        if not c.behavior:
            raise UsageError("missing --behavior", "--behavior", hint="name a behaviour under binned/behavior")
        if not 0.1 <= c.train_fraction < 1.0:
            raise UsageError(f"--train-fraction must be in [0.1, 1), got {c.train_fraction}", "--train-fraction")
        parse_hidden(c.hidden)

    def estimator_config(self, seed: int, device: str) -> dict:
        """The :class:`~ncli.models.candy.CANDY` hyperparameters."""
        c = self.config
        return dict(dim=c.dim, state_dim=c.state_dim, encoder=c.encoder, hidden=parse_hidden(c.hidden),
                    temperature=c.temperature, dynamics=c.dynamics, dynamics_weight=c.dynamics_weight,
                    horizon=c.horizon, recon_weight=c.recon_weight, window=c.window, batch_size=c.batch_size,
                    epochs=c.epochs, lr=c.lr, refit_steps=c.refit_steps, seed=seed, device=device)

    def job(self, run: AlignRun) -> Job:
        """Check the sessions and the behaviour, read every session; fitting happens when written.

        Raises
        ------
        UsageError
            Fewer than 2 sessions, an unknown behaviour, or a hyperparameter out of range.
        DataError
            A session without usable bins, with too few of them, or without varying activity; a
            behaviour whose number of columns differs across sessions.
        """
        from ncli.models.candy import CANDY

        c, src, sessions = self.config, run.src, run.sessions
        if len(sessions) < 2:
            raise UsageError(f"align needs at least 2 sessions, the store has {len(sessions)}", src.location,
                             hint="convert several recordings into one store: ncli convert a.nwb b.nwb ...")
        for sid in sessions:
            names = src.children(f"sessions/{sid}/binned/behavior")
            if c.behavior not in names:
                raise UsageError(f"unknown behaviour '{c.behavior}'", f"session {sid}",
                                 hint=f"behaviours: {', '.join(names) or '(none)'}")
        config = self.estimator_config(run.seed, run.device)
        CANDY(**config)._check_params()
        params = {"method": self.name, "behavior": c.behavior, "smooth": c.smooth,
                  "train_fraction": c.train_fraction, "control": c.control, **config}
        data = self._read(run)
        return Job(params, lambda w: self._build(w, run, config, data))

    def _read(self, run: AlignRun) -> _Data:
        """Features (sqrt, smoothed), behaviour and the train/test split of every session."""
        c, src = self.config, run.src
        d = _Data([], [], [], [], [], None)
        for sid in run.sessions:
            view = SessionView(src, sid)
            X, v, _ = view.activity(sqrt=True, smooth_s=c.smooth)
            Y = view.target(c.behavior).Y
            d.columns = d.columns or src.attrs(f"sessions/{sid}/binned/behavior/{c.behavior}").get("columns")
            v = v & np.all(np.isfinite(Y), axis=1)
            idx = np.flatnonzero(v)
            if idx.size == 0:
                raise DataError(f"session '{sid}' has no valid bins with a finite '{c.behavior}'", src.location,
                                hint="check the behaviour for NaN and binned/valid (ncli info)")
            if idx.size < 2 * c.window:
                raise DataError(f"session '{sid}' has {idx.size} valid bins; at least {2 * c.window} are needed",
                                src.location, hint="lower --window")
            sd = np.nanstd(X[v], axis=0)
            if not np.any(sd > 0):
                raise DataError(f"session '{sid}' has no activity that varies over its valid bins", src.location,
                                hint="every unit is silent or constant; drop the session")
            cut = idx[int(np.floor(c.train_fraction * idx.size))]
            tr = v & (np.arange(len(v)) < cut)
            for lst, a in ((d.Xs, X), (d.Ys, Y), (d.valid, v), (d.train, tr), (d.test, v & ~tr)):
                lst.append(a)
        if len({Y.shape[1] for Y in d.Ys}) > 1:
            raise DataError(f"behaviour '{c.behavior}' has different numbers of columns across sessions",
                            src.location)
        return d

    def _build(self, w: StoreWriter, run: AlignRun, config: dict, d: _Data) -> None:
        """Fit (and the control fit), compute the metrics, write latents and models."""
        from ncli.models.candy import pca_baseline_r2
        from ncli.models.lds import timescales

        c, sessions = self.config, run.sessions
        model, Z, metrics = _fit(config, d, d.Ys, sessions)
        baseline = pca_baseline_r2(d.Xs, d.Ys, d.train, d.test, c.dim, run.seed)
        metrics["baseline_pca_unified_r2_mean"] = baseline["unified_r2_mean"]
        metrics.update(epoch_seconds=model.epoch_seconds_, sessions=sessions,
                       evaluation=f"encoder and decoders fitted on the first {c.train_fraction:.0%} of each "
                                  "session's valid bins; R² on the remaining bins")
        control_fit = None
        if c.control != "none":
            labels = [shuffle_labels(Y, tr, c.control, run.seed) for Y, tr in zip(d.Ys, d.train)]
            control_fit = _fit(config, d, labels, sessions)
            for key in ("per_session_r2", "per_session_r2_mean", "unified_r2", "unified_r2_mean",
                        "consistency_r2", "consistency_r2_mean"):
                metrics[f"control_{key}"] = control_fit[2][key]
            metrics["control"] = c.control
        ts = timescales(model.eigenvalues_, SessionView(run.src, sessions[0]).bin_size)
        metrics["eigenvalues_abs"] = ts["modulus"].tolist()
        metrics["time_constants_s"] = ts["time_constants_s"].tolist()
        metrics["rotation_hz"] = ts["rotation_hz"].tolist()
        line = (f"align candy {c.behavior}: unified R² = {metrics['unified_r2_mean']:.2f} (per-session "
                f"{metrics['per_session_r2_mean']:.2f}, PCA baseline {metrics['baseline_pca_unified_r2_mean']:.2f}), "
                f"consistency {metrics['consistency_r2_mean']:.2f}")
        if control_fit is not None:
            line += f"; {c.control}: unified R² = {metrics['control_unified_r2_mean']:.2f}"
        features = {"sqrt": True, "smooth_s": c.smooth, "source": "binned/counts", "standardise": "training bins"}
        log.info(line)
        fits = [("candy", model, Z)] + ([("candy_control", control_fit[0], control_fit[1])] if control_fit else [])
        for name, m, lat in fits:
            for sid, z in zip(sessions, lat):
                write_latents(w, sid, name, z, attrs={"method": self.name, "model": f"models/{name}",
                                                      "behavior": c.behavior, **features})
            write_model(w, f"models/{name}", m, metrics=metrics if name == "candy" else control_fit[2],
                        extra={"features": features, "behavior": c.behavior, "columns": d.columns,
                               "sessions": sessions, "train_fraction": c.train_fraction,
                               "labels": "real" if name == "candy" else c.control})


def _fit(config: dict, d: _Data, labels: list, sessions: list):
    """One CANDY fit on ``labels``: (model, latents with NaN rows for invalid bins, held-out metrics)."""
    from ncli.models.candy import CANDY, consistency_r2, unified_decoder_r2

    model = CANDY(**config).fit(d.Xs, labels, d.train, names=sessions)
    Z = [model.transform(X, i) for i, X in enumerate(d.Xs)]
    for z, v in zip(Z, d.valid):
        z[~v] = np.nan
    Zf = [np.nan_to_num(z) for z in Z]
    metrics = unified_decoder_r2(Zf, d.Ys, d.train, d.test)
    metrics.update(consistency_r2(Zf, d.Ys, d.test))
    return model, Z, metrics
