"""Rotary time embeddings (RoFormer, Su et al. 2021, §3.4; used on spike times as in POYO §2.2).

The torch class is built on first access (see :mod:`ncli.models.nn._lazy`).
"""

from __future__ import annotations

import math

from ncli.models.nn._lazy import lazy_classes

__all__ = ["Rotary"]


def _build() -> dict:
    import torch
    from torch import nn

    class Rotary(nn.Module):
        """Rotary time embedding: rotates feature pairs by ``2π t / period`` (RoFormer §3.4, POYO §2.2).

        Feature pair ``(x_{2i}, x_{2i+1})`` is rotated by the angle ``ω_i t``,
        ``ω_i = 2π / p_i``, with periods ``p_i`` log-spaced from ``t_min`` to
        ``t_max`` seconds. The dot product of a rotated query and key depends on
        their time difference only (RoFormer Eq. 16).

        Parameters
        ----------
        dim : int
            Feature width (even; one angle per pair, ``dim // 2`` periods).
        t_min, t_max : float
            Shortest and longest period (s).
        """

        def __init__(self, dim: int, t_min: float = 1e-3, t_max: float = 4.0):
            super().__init__()
            periods = torch.exp(torch.linspace(math.log(t_min), math.log(t_max), dim // 2))
            self.register_buffer("omega", 2 * math.pi / periods, persistent=False)

        def forward(self, x, t):
            """Rotate ``x`` (..., dim) by times ``t`` (...) in seconds; returns (..., dim)."""
            ang = t.unsqueeze(-1) * self.omega
            cos, sin = torch.cos(ang), torch.sin(ang)
            x1, x2 = x[..., 0::2], x[..., 1::2]
            out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
            return out.flatten(-2)

    return {"Rotary": Rotary}


__getattr__ = lazy_classes(__name__, _build, tuple(__all__))
