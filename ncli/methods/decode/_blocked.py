"""Ridge and Kalman decoding in bounded memory: lagged features read block by block, fit from sums.

Used by ``decode --method ridge|kalman`` when a session is longer than one block
(:func:`ncli.formats.view.block_rows` of the lagged feature width); shorter
sessions keep the whole-matrix path, so recorded results do not change.
One pass over the session sums ``X'X``, ``X'y`` (:class:`ncli.models.sufficient.Moments`)
over the usable bins; a fold's model is fit from the total minus the
statistics of the bins it leaves out (its test block and gaps, read again),
which equals the whole-matrix fit up to float round-off. A large session
total (``Σxx'`` over :data:`SPILL_BYTES`) waits in an anonymous temporary file
between fits, so a fit holds one (F, F) array. Predictions are computed block
by block.
"""

from __future__ import annotations

import numpy as np

from ncli.core.errors import DataError, UsageError
from ncli.formats.store import Store
from ncli.formats.view import SessionView, block_rows
from ncli.methods import harness
from ncli.models.sufficient import Moments, ridge_from_moments

#: session totals whose Σxx' is larger than this are kept in a temporary file between fits
SPILL_BYTES = 64 * 2**20


def needs_blocks(src: Store, sessions: list, n_columns_of) -> bool:
    """True when a session has more bins than one block of its lagged features holds."""
    for sid in sessions:
        view = SessionView(src, sid)
        if view.has("binned/counts") and view.n_bins > block_rows(n_columns_of(view)):
            return True
    return False


def lagged_width(latents: str | None, lags: int):
    """``width(view) -> int``: columns of a session's lagged features (0 when its latents are missing)."""

    def width(view: SessionView) -> int:
        path = f"{view.base}/latents/{latents}" if latents else f"{view.base}/binned/counts"
        if not view.store.is_array(path):
            return 0
        shape = view.store.array(path).shape
        return (shape[1] if len(shape) > 1 else 1) * (lags + 1)

    return width


class BlockedRidgeLearner:
    """Harness learner of ridge fit from block-accumulated statistics (see the module docstring).

    Parameters
    ----------
    make_model : callable
        A new unfitted :class:`~ncli.models.ridge.RidgeDecoder`.
    views : dict
        Session id -> :class:`SessionView`.
    read : dict
        Keyword arguments of :meth:`SessionView.blocks` (``lags``, ``latents``, ``sqrt``, ``transform``).
    Y : dict
        Session id -> (T, D) values fitted.
    """

    def __init__(self, make_model, views: dict, read: dict, Y: dict):
        self.make_model, self.views, self.read, self.Y = make_model, views, read, Y
        self.usable: dict = {}
        self.totals: dict = {}
        self.n_inputs: dict = {}
        self.shift = None

    #: whether the session totals also sum the targets (ridge) or only the features (Kalman)
    with_targets = True

    def _rows(self, view: SessionView) -> int:
        return block_rows(self.width(view))

    def width(self, view: SessionView) -> int:
        """Lagged feature width of a session."""
        n = self.n_inputs.get(view.session)
        if n is None:
            first = next(view.blocks(1, **{**self.read, "lags": 0}))[1]
            n = self.n_inputs[view.session] = first.shape[1]
        return n * (self.read.get("lags", 0) + 1)

    def scan(self, sid: str) -> np.ndarray:
        """One pass over a session: its usable bins (valid, finite target, full lag window) and total statistics."""
        view, Y = self.views[sid], self.Y[sid]
        finite = np.all(np.isfinite(Y), axis=1)
        usable = np.zeros(Y.shape[0], dtype=bool)
        m = None
        path = f"{view.base}/latents/{self.read['latents']}" if self.read.get("latents") else f"{view.base}/binned/counts"
        if view.store.is_array(path) and view.store.array(path).shape[0] != Y.shape[0]:
            raise DataError(f"features have {view.store.array(path).shape[0]} bins but the target has {Y.shape[0]}",
                            f"session {sid}")
        for s, X, u in view.blocks(self._rows(view), **self.read):
            u = u & finite[s:s + X.shape[0]]
            usable[s:s + X.shape[0]] = u
            if self.shift is None and u.any():
                self.shift = X[u].mean(axis=0)
            if m is None and self.shift is not None:
                m = Moments(X.shape[1], Y.shape[1] if self.with_targets else 0, self.shift)
            if m is not None:
                m.add(X[u], Y[s:s + X.shape[0]][u] if self.with_targets else None)
        if m is not None and m.sxx.nbytes > SPILL_BYTES:
            m.spill()  # kept for every fold: on disk, read back row by row (one (F, F) array in memory per fit)
        self.usable[sid], self.totals[sid] = usable, m
        return usable

    def _part(self, sid: str, rows: np.ndarray) -> Moments:
        Y = self.Y[sid]
        m = Moments(self.totals[sid].sx.size, Y.shape[1] if self.with_targets else 0, self.shift)
        for s, X, r in self._selected(sid, rows):
            m.add(X, Y[s:s + r.size][r] if self.with_targets else None)
        return m

    def _selected(self, sid: str, rows: np.ndarray):
        """``(start, X[r], r)`` per block covering the selected ``rows`` (T,) bool of a session, in time order."""
        view = self.views[sid]
        idx = np.flatnonzero(rows)
        if idx.size == 0:
            return
        for s, X, _ in view.blocks(self._rows(view), start=int(idx[0]), stop=int(idx[-1]) + 1, **self.read):
            r = rows[s:s + X.shape[0]]
            yield s, X[r], r

    def _train_moments(self, bins: dict) -> Moments:
        """Feature statistics of the training bins of every session: each total minus the bins left out."""
        total = None
        for sid, idx in bins.items():
            left = self.usable[sid].copy()
            left[idx] = False
            m = self.totals[sid].rest(self._part(sid, left)) if left.any() else self.totals[sid].copy()
            total = m if total is None else total.merge(m)
        return total

    def fit(self, bins: dict, tag: str):
        total = self._train_moments(bins)
        if total is None or total.n < 3:
            raise DataError(f"ridge needs at least 3 training samples ({tag})")
        return ridge_from_moments(self.make_model(), total, consume=True)

    def _want(self, sid: str, bins: np.ndarray) -> np.ndarray:
        want = np.zeros(self.Y[sid].shape[0], dtype=bool)
        want[bins] = True
        return want

    def predict(self, model, sid: str, bins: np.ndarray) -> np.ndarray:
        coef, b = np.asarray(model.coef_), np.asarray(model.intercept_)
        out = np.empty((bins.size, coef.shape[1]))
        pos = 0
        for _, X, _ in self._selected(sid, self._want(sid, bins)):
            out[pos:pos + X.shape[0]] = X @ coef + b
            pos += X.shape[0]
        return out

    def adapt(self, base, sid, bins, tag):  # pragma: no cover - linear decoders are not adapted
        raise NotImplementedError

    def n_parameters(self, model) -> None:
        return None

    def fit_note(self, fitted_on: str) -> str:
        return "refit on all usable bins"

    def check_sessions(self, sessions) -> None:
        if len({self.totals[s].sx.size for s in sessions}) > 1:
            detail = ", ".join(f"{s}: {self.n_inputs[s]}" for s in sessions)
            raise UsageError(f"training and test sessions have different feature dimensions ({detail})",
                             "--train-sessions/--test-sessions",
                             hint="decode from shared latents (--latents NAME) with the same dimension")


class BlockedKalmanLearner(BlockedRidgeLearner):
    """Harness learner of the Kalman decoder fit from block statistics (Wu et al. 2006, Eq. 4 by sums).

    The state (behaviour and its derivative within runs of training bins) is
    small and built in memory exactly as :meth:`KalmanDecoder.fit` does, so
    ``A`` and ``W`` are unchanged; ``H`` and ``Q`` come from ``Σ x s'`` (one
    pass over the training bins) and ``Σ x x'`` (session total minus the bins
    left out): ``H' = (Sc'Sc)⁺ Sc'Xc``, ``Q = (Xc'Xc - H Sc'Xc - Xc'Sc H' + H Sc'Sc H') / n``.
    Filtering runs block by block with the state carried across blocks.
    """

    with_targets = False

    def fit(self, bins: dict, tag: str):
        from ncli.core.splits import contiguous_segments

        model = self.make_model()
        Ys, segs, offset = [], [], 0
        for sid, idx in bins.items():
            Ys.append(self.Y[sid][idx])
            seg = contiguous_segments(idx) + offset
            segs.append(seg)
            offset = int(seg.max()) + 1 if seg.size else offset
        Y, seg = np.vstack(Ys), np.concatenate(segs)
        if Y.shape[0] < 3:
            raise DataError(f"the Kalman decoder needs at least 3 training samples ({tag})")
        Sc, A, W = model.fit_dynamics(Y, seg)
        m = self._train_moments(bins)
        n = m.n
        xs = np.zeros((m.sx.size, Sc.shape[1]))  # Σ (x - shift) sc'
        pos = 0
        for sid, idx in bins.items():
            for _, X, _ in self._selected(sid, self._want(sid, idx)):
                xs += (X - self.shift).T @ Sc[pos:pos + X.shape[0]]
                pos += X.shape[0]
        xs -= np.outer(m.sx / n, Sc.sum(axis=0))  # Σ (x - x̄) sc'
        Cxx, _, _, _ = m.centred(inplace=True)
        SS = Sc.T @ Sc
        H = np.linalg.lstsq(SS, xs.T, rcond=None)[0].T  # (F, S)
        HX = H @ xs.T
        Q = (Cxx - HX - HX.T + H @ SS @ H.T) / n
        Q = 0.5 * (Q + Q.T)
        Q += model.reg * max(float(np.mean(np.diag(Q))), 1e-12) * np.eye(Q.shape[0])
        jitter = 1e-9 * max(float(np.trace(SS)) / n, 1e-12)
        model.A_ = A
        model.W_ = W + jitter * np.eye(A.shape[0])
        model.H_ = H
        model.Q_ = Q
        model.P0_ = SS / n + jitter * np.eye(SS.shape[0])
        model.obs_mean_ = m.mean
        return model

    def predict(self, model, sid: str, bins: np.ndarray) -> np.ndarray:
        """:meth:`KalmanDecoder.predict` over the bins, filtering block by block (state carried over)."""
        from ncli.core.splits import contiguous_segments

        first_all = np.ones(bins.size, dtype=bool)
        seg = contiguous_segments(bins)
        first_all[1:] = seg[1:] != seg[:-1]
        K_list = model.gains()
        if model.steady_state:
            K_list = K_list[-1:]
        A, H, obs_mean = np.asarray(model.A_), np.asarray(model.H_), np.asarray(model.obs_mean_)
        n_state = A.shape[0]
        K_inf = K_list[-1]
        M_inf = (np.eye(n_state) - K_inf @ H) @ A
        states = np.empty((bins.size, n_state))
        x, step, pos = np.zeros(n_state), 0, 0
        for _, X, _ in self._selected(sid, self._want(sid, bins)):
            Zc = X - obs_mean
            KZ = Zc @ K_inf.T
            for i in range(X.shape[0]):
                t = pos + i
                if first_all[t]:
                    step = 0
                    x_prior = np.zeros(n_state)
                else:
                    x_prior = A @ x
                if step < len(K_list) - 1:
                    x = x_prior + K_list[step] @ (Zc[i] - H @ x_prior)
                elif first_all[t]:
                    x = x_prior + K_inf @ (Zc[i] - H @ x_prior)
                else:
                    x = M_inf @ x + KZ[i]
                states[t] = x
                step += 1
            pos += X.shape[0]
        states += np.asarray(model.state_mean_)
        active = np.asarray(model.active_, dtype=bool)
        out = np.tile(np.asarray(model.target_mean_, dtype=np.float64), (bins.size, 1))
        out[:, active] = states[:, : int(active.sum())]
        return out


def blocked_job(method, src: Store, req):
    """The ``decode`` job of a :class:`~ncli.methods.decode._base.LinearMethod` fit from block statistics.

    Raises
    ------
    UsageError, DataError
        As :meth:`LinearMethod.job` (unknown target, too few usable bins, ...).
    """
    name, colspec, split, used = method.prepare(src, req)
    c = method.config
    latents = getattr(c, "latents", None)
    read = {"lags": req.lags, "latents": latents, "sqrt": bool(c.sqrt), "transform": method.transform}
    views = {sid: SessionView(src, sid) for sid in used}
    data, Y = {}, {}
    for sid in used:
        if not latents:
            views[sid].require_counts(hint=False)
        t = views[sid].target(name, colspec)
        data[sid] = harness.Behaviour(t.Y, np.zeros(t.Y.shape[0], dtype=bool), t.columns, t.circular, t.unit)
        Y[sid] = data[sid].fit_values()
    learner = (BlockedKalmanLearner if method.name == "kalman" else BlockedRidgeLearner)(method.make_model, views,
                                                                                        read, Y)
    for sid in used:
        data[sid].usable = learner.scan(sid)
        if data[sid].usable.sum() < 3:
            raise DataError(f"session '{sid}' has only {int(data[sid].usable.sum())} usable bins "
                            f"(valid, finite target, full lag window)", src.location)
    features = {"source": method.feature_source(), "sqrt": bool(c.sqrt and not latents), "lags": req.lags}
    return method.evaluate(name=name, split=split, data=data, learner=learner, features=features,
                           params=method.params(req, split))
