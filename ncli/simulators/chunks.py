"""Ground-truth generators for neural chunking (``ncli simulate chunks``).

Two generators, both saved to a store like any fitted model (their "learned"
attributes are the drawn ground truth):

- :class:`ConceptChunkSimulator` plants ``n_concepts`` concept patterns, each on
  its own random subset of ``subset_size`` neurons, in a Poisson population.
  A concept occurrence lasts a few bins; during it the member neurons fire at
  their baseline rate plus a fixed, neuron-specific extra rate (the concept's
  template), scaled by a small per-occurrence amplitude jitter. Every bin
  carries its ground-truth label (the concept index, or -1 for background).
  This is the setting of population averaging (PA) and unsupervised chunk
  discovery (UCD) in Wu et al. (2025).
- :class:`SequenceChunkSimulator` draws a sequence of discrete population
  states in which one planted chunk of ``chunk_length`` states (always in the
  same order) recurs, separated by 1-4 random filler states; each state is a
  binary on/off pattern over the population, observed through Poisson counts.
  This is the setting of discrete sequence chunking (DSC).

References
----------
Wu, S., Alaniz, S., Karthik, S., Dayan, P., Schulz, E. & Akata, Z. (2025).
Concept-guided interpretability via neural chunking. NeurIPS 2025
(arXiv:2505.11576), section 3 (the three chunking methods) and the synthetic
RNN/sequence experiments.
"""

from __future__ import annotations

import numpy as np

from ncli.models.base import Estimator, check_fitted, check_params
from ncli.models.chunking import occurrences


class ConceptChunkSimulator(Estimator):
    """Poisson population with planted concept patterns on random neuron subsets.

    Model, for bin ``t`` (width ``Δ`` s), neuron ``i`` and the concept
    ``c(t)`` active in that bin (``-1``: none)::

        λ_i(t) = b_i + a_occ · e_{c(t), i} · 1[i ∈ S_{c(t)}]      (Hz)
        n_i(t) ~ Poisson(λ_i(t) Δ)

    with baselines ``b_i ~ U(2, 10)`` Hz, member extra rates
    ``e_{k,i} ~ U(extra_rate/2, extra_rate)`` Hz on the subset ``S_k`` of
    ``subset_size`` neurons drawn at random (independently per concept, so
    subsets may overlap), and a per-occurrence amplitude ``a_occ ~ U(0.8, 1.2)``.
    Occurrences last 2-5 bins, separated by background gaps, so that about
    ``occupancy`` of all bins carry a concept; the concept of each occurrence
    is drawn uniformly.

    Parameters
    ----------
    n_units : int
        Population size N.
    n_concepts : int
        Number of planted concepts K.
    subset_size : int
        Members per concept.
    n_bins : int
        Bins T.
    bin_size : float
        Δ (s).
    extra_rate : float
        Largest extra firing rate of a member neuron during its concept (Hz).
    occupancy : float
        Target fraction of bins inside an occurrence.
    seed : int

    Attributes
    ----------
    members_ : (K, N) bool
        True sub-population of each concept.
    templates_ : (K, N) float64
        Extra rate of each neuron during each concept (Hz; 0 for non-members).
    baseline_ : (N,) float64
        Baseline rates (Hz).
    """

    model_id = "ncli/sim-chunks-concepts@1"
    _learned = ("members_", "templates_", "baseline_")

    def __init__(self, n_units: int = 200, n_concepts: int = 5, subset_size: int = 30, n_bins: int = 6000,
                 bin_size: float = 0.05, extra_rate: float = 40.0, occupancy: float = 0.3, seed: int = 0):
        self.n_units = n_units
        self.n_concepts = n_concepts
        self.subset_size = subset_size
        self.n_bins = n_bins
        self.bin_size = bin_size
        self.extra_rate = extra_rate
        self.occupancy = occupancy
        self.seed = seed
        for name in self._learned:
            setattr(self, name, None)

    def init_params(self) -> "ConceptChunkSimulator":
        """Draw the sub-populations, templates and baselines.

        Returns
        -------
        self

        Raises
        ------
        UsageError
            Invalid hyperparameters (e.g. ``subset_size > n_units``).
        """
        check_params([
            (self.n_units >= 2, f"{{n_units}} must be at least 2, got {self.n_units}", "n_units"),
            (self.n_concepts >= 1, f"{{n_concepts}} must be at least 1, got {self.n_concepts}", "n_concepts"),
            (1 <= self.subset_size <= self.n_units,
             f"{{subset_size}} must be in [1, {self.n_units}], got {self.subset_size}", "subset_size"),
            (self.n_bins >= 100, f"{{n_bins}} must be at least 100, got {self.n_bins}", "n_bins"),
            (self.bin_size > 0, f"{{bin_size}} must be > 0 s, got {self.bin_size}", "bin_size"),
            (self.extra_rate > 0, f"{{extra_rate}} must be > 0 Hz, got {self.extra_rate}", "extra_rate"),
            (0 < self.occupancy < 0.9, f"{{occupancy}} must be in (0, 0.9), got {self.occupancy}", "occupancy"),
        ])
        rng = np.random.default_rng([int(self.seed), 60])
        N, K = int(self.n_units), int(self.n_concepts)
        members = np.zeros((K, N), dtype=bool)
        templates = np.zeros((K, N))
        for k in range(K):
            idx = rng.choice(N, size=int(self.subset_size), replace=False)
            members[k, idx] = True
            templates[k, idx] = rng.uniform(self.extra_rate / 2, self.extra_rate, size=idx.size)
        self.members_, self.templates_ = members, templates
        self.baseline_ = rng.uniform(2.0, 10.0, size=N)
        return self

    def sample(self) -> dict:
        """Simulate one session.

        Returns
        -------
        dict
            ``counts`` (T, N) int32 spike counts, ``labels`` (T,) int32 true
            concept per bin (-1 background), ``occurrences`` (E, 3) int64 rows
            ``(start_bin, stop_bin, concept)`` (stop exclusive), ``bin_size`` (s).

        Raises
        ------
        NotFittedError
            Before :meth:`init_params`.
        """
        check_fitted(self)
        rng = np.random.default_rng([int(self.seed), 61])
        T, K = int(self.n_bins), int(self.n_concepts)
        labels = np.full(T, -1, dtype=np.int32)
        amp = np.ones(T)
        mean_len = 3.5
        mean_gap = mean_len * (1 - self.occupancy) / self.occupancy
        t = int(rng.integers(1, int(2 * mean_gap) + 2))
        while t < T:
            length = int(rng.integers(2, 6))
            labels[t : t + length] = int(rng.integers(K))
            amp[t : t + length] = rng.uniform(0.8, 1.2)
            t += length + max(1, int(round(rng.exponential(mean_gap))))
        rate = np.broadcast_to(self.baseline_, (T, self.baseline_.size)).copy()
        on = labels >= 0
        rate[on] += amp[on, None] * self.templates_[labels[on]]
        counts = rng.poisson(rate * self.bin_size).astype(np.int32)
        occ = np.array(occurrences(labels), dtype=np.int64).reshape(-1, 3)
        return {"counts": counts, "labels": labels, "occurrences": occ, "bin_size": float(self.bin_size)}


class SequenceChunkSimulator(Estimator):
    """A sequence of discrete population states with one planted, recurring chunk.

    ``n_states`` binary population patterns (each neuron "on" with probability
    1/2, patterns at least ``N/4`` apart in Hamming distance) are drawn. The
    state sequence repeats: the planted chunk (``chunk_length`` distinct states
    in a fixed order), then 1-4 filler states drawn uniformly from the other
    states, and so on for ``n_repeats`` chunk instances. Each state lasts one
    bin; counts are ``Poisson(r Δ)`` with ``r = on_rate`` for neurons on in the
    bin's state and ``off_rate`` otherwise.

    The ground-truth parse of the sequence has one token per chunk instance and
    one per filler bin: its length is ``n_repeats + n_filler_bins``.

    Parameters
    ----------
    n_units : int
    n_states : int
        Distinct population states (chunk + filler states).
    chunk_length : int
        States in the planted chunk.
    n_repeats : int
        Chunk instances.
    bin_size : float
        Δ (s).
    on_rate, off_rate : float
        Firing rates (Hz) of on and off neurons.
    seed : int

    Attributes
    ----------
    patterns_ : (n_states, N) bool
        On/off pattern of each state.
    chunk_ : (chunk_length,) int64
        The planted chunk as state indices, in order.
    """

    model_id = "ncli/sim-chunks-sequence@1"
    _learned = ("patterns_", "chunk_")

    def __init__(self, n_units: int = 40, n_states: int = 8, chunk_length: int = 4, n_repeats: int = 300,
                 bin_size: float = 0.1, on_rate: float = 150.0, off_rate: float = 3.0, seed: int = 0):
        self.n_units = n_units
        self.n_states = n_states
        self.chunk_length = chunk_length
        self.n_repeats = n_repeats
        self.bin_size = bin_size
        self.on_rate = on_rate
        self.off_rate = off_rate
        self.seed = seed
        for name in self._learned:
            setattr(self, name, None)

    def init_params(self) -> "SequenceChunkSimulator":
        """Draw the state patterns and the planted chunk.

        Returns
        -------
        self

        Raises
        ------
        UsageError
            Invalid hyperparameters (e.g. no filler state left).
        """
        check_params([
            (self.n_units >= 8, f"{{n_units}} must be at least 8, got {self.n_units}", "n_units"),
            (self.chunk_length >= 2, f"{{chunk_length}} must be at least 2, got {self.chunk_length}",
             "chunk_length"),
            (self.n_states >= self.chunk_length + 2,
             f"{{n_states}} must be at least {{chunk_length}} + 2, got {self.n_states}", "n_states"),
            (self.n_repeats >= 10, f"{{n_repeats}} must be at least 10, got {self.n_repeats}", "n_repeats"),
            (self.bin_size > 0, f"{{bin_size}} must be > 0 s, got {self.bin_size}", "bin_size"),
            (self.on_rate > self.off_rate >= 0, "{on_rate} must exceed {off_rate} >= 0", "on_rate"),
        ])
        rng = np.random.default_rng([int(self.seed), 62])
        N, S = int(self.n_units), int(self.n_states)
        patterns: list[np.ndarray] = []
        while len(patterns) < S:
            p = rng.random(N) < 0.5
            if all(np.sum(p != q) >= N // 4 for q in patterns):
                patterns.append(p)
        self.patterns_ = np.array(patterns)
        self.chunk_ = rng.permutation(S)[: int(self.chunk_length)].astype(np.int64)
        return self

    def sample(self) -> dict:
        """Simulate one session.

        Returns
        -------
        dict
            ``counts`` (T, N) int32, ``states`` (T,) int32 true state per bin,
            ``labels`` (T,) int32 (0 inside a planted chunk instance, -1
            elsewhere), ``chunk_start`` (n_repeats,) int64 first bin of each
            instance, ``parse_length`` (int, ground-truth parse length),
            ``bin_size`` (s).

        Raises
        ------
        NotFittedError
            Before :meth:`init_params`.
        """
        check_fitted(self)
        rng = np.random.default_rng([int(self.seed), 63])
        filler = np.setdiff1d(np.arange(int(self.n_states)), self.chunk_)
        states, labels, starts = [], [], []
        n_filler = 0
        for _ in range(int(self.n_repeats)):
            gap = int(rng.integers(1, 5))
            states.extend(rng.choice(filler, size=gap).tolist())
            labels.extend([-1] * gap)
            n_filler += gap
            starts.append(len(states))
            states.extend(self.chunk_.tolist())
            labels.extend([0] * int(self.chunk_length))
        gap = int(rng.integers(1, 5))
        states.extend(rng.choice(filler, size=gap).tolist())
        labels.extend([-1] * gap)
        n_filler += gap
        states = np.asarray(states, dtype=np.int32)
        rate = np.where(self.patterns_[states], self.on_rate, self.off_rate)
        counts = rng.poisson(rate * self.bin_size).astype(np.int32)
        return {"counts": counts, "states": states, "labels": np.asarray(labels, dtype=np.int32),
                "chunk_start": np.asarray(starts, dtype=np.int64),
                "parse_length": int(self.n_repeats) + n_filler, "bin_size": float(self.bin_size)}
