"""``ncli embed`` methods: per-bin latents (pca, fa) and per-neuron embeddings (nuclr, features).

Imported in this order so ``--method`` lists (and its hint) keep the order
pca, fa, nuclr, features.
"""

from ncli.methods.embed import pca, fa, nuclr, features  # noqa: F401  (registers them, in this order)
