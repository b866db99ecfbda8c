"""POSSM: spike tokens, latent cross-attention and a recurrent state-space backbone.

A causal, real-time decoder of behaviour from spike times (Ryoo et al.,
"Generalizable, real-time neural decoding with hybrid state-space models",
NeurIPS 2025, §3). Its input stage follows POYO (Azabou et al., "A unified,
scalable framework for neural population decoding", NeurIPS 2023, §2):

1. The spike train is cut into causal chunks of ``chunk`` seconds. Every spike
   in chunk ``j`` is a token: the learned embedding of its unit (an
   extendable vocabulary of string unit keys, so new sessions add units) with
   its time encoded by rotary embeddings (Su et al. 2021, RoFormer, §3.4).
2. ``n_latents`` learned latent queries, placed at the chunk's end, cross-attend
   to the chunk's tokens plus one learned "null" token (so an empty chunk gives
   a finite result). Attention is over a set: the order of spikes inside a
   chunk does not matter.
3. A recurrent backbone runs over the chunk latents: a GRU (Cho et al. 2014) or
   a stack of diagonal state-space layers (S4D, Gu et al., "On the
   parameterization and initialization of diagonal state space models",
   NeurIPS 2022, §3: ZOH discretisation, S4D-Lin initialisation).
4. For every output time an output query (plus the session embedding) attends
   over the last ``k = 3`` backbone states (rotary times again) and a linear
   readout gives the behaviour. Continuous targets: MSE; discrete: cross-entropy.

Everything is causal: the prediction for a bin ending at time ``t`` reads only
spikes before ``t``. The batch forward (:meth:`SequenceDecoder.predict`) and the
online step (:class:`StreamState`) compute the same function.

Data come in :class:`SpikeSession` records (no file access here); the decode
command builds them from a store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ncli.core.errors import DataError, ParameterDataError, ParameterError
from ncli.models.base import Estimator, check_fitted, check_params
from ncli.models.nn.train import fit_loop, make_optimizer, seed_torch, select_device, warmup_cosine
from ncli.models.nn.vocab import grow_state, new_keys, train_rows_only
from ncli.models.nn.weights import (arrays_to_state, load_strings, load_weights, rebuild_network, save_strings,
                                    save_weights, state_to_arrays)


# ----------------------------------------------------------------------------- data


@dataclass
class SpikeSession:
    """One session as the neural decoders need it (spike times and a bin grid).

    Attributes
    ----------
    session_id : str
    unit_keys : (N,) str
        Vocabulary key of each unit (e.g. ``"<session>/<unit id>"``).
    spike_times : (S,) float64
        Spike times (s), units concatenated, each unit's spikes sorted.
    spike_index : (N+1,) int64
        Unit ``u`` owns ``spike_times[spike_index[u]:spike_index[u+1]]``.
    t_start : float
        Left edge of bin 0 (s).
    bin_size : float
        Bin width (s); bin ``k`` covers ``[t_start + k·bin, t_start + (k+1)·bin)``.
    n_bins : int
    Y : (T, D) float64 or None
        Target at bin centres (NaN where unknown); class indices for discrete targets.
    counts : (T, N) float or None
        Binned features for the bin-based GRU baseline.
    """

    session_id: str
    unit_keys: np.ndarray
    spike_times: np.ndarray
    spike_index: np.ndarray
    t_start: float
    bin_size: float
    n_bins: int
    Y: np.ndarray | None = None
    counts: np.ndarray | None = None

    def unit_of_spike(self) -> np.ndarray:
        """(S,) int64 unit index of every spike."""
        return np.repeat(np.arange(len(self.unit_keys)), np.diff(self.spike_index))


@dataclass
class ChunkedSpikes:
    """Spikes of one session grouped by chunk (CSR layout), in time order inside each chunk.

    Attributes
    ----------
    token : (S,) int64   vocabulary index of each spike's unit
    offset : (S,) float64  spike time minus the end of its chunk (s, in ``[-chunk, 0)``)
    ptr : (n_chunks+1,) int64  chunk ``j`` owns tokens ``ptr[j]:ptr[j+1]``
    chunk : float  chunk length (s)
    t_start : float  start of chunk 0 (s)
    """

    token: np.ndarray
    offset: np.ndarray
    ptr: np.ndarray
    chunk: float
    t_start: float

    @property
    def n_chunks(self) -> int:
        return len(self.ptr) - 1


def chunk_spikes(times: np.ndarray, tokens: np.ndarray, t_start: float, chunk: float,
                 n_chunks: int) -> ChunkedSpikes:
    """Group spikes into causal chunks ``[t_start + j·chunk, t_start + (j+1)·chunk)``.

    Parameters
    ----------
    times : (S,) float64
        Spike times (s), any order.
    tokens : (S,) int64
        Vocabulary index of each spike's unit.
    t_start, chunk : float
        Grid start and chunk length (s).
    n_chunks : int
        Spikes outside the ``n_chunks`` chunks are dropped.

    Returns
    -------
    ChunkedSpikes
    """
    times = np.asarray(times, dtype=np.float64)
    j = np.floor((times - t_start) / chunk).astype(np.int64)
    keep = (j >= 0) & (j < n_chunks)
    times, j, tokens = times[keep], j[keep], np.asarray(tokens, dtype=np.int64)[keep]
    order = np.lexsort((times, j))
    times, j, tokens = times[order], j[order], tokens[order]
    ptr = np.zeros(n_chunks + 1, dtype=np.int64)
    np.cumsum(np.bincount(j, minlength=n_chunks), out=ptr[1:])
    offset = np.minimum(times - (t_start + (j + 1) * chunk), -1e-12)
    return ChunkedSpikes(tokens, offset, ptr, float(chunk), float(t_start))


def gather_chunks(cs: ChunkedSpikes, chunks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tokens of a list of chunks, concatenated.

    Parameters
    ----------
    cs : ChunkedSpikes
    chunks : (M,) int
        Chunk indices; ``-1`` means an empty (padding) chunk.

    Returns
    -------
    token : (S',) int64, offset : (S',) float64, segment : (S',) int64
        ``segment`` is the position in ``chunks`` each token belongs to.
    """
    chunks = np.asarray(chunks, dtype=np.int64).ravel()
    ok = chunks >= 0
    c = np.where(ok, chunks, 0)
    start = cs.ptr[c]
    count = np.where(ok, cs.ptr[c + 1] - start, 0)
    total = int(count.sum())
    seg = np.repeat(np.arange(chunks.size), count)
    first = np.repeat(np.cumsum(count) - count, count)
    idx = np.repeat(start, count) + (np.arange(total) - first)
    return cs.token[idx], cs.offset[idx], seg


# ----------------------------------------------------------------------------- torch modules


def _torch():
    """The ``torch`` module, imported on first use (importing this module does not import torch)."""
    import torch

    return torch


def modules() -> dict:
    """The torch block classes by name (built on first use; they live in :mod:`ncli.models.nn`)."""
    from ncli.models.nn import modules as nn_modules

    return nn_modules()


# ----------------------------------------------------------------------------- estimator base


class SequenceDecoder(Estimator):
    """Shared training/prediction machinery of the neural decoders (POSSM, POYO, GRU).

    Subclasses build a torch module (``_new_net``) and define how a batch of
    training windows and a whole session are turned into predictions; the
    blocks, the training loop (:func:`ncli.models.nn.train.fit_loop`), the
    vocabularies and the weight layout come from :mod:`ncli.models.nn`. Targets
    are z-scored with training statistics (continuous) or class indices
    (``task="classification"``).

    Vocabulary: ``unit_vocab_`` lists every unit key seen (extendable with
    :meth:`extend_vocab`), ``session_vocab_`` every session id.
    """

    _learned = ("y_mean_", "y_scale_", "loss_history_")
    _fitted = ("weights_", "unit_vocab_", "session_vocab_", "y_mean_", "y_scale_")

    # ------------------------------------------------------------------ helpers
    def _init(self, hyper: dict):
        """Store the ``__init__`` arguments (``locals()``) as attributes; learned state starts empty."""
        for name, value in hyper.items():
            if name not in ("self", "__class__"):
                setattr(self, name, value)
        for name in self._learned + self._fitted + self._learned_scalars:
            setattr(self, name, None)
        self._net = None

    def _check_common(self):
        checks = [
            (self.task in ("regression", "classification"), f"unknown task '{self.task}'", "task"),
            (self.steps >= 1, f"{{steps}} must be >= 1, got {self.steps}", "steps"),
            (self.batch_size >= 1, f"batch size must be >= 1, got {self.batch_size}", "batch_size"),
            (self.window >= 2, f"training window must be >= 2 bins, got {self.window}", "window"),
            (self.lr > 0, f"learning rate must be > 0, got {self.lr}", "lr"),
        ]
        check_params(checks)

    @property
    def n_out_(self) -> int:
        return int(self.n_outputs_)

    def _rng(self, salt: int = 0):
        return np.random.default_rng([int(self.seed), salt])

    def _z(self, Y: np.ndarray) -> np.ndarray:
        if self.task == "classification":
            return Y
        return (Y - self.y_mean_) / self.y_scale_

    def _unz(self, P: np.ndarray) -> np.ndarray:
        if self.task == "classification":
            return P
        return P * self.y_scale_ + self.y_mean_

    def net(self):
        """The torch module with the fitted weights (built lazily)."""
        if self._net is None:
            check_fitted(self, self._fitted)
            self._net = self._new_net()
            self._net.load_state_dict(arrays_to_state(self.weights_))
            self._net = self._net.double().eval()  # inference in float64: batch and streaming agree to ~1e-12
        return self._net

    def _store_weights(self, net):
        self.weights_ = state_to_arrays(net.state_dict())
        self._net = None

    def n_parameters(self) -> int:
        """Number of trainable parameters of the network."""
        return int(sum(p.numel() for p in self.net().parameters()))

    def extend_vocab(self, sessions: list[SpikeSession]) -> list[str]:
        """Add unknown unit keys and session ids to the vocabularies (new embeddings start random).

        Returns
        -------
        list of str
            The unit keys that were added.
        """
        check_fitted(self, self._fitted)
        torch = _torch()
        units = list(self.unit_vocab_)
        new_units = new_keys(units, (k for s in sessions for k in s.unit_keys))
        sess = list(self.session_vocab_)
        new_sess = [s.session_id for s in sessions if s.session_id not in sess]
        if not new_units and not new_sess:
            return []
        old = self.net().state_dict()
        self.unit_vocab_ = np.array(units + new_units, dtype=object)
        self.session_vocab_ = np.array(sess + new_sess, dtype=object)
        gen = torch.Generator().manual_seed(int(self.seed) + 17)
        net = self._new_net()
        net.load_state_dict(grow_state(old, net.state_dict(), gen))
        self._store_weights(net)
        return new_units

    def _vocab_index(self, sess: SpikeSession) -> tuple[np.ndarray, int]:
        lookup = {k: i for i, k in enumerate(self.unit_vocab_)}
        missing = [k for k in sess.unit_keys if str(k) not in lookup]
        if missing:
            raise ParameterDataError(f"session '{sess.session_id}' has {len(missing)} units the model has not seen "
                            f"(e.g. '{missing[0]}')", hint="fine-tune on the session first ({finetune} units)")
        if sess.session_id not in set(self.session_vocab_):
            raise ParameterDataError(f"session '{sess.session_id}' is unknown to the model",
                                     hint="fine-tune on the session first ({finetune} units)")
        return (np.array([lookup[str(k)] for k in sess.unit_keys], dtype=np.int64),
                list(self.session_vocab_).index(sess.session_id))

    # ------------------------------------------------------------------ fit
    def fit(self, sessions: list[SpikeSession], train_bins: dict[str, np.ndarray], *,
            finetune: str | None = None, steps: int | None = None, log=None) -> "SequenceDecoder":
        """Train on windows of consecutive training bins.

        Parameters
        ----------
        sessions : list of SpikeSession
            Sessions with targets ``Y`` (T, D).
        train_bins : dict session_id -> (n,) int
            Bins whose target may be used for training (sorted). Training windows
            are runs of ``window`` consecutive training bins, so no window reaches
            into a held-out block.
        finetune : None, "units" or "full"
            Continue training a fitted model: ``"units"`` trains only the unit and
            session embeddings (new sessions' units are added to the vocabulary
            first), ``"full"`` trains every parameter. ``None``: train from scratch.
        steps : int, optional
            Optimiser steps (default ``self.steps``).
        log : callable, optional
            Progress callback ``log(step, loss)``.

        Returns
        -------
        self

        Raises
        ------
        DataError
            No training window fits in the training bins, or non-finite targets.
        UsageError
            Invalid hyperparameters or ``finetune`` value.
        """
        self._check_common()
        if finetune not in (None, "units", "full"):
            raise ParameterError("finetune", f"{{finetune}} must be units or full, got '{finetune}'")
        device = select_device(self.device)
        seed_torch(self.seed)
        rng = self._rng(1 if finetune is None else 2)
        if finetune is None:
            Ys = [s.Y[train_bins[s.session_id]] for s in sessions]
            Ycat = np.vstack(Ys)
            if not np.all(np.isfinite(Ycat)):
                raise DataError("training targets contain NaN or infinite values")
            self.n_outputs_ = Ycat.shape[1] if self.task == "regression" else int(Ycat.max()) + 1
            if self.task == "regression":
                self.y_mean_ = Ycat.mean(0)
                sd = Ycat.std(0)
                self.y_scale_ = np.where(sd > 0, sd, 1.0)
            else:
                self.y_mean_, self.y_scale_ = np.zeros(1), np.ones(1)
            self.unit_vocab_ = np.array(list(dict.fromkeys(str(k) for s in sessions for k in s.unit_keys)),
                                        dtype=object)
            self.session_vocab_ = np.array([s.session_id for s in sessions], dtype=object)
            self._setup(sessions)
            net = self._new_net().to(device)
            params = list(net.parameters())
            history = []
        else:
            check_fitted(self, self._fitted)
            added = set(self.extend_vocab(sessions))
            net = self._new_net().to(device)
            net.load_state_dict(arrays_to_state(self.weights_))
            if finetune == "units":
                # only the rows of the new units (all the session's units if none is new) and sessions train
                keys = {str(k) for s in sessions for k in s.unit_keys}
                rows = {"unit": [i for i, k in enumerate(self.unit_vocab_) if k in (added or keys)],
                        "session": [list(self.session_vocab_).index(s.session_id) for s in sessions]}
                params = train_rows_only(net, {n: rows["unit" if "unit" in n else "session"]
                                               for n in self._embedding_names()}, device)
            else:
                params = list(net.parameters())
            history = list(np.asarray(self.loss_history_).ravel())
        prepared = [self._prepare(s, train_bins[s.session_id]) for s in sessions]
        starts = [p["starts"] for p in prepared]
        n_windows = np.array([len(s) for s in starts])
        if n_windows.sum() == 0:
            raise DataError(f"no run of {self.window} consecutive training bins",
                            hint="use fewer folds or a shorter training window")
        n_steps = int(steps if steps is not None else self.steps)
        lr = self.lr if finetune != "units" else self.lr * 3
        opt = make_optimizer(params, "adamw", lr=lr, weight_decay=0.0 if finetune == "units" else self.weight_decay)
        net.train()
        p_sess = n_windows / n_windows.sum()

        def step_loss(step: int):
            which = rng.choice(len(sessions), size=self.batch_size, p=p_sess)
            batch = []
            for si in np.unique(which):
                nb = int((which == si).sum())
                batch.append((si, starts[si][rng.integers(0, len(starts[si]), nb)]))
            return self._batch_loss(net, prepared, batch, device)

        def progress(step: int, loss: float):
            if log is not None and (step % 50 == 0 or step == n_steps - 1):
                log(step, loss)

        done = fit_loop(step_loss, opt, n_steps, schedule=warmup_cosine(opt, n_steps, floor=0.05), clip_norm=1.0,
                        clip_params=params, progress=progress)
        history.extend(done.losses)
        for p in net.parameters():
            p.requires_grad_(True)
        self.loss_history_ = np.asarray(history, dtype=np.float32)
        self._store_weights(net.cpu())
        return self

    def _loss(self, pred, target):
        torch = _torch()
        if self.task == "classification":
            return torch.nn.functional.cross_entropy(pred, target.long().view(-1))
        return torch.nn.functional.mse_loss(pred, target)

    def _window_starts(self, bins: np.ndarray) -> np.ndarray:
        """Start bins of every window of ``window`` consecutive bins inside ``bins``."""
        bins = np.asarray(bins, dtype=np.int64)
        if bins.size < self.window:
            return np.zeros(0, dtype=np.int64)
        ok = bins[self.window - 1:] - bins[: bins.size - self.window + 1] == self.window - 1
        return bins[: bins.size - self.window + 1][ok]

    # ------------------------------------------------------------------ saving
    def to_group(self, group, metrics: dict | None = None, extra: dict | None = None) -> None:
        """Save as arrays: ``weights/<parameter>`` (dots become ``__``), vocabularies, target scaling.

        Raises
        ------
        NotFittedError
            Not fitted.
        """
        check_fitted(self, self._fitted)
        n_par = int(sum(np.asarray(v).size for k, v in self.weights_.items()))
        super().to_group(group, metrics=metrics, extra={**(extra or {}), "n_parameters": n_par})
        save_weights(group, self.weights_)
        save_strings(group, "unit_vocab", self.unit_vocab_)
        save_strings(group, "session_vocab", self.session_vocab_)

    @classmethod
    def from_group(cls, group) -> "SequenceDecoder":
        """Load a decoder saved with :meth:`to_group`.

        Raises
        ------
        DataError
            Not a saved decoder of this class, or weights that do not match its configuration.
        """
        model = super().from_group(group)
        if "weights" not in group or "unit_vocab" not in group:
            raise DataError(f"saved {cls.__name__} misses its weights")
        model.weights_ = load_weights(group)
        model.unit_vocab_ = load_strings(group, "unit_vocab")
        model.session_vocab_ = load_strings(group, "session_vocab")
        model._net = None
        rebuild_network(model.net, cls.__name__)
        return model


# ----------------------------------------------------------------------------- POSSM


class POSSMDecoder(SequenceDecoder):
    """POSSM decoder: spike-token cross-attention per chunk, GRU/S4D backbone, output attention.

    Parameters
    ----------
    chunk : float
        Chunk length (s). The store's bin width must be a whole multiple of it.
    backbone : {"gru", "s4d"}
    hidden : int
        Backbone width.
    layers : int
        Backbone layers.
    dim : int
        Token / latent width.
    n_latents : int
        Latent queries per chunk.
    heads : int
        Attention heads (cross-attention and output attention).
    k_states : int
        Backbone states the output query attends over (the paper's k = 3).
    window : int
        Training window (bins of consecutive training data per sample).
    warmup : int
        Bins at the start of each training window left out of the loss.
    steps, batch_size, lr, weight_decay : optimisation (AdamW; linear warm-up over 10 % of the steps, cosine decay).
    task : {"regression", "classification"}
    seed : int
    device : str
        ``cpu``, ``cuda`` or ``auto``.
    null_bias : float
        Initial logit of the null token. A high value makes the attention
        weights of a few spikes small next to the null token's, so the
        attention output grows with the number of spikes (closer to a sum than
        an average) from the start of training.
    sum_pool : bool
        Add a count pathway to the chunk latents: a linear map of the sum of
        the chunk's token values (an ncli addition to POSSM; permutation
        invariant and causal like the attention). On the reach simulator
        (40 units, 150 s, 3 folds, 150 steps) it raised held-out R² from 0.75
        to 0.79-0.81, level with ridge.

    Attributes
    ----------
    weights_ : dict str -> ndarray
    unit_vocab_ : (V,) str   unit keys, in embedding order
    session_vocab_ : (n_sessions,) str
    y_mean_, y_scale_ : (D,) float64   target standardisation
    loss_history_ : (n_steps,) float32

    References
    ----------
    Ryoo et al. (2025) NeurIPS, §3 (POSSM). Azabou et al. (2023) NeurIPS, §2 (POYO
    tokenisation, rotary time, latent cross-attention, unit identification §3.4).
    Gu et al. (2022) NeurIPS (S4D). Cho et al. (2014) EMNLP (GRU).
    """

    model_id = "ncli/possm@1"
    _learned_scalars = ("bin_ratio_", "n_outputs_")

    def __init__(self, chunk: float = 0.05, backbone: str = "gru", hidden: int = 64, layers: int = 1,
                 dim: int = 32, n_latents: int = 4, heads: int = 2, k_states: int = 3, window: int = 64,
                 warmup: int = 8, steps: int = 600, batch_size: int = 16, lr: float = 3e-3,
                 weight_decay: float = 1e-4, task: str = "regression", seed: int = 0, device: str = "cpu",
                 null_bias: float = 3.0, sum_pool: bool = True):
        self._init(locals())

    def _check(self):
        self._check_common()
        checks = [
            (self.backbone in ("gru", "s4d"), f"{{backbone}} must be gru or s4d, got '{self.backbone}'", "backbone"),
            (self.chunk > 0 and np.isfinite(self.chunk), f"{{chunk}} must be > 0 s, got {self.chunk}", "chunk"),
            (self.hidden >= 2 and self.hidden % (2 * self.heads) == 0,
             f"{{hidden}} must be a positive multiple of 2 × heads ({2 * self.heads}), got {self.hidden}", "hidden"),
            (self.dim % (2 * self.heads) == 0, f"dim must be a multiple of 2 × heads, got {self.dim}", "dim"),
            (self.layers >= 1, f"{{layers}} must be >= 1, got {self.layers}", "layers"),
            (self.k_states >= 1, f"k_states must be >= 1, got {self.k_states}", "k_states"),
        ]
        check_params(checks)

    def _setup(self, sessions: list[SpikeSession]):
        self._check()
        ratios = {round(s.bin_size / self.chunk, 6) for s in sessions}
        r = ratios.pop()
        if ratios or abs(r - round(r)) > 1e-6 or round(r) < 1:
            raise ParameterError("chunk", f"the bin width ({sessions[0].bin_size} s) must be a whole multiple of "
                                 f"{{chunk}} ({self.chunk} s) in every session",
                                 hint="e.g. {chunk} equal to the bin width")
        self.bin_ratio_ = int(round(r))

    def _embedding_names(self) -> set[str]:
        return {"encoder.unit_emb.weight", "session_emb.weight"}

    def _new_net(self):
        from ncli.models.nn.attention import OutputAttention, SpikeCrossAttention
        from ncli.models.nn.s4d import Backbone

        nn = _torch().nn
        model = self

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.encoder = SpikeCrossAttention(len(model.unit_vocab_), model.dim, model.n_latents, model.heads,
                                                   np.zeros(model.n_latents), null_bias=model.null_bias,
                                                   sum_pool=model.sum_pool)
                self.session_emb = nn.Embedding(len(model.session_vocab_), model.hidden)
                nn.init.normal_(self.session_emb.weight, std=0.1)
                self.sess_in = nn.Linear(model.hidden, model.dim, bias=False)
                self.backbone = Backbone(model.backbone, model.n_latents * model.dim, model.hidden, model.layers)
                # state j-i ends i chunks before the output bin's end; the output time is the bin centre
                bin_len = model.chunk * model.bin_ratio_
                times = [-(model.k_states - 1 - i) * model.chunk + bin_len / 2 for i in range(model.k_states)]
                self.head = OutputAttention(model.hidden, model.n_out_, model.heads, model.k_states, times)

            def encode(self, token, offset, segment, n_seg, sess):
                """Chunk latents -> backbone inputs (n_seg, n_latents·dim); sess (n_seg,) session index."""
                z = self.encoder(token, offset, segment, n_seg)
                z = z + self.sess_in(self.session_emb(sess)).unsqueeze(1)
                return z.flatten(1)

        return Net()

    def _prepare(self, sess: SpikeSession, bins: np.ndarray | None) -> dict:
        tokens_of_unit, sidx = self._vocab_index(sess)
        r = self.bin_ratio_
        cs = chunk_spikes(sess.spike_times, tokens_of_unit[sess.unit_of_spike()], sess.t_start, self.chunk,
                          sess.n_bins * r)
        out = {"cs": cs, "sess": sidx, "Y": None if sess.Y is None else self._z(sess.Y)}
        if bins is not None:
            out["starts"] = self._window_starts(bins)
        return out

    def _states_for_outputs(self, h, out_chunks):
        """h (B, Lc, H) -> last-k states (B, n_out, k, H) and validity for output chunks (n_out,)."""
        torch = _torch()
        k = self.k_states
        idx = torch.as_tensor(out_chunks).view(-1, 1) - torch.arange(k - 1, -1, -1).view(1, -1)  # (n_out, k)
        valid = idx >= 0
        st = h[:, idx.clamp(min=0)]  # (B, n_out, k, H)
        return st, valid.unsqueeze(0).expand(h.shape[0], -1, -1)

    def _forward_windows(self, net, prep: dict, start_bins: np.ndarray, n_bins: int, device, conv=True):
        """Predictions (B, n_bins, D) for windows of bins starting at ``start_bins``, each from a zero state."""
        torch = _torch()
        r = self.bin_ratio_
        Lc = n_bins * r
        chunks = (np.asarray(start_bins).reshape(-1, 1) * r + np.arange(Lc)).ravel()
        tok, off, seg = gather_chunks(prep["cs"], chunks)
        B = len(start_bins)
        sess = torch.full((B * Lc,), prep["sess"], dtype=torch.long, device=device)
        x = net.encode(torch.as_tensor(tok, device=device),
                       torch.as_tensor(off, dtype=torch.float32, device=device),
                       torch.as_tensor(seg, device=device), B * Lc, sess)
        h = net.backbone(x.view(B, Lc, -1), conv=conv)
        out_chunks = np.arange(n_bins) * r + r - 1
        st, valid = self._states_for_outputs(h, out_chunks)
        se = net.session_emb(torch.full((B * n_bins,), prep["sess"], dtype=torch.long, device=device))
        y = net.head(st.reshape(B * n_bins, self.k_states, -1), valid.reshape(B * n_bins, -1), se)
        return y.view(B, n_bins, -1)

    def _batch_loss(self, net, prepared, batch, device):
        torch = _torch()
        preds, targets = [], []
        for si, starts in batch:
            p = prepared[si]
            y = self._forward_windows(net, p, starts, self.window, device)[:, self.warmup:]
            rows = starts.reshape(-1, 1) + np.arange(self.warmup, self.window)
            preds.append(y.reshape(-1, y.shape[-1]))
            targets.append(torch.as_tensor(p["Y"][rows.ravel()], dtype=torch.float32, device=device))
        return self._loss(torch.cat(preds), torch.cat(targets))

    def predict(self, sess: SpikeSession, block: int = 4096) -> np.ndarray:
        """Causal predictions for every bin, from one pass over the whole session (zero initial state).

        The encoder runs on blocks of chunks (each chunk's latents depend only on
        its own spikes); the backbone runs over the whole session with the
        recurrence; each bin's output reads the last ``k_states`` states ending
        with the chunk that ends with the bin.

        Parameters
        ----------
        sess : SpikeSession
        block : int
            Chunks encoded at a time (memory only; the result does not depend on it).

        Returns
        -------
        (T, D) float64
            Behaviour in the target's units (class logits for classification).

        Raises
        ------
        NotFittedError, DataError (units or session unknown to the model)
        """
        torch = _torch()
        net = self.net()
        prep = self._prepare(sess, None)
        r, T = self.bin_ratio_, sess.n_bins
        n_chunks = T * r
        with torch.no_grad():
            xs = []
            for a in range(0, n_chunks, block):
                ch = np.arange(a, min(a + block, n_chunks))
                tok, off, seg = gather_chunks(prep["cs"], ch)
                xs.append(net.encode(torch.as_tensor(tok), torch.as_tensor(off, dtype=torch.float64),
                                     torch.as_tensor(seg), ch.size,
                                     torch.full((ch.size,), prep["sess"], dtype=torch.long)))
            x = torch.cat(xs).unsqueeze(0)
            h = net.backbone(x, conv=False)
            st, valid = self._states_for_outputs(h, np.arange(T) * r + r - 1)
            se = net.session_emb(torch.full((T,), prep["sess"], dtype=torch.long))
            y = net.head(st[0], valid[0], se).double().numpy()
        return self._unz(y)

    def stream(self, sess_id: str, unit_keys) -> "StreamState":
        """An online decoder for one session: feed chunks of spikes, get predictions (see :class:`StreamState`).

        Sets torch to one intra-op thread: the work per chunk is too small to
        split, and extra threads only add synchronisation latency (tens of ms
        on a busy machine).
        """
        _torch().set_num_threads(1)
        return StreamState(self, sess_id, unit_keys)


class StreamState:
    """Online POSSM: one chunk of spikes in, (after each bin) one prediction out.

    The same computation as :meth:`POSSMDecoder.predict` carried out chunk by
    chunk: the encoder on the chunk's spikes, one backbone step, the output
    attention over the last ``k_states`` states kept in a ring buffer.

    Parameters
    ----------
    model : POSSMDecoder (fitted)
    session_id : str
        A session known to the model.
    unit_keys : sequence of str
        Vocabulary key of each unit index used in :meth:`push`.

    Raises
    ------
    DataError
        Unknown session or units.
    """

    def __init__(self, model: POSSMDecoder, session_id: str, unit_keys):
        torch = _torch()
        self.model, self.net = model, model.net()
        dummy = SpikeSession(session_id, np.asarray(unit_keys, dtype=object), np.zeros(0), np.zeros(len(unit_keys) + 1,
                             dtype=np.int64), 0.0, model.chunk * model.bin_ratio_, 0)
        self.tokens, sidx = model._vocab_index(dummy)
        self.sess = torch.tensor([sidx])
        with torch.no_grad():
            self.se = self.net.session_emb(self.sess)
        self.state = None
        self.states: list = []
        self.n_chunks = 0

    def push(self, units: np.ndarray, offsets: np.ndarray):
        """Feed one chunk.

        Parameters
        ----------
        units : (s,) int
            Unit index (into ``unit_keys``) of each spike in the chunk (any order; may be empty).
        offsets : (s,) float
            Spike time minus the chunk's end (s, in ``[-chunk, 0)``).

        Returns
        -------
        (D,) float64 or None
            The prediction of the bin that ends with this chunk, else None.
        """
        torch = _torch()
        m = self.model
        units = np.asarray(units, dtype=np.int64)
        with torch.no_grad():
            x = self.net.encode(torch.as_tensor(self.tokens[units]),
                                torch.as_tensor(np.asarray(offsets, dtype=np.float64)),
                                torch.zeros(units.size, dtype=torch.long), 1, self.sess)
            h, self.state = self.net.backbone.step(x, self.state)
            self.states = (self.states + [h])[-m.k_states:]
            self.n_chunks += 1
            if self.n_chunks % m.bin_ratio_:
                return None
            pad = m.k_states - len(self.states)
            st = torch.stack([torch.zeros_like(h)] * pad + self.states, dim=1)
            valid = torch.tensor([[False] * pad + [True] * len(self.states)])
            y = self.net.head(st, valid, self.se).double().numpy()[0]
        return m._unz(y[None])[0]
