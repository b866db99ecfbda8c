"""The fit every ``ncli fit-lds`` method shares: one linear dynamical system for every session.

Input: ``sessions/<sid>/latents/NAME`` (any latents, e.g. from ``embed``) or,
with ``--counts``, the square-rooted binned counts. Bins that are not
``binned/valid`` or hold NaN are missing observations. The last
``--test-fraction`` of each session is held out: it is never used for fitting
and scores the k-step-ahead forecasts (k = 1..4).

Writes ``sessions/<sid>/latents/lds`` (T, K) float32, the smoothed state (NaN
for missing bins), and ``models/lds`` (parameters, log-likelihood curve,
eigenvalues with time constants and rotation frequencies, forecast R²). The
numerics live in :mod:`ncli.models.lds`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ncli import __version__
from ncli.core.errors import DataError, UsageError
from ncli.formats.store import Store, StoreWriter
from ncli.formats.view import SessionView
from ncli.methods.registry import Method, option
from ncli.methods.results import Job, write_model

log = logging.getLogger("ncli")
MAX_K = 4
#: EM's defaults, also recorded for ssid (which runs no EM) so its parameters stay those of ncli 0.1.0
MAX_ITER, TOL = 200, 1e-6


@dataclass
class LdsConfig:
    """Options of every fit-lds method."""

    dim: Optional[int] = option(None, "State dimension K. Default: the latents' dimension, or 4 with --counts.",
                                positive=True, param="n_states", show_default=False)
    obs_noise: str = option("full", "Output noise covariance: diag or full.", choices=("diag", "full"))


@dataclass
class LdsRun:
    """What ``ncli fit-lds`` hands a method: the opened input and the common options.

    Attributes
    ----------
    src : Store
    sessions : list of str
        Never empty.
    latents : str or None
        ``--latents NAME`` (None with ``--counts``).
    counts : bool
        Fit the square-rooted binned counts.
    test_fraction : float
    seed : int
    """

    src: Store
    sessions: list
    latents: str | None
    counts: bool
    test_fraction: float
    seed: int


def load_outputs(view: SessionView, latents: str | None) -> np.ndarray:
    """Outputs of one session as (T, p) float64, NaN rows for bins that are missing.

    Raises
    ------
    DataError
        No binned counts (``--counts``), or latents and the valid mask differ in length.
    """
    Y, usable, _ = view.activity(latents, sqrt=True)
    Y[~usable] = np.nan
    return Y


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


def _bin_size(src: Store, sid: str) -> float:
    attrs = src.attrs(f"sessions/{sid}/binned")
    if "bin_size_s" not in attrs:
        raise DataError(f"session '{sid}' has no binned time grid (binned.bin_size_s)", src.location,
                        hint="convert the recording with a --bin-size first")
    return float(attrs["bin_size_s"])


def fmt_eigenvalues(summary: dict) -> str:
    """Eigenvalues as ``|λ| 0.968 (τ 1.5 s, 0.351 Hz), ...``, a conjugate pair once."""
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


class LdsMethod(Method):
    """Base of the fit-lds methods: the estimator's parameters differ, the data and the outputs do not."""

    command = "fit-lds"
    Config = LdsConfig

    def check(self) -> None:
        """Cross-option rules, before any data is read (UsageError)."""

    def estimator_params(self) -> dict:
        """``method``, ``obs_noise``, ``max_iter`` and ``tol`` of :class:`~ncli.models.lds.LinearDynamicalSystem`."""
        c = self.config
        return {"method": self.name, "obs_noise": c.obs_noise, "max_iter": getattr(c, "max_iter", MAX_ITER),
                "tol": getattr(c, "tol", TOL)}

    def job(self, run: LdsRun) -> Job:
        """Check the outputs of every session (names, grid, widths); the fit happens when written.

        Raises
        ------
        UsageError
            No ``--latents`` (without ``--counts``) or latents missing in a session.
        DataError
            Sessions on different time grids or with different numbers of outputs.
        """
        src, sessions, latents, counts = run.src, run.sessions, run.latents, run.counts
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
        dim = self.config.dim
        K = int(dim) if dim is not None else (int(next(iter(widths.values()))) if (widths and not counts) else 4)
        est = self.estimator_params()
        params = {"latents": latents, "counts": counts, "dim": K, "method": est["method"],
                  "obs_noise": est["obs_noise"], "max_iter": est["max_iter"], "tol": est["tol"],
                  "test_fraction": run.test_fraction, "seed": run.seed}
        return Job(params, lambda w: self._build(w, run, K, bin_size, params))

    def _build(self, w: StoreWriter, run: LdsRun, K: int, bin_size: float, params: dict) -> None:
        """Split, fit, score the forecasts, smooth, write the latents and ``models/lds``."""
        from ncli.models.lds import LinearDynamicalSystem, forecast_r2

        src, sessions, test_fraction = run.src, run.sessions, run.test_fraction
        source = f"latents/{run.latents}" if not run.counts else "binned/counts (sqrt)"
        full, train, test_masks, split = [], [], [], {}
        for sid in sessions:
            Y = load_outputs(SessionView(src, sid), run.latents if not run.counts else None)
            T = Y.shape[0]
            start = T - int(round(test_fraction * T))
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
        est = self.estimator_params()
        try:
            model = LinearDynamicalSystem(n_states=K, **est, seed=run.seed).fit(train)
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
        for sid, Y, post in zip(sessions, full, model.smooth(full)):
            Z = post.smoothed.astype(np.float32)
            Z[~np.all(np.isfinite(Y), axis=1)] = np.nan
            w.array(f"sessions/{sid}/latents/lds", Z,
                    attrs={"method": f"lds-{self.name}", "model": "models/lds", "source": source,
                           "description": "smoothed state E[x_t | all bins] of the shared LDS; NaN for "
                                          "missing bins", **split[sid]})
        write_model(w, "models/lds", model, metrics=metrics,
                    extra={"command": {"params": params, "version": __version__}, "source": source,
                           "sessions": sessions, "split": split, "bin_size_s": bin_size})
        g = w.group("models/lds")
        for name in ("time_constants_s", "rotation_hz"):
            g.create_array(name, data=np.asarray(summary[name], dtype=np.float64), overwrite=True)
        g.create_array("forecast_r2", data=np.asarray(scores["r2"], dtype=np.float64), overwrite=True)
        self.report(K, len(sessions), full[0].shape[1], summary)
        log.info("  eigenvalues: %s", fmt_eigenvalues(summary))
        log.info("  forecast R² on held-out time (k=1..%d bins): %s", MAX_K, " ".join(f"{v:.3f}" for v in scores["r2"]))

    def report(self, K: int, n_sessions: int, n_outputs: int, summary: dict) -> None:
        """The first summary line on stderr."""
        log.info("fit-lds %s: K=%d, %d session(s), %d outputs, log-likelihood %.6g",
                 self.name, K, n_sessions, n_outputs, summary["loglik"])
