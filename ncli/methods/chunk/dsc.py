"""``ncli chunk --method dsc``: discrete sequence chunking, a dictionary of recurring state sequences.

Each neuron's activity is quantised into ``--n-levels`` k-means levels; the
level tuples that recur at least ``--min-state-count`` times are the
population states; pairs of consecutive states that occur far more often than
under independence (``--min-z``, ``--min-ratio``) are merged into chunks, up to
``--max-chunks`` merges. See docs/commands/chunk.md; numerics in
:class:`ncli.models.chunking.DiscreteSequenceChunking`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ncli.core.errors import UsageError
from ncli.methods.chunk._base import ChunkMethod, ChunkRun, held_out_where, log
from ncli.methods.registry import Example, option, register


@dataclass
class DSCConfig:
    """Options of ``--method dsc``."""

    n_levels: int = option(2, "k-means levels per neuron.")
    min_state_count: int = option(5, "Fewest bins of a population state.")
    state_radius: float = option(0.1, "Level tuples within this fraction of the neurons of a more frequent state "
                                 "merge into it.")
    min_z: float = option(5.0, "Smallest z-score of a merged pair's count over its count under independence.")
    min_ratio: float = option(2.0, "Smallest ratio of a merged pair's count to its count under independence.")
    max_chunks: int = option(50, "Most merges.")


@register
class DSC(ChunkMethod):
    """Discrete sequence chunking."""

    name = "dsc"
    estimator = "ncli.models.chunking:DiscreteSequenceChunking"
    summary = "discrete sequence chunking"
    Config = DSCConfig
    control_failed = {"n_chunks": 0, "compression": 0.0, "chunk_bin_fraction": 0.0}
    example = Example(setup=(("simulate", "chunks", "--variant", "sequence"),))

    def check(self, test_fraction: float) -> None:
        """At most 127 levels (states are int8 level tuples).

        Raises
        ------
        UsageError
        """
        if self.config.n_levels > 127:
            raise UsageError(f"--n-levels must be at most 127, got {self.config.n_levels}", "--n-levels",
                             hint="population states are tuples of a few levels per neuron (2-4 is typical)")

    def make_model(self, seed: int):
        from ncli.models.chunking import DiscreteSequenceChunking

        c = self.config
        return DiscreteSequenceChunking(n_levels=c.n_levels, min_state_count=c.min_state_count,
                                        state_radius=c.state_radius, min_z=c.min_z, min_ratio=c.min_ratio,
                                        max_chunks=c.max_chunks, seed=seed)

    def fit_eval(self, X, lab, n_fit: int, K: int, seed: int):
        from ncli.models.chunking import recurrence_dsc

        model = self.make_model(seed)
        Xtr, Xte = X[:n_fit], X[n_fit:]
        model.fit(Xtr)
        rec = recurrence_dsc(model, Xte if len(Xte) else Xtr)
        rec["evaluated_on"] = "held-out bins" if len(Xte) else "training bins"
        return model, rec, {}

    def control_fit(self, X, lab, idx, n_fit: int, K: int, run: ChunkRun) -> dict:
        """Each neuron shifted in time."""
        from ncli.models.chunking import shift_columns

        return self.fit_eval(shift_columns(X, run.seed), None, n_fit, K, run.seed)[1]

    def write_session(self, w, gpath, mpath, model, X, idx, T, names, metrics):
        parse = model.parse(X)
        labels_out = np.full(T, -1, dtype=np.int32)
        labels_out[idx] = parse["labels"]
        states = np.full(T, -1, dtype=np.int32)
        states[idx] = parse["states"]
        names = ["+".join(str(s) for s in row[row >= 0]) for row in model.chunk_states_]
        metrics.update(n_states=int(model.states_.shape[0]), n_chunks=len(names),
                       chunk_lengths=model.lengths_.tolist(), chunk_counts=model.counts_.tolist(),
                       parse_length_all=int(len(parse["tokens"])), n_bins_parsed=int(idx.size))
        w.array(f"{gpath}/states", states, attrs={"description": "population state per bin (row of "
                                                  f"{mpath}/states_); -1 for unusable bins"})
        return labels_out, names

    def report(self, sid: str, names: list, m: dict) -> None:
        log.info("chunk dsc %s: %d states, %d chunks; %s compression %.3f%s", sid, m["n_states"],
                 m["n_chunks"], held_out_where(m), m["compression"],
                 f"; control {m['control_n_chunks']} chunks, compression {m['control_compression']:.3f}"
                 if "control_compression" in m else "")
