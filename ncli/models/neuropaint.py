"""NeuroPaint: inferring the dynamics of unrecorded brain areas from many partially recorded sessions.

Source: "Inpainting the Neural Picture: Inferring Unrecorded Brain Area
Dynamics from Multi-Animal Datasets" (NeuroPaint, NeurIPS 2025). Written from
the paper's description; no code of the authors is used.

Data: sessions, each recording a subset of ``A`` areas, cut into windows of
``W`` bins (trials). :class:`AreaSession` holds one session's counts
(n_windows, W, N), the area of each neuron and an optional condition label
per window.

:class:`NeuroPaint` (torch):

1. **Area encoder.** Every neuron is a token: a linear embedding of its
   (square-rooted, per-neuron centred) time series in the window, plus a
   learned unit embedding (per session and neuron) and the embedding of its
   area. Per area, ``n_queries`` learned queries cross-attend over that
   area's neuron tokens (softmax over neurons, no positional information over
   neurons, so the result does not depend on neuron order or count); channel
   ``q`` at bin ``t`` is ``sum_n alpha_qn v_nq x_nt``, the attention-weighted
   activity. The ``n_queries`` channels become one ``d_model`` token per
   (bin, area).
2. **Masking.** While training, a random subset of the recorded areas of
   each window (at most ``mask_ratio`` of them, at least one kept) is masked;
   masked and never-recorded areas get the learned mask token instead. The
   area embedding is added to every token.
3. **Transformer** over the (time x area) tokens of a window with rotary
   time encoding (RoFormer) on queries and keys.
4. **Factors and readouts.** A per-area linear head gives ``n_factors``
   factors per (bin, area): the ``latents/neuropaint/<area>``. Per session and
   neuron, a linear readout of its own area's factors gives the log-rate.

Loss: Poisson negative log-likelihood of every recorded neuron (masked ones
included, the inpainting signal) + ``smoothness`` x mean squared bin-to-bin
change of the factors + ``consistency`` x the cross-session consistency term.

Consistency (the choice made here): for every area and condition, the
trial-averaged factor trajectory of each session in the mini-batch is pulled
toward the average over sessions (windows without a condition label form one
condition). Factors are divided by their batch standard deviation first so
neither penalty can be met by shrinking the factors. It ties the factors of an
area across sessions, which is what lets an area recorded in some sessions be
read out where it was not. ``consistency=0`` is the ablation.

:class:`NeuroPaintLinear` (NeuroPaint-Linear, the paper's linear baseline):
per-session, per-area linear encoders of the (Gaussian-smoothed) activity
into ``rank`` dims per area, a shared low-rank linear map from all areas'
codes to every area's factors (masked areas contribute zero, the rest are
rescaled by A / visible), and the same per-neuron linear readouts, fitted with
the same random remasking and loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ncli.core.errors import DataError
from ncli.models.base import Estimator, check_fitted, check_params


@dataclass
class AreaSession:
    """One session for NeuroPaint.

    Attributes
    ----------
    counts : (n_windows, W, N) float
        Spike counts per bin.
    area : (N,) int
        Area index (0..A-1) of each neuron.
    condition : (n_windows,) int or None
        Condition of each window (for the consistency term); None: one condition.
    """

    counts: np.ndarray
    area: np.ndarray
    condition: np.ndarray | None = None


def _prepare(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sqrt counts centred per neuron: (n_windows, W, N) and the per-neuron mean (N,)."""
    x = np.sqrt(np.asarray(counts, dtype=np.float64))
    mean = x.reshape(-1, x.shape[-1]).mean(axis=0)
    return (x - mean).astype(np.float32), mean


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along axis 1 (bins) of (n, W, N), edges renormalised."""
    if sigma <= 0:
        return x
    r = math.ceil(3 * sigma)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    W = x.shape[1]
    K = np.zeros((W, W))
    for t in range(W):
        lo, hi = max(0, t - r), min(W, t + r + 1)
        K[t, lo:hi] = k[lo - t + r:hi - t + r]
    K /= K.sum(axis=1, keepdims=True)
    return np.einsum("st,ntm->nsm", K, x).astype(np.float32)


def _build_nets():
    import torch
    from torch import nn

    from ncli.models.nn.rotary import Rotary

    class RotaryBlock(nn.Module):
        """Pre-norm transformer layer whose queries and keys are rotated by each token's bin index."""

        def __init__(self, d: int, heads: int, n_bins: int):
            super().__init__()
            self.d, self.heads = d, heads
            self.n1, self.n2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv = nn.Linear(d, 3 * d)
            self.out = nn.Linear(d, d)
            self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
            self.rot = Rotary(d // heads, t_min=2.0, t_max=4.0 * n_bins)

        def forward(self, x, t):
            """x (b, L, d), t (L,) bin index of each token."""
            b, L, d = x.shape
            q, k, v = self.qkv(self.n1(x)).reshape(b, L, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
            q, k = self.rot(q, t), self.rot(k, t)
            a = nn.functional.scaled_dot_product_attention(q, k, v)
            x = x + self.out(a.transpose(1, 2).reshape(b, L, d))
            return x + self.ff(self.n2(x))

    class Readouts(nn.Module):
        """Per-session, per-neuron linear readouts of the neuron's own area factors to log-rates."""

        def __init__(self, n_neurons: list, n_factors: int, log_mean: list):
            super().__init__()
            g = torch.Generator().manual_seed(0)
            self.w = nn.ParameterList([nn.Parameter(torch.randn(n, n_factors, generator=g) * 0.1)
                                       for n in n_neurons])
            self.b = nn.ParameterList([nn.Parameter(torch.as_tensor(m, dtype=torch.float32)) for m in log_mean])

        def forward(self, F, s: int, area):
            """F (b, W, A, K), area (N,) long -> log mean count (b, W, N)."""
            return (F[:, :, area, :] * self.w[s]).sum(-1) + self.b[s]

    class PaintNet(nn.Module):
        """NeuroPaint's network (see the module docstring)."""

        def __init__(self, n_areas, n_bins, n_neurons, log_mean, d_model, n_queries, n_layers, heads, n_factors):
            super().__init__()
            d, A = d_model, n_areas
            self.A, self.W = A, n_bins
            self.area_emb = nn.Parameter(torch.randn(A, d) * 0.1)
            self.mask_token = nn.Parameter(torch.zeros(d))
            self.series = nn.Linear(n_bins, d)
            self.unit_emb = nn.ParameterList([nn.Parameter(torch.randn(n, d) * 0.1) for n in n_neurons])
            self.queries = nn.Parameter(torch.randn(A, n_queries, d) * 0.5)
            self.value = nn.Linear(d, n_queries)
            self.to_token = nn.Linear(n_queries, d)
            self.blocks = nn.ModuleList([RotaryBlock(d, heads, n_bins) for _ in range(n_layers)])
            self.norm = nn.LayerNorm(d)
            self.head = nn.Parameter(torch.randn(A, d, n_factors) / math.sqrt(d))
            self.head_b = nn.Parameter(torch.zeros(A, n_factors))
            self.readouts = Readouts(n_neurons, n_factors, log_mean)

        def unit_embedding(self, s, n, neurons=None):
            if s is None:  # an unseen session: the mean embedding of the training sessions
                return torch.stack([e.mean(0) for e in self.unit_emb]).mean(0).expand(n, -1)
            return self.unit_emb[s] if neurons is None else self.unit_emb[s][neurons]

        def factors(self, x, s, area, visible, neurons=None):
            """x (b, W, N) centred sqrt counts, area (N,) long, visible (b, A) bool -> F (b, W, A, K).

            ``neurons`` (N,) long: which of session ``s``'s neurons the columns of x are (default: all, in order).
            """
            b, W, N = x.shape
            A = self.A
            key = self.series(x.transpose(1, 2)) + self.unit_embedding(s, N, neurons) + self.area_emb[area]
            scores = torch.einsum("aqd,bnd->baqn", self.queries, key) / math.sqrt(key.shape[-1])
            member = area[None, :] == torch.arange(A)[:, None]  # (A, N)
            has = member.any(1)
            scores = scores.masked_fill(~member[None, :, None, :], float("-inf"))
            scores = torch.where(has[None, :, None, None], scores, torch.zeros_like(scores))
            alpha = torch.softmax(scores, dim=-1)  # (b, A, q, N)
            v = self.value(key)  # (b, N, q)
            chan = torch.einsum("baqn,bnq,btn->btaq", alpha, v, x)
            tok = self.to_token(chan)  # (b, W, A, d)
            vis = (visible & has[None, :])[:, None, :, None]
            tok = torch.where(vis, tok, self.mask_token.expand_as(tok)) + self.area_emb
            h = tok.reshape(b, W * A, -1)
            t = torch.arange(W, dtype=torch.float32).repeat_interleave(A)
            for blk in self.blocks:
                h = blk(h, t)
            h = self.norm(h).reshape(b, W, A, -1)
            return torch.einsum("bwad,adk->bwak", h, self.head) + self.head_b

    class LinearNet(nn.Module):
        """NeuroPaint-Linear: per-session per-area encoders, a shared low-rank map, per-neuron readouts."""

        def __init__(self, n_areas, n_neurons, log_mean, rank, n_factors, code):
            super().__init__()
            A = n_areas
            self.A, self.code = A, code
            self.enc = nn.ParameterList([nn.Parameter(torch.randn(n, code) * 0.1) for n in n_neurons])
            self.U = nn.Parameter(torch.randn(A * code, rank) / math.sqrt(A * code))
            self.V = nn.Parameter(torch.randn(rank, A * n_factors) / math.sqrt(rank))
            self.c = nn.Parameter(torch.zeros(A * n_factors))
            self.K = n_factors
            self.readouts = Readouts(n_neurons, n_factors, log_mean)

        def factors(self, x, s, area, visible, neurons=None):
            """x (b, W, N), area (N,), visible (b, A) -> F (b, W, A, K); ``neurons`` as PaintNet's."""
            b, W, N = x.shape
            A = self.A
            member = (area[None, :] == torch.arange(A)[:, None]).float()  # (A, N)
            enc = torch.zeros(N, self.code) if s is None else (self.enc[s] if neurons is None else
                                                                self.enc[s][neurons])
            z = torch.einsum("btn,nc,an->btac", x, enc, member) / member.sum(1).clamp(min=1)[:, None]
            vis = (visible & (member.sum(1) > 0)[None, :]).float()  # (b, A)
            z = z * vis[:, None, :, None] * (A / vis.sum(1).clamp(min=1))[:, None, None, None]
            F = z.reshape(b, W, A * self.code) @ self.U @ self.V + self.c
            return F.reshape(b, W, A, self.K)

    return {"PaintNet": PaintNet, "LinearNet": LinearNet}


class _AreaModel(Estimator):
    """Shared fitting of NeuroPaint and NeuroPaint-Linear: masking, losses, training loop, save/load."""

    _learned = ("loss_history_", "n_neurons_", "neuron_mean_")
    _learned_scalars = ("epoch_seconds_", "peak_memory_mb_")

    def _check(self) -> None:
        check_params([
            (self.n_areas >= 2, f"{{n_areas}} must be at least 2, got {self.n_areas}", "n_areas"),
            (self.n_factors >= 1, f"{{n_factors}} must be at least 1, got {self.n_factors}", "n_factors"),
            (0 <= self.mask_ratio <= 0.9, f"{{mask_ratio}} must be in [0, 0.9], got {self.mask_ratio}",
             "mask_ratio"),
            (self.n_steps >= 1, f"{{n_steps}} must be at least 1, got {self.n_steps}", "n_steps"),
            (self.batch_windows >= 1, f"{{batch_windows}} must be at least 1, got {self.batch_windows}",
             "batch_windows"),
            (self.consistency >= 0, f"{{consistency}} must be >= 0, got {self.consistency}", "consistency"),
            (self.smoothness >= 0, f"{{smoothness}} must be >= 0, got {self.smoothness}", "smoothness"),
        ])

    def _inputs(self, counts):
        raise NotImplementedError

    def _make_net(self, n_bins, n_neurons, log_mean):
        raise NotImplementedError

    def fit(self, sessions: list[AreaSession], progress=None) -> _AreaModel:
        """Fit on every session's windows.

        Parameters
        ----------
        sessions : list of AreaSession
            Windows of equal length ``W`` in every session.
        progress : callable, optional
            ``progress(step, loss)``.

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            A bad hyperparameter.
        DataError
            No sessions, or windows of unequal length. (A store whose sessions each record one area is
            refused by the command before fitting; here such data fits without masking.)
        """
        import time

        import torch

        from ncli.models.nn.train import fit_loop, make_optimizer, seed_torch

        self._check()
        if not sessions or len({s.counts.shape[1] for s in sessions}) != 1:
            raise DataError("NeuroPaint needs sessions cut into windows of one length")
        rec = [np.unique(s.area) for s in sessions]
        seed_torch(self.seed)
        rng = np.random.default_rng(self.seed)
        W = sessions[0].counts.shape[1]
        xs, means = zip(*[self._inputs(s.counts) for s in sessions])
        ys = [torch.as_tensor(np.asarray(s.counts, dtype=np.float32)) for s in sessions]
        xs = [torch.as_tensor(x) for x in xs]
        areas = [torch.as_tensor(np.asarray(s.area, dtype=np.int64)) for s in sessions]
        conds = [np.zeros(s.counts.shape[0], dtype=np.int64) if s.condition is None else
                 np.asarray(s.condition, dtype=np.int64) for s in sessions]
        n_neurons = [s.counts.shape[2] for s in sessions]
        log_mean = [np.log(np.maximum(np.asarray(s.counts, dtype=np.float64).reshape(-1, n).mean(0), 1e-3))
                    for s, n in zip(sessions, n_neurons)]
        self.net_ = self._make_net(W, n_neurons, log_mean)
        opt = make_optimizer(self.net_.parameters(), "adamw", lr=self.lr, weight_decay=0.0)
        A = int(self.n_areas)

        def step_loss(step: int):
            Fs, nll, n_obs = [], 0.0, 0
            groups = []
            for s in range(len(sessions)):
                n_win = xs[s].shape[0]
                idx = rng.choice(n_win, min(self.batch_windows, n_win), replace=False)
                visible = np.zeros((idx.size, A), dtype=bool)
                for i in range(idx.size):
                    r = rec[s]
                    visible[i, r] = True
                    m_max = int(np.floor(self.mask_ratio * r.size))
                    m_max = min(m_max, r.size - 1)
                    if m_max >= 1:
                        visible[i, rng.choice(r, int(rng.integers(1, m_max + 1)), replace=False)] = False
                F = self.net_.factors(xs[s][idx], s, areas[s], torch.as_tensor(visible))
                eta = self.net_.readouts(F, s, areas[s])
                y = ys[s][idx]
                nll = nll + (torch.exp(eta) - y * eta).sum()
                n_obs += y.numel()
                Fs.append(F)
                groups.append([(s, c, torch.as_tensor(np.flatnonzero(conds[s][idx] == c)))
                               for c in np.unique(conds[s][idx])])
            loss = nll / n_obs
            Fall = torch.cat(Fs)
            scale = Fall.std(dim=(0, 1), keepdim=True).clamp(min=1e-3)  # (1, 1, A, K)
            if self.smoothness > 0:
                loss = loss + self.smoothness * torch.cat([((F[:, 1:] - F[:, :-1]) / scale) ** 2
                                                           for F in Fs]).mean()
            if self.consistency > 0:
                by_cond: dict = {}
                for F, grp in zip(Fs, groups):
                    for s, c, ix in grp:
                        by_cond.setdefault(int(c), []).append(F[ix].mean(0) / scale[0])
                terms = [((torch.stack(v) - torch.stack(v).mean(0)) ** 2).mean() for v in by_cond.values()
                         if len(v) > 1]
                if terms:
                    loss = loss + self.consistency * torch.stack(terms).mean()
            return loss

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        import resource

        t0 = time.perf_counter()
        res = fit_loop(step_loss, opt, self.n_steps, clip_norm=1.0, progress=progress)
        seconds = time.perf_counter() - t0
        steps_per_epoch = max(1.0, max(x.shape[0] for x in xs) / self.batch_windows)
        self.epoch_seconds_ = float(seconds / self.n_steps * steps_per_epoch)
        self.peak_memory_mb_ = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        self.loss_history_ = np.asarray([v for v in res.losses if v is not None], dtype=np.float64)
        self.n_neurons_ = np.asarray(n_neurons, dtype=np.int64)
        self.neuron_mean_ = np.concatenate(means).astype(np.float64)
        return self

    def _session_mean(self, s: int) -> np.ndarray:
        off = np.concatenate([[0], np.cumsum(self.n_neurons_)])
        return self.neuron_mean_[off[s]:off[s + 1]]

    def transform(self, counts: np.ndarray, area: np.ndarray, session: int | None = None,
                visible: np.ndarray | None = None, neurons: np.ndarray | None = None) -> np.ndarray:
        """Factors of every area for each window: (n_windows, W, A, K).

        Parameters
        ----------
        counts : (n_windows, W, N) counts
        area : (N,) int area of each neuron (in the session's neuron order)
        session : int, optional
            Index of a training session (its unit embeddings and encoders); None: an unseen
            session (mean unit embedding; for the linear model, no encoder: no information).
        visible : (A,) bool, optional
            Areas whose neurons are used (default: every area with neurons).
        neurons : (N,) int, optional
            Which of the training session's neurons the columns are (default: all, in training order);
            the factors do not depend on the column order.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        """
        import torch

        check_fitted(self)
        nidx = None if neurons is None or session is None else np.asarray(neurons, dtype=np.int64)
        mean = None if session is None else (self._session_mean(session) if nidx is None else
                                             self._session_mean(session)[nidx])
        x = self._inputs(counts, mean)[0]
        A = int(self.n_areas)
        vis = np.ones(A, dtype=bool) if visible is None else np.asarray(visible, dtype=bool)
        with torch.no_grad():
            self.net_.eval()
            out = []
            for i in range(0, x.shape[0], 64):
                xb = torch.as_tensor(x[i:i + 64])
                out.append(self.net_.factors(xb, session, torch.as_tensor(np.asarray(area, dtype=np.int64)),
                                             torch.as_tensor(np.tile(vis, (xb.shape[0], 1))),
                                             None if nidx is None else torch.as_tensor(nidx)).numpy())
            self.net_.train()
        return np.concatenate(out).astype(np.float64)

    def predict_counts(self, F: np.ndarray, session: int, area: np.ndarray) -> np.ndarray:
        """Mean counts per bin (n_windows, W, N) of a training session's neurons from factors F (n, W, A, K)."""
        import torch

        check_fitted(self)
        with torch.no_grad():
            eta = self.net_.readouts(torch.as_tensor(F, dtype=torch.float32), session,
                                     torch.as_tensor(np.asarray(area, dtype=np.int64)))
        return torch.exp(eta.clamp(max=20)).numpy().astype(np.float64)

    def to_group(self, group, metrics: dict | None = None, extra: dict | None = None) -> None:
        """Save the learned arrays and the network weights (``weights/``).

        Raises
        ------
        NotFittedError
            Before ``fit``.
        """
        from ncli.models.nn.weights import save_weights, state_to_arrays

        super().to_group(group, metrics=metrics, extra=extra)
        save_weights(group, state_to_arrays(self.net_.state_dict()))

    @classmethod
    def from_group(cls, group) -> _AreaModel:
        """Load a model saved with :meth:`to_group` (the network rebuilt from the saved weights).

        Raises
        ------
        DataError
            The group holds no model of this class or misses arrays.
        """
        from ncli.models.nn.weights import arrays_to_state, load_weights

        model = Estimator.from_group.__func__(cls, group)
        weights = load_weights(group)
        W = int(weights["series.weight"].shape[1]) if "series.weight" in weights else 1
        n = [int(v) for v in model.n_neurons_]
        model.net_ = model._make_net(W, n, [np.zeros(k) for k in n])
        model.net_.load_state_dict(arrays_to_state(weights))
        return model


class NeuroPaint(_AreaModel):
    """NeuroPaint: masked autoencoding of whole areas across sessions (see the module docstring).

    Parameters
    ----------
    n_areas : int
        Areas (A) of the dataset.
    n_factors : int
        Factors per area (K): ``latents/neuropaint/<area>`` is (T, K).
    d_model : int
        Token width.
    n_queries : int
        Learned queries (area channels) per area.
    n_layers, heads : int
        Transformer depth and heads (``d_model`` a multiple of ``heads``, head width even).
    mask_ratio : float
        Largest fraction of a window's recorded areas masked in training.
    smoothness, consistency : float
        Weights of the temporal smoothness penalty and the cross-session consistency term.
    n_steps : int
        Optimiser steps (each: ``batch_windows`` windows of every session).
    batch_windows : int
    lr : float
    seed : int

    Attributes
    ----------
    net_ : torch.nn.Module
    loss_history_ : (n_steps,) float64
    epoch_seconds_ : float
        Training time per epoch (one pass over the longest session's windows), s.
    peak_memory_mb_ : float
        Peak resident memory of the process after training (MB).
    """

    model_id = "ncli/neuropaint@1"

    def __init__(self, n_areas: int = 5, n_factors: int = 8, d_model: int = 32, n_queries: int = 4,
                 n_layers: int = 2, heads: int = 2, mask_ratio: float = 0.6, smoothness: float = 0.05,
                 consistency: float = 0.02, n_steps: int = 300, batch_windows: int = 8, lr: float = 1e-2,
                 seed: int = 0):
        self.n_areas = n_areas
        self.n_factors = n_factors
        self.d_model = d_model
        self.n_queries = n_queries
        self.n_layers = n_layers
        self.heads = heads
        self.mask_ratio = mask_ratio
        self.smoothness = smoothness
        self.consistency = consistency
        self.n_steps = n_steps
        self.batch_windows = batch_windows
        self.lr = lr
        self.seed = seed
        self.net_ = self.loss_history_ = self.n_neurons_ = self.neuron_mean_ = None
        self.epoch_seconds_ = self.peak_memory_mb_ = None

    def _check(self) -> None:
        super()._check()
        check_params([
            (self.d_model % self.heads == 0 and (self.d_model // self.heads) % 2 == 0,
             f"{{d_model}} must be a multiple of 2 x heads, got {self.d_model}", "d_model"),
            (self.n_queries >= 1, f"{{n_queries}} must be at least 1, got {self.n_queries}", "n_queries"),
        ])

    def _inputs(self, counts, mean=None):
        x, m = _prepare(counts)
        if mean is not None:
            x = (np.sqrt(np.asarray(counts, dtype=np.float64)) - mean).astype(np.float32)
            m = mean
        return x, m

    def _make_net(self, n_bins, n_neurons, log_mean):
        return _build_nets()["PaintNet"](int(self.n_areas), n_bins, n_neurons, log_mean, int(self.d_model),
                                         int(self.n_queries), int(self.n_layers), int(self.heads),
                                         int(self.n_factors))

    @classmethod
    def from_group(cls, group) -> NeuroPaint:
        """Load a saved NeuroPaint (see :meth:`_AreaModel.from_group`)."""
        return super().from_group(group)


class NeuroPaintLinear(_AreaModel):
    """NeuroPaint-Linear: linear per-area encoders, a shared low-rank map, linear readouts, with remasking.

    Parameters
    ----------
    n_areas, n_factors : int
        As :class:`NeuroPaint`.
    rank : int
        Rank of the shared map from all areas' codes to all areas' factors.
    code : int
        Code dims per area of the encoders.
    sigma : float
        Gaussian smoothing of the input (bins).
    mask_ratio, smoothness, consistency, n_steps, batch_windows, lr, seed
        As :class:`NeuroPaint`.
    """

    model_id = "ncli/neuropaint-linear@1"

    def __init__(self, n_areas: int = 5, n_factors: int = 8, rank: int = 16, code: int = 8, sigma: float = 2.0,
                 mask_ratio: float = 0.6, smoothness: float = 0.05, consistency: float = 0.0, n_steps: int = 300,
                 batch_windows: int = 8, lr: float = 1e-2, seed: int = 0):
        self.n_areas = n_areas
        self.n_factors = n_factors
        self.rank = rank
        self.code = code
        self.sigma = sigma
        self.mask_ratio = mask_ratio
        self.smoothness = smoothness
        self.consistency = consistency
        self.n_steps = n_steps
        self.batch_windows = batch_windows
        self.lr = lr
        self.seed = seed
        self.net_ = self.loss_history_ = self.n_neurons_ = self.neuron_mean_ = None
        self.epoch_seconds_ = self.peak_memory_mb_ = None

    def _inputs(self, counts, mean=None):
        x, m = _prepare(counts)
        if mean is not None:
            x = (np.sqrt(np.asarray(counts, dtype=np.float64)) - mean).astype(np.float32)
            m = mean
        return _smooth(x, self.sigma), m

    def _make_net(self, n_bins, n_neurons, log_mean):
        return _build_nets()["LinearNet"](int(self.n_areas), n_neurons, log_mean, int(self.rank),
                                          int(self.n_factors), int(self.code))

    @classmethod
    def from_group(cls, group) -> NeuroPaintLinear:
        """Load a saved NeuroPaint-Linear (see :meth:`_AreaModel.from_group`)."""
        return super().from_group(group)
