"""Neural chunking: recurring population states as a dictionary of chunks.

Three methods, after Wu et al. (2025), each an estimator on population
activity ``X`` (T bins x N neurons or latent dimensions):

- :class:`DiscreteSequenceChunking` (DSC): each neuron's activity is
  discretised by 1-d k-means into ``n_levels`` levels, so every bin becomes a
  discrete population state; rare states are mapped to their nearest frequent
  state; then adjacent states that co-occur far more often than independence
  predicts are merged, most frequent pair first (byte-pair encoding), until no
  pair qualifies. The merges form the chunk dictionary; parsing a sequence
  applies them in order.
- :class:`PopulationAveraging` (PA): with per-bin labels, a template (the mean
  activity over a few labelled occurrences) and a stable sub-population (the
  neurons whose activity differs from background by a large effect size, with
  the same sign in most occurrences) per label; a bin is detected as the chunk
  when its normalised deviation from the template on the sub-population is
  below ``tolerance`` times a threshold taken from the training deviations.
- :class:`UnsupervisedChunkDiscovery` (UCD): without labels, chunk prototypes
  are learned as unit vectors maximising the cosine similarity to the bins
  assigned to them (spherical k-means on standardised activity). Bins whose
  best similarity is below ``min_similarity`` belong to no chunk; prototypes
  that end up with too few bins, or duplicate another, are re-seeded at the
  densest unexplained bin (dead-prototype handling).

Labels everywhere are ``int`` per bin: the chunk index, ``-1`` for none.

References
----------
Wu, S., Alaniz, S., Karthik, S., Dayan, P., Schulz, E. & Akata, Z. (2025).
Concept-guided interpretability via neural chunking. NeurIPS 2025
(arXiv:2505.11576), section 3: DSC (3.1), PA (3.2), UCD (3.3).
Sennrich, R., Haddow, B. & Birch, A. (2016). Neural machine translation of
rare words with subword units. ACL (byte-pair encoding).
Dhillon, I. S. & Modha, D. S. (2001). Concept decompositions for large sparse
text data using clustering. Machine Learning 42, 143-175 (spherical k-means).
"""

from __future__ import annotations

import numpy as np

from ncli.core.errors import DataError, ParameterDataError
from ncli.models.base import Estimator, check_array, check_fitted, check_params

#: Tolerances of the PA detection sweep (multiples of the per-chunk threshold).
TOLERANCES = np.concatenate([np.linspace(0.0, 4.0, 81), [np.inf]])


def _standardise(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and SD (SD 1 for constant columns) of ``X`` (T, N)."""
    mean = X.mean(axis=0)
    sd = X.std(axis=0)
    sd[~(sd > 1e-12)] = 1.0
    return mean, sd


def occurrences(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """Contiguous runs of one non-negative label.

    Parameters
    ----------
    labels : (T,) int
        Per-bin labels (-1: none).

    Returns
    -------
    list of (start, stop, label)
        ``stop`` exclusive, in time order.
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        return []
    change = np.flatnonzero(np.diff(labels) != 0) + 1
    starts = np.r_[0, change]
    stops = np.r_[change, labels.size]
    return [(int(a), int(b), int(labels[a])) for a, b in zip(starts, stops) if labels[a] >= 0]


def detection_metrics(scores: np.ndarray, labels: np.ndarray, tolerance: float,
                      tolerances: np.ndarray = TOLERANCES) -> dict:
    """TPR, FPR and AUC of threshold detection, per chunk and over a tolerance sweep.

    Bin ``t`` is detected as chunk ``k`` when ``scores[t, k] <= tolerance``;
    positives of chunk ``k`` are the bins labelled ``k``, negatives all other
    bins (background and other chunks).

    Parameters
    ----------
    scores : (T, K) float
        Normalised deviation of each bin from each chunk (lower = closer).
    labels : (T,) int
        True chunk per bin (-1 none).
    tolerance : float
        Operating point reported as ``tpr``/``fpr``.
    tolerances : (M,) float
        The sweep.

    Returns
    -------
    dict
        ``tpr``, ``fpr``, ``auc`` (K,) lists (NaN where a chunk has no
        positive or no negative bin), ``sweep_tpr``/``sweep_fpr`` (K, M) arrays,
        ``n_pos`` (K,), and the means over chunks ``tpr_mean``, ``fpr_mean``,
        ``auc_mean``.
    """
    from sklearn.metrics import roc_auc_score

    K = scores.shape[1]
    M = len(tolerances)
    tpr, fpr, auc, n_pos = np.full(K, np.nan), np.full(K, np.nan), np.full(K, np.nan), np.zeros(K, int)
    sw_t, sw_f = np.full((K, M), np.nan), np.full((K, M), np.nan)
    for k in range(K):
        pos = labels == k
        neg = ~pos
        n_pos[k] = int(pos.sum())
        if not pos.any() or not neg.any():
            continue
        s = scores[:, k]
        det = s[:, None] <= tolerances[None, :]
        sw_t[k] = det[pos].mean(axis=0)
        sw_f[k] = det[neg].mean(axis=0)
        tpr[k] = float(np.mean(s[pos] <= tolerance))
        fpr[k] = float(np.mean(s[neg] <= tolerance))
        finite = np.where(np.isfinite(s), s, np.nanmax(s[np.isfinite(s)]) + 1 if np.isfinite(s).any() else 0)
        auc[k] = float(roc_auc_score(pos, -finite))

    def _mean(v):
        return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")

    return {"tpr": tpr.tolist(), "fpr": fpr.tolist(), "auc": auc.tolist(), "n_pos": n_pos.tolist(),
            "sweep_tpr": sw_t, "sweep_fpr": sw_f, "tpr_mean": _mean(tpr), "fpr_mean": _mean(fpr),
            "auc_mean": _mean(auc)}


# ----------------------------------------------------------------------------- PA


class PopulationAveraging(Estimator):
    """Population averaging (PA): a template and a stable sub-population per label.

    For label ``k`` with training bins ``B_k`` (its occurrences, at most
    ``max_occurrences`` of them) and background bins ``B_0`` (label -1; the
    bins of other labels when there is no background):

    - template ``m_k = mean_{t in B_k} x_t`` and within-label SD ``s_k``;
    - effect size ``d_{k,i} = (m_{k,i} - m_{0,i}) / sqrt((s_{k,i}² + s_{0,i}²)/2)``
      and consistency ``c_{k,i}``: the fraction of occurrences whose mean has
      the sign of ``d_{k,i}`` relative to ``m_{0,i}``;
    - sub-population ``S_k = {i : |d_{k,i}| >= min_effect and c_{k,i} >= min_consistency}``
      (at least ``min_members`` neurons: the best by ``|d| c`` fill it up);
    - deviation ``D_k(t) = sqrt(mean_{i in S_k} ((x_{t,i} - m_{k,i}) / s_{k,i})²)``
      and threshold ``τ_k`` = the ``quantile`` of a normal distribution fitted
      to ``D_k`` over ``B_k`` (mean + z_q SD; it extrapolates from few occurrences).

    Bin ``t`` is detected as chunk ``k`` when ``D_k(t) / τ_k <= tolerance``.

    Parameters
    ----------
    min_effect : float
        Smallest |effect size| of a sub-population member.
    min_consistency : float
        Smallest fraction of occurrences with the template's sign.
    min_members : int
        Smallest sub-population.
    quantile : float
        Quantile of the training deviations used as threshold, in (0, 1].
    tolerance : float
        Operating point (multiple of the threshold).
    max_occurrences : int or None
        Use only the first occurrences of each label for the template (a "few").

    Attributes
    ----------
    templates_ : (K, N) float64
        Mean activity per label (input units).
    spread_ : (K, N) float64
        Within-label SD (floored).
    background_ : (N,) float64
        Mean background activity.
    effect_ : (K, N) float64
    consistency_ : (K, N) float64
    members_ : (K, N) bool
        Stable sub-population per label.
    thresholds_ : (K,) float64
        ``τ_k``.
    n_occurrences_ : (K,) int64
        Occurrences used per label.

    References
    ----------
    Wu et al. (2025), NeurIPS, section 3.2 (population averaging).
    """

    model_id = "ncli/chunk-pa@1"
    _learned = ("templates_", "spread_", "background_", "effect_", "consistency_", "members_",
                "thresholds_", "n_occurrences_")

    def __init__(self, min_effect: float = 0.5, min_consistency: float = 0.8, min_members: int = 3,
                 quantile: float = 0.99, tolerance: float = 1.0, max_occurrences: int | None = None):
        self.min_effect = min_effect
        self.min_consistency = min_consistency
        self.min_members = min_members
        self.quantile = quantile
        self.tolerance = tolerance
        self.max_occurrences = max_occurrences
        for name in self._learned:
            setattr(self, name, None)

    def fit(self, X, labels, n_labels: int | None = None) -> "PopulationAveraging":
        """Learn templates, sub-populations and thresholds.

        Parameters
        ----------
        X : (T, N) array
            Training activity.
        labels : (T,) int
            Label per bin (-1 none).
        n_labels : int, optional
            K (default ``max(labels) + 1``).

        Returns
        -------
        self

        Raises
        ------
        DataError
            Shapes differ, or a label has no training bin, or no bin is unlabelled
            and there is a single label.
        UsageError
            Invalid hyperparameters.
        """
        check_params([
            (self.min_effect >= 0, f"{{min_effect}} must be >= 0, got {self.min_effect}", "min_effect"),
            (0 <= self.min_consistency <= 1, f"{{min_consistency}} must be in [0, 1], got {self.min_consistency}",
             "min_consistency"),
            (0 < self.quantile <= 1, f"{{quantile}} must be in (0, 1], got {self.quantile}", "quantile"),
            (self.min_members >= 1, f"{{min_members}} must be at least 1, got {self.min_members}", "min_members"),
            (self.max_occurrences is None or self.max_occurrences >= 2,
             f"{{max_occurrences}} must be at least 2, got {self.max_occurrences}", "max_occurrences"),
        ])
        X = check_array(X, "X", min_samples=2)
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != (X.shape[0],):
            raise DataError(f"labels have shape {labels.shape}, expected ({X.shape[0]},)")
        K = int(n_labels if n_labels is not None else labels.max() + 1)
        if K < 1:
            raise DataError("no labelled bin in the training data")
        N = X.shape[1]
        runs = occurrences(labels)
        tmpl, spread, eff, cons = (np.zeros((K, N)) for _ in range(4))
        members = np.zeros((K, N), dtype=bool)
        thr = np.zeros(K)
        n_occ = np.zeros(K, dtype=np.int64)
        bg_mask = labels < 0
        _, sd_all = _standardise(X)
        floor = 0.1 * sd_all
        for k in range(K):
            occ = [(a, b) for a, b, lab in runs if lab == k]
            if self.max_occurrences is not None:
                occ = occ[: int(self.max_occurrences)]
            if not occ:
                raise ParameterDataError(f"label {k} has no occurrence in the training bins",
                                         hint="use a smaller {test_fraction} or check {labels}")
            n_occ[k] = len(occ)
            idx = np.concatenate([np.arange(a, b) for a, b in occ])
            bg = bg_mask if bg_mask.any() else (labels != k)
            if not bg.any():
                raise DataError("every training bin carries the same label; PA needs other bins to compare")
            Xk, X0 = X[idx], X[bg]
            m_k, m_0 = Xk.mean(0), X0.mean(0)
            s_k = np.maximum(Xk.std(0), floor)
            s_0 = np.maximum(X0.std(0), floor)
            d = (m_k - m_0) / np.sqrt((s_k**2 + s_0**2) / 2)
            occ_means = np.array([X[a:b].mean(0) for a, b in occ])
            c = np.mean(np.sign(occ_means - m_0) == np.sign(d), axis=0)
            se = np.sqrt(1.0 / len(idx) + 1.0 / int(bg.sum()))  # standard error of a standardised difference
            mem = (np.abs(d) >= max(self.min_effect, 3.0 * se)) & (c >= self.min_consistency)
            if mem.sum() < self.min_members:
                order = np.argsort(-(np.abs(d) * c), kind="stable")
                mem[order[: min(int(self.min_members), N)]] = True
            tmpl[k], spread[k], eff[k], cons[k], members[k] = m_k, s_0, d, c, mem
            dev = self._deviation(Xk, m_k, s_0, mem)
            thr[k] = self._threshold(dev)
        self.templates_, self.spread_, self.effect_, self.consistency_ = tmpl, spread, eff, cons
        self.members_, self.thresholds_, self.n_occurrences_ = members, thr, n_occ
        self.background_ = X[bg_mask].mean(0) if bg_mask.any() else X.mean(0)
        return self

    def _threshold(self, dev: np.ndarray) -> float:
        """``τ``: the ``quantile`` of a normal fitted to the training deviations (their maximum for 1).

        A fitted quantile extrapolates from the few deviations of a few occurrences,
        where the empirical quantile would sit at their maximum.
        """
        from scipy.stats import norm

        if self.quantile >= 1:
            return max(float(dev.max()), 1e-12)
        sd = float(dev.std(ddof=1)) if dev.size > 1 else 0.0
        return max(float(dev.mean() + norm.ppf(self.quantile) * sd), float(np.median(dev)), 1e-12)

    @staticmethod
    def _deviation(X: np.ndarray, m: np.ndarray, s: np.ndarray, mem: np.ndarray) -> np.ndarray:
        z = (X[:, mem] - m[mem]) / s[mem]
        return np.sqrt(np.mean(z**2, axis=1))

    def score(self, X) -> np.ndarray:
        """Normalised deviation ``D_k(t) / τ_k`` of every bin from every chunk.

        Parameters
        ----------
        X : (T, N) array

        Returns
        -------
        (T, K) float64
            Lower is closer; ``<= tolerance`` means detected.

        Raises
        ------
        NotFittedError, DataError
        """
        check_fitted(self)
        X = check_array(X, "X", n_features=self.templates_.shape[1])
        K = self.templates_.shape[0]
        out = np.empty((X.shape[0], K))
        for k in range(K):
            out[:, k] = self._deviation(X, self.templates_[k], self.spread_[k],
                                        np.asarray(self.members_[k], bool)) / self.thresholds_[k]
        return out

    def predict(self, X, tolerance: float | None = None) -> np.ndarray:
        """Chunk per bin: the closest detected chunk, -1 when none is within tolerance.

        Parameters
        ----------
        X : (T, N) array
        tolerance : float, optional
            Default: the model's ``tolerance``.

        Returns
        -------
        (T,) int64
        """
        s = self.score(X)
        tol = self.tolerance if tolerance is None else tolerance
        best = np.argmin(s, axis=1)
        return np.where(s[np.arange(len(s)), best] <= tol, best, -1).astype(np.int64)


# ----------------------------------------------------------------------------- UCD


class UnsupervisedChunkDiscovery(Estimator):
    """Unsupervised chunk discovery (UCD): spherical k-means prototypes with a "none" class.

    Each bin is standardised per column (training mean and SD) and scaled to
    unit norm, ``u_t``. Prototypes ``p_k`` (unit vectors) alternate between

    - assignment: ``k(t) = argmax_k u_t·p_k`` when that cosine similarity is at
      least ``min_similarity``, else no chunk;
    - update: ``p_k ∝ Σ_{t: k(t)=k} u_t`` (the maximiser of the summed cosine).

    Seeds are the densest bins of a subsample (the bin with the most
    neighbours above ``min_similarity``, then the densest bin not already
    covered). A prototype left with fewer than ``min_count`` bins, or with
    cosine above ``merge_similarity`` to another prototype (a split chunk), is
    dead and is re-seeded at the densest bin no prototype explains (at most
    ``10·K`` re-seeds; a prototype still dead then keeps few or no bins).

    Parameters
    ----------
    n_chunks : int
        K prototypes.
    min_similarity : float
        Smallest cosine similarity of a bin to its chunk, in [0, 1).
    merge_similarity : float
        Two prototypes more similar than this are one chunk: the second is re-seeded.
    min_count : int or None
        Fewest bins of a live prototype (default ``max(3, T/1000)``).
    max_iter : int
    seed : int
        Subsample draw for seeding.

    Attributes
    ----------
    prototypes_ : (K, N) float64
        Unit prototypes in standardised units.
    templates_ : (K, N) float64
        Mean activity of each chunk's bins (input units).
    members_ : (K, N) bool
        Columns whose prototype weight is at least 0.3 of the largest.
    mean_, scale_ : (N,) float64
        Standardisation.
    counts_ : (K,) int64
        Training bins per chunk.
    n_reseeds_ : int
        Dead prototypes re-seeded.

    References
    ----------
    Wu et al. (2025), NeurIPS, section 3.3 (unsupervised chunk discovery);
    Dhillon & Modha (2001) (spherical k-means).
    """

    model_id = "ncli/chunk-ucd@1"
    _learned = ("prototypes_", "templates_", "members_", "mean_", "scale_", "counts_")
    _learned_scalars = ("n_reseeds_", "n_iter_")

    def __init__(self, n_chunks: int = 5, min_similarity: float = 0.25, merge_similarity: float = 0.7,
                 min_count: int | None = None, max_iter: int = 100, seed: int = 0):
        self.n_chunks = n_chunks
        self.min_similarity = min_similarity
        self.merge_similarity = merge_similarity
        self.min_count = min_count
        self.max_iter = max_iter
        self.seed = seed
        for name in self._learned:
            setattr(self, name, None)
        self.n_reseeds_ = 0
        self.n_iter_ = 0

    def _unit(self, X: np.ndarray) -> np.ndarray:
        Z = (X - self.mean_) / self.scale_
        norm = np.linalg.norm(Z, axis=1, keepdims=True)
        return np.divide(Z, norm, out=np.zeros_like(Z), where=norm > 0)

    def _density(self, U: np.ndarray, pool: np.ndarray) -> np.ndarray:
        """Neighbours above ``min_similarity`` of each bin in ``pool`` (indices into U)."""
        S = U[pool] @ U[pool].T
        return (S >= max(self.min_similarity, 1e-6)).sum(1) - 1

    def fit(self, X) -> "UnsupervisedChunkDiscovery":
        """Learn the prototypes.

        Parameters
        ----------
        X : (T, N) array
            Training activity (no NaN).

        Returns
        -------
        self

        Raises
        ------
        DataError
            Fewer bins than prototypes.
        UsageError
            Invalid hyperparameters.
        """
        check_params([
            (self.n_chunks >= 1, f"{{n_chunks}} must be at least 1, got {self.n_chunks}", "n_chunks"),
            (0 <= self.min_similarity < 1, f"{{min_similarity}} must be in [0, 1), got {self.min_similarity}",
             "min_similarity"),
            (0 < self.merge_similarity <= 1, f"{{merge_similarity}} must be in (0, 1], got {self.merge_similarity}",
             "merge_similarity"),
            (self.max_iter >= 1, f"{{max_iter}} must be at least 1, got {self.max_iter}", "max_iter"),
        ])
        X = check_array(X, "X", min_samples=max(2, int(self.n_chunks)))
        T, N = X.shape
        K = int(self.n_chunks)
        self.mean_, self.scale_ = _standardise(X)
        U = self._unit(X)
        min_count = int(self.min_count) if self.min_count is not None else max(3, T // 1000)
        rng = np.random.default_rng([int(self.seed), 70])
        pool = np.sort(rng.choice(T, size=min(T, 3000), replace=False))
        Up = U[pool]
        dens = self._density(U, pool).astype(float)
        thr = max(self.min_similarity, 1e-6)

        def seed_at(covered: np.ndarray) -> np.ndarray:
            cand = np.where(covered, -1.0, dens)
            j = int(np.argmax(cand)) if (cand >= 0).any() else int(rng.integers(len(pool)))
            return Up[j].copy()

        P = np.zeros((K, N))
        covered = np.zeros(len(pool), dtype=bool)
        for k in range(K):
            P[k] = seed_at(covered)
            covered |= Up @ P[k] >= thr
        reseeds, assign = 0, None
        it = 0
        for it in range(1, int(self.max_iter) + 1):
            S = U @ P.T
            best = np.argmax(S, axis=1)
            new = np.where(S[np.arange(T), best] >= thr, best, -1)
            counts = np.bincount(new[new >= 0], minlength=K)
            dead = [k for k in range(K) if counts[k] < min_count]
            for a in range(K):
                for b in range(a + 1, K):
                    if b not in dead and a not in dead and P[a] @ P[b] > self.merge_similarity:
                        dead.append(b)
            if dead and reseeds < 10 * K:
                explained = (Up @ P.T).max(1) >= thr
                for k in dead:
                    P[k] = seed_at(explained)
                    explained |= Up @ P[k] >= thr
                    reseeds += 1
                assign = None
                continue
            if assign is not None and np.array_equal(new, assign):
                break
            assign = new
            for k in range(K):
                v = U[assign == k].sum(0)
                nv = np.linalg.norm(v)
                if nv > 0:
                    P[k] = v / nv
        S = U @ P.T
        best = np.argmax(S, axis=1)
        assign = np.where(S[np.arange(T), best] >= thr, best, -1)
        self.prototypes_ = P
        self.counts_ = np.bincount(assign[assign >= 0], minlength=K).astype(np.int64)
        self.templates_ = np.array([X[assign == k].mean(0) if self.counts_[k] else np.full(N, np.nan)
                                    for k in range(K)])
        amax = np.abs(P).max(1, keepdims=True)
        self.members_ = np.abs(P) >= 0.3 * np.where(amax > 0, amax, 1.0)
        self.n_reseeds_, self.n_iter_ = int(reseeds), int(it)
        return self

    def similarity(self, X) -> np.ndarray:
        """Cosine similarity of every bin to every prototype.

        Parameters
        ----------
        X : (T, N) array

        Returns
        -------
        (T, K) float64

        Raises
        ------
        NotFittedError, DataError
        """
        check_fitted(self)
        X = check_array(X, "X", n_features=self.prototypes_.shape[1])
        return self._unit(X) @ self.prototypes_.T

    def predict(self, X) -> np.ndarray:
        """Chunk per bin (-1 below ``min_similarity``).

        Parameters
        ----------
        X : (T, N) array

        Returns
        -------
        (T,) int64
        """
        S = self.similarity(X)
        best = np.argmax(S, axis=1)
        return np.where(S[np.arange(len(S)), best] >= max(self.min_similarity, 1e-6), best, -1).astype(np.int64)


# ----------------------------------------------------------------------------- DSC


def _merge(tokens: np.ndarray, a: int, b: int, new: int) -> np.ndarray:
    """Replace non-overlapping adjacent pairs ``(a, b)`` (left to right) by ``new``."""
    hits = np.flatnonzero((tokens[:-1] == a) & (tokens[1:] == b))
    if hits.size == 0:
        return tokens
    if a == b:  # runs "aaa": keep the left-most of overlapping hits
        keep, last = [], -2
        for h in hits.tolist():
            if h > last + 1:
                keep.append(h)
                last = h
        hits = np.asarray(keep)
    out = tokens.copy()
    out[hits] = new
    drop = np.zeros(len(tokens), dtype=bool)
    drop[hits + 1] = True
    return out[~drop]


class DiscreteSequenceChunking(Estimator):
    """Discrete sequence chunking (DSC): population states, then BPE-style merging.

    1. Per-neuron discretisation: 1-d k-means (scikit-learn ``KMeans``) with
       ``n_levels`` clusters on each column; a value gets the level of the
       nearest sorted centre (cut points halfway between centres).
    2. Population states: each bin's tuple of levels. Going through the tuples
       from the most frequent, a tuple seen at least ``min_state_count`` times
       becomes a state unless it lies within ``state_radius · N`` (Hamming
       distance on levels) of a state already chosen, a noisy copy of it (at
       most ``max_states`` states); every bin is then mapped to the nearest
       state (ties to the more frequent).
    3. Chunking: on the token sequence (initially the states), the adjacent
       pair ``(a, b)`` with the most occurrences ``n_ab`` among those with
       ``n_ab >= min_count``, ``n_ab / e_ab >= min_ratio`` and
       ``(n_ab - e_ab)/sqrt(e_ab) >= min_z`` (``e_ab = n_a n_b / L``, the count
       expected if tokens were independent) is replaced by a new token, until
       no pair qualifies or ``max_chunks`` merges are made.

    Parsing a sequence applies the merges in the order they were learned.

    Parameters
    ----------
    n_levels : int
        Levels per neuron (>= 2).
    min_state_count : int
        Fewest bins of a state.
    state_radius : float
        Tuples within this fraction of N (Hamming) of a more frequent state merge into it.
    max_states : int
    min_count : int
    min_ratio : float
    min_z : float
    max_chunks : int
    seed : int
        KMeans initialisation.

    Attributes
    ----------
    cuts_ : (N, n_levels - 1) float64
        Cut points between levels (input units; NaN where a column has fewer levels).
    states_ : (S, N) int8
        Level tuple of each state.
    state_counts_ : (S,) int64
        Training bins per state (after mapping).
    merges_ : (M, 3) int64
        ``(a, b, new)`` token ids; ids ``< S`` are states.
    chunk_states_ : (M, L_max) int64
        Expansion of each chunk into states (padded with -1).
    lengths_ : (M,) int64
    templates_ : (M, N) float64
        Mean activity of the training bins parsed into each chunk (NaN if none).
    members_ : (M, N) bool
        Neurons above their lowest level in at least one state of the chunk.
    counts_ : (M,) int64
        Occurrences of each chunk in the parse of the training sequence.

    References
    ----------
    Wu et al. (2025), NeurIPS, section 3.1 (discrete sequence chunking);
    Sennrich et al. (2016) (byte-pair encoding).
    """

    model_id = "ncli/chunk-dsc@1"
    _learned = ("cuts_", "states_", "state_counts_", "merges_", "chunk_states_", "lengths_", "templates_",
                "members_", "counts_")

    def __init__(self, n_levels: int = 2, min_state_count: int = 5, state_radius: float = 0.1,
                 max_states: int = 64, min_count: int = 5, min_ratio: float = 2.0, min_z: float = 5.0,
                 max_chunks: int = 50, seed: int = 0):
        self.n_levels = n_levels
        self.min_state_count = min_state_count
        self.state_radius = state_radius
        self.max_states = max_states
        self.min_count = min_count
        self.min_ratio = min_ratio
        self.min_z = min_z
        self.max_chunks = max_chunks
        self.seed = seed
        for name in self._learned:
            setattr(self, name, None)

    # -- discretisation
    def _levels(self, X: np.ndarray) -> np.ndarray:
        L = np.zeros(X.shape, dtype=np.int8)
        for i in range(X.shape[1]):
            c = self.cuts_[i]
            c = c[np.isfinite(c)]
            L[:, i] = np.searchsorted(c, X[:, i], side="right")
        return L

    def _map_states(self, L: np.ndarray) -> np.ndarray:
        """State index of each level tuple (exact match, else nearest state)."""
        S = np.asarray(self.states_, dtype=np.int16)
        out = np.empty(len(L), dtype=np.int64)
        for lo in range(0, len(L), 4096):
            block = L[lo : lo + 4096].astype(np.int16)
            dist = (block[:, None, :] != S[None, :, :]).sum(2)
            # ties go to the more frequent state (states are sorted by training frequency)
            out[lo : lo + 4096] = np.argmin(dist, axis=1)
        return out

    def states(self, X) -> np.ndarray:
        """Population state per bin.

        Parameters
        ----------
        X : (T, N) array

        Returns
        -------
        (T,) int64
            State index (row of ``states_``).

        Raises
        ------
        NotFittedError, DataError
        """
        check_fitted(self)
        X = check_array(X, "X", n_features=self.cuts_.shape[0])
        return self._map_states(self._levels(X))

    def fit(self, X) -> "DiscreteSequenceChunking":
        """Discretise, find the states and learn the merges.

        Parameters
        ----------
        X : (T, N) array
            Training activity, bins in time order.

        Returns
        -------
        self

        Raises
        ------
        DataError
            Too few bins, or no tuple recurs ``min_state_count`` times.
        UsageError
            Invalid hyperparameters.
        """
        from sklearn.cluster import KMeans
        from threadpoolctl import threadpool_limits

        check_params([
            (self.n_levels >= 2, f"{{n_levels}} must be at least 2, got {self.n_levels}", "n_levels"),
            (self.n_levels <= 127, f"{{n_levels}} must be at most 127 (levels are int8), got {self.n_levels}",
             "n_levels"),
            (self.min_state_count >= 1, f"{{min_state_count}} must be at least 1, got {self.min_state_count}",
             "min_state_count"),
            (0 <= self.state_radius < 1, f"{{state_radius}} must be in [0, 1), got {self.state_radius}",
             "state_radius"),
            (self.max_states >= 1, f"{{max_states}} must be at least 1, got {self.max_states}", "max_states"),
            (self.min_count >= 2, f"{{min_count}} must be at least 2, got {self.min_count}", "min_count"),
            (self.min_ratio >= 1, f"{{min_ratio}} must be >= 1, got {self.min_ratio}", "min_ratio"),
            (self.max_chunks >= 0, f"{{max_chunks}} must be >= 0, got {self.max_chunks}", "max_chunks"),
        ])
        X = check_array(X, "X", min_samples=4)
        T, N = X.shape
        cuts = np.full((N, int(self.n_levels) - 1), np.nan)
        for i in range(N):
            col = X[:, i]
            distinct = np.unique(col)
            n = min(int(self.n_levels), distinct.size)
            if n < 2:
                continue
            if distinct.size <= int(self.n_levels):
                centres = distinct
            else:  # k-means on the distinct values weighted by their counts (same objective, fewer points)
                values, weight = np.unique(col, return_counts=True)
                with threadpool_limits(1):
                    km = KMeans(n_clusters=n, n_init=3, random_state=int(self.seed)).fit(
                        values[:, None], sample_weight=weight)
                centres = np.sort(km.cluster_centers_.ravel())
            cuts[i, : n - 1] = (centres[:-1] + centres[1:]) / 2
        self.cuts_ = cuts
        L = self._levels(X)
        tuples, inverse, counts = np.unique(L, axis=0, return_inverse=True, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        radius = self.state_radius * N
        keep: list[int] = []
        for j in order:
            if counts[j] < self.min_state_count or len(keep) >= int(self.max_states):
                break
            if all(np.sum(tuples[j] != tuples[q]) > radius for q in keep):
                keep.append(int(j))
        if not keep:
            raise ParameterDataError(f"no population state recurs {self.min_state_count} times in {T} bins",
                                     hint="use fewer {n_levels}, a lower {min_state_count}, or low-dimensional "
                                          "latents")
        self.states_ = tuples[keep].astype(np.int8)
        states = self._map_states(L)
        S = len(keep)
        self.state_counts_ = np.bincount(states, minlength=S).astype(np.int64)

        tokens = states.copy()
        merges: list[tuple[int, int, int]] = []
        expansions: dict[int, tuple[int, ...]] = {s: (s,) for s in range(S)}
        next_id = S
        while len(merges) < int(self.max_chunks) and len(tokens) > 1:
            Ltok = len(tokens)
            V = next_id
            codes = tokens[:-1] * V + tokens[1:]
            pair, n_ab = np.unique(codes, return_counts=True)
            n_tok = np.bincount(tokens, minlength=V).astype(float)
            a, b = pair // V, pair % V
            e = n_tok[a] * n_tok[b] / Ltok
            z = (n_ab - e) / np.sqrt(np.maximum(e, 1e-12))
            ok = (n_ab >= self.min_count) & (n_ab >= self.min_ratio * e) & (z >= self.min_z)
            if not ok.any():
                break
            cand = np.flatnonzero(ok)
            j = cand[np.lexsort((-z[cand], -n_ab[cand]))[0]]
            a_j, b_j = int(a[j]), int(b[j])
            tokens = _merge(tokens, a_j, b_j, next_id)
            merges.append((a_j, b_j, next_id))
            expansions[next_id] = expansions[a_j] + expansions[b_j]
            next_id += 1
        M = len(merges)
        self.merges_ = np.asarray(merges, dtype=np.int64).reshape(M, 3)
        Lmax = max([len(expansions[S + m]) for m in range(M)] or [0])
        cs = np.full((M, Lmax), -1, dtype=np.int64)
        for m in range(M):
            e_ = expansions[S + m]
            cs[m, : len(e_)] = e_
        self.chunk_states_ = cs
        self.lengths_ = np.array([len(expansions[S + m]) for m in range(M)], dtype=np.int64)
        labels, _ = self._labels_from_tokens(tokens, T)
        self.counts_ = np.bincount(tokens[tokens >= S] - S, minlength=M).astype(np.int64) if M else \
            np.zeros(0, dtype=np.int64)
        self.templates_ = np.array([X[labels == m].mean(0) if (labels == m).any() else np.full(N, np.nan)
                                    for m in range(M)]).reshape(M, N)
        mem = np.zeros((M, N), dtype=bool)
        for m in range(M):
            mem[m] = (self.states_[cs[m, : self.lengths_[m]]] > 0).any(0)
        self.members_ = mem
        return self

    def _labels_from_tokens(self, tokens: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray]:
        S = self.states_.shape[0]
        lengths = np.where(tokens >= S, self.lengths_[np.maximum(tokens - S, 0)] if len(self.lengths_) else 1, 1)
        starts = np.r_[0, np.cumsum(lengths)[:-1]]
        if int(lengths.sum()) != T:  # pragma: no cover - internal consistency
            raise RuntimeError("parse does not cover the sequence")
        labels = np.repeat(np.where(tokens >= S, tokens - S, -1), lengths)
        return labels.astype(np.int64), starts.astype(np.int64)

    def parse(self, X) -> dict:
        """Parse a sequence with the learned dictionary.

        Parameters
        ----------
        X : (T, N) array
            Bins in time order.

        Returns
        -------
        dict
            ``tokens`` (P,) token ids (``< S``: single states; ``S + m``: chunk
            ``m``), ``starts`` (P,) first bin of each token, ``labels`` (T,)
            chunk per bin (-1 for bins parsed as single states), ``states`` (T,).

        Raises
        ------
        NotFittedError, DataError
        """
        states = self.states(X)
        tokens = states.copy()
        for a, b, new in np.asarray(self.merges_, dtype=np.int64).reshape(-1, 3):
            tokens = _merge(tokens, int(a), int(b), int(new))
        labels, starts = self._labels_from_tokens(tokens, len(states))
        return {"tokens": tokens, "starts": starts, "labels": labels, "states": states}

    def predict(self, X) -> np.ndarray:
        """Chunk per bin (-1 for single states); see :meth:`parse`."""
        return self.parse(X)["labels"]


# ----------------------------------------------------------------------------- controls and summaries


def shift_columns(X: np.ndarray, seed: int) -> np.ndarray:
    """Shuffle control: each column circularly shifted by its own random offset.

    Keeps every neuron's activity statistics and autocorrelation but breaks the
    coordination between neurons, so population chunks recur only by chance.

    Parameters
    ----------
    X : (T, N) array
    seed : int

    Returns
    -------
    (T, N) array
        A shifted copy (offsets uniform in [T/10, 9T/10]).
    """
    rng = np.random.default_rng([int(seed), 71])
    T = X.shape[0]
    out = np.empty_like(X)
    lo, hi = max(1, T // 10), max(2, (9 * T) // 10)
    for i in range(X.shape[1]):
        out[:, i] = np.roll(X[:, i], int(rng.integers(lo, hi)))
    return out


def shift_labels(labels: np.ndarray, seed: int) -> np.ndarray:
    """Shuffle control for labels: circular shift by a random offset in [T/4, 3T/4].

    Parameters
    ----------
    labels : (T,) int
    seed : int

    Returns
    -------
    (T,) int
    """
    rng = np.random.default_rng([int(seed), 72])
    T = len(labels)
    return np.roll(labels, int(rng.integers(max(1, T // 4), max(2, (3 * T) // 4))))


def recurrence_ucd(model: UnsupervisedChunkDiscovery, X: np.ndarray) -> dict:
    """How strongly held-out bins recur as learned chunks.

    Parameters
    ----------
    model : fitted UnsupervisedChunkDiscovery
    X : (T, N) array
        Held-out bins.

    Returns
    -------
    dict
        ``coverage`` (fraction of bins assigned to a chunk), ``mean_similarity``
        (mean best cosine similarity over all bins), ``chunk_fraction`` (K,)
        fraction of bins per chunk.
    """
    S = model.similarity(X)
    best = S.max(1)
    lab = model.predict(X)
    K = S.shape[1]
    frac = np.bincount(lab[lab >= 0], minlength=K) / max(1, len(lab))
    return {"coverage": float(np.mean(lab >= 0)), "mean_similarity": float(best.mean()),
            "chunk_fraction": frac.tolist()}


def recurrence_dsc(model: DiscreteSequenceChunking, X: np.ndarray) -> dict:
    """How much the learned dictionary compresses a sequence.

    Parameters
    ----------
    model : fitted DiscreteSequenceChunking
    X : (T, N) array
        Bins in time order.

    Returns
    -------
    dict
        ``parse_length`` (tokens), ``compression`` (``1 - parse_length / T``),
        ``chunk_bin_fraction`` (fraction of bins inside a chunk), ``n_chunks``.
    """
    p = model.parse(X)
    T = len(p["labels"])
    return {"parse_length": int(len(p["tokens"])), "compression": float(1 - len(p["tokens"]) / max(1, T)),
            "chunk_bin_fraction": float(np.mean(p["labels"] >= 0)) if T else 0.0,
            "n_chunks": int(model.merges_.shape[0])}
