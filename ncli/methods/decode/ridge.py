"""``decode --method ridge``: lagged ridge regression (:class:`ncli.models.ridge.RidgeDecoder`).

Z-scored features, L2 penalty chosen per fit by generalised cross-validation
from ``--alpha`` (default grid 1e-2 .. 1e6, 17 values; one value = fixed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ncli.core.errors import UsageError
from ncli.methods.decode._base import LinearMethod, Request
from ncli.methods.registry import Example, option, register
from ncli.models.ridge import DEFAULT_ALPHAS, RidgeDecoder


@dataclass
class RidgeConfig:
    latents: Optional[str] = option(None, "Decode from latents/NAME instead of counts.")
    sqrt: bool = option(True, "Square-root transform counts (ignored for --latents).", secondary="--no-sqrt")
    alpha: Optional[str] = option(None, "Ridge penalty: one value, or a comma-separated grid chosen by "
                                  "generalised cross-validation (default 1e-2..1e6).", param="alphas")


@register
class Ridge(LinearMethod):
    """Lagged ridge regression with the penalty chosen by generalised cross-validation.

    Sessions longer than one block (:data:`ncli.formats.view.BLOCK_BYTES` of lagged
    features) are fit from ``X'X``, ``X'y`` accumulated block by block
    (:mod:`ncli.methods.decode._blocked`), never holding the (T, F) matrix.
    """

    name = "ridge"
    summary = "lagged ridge regression, penalty by generalised cross-validation"
    Config = RidgeConfig
    estimator = RidgeDecoder
    invariances = ("seed", "permutation", "causal")
    example = Example(setup=(("simulate", "lds", "--duration", "30", "--units", "10", "--sessions", "2"),),
                      args=("--target", "velocity", "--lags", "2", "--folds", "2"), split=("sim0", "sim1"))

    def alphas(self) -> tuple:
        """The penalty grid: ``--alpha`` parsed, or the default grid.

        Raises
        ------
        UsageError
            Not numbers, none, or negative or non-finite values.
        """
        alpha = self.config.alpha
        if alpha is None:
            return DEFAULT_ALPHAS
        try:
            alphas = tuple(float(a) for a in alpha.split(",") if a.strip())
        except ValueError:
            raise UsageError(f"invalid --alpha '{alpha}'", "--alpha", hint="e.g. --alpha 100 or "
                             "--alpha 1,10,100") from None
        if not alphas or any(not np.isfinite(a) or a < 0 for a in alphas):
            raise UsageError(f"invalid --alpha '{alpha}'", "--alpha", hint="values must be >= 0")
        return alphas

    def check(self, req: Request) -> None:
        super().check(req)
        self.alphas()

    def alpha_param(self):
        return list(self.alphas())

    def make_model(self):
        return RidgeDecoder(alphas=self.alphas())

    def job(self, src, req: Request):
        """Whole-matrix fit for sessions within one block; block statistics beyond (bounded memory, DESIGN §4)."""
        from ncli.methods.decode._blocked import blocked_job, lagged_width, needs_blocks

        if needs_blocks(src, src.sessions(), lagged_width(self.config.latents, req.lags)):
            return blocked_job(self, src, req)
        return super().job(src, req)
