"""NuCLR: neuron identity from population context, learned by unit-level contrastive learning.

Each unit's binned spikes in a window of ``window_tokens`` tokens of
``token_bins`` bins (default 10 tokens of 1 s = 50 bins of 20 ms) are
projected token by token (``log1p`` counts -> MLP -> ``d_model``), together
with population-context channels (see below), passed through a temporal
transformer within the unit, then through ``n_blocks``
blocks that alternate attention across units at the same time token with
attention over time. Units carry no positional embedding, so the encoder is
permutation-equivariant over units and accepts any number of units. Mean
pooling over time gives the unit's representation ``h`` (``d_model``); a
projector MLP maps it to ``z`` (L2-normalised) for the loss.

Population context (our additions; all permutation-equivariant): each token
also sees (i) the unit's bin-by-bin co-fluctuation with the standardised
population mean, (ii) the mean activity of its most correlated units in the
window and (iii) the product of that with its own activity; and every
unit-attention head adds a learned multiple of the units' correlation over
the window to its logits. Ablation on ``ncli simulate nuclr``: without (ii),
(iii) and the correlation bias, brain region is probed at 0.69 instead of 0.89
after the same training (docs/commands/embed.md).

Training: two windows of one recording starting within ``max_gap_s`` of each
other are two views; the same unit in both views is the positive pair, every
other unit of the same population (in either view) a negative. The loss is
the decoupled contrastive loss (the positive is left out of the denominator)
at temperature ``temperature``, symmetrised over the two views. Each view
keeps a random 50-100% of the units (unit dropout).

Embedding: ``h`` averaged over all non-overlapping windows of a session that
contain the unit (only windows of valid bins). A fitted model embeds new
sessions, with any number of units, without retraining (zero-shot).

References
----------
NuCLR: "Know Thyself by Knowing Others: Learning Neuron Identity from
Population Context", NeurIPS 2025 (two windows as views, same neuron as
positive, population as negatives; spatiotemporal transformer with
alternating unit and time attention, permutation-equivariant over units).
Yeh et al. (2022) Decoupled contrastive learning. ECCV 2022 (the loss).
Vaswani et al. (2017) Attention is all you need. NeurIPS 2017.
"""

from __future__ import annotations

import logging
import time
from typing import Sequence

import numpy as np

from ncli.core.errors import DataError
from ncli.models.base import Estimator, check_array, check_fitted, check_params, torch_device
from ncli.models.nn.train import fit_loop, make_optimizer, seed_torch, warmup_cosine
from ncli.models.nn.weights import arrays_to_state, load_weights, save_weights, state_to_arrays

log = logging.getLogger("ncli")


def _build_module(P: int, W: int, d: int, heads: int, blocks: int, proj: int, coupling: bool = True,
                  corr_bias: bool = True, neighbours: bool = True):
    """The torch encoder (built lazily so importing this module does not import torch).

    Its transformer layers are :class:`ncli.models.nn.transformer.PreNormBlock`.
    """
    import torch
    from torch import nn

    from ncli.models.nn.transformer import PreNormBlock

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            nin = 2 if neighbours else 1
            self.embed = nn.Sequential(nn.Linear(nin * P, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
            self.coupling = nn.Linear(nin * P, d, bias=False) if coupling else None
            self.nb_beta = nn.Parameter(torch.tensor(20.0)) if neighbours else None
            self.time_pos = nn.Parameter(torch.zeros(W, d))
            nn.init.normal_(self.time_pos, std=0.02)
            self.temporal = PreNormBlock(d, heads)
            self.unit_layers = nn.ModuleList(PreNormBlock(d, heads) for _ in range(blocks))
            self.time_layers = nn.ModuleList(PreNormBlock(d, heads) for _ in range(blocks))
            # per head and unit-attention block: weight of the units' correlation in the attention logits
            self.corr_beta = (nn.Parameter(torch.linspace(-4.0, 4.0, heads).repeat(blocks, 1))
                              if corr_bias else None)
            self.pool = max(1, P // 10)  # correlations on 10 samples per token (100 ms for 1-s tokens)
            self.norm = nn.LayerNorm(d)
            self.projector = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, proj))

        def forward(self, x):
            """x: (B, N, W, P) counts -> h (B, N, d) and z (B, N, proj) L2-normalised."""
            B, N, Wn, _ = x.shape
            lx = torch.log1p(x)
            corr = self.correlation(lx) if (self.corr_beta is not None or self.nb_beta is not None) else None
            inp, ctx = lx, []
            if self.nb_beta is not None:  # mean activity of each unit's most correlated units, bin by bin
                if N > 1:
                    eye = torch.eye(N, dtype=torch.bool, device=x.device)
                    a = torch.softmax((self.nb_beta * corr).masked_fill(eye, float("-inf")), -1)
                    nb = (a @ lx.reshape(B, N, -1)).reshape(B, N, Wn, -1)
                    nb = (nb - nb.mean((2, 3), keepdim=True)) / (nb.std((2, 3), keepdim=True) + 1e-3)
                else:  # a lone unit has no neighbours
                    nb = torch.zeros_like(lx)
                inp = torch.cat([lx, nb], -1)
                ctx.append(nb)
            e = self.embed(inp) + self.time_pos[:Wn]  # (B, N, W, d)
            if self.coupling is not None:  # co-fluctuation of each unit with the population, bin by bin
                m = lx.mean(1, keepdim=True)  # (B, 1, W, P) population mean
                m = (m - m.mean((2, 3), keepdim=True)) / (m.std((2, 3), keepdim=True) + 1e-3)
                lc = lx - lx.mean((2, 3), keepdim=True)
                e = e + self.coupling(torch.cat([lc * m] + [lc * c for c in ctx], -1))
            e = self.temporal(e)  # attention over time within each unit: e is (B, N, W, d)
            for i, (ua, ta) in enumerate(zip(self.unit_layers, self.time_layers)):
                # attention across units at each token, with logits biased by the units' correlation
                bias = None if self.corr_beta is None else corr[:, None, None] * self.corr_beta[i][:, None, None]
                e = ua(e.transpose(1, 2), bias).transpose(1, 2)
                e = ta(e)
            h = self.norm(e.mean(2))
            z = nn.functional.normalize(self.projector(h), dim=-1)
            return h, z

        def correlation(self, lx):
            """(B, N, N) Pearson correlation of the units' log-counts over the window, pooled to ``pool`` bins."""
            B, N, Wn, Pn = lx.shape
            T = (Wn * Pn) // self.pool
            y = lx.reshape(B, N, Wn * Pn)[:, :, :T * self.pool].reshape(B, N, T, self.pool).mean(-1)
            y = y - y.mean(-1, keepdim=True)
            y = y / (y.norm(dim=-1, keepdim=True) + 1e-6)
            return y @ y.transpose(1, 2)

    return Encoder()


def dcl_loss(z1, z2, common1, common2, temperature: float):
    """Decoupled contrastive loss between two views of a population.

    Parameters
    ----------
    z1 : torch.Tensor, (B, n1, p)
        L2-normalised projections of the units kept in view 1.
    z2 : torch.Tensor, (B, n2, p)
        The same for view 2.
    common1, common2 : torch.LongTensor, (m,)
        Positions in view 1 and view 2 of the ``m`` units kept in both (positive pairs).
    temperature : float

    Returns
    -------
    torch.Tensor
        Scalar: mean over anchors of ``-s_pos/τ + log Σ_neg exp(s_neg/τ)``,
        negatives being all other units of both views (the positive and the
        anchor itself excluded), averaged over both directions.
    """
    import torch

    def one_way(za, zb, ca, cb):
        a = za[:, ca]  # (B, m, p) anchors
        pos = (a * zb[:, cb]).sum(-1) / temperature  # (B, m)
        s_b = a @ zb.transpose(1, 2) / temperature  # (B, m, nb)
        s_a = a @ za.transpose(1, 2) / temperature  # (B, m, na)
        m = ca.shape[0]
        ar = torch.arange(m, device=za.device)
        s_b = s_b.clone()
        s_a = s_a.clone()
        s_b[:, ar, cb] = float("-inf")
        s_a[:, ar, ca] = float("-inf")
        neg = torch.logsumexp(torch.cat([s_a, s_b], -1), -1)
        return (neg - pos).mean()

    return 0.5 * (one_way(z1, z2, common1, common2) + one_way(z2, z1, common2, common1))


class NuCLR(Estimator):
    """Self-supervised per-neuron embeddings from population context (NuCLR).

    Parameters
    ----------
    bin_size : float
        Bin width (s) of the input counts.
    token_bins : int
        Bins per temporal token (50 x 20 ms = 1 s).
    window_tokens : int
        Tokens per window (10 x 1 s = 10 s).
    max_gap_s : float
        The two views of a pair start at most this far apart (s).
    d_model : int
        Width of the transformer; the embedding dimension K.
    n_heads, n_blocks : int
        Attention heads; unit/time attention block pairs after the temporal layer.
    proj_dim : int
        Projector output dimension (loss space).
    temperature : float
        τ of the contrastive loss.
    keep_min : float
        Each view keeps a fraction ``U(keep_min, 1)`` of the units.
    max_units : int
        At most this many units per training step (random subset of larger populations).
    batch_size : int
        Window pairs per step (all from one session).
    steps : int
        Optimisation steps.
    lr, weight_decay : float
        AdamW settings.
    seed : int
    device : {"cpu", "cuda", "auto"}
    corr_bias : bool
        Add ``β_h · r_ij`` to the unit-attention logits of head ``h``, where ``r_ij``
        is the correlation of units i and j over the window (log-counts pooled to
        ten samples per token) and ``β`` is learned per head and block.
    neighbours : bool
        Give each unit's tokens a second input channel: the activity of its
        most correlated units (softmax over ``β_n · r_ij``, self excluded, ``β_n``
        learned), standardised, and its bin-by-bin product with the unit's own
        activity.

    Attributes
    ----------
    loss_history_ : (steps,) float64
    windows_per_s_ : float
        Training throughput (windows, i.e. two per pair, per second).
    weights_ : dict of str -> ndarray
        The encoder's parameters (saved as ``weights/<name>`` arrays).

    Notes
    -----
    ``corr_bias``, ``neighbours`` and the population-coupling channel are our
    additions to the published encoder (they keep it permutation-equivariant):
    they hand the model its population context as correlations, which the
    contrastive loss alone learns slowly. With them, 5000 steps of 32 window
    pairs reach the issue's region target on ``simulate nuclr`` (see
    docs/commands/embed.md for the measured ablation).

    Deterministic under ``seed`` on CPU (``torch.use_deterministic_algorithms``);
    on GPUs only up to floating-point reduction order.
    """

    model_id = "ncli/nuclr@1"
    _learned = ("loss_history_",)
    _learned_scalars = ("windows_per_s_", "train_seconds_")

    def __init__(self, bin_size: float = 0.02, token_bins: int = 50, window_tokens: int = 10,
                 max_gap_s: float = 30.0, d_model: int = 64, n_heads: int = 4, n_blocks: int = 2,
                 proj_dim: int = 64, temperature: float = 0.2, keep_min: float = 0.5, max_units: int = 64,
                 batch_size: int = 8, steps: int = 2500, lr: float = 3e-3, weight_decay: float = 1e-4,
                 seed: int = 0, device: str = "cpu", corr_bias: bool = True, neighbours: bool = True):
        self.bin_size = bin_size
        self.token_bins = token_bins
        self.window_tokens = window_tokens
        self.max_gap_s = max_gap_s
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_blocks = n_blocks
        self.proj_dim = proj_dim
        self.temperature = temperature
        self.keep_min = keep_min
        self.max_units = max_units
        self.batch_size = batch_size
        self.steps = steps
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed
        self.device = device
        self.corr_bias = corr_bias
        self.neighbours = neighbours
        self.loss_history_ = None
        self.windows_per_s_ = None
        self.train_seconds_ = None
        self.weights_ = None
        self.module_ = None

    # ------------------------------------------------------------------ helpers

    @property
    def window_bins(self) -> int:
        """Bins per window."""
        return self.token_bins * self.window_tokens

    def _check_params(self) -> None:
        checks = [
            (self.bin_size > 0, f"bin size must be > 0, got {self.bin_size}", "bin_size"),
            (self.token_bins >= 1 and self.window_tokens >= 1, "token and window sizes must be >= 1", "window_tokens"),
            (self.n_heads >= 1 and self.d_model >= self.n_heads,
             f"{{d_model}} must be at least the number of heads ({self.n_heads}), got {self.d_model}", "d_model"),
            (self.n_heads >= 1 and self.d_model % self.n_heads == 0,
             f"{{d_model}} ({self.d_model}) must be a multiple of the number of heads ({self.n_heads})", "d_model"),
            (self.temperature > 0, f"{{temperature}} must be > 0, got {self.temperature}", "temperature"),
            (0 < self.keep_min <= 1, f"{{keep_min}} must be in (0, 1], got {self.keep_min}", "keep_min"),
            (self.batch_size >= 1, f"{{batch_size}} must be at least 1, got {self.batch_size}", "batch_size"),
            (self.steps >= 1, f"{{steps}} must be at least 1, got {self.steps}", "steps"),
            (self.max_units >= 2, f"max units must be at least 2, got {self.max_units}", "max_units"),
            (self.device in ("cpu", "cuda", "auto"), f"invalid value '{self.device}' for {{device}}", "device"),
        ]
        check_params(checks)

    def _torch_device(self):
        return torch_device(self.device)

    def _new_module(self):
        return _build_module(self.token_bins, self.window_tokens, self.d_model, self.n_heads, self.n_blocks,
                             self.proj_dim, corr_bias=bool(self.corr_bias),
                             neighbours=bool(self.neighbours))

    def _windows(self, C: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """(B, N, W, P) float32 windows of counts ``C`` (T, N) starting at bins ``starts``."""
        L = self.window_bins
        x = C[starts[:, None] + np.arange(L)[None, :]]  # (B, L, N)
        B, _, N = x.shape
        return np.ascontiguousarray(x.transpose(0, 2, 1).reshape(B, N, self.window_tokens, self.token_bins),
                                    dtype=np.float32)

    def _valid_starts(self, valid: np.ndarray) -> np.ndarray:
        """Start bins of windows lying entirely in valid bins."""
        L = self.window_bins
        if valid.shape[0] < L:
            return np.zeros(0, dtype=np.int64)
        bad = np.concatenate([[0], np.cumsum(~valid)])
        return np.flatnonzero(bad[L:] - bad[:-L] == 0).astype(np.int64)

    def _check_counts(self, counts, valid, name):
        C = check_array(counts, name, min_samples=1, min_features=2)
        if (C < 0).any():
            raise DataError(f"{name} has negative counts")
        v = np.ones(C.shape[0], bool) if valid is None else np.asarray(valid, bool)
        if v.shape != (C.shape[0],):
            raise DataError(f"{name}: valid mask has {v.shape[0]} bins, counts {C.shape[0]}")
        starts = self._valid_starts(v)
        if starts.size == 0:
            raise DataError(f"{name} has no window of {self.window_bins} valid bins "
                            f"({self.window_bins * self.bin_size:g} s)",
                            hint="record longer sessions or use a shorter window")
        return C.astype(np.float32), starts

    # ------------------------------------------------------------------ fit

    def fit(self, counts: Sequence[np.ndarray], valid: Sequence[np.ndarray] | None = None) -> "NuCLR":
        """Train the encoder on the sessions' counts.

        Parameters
        ----------
        counts : list of (T_s, N_s) arrays
            Spike counts per bin of width ``bin_size`` for each session (any N_s >= 2).
        valid : list of (T_s,) bool, optional
            Bins usable for windows.

        Returns
        -------
        self

        Raises
        ------
        DataError
            No sessions, bad counts, or a session shorter than one window.
        UsageError
            Invalid hyperparameters or an unavailable device.
        """
        import torch

        self._check_params()
        if len(counts) == 0:
            raise DataError("NuCLR needs at least one session")
        data = [self._check_counts(C, None if valid is None else valid[i], f"counts[{i}]")
                for i, C in enumerate(counts)]
        device = self._torch_device()
        seed_torch(self.seed, deterministic=device.type == "cpu")  # GPU kernels: no such guarantee
        rng = np.random.default_rng(int(self.seed))
        module = self._new_module().to(device)
        opt = make_optimizer(module.parameters(), "adamw", lr=self.lr, weight_decay=self.weight_decay)
        sched = warmup_cosine(opt, self.steps)
        gap = int(round(self.max_gap_s / self.bin_size))
        t0 = time.perf_counter()
        module.train()

        def step_loss(step: int):
            """One pair of views of a random session's windows; None (step skipped) if they share no unit."""
            C, starts = data[rng.integers(len(data))]
            N = C.shape[1]
            s1 = starts[rng.integers(starts.size, size=self.batch_size)]
            s2 = np.empty_like(s1)
            for b, s in enumerate(s1):  # a second valid window within max_gap of the first
                lo, hi = np.searchsorted(starts, [s - gap, s + gap + 1])
                s2[b] = starts[rng.integers(lo, hi)]
            pool = rng.permutation(N)[:self.max_units]
            k1 = np.sort(rng.permutation(pool)[:max(2, int(round(rng.uniform(self.keep_min, 1) * pool.size)))])
            k2 = np.sort(rng.permutation(pool)[:max(2, int(round(rng.uniform(self.keep_min, 1) * pool.size)))])
            both, c1, c2 = np.intersect1d(k1, k2, return_indices=True)
            if both.size < 1:
                return None
            x1 = torch.as_tensor(self._windows(C, s1)[:, k1], device=device)
            x2 = torch.as_tensor(self._windows(C, s2)[:, k2], device=device)
            _, z1 = module(x1)
            _, z2 = module(x2)
            return dcl_loss(z1, z2, torch.as_tensor(c1, device=device), torch.as_tensor(c2, device=device),
                            self.temperature)

        def progress(step: int, loss: float):
            if (step + 1) % max(1, self.steps // 10) == 0:
                log.debug("nuclr step %d/%d loss %.4f", step + 1, self.steps, loss)

        done = fit_loop(step_loss, opt, self.steps, schedule=sched, clip_norm=1.0, progress=progress)
        losses = np.array([0.0 if v is None else v for v in done.losses], dtype=np.float64)
        self.train_seconds_ = float(time.perf_counter() - t0)
        self.windows_per_s_ = float(2 * self.batch_size * self.steps / max(self.train_seconds_, 1e-9))
        self.loss_history_ = losses
        module.eval()
        self.module_ = module
        self.weights_ = state_to_arrays(module.state_dict())
        return self

    # ------------------------------------------------------------------ transform

    def _module(self):
        check_fitted(self, ["loss_history_", "weights_"])
        device = self._torch_device()
        if self.module_ is None:
            module = self._new_module()
            module.load_state_dict(arrays_to_state(self.weights_))
            self.module_ = module.eval()
        return self.module_.to(device).eval(), device

    def encode(self, windows: np.ndarray) -> np.ndarray:
        """Unit representations of a batch of windows.

        Parameters
        ----------
        windows : (B, N, window_tokens, token_bins) array
            Counts.

        Returns
        -------
        (B, N, d_model) float32
            ``h`` (before the projector), in eval mode.
        """
        import torch

        module, device = self._module()
        with torch.no_grad():
            h, _ = module(torch.as_tensor(np.asarray(windows, np.float32), device=device))
        return h.cpu().numpy()

    def transform_windows(self, counts: np.ndarray, valid: np.ndarray | None = None, batch: int = 16
                          ) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings of every unit in each non-overlapping valid window.

        Parameters
        ----------
        counts : (T, N) array
            Counts at ``bin_size``.
        valid : (T,) bool, optional

        Returns
        -------
        H : (n_windows, N, d_model) float32
        starts : (n_windows,) int64
            First bin of each window.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        DataError
            Bad counts or no full valid window.
        """
        check_fitted(self, ["loss_history_", "weights_"])
        C, starts = self._check_counts(counts, valid, "counts")
        chosen, nxt = [], -1
        for s in starts:  # greedy non-overlapping tiling of the valid windows
            if s >= nxt:
                chosen.append(s)
                nxt = s + self.window_bins
        chosen = np.asarray(chosen, dtype=np.int64)
        H = np.concatenate([self.encode(self._windows(C, chosen[i:i + batch]))
                            for i in range(0, chosen.size, batch)])
        return H, chosen

    def transform(self, counts: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """Per-neuron embedding: the mean of ``h`` over all windows of the session.

        Parameters
        ----------
        counts : (T, N) array
        valid : (T,) bool, optional

        Returns
        -------
        (N, d_model) float32
        """
        H, _ = self.transform_windows(counts, valid)
        return H.mean(0).astype(np.float32)

    # ------------------------------------------------------------------ store

    def to_group(self, group, metrics: dict | None = None, extra: dict | None = None) -> None:
        """Save as arrays: ``loss_history_`` and ``weights/<parameter>`` (dots in names become ``__``).

        Raises
        ------
        NotFittedError
            Before ``fit``.
        """
        super().to_group(group, metrics=metrics, extra=extra)
        check_fitted(self, ["weights_"])
        save_weights(group, self.weights_)

    @classmethod
    def from_group(cls, group) -> "NuCLR":
        """Load a model saved with :meth:`to_group`.

        Raises
        ------
        DataError
            The group holds no NuCLR model or misses weights.
        """
        model = super().from_group(group)
        if "weights" not in group:
            raise DataError("saved NuCLR model misses its weights")
        model.weights_ = load_weights(group)
        expected = set(model._new_module().state_dict())
        if set(model.weights_) != expected:
            raise DataError("saved NuCLR weights do not match the model configuration",
                            hint="a model saved by an older ncli (before the 64-wide encoder with correlated "
                                 "neighbours) cannot be loaded: retrain it")
        return model


# ----------------------------------------------------------------------------- evaluation


def retrieval_top1(H1: np.ndarray, H2: np.ndarray) -> float:
    """Same-unit retrieval: fraction of units whose nearest neighbour (cosine) in the other window is itself.

    Parameters
    ----------
    H1, H2 : (N, K) arrays
        Embeddings of the same N units in two windows.

    Returns
    -------
    float
        Top-1 accuracy, averaged over both directions.
    """
    a = H1 / np.linalg.norm(H1, axis=1, keepdims=True).clip(1e-12)
    b = H2 / np.linalg.norm(H2, axis=1, keepdims=True).clip(1e-12)
    S = a @ b.T
    n = np.arange(len(S))
    return float(0.5 * ((S.argmax(1) == n).mean() + (S.argmax(0) == n).mean()))


def rankme(Z: np.ndarray, eps: float = 1e-7) -> float:
    """RankMe effective rank of embeddings: ``exp(entropy(σ / Σσ))``.

    Parameters
    ----------
    Z : (n, K) array
        Embeddings (rows are neurons).

    Returns
    -------
    float
        Between 1 (collapse to one direction) and ``min(n, K)``.

    References
    ----------
    Garrido, Balestriero, Najman & LeCun (2023) RankMe: assessing the downstream
    performance of pretrained self-supervised representations by their rank. ICML 2023.
    """
    s = np.linalg.svd(np.asarray(Z, dtype=np.float64), compute_uv=False)
    p = s / max(s.sum(), eps) + eps
    return float(np.exp(-(p * np.log(p)).sum()))

