"""``decode --method gru``: a GRU on square-root binned counts (:class:`ncli.models.neural_decoders.GRUDecoder`).

Square-root counts -> linear map (rows of a unit-embedding table) -> GRU
(``--hidden``, ``--layers``) -> linear readout at every bin; the bin-based
recurrent baseline of the spike-token decoders (Cho et al. 2014; Glaser et al. 2020).
"""

from __future__ import annotations

from dataclasses import dataclass

from ncli.methods.decode._neural import HIDDEN_HELP, LAYERS_HELP, NeuralConfig, NeuralMethod
from ncli.methods.registry import Example, option, register
from ncli.models.neural_decoders import GRUDecoder


@dataclass
class GRUConfig(NeuralConfig):
    hidden: int = option(64, HIDDEN_HELP)
    layers: int = option(1, LAYERS_HELP)
    window: int = option(64, "Training window (bins).")


@register
class GRU(NeuralMethod):
    """GRU decoder on binned counts."""

    name = "gru"
    summary = "GRU on square-root binned counts"
    Config = GRUConfig
    estimator = GRUDecoder
    reads_counts = True
    example = Example(setup=(("simulate", "reach", "--units", "12", "--duration", "30"),),
                      args=("--target", "velocity", "--steps", "5", "--folds", "2", "--hidden", "8", "--no-refit"))

    def make_decoder(self, seed: int, device: str):
        c = self.config
        return GRUDecoder(hidden=c.hidden, layers=c.layers, window=c.window, steps=c.steps, seed=seed,
                          device=device, lr=c.lr)
