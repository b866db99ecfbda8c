"""``ncli embed --method pca``: principal components of each session's activity (per-bin latents).

:class:`ncli.models.factor.PCAEmbedding` (scikit-learn PCA, full SVD) on the
preprocessed counts of the valid bins; latents ``(x - mean) @ components.T``.
Reference: Cunningham & Yu 2014 (Nat Neurosci).
"""

from __future__ import annotations

from ncli.methods.embed._base import FactorMethod
from ncli.methods.registry import Example, register


@register
class PCA(FactorMethod):
    """Per-session PCA latents."""

    name = "pca"
    estimator = "ncli.models.factor:PCAEmbedding"
    summary = "per bin, principal components per session"
    invariances = ("seed", "permutation")
    example = Example(setup=(("simulate", "lds", "--duration", "30", "--units", "10", "--bin-size", "0.05"),),
                      args=("--dim", "3"))
