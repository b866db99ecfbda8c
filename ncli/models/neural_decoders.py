"""Neural baselines for ``ncli decode``: a GRU on binned counts and POYO (a transformer over a context window).

Both share the training loop, vocabularies and saving of
:class:`ncli.models.possm.SequenceDecoder` (built on :mod:`ncli.models.nn`), and
the spike-token cross-attention (:mod:`ncli.models.nn.attention`) with POSSM,
so that the comparison with POSSM changes one thing at a time:

- :class:`GRUDecoder`: square-root binned counts -> (unit-embedding) linear map
  -> GRU -> linear readout of the state at each bin (Glaser et al. 2020,
  eNeuro, §"Recurrent neural networks"; Cho et al. 2014). The input weights are
  the rows of a unit-embedding table keyed by the same vocabulary as POSSM, so
  several sessions and unit-identification fine-tuning work the same way.
- :class:`POYODecoder`: for every output bin, every spike in the preceding
  ``context`` seconds is a token (unit embedding, rotary time); latent queries
  spread over the window cross-attend to them, self-attention layers process
  the latents, and an output query at the bin centre reads them out
  (Azabou et al., "A unified, scalable framework for neural population
  decoding", NeurIPS 2023, §2). Causal: only spikes before the bin's end.
  Its cost per prediction grows with the context; POSSM's does not.
"""

from __future__ import annotations

import math

import numpy as np

from ncli.core.errors import ParameterError
from ncli.models.possm import SequenceDecoder, SpikeSession, _torch, chunk_spikes, gather_chunks


class GRUDecoder(SequenceDecoder):
    """GRU on square-root binned counts (bin-based recurrent baseline).

    Parameters
    ----------
    hidden : int
        GRU width.
    layers : int
        GRU layers.
    window, warmup, steps, batch_size, lr, weight_decay, task, seed, device
        As :class:`ncli.models.possm.POSSMDecoder`.

    Attributes
    ----------
    weights_, unit_vocab_, session_vocab_, y_mean_, y_scale_, loss_history_
        As :class:`ncli.models.possm.POSSMDecoder`.

    References
    ----------
    Cho et al. (2014) EMNLP; Glaser et al. (2020) eNeuro 7(4).
    """

    model_id = "ncli/gru@1"
    _learned_scalars = ("n_outputs_",)

    def __init__(self, hidden: int = 64, layers: int = 1, window: int = 64, warmup: int = 8, steps: int = 600,
                 batch_size: int = 16, lr: float = 3e-3, weight_decay: float = 1e-4, task: str = "regression",
                 seed: int = 0, device: str = "cpu"):
        self._init(locals())

    def _setup(self, sessions):
        self._check_common()
        if any(s.counts is None for s in sessions):
            raise ParameterError("method", "the GRU baseline needs binned counts", where="{method} gru")

    def _embedding_names(self) -> set[str]:
        return {"unit_emb.weight", "session_emb.weight"}

    def _new_net(self):
        torch = _torch()
        nn = torch.nn
        model = self

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.unit_emb = nn.Embedding(len(model.unit_vocab_), model.hidden)
                nn.init.normal_(self.unit_emb.weight, std=0.1)
                self.session_emb = nn.Embedding(len(model.session_vocab_), model.hidden)
                nn.init.normal_(self.session_emb.weight, std=0.1)
                self.rnn = nn.GRU(model.hidden, model.hidden, num_layers=model.layers, batch_first=True)
                self.read = nn.Linear(model.hidden, model.n_out_)

            def forward(self, X, tokens, sess):
                """X (B, L, N) features, tokens (N,) vocabulary rows, sess (B,) -> (B, L, D)."""
                x = X @ self.unit_emb(tokens) + self.session_emb(sess).unsqueeze(1)
                return self.read(self.rnn(x)[0])

        return Net()

    def _prepare(self, sess: SpikeSession, bins):
        torch = _torch()
        tokens, sidx = self._vocab_index(sess)
        X = torch.as_tensor(np.sqrt(np.maximum(np.asarray(sess.counts, dtype=np.float64), 0)), dtype=torch.float32)
        out = {"X": X, "tokens": torch.as_tensor(tokens), "sess": sidx,
               "Y": None if sess.Y is None else self._z(sess.Y)}
        if bins is not None:
            out["starts"] = self._window_starts(bins)
        return out

    def _batch_loss(self, net, prepared, batch, device):
        torch = _torch()
        preds, targets = [], []
        for si, starts in batch:
            p = prepared[si]
            rows = starts.reshape(-1, 1) + np.arange(self.window)
            X = p["X"][torch.as_tensor(rows)].to(device)
            y = net(X, p["tokens"].to(device), torch.full((len(starts),), p["sess"], device=device))
            preds.append(y[:, self.warmup:].reshape(-1, y.shape[-1]))
            targets.append(torch.as_tensor(p["Y"][rows[:, self.warmup:].ravel()], dtype=torch.float32,
                                           device=device))
        return self._loss(torch.cat(preds), torch.cat(targets))

    def predict(self, sess: SpikeSession) -> np.ndarray:
        """Causal predictions for every bin from one pass over the session (zero initial state).

        Returns
        -------
        (T, D) float64
        """
        torch = _torch()
        net = self.net()
        p = self._prepare(sess, None)
        with torch.no_grad():
            y = net(p["X"].double().unsqueeze(0), p["tokens"], torch.tensor([p["sess"]]))[0].numpy()
        return self._unz(y)


class POYODecoder(SequenceDecoder):
    """POYO-style transformer over a causal context window of spike tokens.

    Parameters
    ----------
    context : float
        Context window (s) before each output bin's end.
    dim : int
        Token / latent width.
    n_latents : int
        Latent queries, spread evenly over the window.
    depth : int
        Self-attention layers over the latents.
    heads : int
    window : int
        Unused for the loss (one output per sample); training samples are
        output bins whose whole context lies in training bins.
    steps, batch_size, lr, weight_decay, task, seed, device
        As :class:`ncli.models.possm.POSSMDecoder`; ``batch_size`` counts output bins.

    References
    ----------
    Azabou et al. (2023) NeurIPS, §2 (POYO); Jaegle et al. (2021) ICML (Perceiver latents).
    """

    model_id = "ncli/poyo@1"
    _learned_scalars = ("n_outputs_", "bin_size_", "context_bins_")

    def __init__(self, context: float = 1.0, dim: int = 64, n_latents: int = 8, depth: int = 2, heads: int = 2,
                 steps: int = 600, batch_size: int = 64, lr: float = 2e-3, weight_decay: float = 1e-4,
                 task: str = "regression", seed: int = 0, device: str = "cpu"):
        self._init(locals())

    @property
    def window(self) -> int:
        """Context length in bins (training samples need that many consecutive training bins)."""
        return int(self.context_bins_) if self.context_bins_ else 2

    def _setup(self, sessions):
        self._check_common()
        sizes = {round(s.bin_size, 9) for s in sessions}
        if len(sizes) > 1:
            raise ParameterError("method", "POYO needs the same bin width in every session", where="{method} poyo")
        self.bin_size_ = float(sessions[0].bin_size)
        if not self.context > 0:
            raise ParameterError("context", f"{{context}} must be > 0 s, got {self.context}")
        self.context_bins_ = max(2, int(math.ceil(self.context / self.bin_size_ - 1e-9)))

    def _embedding_names(self) -> set[str]:
        return {"encoder.unit_emb.weight", "session_emb.weight"}

    def _new_net(self):
        from ncli.models.nn.attention import SpikeCrossAttention

        torch = _torch()
        nn = torch.nn
        model = self
        span = model.context_bins_ * model.bin_size_

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                times = -span + (np.arange(model.n_latents) + 1) * span / model.n_latents
                self.encoder = SpikeCrossAttention(len(model.unit_vocab_), model.dim, model.n_latents, model.heads,
                                                   times, null_bias=3.0)
                self.session_emb = nn.Embedding(len(model.session_vocab_), model.dim)
                nn.init.normal_(self.session_emb.weight, std=0.1)
                self.blocks = nn.ModuleList([
                    nn.TransformerEncoderLayer(model.dim, model.heads, 2 * model.dim, dropout=0.0, batch_first=True,
                                               norm_first=True) for _ in range(model.depth)])
                self.query = nn.Parameter(torch.randn(model.dim) * 0.1)
                self.out_att = nn.MultiheadAttention(model.dim, model.heads, batch_first=True)
                self.norm = nn.LayerNorm(model.dim)
                self.read = nn.Linear(model.dim, model.n_out_)

            def forward(self, token, offset, segment, n_seg, sess):
                se = self.session_emb(sess)
                z = self.encoder(token, offset, segment, n_seg) + se.unsqueeze(1)
                for blk in self.blocks:
                    z = blk(z)
                q = (self.query + se).unsqueeze(1)
                o = self.out_att(q, z, z, need_weights=False)[0][:, 0]
                return self.read(self.norm(o + q[:, 0]))

        return Net()

    def _prepare(self, sess: SpikeSession, bins):
        tokens, sidx = self._vocab_index(sess)
        cs = chunk_spikes(sess.spike_times, tokens[sess.unit_of_spike()], sess.t_start, sess.bin_size, sess.n_bins)
        out = {"cs": cs, "sess": sidx, "Y": None if sess.Y is None else self._z(sess.Y)}
        if bins is not None:
            out["starts"] = self._window_starts(bins)
        return out

    def _forward_bins(self, net, p, out_bins, device):
        """Predictions (n, D) for output bins, each from the spikes of its context window."""
        torch = _torch()
        C = self.context_bins_
        out_bins = np.asarray(out_bins, dtype=np.int64)
        chunks = out_bins.reshape(-1, 1) - np.arange(C - 1, -1, -1)  # (n, C), oldest first
        tok, off, seg = gather_chunks(p["cs"], np.where(chunks >= 0, chunks, -1))
        back = (C - 1 - (seg % C)) * self.bin_size_  # chunk offsets are relative to each chunk's end
        n = out_bins.size
        sess = torch.full((n,), p["sess"], dtype=torch.long, device=device)
        dtype = next(net.parameters()).dtype
        return net(torch.as_tensor(tok, device=device), torch.as_tensor(off - back, dtype=dtype, device=device),
                   torch.as_tensor(seg // C, device=device), n, sess)

    def _batch_loss(self, net, prepared, batch, device):
        torch = _torch()
        preds, targets = [], []
        for si, starts in batch:
            p = prepared[si]
            out_bins = starts + self.context_bins_ - 1
            preds.append(self._forward_bins(net, p, out_bins, device))
            targets.append(torch.as_tensor(p["Y"][out_bins], dtype=torch.float32, device=device))
        return self._loss(torch.cat(preds), torch.cat(targets))

    def predict(self, sess: SpikeSession, block: int = 512) -> np.ndarray:
        """Causal predictions for every bin, each from its own context window.

        Returns
        -------
        (T, D) float64
        """
        torch = _torch()
        net = self.net()
        p = self._prepare(sess, None)
        with torch.no_grad():
            ys = [self._forward_bins(net, p, np.arange(a, min(a + block, sess.n_bins)), "cpu")
                  for a in range(0, sess.n_bins, block)]
        return self._unz(torch.cat(ys).double().numpy())
