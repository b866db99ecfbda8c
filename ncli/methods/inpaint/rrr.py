"""``ncli inpaint --method rrr``: NeuroPaint-Linear, linear encoders into a shared low-rank map.

See docs/commands/inpaint.md; numerics in :class:`ncli.models.neuropaint.NeuroPaintLinear`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ncli.methods.inpaint._base import InpaintMethod
from ncli.methods.registry import Example, option, register


@dataclass
class RRRConfig:
    """Options of ``--method rrr``."""

    factors: int = option(8, "Factors per area (latents/NAME/<area> is (T, FACTORS)).", minimum=1,
                          param="n_factors")
    rank: int = option(16, "Rank of the shared map from every area's code to every area's factors.", minimum=1)
    mask_ratio: float = option(0.6, "Largest fraction of a window's recorded areas masked in training.",
                               minimum=0.0, maximum=0.9)
    smoothness: float = option(0.05, "Weight of the temporal smoothness penalty.", minimum=0.0)
    consistency: float = option(0.0, "Weight of the cross-session consistency term.", minimum=0.0)
    steps: int = option(300, "Optimiser steps.", minimum=1, param="n_steps")
    batch: int = option(8, "Windows of every session per step.", minimum=1, param="batch_windows")
    lr: float = option(1e-2, "Learning rate (AdamW).", positive=True)


@register
class RRRMethod(InpaintMethod):
    """NeuroPaint-Linear."""

    name = "rrr"
    summary = "NeuroPaint-Linear: per-area linear encoders, shared low-rank map, remasking"
    Config = RRRConfig
    estimator = "ncli.models.neuropaint:NeuroPaintLinear"
    example = Example(setup=(("simulate", "areas", "--units-per-area", "20", "--sessions", "3", "--trials", "6",
                              "--bins", "10"),),
                      args=("--steps", "2"))

    def make_model(self, n_areas: int, seed: int):
        from ncli.models.neuropaint import NeuroPaintLinear

        c = self.config
        return NeuroPaintLinear(n_areas=n_areas, n_factors=c.factors, rank=c.rank, mask_ratio=c.mask_ratio,
                                smoothness=c.smoothness, consistency=c.consistency, n_steps=c.steps,
                                batch_windows=c.batch, lr=c.lr, seed=seed)
