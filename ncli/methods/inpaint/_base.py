"""The loop every ``ncli inpaint`` method shares: read areas and windows, hold out, fit, write, evaluate.

Input per session: ``binned/counts`` (T, N) and ``units/area`` (N,). The
areas are every non-empty ``units/area`` value of the store (or ``--areas``;
neurons of other areas are left out). Sessions are cut into windows of
``--window`` bins: the trials when every trial spans exactly that many bins
(their ``trials/condition``, if any, is the condition of the consistency
term), else consecutive windows from the first bin (bins after the last
whole window get NaN).

``--evaluate`` (NeuroPaint, NeurIPS 2025, §4): in every session that records
at least two areas, one recorded area is held out (``--holdout AREA`` where
it is recorded, else the session's recorded areas in turn: session ``i``
holds out its ``i mod n``-th). Its neurons are removed before fitting. The
windows are split 60/40 at random (``--test-fraction``, seeded); a Poisson
GLM (ridge, L-BFGS) from the inferred factors of the held-out area to its
neurons' counts is fitted on the training windows and scored on the test
windows: fraction of deviance explained per neuron, bits/spike per neuron
and pooled (see :mod:`ncli.core.poisson`). The GLM baseline is the same GLM
from the session's other recorded neurons (square-rooted counts, Gaussian
smoothed over 2 bins, standardised); on simulated stores
(``predictions/truth_rates``) the true rates give the ceiling. Neurons with
fewer than ``--min-spikes`` spikes in the test windows are dropped from the
summaries (deviance explained of a near-silent neuron is dominated by its
null deviance near 0 and can be arbitrarily negative); their number is
reported.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np

from ncli.core.errors import DataError
from ncli.core.poisson import fit_poisson_glm, goodness, predict_poisson_glm
from ncli.formats.store import Store, StoreWriter
from ncli.formats.view import SessionView
from ncli.methods.registry import Method
from ncli.methods.results import Job, write_latents, write_prediction, write_summary

log = logging.getLogger("ncli")

#: Ridge penalty of the evaluation GLMs (loss: mean NLL per bin + alpha / (2 T) |w|^2).
GLM_ALPHA = 100.0


@dataclass
class InpaintRun:
    """What ``ncli inpaint`` hands a method: the opened input and the common options.

    Attributes
    ----------
    src : Store
    sessions : list of str
    areas : list of str or None
        ``--areas`` (None: every area of the store).
    window : int or None
        ``--window`` bins (None: the trial length, else 50).
    evaluate : bool
    holdout : str or None
    test_fraction : float
    min_spikes : int
    name : str
    seed : int
    """

    src: Store
    sessions: list
    areas: list | None
    window: int | None
    evaluate: bool
    holdout: str | None
    test_fraction: float
    min_spikes: int
    name: str
    seed: int


@dataclass
class SessionData:
    """One session cut into windows (see the module docstring)."""

    sid: str
    counts: np.ndarray          # (n_windows, W, N) float64
    area: np.ndarray            # (N,) int index into the areas
    columns: np.ndarray         # (N,) int column of each kept neuron in binned/counts
    starts: np.ndarray          # (n_windows,) first bin of each window
    condition: np.ndarray | None
    n_bins: int
    n_units: int
    bin_size: float
    truth: np.ndarray | None = None     # (n_windows, W, N) true mean counts, simulated stores only
    held: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # (N,) held-out neurons
    held_area: int | None = None


def read_sessions(run: InpaintRun) -> tuple[list[str], list[SessionData]]:
    """The store's areas and every session cut into windows.

    Raises
    ------
    DataError
        No binned counts or no ``units/area``; an ``--areas`` name no session records; fewer than 2 areas;
        windows of unequal length; every session records a single area.
    """
    src = run.src
    raw = {}
    for sid in run.sessions:
        v = SessionView(src, sid)
        v.require_counts()
        if not v.has("units/area"):
            raise DataError(f"session '{sid}' has no units/area: inpainting needs the area of every unit",
                            src.location)
        raw[sid] = (v, np.array([str(a) for a in src.read(f"sessions/{sid}/units/area")], dtype=object))
    present = sorted({a for _, ar in raw.values() for a in ar if a})
    if run.areas:
        missing = [a for a in run.areas if a not in present]
        if missing:
            raise DataError(f"no session records area '{missing[0]}'", src.location,
                            hint=f"areas in the store: {', '.join(present)}")
        areas = list(run.areas)
    else:
        areas = present
    if len(areas) < 2:
        raise DataError(f"the store has {len(areas)} area(s); inpainting needs at least 2", src.location)
    out = []
    for sid, (v, ar) in raw.items():
        out.append(_windows(v, ar, areas, run.window))
    if len({s.counts.shape[1] for s in out}) != 1:
        raise DataError("sessions have trials of different lengths", src.location,
                        hint="give --window BINS to cut every session into windows of one length")
    if max(len(np.unique(s.area)) for s in out) < 2:
        raise DataError("every session records a single area: there is nothing to inpaint an area from",
                        src.location, hint="inpainting needs sessions that record at least two of the areas")
    return areas, out


def _windows(v: SessionView, ar: np.ndarray, areas: list, window: int | None) -> SessionData:
    counts = v.counts()
    T, dt = counts.shape[0], v.bin_size
    keep = np.flatnonzero(np.isin(ar, areas))
    trials = v.table("trials")
    starts, cond = None, None
    if "start_time" in trials and "stop_time" in trials and len(trials["start_time"]):
        b0 = np.round((np.asarray(trials["start_time"]) - v.t_start) / dt).astype(int)
        b1 = np.round((np.asarray(trials["stop_time"]) - v.t_start) / dt).astype(int)
        lengths = np.unique(b1 - b0)
        if lengths.size == 1 and (window is None or window == lengths[0]) and b0.min() >= 0 and b1.max() <= T:
            starts, window = b0, int(lengths[0])
            if "condition" in trials:
                cond = np.unique([str(c) for c in trials["condition"]], return_inverse=True)[1]
    window = int(window or 50)
    if starts is None:
        starts = np.arange(0, T - window + 1, window)
    if starts.size < 2:
        raise DataError(f"session '{v.session}' has fewer than 2 windows of {window} bins", v.store.location)
    idx = starts[:, None] + np.arange(window)[None, :]
    truth = None
    if v.has("predictions/truth_rates"):
        truth = np.asarray(v.store.read(f"{v.base}/predictions/truth_rates"), dtype=np.float64)[:, keep][idx] * dt
    return SessionData(sid=v.session, counts=counts[:, keep][idx], area=np.array([areas.index(a) for a in ar[keep]]),
                       columns=keep, starts=starts, condition=cond, n_bins=T, n_units=counts.shape[1],
                       bin_size=dt, truth=truth, held=np.zeros(keep.size, dtype=bool))


def choose_holdouts(data: list[SessionData], areas: list, holdout: str | None) -> None:
    """Mark the held-out area of every session that records at least two (see the module docstring)."""
    if holdout is not None and holdout not in areas:
        raise DataError(f"--holdout area '{holdout}' is not an area of the store",
                        hint=f"areas: {', '.join(areas)}")
    for i, s in enumerate(data):
        rec = np.unique(s.area)
        if rec.size < 2:
            continue
        if holdout is not None:
            if areas.index(holdout) not in rec:
                continue
            a = areas.index(holdout)
        else:
            a = int(rec[i % rec.size])
        s.held_area = a
        s.held = s.area == a
    if not any(s.held_area is not None for s in data):
        raise DataError(f"no session records --holdout area '{holdout}' beside another area")


def split_windows(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random train / test windows: (train idx, test idx), ``round(test_fraction * n)`` (at least 1) test."""
    perm = np.random.default_rng([int(seed), 15]).permutation(n)
    n_te = max(1, round(test_fraction * n))
    return np.sort(perm[n_te:]), np.sort(perm[:n_te])


def smooth_sqrt(counts: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """sqrt counts (n, W, N) Gaussian-smoothed over bins within each window."""
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    W = counts.shape[1]
    K = np.zeros((W, W))
    for t in range(W):
        lo, hi = max(0, t - r), min(W, t + r + 1)
        K[t, lo:hi] = k[lo - t + r:hi - t + r]
    K /= K.sum(axis=1, keepdims=True)
    return np.einsum("st,ntm->nsm", K, np.sqrt(counts))


def glm_score(X: np.ndarray, Y: np.ndarray, tr: np.ndarray, te: np.ndarray) -> dict:
    """Fit a Poisson GLM from X (n, W, D) to Y (n, W, N) on windows ``tr``; goodness on ``te``."""
    D = X.shape[-1]
    Xtr, Xte = X[tr].reshape(-1, D), X[te].reshape(-1, D)
    mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-6
    Ytr, Yte = Y[tr].reshape(-1, Y.shape[-1]), Y[te].reshape(-1, Y.shape[-1])
    W, b = fit_poisson_glm((Xtr - mu) / sd, Ytr, alpha=GLM_ALPHA)
    return goodness(Yte, predict_poisson_glm((Xte - mu) / sd, W, b), Ytr.mean(0))


def summarise(per: list[dict], keep: np.ndarray) -> dict:
    """Median / mean deviance explained and bits/spike over kept neurons; pooled bits/spike over them."""
    de = np.concatenate([p["deviance_explained"] for p in per])[keep]
    bps = np.concatenate([p["bits_per_spike"] for p in per])[keep]
    gain = np.concatenate([p["bits_per_spike"] * p["n_spikes"] for p in per])[keep]
    spikes = np.concatenate([p["n_spikes"] for p in per])[keep]
    ok = bool(de.size)
    return {"deviance_explained_median": float(np.median(de)) if ok else None,
            "deviance_explained_mean": float(np.mean(de)) if ok else None,
            "bits_per_spike_median": float(np.median(bps)) if ok else None,
            "bits_per_spike_pooled": float(gain.sum() / spikes.sum()) if ok and spikes.sum() > 0 else None}


class InpaintMethod(Method):
    """Base of the inpaint methods: hooks for the model and the factors it infers."""

    command = "inpaint"
    #: whether the method infers area factors (False: the GLM baseline only)
    has_factors = True

    def method_params(self) -> dict:
        """This method's parameters, for the cache key and history."""
        return asdict(self.config)

    def make_model(self, n_areas: int, seed: int):
        """A new, unfitted estimator."""
        raise NotImplementedError

    def job(self, run: InpaintRun) -> Job:
        """The latents, rates and evaluation of every session (computed when written)."""
        params = {"method": self.name, "areas": run.areas, "window": run.window, "evaluate": run.evaluate,
                  "holdout": run.holdout, "test_fraction": run.test_fraction, "min_spikes": run.min_spikes,
                  "name": run.name, "seed": run.seed, **self.method_params()}

        def build(w: StoreWriter) -> None:
            self._build(w, run, params)

        return Job(params, build)

    def _build(self, w: StoreWriter, run: InpaintRun, params: dict) -> None:
        from ncli.models.neuropaint import AreaSession

        areas, data = read_sessions(run)
        if run.evaluate:
            choose_holdouts(data, areas, run.holdout)
        mpath = f"models/inpaint_{run.name}"
        model, factors = None, [None] * len(data)
        if self.has_factors:
            train = [AreaSession(s.counts[:, :, ~s.held], s.area[~s.held], s.condition) for s in data]
            model = self.make_model(len(areas), run.seed)
            model.fit(train)
            for i, (s, t) in enumerate(zip(data, train)):
                F = model.transform(t.counts, t.area, i)                      # (n, W, A, K)
                factors[i] = F
                rates = model.predict_counts(F, i, t.area) / s.bin_size     # (n, W, N_train) Hz
                self._write_session(w, run, s, areas, F, rates)
            model.to_group(w.group(f"{mpath}/model"),
                           extra={"areas": areas, "sessions": [s.sid for s in data], "method": self.name})
        metrics = self._evaluate(w, run, data, factors, mpath) if run.evaluate else None
        if metrics is None and not self.has_factors:
            raise DataError("--method glm has no factors to write; it is the --evaluate baseline",
                            hint="add --evaluate")
        extra = {}
        if model is not None:
            extra = {"epoch_seconds": model.epoch_seconds_, "peak_memory_mb": model.peak_memory_mb_}
        write_summary(w, mpath, f"ncli inpaint --method {self.name}", params, metrics, areas=areas, **extra)

    def _write_session(self, w, run, s: SessionData, areas, F, rates) -> None:
        _n, Wn = F.shape[:2]
        rows = (s.starts[:, None] + np.arange(Wn)[None, :]).ravel()
        for a, name in enumerate(areas):
            Z = np.full((s.n_bins, F.shape[-1]), np.nan)
            Z[rows] = F[:, :, a, :].reshape(-1, F.shape[-1])
            write_latents(w, s.sid, f"{run.name}/{name}", Z,
                          attrs={"method": self.name, "area": name, "recorded": bool(np.any(s.area == a)),
                                 "held_out": s.held_area == a})
        R = np.full((s.n_bins, s.n_units), np.nan)
        cols = s.columns[~s.held]
        R[np.ix_(rows, cols)] = rates.reshape(-1, cols.size)
        write_prediction(w, s.sid, f"{run.name}_rates", R, unit="Hz",
                         attrs={"method": self.name, "description": "predicted rate of every neuron with a "
                                "readout (NaN: no readout, held out or outside the windows)"})

    def _evaluate(self, w, run, data, factors, mpath) -> dict:
        per_model, per_glm, per_ceil, spikes = [], [], [], []
        for i, s in enumerate(data):
            if s.held_area is None:
                continue
            tr, te = split_windows(s.counts.shape[0], run.test_fraction, run.seed)
            Y = s.counts[:, :, s.held]
            others = smooth_sqrt(s.counts[:, :, ~s.held])
            g = glm_score(others, Y, tr, te)
            per_glm.append(g)
            if factors[i] is not None:
                per_model.append(glm_score(factors[i][:, :, s.held_area, :], Y, tr, te))
            if s.truth is not None:
                Yte = Y[te].reshape(-1, Y.shape[-1])
                per_ceil.append(goodness(Yte, s.truth[:, :, s.held][te].reshape(-1, Y.shape[-1]),
                                         Y[tr].reshape(-1, Y.shape[-1]).mean(0)))
            spikes.append(g["n_spikes"])
            arrays = {"glm_deviance_explained": g["deviance_explained"], "glm_bits_per_spike": g["bits_per_spike"],
                      "test_spikes": g["n_spikes"]}
            if per_model and factors[i] is not None:
                arrays.update(deviance_explained=per_model[-1]["deviance_explained"],
                              bits_per_spike=per_model[-1]["bits_per_spike"])
            if s.truth is not None:
                arrays.update(ceiling_deviance_explained=per_ceil[-1]["deviance_explained"])
            g_s = w.group(f"{mpath}/{s.sid}", {"held_out_area": int(s.held_area),
                                               "n_train_windows": int(tr.size), "n_test_windows": int(te.size)})
            for k, v in arrays.items():
                g_s.create_array(k, data=np.asarray(v, dtype=np.float64), overwrite=True)
        keep = np.concatenate(spikes) >= run.min_spikes
        m = {"rule": f"neurons with fewer than {run.min_spikes} spikes in the test windows dropped",
             "n_neurons": int(keep.size), "n_dropped": int((~keep).sum()),
             "n_sessions_evaluated": len(spikes), "glm": summarise(per_glm, keep)}
        if per_model:
            m["model"] = summarise(per_model, keep)
        if per_ceil:
            m["ceiling"] = summarise(per_ceil, keep)
            if per_model and m["ceiling"]["deviance_explained_mean"]:
                m["fraction_of_ceiling_mean"] = m["model"]["deviance_explained_mean"] / \
                    m["ceiling"]["deviance_explained_mean"]
        self.report(m)
        return m

    def report(self, m: dict) -> None:
        """The evaluation summary on stderr."""
        def line(tag, d):
            return (f"{tag}: deviance explained median {d['deviance_explained_median']:.3f}, mean "
                    f"{d['deviance_explained_mean']:.3f}; bits/spike pooled {d['bits_per_spike_pooled']:.3f}, "
                    f"per-neuron median {d['bits_per_spike_median']:.3f}")
        if m["n_neurons"] == m["n_dropped"]:
            log.info("inpaint %s: every held-out neuron has < min spikes in the test windows", self.name)
            return
        log.info("inpaint %s: %d held-out neurons in %d sessions, %d dropped (%s)", self.name, m["n_neurons"],
                 m["n_sessions_evaluated"], m["n_dropped"], m["rule"])
        for tag in ("model", "glm", "ceiling"):
            if tag in m:
                log.info("  %s", line({"model": self.name, "glm": "GLM from other neurons",
                                       "ceiling": "true rates"}[tag], m[tag]))
