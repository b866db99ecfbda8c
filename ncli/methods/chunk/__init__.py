"""``ncli chunk`` methods: discrete sequence chunking (dsc), population averaging (pa), unsupervised
chunk discovery (ucd). Numerics in :mod:`ncli.models.chunking`."""

from ncli.methods.chunk import dsc, pa, ucd  # noqa: F401  (registers them, in this order)
