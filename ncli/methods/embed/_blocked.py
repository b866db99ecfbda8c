"""PCA/FA embeddings in bounded memory: covariance accumulated over time blocks, latents written block by block.

Used by ``embed --method pca|fa`` for a session longer than one block
(:func:`ncli.formats.view.block_rows` of its units); shorter sessions keep the
whole-matrix path (recorded results unchanged). One pass sums the moments of
the preprocessed activity over usable bins (:class:`ncli.models.sufficient.Moments`);
the model is fit from the covariance (PCA: its eigenvectors; FA: EM on it); a
second pass projects each block.
"""

from __future__ import annotations

import numpy as np

from ncli.core.errors import DataError, UsageError
from ncli.formats.view import SessionView, block_rows
from ncli.models.sufficient import Moments, fa_from_moments, pca_from_moments

FIT_FROM_MOMENTS = {"pca": pca_from_moments, "fa": fa_from_moments}


def is_long(view: SessionView) -> bool:
    """True when the session's counts exceed one block (the blocked path is used)."""
    if not view.has("binned/counts"):
        return False
    return view.n_bins > block_rows(int(view.store.array(f"{view.base}/binned/counts").shape[1]))


def fit_blocked(view: SessionView, method: str, model, *, sqrt: bool, smooth_s: float):
    """Fit ``model`` (unfitted PCA/FA embedding) on a session read block by block; return it and the latents.

    Returns
    -------
    model
        Fitted.
    Z : (T, K) float32
        Latents, NaN rows for unusable bins.
    n_fitted : int
        Usable bins the model saw.

    Raises
    ------
    UsageError
        A smoothing kernel longer than a quarter of the session.
    DataError
        Fewer than 2 usable bins.
    """
    T = view.n_bins
    if smooth_s > 0 and smooth_s > 0.25 * T * view.bin_size:
        raise UsageError(f"--smooth {smooth_s} s is longer than a quarter of session {view.session} "
                         f"({T * view.bin_size:.6g} s)", "--smooth", hint="the kernel SD is in seconds, e.g. --smooth 0.05")
    N = int(view.store.array(f"{view.base}/binned/counts").shape[1])
    rows = block_rows(N)
    read = {"sqrt": sqrt, "smooth_s": smooth_s}
    m = None
    for _, X, u in view.blocks(rows, **read):
        if m is None and u.any():
            m = Moments(N, 0, X[u].mean(axis=0))
        if m is not None:
            m.add(X[u])
    if m is None or m.n < 2:
        raise DataError(f"session '{view.session}' has fewer than 2 valid bins", view.store.location)
    model = FIT_FROM_MOMENTS[method](model, m)
    Z = np.full((T, model.n_components), np.nan, dtype=np.float32)
    for s, X, u in view.blocks(rows, **read):
        if u.any():
            Z[s:s + X.shape[0]][u] = model.transform(X[u])
    return model, Z, m.n
