"""``ncli embed``: per-bin latent embeddings of population activity (PCA, FA).

For every session: counts -> optional square root -> optional Gaussian
smoothing (over valid bins) -> fit on valid bins -> latents for every valid
bin. Writes a layer with ``sessions/<sid>/latents/<method>`` (T, K) float32
(NaN rows for invalid bins) and ``models/<method>/<sid>``.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import typer

from ncli import __version__
from ncli.commands._common import (finite, Debug, InputStore, NoCache, Output, Overwrite, Quiet, Seed, choice,
                                   ncli_command, open_input, write_result)
from ncli.core.errors import DataError, UsageError
from ncli.core.features import smooth as smooth_counts
from ncli.core.features import sqrt_counts
from ncli.formats.store import Store, StoreWriter

METHODS = ["pca", "fa"]


def session_features(src: Store, sid: str, *, sqrt: bool, smooth_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Preprocessed activity of one session: ``(T, N)`` features and the ``(T,)`` valid mask.

    Raises
    ------
    DataError
        The session has no binned counts.
    """
    base = f"sessions/{sid}/binned"
    if not src.exists(f"{base}/counts"):
        raise DataError(f"session '{sid}' has no binned counts", src.location,
                        hint="convert the recording with a --bin-size first")
    counts = np.asarray(src.array(f"{base}/counts")[...], dtype=np.float64)
    valid = src.read(f"{base}/valid").astype(bool) if src.exists(f"{base}/valid") else \
        np.ones(counts.shape[0], dtype=bool)
    kind = src.attrs(base).get("kind", "counts")
    X = sqrt_counts(counts) if (sqrt and kind != "calcium") else counts
    bin_size = float(src.attrs(base)["bin_size_s"])
    if smooth_s > 0 and smooth_s > 0.25 * counts.shape[0] * bin_size:
        raise UsageError(f"--smooth {smooth_s} s is longer than a quarter of session {sid} "
                         f"({counts.shape[0] * bin_size:.6g} s)", "--smooth",
                         hint="the kernel SD is in seconds, e.g. --smooth 0.05")
    if smooth_s > 0:
        X = smooth_counts(X, smooth_s, float(src.attrs(base)["bin_size_s"]), valid)
    valid = valid & np.all(np.isfinite(X), axis=1)
    return X, valid


@ncli_command("embed")
def embed(
    store: InputStore = None,
    method: Annotated[str, typer.Option("--method", help="Embedding: pca or fa.")] = "pca",
    dim: Annotated[int, typer.Option("--dim", help="Latent dimension K (<= number of units).")] = 8,
    smooth: Annotated[float, typer.Option("--smooth", help="Gaussian kernel SD (s) applied to the counts "
                                          "before fitting; 0 = none.")] = 0.0,
    sqrt: Annotated[bool, typer.Option("--sqrt/--no-sqrt", help="Square-root transform counts first.")] = True,
    seed: Seed = 0,
    output: Output = None,
    overwrite: Overwrite = False,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Fit PCA or factor analysis per session and write per-bin latents.

    Output layer: sessions/<sid>/latents/<method> (T, K) and models/<method>/<sid>.
    Prints the output store's location.
    """
    from ncli.models.factor import EMBEDDINGS

    choice(method, METHODS, "--method")
    if dim < 1:
        raise UsageError(f"--dim must be a positive integer, got {dim}", "--dim")
    finite(smooth, "--smooth", minimum=0.0)
    src = open_input(store)
    sessions = src.sessions()
    if not sessions:
        raise DataError("store has no sessions", src.location)
    for sid in sessions:
        path = f"sessions/{sid}/binned/counts"
        if src.exists(path) and dim > src.array(path).shape[1]:
            raise UsageError(f"--dim {dim} is larger than the number of units ({src.array(path).shape[1]}) "
                             f"in session '{sid}'", "--dim", hint=f"choose --dim <= {src.array(path).shape[1]}")
    features = {"sqrt": sqrt, "smooth_s": smooth, "source": "binned/counts"}
    params = {"method": method, "dim": dim, "smooth": smooth, "sqrt": sqrt, "seed": seed}

    def build(w: StoreWriter) -> None:
        summary = {}
        for sid in sessions:
            X, valid = session_features(src, sid, sqrt=sqrt, smooth_s=smooth)
            if valid.sum() < 2:
                raise DataError(f"session '{sid}' has fewer than 2 valid bins", src.location)
            model = EMBEDDINGS[method](n_components=dim, seed=seed).fit(X[valid])
            Z = np.full((X.shape[0], dim), np.nan, dtype=np.float32)
            Z[valid] = model.transform(X[valid])
            metrics = dict(model.summary(), n_bins_fitted=int(valid.sum()))
            w.array(f"sessions/{sid}/latents/{method}", Z,
                    attrs={"method": method, "model": f"models/{method}/{sid}", **features})
            model.to_group(w.group(f"models/{method}/{sid}"), metrics=metrics,
                           extra={"features": features, "session": sid})
            summary[sid] = metrics
        w.group(f"models/{method}", {"class": f"{method} embeddings (one model per session)",
                                     "config": params, "version": __version__,
                                     "metrics": summary})

    write_result("embed", parent=src, params=params, build=build, output=output,
                 overwrite=overwrite, no_cache=no_cache)
