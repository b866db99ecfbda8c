"""``ncli chunk --method pa``: population averaging, one template and sub-population per label.

For each label, its occurrences in the training part give a template (mean
deviation from the background) on a stable sub-population; a bin is detected
when its deviation on that sub-population stays within ``--tolerance`` times
the threshold (``--quantile`` of the training deviations). Needs per-bin
``--labels``. See docs/commands/chunk.md; numerics in
:class:`ncli.models.chunking.PopulationAveraging`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ncli.core.errors import DataError, UsageError
from ncli.formats.store import Store, as_str_array
from ncli.methods.chunk._base import ChunkMethod, ChunkRun, log, split_index
from ncli.methods.registry import Example, option, register


@dataclass
class PAConfig:
    """Options of ``--method pa``."""

    labels: Optional[str] = option(None, "Per-bin labels: chunks/NAME, trials/COLUMN or intervals/TABLE/COLUMN.",
                                   show_default=False)
    tolerance: float = option(1.0, "Detection tolerance (multiple of the threshold) of the reported operating "
                              "point.", minimum=0.0)
    quantile: float = option(0.99, "Quantile of the training deviations used as threshold.")
    min_effect: float = option(0.5, "Smallest |effect size| of a sub-population member.")
    min_consistency: float = option(0.8, "Smallest fraction of occurrences with the template's sign.")
    max_occurrences: Optional[int] = option(None, "Use only the first occurrences of each label (default all "
                                            "training occurrences).", show_default=False)


@register
class PA(ChunkMethod):
    """Population averaging (supervised: ``--labels``)."""

    name = "pa"
    estimator = "ncli.models.chunking:PopulationAveraging"
    summary = "population averaging, needs --labels"
    Config = PAConfig
    example = Example(setup=(("simulate", "chunks", "--bins", "300", "--units", "30", "--subset-size", "6"),),
                      args=("--labels", "chunks/truth"))

    def check(self, test_fraction: float) -> None:
        """``--labels`` is required and some bins must be held out.

        Raises
        ------
        UsageError
        """
        if self.config.labels is None:
            raise UsageError("--method pa needs --labels", "--labels",
                             hint="e.g. --labels intervals/encoding_table/stimCategory or chunks/truth")
        if test_fraction == 0:
            raise UsageError("--method pa needs held-out bins: --test-fraction must be > 0", "--test-fraction")

    def labels_spec(self) -> str | None:
        return self.config.labels

    def session_labels(self, src: Store, sid: str, n_bins: int):
        return load_labels(src, sid, self.config.labels, n_bins)

    def check_training_labels(self, lab, n_fit: int, names: list, sid: str) -> None:
        """Every label must occur in the training bins.

        Raises
        ------
        DataError
        """
        K = len(names)
        missing = [names[k] for k in range(K) if not (lab[:n_fit] == k).any()]
        if missing:
            raise DataError(f"label{'s' if len(missing) > 1 else ''} "
                            f"{', '.join(repr(m) for m in missing[:5])}{' ...' if len(missing) > 5 else ''}"
                            f" of {self.config.labels} never occur{'s' if len(missing) == 1 else ''} in the "
                            f"training bins ({len(missing)} of {K} labels)", f"session {sid}",
                            hint="use a smaller --test-fraction, or a column whose values recur (a "
                                 "category, not a per-trial value)")

    def make_model(self, seed: int):
        from ncli.models.chunking import PopulationAveraging

        c = self.config
        return PopulationAveraging(min_effect=c.min_effect, min_consistency=c.min_consistency, quantile=c.quantile,
                                   tolerance=c.tolerance, max_occurrences=c.max_occurrences)

    def fit_eval(self, X, lab, n_fit: int, K: int, seed: int):
        from ncli.models import chunking as ch

        model = self.make_model(seed)
        model.fit(X[:n_fit], lab[:n_fit], n_labels=K)
        Xte = X[n_fit:]
        if len(Xte) == 0:
            raise DataError("no held-out bins after the split", hint="use a larger --test-fraction")
        det = ch.detection_metrics(model.score(Xte), lab[n_fit:], self.config.tolerance)
        arrays = {"sweep_tolerance": ch.TOLERANCES, "sweep_tpr": det.pop("sweep_tpr"),
                  "sweep_fpr": det.pop("sweep_fpr"), "auc": np.asarray(det["auc"])}
        det["n_members"] = np.asarray(model.members_).sum(1).tolist()
        return model, det, arrays

    def control_fit(self, X, lab, idx, n_fit: int, K: int, run: ChunkRun) -> dict:
        """The labels shifted in time."""
        from ncli.models.chunking import shift_labels

        lab_c = shift_labels(lab, run.seed)
        return self.fit_eval(X, lab_c, split_index(idx, run.test_fraction, lab_c), K, run.seed)[1]

    def write_session(self, w, gpath, mpath, model, X, idx, T, names, metrics):
        labels_out = np.full(T, -1, dtype=np.int32)
        score = np.full((T, model.templates_.shape[0]), np.nan, dtype=np.float32)
        score[idx] = model.score(X)
        labels_out[idx] = model.predict(X)
        w.array(f"{gpath}/score", score, attrs={"description": "deviation from each chunk's template on its "
                                                "sub-population / threshold (<= tolerance: detected)"})
        return labels_out, names

    def report(self, sid: str, names: list, m: dict) -> None:
        log.info("chunk pa %s: %d labels; held-out TPR %.3f, FPR %.3f, AUC %.3f (means over labels)%s", sid,
                 len(names), m["tpr_mean"], m["fpr_mean"], m["auc_mean"],
                 f"; control AUC {m['control_auc_mean']:.3f}" if "control_auc_mean" in m else "")


def load_labels(src: Store, sid: str, spec: str, n_bins: int) -> tuple[np.ndarray, list[str]]:
    """Per-bin labels named by ``--labels``.

    ``spec`` is ``chunks/NAME`` (a per-bin label array ``chunks/NAME/labels``,
    e.g. the simulator's ``chunks/truth``), ``trials/COLUMN`` or
    ``intervals/TABLE/COLUMN`` (bins whose centre lies in a row's
    ``[start_time, stop_time)`` get the row's value; other bins -1).

    Returns
    -------
    labels : (T,) int64
        Label index per bin (-1 none).
    names : list of str
        Name of each label index.

    Raises
    ------
    UsageError
        Malformed spec or missing column/array.
    DataError
        Wrong length, or no bin carries a label.
    """
    base = f"sessions/{sid}"
    parts = spec.strip("/").split("/")
    if parts[0] == "chunks" and len(parts) == 2:
        path = f"{base}/chunks/{parts[1]}/labels"
        if not src.is_array(path):
            raise UsageError(f"no per-bin labels at {path}", "--labels",
                             hint="chunks in this session: " + (", ".join(src.children(f"{base}/chunks")) or "(none)"))
        lab = np.asarray(src.read(path), dtype=np.int64).ravel()
        if lab.shape[0] != n_bins:
            raise DataError(f"{path} has {lab.shape[0]} bins, the activity {n_bins}", f"session {sid}")
        names = src.attrs(f"{base}/chunks/{parts[1]}").get("names") or \
            [str(k) for k in range(int(lab.max()) + 1 if lab.size else 0)]
        lab[lab < 0] = -1
        return lab, [str(n) for n in names]
    if parts[0] == "trials" and len(parts) == 2:
        table, column = f"{base}/trials", parts[1]
    elif parts[0] == "intervals" and len(parts) == 3:
        table, column = f"{base}/intervals/{parts[1]}", parts[2]
    else:
        raise UsageError(f"invalid --labels '{spec}'", "--labels",
                         hint="use chunks/NAME, trials/COLUMN or intervals/TABLE/COLUMN")
    if not src.exists(table):
        base_tables = (["trials"] if src.exists(f"{base}/trials") else []) + \
            [f"intervals/{t}" for t in src.children(f"{base}/intervals")]
        raise UsageError(f"session {sid} has no table {table.split('/', 2)[-1]}", "--labels",
                         hint="tables here: " + (", ".join(base_tables) or "(none)"))
    for col in ("start_time", "stop_time", column):
        if not src.is_array(f"{table}/{col}"):
            cols = ", ".join(src.children(table)) or "(no such table)"
            raise UsageError(f"no column '{col}' in {table.split('/', 2)[-1]}", "--labels", hint=f"columns: {cols}")
    start = np.asarray(src.read(f"{table}/start_time"), dtype=np.float64)
    stop = np.asarray(src.read(f"{table}/stop_time"), dtype=np.float64)
    values = np.asarray(src.read(f"{table}/{column}"))
    if values.dtype.kind == "f":
        keep = np.isfinite(values)
        text = np.array([f"{v:g}" for v in values])
    else:
        keep = np.ones(len(values), dtype=bool)
        text = as_str_array(values)
    names = sorted(set(text[keep].tolist()), key=lambda s: (len(s), s))
    index = {n: i for i, n in enumerate(names)}
    battrs = src.attrs(f"{base}/binned")
    centres = float(battrs["t_start_s"]) + (np.arange(n_bins) + 0.5) * float(battrs["bin_size_s"])
    lab = np.full(n_bins, -1, dtype=np.int64)
    for a, b, v, k in zip(start, stop, text, keep):
        if k and np.isfinite(a) and np.isfinite(b):
            lo, hi = np.searchsorted(centres, [a, b], side="left")
            lab[lo:hi] = index[v]
    if not (lab >= 0).any():
        raise DataError(f"no bin lies inside a row of {table.split('/', 2)[-1]}", f"session {sid}")
    return lab, names
