"""``ncli inpaint --method neuropaint``: masked autoencoding of whole areas across sessions (NeuroPaint).

See docs/commands/inpaint.md; numerics in :class:`ncli.models.neuropaint.NeuroPaint`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ncli.methods.inpaint._base import InpaintMethod
from ncli.methods.registry import Example, option, register


@dataclass
class NeuroPaintConfig:
    """Options of ``--method neuropaint``."""

    factors: int = option(8, "Factors per area (latents/NAME/<area> is (T, FACTORS)).", minimum=1,
                          param="n_factors")
    d_model: int = option(32, "Token width.", minimum=4)
    queries: int = option(4, "Learned queries (area channels) per area.", minimum=1, param="n_queries")
    layers: int = option(2, "Transformer layers over the (time x area) tokens.", minimum=1, param="n_layers")
    mask_ratio: float = option(0.6, "Largest fraction of a window's recorded areas masked in training.",
                               minimum=0.0, maximum=0.9)
    smoothness: float = option(0.05, "Weight of the temporal smoothness penalty.", minimum=0.0)
    consistency: float = option(0.02, "Weight of the cross-session consistency term (0: the ablation).",
                                minimum=0.0)
    steps: int = option(300, "Optimiser steps.", minimum=1, param="n_steps")
    batch: int = option(8, "Windows of every session per step.", minimum=1, param="batch_windows")
    lr: float = option(1e-2, "Learning rate (AdamW).", positive=True)


@register
class NeuroPaintMethod(InpaintMethod):
    """NeuroPaint."""

    name = "neuropaint"
    summary = "NeuroPaint: area queries, masked areas, transformer over time x area (NeurIPS 2025)"
    Config = NeuroPaintConfig
    estimator = "ncli.models.neuropaint:NeuroPaint"
    example = Example(setup=(("simulate", "areas", "--units-per-area", "20", "--sessions", "3", "--trials", "6",
                              "--bins", "10"),),
                      args=("--steps", "2", "--d-model", "8"))

    def make_model(self, n_areas: int, seed: int):
        from ncli.models.neuropaint import NeuroPaint

        c = self.config
        return NeuroPaint(n_areas=n_areas, n_factors=c.factors, d_model=c.d_model, n_queries=c.queries,
                          n_layers=c.layers, mask_ratio=c.mask_ratio, smoothness=c.smoothness,
                          consistency=c.consistency, n_steps=c.steps, batch_windows=c.batch, lr=c.lr, seed=seed)
