"""``decode --method poyo``: a POYO-style transformer (:class:`~ncli.models.neural_decoders.POYODecoder`).

Every spike in the ``--context`` seconds before a bin's end is a token (unit
embedding, rotary time); ``--n-latents`` latent queries spread over the window
cross-attend to them, ``--layers`` + 1 self-attention layers follow, and an
output query at the bin centre reads them out (Azabou et al. 2023).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ncli.methods.decode._neural import HIDDEN_HELP, LAYERS_HELP, N_LATENTS_HELP, NeuralConfig, NeuralMethod
from ncli.methods.registry import Example, option, register
from ncli.models.neural_decoders import POYODecoder


@dataclass
class POYOConfig(NeuralConfig):
    hidden: int = option(64, HIDDEN_HELP, param="dim")
    layers: int = option(1, LAYERS_HELP)
    context: float = option(1.0, "Context window (s).", positive=True)
    n_latents: Optional[int] = option(None, N_LATENTS_HELP, show_default=False)


@register
class POYO(NeuralMethod):
    """POYO-style transformer decoder on spike times."""

    name = "poyo"
    summary = "transformer over spike tokens in a context window"
    Config = POYOConfig
    estimator = POYODecoder
    example = Example(setup=(("simulate", "reach", "--units", "12", "--duration", "30"),),
                      args=("--target", "velocity", "--steps", "5", "--folds", "2", "--hidden", "16",
                            "--context", "0.5", "--no-refit"))

    def make_decoder(self, seed: int, device: str):
        c = self.config
        return POYODecoder(context=c.context, dim=c.hidden, depth=max(1, c.layers + 1), n_latents=c.n_latents or 8,
                           steps=c.steps, seed=seed, device=device, lr=c.lr)
