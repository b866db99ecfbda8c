"""Train/test splits for time series: blocked K-fold with a gap, and session splits.

Neighbouring time bins are correlated, and lagged features make bin ``t``
depend on bins ``t - lags .. t``. Shuffled K-fold would therefore leak test
information into training. :func:`blocked_folds` cuts the usable bins into K
contiguous blocks; each block is a test set once, and training uses the other
blocks minus ``gap`` bins on each side of the test block, so no training
sample shares a time bin with a test sample's feature window when
``gap >= lags``.

References
----------
Roberts et al. (2017) Cross-validation strategies for data with temporal,
spatial, hierarchical, or phylogenetic structure. Ecography 40, 913-929
(blocked cross-validation with buffers).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ncli.core.errors import DataError, UsageError


def contiguous_segments(index: np.ndarray) -> np.ndarray:
    """Label runs of consecutive bin indices.

    Parameters
    ----------
    index : (n,) int
        Sorted bin indices.

    Returns
    -------
    (n,) int64
        Segment label of each entry; a new segment starts wherever the index
        jumps by more than one bin.
    """
    index = np.asarray(index, dtype=np.int64)
    if index.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([[0], np.cumsum(np.diff(index) != 1)]).astype(np.int64)


def blocked_folds(usable, n_folds: int = 5, gap: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Contiguous K-fold splits of the usable time bins with a gap around each test block.

    Parameters
    ----------
    usable : (T,) bool
        Bins that may be used (valid, finite target and features).
    n_folds : int
        Number of folds K >= 2. The usable bins are split in time order into K
        blocks of (nearly) equal size.
    gap : int
        Bins removed from training on each side of a test block (>= 0); use at
        least the number of feature lags.

    Returns
    -------
    list of (train, test)
        Sorted bin indices (int64). Test blocks are disjoint, cover every usable
        bin once, and every training bin is more than ``gap`` bins away from
        the test block's first and last bin.

    Raises
    ------
    UsageError
        ``n_folds < 2`` or ``gap < 0``.
    DataError
        Fewer usable bins than folds, or a fold with no training bins left.
    """
    if n_folds < 2:
        raise UsageError(f"--folds must be at least 2, got {n_folds}", "--folds")
    if gap < 0:
        raise UsageError(f"gap must be >= 0, got {gap}")
    idx = np.flatnonzero(np.asarray(usable, dtype=bool))
    if idx.size < n_folds * 2:
        raise DataError(f"{idx.size} usable bins are too few for {n_folds} folds")
    folds = []
    for k, test in enumerate(np.array_split(idx, n_folds)):
        lo, hi = int(test[0]), int(test[-1])
        train = idx[(idx < lo - gap) | (idx > hi + gap)]
        if train.size == 0:
            raise DataError(f"fold {k + 1} has no training bins left after the gap of {gap} bins")
        folds.append((train, test))
    return folds


def cross_val_predict(
    make_model: Callable[[], object],
    X: np.ndarray,
    Y: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold predictions: fit a fresh model on each training set, predict its test block.

    Models get ``segments`` (labels of runs of consecutive bins, see
    :func:`contiguous_segments`) so that sequence models (Kalman) never pair
    bins across a gap; models that do not need them ignore them.

    Parameters
    ----------
    make_model : callable
        Returns a new unfitted model with ``fit(X, Y, segments=...)`` and
        ``predict(X, segments=...)``.
    X : (T, F) float
        Features of every bin (rows outside the folds are never read).
    Y : (T, D) float
        Targets of every bin.
    folds : list of (train, test)
        Bin indices, e.g. from :func:`blocked_folds`.

    Returns
    -------
    pred : (T, D) float64
        Predictions of each test bin, NaN elsewhere.
    fold : (T,) int64
        Fold number of each test bin, -1 elsewhere.
    """
    pred = np.full((X.shape[0], Y.shape[1]), np.nan)
    fold = np.full(X.shape[0], -1, dtype=np.int64)
    for k, (train, test) in enumerate(folds):
        model = make_model()
        model.fit(X[train], Y[train], segments=contiguous_segments(train))
        pred[test] = model.predict(X[test], segments=contiguous_segments(test))
        fold[test] = k
    return pred, fold


def session_split(sessions: Sequence[str], train: Sequence[str], test: Sequence[str]) -> tuple[list[str], list[str]]:
    """Validate a train/test split by session.

    Parameters
    ----------
    sessions : sequence of str
        Sessions in the store.
    train, test : sequence of str
        Requested training and test sessions.

    Returns
    -------
    (train, test) : lists of str

    Raises
    ------
    UsageError
        Either list empty, an unknown session, or a session in both lists.
    """
    train, test = [s for s in train if s], [s for s in test if s]
    if not train or not test:
        raise UsageError("--train-sessions and --test-sessions must be given together",
                         "--train-sessions/--test-sessions")
    unknown = [s for s in list(train) + list(test) if s not in sessions]
    if unknown:
        raise UsageError(f"unknown session '{unknown[0]}'", "--train-sessions/--test-sessions",
                         hint=f"sessions in this store: {', '.join(sessions)}")
    both = sorted(set(train) & set(test))
    if both:
        raise UsageError(f"session '{both[0]}' is in both the training and the test sessions",
                         "--train-sessions/--test-sessions")
    return list(train), list(test)
