"""``ncli inpaint`` methods: NeuroPaint (neuropaint), NeuroPaint-Linear (rrr) and the Poisson GLM baseline
(glm). Numerics in :mod:`ncli.models.neuropaint` and :mod:`ncli.core.poisson`."""

from ncli.methods.inpaint import glm, neuropaint, rrr  # noqa: F401  (registers them)
