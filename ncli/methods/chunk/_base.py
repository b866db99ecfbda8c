"""The loop every ``ncli chunk`` method shares: per session, split in time, fit, evaluate, write.

Input per session: the binned counts (square-rooted unless ``--no-sqrt``;
calcium dF/F as is) or, with ``--latents NAME``, ``latents/NAME``. Bins that
are not ``binned/valid`` or hold NaN are left out (label -1). Each session is
chunked on its own (sessions have different neurons). The first
``1 - --test-fraction`` of the usable bins fit the model; the rest are held
out (for ``pa`` the split is placed so that the last ``--test-fraction`` of
the labelled bins are held out).

Writes, per session, ``sessions/<sid>/chunks/<NAME>/`` (``labels`` (T,) int32
chunk per bin, ``score`` (T, K) or ``states`` (T,)) and the chunk dictionary
``models/chunk_<NAME>/<sid>/`` (templates, member neurons, method-specific
arrays, metrics). See docs/commands/chunk.md.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np

from ncli import __version__
from ncli.core.errors import DataError
from ncli.formats.store import Store, StoreWriter
from ncli.formats.view import SessionView
from ncli.methods.registry import Method
from ncli.methods.results import Job

log = logging.getLogger("ncli")


@dataclass
class ChunkRun:
    """What ``ncli chunk`` hands a method: the opened input and the common options.

    Attributes
    ----------
    src : Store
    sessions : list of str
        Never empty.
    latents : str or None
        ``--latents NAME`` (None: the binned counts).
    sqrt : bool
        Square-root the counts (not ``--no-sqrt``).
    name : str
        Result name: ``chunks/NAME`` and ``models/chunk_NAME``.
    test_fraction : float
    control : bool
    seed : int
    """

    src: Store
    sessions: list
    latents: str | None
    sqrt: bool
    name: str
    test_fraction: float
    control: bool
    seed: int


def split_index(usable_idx: np.ndarray, test_fraction: float, labels: np.ndarray | None) -> int:
    """Number of usable bins (in time order) used for fitting."""
    n = len(usable_idx)
    if labels is None:
        return int(round((1 - test_fraction) * n))
    lab_pos = np.flatnonzero(labels[usable_idx] >= 0)
    if test_fraction == 0 or lab_pos.size == 0:
        return n
    cut = int(round((1 - test_fraction) * lab_pos.size))
    return int(lab_pos[min(cut, lab_pos.size - 1)])


class ChunkMethod(Method):
    """Base of the chunk methods: hooks for the model, its evaluation and its per-session arrays."""

    command = "chunk"

    def check(self, test_fraction: float) -> None:
        """Cross-option rules of this method, before any data is read (UsageError)."""

    def labels_spec(self) -> str | None:
        """The ``--labels`` spec (pa only)."""
        return None

    def method_params(self) -> dict:
        """This method's parameters, for the cache key and history (every option but ``--labels``)."""
        return {k: v for k, v in asdict(self.config).items() if k != "labels"}

    def session_labels(self, src: Store, sid: str, n_bins: int) -> tuple[np.ndarray | None, list]:
        """Per-bin labels of a session and their names (None, [] for unsupervised methods)."""
        return None, []

    def check_training_labels(self, lab, n_fit: int, names: list, sid: str) -> None:
        """Refuse a split whose training part lacks a label (pa)."""

    def make_model(self, seed: int):
        """A new, unfitted estimator."""
        raise NotImplementedError

    def fit_eval(self, X: np.ndarray, lab: np.ndarray | None, n_fit: int, K: int, seed: int):
        """Fit on the first ``n_fit`` rows of ``X``, evaluate on the rest; (model, metrics, extra arrays)."""
        raise NotImplementedError

    #: control metrics recorded beside the error when the shuffled data cannot be chunked
    control_failed: dict = {}

    def control_fit(self, X, lab, idx, n_fit: int, K: int, run: ChunkRun) -> dict:
        """Metrics of the same fit on shuffled data (``--control``)."""
        raise NotImplementedError

    def control_metrics(self, X, lab, idx, n_fit: int, K: int, run: ChunkRun) -> dict:
        """:meth:`control_fit`, or its error (e.g. no recurring population state: nothing to chunk)."""
        try:
            return self.control_fit(X, lab, idx, n_fit, K, run)
        except DataError as err:
            return {"error": err.what, **self.control_failed}

    def write_session(self, w: StoreWriter, gpath: str, mpath: str, model, X: np.ndarray, idx: np.ndarray,
                      T: int, names: list, metrics: dict) -> tuple[np.ndarray, list]:
        """Write the method's per-bin arrays; returns (labels (T,) int32, chunk names)."""
        raise NotImplementedError

    def report(self, sid: str, names: list, m: dict) -> None:
        """One summary line per session on stderr."""

    def job(self, run: ChunkRun) -> Job:
        """The chunk layer of every session (computed when written)."""
        params = {"method": self.name, "latents": run.latents, "sqrt": run.sqrt, "labels": self.labels_spec(),
                  "name": run.name, "test_fraction": run.test_fraction, "control": run.control, "seed": run.seed,
                  **self.method_params()}

        def build(w: StoreWriter) -> None:
            for sid in run.sessions:
                self._session(w, run, sid, params)

        return Job(params, build)

    def _session(self, w: StoreWriter, run: ChunkRun, sid: str, params: dict) -> None:
        src = run.src
        X_all, usable, source = SessionView(src, sid).activity(run.latents, sqrt=run.sqrt)
        T = X_all.shape[0]
        idx = np.flatnonzero(usable)
        if idx.size < 10:
            raise DataError(f"session '{sid}' has {idx.size} usable bins; chunking needs at least 10", src.location)
        X = X_all[idx]
        lab_all, names = self.session_labels(src, sid, T)
        lab = lab_all[idx] if lab_all is not None else None
        n_fit = split_index(idx, run.test_fraction, lab)
        K = len(names)
        self.check_training_labels(lab, n_fit, names, sid)
        try:
            model, metrics, arrays = self.fit_eval(X, lab, n_fit, K, run.seed)
        except DataError as err:
            err.where = err.where or f"session {sid}"
            raise
        if run.control:
            metrics.update({f"control_{k}": v for k, v in self.control_metrics(X, lab, idx, n_fit, K, run).items()})
        gpath, mpath = f"sessions/{sid}/chunks/{run.name}", f"models/chunk_{run.name}/{sid}"
        labels_out, names = self.write_session(w, gpath, mpath, model, X, idx, T, names, metrics)
        metrics.update(n_fit_bins=int(n_fit), n_held_out_bins=int(idx.size - n_fit))
        test_start = int(idx[n_fit]) if n_fit < idx.size else T
        labels = self.labels_spec()
        w.array(f"{gpath}/labels", labels_out,
                attrs={"description": "chunk index per bin (row of the model's templates_); -1: none or "
                                      "unusable bin"})
        w.group(gpath, {"method": self.name, "model": mpath, "source": source, "names": names,
                        "labels": labels, "test_start_bin": test_start, "metrics": metrics})
        g = w.group(mpath)
        model.to_group(g, metrics=metrics,
                       extra={"command": {"params": params, "version": __version__}, "source": source,
                              "names": names, "labels": labels, "test_start_bin": test_start})
        for key, value in arrays.items():
            g.create_array(key, data=np.asarray(value, dtype=np.float64), overwrite=True)
        self.report(sid, names, metrics)


def held_out_where(m: dict) -> str:
    """'held-out', or 'training (no held-out bins)' when the metrics were computed on the training bins."""
    return "held-out" if m.get("evaluated_on") != "training bins" else "training (no held-out bins)"
