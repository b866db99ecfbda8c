"""``ncli inpaint --method glm``: the Poisson GLM baseline from the session's other recorded neurons.

It infers no factors: with ``--evaluate`` it scores the held-out area's neurons
from the other recorded neurons of the same session (and the true-rate
ceiling on simulated stores), the baseline every method reports beside its own
score. See docs/commands/inpaint.md and :mod:`ncli.methods.inpaint._base`.
"""

from __future__ import annotations

from ncli.methods.inpaint._base import InpaintMethod
from ncli.methods.registry import Example, register


@register
class GLMMethod(InpaintMethod):
    """Poisson GLM from the other recorded neurons (evaluation only)."""

    name = "glm"
    summary = "baseline: Poisson GLM of a held-out area from the session's other neurons (needs --evaluate)"
    has_factors = False
    example = Example(setup=(("simulate", "areas", "--units-per-area", "20", "--sessions", "3", "--trials", "6",
                              "--bins", "10"),),
                      args=("--evaluate",))
