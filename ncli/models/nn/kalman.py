"""A linear dynamical system with a stable transition and a differentiable Kalman filter (torch; CANDY).

``x_{t+1} = A x_t + w_t`` (``w ~ N(0, Q)``), ``a_t = C x_t + r_t``
(``r ~ N(0, R)``), learned end-to-end through the filter with a k-step
prediction loss (CANDY, NeurIPS 2025; Kalman 1960). The numpy filters of
``ncli.models.kalman`` / ``ncli.models.lds`` are for fitted models; this one
is for training through.

The torch class is built on first access (see :mod:`ncli.models.nn._lazy`).
"""

from __future__ import annotations

import math

from ncli.models.nn._lazy import lazy_classes

__all__ = ["KalmanLDS"]


def _build() -> dict:
    import torch
    from torch import nn

    class KalmanLDS(nn.Module):
        """Shared LDS with a stable ``A = U diag(σ) Vᵀ`` and a differentiable Kalman filter.

        ``U = exp(S_U - S_Uᵀ)``, ``V = exp(S_V - S_Vᵀ)`` (orthogonal),
        ``σ = max_singular · sigmoid(s)``, so ``‖A‖₂ < 1`` and every eigenvalue
        lies inside the unit circle. ``Q = L_Q L_Qᵀ + εI``, ``R = diag(softplus)``.

        Parameters
        ----------
        state_dim : int
            State dimension m.
        obs_dim : int
            Observation dimension p.
        generator : torch.Generator
            Draws the initial ``C`` (p, m).
        max_singular : float
            Largest singular value of ``A``.
        """

        def __init__(self, state_dim: int, obs_dim: int, generator, max_singular: float = 0.999):
            super().__init__()
            m, p = state_dim, obs_dim
            self.max_singular = max_singular
            self.skew_u = nn.Parameter(torch.zeros(m, m))
            self.skew_v = nn.Parameter(torch.zeros(m, m))
            self.sing = nn.Parameter(torch.full((m,), 2.0))  # σ ≈ 0.88 at the start
            self.C = nn.Parameter(torch.randn(p, m, generator=generator) / math.sqrt(m))
            self.q_chol = nn.Parameter(0.3 * torch.eye(m))
            self.r_raw = nn.Parameter(torch.full((p,), -1.0))

        def A(self):
            """The transition matrix (m, m)."""
            U = torch.linalg.matrix_exp(self.skew_u - self.skew_u.T)
            V = torch.linalg.matrix_exp(self.skew_v - self.skew_v.T)
            return U @ torch.diag(self.max_singular * torch.sigmoid(self.sing)) @ V.T

        def Q(self):
            """State noise covariance (m, m)."""
            L = torch.tril(self.q_chol)
            return L @ L.T + 1e-4 * torch.eye(L.shape[0], dtype=L.dtype, device=L.device)

        def R(self):
            """Observation noise covariance (p, p), diagonal."""
            return torch.diag(nn.functional.softplus(self.r_raw) + 1e-4)

        def filter(self, a):
            """Filtered means ``x_{t|t}`` (B, L, m) of windows ``a`` (B, L, p).

            The covariance recursion does not depend on the data, so gains are
            computed once per time step and shared by the batch (Joseph-form update).
            """
            B, L, _ = a.shape
            A, C, Q, R = self.A(), self.C, self.Q(), self.R()
            m = A.shape[0]
            eye = torch.eye(m, dtype=a.dtype, device=a.device)
            x = torch.zeros(B, m, dtype=a.dtype, device=a.device)
            P = eye.clone()
            out = []
            for t in range(L):
                S = C @ P @ C.T + R
                K = torch.linalg.solve(S, C @ P).T  # P Cᵀ S⁻¹ (S, P symmetric)
                x = x + (a[:, t] - x @ C.T) @ K.T
                IKC = eye - K @ C
                P = IKC @ P @ IKC.T + K @ R @ K.T
                out.append(x)
                x = x @ A.T
                P = A @ P @ A.T + Q
            return torch.stack(out, 1)

        def prediction_loss(self, a, horizon: int):
            """Mean over k = 1..horizon of ``|a_{t+k} - C A^k x_{t|t}|²`` / total variance of ``a`` (B, L, p)."""
            xf = self.filter(a)
            A = self.A()
            var = a.reshape(-1, a.shape[-1]).var(0).sum() + 1e-8
            total = 0.0
            x = xf
            for k in range(1, horizon + 1):
                x = x @ A.T
                pred = x[:, :-k] @ self.C.T
                total = total + ((a[:, k:] - pred) ** 2).sum(-1).mean() / var
            return total / horizon

    return {"KalmanLDS": KalmanLDS}


__getattr__ = lazy_classes(__name__, _build, tuple(__all__))
