"""CANDY: contrastive alignment of sessions into a shared latent with shared linear dynamics.

Every session ``s`` has its own encoder ``f_s`` from preprocessed activity
``u_t`` (T_s, N_s) (z-scored, optionally smoothed square-root counts) to a
shared latent ``a_t = f_s(u_t)`` of dimension ``dim``. The encoders are
trained jointly with

1. a Rank-N-Contrast loss on the pooled encoder outputs of all sessions, with
   the behaviour as continuous label (:func:`rnc_loss`), which aligns the
   sessions because bins with similar behaviour are pulled together whichever
   session they come from;
2. a shared linear dynamical system over the latents,
   ``x_{t+1} = A x_t + w_t`` (``w ~ N(0, Q)``), ``a_t = C x_t + r_t``
   (``r ~ N(0, R)``), run as a differentiable Kalman filter over contiguous
   windows; the loss is the k-step-ahead prediction error
   ``|a_{t+k} - C A^k x_{t|t}|²`` for ``k = 1..horizon`` (:class:`ncli.models.nn.kalman.KalmanLDS`);
3. optionally a per-session linear decoder back to activity (reconstruction).

References
----------
CANDY: "Extracting task-relevant preserved dynamics from contrastive aligned
neural recordings", NeurIPS 2025 (per-session encoders into a shared latent,
rank-contrastive alignment by behaviour, shared LDS learned end-to-end through
a Kalman filter with a multi-step prediction loss).
Zha, Cao, Liu, Katabi & Zhao (2023) Rank-N-Contrast: learning continuous
representations for regression. NeurIPS 2023 (the loss, their Eq. 2).
Kalman (1960) A new approach to linear filtering and prediction problems.
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

import numpy as np

from ncli.core.errors import DataError, ParameterDataError, ParameterError
from ncli.core.jsonutil import jsonable
from ncli.core.metrics import r2_score
from ncli.models.base import (Estimator, check_array, check_fitted, check_params, read_arrays,
                              torch_device, write_arrays)
from ncli.models.nn.train import fit_loop, make_optimizer, seed_torch

log = logging.getLogger("ncli")

#: Largest singular value allowed for A (keeps the learned dynamics stable).
MAX_SINGULAR = 0.999
#: Largest latent / state dimension accepted (a guard against typos such as dim=100000).
MAX_DIM = 256


# ----------------------------------------------------------------------------- Rank-N-Contrast


def rnc_loss(features, labels, temperature: float = 0.5):
    """Rank-N-Contrast loss, vectorised with a sort and a reversed log-cumsum-exp.

    For anchor ``i`` and positive ``j != i`` (Zha et al. 2023, Eq. 2)::

        l_ij = -log( exp(s_ij / τ) / Σ_{k ∈ S_ij} exp(s_ik / τ) ),
        S_ij = {k != i : d(y_i, y_k) >= d(y_i, y_j)},
        L    = mean over all ordered pairs (i, j), i != j, of l_ij,

    with ``s_ij = -|z_i - z_j|_2`` (negative L2 feature distance) and
    ``d(y_i, y_k) = |y_i - y_k|_1`` (L1 label distance).

    Each anchor's label distances are sorted once; the log of the denominator
    for every positive is a reversed ``logcumsumexp`` of the sorted logits,
    read at the first position of the positive's tie group. Time
    O(n² log n), memory O(n²); no (n, n, n) tensor.

    Ties: ``k`` with ``d(y_i, y_k) == d(y_i, y_j)`` (exactly equal floats) is
    in ``S_ij``, as the ``>=`` of the definition says; in particular ``j``
    itself always is. The anchor ``i`` is never in its own denominator.

    Parameters
    ----------
    features : torch.Tensor, (n, K)
        Encoder outputs (any units).
    labels : torch.Tensor, (n, D)
        Continuous labels (e.g. z-scored behaviour).
    temperature : float
        τ > 0.

    Returns
    -------
    torch.Tensor
        Scalar loss.

    Raises
    ------
    DataError
        Mismatched shapes or fewer than 2 samples.
    """
    import torch

    if features.ndim != 2 or labels.ndim != 2 or features.shape[0] != labels.shape[0]:
        raise DataError(f"features {tuple(features.shape)} and labels {tuple(labels.shape)} must be "
                        "(n, K) and (n, D) with the same n")
    n = features.shape[0]
    if n < 2:
        raise DataError(f"the rank-contrastive loss needs at least 2 samples, got {n}")
    logits = -feature_distance(features) / temperature
    dist = torch.cdist(labels, labels, p=1)
    eye = torch.eye(n, dtype=torch.bool, device=features.device)
    dist = dist.masked_fill(eye, -1.0)  # the anchor sorts first and is dropped
    d_sorted, order = torch.sort(dist, dim=1)
    l_sorted = torch.gather(logits, 1, order)
    tail = torch.logcumsumexp(l_sorted.flip(1), dim=1).flip(1)  # logsumexp of positions p..n-1
    # first position of each tie group: running maximum of the positions where the distance changes
    pos = torch.arange(n, device=features.device).expand(n, n)
    new = torch.ones_like(d_sorted, dtype=torch.bool)
    new[:, 1:] = d_sorted[:, 1:] != d_sorted[:, :-1]
    first = torch.cummax(torch.where(new, pos, torch.zeros_like(pos)), dim=1).values
    log_denom = torch.gather(tail, 1, first)
    return (log_denom[:, 1:] - l_sorted[:, 1:]).mean()


def feature_distance(features):
    """Pairwise L2 distances ``(n, n)`` with a finite gradient at zero distance."""
    import torch

    sq = (features * features).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * features @ features.T
    return torch.sqrt(torch.clamp(d2, min=0.0) + 1e-10)


# ----------------------------------------------------------------------------- the estimator


class CANDY(Estimator):
    """Per-session encoders into a shared latent, aligned by Rank-N-Contrast, with a shared LDS.

    Parameters
    ----------
    dim : int
        Shared latent dimension K (encoder output).
    state_dim : int or None
        LDS state dimension m (default ``dim``).
    encoder : {"mlp", "linear"}
    hidden : sequence of int
        Hidden layer sizes of the MLP encoder (LeakyReLU, slope 0.01).
    temperature : float
        Rank-N-Contrast temperature τ.
    dynamics : bool
        Learn the shared LDS jointly (k-step prediction loss through a Kalman filter).
    dynamics_weight : float
        Weight of the prediction loss.
    horizon : int
        Largest prediction step k (k = 1..horizon).
    recon_weight : float
        Weight of the per-session linear reconstruction of the activity from
        the latent (0 = no decoders).
    window : int
        Length (bins) of the contiguous windows in a mini-batch.
    batch_size : int
        Windows per mini-batch, spread evenly over sessions (at least one each);
        the RnC loss sees ``batch_size * window`` pooled samples.
    epochs : int
        An epoch is ``ceil(total training bins / (batch_size * window))`` steps.
    lr : float
        Adam learning rate.
    weight_decay : float
        Adam weight decay of the encoders.
    dynamics_lr : float or None
        Adam learning rate of the LDS parameters (default ``10 * lr``).
    refit_steps : int
        Extra steps after training that update only the LDS (encoders frozen)
        on the same k-step prediction loss, so that A converges on the final latents.
    seed : int
    device : {"cpu", "cuda", "auto"}

    Attributes
    ----------
    A_ : (m, m) float64
    C_ : (K, m) float64
    Q_ : (m, m) float64
        State noise covariance.
    R_ : (K, K) float64
        Observation noise covariance (diagonal).
    eigenvalues_ : (m, 2) float64
        Real and imaginary parts of the eigenvalues of ``A_``.
    encoders_ : list of dict
        Per session: ``mean`` (N,), ``scale`` (N,) (input standardisation) and
        ``weight_i`` (out, in), ``bias_i`` (out,) per layer.
    decoders_ : list of dict or None
        Per session ``weight`` (N, K), ``bias`` (N,) when ``recon_weight > 0``.
    label_mean_, label_scale_ : (D,) float64
        Pooled behaviour standardisation used for the label distances.
    loss_history_ : (epochs, 3) float64
        Mean RnC, dynamics and reconstruction loss per epoch.
    epoch_seconds_ : float
        Mean wall time per epoch (s).

    Notes
    -----
    Non-deterministic only through floating-point reduction order on GPUs; on
    CPU the same seed gives the same result (``torch.use_deterministic_algorithms``).
    """

    model_id = "ncli/candy@1"
    _learned = ("A_", "C_", "Q_", "R_", "eigenvalues_", "label_mean_", "label_scale_", "loss_history_")
    _learned_scalars = ("epoch_seconds_", "session_names_")

    def __init__(self, dim: int = 8, state_dim: int | None = None, encoder: str = "mlp",
                 hidden: Sequence[int] = (64, 16), temperature: float = 0.5, dynamics: bool = True,
                 dynamics_weight: float = 1.0, horizon: int = 4, recon_weight: float = 0.0,
                 window: int = 32, batch_size: int = 16, epochs: int = 30, lr: float = 3e-3,
                 weight_decay: float = 1e-4, dynamics_lr: float | None = None, refit_steps: int = 0,
                 seed: int = 0, device: str = "cpu"):
        self.dim = dim
        self.state_dim = state_dim
        self.encoder = encoder
        self.hidden = tuple(int(h) for h in hidden)
        self.temperature = temperature
        self.dynamics = dynamics
        self.dynamics_weight = dynamics_weight
        self.horizon = horizon
        self.recon_weight = recon_weight
        self.window = window
        self.batch_size = batch_size
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.dynamics_lr = dynamics_lr
        self.refit_steps = refit_steps
        self.seed = seed
        self.device = device
        for name in self._learned:
            setattr(self, name, None)
        self.encoders_ = None
        self.decoders_ = None
        self.epoch_seconds_ = None
        self.session_names_ = None

    # ------------------------------------------------------------------ checks

    def _check_params(self) -> None:
        finite_ok = all(np.isfinite(v) for v in (self.temperature, self.lr, self.dynamics_weight,
                                                      self.recon_weight))
        checks = [
            (self.dim >= 1, f"{{dim}} must be a positive integer, got {self.dim}", "dim"),
            (self.dim <= MAX_DIM, f"{{dim}} must be at most {MAX_DIM}, got {self.dim}", "dim"),
            (self.state_dim is None or self.state_dim <= MAX_DIM,
             f"{{state_dim}} must be at most {MAX_DIM}, got {self.state_dim}", "state_dim"),
            (self.state_dim is None or self.state_dim >= 1,
             f"{{state_dim}} must be a positive integer, got {self.state_dim}", "state_dim"),
            (self.encoder in ("mlp", "linear"), f"invalid value '{self.encoder}' for {{encoder}}", "encoder"),
            (all(h >= 1 for h in self.hidden), f"{{hidden}} sizes must be positive, got {list(self.hidden)}",
             "hidden"),
            (self.temperature > 0, f"{{temperature}} must be > 0, got {self.temperature}", "temperature"),
            (1 <= self.horizon, f"{{horizon}} must be at least 1, got {self.horizon}", "horizon"),
            (self.window > self.horizon + 1, f"{{window}} must exceed {{horizon}} + 1, got {self.window}",
             "window"),
            (self.batch_size >= 1, f"{{batch_size}} must be at least 1, got {self.batch_size}", "batch_size"),
            (self.epochs >= 1, f"{{epochs}} must be at least 1, got {self.epochs}", "epochs"),
            (self.lr > 0, f"{{lr}} must be > 0, got {self.lr}", "lr"),
            (self.dynamics_weight >= 0, f"{{dynamics_weight}} must be >= 0, got {self.dynamics_weight}",
             "dynamics_weight"),
            (self.recon_weight >= 0, f"{{recon_weight}} must be >= 0, got {self.recon_weight}", "recon_weight"),
            (self.refit_steps >= 0, f"{{refit_steps}} must be >= 0, got {self.refit_steps}", "refit_steps"),
            (self.device in ("cpu", "cuda", "auto"), f"invalid value '{self.device}' for {{device}}", "device"),
        ]
        if not finite_ok:
            raise ParameterError("temperature", "{temperature}, {lr}, {dynamics_weight} and {recon_weight} must be "
                                 "finite numbers", where="options")
        check_params(checks)

    def _torch_device(self):
        return torch_device(self.device)

    # ------------------------------------------------------------------ fit

    def fit(self, Xs: Sequence[np.ndarray], Ys: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None,
            names: Sequence[str] | None = None) -> "CANDY":
        """Train encoders and the shared LDS on several sessions.

        Parameters
        ----------
        Xs : list of (T_s, N_s) arrays
            Preprocessed activity per session (e.g. smoothed square-root counts);
            NaN allowed in rows that ``masks`` excludes. Standardised here with
            the statistics of the training rows.
        Ys : list of (T_s, D) arrays
            Behaviour per session (same D for all sessions), the RnC label.
        masks : list of (T_s,) bool, optional
            Training rows. Windows are drawn only where every bin is in the mask.
        names : list of str, optional
            Session names, stored with the model.

        Returns
        -------
        self

        Raises
        ------
        DataError
            No sessions, mismatched lengths, non-finite training rows, different
            behaviour dimensions, or a session without one full window of training bins.
        UsageError
            Invalid hyperparameters or an unavailable device.
        """
        import time

        import torch

        self._check_params()
        if len(Xs) == 0 or len(Xs) != len(Ys):
            raise DataError(f"need one behaviour per session, got {len(Xs)} sessions and {len(Ys)} behaviours")
        masks = [np.ones(len(X), bool) if masks is None else np.asarray(masks[i], bool) for i, X in enumerate(Xs)]
        names = list(names) if names is not None else [f"s{i}" for i in range(len(Xs))]
        Xc, Yc = [], []
        for i, (X, Y, m) in enumerate(zip(Xs, Ys, masks)):
            X = check_array(X, f"X[{names[i]}]", allow_nan=True, min_samples=self.window)
            Y = check_array(Y, f"y[{names[i]}]", ndim=(1, 2), allow_nan=True, min_samples=self.window)
            Y = Y[:, None] if Y.ndim == 1 else Y
            if X.shape[0] != Y.shape[0] or m.shape[0] != X.shape[0]:
                raise DataError(f"session '{names[i]}': activity has {X.shape[0]} bins, behaviour "
                                f"{Y.shape[0]}, mask {m.shape[0]}")
            m = m & np.all(np.isfinite(X), 1) & np.all(np.isfinite(Y), 1)
            masks[i] = m
            Xc.append(X)
            Yc.append(Y)
        if len({Y.shape[1] for Y in Yc}) > 1:
            raise DataError("the behaviour has different numbers of columns across sessions")

        from ncli.models.nn.kalman import KalmanLDS
        from ncli.models.nn.mlp import MLP

        device = self._torch_device()
        seed_torch(self.seed, deterministic=True)
        gen = torch.Generator().manual_seed(int(self.seed))
        rng = np.random.default_rng(int(self.seed))
        dtype = torch.float32

        # standardisation (training rows only)
        enc_stats, Xt, starts = [], [], []
        for i, (X, m) in enumerate(zip(Xc, masks)):
            mu = X[m].mean(0) if m.any() else np.zeros(X.shape[1])
            sd = X[m].std(0) if m.any() else np.ones(X.shape[1])
            sd = np.where(sd > 1e-8, sd, 1.0)
            enc_stats.append((mu, sd))
            Z = np.where(np.isfinite(X), (X - mu) / sd, 0.0)
            Xt.append(torch.as_tensor(Z, dtype=dtype, device=device))
            ok = np.convolve(m.astype(np.int64), np.ones(self.window, np.int64), "valid") == self.window
            s = np.flatnonzero(ok)
            if s.size == 0:
                raise ParameterDataError(f"session '{names[i]}' has no {self.window} consecutive training bins",
                                         hint="lower {window}")
            starts.append(s)
        Yall = np.vstack([Y[m] for Y, m in zip(Yc, masks)])
        self.label_mean_ = Yall.mean(0)
        sd = Yall.std(0)
        self.label_scale_ = np.where(sd > 1e-12, sd, 1.0)
        Yt = [torch.as_tensor(np.where(np.isfinite(Y), (Y - self.label_mean_) / self.label_scale_, 0.0),
                              dtype=dtype, device=device) for Y in Yc]

        S = len(Xc)
        hidden = self.hidden if self.encoder == "mlp" else ()
        encoders = torch.nn.ModuleList(MLP(X.shape[1], self.dim, hidden) for X in Xc).to(device)
        m_state = int(self.state_dim or self.dim)
        lds = KalmanLDS(m_state, self.dim, gen, max_singular=MAX_SINGULAR).to(device)
        params = [{"params": encoders.parameters(), "weight_decay": self.weight_decay},
                  {"params": lds.parameters(), "weight_decay": 0.0,
                   "lr": self.dynamics_lr or 10 * self.lr}]
        decoders = None
        if self.recon_weight > 0:
            decoders = torch.nn.ModuleList(torch.nn.Linear(self.dim, X.shape[1]) for X in Xc).to(device)
            params.append({"params": decoders.parameters(), "weight_decay": self.weight_decay})
        opt = make_optimizer(params, "adam", lr=self.lr)

        per_session = [max(1, self.batch_size // S + (1 if i < self.batch_size % S else 0)) for i in range(S)]
        n_train = int(sum(m.sum() for m in masks))
        steps = max(1, math.ceil(n_train / (sum(per_session) * self.window)))
        offs = np.arange(self.window)
        history = np.zeros((self.epochs, 3))
        acc = np.zeros(3)  # RnC, dynamics and reconstruction losses summed over the epoch's steps

        def step_loss(step: int):
            """One mini-batch: ``per_session[i]`` windows of every session, pooled for the RnC loss."""
            feats, labs, wins, recon = [], [], [], 0.0
            for i in range(S):
                st = rng.choice(starts[i], size=per_session[i], replace=len(starts[i]) < per_session[i])
                idx = torch.as_tensor((st[:, None] + offs[None, :]).ravel(), device=device)
                z = encoders[i](Xt[i][idx])
                feats.append(z)
                labs.append(Yt[i][idx])
                wins.append(z.reshape(per_session[i], self.window, self.dim))
                if decoders is not None:
                    recon = recon + ((decoders[i](z) - Xt[i][idx]) ** 2).mean() / S
            l_rnc = rnc_loss(torch.cat(feats), torch.cat(labs), self.temperature)
            loss = l_rnc
            l_dyn = torch.zeros(())
            if self.dynamics and self.dynamics_weight > 0:
                l_dyn = lds.prediction_loss(torch.cat(wins), self.horizon)
                loss = loss + self.dynamics_weight * l_dyn
            if decoders is not None:
                loss = loss + self.recon_weight * recon
            acc[:] += [float(l_rnc.detach()), float(l_dyn.detach()),
                       float(recon.detach()) if decoders is not None else 0.0]
            return loss

        def end_of_epoch(step: int, loss: float):
            if (step + 1) % steps == 0:
                epoch = step // steps
                history[epoch] = acc / steps
                acc[:] = 0.0
                log.debug("candy epoch %d: rnc %.4f dyn %.4f recon %.4f", epoch + 1, *history[epoch])

        t0 = time.perf_counter()
        fit_loop(step_loss, opt, self.epochs * steps, progress=end_of_epoch)
        self.epoch_seconds_ = (time.perf_counter() - t0) / self.epochs
        self.loss_history_ = history
        if self.dynamics and self.refit_steps > 0:
            self._refit_lds(lds, encoders, Xt, starts, rng)

        with torch.no_grad():
            self.A_ = lds.A().double().cpu().numpy()
            self.C_ = lds.C.double().cpu().numpy()
            self.Q_ = lds.Q().double().cpu().numpy()
            self.R_ = lds.R().double().cpu().numpy()
            ev = np.linalg.eigvals(self.A_)
            ev = ev[np.lexsort((-ev.imag, -np.abs(ev)))]
            self.eigenvalues_ = np.column_stack([ev.real, ev.imag])
            self.encoders_ = []
            for (mu, sd), enc in zip(enc_stats, encoders):
                d = {"mean": mu, "scale": sd}
                for k, layer in enumerate(enc.layers):
                    d[f"weight_{k}"] = layer.weight.double().cpu().numpy()
                    d[f"bias_{k}"] = layer.bias.double().cpu().numpy()
                self.encoders_.append(d)
            self.decoders_ = None if decoders is None else [
                {"weight": dec.weight.double().cpu().numpy(), "bias": dec.bias.double().cpu().numpy()}
                for dec in decoders]
        self.session_names_ = names
        return self

    def _refit_lds(self, lds, encoders, Xt, starts, rng) -> None:
        """Update only the LDS on the frozen encoders' latents (k-step prediction loss)."""
        import torch

        with torch.no_grad():
            lat = [enc(X) for enc, X in zip(encoders, Xt)]
        opt = make_optimizer(lds.parameters(), "adam", lr=self.dynamics_lr or 10 * self.lr)
        S, offs = len(lat), np.arange(self.window)
        per = max(1, self.batch_size // S)

        def step_loss(step: int):
            wins = []
            for i in range(S):
                st = rng.choice(starts[i], size=per, replace=len(starts[i]) < per)
                wins.append(lat[i][torch.as_tensor(st[:, None] + offs[None, :])])
            return lds.prediction_loss(torch.cat(wins), self.horizon)

        fit_loop(step_loss, opt, int(self.refit_steps))

    # ------------------------------------------------------------------ transform

    def transform(self, X, session: int) -> np.ndarray:
        """Shared latents of one session's activity (numpy forward pass of its encoder).

        Parameters
        ----------
        X : (T, N_s) array
            Activity preprocessed as in ``fit``; NaN rows give NaN latents.
        session : int
            Index of the session in the list given to ``fit``.

        Returns
        -------
        (T, dim) float64

        Raises
        ------
        NotFittedError
            Before ``fit``.
        DataError
            Unknown session or wrong number of units.
        """
        check_fitted(self)
        if self.encoders_ is None or not 0 <= session < len(self.encoders_):
            raise DataError(f"unknown session index {session}")
        enc = self.encoders_[session]
        X = check_array(X, "X", allow_nan=True, n_features=len(enc["mean"]))
        bad = ~np.all(np.isfinite(X), 1)
        h = np.where(bad[:, None], 0.0, (X - enc["mean"]) / enc["scale"])
        n_layers = sum(1 for k in enc if k.startswith("weight_"))
        for k in range(n_layers):
            h = h @ enc[f"weight_{k}"].T + enc[f"bias_{k}"]
            if k < n_layers - 1:
                h = np.where(h > 0, h, 0.01 * h)
        h[bad] = np.nan
        return h

    # ------------------------------------------------------------------ store

    def to_group(self, group, metrics: dict | None = None, extra: dict | None = None) -> None:
        """Save as arrays: ``A_``, ``C_``, ``Q_``, ``R_``, ... and ``encoders/<session>/<array>``.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        """
        super().to_group(group, metrics=metrics, extra=extra)
        for name, enc in zip(self.session_names_, self.encoders_):
            write_arrays(group, f"encoders/{name}", enc)
        for name, dec in zip(self.session_names_, self.decoders_ or []):
            write_arrays(group, f"decoders/{name}", dec)

    @classmethod
    def from_group(cls, group) -> "CANDY":
        """Load a model saved with :meth:`to_group` (encoders included).

        Raises
        ------
        DataError
            The group holds no CANDY model or misses arrays.
        """
        model = super().from_group(group)
        names = list(model.session_names_ or [])
        try:
            model.encoders_ = [read_arrays(group[f"encoders/{n}"]) for n in names]
            if "decoders" in group:
                model.decoders_ = [read_arrays(group[f"decoders/{n}"]) for n in names]
        except KeyError as exc:
            raise DataError(f"saved CANDY model misses {exc}") from None
        return model


# ----------------------------------------------------------------------------- evaluation


def unified_decoder_r2(latents: Sequence[np.ndarray], behaviors: Sequence[np.ndarray],
                       train: Sequence[np.ndarray], test: Sequence[np.ndarray]) -> dict:
    """Per-session and unified ridge decoders of behaviour from latents, tested on held-out time.

    Parameters
    ----------
    latents : list of (T_s, K) arrays
    behaviors : list of (T_s, D) arrays
    train, test : list of (T_s,) bool
        Training and held-out rows of each session.

    Returns
    -------
    dict
        ``per_session_r2`` (one ridge per session, trained on its training
        rows), ``unified_r2`` (one ridge trained on the pooled training rows of
        every session, R² on each session's test rows), and their means
        ``per_session_r2_mean``, ``unified_r2_mean``. R² is averaged over
        behaviour columns. The ridge penalty is chosen by generalised
        cross-validation on the training rows only.
    """
    from ncli.models.ridge import RidgeDecoder

    per, uni = [], []
    for Z, Y, tr, te in zip(latents, behaviors, train, test):
        per.append(float(np.nanmean(r2_score(Y[te], RidgeDecoder().fit(Z[tr], Y[tr]).predict(Z[te])))))
    pooled = RidgeDecoder().fit(np.vstack([Z[tr] for Z, tr in zip(latents, train)]),
                                np.vstack([Y[tr] for Y, tr in zip(behaviors, train)]))
    for Z, Y, te in zip(latents, behaviors, test):
        uni.append(float(np.nanmean(r2_score(Y[te], pooled.predict(Z[te])))))
    return {"per_session_r2": per, "per_session_r2_mean": float(np.mean(per)),
            "unified_r2": uni, "unified_r2_mean": float(np.mean(uni))}


def consistency_r2(latents: Sequence[np.ndarray], behaviors: Sequence[np.ndarray],
                   rows: Sequence[np.ndarray]) -> dict:
    """CEBRA-style consistency: how well one session's latents are a linear map of another's.

    For every ordered pair (i, j), i != j, each row of session i is matched to
    the row of session j with the nearest behaviour (Euclidean distance on the
    behaviour z-scored with pooled statistics); ``Z_i`` is regressed on
    ``[Z_j[match], 1]`` by least squares and the R² (mean over latent
    dimensions) is reported.

    Parameters
    ----------
    latents : list of (T_s, K) arrays
    behaviors : list of (T_s, D) arrays
    rows : list of (T_s,) bool
        Rows to use in each session.

    Returns
    -------
    dict
        ``consistency_r2`` (S, S) nested list (NaN on the diagonal) and
        ``consistency_r2_mean`` over the off-diagonal pairs (NaN with one session).
    """
    from scipy.spatial import cKDTree

    Y = [b[r] for b, r in zip(behaviors, rows)]
    Z = [z[r] for z, r in zip(latents, rows)]
    allY = np.vstack(Y)
    mu, sd = allY.mean(0), np.where(allY.std(0) > 0, allY.std(0), 1.0)
    S = len(Z)
    out = np.full((S, S), np.nan)
    for j in range(S):
        tree = cKDTree((Y[j] - mu) / sd)
        for i in range(S):
            if i == j:
                continue
            _, match = tree.query((Y[i] - mu) / sd)
            F = np.column_stack([Z[j][match], np.ones(len(match))])
            coef, *_ = np.linalg.lstsq(F, Z[i], rcond=None)
            out[i, j] = float(np.nanmean(r2_score(Z[i], F @ coef)))
    off = out[~np.eye(S, dtype=bool)]
    return {"consistency_r2": jsonable(out), "consistency_r2_mean": float(np.mean(off)) if off.size else None}


def pca_baseline_r2(features: Sequence[np.ndarray], behaviors: Sequence[np.ndarray],
                    train: Sequence[np.ndarray], test: Sequence[np.ndarray], dim: int, seed: int = 0) -> dict:
    """The same decoders on per-session PCA latents (PCA fitted on each session's training rows).

    Parameters
    ----------
    features : list of (T_s, N_s) arrays
        The activity the encoders saw (before standardisation); z-scored here
        with training statistics before PCA.
    behaviors, train, test
        As in :func:`unified_decoder_r2`.
    dim : int
        Number of components (capped by each session's unit count).

    Returns
    -------
    dict
        :func:`unified_decoder_r2` of the PCA latents.
    """
    from ncli.models.factor import PCAEmbedding

    lat = []
    for X, tr in zip(features, train):
        mu, sd = X[tr].mean(0), X[tr].std(0)
        Xs = np.where(np.isfinite(X), (X - mu) / np.where(sd > 1e-8, sd, 1.0), 0.0)
        k = min(dim, X.shape[1])
        Z = PCAEmbedding(n_components=k, seed=seed).fit(Xs[tr]).transform(Xs)
        if k < dim:
            Z = np.column_stack([Z, np.zeros((len(Z), dim - k))])
        lat.append(Z)
    return unified_decoder_r2(lat, behaviors, train, test)


def match_eigenvalues(true: np.ndarray, learned: np.ndarray) -> dict:
    """Match learned to true eigenvalues by optimal assignment (Hungarian) on |λ_true - λ_learned|.

    Parameters
    ----------
    true : (m,) complex
    learned : (n,) complex, n >= m

    Returns
    -------
    dict
        ``abs_error`` (m,) ``||λ_true| - |λ_learned||``, ``angle_error`` (m,)
        ``|arg λ_true - arg λ_learned|`` (rad, wrapped), ``matched`` (m, 2) the
        learned eigenvalues (real, imag) in the order of ``true``.
    """
    from scipy.optimize import linear_sum_assignment

    true = np.asarray(true, complex)
    learned = np.asarray(learned, complex)
    cost = np.abs(true[:, None] - learned[None, :])
    r, c = linear_sum_assignment(cost)
    lt, ll = true[r], learned[c]
    return {"abs_error": np.abs(np.abs(lt) - np.abs(ll)),
            "angle_error": np.abs(np.angle(np.exp(1j * (np.angle(ll) - np.angle(lt))))),
            "matched": np.column_stack([ll.real, ll.imag])}
