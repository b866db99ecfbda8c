"""``ncli chunk --method ucd``: unsupervised chunk discovery, prototype population patterns.

``--n-chunks`` prototypes of the population vector, learned by cosine
similarity; a bin belongs to its most similar prototype when the similarity
reaches ``--min-similarity``; prototypes more similar than
``--merge-similarity`` are one chunk (the second is re-seeded). See
docs/commands/chunk.md; numerics in
:class:`ncli.models.chunking.UnsupervisedChunkDiscovery`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ncli.methods.chunk._base import ChunkMethod, ChunkRun, held_out_where, log
from ncli.methods.registry import Example, option, register


@dataclass
class UCDConfig:
    """Options of ``--method ucd``."""

    n_chunks: int = option(5, "Number of chunk prototypes.")
    min_similarity: float = option(0.25, "Smallest cosine similarity of a bin to its chunk.")
    merge_similarity: float = option(0.7, "Prototypes more similar than this are one chunk (the second is "
                                     "re-seeded).")


@register
class UCD(ChunkMethod):
    """Unsupervised chunk discovery."""

    name = "ucd"
    estimator = "ncli.models.chunking:UnsupervisedChunkDiscovery"
    summary = "unsupervised chunk discovery"
    Config = UCDConfig
    example = Example(setup=(("simulate", "chunks", "--bins", "300", "--units", "30", "--subset-size", "6"),),
                      args=("--n-chunks", "4"))

    def make_model(self, seed: int):
        from ncli.models.chunking import UnsupervisedChunkDiscovery

        c = self.config
        return UnsupervisedChunkDiscovery(n_chunks=c.n_chunks, min_similarity=c.min_similarity,
                                          merge_similarity=c.merge_similarity, seed=seed)

    def fit_eval(self, X, lab, n_fit: int, K: int, seed: int):
        from ncli.models.chunking import recurrence_ucd

        model = self.make_model(seed)
        Xtr, Xte = X[:n_fit], X[n_fit:]
        model.fit(Xtr)
        rec = recurrence_ucd(model, Xte if len(Xte) else Xtr)
        rec["evaluated_on"] = "held-out bins" if len(Xte) else "training bins"
        return model, rec, {}

    def control_fit(self, X, lab, idx, n_fit: int, K: int, run: ChunkRun) -> dict:
        """Each neuron shifted in time."""
        from ncli.models.chunking import shift_columns

        return self.fit_eval(shift_columns(X, run.seed), None, n_fit, K, run.seed)[1]

    def write_session(self, w, gpath, mpath, model, X, idx, T, names, metrics):
        labels_out = np.full(T, -1, dtype=np.int32)
        score = np.full((T, model.templates_.shape[0]), np.nan, dtype=np.float32)
        score[idx] = model.similarity(X)
        labels_out[idx] = model.predict(X)
        names = [f"u{k}" for k in range(model.prototypes_.shape[0])]
        metrics["n_chunks_used"] = int(np.count_nonzero(model.counts_))
        w.array(f"{gpath}/score", score, attrs={"description": "cosine similarity of each bin to each chunk "
                                                "prototype"})
        return labels_out, names

    def report(self, sid: str, names: list, m: dict) -> None:
        used = m.get("n_chunks_used", len(names))
        log.info("chunk ucd %s: %d chunks%s; %s coverage %.3f, mean similarity %.3f%s", sid, len(names),
                 f" ({len(names) - used} empty: fewer distinct patterns than --n-chunks)" if used < len(names) else "",
                 held_out_where(m), m["coverage"], m["mean_similarity"],
                 f"; control coverage {m['control_coverage']:.3f}" if "control_coverage" in m else "")
