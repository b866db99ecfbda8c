"""``ncli align`` methods: candy (rank-contrastive per-session encoders, shared latent dynamics)."""

from ncli.methods.align import candy  # noqa: F401  (registers it)
