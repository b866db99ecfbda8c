"""CRRL: channel rearrangement and channel reconstruction for cross-day decoding on one electrode array.

A decoder fitted on a reference day reads channel ``i`` of the array. On a later
day, electrode shifts move units to other channels, units are lost (silent
channels) or replaced. CRRL puts a later day back into the reference's channel
order in two stages, so that a reference-day decoder applies unchanged.

**Stage 1, channel rearrangement.** Every channel of a day is summarised by a
feature vector (:func:`channel_features`):

- its *condition-average template*: the square-root counts of each trial,
  averaged into ``n_profile`` equal fractions of the trial, averaged over the
  trials of each condition (``C`` conditions x ``n_profile`` values). The
  reference day's conditions are its labels (e.g. ``trials/target``). A later
  day has no labels: its trials are pseudo-labelled by the nearest reference
  template (:func:`pseudo_labels`, a trimmed squared distance over the live
  channels, so that moved or silent channels weigh little), and relabelled once
  the day is aligned (``rounds``);
- its *correlation row*: its Pearson correlation with every other channel over
  the day's bins, the columns in the current estimate of the reference order
  (the identity in the first round). It needs no labels and no trials.

A shared network ``g`` (a residual MLP, zero-initialised so that it starts as
the identity) embeds every channel's features; the assignment logits are
``L[i, j] = -s · ||g(f_ref_i) - g(f_day_j)||`` (N x N, ``s`` learned; dead
later-day channels get the day's lowest logit in every row). While
training, ``P = Sinkhorn((L + Gumbel noise) / τ)`` is a soft permutation
(:func:`sinkhorn`, log-domain), ``τ`` annealed geometrically from ``tau_start``
(1) to ``tau_end`` (0.001). The loss of a day is

    mean_i [1 - r(P D_day, D_ref)_i] + corr_weight · mean_i [1 - r(corr(X P^T), corr(X_ref))_i]
    + entropy_weight · mean_i H(P_i)

(``r`` the row-wise Pearson correlation, ``D`` the condition-deviation templates, ``H`` the row
entropy, which pushes ``P`` toward a permutation). The network is shared by all
later days and trained on their summed loss. At inference the Hungarian
algorithm (:func:`scipy.optimize.linear_sum_assignment`) turns the noiseless
logits into an exact permutation ``perm[i]`` = the later-day channel assigned
to reference channel ``i``; a reference channel may also stay unmatched when its
best match costs more than ``unmatched_cost`` times the typical one (:func:`assign`),
so that a changed or lost unit does not force a chain of swaps among similar channels.

**Stage 2, channel reconstruction.** A channel-wise autoencoder
(:func:`_recon_net`): each channel's window of ``window`` bins (counts,
lightly smoothed, standardised with the reference's statistics) is a
token with a channel embedding; a transformer encoder attends across channels;
each token's code passes a grouped vector-quantised bottleneck
(van den Oord et al. 2017: nearest codeword, straight-through gradient,
codebook and commitment losses); a decoder returns the window. It is trained on
the reference day with a random ``mask_fraction`` of channels masked per window,
on the MSE of the masked channels plus a Fourier loss (L1 between the rFFT
amplitudes, ``1 - cos`` of the phase differences weighted by the target's
amplitude). At inference the *missing* reference channels of a later day -- those
left unmatched, assigned a dead later-day channel (mean rate below
``dead_fraction`` of the reference channel's), or whose assigned channel's
condition-deviation template correlates below ``min_match`` -- are masked and
restored from the others.

The loss compares condition-*deviation* templates (each profile value minus
its mean over conditions), since the raw templates of all channels share the
trial's response profile and correlate highly whatever the assignment.

References
----------
"Learning Channel-invariant Neural Representations for High-performance
Cross-day Decoding" (CRRL), NeurIPS 2025 (channel rearrangement by Gumbel-Sinkhorn
with a template-correlation loss; channel reconstruction by a masked, vector-
quantised autoencoder with a Fourier loss). No public code; this implementation
follows the description of the method in ncli's issue 13; the choices for
unlabelled later days (pseudo-labels, correlation rows) are ncli's.
Mena, Belanger, Linderman & Snoek (2018) Learning latent permutations with
Gumbel-Sinkhorn networks. ICLR.
Sinkhorn (1964) A relationship between arbitrary positive matrices and doubly
stochastic matrices. Ann Math Stat 35, 876-879.
Kuhn (1955) The Hungarian method for the assignment problem. Nav Res Logist Q 2, 83-97.
van den Oord, Vinyals & Kavukcuoglu (2017) Neural discrete representation learning. NeurIPS.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from ncli.core.errors import DataError
from ncli.models.base import Estimator, check_array, check_fitted, check_params, torch_device
from ncli.models.nn.train import fit_loop, make_optimizer, seed_torch
from ncli.models.nn.weights import arrays_to_state, load_weights, rebuild_network, save_weights, state_to_arrays

log = logging.getLogger("ncli")


# ----------------------------------------------------------------------------- numerics


def sinkhorn(log_alpha, n_iters: int = 20, tol: float | None = None, max_iters: int = 5000):
    """Log-domain Sinkhorn normalisation: a (..., N, N) matrix whose rows and columns sum to ~1.

    Alternately subtracts the row and the column log-sum-exp ``n_iters`` times
    (Sinkhorn 1964; Mena et al. 2018, Eq. 2), ending with the columns. The
    closer the logits are to a permutation (a low temperature), the more
    iterations the rows need; with ``tol`` the iterations go on, ``n_iters`` at
    a time, until every row sum is within ``tol`` of 1 (or ``max_iters``).

    Parameters
    ----------
    log_alpha : torch.Tensor (..., N, N)
        Logits (already divided by the temperature).
    n_iters : int
    tol : float, optional
    max_iters : int

    Returns
    -------
    torch.Tensor (..., N, N)
        ``exp`` of the normalised logits: a doubly stochastic matrix up to the
        convergence of the iterations (the columns exactly, the rows approximately).
    """
    import torch

    done = 0
    while True:
        for _ in range(int(n_iters)):
            log_alpha = log_alpha - torch.logsumexp(log_alpha, dim=-1, keepdim=True)
            log_alpha = log_alpha - torch.logsumexp(log_alpha, dim=-2, keepdim=True)
        done += int(n_iters)
        if tol is None or done >= max_iters:
            return log_alpha.exp()
        if float((torch.logsumexp(log_alpha, dim=-1).exp() - 1).abs().max()) < tol:
            return log_alpha.exp()


def hungarian(logits: np.ndarray, dead: np.ndarray | None = None) -> np.ndarray:
    """The permutation maximising ``sum_i logits[i, perm[i]]`` (Kuhn 1955; scipy's linear_sum_assignment).

    Parameters
    ----------
    logits : (N, N) array
    dead : (N,) bool, optional
        Columns that match no row (silent channels): the live columns are
        assigned first (a rectangular assignment), the dead ones then go to the
        rows left over, in order.

    Returns
    -------
    (N,) int64
        ``perm[i]``: the column assigned to row ``i``.
    """
    from scipy.optimize import linear_sum_assignment

    L = np.asarray(logits, dtype=np.float64)
    n = L.shape[0]
    live = np.flatnonzero(~np.asarray(dead, bool)) if dead is not None else np.arange(n)
    perm = np.full(n, -1, dtype=np.int64)
    rows, cols = linear_sum_assignment(-L[:, live])
    perm[rows] = live[cols]
    rest = np.setdiff1d(np.arange(n), perm[perm >= 0])
    perm[perm < 0] = rest
    return perm


def assign(logits: np.ndarray, dead: np.ndarray, unmatched_cost: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact channel assignment with a "no match" option (Hungarian algorithm on an augmented cost matrix).

    The cost of pairing reference row ``i`` with column ``j`` is ``c_ij = -logits[i, j]``,
    shifted so that the smallest is 0. Each row may instead stay unmatched, and each
    column unused, at the cost ``c0 = unmatched_cost · median_i min_j c_ij`` (dead
    columns are never matched). Without that option a reference channel whose unit
    changed (or left) forces a chain of moves among similar channels; with it, the
    channel is left for the reconstruction. The ``2N x 2N`` problem
    ``[[C, c0 I], [c0 I, 0]]`` is solved by :func:`hungarian`.

    Parameters
    ----------
    logits : (N, N) array
    dead : (N,) bool
        Columns that match nothing.
    unmatched_cost : float
        0: every row is matched (dead columns last, :func:`hungarian`).

    Returns
    -------
    perm : (N,) int64
        A permutation: the matched column of each row; unmatched rows get the left-over columns in order.
    unmatched : (N,) bool
        Rows left unmatched.
    """
    L = np.asarray(logits, dtype=np.float64)
    N = L.shape[0]
    dead = np.asarray(dead, bool)
    if unmatched_cost <= 0 or dead.all():
        perm = hungarian(L, dead)
        return perm, dead[perm]
    cost = L[:, ~dead].max() - L
    c0 = float(unmatched_cost) * float(np.median(cost[:, ~dead].min(axis=1)))
    big = 10.0 * (cost[:, ~dead].max() + c0) + 1.0
    cost[:, dead] = big
    M = np.full((2 * N, 2 * N), big)
    M[:N, :N] = cost
    M[N:, N:] = 0.0
    idx = np.arange(N)
    M[idx, N + idx] = c0
    M[N + idx, idx] = c0
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(M)
    perm = np.full(N, -1, dtype=np.int64)
    top = (rows < N) & (cols < N)
    perm[rows[top]] = cols[top]
    unmatched = perm < 0
    perm[unmatched] = np.setdiff1d(np.arange(N), perm[~unmatched])
    return perm, unmatched


def _zrows(A: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to unit norm (0 for constant rows)."""
    A = A - A.mean(axis=1, keepdims=True)
    n = np.linalg.norm(A, axis=1, keepdims=True)
    return np.divide(A, n, out=np.zeros_like(A), where=n > 1e-12)


def row_pearson(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """(N,) Pearson correlation of each row of ``A`` with the same row of ``B`` (0 for a constant row)."""
    return np.sum(_zrows(np.asarray(A, float)) * _zrows(np.asarray(B, float)), axis=1)


def correlation_matrix(X: np.ndarray) -> np.ndarray:
    """(N, N) Pearson correlations between the columns of ``X`` (T, N); 0 for constant columns and on the diagonal."""
    C = _zrows(np.asarray(X, float).T)
    R = C @ C.T
    np.fill_diagonal(R, 0.0)
    return R


def trial_profiles(Xs: np.ndarray, trials: np.ndarray, n_profile: int) -> np.ndarray:
    """Each trial's activity averaged into ``n_profile`` equal fractions of the trial.

    Parameters
    ----------
    Xs : (T, N) array
        Activity (square-root counts).
    trials : (M, 2) int array
        ``[start, stop)`` bins of every trial, ``stop - start >= n_profile``.
    n_profile : int

    Returns
    -------
    (M, n_profile, N) float64
    """
    out = np.zeros((len(trials), n_profile, Xs.shape[1]))
    for m, (a, b) in enumerate(trials):
        for k, part in enumerate(np.array_split(np.arange(a, b), n_profile)):
            out[m, k] = Xs[part].mean(axis=0)
    return out


def class_templates(profiles: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, n_classes * n_profile) condition-average templates from trial profiles (M, n_profile, N) and labels (M,).

    A condition without trials gets the mean over all trials.
    """
    _, K, N = profiles.shape
    out = np.zeros((n_classes, K, N))
    overall = profiles.mean(axis=0)
    for c in range(n_classes):
        sel = labels == c
        out[c] = profiles[sel].mean(axis=0) if sel.any() else overall
    return out.transpose(2, 0, 1).reshape(N, n_classes * K)


def pseudo_labels(profiles: np.ndarray, templates: np.ndarray, live: np.ndarray, keep: float = 0.8) -> np.ndarray:
    """Condition of each unlabelled trial: the nearest reference template over the live channels.

    The distance of trial ``m`` to condition ``c`` is the sum, over the ``keep``
    fraction of live channels that fit best, of the squared difference between
    the trial's profile and the template, each channel scaled by its template
    spread (a trimmed distance: moved or changed channels barely count).

    Parameters
    ----------
    profiles : (M, K, N) array
        Trial profiles of the day, channels in the (estimated) reference order.
    templates : (N, C * K) array
        Reference templates.
    live : (N,) bool
        Channels to use.
    keep : float

    Returns
    -------
    (M,) int64
    """
    _, K, N = profiles.shape
    C = templates.shape[1] // K
    T = templates.reshape(N, C, K).transpose(1, 2, 0)  # (C, K, N)
    scale = T.reshape(-1, N).std(axis=0) + 1e-3
    d = (((profiles[:, None] - T[None]) / scale) ** 2).sum(axis=2)[..., live]  # (M, C, n_live)
    n_keep = max(1, round(keep * d.shape[-1]))
    d = np.sort(d, axis=-1)[..., :n_keep].sum(axis=-1)
    return np.argmin(d, axis=1).astype(np.int64)


def smooth_bins(X: np.ndarray, sd: float) -> np.ndarray:
    """Gaussian smoothing of (T, N) ``X`` along time, SD ``sd`` bins (0: unchanged), edges renormalised."""
    if sd <= 0:
        return X
    h = int(np.ceil(3 * sd))
    k = np.exp(-0.5 * (np.arange(-h, h + 1) / sd) ** 2)
    ones = np.convolve(np.ones(X.shape[0]), k, mode="same")
    out = np.empty_like(X, dtype=np.float64)
    for j in range(X.shape[1]):
        out[:, j] = np.convolve(X[:, j], k, mode="same") / ones
    return out


# ----------------------------------------------------------------------------- torch modules


def _torch():
    import torch

    return torch


def _rearrange_net(n_features: int, hidden: int):
    """The shared channel-embedding network ``g`` (residual MLP, identity at initialisation) and the logit scale."""
    torch = _torch()
    nn = torch.nn

    class RearrangeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, n_features))
            nn.init.zeros_(self.mlp[2].weight)
            nn.init.zeros_(self.mlp[2].bias)
            self.log_scale = nn.Parameter(torch.tensor(float(np.log(5.0))))

        def forward(self, f_ref, f_day, dead):
            """(N, F) reference and (D, N, F) day features, (D, N) dead mask -> (D, N, N) logits."""
            a, b = f_ref + self.mlp(f_ref), f_day + self.mlp(f_day)
            d2 = (a ** 2).sum(-1)[None, :, None] + (b ** 2).sum(-1)[:, None, :] - 2 * a @ b.transpose(1, 2)
            # Euclidean, not squared: with a squared cost, a chain of small moves among similar channels
            # is cheaper than leaving one changed channel in place (k (Δ/k)² < Δ²)
            logits = -self.log_scale.exp() * torch.sqrt(d2.clamp_min(0) + 1e-6)
            # a dead channel is equally (un)likely for every row: the day's lowest live logit
            floor = torch.where(dead[:, None, :], torch.inf, logits).amin(dim=(1, 2), keepdim=True).detach()
            floor = torch.where(torch.isfinite(floor), floor, torch.zeros_like(floor))
            return torch.where(dead[:, None, :], floor, logits)

    return RearrangeNet()


def _recon_net(n_channels: int, window: int, dim: int, heads: int, layers: int, n_codes: int, groups: int):
    """The channel-wise masked autoencoder with cross-channel attention and a grouped VQ bottleneck."""
    torch = _torch()
    nn = torch.nn

    class ReconNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = nn.Linear(window, dim)
            self.chan = nn.Parameter(torch.randn(n_channels, dim) * 0.1)
            self.mask_token = nn.Parameter(torch.zeros(dim))
            layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.pre_vq = nn.Linear(dim, dim)
            self.codebook = nn.Parameter(torch.randn(groups, n_codes, dim // groups) * 0.5)
            self.dec = nn.Sequential(nn.Linear(2 * dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, window))

        def quantise(self, z):
            """Grouped VQ: (B, N, dim) -> (quantised with straight-through gradient, codebook + commitment terms)."""
            B, N, D = z.shape
            G, _, d = self.codebook.shape
            zg = z.reshape(B * N, G, d).transpose(0, 1)  # (G, BN, d)
            dist = (zg ** 2).sum(-1, keepdim=True) - 2 * zg @ self.codebook.transpose(1, 2) \
                + (self.codebook ** 2).sum(-1)[:, None, :]
            idx = dist.argmin(-1)  # (G, BN)
            q = torch.stack([self.codebook[g][idx[g]] for g in range(G)])  # (G, BN, d)
            codebook_loss = ((q - zg.detach()) ** 2).mean()
            commit = ((zg - q.detach()) ** 2).mean()
            q = zg + (q - zg).detach()
            return q.transpose(0, 1).reshape(B, N, D), codebook_loss, commit

        def forward(self, x, mask):
            h = self.inp(x * (~mask)[..., None]) + self.chan[None]
            h = torch.where(mask[..., None], self.mask_token + self.chan[None], h)
            z = self.pre_vq(self.encoder(h))
            q, cb, commit = self.quantise(z)
            out = self.dec(torch.cat([q, self.chan[None].expand_as(q)], dim=-1))
            return out, cb, commit

    return ReconNet()


def fourier_loss(pred, target):
    """Amplitude L1 plus amplitude-weighted ``1 - cos`` phase difference of the rFFT along the last axis."""
    torch = _torch()
    P, T = torch.fft.rfft(pred, dim=-1), torch.fft.rfft(target, dim=-1)
    amp_p, amp_t = P.abs(), T.abs()
    amp = (amp_p - amp_t).abs().mean()
    w = amp_t / (amp_t.sum(-1, keepdim=True) + 1e-6)
    phase = ((1 - torch.cos(torch.angle(P) - torch.angle(T))) * w).sum(-1).mean()
    return amp + phase


# ----------------------------------------------------------------------------- the estimator


class CRRL(Estimator):
    """CRRL cross-day channel alignment: Gumbel-Sinkhorn channel rearrangement + masked VQ channel reconstruction.

    Parameters
    ----------
    n_profile : int
        Values per trial in a condition template (equal fractions of each trial).
    hidden : int
        Hidden width of the rearrangement network.
    epochs : int
        Optimisation steps of the rearrangement per round (all later days at once).
    rounds : int
        Pseudo-label / correlation-row refinement rounds (>= 1).
    lr : float
        Adam learning rate of both networks.
    tau_start, tau_end : float
        Sinkhorn temperature, annealed geometrically over the steps of a round.
    sinkhorn_iters : int
    gumbel_scale : float
        Scale of the Gumbel noise added to the logits while training.
    corr_weight, entropy_weight : float
        Weights of the correlation-row loss and of the entropy penalty.
    corr_feature : float
        Weight of the (unit-norm) correlation row among a channel's features, beside its template.
    unmatched_cost : float
        A reference channel may stay unmatched (and be restored) at a cost of this many times the
        median best-match cost (:func:`assign`); 0 = every channel is assigned.
    dead_fraction : float
        A later-day channel whose mean count is below this fraction of the
        assigned reference channel's is dead; its reference channel is restored.
    min_match : float
        Template correlation below which an assignment is rejected (channel restored).
    window, dim, heads, layers, n_codes, groups : int
        Reconstruction autoencoder: bins per token window, model width, attention
        heads, transformer layers, codewords per group, VQ groups (``dim % groups == 0``).
    mask_fraction : float
        Fraction of channels masked per training window.
    fourier_weight, commitment : float
        Weights of the Fourier loss and of the VQ commitment loss.
    recon_steps, batch_size : int
        Autoencoder optimisation steps and windows per step.
    smooth : float
        SD (bins) of the Gaussian smoothing of the autoencoder's input and target.
    seed : int
    device : str
        ``cpu``, ``cuda`` or ``auto``.

    Attributes
    ----------
    perm_ : (S, N) int64
        For each session (0 = the reference, the identity) and reference channel, the session's channel assigned.
    missing_ : (S, N) bool
        Reference channels restored by the autoencoder in each session.
    match_r_ : (S, N) float64
        Template correlation of each assignment.
    logits_ : (S, N, N) float32
        Assignment logits at inference.
    templates_ : (N, F) float64
        Reference templates (F = conditions x n_profile).
    ref_mean_, ref_std_ : (N,) float64
        Standardisation of the autoencoder's input (the reference's smoothed counts per bin).
    ref_rate_ : (N,) float64
        Mean count per bin of every reference channel.
    unmatched_ : (S, N) bool
        Reference channels the assignment left unmatched (see :func:`assign`).
    sinkhorn_error_ : (S,) float64
        Largest deviation of a Sinkhorn row or column sum from 1 at the last training step (0 for the reference).
    loss_history_ : (steps,) float32
        Rearrangement losses, then autoencoder losses.
    weights_ : dict
        ``rearrange.*`` and ``recon.*`` parameters (saved under ``weights/``).
    """

    model_id = "ncli/crrl@1"
    _learned = ("perm_", "missing_", "unmatched_", "match_r_", "logits_", "templates_", "ref_mean_", "ref_std_", "ref_rate_",
                "sinkhorn_error_", "loss_history_")
    _learned_scalars = ("n_classes_", "train_seconds_")

    def __init__(self, n_profile: int = 10, hidden: int = 64, epochs: int = 60, rounds: int = 2, lr: float = 1e-3,
                 tau_start: float = 1.0, tau_end: float = 1e-3, sinkhorn_iters: int = 20, gumbel_scale: float = 0.5,
                 corr_weight: float = 1.0, entropy_weight: float = 0.01, corr_feature: float = 0.3,
                 unmatched_cost: float = 2.0, dead_fraction: float = 0.05,
                 min_match: float = 0.3, window: int = 8, dim: int = 32, heads: int = 4, layers: int = 2,
                 n_codes: int = 32, groups: int = 4, mask_fraction: float = 0.2, fourier_weight: float = 0.1,
                 commitment: float = 0.25, recon_steps: int = 600, batch_size: int = 32, smooth: float = 1.5,
                 seed: int = 0, device: str = "cpu"):
        self.n_profile = n_profile
        self.hidden = hidden
        self.epochs = epochs
        self.rounds = rounds
        self.lr = lr
        self.tau_start = tau_start
        self.tau_end = tau_end
        self.sinkhorn_iters = sinkhorn_iters
        self.gumbel_scale = gumbel_scale
        self.corr_weight = corr_weight
        self.entropy_weight = entropy_weight
        self.corr_feature = corr_feature
        self.unmatched_cost = unmatched_cost
        self.dead_fraction = dead_fraction
        self.min_match = min_match
        self.window = window
        self.dim = dim
        self.heads = heads
        self.layers = layers
        self.n_codes = n_codes
        self.groups = groups
        self.mask_fraction = mask_fraction
        self.fourier_weight = fourier_weight
        self.commitment = commitment
        self.recon_steps = recon_steps
        self.batch_size = batch_size
        self.smooth = smooth
        self.seed = seed
        self.device = device
        for name in self._learned:
            setattr(self, name, None)
        self.weights_ = None
        self.n_classes_ = None
        self.train_seconds_ = None
        self._recon = None

    def _check_params(self) -> None:
        """Raise ParameterError for a hyperparameter out of range."""
        check_params([
            (self.n_profile >= 1, f"{{n_profile}} must be at least 1, got {self.n_profile}", "n_profile"),
            (self.hidden >= 1, f"{{hidden}} must be at least 1, got {self.hidden}", "hidden"),
            (self.epochs >= 1, f"{{epochs}} must be at least 1, got {self.epochs}", "epochs"),
            (self.rounds >= 1, f"{{rounds}} must be at least 1, got {self.rounds}", "rounds"),
            (self.lr > 0, f"{{lr}} must be > 0, got {self.lr}", "lr"),
            (0 < self.tau_end <= self.tau_start, "{tau_end} must be > 0 and at most {tau_start}", "tau_end"),
            (self.sinkhorn_iters >= 1, "{sinkhorn_iters} must be at least 1", "sinkhorn_iters"),
            (self.gumbel_scale >= 0, "{gumbel_scale} must be >= 0", "gumbel_scale"),
            (self.corr_weight >= 0, "{corr_weight} must be >= 0", "corr_weight"),
            (self.entropy_weight >= 0, "{entropy_weight} must be >= 0", "entropy_weight"),
            (self.corr_feature >= 0, "{corr_feature} must be >= 0", "corr_feature"),
            (self.unmatched_cost >= 0, "{unmatched_cost} must be >= 0", "unmatched_cost"),
            (0 <= self.dead_fraction < 1, "{dead_fraction} must be in [0, 1)", "dead_fraction"),
            (-1 <= self.min_match <= 1, "{min_match} must be in [-1, 1]", "min_match"),
            (self.window >= 2, f"{{window}} must be at least 2, got {self.window}", "window"),
            (self.dim >= 4 and self.dim % self.heads == 0 and self.dim % self.groups == 0,
             f"{{dim}} must be at least 4 and divisible by the heads and the VQ groups, got {self.dim}", "dim"),
            (self.n_codes >= 2, "{n_codes} must be at least 2", "n_codes"),
            (0 < self.mask_fraction < 1, "{mask_fraction} must be in (0, 1)", "mask_fraction"),
            (self.fourier_weight >= 0 and self.commitment >= 0, "{fourier_weight} and {commitment} must be >= 0",
             "fourier_weight"),
            (self.recon_steps >= 0, "{recon_steps} must be >= 0", "recon_steps"),
            (self.batch_size >= 1, "{batch_size} must be at least 1", "batch_size"),
            (self.smooth >= 0, "{smooth} must be >= 0 bins", "smooth"),
        ])

    # ------------------------------------------------------------------ features

    def _features(self, Xs: np.ndarray, templates: np.ndarray, order: np.ndarray) -> np.ndarray:
        """(N, F + N) channel features, rows in the day's own channel order.

        The condition-average template itself (square-root counts: it carries the
        channel's rate, depth and tuning at their own noise level), then
        ``corr_feature`` times the correlation row with the channels in ``order``
        (the estimated reference order), centred and scaled to unit norm.
        """
        R = correlation_matrix(Xs[:, order])  # rows/cols in the estimated reference order
        inv = np.empty_like(order)
        inv[order] = np.arange(order.size)
        R = R[inv]  # back to the day's own channel order for the rows; columns stay in reference order
        return np.hstack([templates, self.corr_feature * _zrows(R)])

    # ------------------------------------------------------------------ fit

    def fit(self, reference: np.ndarray, ref_trials: np.ndarray, ref_labels: np.ndarray | None,
            days: Sequence[np.ndarray], day_trials: Sequence[np.ndarray],
            reconstruct_bins: np.ndarray | None = None) -> CRRL:
        """Learn the channel assignment of every later day and the reconstruction autoencoder.

        Parameters
        ----------
        reference : (T0, N) array
            Reference-day spike counts per bin (valid bins only, or with invalid ones set to 0).
        ref_trials : (M0, 2) int array
            ``[start, stop)`` bins of the reference trials (each at least ``n_profile`` bins); with
            ``ref_labels`` None, any segmentation (e.g. consecutive blocks) works.
        ref_labels : (M0,) int array or None
            Condition of every reference trial (0..C-1); None: one condition (templates are the
            trial-averaged time course).
        days : list of (T_d, N) arrays
            Later days' counts, the same N channels.
        day_trials : list of (M_d, 2) int arrays
            Their trials (no labels).
        reconstruct_bins : (T0,) bool, optional
            Reference bins the autoencoder trains on (default all).

        Returns
        -------
        self

        Raises
        ------
        DataError
            Different channel counts, non-finite counts, too few trials or bins.
        ParameterError
            Hyperparameters out of range.
        """
        self._check_params()
        torch = _torch()
        t0 = time.perf_counter()
        ref = check_array(reference, "reference counts", min_samples=self.window, min_features=2)
        N = ref.shape[1]
        days = [check_array(X, f"day {s + 1} counts", n_features=N) for s, X in enumerate(days)]
        trials = [self._check_trials(ref_trials, ref.shape[0], "reference")]
        trials += [self._check_trials(tr, X.shape[0], f"day {s + 1}") for s, (tr, X) in
                   enumerate(zip(day_trials, days))]
        if ref_labels is None:
            labels = np.zeros(len(trials[0]), dtype=np.int64)
        else:
            labels = np.asarray(ref_labels)
            if labels.shape != (len(trials[0]),):
                raise DataError(f"{labels.size} labels for {len(trials[0])} reference trials")
            _, labels = np.unique(labels, return_inverse=True)
        C = int(labels.max()) + 1
        seed_torch(self.seed, deterministic=True)
        dev = torch_device(self.device)
        sq = [np.sqrt(np.maximum(X, 0)) for X in [ref] + days]
        profiles = [trial_profiles(X, tr, self.n_profile) for X, tr in zip(sq, trials)]
        tref = class_templates(profiles[0], labels, C)
        tref_dev = _deviation(tref, C)
        rate_ref = ref.mean(axis=0)
        S = len(sq)
        perms = [np.arange(N) for _ in range(S)]
        live = [X.mean(axis=0) > self.dead_fraction * max(float(np.median(rate_ref)), 1e-9) for X in [ref] + days]
        f_ref = self._features(sq[0], tref, np.arange(N))
        net = _rearrange_net(f_ref.shape[1], self.hidden).to(dev)
        opt = make_optimizer(net.parameters(), "adam", lr=self.lr)
        gen = torch.Generator(device="cpu").manual_seed(int(self.seed))
        history, errors = [], np.zeros(S)
        R_ref = torch.as_tensor(correlation_matrix(sq[0]), dtype=torch.float32, device=dev)
        T_ref = torch.as_tensor(tref_dev, dtype=torch.float32, device=dev)
        sub = [np.sort(np.random.default_rng([self.seed, 5, s]).choice(X.shape[0], min(X.shape[0], 1000), False))
               for s, X in enumerate(sq)]
        logits_np, tdays_np = [np.zeros((N, N))] * (S - 1), [None] * (S - 1)
        self.unmatched_ = np.zeros((S, N), dtype=bool)
        for rnd in range(int(self.rounds) if days else 0):
            tdays, feats = [], []
            for s in range(1, S):
                # pseudo-labels from the day in its current estimated reference order
                lab = pseudo_labels(profiles[s][:, :, perms[s]], tref, live[s][perms[s]])
                td = class_templates(profiles[s], lab, C)  # (N day channels, F), the day's own order
                tdays_np[s - 1] = td
                tdays.append(_deviation(td, C))
                feats.append(self._features(sq[s], td, perms[s]))
            fr = torch.as_tensor(f_ref, dtype=torch.float32, device=dev)
            fd = torch.as_tensor(np.stack(feats), dtype=torch.float32, device=dev)  # (S-1, N, F)
            td_t = torch.as_tensor(np.stack(tdays), dtype=torch.float32, device=dev)
            deads = torch.as_tensor(~np.stack(live[1:]), device=dev)
            xs = torch.as_tensor(np.stack([_zcols(sq[s][sub[s]]) for s in range(1, S)]), dtype=torch.float32,
                                 device=dev)  # (S-1, n_sub, N)
            n_steps = int(self.epochs)
            taus = np.geomspace(self.tau_start, self.tau_end, n_steps)

            def step_loss(step: int, fr=fr, fd=fd, deads=deads, td_t=td_t, xs=xs, taus=taus, n_steps=n_steps):
                logits = net(fr, fd, deads)  # (S-1, N, N)
                g = -torch.log(-torch.log(torch.rand(logits.shape, generator=gen).clamp(1e-10, 1 - 1e-10)))
                P = sinkhorn((logits + self.gumbel_scale * g.to(dev)) / float(taus[step]), self.sinkhorn_iters)
                t_loss = 1 - _row_corr(P @ td_t, T_ref).mean()
                c_loss = 1 - _row_corr(_corr_t(xs @ P.transpose(1, 2)), R_ref).mean()
                ent = -(P * torch.log(P + 1e-12)).sum(-1).mean()
                if step == n_steps - 1:
                    with torch.no_grad():
                        err = torch.maximum((P.sum(-2) - 1).abs().amax(-1), (P.sum(-1) - 1).abs().amax(-1))
                        errors[1:] = err.cpu().numpy()
                return t_loss + self.corr_weight * c_loss + self.entropy_weight * ent

            done = fit_loop(step_loss, opt, n_steps, clip_norm=5.0)
            history.extend(done.losses)
            with torch.no_grad():
                logits_np = list(net(fr, fd, deads).cpu().numpy().astype(np.float64))
            for s in range(1, S):
                perms[s], self.unmatched_[s] = assign(logits_np[s - 1], ~live[s], self.unmatched_cost)
            log.debug("crrl round %d: loss %.4f", rnd, history[-1])
        # assignments, matches, missing channels
        self.perm_ = np.stack(perms).astype(np.int64)
        self.logits_ = np.zeros((S, N, N), dtype=np.float32)
        self.match_r_ = np.ones((S, N))
        self.missing_ = np.zeros((S, N), dtype=bool)
        for s in range(1, S):
            self.logits_[s] = logits_np[s - 1]
            p = self.perm_[s]
            self.match_r_[s] = row_pearson(_deviation(tdays_np[s - 1], C)[p], tref_dev)
            rate = days[s - 1].mean(axis=0)[p]
            self.missing_[s] = ((rate < self.dead_fraction * rate_ref) | (self.match_r_[s] < self.min_match)
                                | self.unmatched_[s])
        self.missing_[0] = rate_ref <= 0
        self.templates_, self.ref_rate_ = tref, rate_ref
        self.sinkhorn_error_ = errors
        self.n_classes_ = C
        # stage 2: the reconstruction autoencoder on the reference day
        Z = smooth_bins(ref, self.smooth)  # counts: the estimate is then an expected count, no Jensen bias
        self.ref_mean_ = Z.mean(axis=0)
        self.ref_std_ = Z.std(axis=0) + 1e-3
        rbins = np.ones(ref.shape[0], bool) if reconstruct_bins is None else np.asarray(reconstruct_bins, bool)
        recon_hist = self._fit_recon((Z - self.ref_mean_) / self.ref_std_, rbins, dev)
        self.loss_history_ = np.asarray(history + recon_hist, dtype=np.float32)
        weights = {f"rearrange.{k}": v for k, v in state_to_arrays(net.cpu().state_dict()).items()}
        weights.update({f"recon.{k}": v for k, v in state_to_arrays(self._recon.cpu().state_dict()).items()})
        self.weights_ = weights
        self.train_seconds_ = time.perf_counter() - t0
        return self

    def _check_trials(self, trials, n_bins: int, what: str) -> np.ndarray:
        tr = np.asarray(trials, dtype=np.int64).reshape(-1, 2)
        ok = (tr[:, 0] >= 0) & (tr[:, 1] <= n_bins) & (tr[:, 1] - tr[:, 0] >= self.n_profile)
        if not ok.all():
            log.warning("crrl: %d %s trials shorter than %d bins or outside the session are ignored",
                        int((~ok).sum()), what, self.n_profile)
        tr = tr[ok]
        if len(tr) < 2:
            raise DataError(f"{what} has {len(tr)} usable trials; at least 2 of {self.n_profile} bins are needed",
                            hint="check the trials table, or lower the profile length")
        return tr

    def _fit_recon(self, Z: np.ndarray, rows: np.ndarray, dev) -> list:
        """Train the masked VQ autoencoder on standardised reference windows; returns the losses."""
        torch = _torch()
        N, W = Z.shape[1], int(self.window)
        net = _recon_net(N, W, self.dim, self.heads, self.layers, self.n_codes, self.groups).to(dev)
        self._recon = net
        starts = np.flatnonzero(np.convolve(rows.astype(float), np.ones(W), "valid") >= W)
        if starts.size == 0 or self.recon_steps == 0:
            return []
        Zt = torch.as_tensor(Z, dtype=torch.float32, device=dev)
        rng = np.random.default_rng([int(self.seed), 11])
        opt = make_optimizer(net.parameters(), "adam", lr=3e-3)
        n_mask = max(1, round(self.mask_fraction * N))

        def step_loss(step: int):
            st = rng.choice(starts, self.batch_size)
            idx = torch.as_tensor(st[:, None] + np.arange(W)[None], device=dev)
            x = Zt[idx].transpose(1, 2)  # (B, N, W)
            m = np.zeros((self.batch_size, N), bool)
            for b in range(self.batch_size):
                m[b, rng.choice(N, n_mask, replace=False)] = True
            mask = torch.as_tensor(m, device=dev)
            out, cb, commit = net(x, mask)
            err = ((out - x) ** 2).mean(-1)
            loss = err[mask].mean() + 0.1 * err[~mask].mean()
            loss = loss + self.fourier_weight * fourier_loss(out[mask], x[mask]) + cb + self.commitment * commit
            return loss

        done = fit_loop(step_loss, opt, int(self.recon_steps), clip_norm=1.0)
        net.eval()
        return list(done.losses)

    # ------------------------------------------------------------------ use

    def _recon_module(self):
        if self._recon is None:
            torch = _torch()
            N = self.templates_.shape[0]
            net = _recon_net(N, self.window, self.dim, self.heads, self.layers, self.n_codes, self.groups)
            state = {k[len("recon."):]: v for k, v in self.weights_.items() if k.startswith("recon.")}
            net.load_state_dict(arrays_to_state(state))
            net.eval()
            self._recon = net
            del torch
        return self._recon

    def reconstruct(self, X: np.ndarray, missing: np.ndarray) -> np.ndarray:
        """Restore the ``missing`` channels of counts in the reference's channel order.

        Parameters
        ----------
        X : (T, N) array
            Counts per bin, reference channel order.
        missing : (N,) bool
            Channels to restore (their values in ``X`` are ignored).

        Returns
        -------
        (T, N) float64
            ``X`` with the missing channels replaced by the autoencoder's estimate
            (expected counts per bin, ``>= 0``).

        Raises
        ------
        NotFittedError
        DataError
            Another number of channels than the reference.
        """
        check_fitted(self)
        torch = _torch()
        X = check_array(X, "counts", n_features=self.templates_.shape[0])
        missing = np.asarray(missing, bool)
        out = X.copy()
        if not missing.any():
            return out
        T, N = X.shape
        W = int(self.window)
        Z = (smooth_bins(np.maximum(X, 0), self.smooth) - self.ref_mean_) / self.ref_std_
        n_win = int(np.ceil(T / W))
        pad = np.zeros((n_win * W, N))
        pad[:T] = Z
        if T % W:
            pad[T:] = Z[-1]
        net = self._recon_module()
        rec = np.zeros_like(pad)
        with torch.no_grad():
            for a in range(0, n_win, 512):
                x = torch.as_tensor(pad[a * W:(a + 512) * W].reshape(-1, W, N).transpose(0, 2, 1).copy(),
                                    dtype=torch.float32)
                mask = torch.as_tensor(np.broadcast_to(missing, (x.shape[0], N)).copy())
                y, _, _ = net(x, mask)
                rec[a * W:a * W + y.shape[0] * W] = y.numpy().transpose(0, 2, 1).reshape(-1, N)
        est = np.maximum(rec[:T] * self.ref_std_ + self.ref_mean_, 0)
        if int(self.recon_steps) == 0:  # no autoencoder trained: the reference's mean counts
            est = np.broadcast_to(self.ref_rate_, est.shape)
        out[:, missing] = est[:, missing]
        return out

    def transform(self, X: np.ndarray, session: int) -> np.ndarray:
        """Session ``session``'s counts in the reference's channel order, missing channels restored.

        Parameters
        ----------
        X : (T, N) array
            The session's counts (its own channel order).
        session : int
            Index of the session in the fit (0 = the reference).

        Returns
        -------
        (T, N) float64
            Column ``i`` = the session's channel ``perm_[session, i]``, or the reconstruction where
            ``missing_[session, i]``.

        Raises
        ------
        NotFittedError
        DataError
            Another number of channels.
        """
        check_fitted(self)
        X = check_array(X, "counts", n_features=self.perm_.shape[1])
        s = int(session)
        return self.reconstruct(X[:, self.perm_[s]], self.missing_[s])

    # ------------------------------------------------------------------ saving

    def to_group(self, group, metrics: dict | None = None, extra: dict | None = None) -> None:
        """Save the learned arrays and the two networks' weights (``weights/rearrange__*``, ``weights/recon__*``).

        Raises
        ------
        NotFittedError
        """
        check_fitted(self, list(self._learned) + ["weights_"])
        n_par = int(sum(np.asarray(v).size for v in self.weights_.values()))
        super().to_group(group, metrics=metrics, extra={**(extra or {}), "n_parameters": n_par})
        save_weights(group, self.weights_)

    @classmethod
    def from_group(cls, group) -> CRRL:
        """Load a model saved with :meth:`to_group`.

        Raises
        ------
        DataError
            No weights, or weights that do not fit the configuration.
        """
        model = super().from_group(group)
        if "weights" not in group:
            raise DataError("saved CRRL misses its weights")
        model.weights_ = load_weights(group)
        model._recon = None
        rebuild_network(model._recon_module, "CRRL")
        return model


def _deviation(templates: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, C * K) templates minus their mean over the conditions (the tuning); unchanged with one condition."""
    if n_classes < 2:
        return templates
    N = templates.shape[0]
    t = templates.reshape(N, n_classes, -1)
    return (t - t.mean(axis=1, keepdims=True)).reshape(N, -1)


def _zcols(X: np.ndarray) -> np.ndarray:
    """Columns z-scored (0 for constant columns)."""
    sd = X.std(axis=0)
    return np.divide(X - X.mean(axis=0), sd, out=np.zeros_like(X, dtype=float), where=sd > 1e-12)


def _row_corr(A, B):
    """Torch: (N,) Pearson correlation of matching rows of A and B."""
    torch = _torch()
    a = A - A.mean(-1, keepdim=True)
    b = B - B.mean(-1, keepdim=True)
    return (a * b).sum(-1) / torch.sqrt((a ** 2).sum(-1) * (b ** 2).sum(-1) + 1e-12)


def _corr_t(X):
    """Torch: (..., N, N) correlation matrices of the columns of X (..., T, N), zero diagonal."""
    torch = _torch()
    x = X - X.mean(-2, keepdim=True)
    x = x / torch.sqrt((x ** 2).sum(-2, keepdim=True) + 1e-8)
    R = x.transpose(-1, -2) @ x
    return R * (1 - torch.eye(R.shape[-1], device=R.device))
