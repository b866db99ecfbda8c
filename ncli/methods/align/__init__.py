"""``ncli align`` methods: candy (rank-contrastive per-session encoders, shared latent dynamics) and
procrustes (the FA + stable-rows + orthonormal-map stabiliser of Degenhart et al. 2020)."""

from ncli.methods.align import candy, procrustes  # noqa: F401  (registers them)
