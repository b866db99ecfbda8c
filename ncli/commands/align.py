"""``ncli align --method candy``: align sessions into a shared latent with shared dynamics.

For every session: counts -> square root -> optional Gaussian smoothing ->
the first ``--train-fraction`` of the valid bins (in time) train the model,
the rest is held out. The model (:class:`ncli.models.candy.CANDY`) is fitted
on all sessions' training bins at once; latents are then computed for every
valid bin. Writes ``sessions/<sid>/latents/candy`` (T, dim) float32 (NaN rows
for invalid bins) and ``models/candy`` (A, C, Q, R, eigenvalues, per-session
encoders under ``models/candy/encoders/<sid>``) with the metrics in its
attributes. With ``--control`` the same fit on shuffled labels is added
(``latents/candy_control``, ``models/candy_control``, metrics ``control_*``).
"""

from __future__ import annotations

import logging
from typing import Annotated, Optional

import numpy as np
import typer

from ncli.commands._common import (finite, Debug, Device, InputStore, NoCache, Output, Overwrite, Quiet, Seed, choice,
                                   ncli_command, open_input, write_result)
from ncli.commands.embed import session_features
from ncli.core.errors import DataError, UsageError
from ncli.formats.store import StoreWriter

log = logging.getLogger("ncli")
METHODS = ["candy"]
ENCODERS = ["mlp", "linear"]
CONTROLS = ["none", "shuffle-behavior", "shuffle-time"]


def shuffle_labels(Y: np.ndarray, rows: np.ndarray, how: str, seed: int) -> np.ndarray:
    """Control labels: ``Y`` with its ``rows`` permuted in time or circularly shifted.

    Parameters
    ----------
    Y : (T, D) array
    rows : (T,) bool
        Rows that are shuffled among themselves (the training rows).
    how : {"shuffle-behavior", "shuffle-time"}
        A random permutation of the rows, or a circular shift by a random
        offset between 25 % and 75 % of their number.
    seed : int

    Returns
    -------
    (T, D) array
        A copy; rows outside ``rows`` are unchanged.
    """
    rng = np.random.default_rng([int(seed), 7])
    idx = np.flatnonzero(rows)
    out = Y.copy()
    if how == "shuffle-behavior":
        out[idx] = Y[idx[rng.permutation(idx.size)]]
    else:
        shift = int(rng.integers(max(1, idx.size // 4), max(2, 3 * idx.size // 4)))
        out[idx] = Y[np.roll(idx, shift)]
    return out


def _parse_hidden(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(h) for h in text.split(",") if h.strip())
    except ValueError:
        raise UsageError(f"invalid --hidden '{text}'", "--hidden", hint="e.g. --hidden 64,16") from None
    if not sizes or any(h < 1 for h in sizes):
        raise UsageError(f"invalid --hidden '{text}'", "--hidden", hint="positive sizes, e.g. 64,16")
    return sizes


@ncli_command("align")
def align(
    store: InputStore = None,
    method: Annotated[str, typer.Option("--method", help="Alignment method: candy.")] = "candy",
    behavior: Annotated[str, typer.Option("--behavior", help="Continuous behaviour under binned/behavior "
                                          "used as the contrastive label.", show_default=False)] = "",
    dim: Annotated[int, typer.Option("--dim", help="Shared latent dimension.")] = 8,
    state_dim: Annotated[Optional[int], typer.Option("--state-dim", help="LDS state dimension (default "
                                                     "--dim).")] = None,
    encoder: Annotated[str, typer.Option("--encoder", help="Per-session encoder: mlp or linear.")] = "mlp",
    hidden: Annotated[str, typer.Option("--hidden", help="MLP hidden sizes, comma-separated.")] = "64,16",
    smooth: Annotated[float, typer.Option("--smooth", help="Gaussian kernel SD (s) applied to the sqrt "
                                          "counts; 0 = none.")] = 0.1,
    temperature: Annotated[float, typer.Option("--temperature", help="Rank-N-Contrast temperature.")] = 0.5,
    dynamics: Annotated[bool, typer.Option("--dynamics/--no-dynamics", help="Learn the shared LDS jointly "
                                           "(Kalman filter, k-step prediction loss).")] = True,
    dynamics_weight: Annotated[float, typer.Option("--dynamics-weight", help="Weight of the prediction "
                                                   "loss.")] = 1.0,
    horizon: Annotated[int, typer.Option("--horizon", help="Prediction steps k = 1..horizon.")] = 4,
    recon_weight: Annotated[float, typer.Option("--recon-weight", help="Weight of the per-session "
                                                "reconstruction of the activity; 0 = no decoders.")] = 0.0,
    window: Annotated[int, typer.Option("--window", help="Bins per training window.")] = 32,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Windows per mini-batch (over all "
                                            "sessions).")] = 16,
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs.")] = 50,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.")] = 3e-3,
    refit_steps: Annotated[int, typer.Option("--refit-steps", help="LDS-only steps after training.")] = 300,
    train_fraction: Annotated[float, typer.Option("--train-fraction", help="Leading fraction of each "
                                                  "session's valid bins used for training; the rest is "
                                                  "held out for the metrics.")] = 0.8,
    control: Annotated[str, typer.Option("--control", help="Also fit on shuffled labels: none, "
                                         "shuffle-behavior or shuffle-time.")] = "none",
    seed: Seed = 0,
    device: Device = "cpu",
    output: Output = None,
    overwrite: Overwrite = False,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Align several sessions into a shared latent (CANDY) and write latents, model and metrics.

    Output layer: sessions/<sid>/latents/candy (T, dim), models/candy (attrs.metrics).
    A summary goes to stderr; stdout is the output location.
    """
    from ncli.models.candy import CANDY, consistency_r2, pca_baseline_r2, unified_decoder_r2

    choice(method, METHODS, "--method")
    choice(encoder, ENCODERS, "--encoder")
    choice(control, CONTROLS, "--control")
    choice(device, ["cpu", "cuda", "auto"], "--device")
    if not behavior:
        raise UsageError("missing --behavior", "--behavior", hint="name a behaviour under binned/behavior")
    finite(train_fraction, "--train-fraction")
    if not 0.1 <= train_fraction < 1.0:
        raise UsageError(f"--train-fraction must be in [0.1, 1), got {train_fraction}", "--train-fraction")
    finite(smooth, "--smooth", minimum=0.0)
    sizes = _parse_hidden(hidden)
    src = open_input(store)
    sessions = src.sessions()
    if len(sessions) < 2:
        raise UsageError(f"align needs at least 2 sessions, the store has {len(sessions)}", src.location,
                         hint="convert several recordings into one store: ncli convert a.nwb b.nwb ...")
    for sid in sessions:
        names = src.children(f"sessions/{sid}/binned/behavior")
        if behavior not in names:
            raise UsageError(f"unknown behaviour '{behavior}'", f"session {sid}",
                             hint=f"behaviours: {', '.join(names) or '(none)'}")
    config = dict(dim=dim, state_dim=state_dim, encoder=encoder, hidden=sizes, temperature=temperature,
                  dynamics=dynamics, dynamics_weight=dynamics_weight, horizon=horizon,
                  recon_weight=recon_weight, window=window, batch_size=batch_size, epochs=epochs, lr=lr,
                  refit_steps=refit_steps, seed=seed, device=device)
    CANDY(**config)._check_params()
    params = {"method": method, "behavior": behavior, "smooth": smooth, "train_fraction": train_fraction,
              "control": control, **config}

    Xs, Ys, valid, train, test, columns = [], [], [], [], [], None
    for sid in sessions:
        X, v = session_features(src, sid, sqrt=True, smooth_s=smooth)
        ypath = f"sessions/{sid}/binned/behavior/{behavior}"
        Y = np.asarray(src.array(ypath)[...], dtype=np.float64)
        Y = Y[:, None] if Y.ndim == 1 else Y
        columns = columns or src.attrs(ypath).get("columns")
        v = v & np.all(np.isfinite(Y), axis=1)
        idx = np.flatnonzero(v)
        if idx.size == 0:
            raise DataError(f"session '{sid}' has no valid bins with a finite '{behavior}'", src.location,
                            hint="check the behaviour for NaN and binned/valid (ncli info)")
        if idx.size < 2 * window:
            raise DataError(f"session '{sid}' has {idx.size} valid bins; at least {2 * window} are needed",
                            src.location, hint="lower --window")
        sd = np.nanstd(X[v], axis=0)
        if not np.any(sd > 0):
            raise DataError(f"session '{sid}' has no activity that varies over its valid bins", src.location,
                            hint="every unit is silent or constant; drop the session")
        cut = idx[int(np.floor(train_fraction * idx.size))]
        tr = v & (np.arange(len(v)) < cut)
        Xs.append(X)
        Ys.append(Y)
        valid.append(v)
        train.append(tr)
        test.append(v & ~tr)
    if len({Y.shape[1] for Y in Ys}) > 1:
        raise DataError(f"behaviour '{behavior}' has different numbers of columns across sessions", src.location)

    def run_fit(labels):
        model = CANDY(**config).fit(Xs, labels, train, names=sessions)
        Z = [model.transform(X, i) for i, X in enumerate(Xs)]
        for z, v in zip(Z, valid):
            z[~v] = np.nan
        Zf = [np.nan_to_num(z) for z in Z]
        metrics = unified_decoder_r2(Zf, Ys, train, test)
        metrics.update(consistency_r2(Zf, Ys, test))
        return model, Z, metrics

    def build(w: StoreWriter) -> None:
        model, Z, metrics = run_fit(Ys)
        baseline = pca_baseline_r2(Xs, Ys, train, test, dim, seed)
        metrics["baseline_pca_unified_r2_mean"] = baseline["unified_r2_mean"]
        metrics.update(epoch_seconds=model.epoch_seconds_, sessions=sessions,
                       evaluation=f"encoder and decoders fitted on the first {train_fraction:.0%} of each "
                                  "session's valid bins; R² on the remaining bins")
        control_fit = None
        if control != "none":
            labels = [shuffle_labels(Y, tr, control, seed) for Y, tr in zip(Ys, train)]
            control_fit = run_fit(labels)
            for key in ("per_session_r2", "per_session_r2_mean", "unified_r2", "unified_r2_mean",
                        "consistency_r2", "consistency_r2_mean"):
                metrics[f"control_{key}"] = control_fit[2][key]
            metrics["control"] = control
        ev = model.eigenvalues_[:, 0] + 1j * model.eigenvalues_[:, 1]
        bin_size = float(src.attrs(f"sessions/{sessions[0]}/binned")["bin_size_s"])
        metrics["eigenvalues_abs"] = np.abs(ev).tolist()
        with np.errstate(divide="ignore"):
            metrics["time_constants_s"] = (-bin_size / np.log(np.clip(np.abs(ev), 1e-12, 1 - 1e-12))).tolist()
        metrics["rotation_hz"] = (np.abs(np.angle(ev)) / (2 * np.pi * bin_size)).tolist()

        line = (f"align candy {behavior}: unified R² = {metrics['unified_r2_mean']:.2f} (per-session "
                f"{metrics['per_session_r2_mean']:.2f}, PCA baseline {metrics['baseline_pca_unified_r2_mean']:.2f}), "
                f"consistency {metrics['consistency_r2_mean']:.2f}")
        if control_fit is not None:
            line += f"; {control}: unified R² = {metrics['control_unified_r2_mean']:.2f}"
        features = {"sqrt": True, "smooth_s": smooth, "source": "binned/counts", "standardise": "training bins"}

        log.info(line)
        fits = [("candy", model, Z)] + ([("candy_control", control_fit[0], control_fit[1])] if control_fit else [])
        for name, m, lat in fits:
            for sid, z in zip(sessions, lat):
                w.array(f"sessions/{sid}/latents/{name}", z.astype(np.float32),
                        attrs={"method": method, "model": f"models/{name}", "behavior": behavior, **features})
            m.to_group(w.group(f"models/{name}"), metrics=metrics if name == "candy" else control_fit[2],
                       extra={"features": features, "behavior": behavior, "columns": columns,
                              "sessions": sessions, "train_fraction": train_fraction,
                              "labels": "real" if name == "candy" else control})

    write_result("align", parent=src, params=params, build=build, output=output,
                 overwrite=overwrite, no_cache=no_cache)
