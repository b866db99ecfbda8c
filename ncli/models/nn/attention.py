"""Attention blocks of the spike-token decoders (POSSM, POYO).

- :class:`SpikeCrossAttention`: learned latent queries cross-attend to spike
  tokens (unit embedding from an extendable vocabulary, rotary time) plus a
  learned null token, for many segments (chunks or context windows) at once
  (POYO, Azabou et al. NeurIPS 2023, §2.1-2.2; POSSM, Ryoo et al. NeurIPS
  2025, §3.1; Perceiver latents, Jaegle et al. ICML 2021).
- :class:`OutputAttention`: an output query (plus the session embedding)
  attends over the last ``k`` backbone states (POSSM §3.3).

The torch classes are built on first access (see :mod:`ncli.models.nn._lazy`).
"""

from __future__ import annotations

import math

from ncli.models.nn._lazy import lazy_classes

__all__ = ["SpikeCrossAttention", "OutputAttention"]


def _build() -> dict:
    import torch
    from torch import nn

    from ncli.models.nn.rotary import Rotary

    class SpikeCrossAttention(nn.Module):
        """Learned latent queries (with times) attending to spike tokens of many segments at once.

        Segments (chunks or context windows) are given as a flat token list with
        a segment index, so no padding enters the computation and each segment's
        result depends on its own tokens only. Softmax over the tokens of a
        segment plus a learned null token (always present, so an empty segment
        gives a finite result). Attention is over a set: the order of the
        tokens inside a segment does not matter.

        For latent ``l``, head ``h`` and segment ``g`` (POYO §2.2)::

            s_il = <R(t_i) k_i, R(τ_l) q_l> / sqrt(d_h),   k_i, v_i = W_kv LN(E[u_i])
            z_l  = q_l + W_o (e^{s_0l} v_0 + Σ_{i ∈ g} e^{s_il} v_i) / (e^{s_0l} + Σ_{i ∈ g} e^{s_il})

        then a residual MLP. ``R`` is the rotary embedding, ``E`` the unit
        embedding table (one row per vocabulary key), ``(k_0, v_0)`` the null token.

        Parameters
        ----------
        n_units : int
            Vocabulary size (rows of ``unit_emb``).
        dim : int
            Token / latent width (a multiple of ``2 * heads``).
        n_latents : int
            Latent queries per segment.
        heads : int
        latent_times : (n_latents,) array
            Time of each latent query (s, relative to the segment's end).
        null_bias : float
            Initial logit of the null token.
        sum_pool : bool
            Add a linear map of the (scaled) sum of the segment's token values
            (POSSM's count pathway in ncli).
        """

        def __init__(self, n_units: int, dim: int, n_latents: int, heads: int, latent_times,
                     null_bias: float = 0.0, sum_pool: bool = False):
            super().__init__()
            self.null_bias = nn.Parameter(torch.full((n_latents, heads), float(null_bias)))
            self.sum_pool = nn.Linear(dim, dim) if sum_pool else None
            self.dim, self.heads, self.n_latents = dim, heads, n_latents
            self.unit_emb = nn.Embedding(max(n_units, 1), dim)
            nn.init.normal_(self.unit_emb.weight, std=1.0)
            self.latents = nn.Parameter(torch.randn(n_latents, dim) * 0.5)
            self.register_buffer("latent_times", torch.as_tensor(latent_times, dtype=torch.float32))
            self.norm_tok = nn.LayerNorm(dim)
            self.norm_lat = nn.LayerNorm(dim)
            self.q = nn.Linear(dim, dim, bias=False)
            self.kv = nn.Linear(dim, 2 * dim, bias=False)
            self.null_kv = nn.Parameter(torch.randn(2, dim) * 0.1)
            self.out = nn.Linear(dim, dim)
            self.rope = Rotary(dim // heads)
            self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

        def forward(self, token, offset, segment, n_segments: int):
            """Latents of every segment.

            Parameters
            ----------
            token : (S,) int64 tensor
                Vocabulary row of each token's unit.
            offset : (S,) float tensor
                Token time relative to its segment's end (s).
            segment : (S,) int64 tensor
                Segment of each token, in ``[0, n_segments)``.
            n_segments : int

            Returns
            -------
            (n_segments, n_latents, dim) tensor
            """
            H, dh, Lq = self.heads, self.dim // self.heads, self.n_latents
            kv_unit = self.kv(self.norm_tok(self.unit_emb.weight))  # (V, 2·dim), per unit, not per spike
            kv = kv_unit[token]
            k = self.rope(kv[:, : self.dim].reshape(-1, H, dh), offset.unsqueeze(-1).expand(-1, H))
            v = kv[:, self.dim:].reshape(-1, H, dh)
            q = self.q(self.norm_lat(self.latents)).reshape(Lq, H, dh)
            q = self.rope(q, self.latent_times.unsqueeze(-1).expand(-1, H)) / math.sqrt(dh)
            s = torch.einsum("shd,lhd->slh", k, q)  # (S, Lq, H)
            k0, v0 = self.null_kv[0].reshape(H, dh), self.null_kv[1].reshape(H, dh)
            s0 = torch.einsum("hd,lhd->lh", k0, q) + self.null_bias  # (Lq, H)
            with torch.no_grad():
                m = s0.expand(n_segments, Lq, H).contiguous()
                if s.shape[0]:
                    m = m.scatter_reduce(0, segment.view(-1, 1, 1).expand_as(s), s, "amax", include_self=True)
            e = torch.exp(s - m[segment])
            e0 = torch.exp(s0.unsqueeze(0) - m)  # (n_seg, Lq, H)
            den = e0.index_add(0, segment, e)
            num = (e0.unsqueeze(-1) * v0).index_add(0, segment, e.unsqueeze(-1) * v.unsqueeze(1))
            att = (num / den.unsqueeze(-1)).reshape(n_segments, Lq, self.dim)
            z = self.latents + self.out(att)
            if self.sum_pool is not None:  # count pathway: the (scaled) sum of the chunk's token values
                pooled = torch.zeros(n_segments, self.dim, dtype=v.dtype, device=v.device).index_add(
                    0, segment, v.reshape(-1, self.dim))
                z = z + self.sum_pool(pooled / 8.0).unsqueeze(1)
            return z + self.mlp(z)

    class OutputAttention(nn.Module):
        """Output query (plus session embedding) attending over the last k backbone states (POSSM §3.3).

        Keys carry rotary times (each state's time relative to the output
        time); invalid states (before the start of the sequence) are masked.
        Readout: ``W_r LN(ctx + h_newest)``.

        Parameters
        ----------
        hidden : int
            Backbone width (a multiple of ``2 * heads``).
        n_out : int
            Outputs (behaviour dimensions or classes).
        heads : int
        k : int
            States attended over.
        state_times : (k,) array
            Time of each state relative to the output time (s), oldest first.
        """

        def __init__(self, hidden: int, n_out: int, heads: int, k: int, state_times):
            super().__init__()
            self.heads, self.k, self.hidden = heads, k, hidden
            self.query = nn.Parameter(torch.randn(hidden) * 0.1)
            self.qp = nn.Linear(hidden, hidden, bias=False)
            self.kv = nn.Linear(hidden, 2 * hidden, bias=False)
            self.rope = Rotary(hidden // heads, t_min=1e-2, t_max=2.0)
            self.register_buffer("state_times", torch.as_tensor(state_times, dtype=torch.float32))
            self.norm = nn.LayerNorm(hidden)
            self.read = nn.Linear(hidden, n_out)

        def forward(self, states, valid, sess):
            """Outputs from states (M, k, hidden) newest last, valid (M, k) bool, sess (M, hidden) -> (M, n_out)."""
            H, dh = self.heads, self.hidden // self.heads
            kv = self.kv(states)
            kk = self.rope(kv[..., : self.hidden].reshape(*states.shape[:2], H, dh),
                           self.state_times.view(1, -1, 1).expand(states.shape[0], -1, H))
            v = kv[..., self.hidden:].reshape(*states.shape[:2], H, dh)
            q = self.qp(self.query + sess).reshape(-1, 1, H, dh) / math.sqrt(dh)
            s = (kk * q).sum(-1).masked_fill(~valid.unsqueeze(-1), float("-inf"))
            w = torch.softmax(s, dim=1)
            ctx = (w.unsqueeze(-1) * v).sum(1).reshape(-1, self.hidden)
            return self.read(self.norm(ctx + states[:, -1]))

    return {"SpikeCrossAttention": SpikeCrossAttention, "OutputAttention": OutputAttention}


__getattr__ = lazy_classes(__name__, _build, tuple(__all__))
