"""Diagonal state-space layer S4D and the recurrent backbone of POSSM (GRU or an S4D stack).

References
----------
Gu, Gupta, Goel & Ré (2022) On the parameterization and initialization of
diagonal state space models. NeurIPS 2022, §3 (S4D; ZOH discretisation,
S4D-Lin initialisation ``A_n = -1/2 + iπn``).
Cho et al. (2014) EMNLP (GRU). Ryoo et al. (2025) NeurIPS, §3.2 (POSSM backbone).

The torch classes are built on first access (see :mod:`ncli.models.nn._lazy`).
"""

from __future__ import annotations

import math

from ncli.models.nn._lazy import lazy_classes

__all__ = ["S4DLayer", "Backbone"]


def _build() -> dict:
    import torch
    from torch import nn

    class S4DLayer(nn.Module):
        """Diagonal state-space layer (S4D-Lin), residual + GELU + LayerNorm.

        ``x_k = Ā x_{k-1} + B̄ u_k``, ``y_k = 2 Re(C x_k) + D u_k``, with
        ``Ā = exp(Δ A)``, ``B̄ = (Ā - 1)/A · B`` (zero-order hold), ``A_n = -1/2 + iπn``
        (Gu et al. 2022, Eqs. 3-5). Training windows use the convolution kernel
        ``K_l = 2 Re(C B̄ Ā^l)`` (FFT); prediction and streaming use the
        recurrence (exactly causal). Output ``LN(u + W GELU(y))``.

        Parameters
        ----------
        dim : int
            Channels (one independent SSM per channel).
        state : int
            State size per channel (``state // 2`` complex modes).
        dt_min, dt_max : float
            Range of the log-uniform initial step ``Δ``.
        """

        def __init__(self, dim: int, state: int = 32, dt_min: float = 0.01, dt_max: float = 0.5):
            super().__init__()
            n = state // 2
            self.log_dt = nn.Parameter(torch.rand(dim) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
            self.log_a_re = nn.Parameter(torch.log(0.5 * torch.ones(dim, n)))
            self.a_im = nn.Parameter(math.pi * torch.arange(n).float().repeat(dim, 1))
            self.c = nn.Parameter(torch.randn(dim, n, 2) * math.sqrt(0.5))
            self.d = nn.Parameter(torch.ones(dim))
            self.mix = nn.Linear(dim, dim)
            self.norm = nn.LayerNorm(dim)

        def _disc(self):
            a = torch.complex(-torch.exp(self.log_a_re), self.a_im)
            dt = torch.exp(self.log_dt).unsqueeze(-1)
            log_abar = a * dt
            abar = torch.exp(log_abar)
            cb = torch.view_as_complex(self.c) * (abar - 1) / a  # C·B̄ with B = 1
            return abar, cb, log_abar

        def _post(self, u, y):
            return self.norm(u + self.mix(torch.nn.functional.gelu(y)))

        def forward(self, u, conv: bool = True):
            """u (B, L, dim) from a zero state -> (B, L, dim); ``conv`` uses the FFT kernel, else the recurrence."""
            B, L, Hd = u.shape
            abar, cb, log_abar = self._disc()
            if conv:
                pw = torch.exp(log_abar.unsqueeze(-1) * torch.arange(L, device=u.device))  # (H, n, L)
                kern = 2 * torch.einsum("hn,hnl->hl", cb, pw).real
                n_fft = 2 * L
                y = torch.fft.irfft(torch.fft.rfft(u.transpose(1, 2), n_fft) * torch.fft.rfft(kern, n_fft), n_fft)
                y = y[..., :L].transpose(1, 2)
            else:
                x = torch.zeros(B, Hd, abar.shape[1], dtype=abar.dtype, device=u.device)
                ys = []
                for t in range(L):
                    x = abar * x + u[:, t].unsqueeze(-1)
                    ys.append(2 * (cb * x).real.sum(-1))
                y = torch.stack(ys, 1)
            return self._post(u, y + self.d * u)

        def step(self, u, x):
            """One step: u (B, dim), state x (B, dim, n) complex or None -> (y (B, dim), x)."""
            abar, cb, _ = self._disc()
            if x is None:
                x = torch.zeros(u.shape[0], u.shape[1], abar.shape[1], dtype=abar.dtype)
            x = abar * x + u.unsqueeze(-1)
            y = 2 * (cb * x).real.sum(-1)
            return self._post(u, y + self.d * u), x

    class Backbone(nn.Module):
        """GRU or S4D stack over per-chunk inputs; ``forward`` over sequences, ``step`` online.

        Parameters
        ----------
        kind : {"gru", "s4d"}
        d_in : int
            Input width (a linear map to ``hidden`` first).
        hidden : int
        layers : int
        """

        def __init__(self, kind: str, d_in: int, hidden: int, layers: int):
            super().__init__()
            self.kind = kind
            self.inp = nn.Linear(d_in, hidden)
            if kind == "gru":
                self.rnn = nn.GRU(hidden, hidden, num_layers=layers, batch_first=True)
            else:
                self.ssm = nn.ModuleList([S4DLayer(hidden) for _ in range(layers)])

        def forward(self, x, conv: bool = True):
            """x (B, L, d_in) from a zero state -> states (B, L, hidden)."""
            h = self.inp(x)
            if self.kind == "gru":
                return self.rnn(h)[0]
            for layer in self.ssm:
                h = layer(h, conv=conv)
            return h

        def step(self, x, state):
            """One step: x (B, d_in), state (None at the start) -> (h (B, hidden), new state)."""
            h = self.inp(x)
            if self.kind == "gru":
                out, state = self.rnn(h.unsqueeze(1), state)
                return out[:, 0], state
            state = state or [None] * len(self.ssm)
            new = []
            for layer, s in zip(self.ssm, state):
                h, s = layer.step(h, s)
                new.append(s)
            return h, new

    return {"S4DLayer": S4DLayer, "Backbone": Backbone}


__getattr__ = lazy_classes(__name__, _build, tuple(__all__))
