"""``decode --method kalman``: the Kalman-filter decoder (:class:`ncli.models.kalman.KalmanDecoder`).

State = behaviour (+ its per-bin derivative, ``--derivative``), observation =
features; A, W, H, Q by least squares on the training bins; steady-state
filter, restarted at every gap (Wu et al. 2003, 2006).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ncli.methods.decode._base import LinearMethod
from ncli.methods.registry import Example, option, register
from ncli.models.kalman import KalmanDecoder


@dataclass
class KalmanConfig:
    latents: Optional[str] = option(None, "Decode from latents/NAME instead of counts.")
    sqrt: bool = option(True, "Square-root transform counts (ignored for --latents).", secondary="--no-sqrt")
    derivative: bool = option(True, "Add the behaviour's temporal derivative to the state.",
                              secondary="--no-derivative")


@register
class Kalman(LinearMethod):
    """Kalman filter with the behaviour (and its derivative) as state.

    Sessions longer than one block (:data:`ncli.formats.view.BLOCK_BYTES` of lagged
    features) are fit from sums accumulated block by block and filtered block by
    block (:class:`ncli.methods.decode._blocked.BlockedKalmanLearner`).
    """

    name = "kalman"
    summary = "Kalman filter, behaviour (+ derivative) as state"
    Config = KalmanConfig
    estimator = KalmanDecoder
    invariances = ("seed", "permutation", "causal")
    example = Example(setup=(("simulate", "lds", "--duration", "30", "--units", "10", "--sessions", "2"),),
                      args=("--target", "velocity", "--folds", "2"), split=("sim0", "sim1"))

    def make_model(self):
        return KalmanDecoder(derivative=self.config.derivative)

    def job(self, src, req):
        """Whole-matrix fit for sessions within one block; block statistics beyond (bounded memory, DESIGN §4)."""
        from ncli.methods.decode._blocked import blocked_job, lagged_width, needs_blocks

        if needs_blocks(src, src.sessions(), lagged_width(self.config.latents, req.lags)):
            return blocked_job(self, src, req)
        return super().job(src, req)
