"""``ncli fit-lds``: one linear dynamical system shared by every session's latents.

Input: ``sessions/<sid>/latents/NAME`` (any latents, e.g. from ``embed``) or,
with ``--counts``, the square-rooted binned counts. Bins that are not
``binned/valid`` or hold NaN are missing observations. The last
``--test-fraction`` of each session is held out: it is never used for fitting
and scores the k-step-ahead forecasts (k = 1..4).

Writes a layer with ``sessions/<sid>/latents/lds`` (T, K) float32, the smoothed
state (NaN for missing bins), and ``models/lds`` (parameters, log-likelihood
curve, eigenvalues with time constants and rotation frequencies, forecast R²).
The numerics live in :mod:`ncli.models.lds`.
"""

from __future__ import annotations

import logging
from typing import Annotated, Optional

import numpy as np
import typer

from ncli import __version__
from ncli.commands._common import (Debug, InputStore, NoCache, Output, Overwrite, Quiet, Seed, choice,
                                   load_activity, ncli_command, open_input, write_result)
from ncli.core.errors import DataError, UsageError
from ncli.formats.store import Store, StoreWriter

log = logging.getLogger("ncli")
METHODS = ["ssid", "em"]
NOISE = ["diag", "full"]
MAX_K = 4


def _bin_size(src: Store, sid: str) -> float:
    attrs = src.attrs(f"sessions/{sid}/binned")
    if "bin_size_s" not in attrs:
        raise DataError(f"session '{sid}' has no binned time grid (binned.bin_size_s)", src.location,
                        hint="convert the recording with a --bin-size first")
    return float(attrs["bin_size_s"])


def load_outputs(src: Store, sid: str, latents: str | None) -> np.ndarray:
    """Outputs of one session as (T, p) float64, NaN rows for bins that are missing.

    Raises
    ------
    DataError
        No binned counts (``--counts``), or latents and the valid mask differ in length.
    """
    Y, usable, _ = load_activity(src, sid, latents, sqrt=True)
    Y[~usable] = np.nan
    return Y


def _fmt_eig(summary: dict) -> str:
    parts = []
    seen = set()
    for (re_, im), mod, tau, f in zip(summary["eigenvalues"], summary["modulus"], summary["time_constants_s"],
                                      summary["rotation_hz"]):
        key = (round(float(re_), 6), round(abs(float(im)), 6))
        if key in seen:  # show a conjugate pair once
            continue
        seen.add(key)
        tau_s = "inf" if not np.isfinite(tau) else f"{tau:.3g} s"
        parts.append(f"|λ| {mod:.3f} (τ {tau_s}" + (f", {f:.3g} Hz)" if f > 0 else ")"))
    return ", ".join(parts)


def check_outputs(train: list[np.ndarray], sessions: list[str], source: str) -> None:
    """Refuse outputs an LDS cannot be fitted to: all-NaN or constant columns.

    Raises
    ------
    DataError
        A column is NaN in every training bin of every session (each bin with a
        NaN counts as missing, so nothing would be observed), or a column has
        zero variance over the observed training bins.
    """
    Y = np.concatenate([np.asarray(y, dtype=np.float64) for y in train], axis=0)
    for j in range(Y.shape[1]):
        col = Y[:, j]
        if not np.isfinite(col).any():
            raise DataError(f"column {j} of {source} is NaN in every training bin, so no bin is observed",
                            ", ".join(sessions), hint="drop that column or recompute the latents")
    rows = np.all(np.isfinite(Y), axis=1)
    sd = Y[rows].std(axis=0) if rows.any() else np.zeros(Y.shape[1])
    flat = np.flatnonzero(~(sd > 0))
    if flat.size:
        raise DataError(f"{source} has constant column(s) {flat.tolist()} over the observed training bins; "
                        "an LDS needs varying outputs", ", ".join(sessions))


@ncli_command("fit-lds")
def fit_lds(
    store: InputStore = None,
    latents: Annotated[Optional[str], typer.Option("--latents", help="Fit the latents under "
                                                   "sessions/*/latents/NAME.", show_default=False)] = None,
    counts: Annotated[bool, typer.Option("--counts", help="Fit the square-rooted binned counts instead of "
                                         "latents (all sessions must have the same units).")] = False,
    dim: Annotated[Optional[int], typer.Option("--dim", help="State dimension K. Default: the latents' "
                                               "dimension, or 4 with --counts.", show_default=False)] = None,
    method: Annotated[str, typer.Option("--method", help="ssid: subspace identification only; em: EM "
                                        "started from it.")] = "em",
    obs_noise: Annotated[str, typer.Option("--obs-noise", help="Output noise covariance: diag or full.")] = "full",
    max_iter: Annotated[int, typer.Option("--max-iter", help="Maximum EM iterations.")] = 200,
    tol: Annotated[float, typer.Option("--tol", help="EM stops when the relative change of the "
                                       "log-likelihood is below this.")] = 1e-6,
    test_fraction: Annotated[float, typer.Option("--test-fraction", help="Last fraction of each session held "
                                                 "out of fitting; scores the k-step forecasts.")] = 0.2,
    seed: Seed = 0,
    output: Output = None,
    overwrite: Overwrite = False,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Fit one linear dynamical system to every session (subspace identification + EM).

    Output layer: sessions/<sid>/latents/lds (T, K) smoothed states (NaN for missing
    bins) and models/lds (A_, C_, Q_, R_, d_, x0_, P0_, loglik_, eigenvalues_,
    time_constants_s, rotation_hz, forecast_r2; attrs metrics). Prints the output
    store's location; a summary goes to stderr.
    """
    from ncli.models.lds import LinearDynamicalSystem, forecast_r2

    choice(method, METHODS, "--method")
    choice(obs_noise, NOISE, "--obs-noise")
    if dim is not None and dim < 1:
        raise UsageError(f"--dim must be a positive integer, got {dim}", "--dim")
    if max_iter < 1:
        raise UsageError(f"--max-iter must be at least 1, got {max_iter}", "--max-iter")
    if not tol > 0:
        raise UsageError(f"--tol must be > 0, got {tol}", "--tol")
    if not 0 <= test_fraction < 0.9:
        raise UsageError(f"--test-fraction must be in [0, 0.9), got {test_fraction}", "--test-fraction")
    if counts and latents is not None:
        raise UsageError("--latents and --counts are mutually exclusive", "--latents/--counts")
    src = open_input(store)
    sessions = src.sessions()
    if not sessions:
        raise DataError("store has no sessions", src.location)
    if not counts:
        names = sorted({n for sid in sessions for n in src.children(f"sessions/{sid}/latents")})
        listing = ", ".join(names) or "(none)"
        if latents is None:
            raise UsageError("missing --latents", "--latents",
                             hint=f"latents in this store: {listing}; or pass --counts")
        for sid in sessions:
            if not src.is_array(f"sessions/{sid}/latents/{latents}"):
                raise UsageError(f"unknown latents '{latents}'", f"session {sid}",
                                 hint=f"latents in this store: {listing}")
    bins = {sid: _bin_size(src, sid) for sid in sessions}
    bin_size = bins[sessions[0]]
    if any(abs(b - bin_size) > 1e-9 * bin_size for b in bins.values()):
        raise DataError("sessions have different bin sizes; one LDS needs one time grid", src.location,
                        hint=", ".join(f"{s}: {b} s" for s, b in bins.items()))
    widths = {}
    for sid in sessions:
        path = f"sessions/{sid}/latents/{latents}" if not counts else f"sessions/{sid}/binned/counts"
        if src.exists(path):
            shape = src.array(path).shape
            widths[sid] = shape[1] if len(shape) > 1 else 1
    if len(set(widths.values())) > 1:
        what = "latents" if not counts else "units"
        raise DataError(f"sessions differ in their number of {what}; one LDS needs the same outputs",
                        src.location, hint=", ".join(f"{s}: {w}" for s, w in widths.items()))
    K = int(dim) if dim is not None else (int(next(iter(widths.values()))) if (widths and not counts) else 4)
    source = f"latents/{latents}" if not counts else "binned/counts (sqrt)"
    params = {"latents": latents, "counts": counts, "dim": K, "method": method, "obs_noise": obs_noise,
              "max_iter": max_iter, "tol": tol, "test_fraction": test_fraction, "seed": seed}

    def build(w: StoreWriter) -> None:
        full, train, test_masks, split = [], [], [], {}
        for sid in sessions:
            Y = load_outputs(src, sid, latents if not counts else None)
            T = Y.shape[0]
            n_test = int(round(test_fraction * T))
            start = T - n_test
            full.append(Y)
            train.append(Y[:start])
            mask = np.zeros(T, dtype=bool)
            mask[start:] = True
            test_masks.append(mask)
            split[sid] = {"n_bins": T, "test_start_bin": start,
                          "n_train_observed": int(np.all(np.isfinite(Y[:start]), axis=1).sum())}
        check_outputs(train, sessions, source)
        if K > full[0].shape[1]:
            log.warning("fit-lds: --dim %d exceeds the %d outputs; the extra states are poorly identified",
                        K, full[0].shape[1])
        try:
            model = LinearDynamicalSystem(n_states=K, method=method, obs_noise=obs_noise, max_iter=max_iter,
                                          tol=tol, seed=seed).fit(train)
        except DataError as err:
            if err.where is None:
                err.where = src.location
            raise
        summary = model.summary(bin_size)
        scores = forecast_r2(model, full, test_masks, MAX_K) if test_fraction > 0 else \
            {"r2": [float("nan")] * MAX_K, "r2_per_output": [], "n_samples": [0] * MAX_K}
        metrics = {
            "loglik": summary["loglik"],
            "loglik_per_bin": summary["loglik"] / max(1, sum(v["n_train_observed"] for v in split.values())),
            "n_iter": summary["n_iter"],
            "converged": summary["converged"],
            "eigenvalues": summary["eigenvalues"],
            "eigenvalue_modulus": summary["modulus"],
            "time_constants_s": summary["time_constants_s"],
            "rotation_hz": summary["rotation_hz"],
            "forecast_r2": scores["r2"],
            "forecast_k": list(range(1, MAX_K + 1)),
            "forecast_r2_per_output": scores["r2_per_output"],
            "forecast_n_samples": scores["n_samples"],
            "bin_size_s": bin_size,
        }
        posts = model.smooth(full)
        for sid, Y, post in zip(sessions, full, posts):
            Z = post.smoothed.astype(np.float32)
            Z[~np.all(np.isfinite(Y), axis=1)] = np.nan
            w.array(f"sessions/{sid}/latents/lds", Z,
                    attrs={"method": f"lds-{method}", "model": "models/lds", "source": source,
                           "description": "smoothed state E[x_t | all bins] of the shared LDS; NaN for "
                                          "missing bins", **split[sid]})
        g = w.group("models/lds")
        model.to_group(g, metrics=metrics,
                       extra={"command": {"params": params, "version": __version__}, "source": source,
                              "sessions": sessions, "split": split, "bin_size_s": bin_size})
        for name in ("time_constants_s", "rotation_hz"):
            g.create_array(name, data=np.asarray(summary[name], dtype=np.float64), overwrite=True)
        g.create_array("forecast_r2", data=np.asarray(scores["r2"], dtype=np.float64), overwrite=True)
        status = "" if method == "ssid" else \
            f", {summary['n_iter']} EM iterations ({'converged' if summary['converged'] else 'not converged'})"
        log.info("fit-lds %s: K=%d, %d session(s), %d outputs%s, log-likelihood %.6g",
                 method, K, len(sessions), full[0].shape[1], status, summary["loglik"])
        log.info("  eigenvalues: %s", _fmt_eig(summary))
        log.info("  forecast R² on held-out time (k=1..%d bins): %s", MAX_K,
                 " ".join(f"{v:.3f}" for v in scores["r2"]))

    write_result("fit-lds", parent=src, params=params, build=build, output=output,
                 overwrite=overwrite, no_cache=no_cache)
