"""``ncli fit-lds --method ssid``: the shared LDS from subspace identification only (no EM).

A stochastic subspace identification (block Hankel matrices of the outputs,
SVD) gives ``A, C, Q, R``; the log-likelihood of that fit is reported. Fast,
and the initial value of ``--method em``. Numerics in
:func:`ncli.models.lds.subspace_identification`.
"""

from __future__ import annotations

from ncli.methods.fit_lds._base import LdsConfig, LdsMethod
from ncli.methods.registry import Example, register


@register
class SSID(LdsMethod):
    """Subspace identification of one LDS shared by every session."""

    name = "ssid"
    estimator = "ncli.models.lds:LinearDynamicalSystem"
    summary = "subspace identification only"
    Config = LdsConfig
    example = Example(setup=(("simulate", "lds", "--duration", "30", "--units", "10", "--bin-size", "0.05"),),
                      args=("--latents", "truth"))
