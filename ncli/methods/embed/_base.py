"""What ``ncli embed`` hands its methods, and the per-session factor models (pca, fa).

PCA/FA, for every session: counts -> optional square root -> optional
Gaussian smoothing (over valid bins) -> fit on valid bins -> latents for every
valid bin. The layer holds ``sessions/<sid>/latents/<method>`` (T, K) float32
(NaN rows for invalid bins), ``models/<method>/<sid>`` and the summary group
``models/<method>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ncli.core.errors import DataError, UsageError
from ncli.formats.store import Store, StoreWriter
from ncli.formats.view import views
from ncli.methods.registry import Method, option
from ncli.methods.results import Job, write_latents, write_model, write_summary


@dataclass
class EmbedRun:
    """What the command hands an embed method: the opened input and the common options.

    Attributes
    ----------
    src : Store
        The input store (with its parents).
    sessions : list of str
        Its sessions (never empty).
    seed : int
    device : str
        ``cpu``, ``cuda`` or ``auto`` (torch methods).
    given : set of str
        The method options the user gave (field names), for rules such as
        ``--dim cannot be combined with --model``.
    open_store : callable
        ``open_store(location) -> Store``: opens a further store named by an option.
    open_stores : callable
        ``open_stores(locations, option=, input=, why=) -> list[Store]``: opens the
        stores of a repeatable option (``ncli.commands._io.open_inputs``).
    """

    src: Store
    sessions: list
    seed: int = 0
    device: str = "cpu"
    given: set = field(default_factory=set)
    open_store: Callable | None = None
    open_stores: Callable | None = None


class EmbedMethod(Method):
    """Base of the ``embed`` methods: :meth:`job` turns the input into a result layer."""

    command = "embed"

    def job(self, run: EmbedRun) -> Job:
        """The result layer of this method on ``run.src`` (not yet written)."""
        raise NotImplementedError


@dataclass
class FactorConfig:
    """Options of the per-session factor models (pca, fa)."""

    dim: int = option(8, "Latent dimension K (<= number of units).", positive=True, param="n_components")
    smooth: float = option(0.0, "Gaussian kernel SD (s) applied to the counts before fitting; 0 = none.",
                           minimum=0.0)
    sqrt: bool = option(True, "Square-root transform counts first.", secondary="--no-sqrt")


class FactorMethod(EmbedMethod):
    """One linear factor model per session (``ncli.models.factor.EMBEDDINGS[name]``); latents per valid bin."""

    Config = FactorConfig
    description = "embeddings (one model per session)"

    def job(self, run: EmbedRun) -> Job:
        """Check ``--dim`` against every session's units; the layer fits and writes one model per session.

        Raises
        ------
        UsageError
            ``--dim`` larger than the number of units of a session.
        DataError
            (when written) A session without binned counts or with fewer than 2 valid bins.
        """
        from ncli.methods.embed._blocked import fit_blocked, is_long
        from ncli.models.factor import EMBEDDINGS

        cfg, src, sessions, method = self.config, run.src, run.sessions, self.name
        dim = cfg.dim
        for sid in sessions:
            path = f"sessions/{sid}/binned/counts"
            if src.exists(path) and dim > src.array(path).shape[1]:
                raise UsageError(f"--dim {dim} is larger than the number of units ({src.array(path).shape[1]}) "
                                 f"in session '{sid}'", "--dim", hint=f"choose --dim <= {src.array(path).shape[1]}")
        features = {"sqrt": cfg.sqrt, "smooth_s": cfg.smooth, "source": "binned/counts"}
        params = {"method": method, "dim": dim, "smooth": cfg.smooth, "sqrt": cfg.sqrt, "seed": run.seed}

        def build(w: StoreWriter) -> None:
            summary = {}
            for sid, view in views(src, sessions).items():
                if is_long(view):  # bounded memory: covariance over time blocks
                    model, Z, n_fit = fit_blocked(view, method, EMBEDDINGS[method](n_components=dim, seed=run.seed),
                                                  sqrt=cfg.sqrt, smooth_s=cfg.smooth)
                    metrics = dict(model.summary(), n_bins_fitted=n_fit)
                    write_latents(w, sid, method, Z, attrs={"method": method, "model": f"models/{method}/{sid}",
                                                             **features})
                    write_model(w, f"models/{method}/{sid}", model, metrics=metrics,
                                extra={"features": features, "session": sid})
                    summary[sid] = metrics
                    continue
                X, valid, _ = view.activity(sqrt=cfg.sqrt, smooth_s=cfg.smooth)
                if valid.sum() < 2:
                    raise DataError(f"session '{sid}' has fewer than 2 valid bins", src.location)
                model = EMBEDDINGS[method](n_components=dim, seed=run.seed).fit(X[valid])
                Z = np.full((X.shape[0], dim), np.nan, dtype=np.float32)
                Z[valid] = model.transform(X[valid])
                metrics = dict(model.summary(), n_bins_fitted=int(valid.sum()))
                write_latents(w, sid, method, Z, attrs={"method": method, "model": f"models/{method}/{sid}",
                                                         **features})
                write_model(w, f"models/{method}/{sid}", model, metrics=metrics,
                            extra={"features": features, "session": sid})
                summary[sid] = metrics
            write_summary(w, f"models/{method}", f"{method} {self.description}", params, summary)

        return Job(params, build)
