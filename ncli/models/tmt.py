"""CTC decoders of per-trial label sequences: the time-masked transformer (TMT) and the GRU baseline.

Both map one trial's features ``X`` (T, F) (z-scored by the caller; e.g.
threshold crossings and spike-band power per electrode in 20 ms bins) to
per-patch log-probabilities over ``n_classes + 1`` classes (0 is the CTC blank)
and are trained with the CTC loss (Graves et al. 2006, ICML).

:class:`TMTDecoder`
    Causal transformer over patches of ``patch`` bins (5 bins = 100 ms):
    per-patch LayerNorm + linear patch embedding, pre-norm blocks
    (:class:`ncli.models.nn.transformer.PreNormBlock`) with a T5-style bucketed
    relative position bias (Raffel et al. 2020, JMLR §2.1) and a causal mask, a
    learned mask token. Training augmentation: time masking (``n_masks`` masks per
    trial, each up to ``max_mask`` of the trial's patches, replaced by the mask
    token; never on padding), white noise and per-channel offsets. Test-time
    adaptation (:meth:`TMTDecoder.adapt`): trial by trial, decode, then one
    optimiser step on ``copies`` noisy, time-masked copies of the trial with its
    own decoded sequence as the CTC pseudo-label, updating only the patch
    embedding (the "DietCORP" procedure of the time-masked transformer paper,
    NeurIPS 2025).
:class:`GRUCTCDecoder`
    The Brain-to-Text baseline shape (Willett et al. 2023; Card et al. 2024):
    day-specific input layers ``softsign(W_d x + b_d)``, patches of ``patch``
    bins with stride ``stride`` (B2T'25: 14 and 4), a multi-layer GRU, a linear
    readout. A day not seen in training uses the layer of the last training day.

Input smoothing: a Gaussian kernel of ``smooth`` bins (standard deviation),
causal by default (a half-Gaussian over the current and past bins, so a patch's
logits never depend on later input); ``causal=False`` smooths symmetrically as
the reference implementation does, which looks into the future.

torch is imported inside the functions (see :mod:`ncli.models.nn`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence

import numpy as np

from ncli.core.errors import ParameterError
from ncli.models.base import Estimator, check_fitted, check_params
from ncli.models.nn.weights import (
    arrays_to_state,
    load_strings,
    load_weights,
    rebuild_network,
    save_strings,
    save_weights,
    state_to_arrays,
)

# ----------------------------------------------------------------------------- numpy pieces


def time_mask(n_valid: Sequence[int], n_patches: int, rng: np.random.Generator, n_masks: int = 20,
              max_fraction: float = 0.075) -> np.ndarray:
    """Time masks of a batch: ``n_masks`` spans per trial, each up to ``max_fraction`` of its valid patches.

    Span ``i`` of a trial with ``P`` valid patches has width ``w = u · max_fraction · P``
    (``u ~ U(0, 1)``) and start ``s ~ U(0, P - w)``; patch ``p`` is masked when its
    centre ``p + 0.5`` lies in ``[s, s + w)`` of any span. A point of the trial is
    covered by one span with probability about ``max_fraction / 2``, so the defaults
    mask ``1 - (1 - 0.0375)^20 ≈ 54 %`` of a trial on average, whatever its length.
    Padding (patches ``>= P``) is never masked.

    Parameters
    ----------
    n_valid : sequence of int
        Valid patches of each trial (B,).
    n_patches : int
        Padded length (>= max(n_valid)).
    rng : numpy.random.Generator
    n_masks : int
    max_fraction : float
        In [0, 1].

    Returns
    -------
    (B, n_patches) bool
        True where the patch is replaced by the mask token.
    """
    n_valid = np.asarray(n_valid, dtype=np.float64)
    B = n_valid.size
    w = rng.uniform(0, 1, (B, n_masks)) * max_fraction * n_valid[:, None]
    s = rng.uniform(0, 1, (B, n_masks)) * (n_valid[:, None] - w)
    centre = np.arange(n_patches) + 0.5
    hit = (centre[None, None, :] >= s[..., None]) & (centre[None, None, :] < (s + w)[..., None])
    return hit.any(axis=1) & (centre[None, :] < n_valid[:, None])


def greedy_ctc(logits: np.ndarray) -> np.ndarray:
    """Best-path CTC decoding: argmax per frame, repeats merged, blanks (0) removed.

    Parameters
    ----------
    logits : (P, C) float
        Per-frame scores; class 0 is the blank.

    Returns
    -------
    (L,) int64
        Class ids (1-based).
    """
    best = np.asarray(logits).argmax(axis=1)
    keep = np.ones(best.size, dtype=bool)
    keep[1:] = best[1:] != best[:-1]
    out = best[keep]
    return out[out != 0].astype(np.int64)


def _smoothing_kernel(sigma: float, causal: bool) -> np.ndarray:
    """Gaussian kernel (normalised), lags ``-K..K`` (symmetric) or ``0..K`` (causal, taps in time order)."""
    if sigma <= 0:
        return np.ones(1)
    K = math.ceil(3 * sigma)
    lags = np.arange(-K, K + 1) if not causal else np.arange(-K, 1)
    k = np.exp(-0.5 * (lags / sigma) ** 2)
    return k / k.sum()


def _t5_bucket(rel: np.ndarray, n_buckets: int, max_distance: int) -> np.ndarray:
    """T5 relative-position buckets of a causal (query - key >= 0) distance (Raffel et al. 2020).

    Half of the buckets hold exact distances 0..n/2-1, the rest log-spaced distances up to
    ``max_distance`` (larger ones share the last bucket).
    """
    n = np.maximum(rel, 0)
    exact = n_buckets // 2
    big = exact + (np.log(np.maximum(n, 1) / exact) / math.log(max_distance / exact)
                   * (n_buckets - exact)).astype(np.int64)
    return np.where(n < exact, n, np.minimum(big, n_buckets - 1)).astype(np.int64)


# ----------------------------------------------------------------------------- torch networks


def _nets() -> dict:
    import torch
    from torch import nn

    from ncli.models.nn.transformer import PreNormBlock

    class Smoother(nn.Module):
        """Depthwise Gaussian smoothing over time of (B, T, F) (no parameters)."""

        def __init__(self, sigma: float, causal: bool):
            super().__init__()
            k = _smoothing_kernel(sigma, causal)
            self.register_buffer("kernel", torch.tensor(k, dtype=torch.float32), persistent=False)
            self.left = len(k) - 1 if causal else len(k) // 2
            self.right = 0 if causal else len(k) // 2

        def forward(self, x):
            if self.kernel.numel() == 1:
                return x
            F = x.shape[2]
            y = nn.functional.pad(x.transpose(1, 2), (self.left, self.right))
            w = self.kernel.to(x.dtype).expand(F, 1, -1)  # conv1d correlates: tap j weighs bin t - left + j
            return nn.functional.conv1d(y, w, groups=F).transpose(1, 2)

    class TMTNet(nn.Module):
        """Causal patch transformer; ``patch.*`` is the patch embedding (the layers test-time adaptation updates)."""

        def __init__(self, n_features, n_classes, d, layers, heads, patch, smooth, causal, n_buckets=32,
                     max_distance=128):
            super().__init__()
            self.patch_bins, self.heads = patch, heads
            self.n_buckets, self.max_distance = n_buckets, max_distance
            self.smoother = Smoother(smooth, causal)
            self.patch = nn.Sequential(nn.LayerNorm(patch * n_features), nn.Linear(patch * n_features, d))
            self.mask_token = nn.Parameter(0.02 * torch.randn(d))
            self.rel_bias = nn.Embedding(n_buckets, heads)
            self.blocks = nn.ModuleList([PreNormBlock(d, heads) for _ in range(layers)])
            self.norm = nn.LayerNorm(d)
            self.head = nn.Linear(d, n_classes + 1)

        def n_frames(self, T):
            return -(-T // self.patch_bins)

        def bias(self, P, device):
            i = np.arange(P)
            rel = i[:, None] - i[None, :]
            b = self.rel_bias(torch.as_tensor(_t5_bucket(rel, self.n_buckets, self.max_distance), device=device))
            causal = torch.as_tensor(rel < 0, device=device)
            return b.permute(2, 0, 1).masked_fill(causal[None], float("-inf"))  # (heads, P, P)

        def forward(self, x, mask=None, day=None):
            B, T, F = x.shape
            P = self.n_frames(T)
            x = self.smoother(x)
            x = nn.functional.pad(x, (0, 0, 0, P * self.patch_bins - T)).reshape(B, P, self.patch_bins * F)
            h = self.patch(x)
            if mask is not None:
                h = torch.where(mask[..., None], self.mask_token.expand_as(h), h)
            bias = self.bias(P, x.device)
            for blk in self.blocks:
                h = blk(h, bias)
            return self.head(self.norm(h))

    class GRUCTCNet(nn.Module):
        """Day-specific softsign input layers -> patches (size, stride) -> GRU -> linear."""

        def __init__(self, n_features, n_classes, hidden, layers, patch, stride, n_days, smooth, causal):
            super().__init__()
            self.patch_bins, self.stride = patch, stride
            self.smoother = Smoother(smooth, causal)
            self.day_weight = nn.Parameter(torch.eye(n_features).repeat(n_days, 1, 1))
            self.day_bias = nn.Parameter(torch.zeros(n_days, n_features))
            self.gru = nn.GRU(patch * n_features, hidden, layers, batch_first=True)
            self.head = nn.Linear(hidden, n_classes + 1)

        def n_frames(self, T):
            return max(0, -(-(T - self.patch_bins) // self.stride)) + 1

        def forward(self, x, mask=None, day=None):
            B, T, F = x.shape
            x = self.smoother(x)
            x = nn.functional.softsign(torch.einsum("btf,bgf->btg", x, self.day_weight[day]) + self.day_bias[day][:, None])
            P = self.n_frames(T)
            x = nn.functional.pad(x, (0, 0, 0, (P - 1) * self.stride + self.patch_bins - T))
            x = x.unfold(1, self.patch_bins, self.stride).transpose(2, 3).reshape(B, P, self.patch_bins * F)
            if mask is not None:
                x = x.masked_fill(mask[..., None], 0.0)
            return self.head(self.gru(x)[0])

    return {"TMTNet": TMTNet, "GRUCTCNet": GRUCTCNet}


# ----------------------------------------------------------------------------- estimators


@contextlib.contextmanager
def _one_thread():
    """Run torch on one intra-op thread, then restore the previous count.

    The networks and batches here are small: extra threads only add
    synchronisation (the same decode-and-adapt run of the command line took 180 s
    with torch's default 2 threads and 24 s with one, on a busy 2-core machine).
    """
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class _CTCDecoder(Estimator):
    """Shared training, decoding and saving of the CTC sequence decoders (subclasses build the network).

    ``fit(X, labels, days)`` on trials; ``predict(X, days)`` -> decoded class ids per trial.
    """

    _learned = ("losses_",)
    _learned_scalars = ("n_features_", "n_classes_")
    _fitted = ("losses_", "weights_", "day_vocab_", "n_features_", "n_classes_")
    #: augmentation of training batches: time masking (TMT only), white noise, per-channel offsets
    uses_masking = True

    def _common_init(self, steps, batch, lr, weight_decay, smooth, causal, noise, offset_noise, seed, device):
        self.steps, self.batch, self.lr, self.weight_decay = steps, batch, lr, weight_decay
        self.smooth, self.causal, self.noise, self.offset_noise = smooth, causal, noise, offset_noise
        self.seed, self.device = seed, device
        self.losses_ = self.weights_ = self.day_vocab_ = self.n_features_ = self.n_classes_ = None
        self._net = None

    def _checks(self) -> list:
        return [(self.steps >= 1, f"{{steps}} must be at least 1, got {self.steps}", "steps"),
                (self.batch >= 1, f"{{batch}} must be at least 1, got {self.batch}", "batch"),
                (self.lr > 0, f"{{lr}} must be > 0, got {self.lr}", "lr"),
                (self.smooth >= 0, f"{{smooth}} must be >= 0 bins, got {self.smooth}", "smooth"),
                (self.noise >= 0, f"{{noise}} must be >= 0, got {self.noise}", "noise"),
                (self.offset_noise >= 0, f"{{offset_noise}} must be >= 0, got {self.offset_noise}", "offset_noise")]

    def _new_net(self, n_days: int):  # pragma: no cover - subclasses
        raise NotImplementedError

    def net(self):
        """The torch module (built from ``weights_`` on first use after loading)."""
        if self._net is None:
            import torch

            from ncli.models.nn.train import select_device

            torch.manual_seed(int(self.seed))
            net = self._new_net(len(self.day_vocab_))
            if self.weights_ is not None:
                net.load_state_dict(arrays_to_state(self.weights_))
            self._net = net.to(select_device(self.device))
        return self._net

    def n_parameters(self) -> int:
        """Trainable scalars of the network."""
        return int(sum(p.numel() for p in self.net().parameters()))

    def _day_index(self, days: Sequence[str]) -> np.ndarray:
        """Row of each trial's day-specific layer (a day not trained on: the last training day's)."""
        index = {d: i for i, d in enumerate(self.day_vocab_)}
        return np.array([index.get(str(d), len(self.day_vocab_) - 1) for d in days], dtype=np.int64)

    def _batch(self, X: list, rng: np.random.Generator | None, mask: bool, copies: int = 1):
        """Padded (B, T, F) tensor of trials, augmented when ``rng`` is given; the time mask; frame counts."""
        import torch

        net = self.net()
        dev = next(net.parameters()).device
        trials = [x for x in X for _ in range(copies)]
        T = max(len(x) for x in trials)
        out = np.zeros((len(trials), T, self.n_features_), dtype=np.float32)
        for i, x in enumerate(trials):
            out[i, :len(x)] = x
        frames = np.array([net.n_frames(len(x)) for x in trials])
        m = None
        if rng is not None:
            lengths = np.array([len(x) for x in trials])
            inside = (np.arange(T)[None, :] < lengths[:, None])[..., None]
            out += inside * (self.noise * rng.standard_normal(out.shape, dtype=np.float32)
                             + self.offset_noise * rng.standard_normal((len(trials), 1, out.shape[2]),
                                                                       dtype=np.float32))
            if mask and self.uses_masking and self.n_masks > 0:
                m = torch.as_tensor(time_mask(frames, net.n_frames(T), rng, self.n_masks, self.max_mask), device=dev)
        return torch.as_tensor(out, device=dev), m, frames

    def _ctc(self, logits, frames, labels):
        """Mean CTC loss of (B, P, C) scores with ``frames`` valid frames each against ``labels`` (blank 0)."""
        import torch

        dev = logits.device
        logp = torch.log_softmax(logits, -1).transpose(0, 1)  # (P, B, C)
        tgt = torch.as_tensor(np.concatenate(labels), dtype=torch.long, device=dev)
        n_in = torch.as_tensor(frames, dtype=torch.long, device=dev)
        n_out = torch.as_tensor([len(y) for y in labels], dtype=torch.long, device=dev)
        return torch.nn.functional.ctc_loss(logp, tgt, n_in, n_out, blank=0, zero_infinity=True)

    def fit(self, X: list, labels: list, days: Sequence[str], log=None) -> _CTCDecoder:
        """Train on trials.

        Parameters
        ----------
        X : list of (T_i, F) float arrays
            Features per trial (z-scored).
        labels : list of (L_i,) int arrays
            Class ids in 1..n_classes (0 is the blank); ``n_classes`` is their maximum unless set.
        days : sequence of str
            The day (session) of each trial; one input layer per day where the model has them.
        log : callable, optional
            ``log(step, loss)``.

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            A bad hyperparameter, or trials of different feature counts.
        """
        import torch

        from ncli.models.nn.train import (
            fit_loop,
            make_optimizer,
            seed_torch,
            warmup_cosine,
        )

        check_params(self._checks())
        if not X or len(X) != len(labels) or len(X) != len(days):
            raise ParameterError("X", "{X}, labels and days must be non-empty and of the same length")
        if len({x.shape[1] for x in X}) > 1:
            raise ParameterError("X", "every trial must have the same number of features")
        self.n_features_ = int(X[0].shape[1])
        self.n_classes_ = int(getattr(self, "n_classes", None) or max(int(np.max(y)) for y in labels if len(y)))
        self.day_vocab_ = np.array(list(dict.fromkeys(str(d) for d in days)), dtype=object)
        self.weights_, self._net = None, None
        seed_torch(self.seed)
        net = self.net()
        net.train()
        opt = make_optimizer(net.parameters(), "adamw", lr=self.lr, weight_decay=self.weight_decay)
        sched = warmup_cosine(opt, self.steps, floor=0.05)
        rng = np.random.default_rng([int(self.seed), 71])
        X = [np.asarray(x, dtype=np.float32) for x in X]
        day_idx = self._day_index(days)
        dev = next(net.parameters()).device

        def step_loss(step):
            pick = rng.integers(0, len(X), min(self.batch, len(X)))
            xb, m, frames = self._batch([X[i] for i in pick], rng, mask=True)
            logits = net(xb, m, torch.as_tensor(day_idx[pick], device=dev))
            return self._ctc(logits, frames, [labels[i] for i in pick])

        with _one_thread():
            res = fit_loop(step_loss, opt, self.steps, schedule=sched, clip_norm=1.0, progress=log)
        self.losses_ = np.asarray(res.losses, dtype=np.float64)
        self.weights_ = state_to_arrays(net.state_dict())
        net.eval()
        return self

    def logits(self, X, days: Sequence[str] | None = None) -> list:
        """Per-frame scores of each trial, one forward pass per trial (no augmentation).

        Parameters
        ----------
        X : list of (T_i, F) arrays
        days : sequence of str, optional
            Default: the last training day for every trial.

        Returns
        -------
        list of (P_i, n_classes + 1) float32

        Raises
        ------
        NotFittedError
        """
        import torch

        check_fitted(self, self._fitted)
        if isinstance(X, np.ndarray) and X.ndim == 2:
            X = [X]
        days = list(days) if days is not None and not isinstance(days, str) else [self.day_vocab_[-1]] * len(X)
        net = self.net()
        net.eval()
        idx = self._day_index(days)
        dev = next(net.parameters()).device
        out = []
        with torch.no_grad(), _one_thread():
            for x, d in zip(X, idx):
                xb, _, _ = self._batch([np.asarray(x, dtype=np.float32)], None, mask=False)
                out.append(net(xb, None, torch.as_tensor([d], device=dev))[0].cpu().numpy())
        return out

    def predict(self, X, days: Sequence[str] | None = None) -> list:
        """Greedy CTC decoding of each trial: a list of (L_i,) int64 class ids.

        Raises
        ------
        NotFittedError
        """
        return [greedy_ctc(z) for z in self.logits(X, days)]

    # ------------------------------------------------------------------ saving

    def to_group(self, group, metrics: dict | None = None, extra: dict | None = None) -> None:
        """Save the loss curve, the network's ``weights/<parameter>`` and the training days.

        Raises
        ------
        NotFittedError
        """
        check_fitted(self, self._fitted)
        n_par = int(sum(np.asarray(v).size for v in self.weights_.values()))
        super().to_group(group, metrics=metrics, extra={**(extra or {}), "n_parameters": n_par})
        save_weights(group, self.weights_)
        save_strings(group, "day_vocab", list(self.day_vocab_))

    @classmethod
    def from_group(cls, group) -> _CTCDecoder:
        """Load a decoder saved with :meth:`to_group`.

        Raises
        ------
        DataError
            No weights, or weights that do not match the configuration.
        """
        from ncli.core.errors import DataError

        model = super().from_group(group)
        if "weights" not in group or "day_vocab" not in group:
            raise DataError(f"saved {cls.__name__} misses its weights")
        model.weights_ = load_weights(group)
        model.day_vocab_ = load_strings(group, "day_vocab")
        model._net = None
        rebuild_network(model.net, cls.__name__)
        return model


class TMTDecoder(_CTCDecoder):
    """Time-masked causal transformer with CTC (see the module docstring).

    Parameters
    ----------
    d : int
        Width of the patch embedding and of the blocks (a multiple of ``heads``).
    layers, heads : int
    patch : int
        Bins per patch (5 = 100 ms at 20 ms bins).
    n_masks : int
        Time masks per training trial (0: no masking).
    max_mask : float
        Largest mask as a fraction of the trial's patches.
    steps, batch : int
        Optimisation steps and trials per step.
    lr, weight_decay : float
        AdamW, linear warm-up then cosine decay.
    smooth : float
        Gaussian smoothing (standard deviation in bins; 0: none).
    causal : bool
        Causal smoothing (default) or symmetric (looks ahead ``3 smooth`` bins).
    noise, offset_noise : float
        Standard deviations of the white noise and of the per-channel offsets added in training.
    n_classes : int, optional
        Classes without the blank (default: the largest label).
    seed : int
    device : str

    Attributes
    ----------
    losses_ : (steps,) float64
        Training CTC loss per step.
    weights_ : dict name -> ndarray
    day_vocab_ : (D,) object
        Days trained on.
    """

    model_id = "ncli/tmt@1"

    def __init__(self, d: int = 64, layers: int = 2, heads: int = 4, patch: int = 5, n_masks: int = 20,
                 max_mask: float = 0.075, steps: int = 600, batch: int = 16, lr: float = 2e-3,
                 weight_decay: float = 1e-4, smooth: float = 2.0, causal: bool = True, noise: float = 0.5,
                 offset_noise: float = 0.2, n_classes: int | None = None, seed: int = 0, device: str = "cpu"):
        self.d, self.layers, self.heads, self.patch = d, layers, heads, patch
        self.n_masks, self.max_mask, self.n_classes = n_masks, max_mask, n_classes
        self._common_init(steps, batch, lr, weight_decay, smooth, causal, noise, offset_noise, seed, device)

    def _checks(self) -> list:
        return super()._checks() + [
            (self.d >= 1 and self.heads >= 1 and self.d % self.heads == 0,
             f"{{d}} must be a positive multiple of heads ({self.heads}), got {self.d}", "d"),
            (self.layers >= 1, f"{{layers}} must be at least 1, got {self.layers}", "layers"),
            (self.patch >= 1, f"{{patch}} must be at least 1, got {self.patch}", "patch"),
            (self.n_masks >= 0, f"{{n_masks}} must be >= 0, got {self.n_masks}", "n_masks"),
            (0 <= self.max_mask <= 1, f"{{max_mask}} must be in [0, 1], got {self.max_mask}", "max_mask")]

    def _new_net(self, n_days: int):
        return _nets()["TMTNet"](self.n_features_, self.n_classes_, self.d, self.layers, self.heads, self.patch,
                                 self.smooth, self.causal)

    def adapt(self, X: list, days: Sequence[str] | None = None, *, copies: int = 64, lr: float = 3e-4,
              reset: bool = False, timings: list | None = None) -> list:
        """Decode trials in order, adapting the patch embedding after each (test-time adaptation).

        For each trial: greedy decoding with the current weights (its result is
        returned as it was before the update), then, if it decoded to a non-empty
        sequence, one Adam step on the CTC loss of ``copies`` augmented copies
        (noise, offsets, time masks) against that sequence. Only ``patch.*`` is
        updated; every other parameter stays bit-identical. The adapted weights are
        kept in ``weights_`` (no reset between trials unless ``reset``).

        Parameters
        ----------
        X : list of (T_i, F) arrays
        days : sequence of str, optional
        copies : int
            Augmented copies per step (64 in the paper).
        lr : float
            Adam learning rate of the adaptation.
        reset : bool
            Restore the trained patch embedding before every trial.
        timings : list, optional
            Appended (decode seconds, adaptation seconds) per trial.

        Returns
        -------
        list of (L_i,) int64
            Decoded class ids, each before its own adaptation step.

        Raises
        ------
        NotFittedError
        """
        import torch

        check_fitted(self, self._fitted)
        net = self.net()
        params = list(net.patch.parameters())
        start = {k: v.detach().clone() for k, v in net.patch.state_dict().items()}
        opt = torch.optim.Adam(params, lr=lr)
        rng = np.random.default_rng([int(self.seed), 73])
        with _one_thread():
            out = self._adapt_loop(X, days, net, params, start, opt, rng, lr, copies, reset, timings)
        self.weights_ = state_to_arrays(net.state_dict())
        return out

    def _adapt_loop(self, X, days, net, params, start, opt, rng, lr, copies, reset, timings) -> list:
        """The trial-by-trial decode-then-step loop of :meth:`adapt`."""
        import torch

        out = []
        for i, x in enumerate(X):
            if reset:
                net.patch.load_state_dict(start)
                opt = torch.optim.Adam(params, lr=lr)
            t0 = time.perf_counter()
            ids = self.predict([x], None if days is None else [list(days)[i]])[0]
            t1 = time.perf_counter()
            out.append(ids)
            if ids.size:
                net.train()
                xb, m, frames = self._batch([np.asarray(x, dtype=np.float32)], rng, mask=True, copies=copies)
                loss = self._ctc(net(xb, m), frames, [ids] * copies)
                net.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()  # the optimiser holds the patch embedding only
                net.eval()
            if timings is not None:
                timings.append((t1 - t0, time.perf_counter() - t1))
        return out


class GRUCTCDecoder(_CTCDecoder):
    """GRU with day-specific softsign input layers and CTC (the Brain-to-Text baseline shape).

    Parameters
    ----------
    hidden, layers : int
        GRU width and depth (B2T'25: 768 and 5).
    patch, stride : int
        Bins per input patch and between patches (B2T'25: 14 and 4).
    steps, batch, lr, weight_decay, smooth, causal, noise, offset_noise, n_classes, seed, device
        As :class:`TMTDecoder` (no time masking).

    Attributes
    ----------
    losses_, weights_, day_vocab_
        As :class:`TMTDecoder`.
    """

    model_id = "ncli/gru-ctc@1"
    uses_masking = False
    n_masks = 0
    max_mask = 0.0

    def __init__(self, hidden: int = 128, layers: int = 2, patch: int = 14, stride: int = 4, steps: int = 600,
                 batch: int = 16, lr: float = 2e-3, weight_decay: float = 1e-4, smooth: float = 2.0,
                 causal: bool = True, noise: float = 0.5, offset_noise: float = 0.2, n_classes: int | None = None,
                 seed: int = 0, device: str = "cpu"):
        self.hidden, self.layers, self.patch, self.stride, self.n_classes = hidden, layers, patch, stride, n_classes
        self._common_init(steps, batch, lr, weight_decay, smooth, causal, noise, offset_noise, seed, device)

    def _checks(self) -> list:
        return super()._checks() + [
            (self.hidden >= 1, f"{{hidden}} must be at least 1, got {self.hidden}", "hidden"),
            (self.layers >= 1, f"{{layers}} must be at least 1, got {self.layers}", "layers"),
            (self.patch >= 1, f"{{patch}} must be at least 1, got {self.patch}", "patch"),
            (1 <= self.stride <= self.patch, f"{{stride}} must be in [1, patch], got {self.stride}", "stride")]

    def _new_net(self, n_days: int):
        return _nets()["GRUCTCNet"](self.n_features_, self.n_classes_, self.hidden, self.layers, self.patch,
                                    self.stride, n_days, self.smooth, self.causal)
