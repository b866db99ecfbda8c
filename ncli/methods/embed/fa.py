"""``ncli embed --method fa``: factor analysis of each session's activity (per-bin latents).

:class:`ncli.models.factor.FAEmbedding` (scikit-learn FactorAnalysis, EM) on
the preprocessed counts of the valid bins; latents are the posterior means
``E[z | x]`` (factors defined up to rotation). Reference: Yu et al. 2009
(J Neurophysiol).
"""

from __future__ import annotations

from ncli.methods.embed._base import FactorMethod
from ncli.methods.registry import Example, register


@register
class FA(FactorMethod):
    """Per-session factor-analysis latents."""

    name = "fa"
    estimator = "ncli.models.factor:FAEmbedding"
    summary = "per bin, factor analysis per session"
    invariances = ("seed", "permutation")
    example = Example(setup=(("simulate", "lds", "--duration", "30", "--units", "10", "--bin-size", "0.05"),),
                      args=("--dim", "3"))
