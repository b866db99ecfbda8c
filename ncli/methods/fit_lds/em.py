"""``ncli fit-lds --method em``: the shared LDS by EM (Kalman smoother E-step), started from ssid.

EM runs until the relative change of the log-likelihood falls below ``--tol``
or for ``--max-iter`` iterations; the output noise covariance is full or
diagonal (``--obs-noise``). Numerics in
:class:`ncli.models.lds.LinearDynamicalSystem`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ncli.core.errors import UsageError
from ncli.methods.fit_lds._base import MAX_ITER, TOL, LdsConfig, LdsMethod, log
from ncli.methods.registry import Example, option, register


@dataclass
class EMConfig(LdsConfig):
    """Options of ``--method em``: those of every fit-lds method, and the EM stopping rule."""

    max_iter: int = option(MAX_ITER, "Maximum EM iterations.", minimum=1)
    tol: float = option(TOL, "EM stops when the relative change of the log-likelihood is below this.",
                        finite=False)


@register
class EM(LdsMethod):
    """EM for one LDS shared by every session, initialised by subspace identification."""

    name = "em"
    estimator = "ncli.models.lds:LinearDynamicalSystem"
    summary = "EM started from subspace identification"
    Config = EMConfig
    example = Example(setup=(("simulate", "lds", "--duration", "30", "--units", "10", "--bin-size", "0.05"),),
                      args=("--latents", "truth", "--max-iter", "5"))

    def check(self) -> None:
        """``--tol`` > 0.

        Raises
        ------
        UsageError
        """
        if not self.config.tol > 0:
            raise UsageError(f"--tol must be > 0, got {self.config.tol}", "--tol")

    def report(self, K: int, n_sessions: int, n_outputs: int, summary: dict) -> None:
        log.info("fit-lds %s: K=%d, %d session(s), %d outputs%s, log-likelihood %.6g",
                 self.name, K, n_sessions, n_outputs,
                 f", {summary['n_iter']} EM iterations ({'converged' if summary['converged'] else 'not converged'})",
                 summary["loglik"])
