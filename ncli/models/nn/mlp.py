"""A plain multilayer perceptron with LeakyReLU (CANDY's per-session encoders).

The torch class is built on first access (see :mod:`ncli.models.nn._lazy`).
"""

from __future__ import annotations

from typing import Sequence

from ncli.models.nn._lazy import lazy_classes

__all__ = ["MLP"]


def _build() -> dict:
    from torch import nn

    class MLP(nn.Module):
        """Linear or MLP (LeakyReLU) map ``(..., n_in) -> (..., n_out)``; no activation after the last layer.

        Parameters
        ----------
        n_in, n_out : int
        hidden : sequence of int
            Hidden layer sizes (empty: one linear map).
        slope : float
            Negative slope of the LeakyReLU.

        Attributes
        ----------
        layers : ModuleList of Linear
        """

        def __init__(self, n_in: int, n_out: int, hidden: Sequence[int], slope: float = 0.01):
            super().__init__()
            sizes = [n_in, *hidden, n_out]
            self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
            self.act = nn.LeakyReLU(slope)

        def forward(self, x):
            """x (..., n_in) -> (..., n_out)."""
            for i, layer in enumerate(self.layers):
                x = layer(x)
                if i < len(self.layers) - 1:
                    x = self.act(x)
            return x

    return {"MLP": MLP}


__getattr__ = lazy_classes(__name__, _build, tuple(__all__))
