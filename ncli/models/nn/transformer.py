"""Pre-norm transformer layer with an optional additive attention bias (NuCLR's encoder layers).

``x + Attn(LN(x))`` then ``x + FF(LN(x))`` with a GELU feed-forward of width
``2 d`` (Vaswani et al. 2017, NeurIPS; pre-norm as in Xiong et al. 2020, ICML).
Attention runs over the second-last dimension of any ``(..., L, d)`` input, so
one layer attends over time within each unit or across units at each time.

POYO's self-attention layers are ``torch.nn.TransformerEncoderLayer``
(``norm_first=True``, ReLU) and stay so: their parameter names are in saved
stores, and a ReLU layer is not this GELU one.

The torch class is built on first access (see :mod:`ncli.models.nn._lazy`).
"""

from __future__ import annotations

from ncli.models.nn._lazy import lazy_classes

__all__ = ["PreNormBlock"]


def _build() -> dict:
    from torch import nn

    class PreNormBlock(nn.Module):
        """Pre-norm transformer layer over the second-last dim of (..., L, d), with an optional logit bias.

        Parameters
        ----------
        d : int
            Width (a multiple of ``heads``).
        heads : int
        """

        def __init__(self, d: int, heads: int):
            super().__init__()
            self.d, self.heads = d, heads
            self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv = nn.Linear(d, 3 * d)
            self.out = nn.Linear(d, d)
            self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

        def forward(self, x, bias=None):
            """x: (..., L, d); bias: None or broadcastable to (..., heads, L, L), added to the attention logits."""
            d, heads = self.d, self.heads
            *lead, L, _ = x.shape
            qkv = self.qkv(self.norm1(x)).reshape(*lead, L, 3, heads, d // heads)
            q, k, v = qkv.movedim(-3, 0).transpose(-3, -2).unbind(0)  # each (..., heads, L, d / heads)
            a = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
            x = x + self.out(a.transpose(-3, -2).reshape(*lead, L, d))
            return x + self.ff(self.norm2(x))

    return {"PreNormBlock": PreNormBlock}


__getattr__ = lazy_classes(__name__, _build, tuple(__all__))
