"""``ncli embed``: per-bin latents (PCA, FA) or per-neuron embeddings (NuCLR, features).

PCA/FA, for every session: counts -> optional square root -> optional Gaussian
smoothing (over valid bins) -> fit on valid bins -> latents for every valid
bin. Writes a layer with ``sessions/<sid>/latents/<method>`` (T, K) float32
(NaN rows for invalid bins) and ``models/<method>/<sid>``.

NuCLR trains one model on all sessions (or loads it from ``--model STORE``
for zero-shot embedding) and writes ``sessions/<sid>/neurons/nuclr`` (N, K)
and ``models/nuclr``; ``features`` writes hand-crafted per-neuron features
``sessions/<sid>/neurons/features`` (N, F).
"""

from __future__ import annotations

import logging
from typing import Annotated, Optional

import numpy as np
import typer

from ncli import __version__
from ncli.commands._common import (finite, Debug, Device, InputStore, NoCache, Output, Overwrite, Quiet, Seed, choice,
                                   ncli_command, open_input, write_result)
from ncli.core.errors import DataError, UsageError
from ncli.core.features import smooth as smooth_counts
from ncli.core.features import sqrt_counts
from ncli.formats.store import Store, StoreWriter

log = logging.getLogger("ncli")

METHODS = ["pca", "fa", "nuclr", "features"]
NEURON_METHODS = ("nuclr", "features")


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
    method: Annotated[str, typer.Option("--method", help="Embedding: pca or fa (per bin); nuclr or features "
                                        "(per neuron).")] = "pca",
    dim: Annotated[Optional[int], typer.Option("--dim", help="Latent dimension K (<= number of units; default 8); "
                                               "nuclr: embedding width (default 64).",
                                               show_default=False)] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="nuclr: embed zero-shot with the model in "
                                                 "models/nuclr of this store (no training).",
                                                 show_default=False)] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="nuclr: training steps (default 2500).",
                                                 show_default=False)] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="nuclr: window pairs per training "
                                                      "step (default 8).", show_default=False)] = None,
    train_with: Annotated[Optional[list[str]], typer.Option("--train-with", help="nuclr: a further store whose "
                                                            "sessions join the training set (repeatable); only "
                                                            "STORE's sessions are embedded.",
                                                            show_default=False)] = None,
    device: Device = "cpu",
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
    """Per-bin latents (PCA, FA per session) or per-neuron embeddings (NuCLR, hand-crafted features).

    Output layer: sessions/<sid>/latents/<method> (T, K) and models/<method>/<sid>;
    nuclr/features: sessions/<sid>/neurons/<method> (N, K) and models/<method>
    (nuclr trains one model on all sessions, or embeds zero-shot with --model STORE).
    Prints the output store's location.
    """
    from ncli.models.factor import EMBEDDINGS

    choice(method, METHODS, "--method")
    if method != "nuclr":
        for name, value in (("--model", model), ("--steps", steps), ("--batch-size", batch_size),
                            ("--train-with", train_with)):
            if value is not None and value != []:
                raise UsageError(f"{name} applies to --method nuclr only", name)
    if method in NEURON_METHODS:
        return _embed_neurons(store, method=method, dim=dim, model=model, steps=steps, batch_size=batch_size,
                              train_with=train_with or [], device=device, seed=seed, output=output,
                              overwrite=overwrite, no_cache=no_cache)
    dim = 8 if dim is None else dim
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


# ----------------------------------------------------------------------------- per-neuron methods


def session_unit_counts(src: Store, sid: str, bin_size: float) -> tuple[np.ndarray, str]:
    """Counts ``(T, N)`` of one session at ``bin_size`` (s) for NuCLR.

    From ``units/spike_times`` when the session has spikes (binned over the
    session's grid, or the spike range); otherwise ``binned/counts`` summed
    over an integer number of bins.

    Raises
    ------
    DataError
        No spikes and no counts, or a count grid that cannot be rebinned to ``bin_size``.
    """
    from ncli.core.binning import Grid, bin_spikes

    base = f"sessions/{sid}"
    has_spikes = src.exists(f"{base}/units/spike_times") and src.array(f"{base}/units/spike_times").shape[0] > 0
    battrs = src.attrs(f"{base}/binned") if src.exists(f"{base}/binned") else {}
    if has_spikes:
        n = src.array(f"{base}/units/id").shape[0]
        spikes = [src.unit_spikes(sid, u) for u in range(n)]
        if "bin_size_s" in battrs and src.exists(f"{base}/binned/counts"):
            t0 = float(battrs["t_start_s"])
            t1 = t0 + src.array(f"{base}/binned/counts").shape[0] * float(battrs["bin_size_s"])
        else:
            allt = np.concatenate([s for s in spikes if s.size])
            t0, t1 = float(allt.min()), float(allt.max())
        grid = Grid(t0, bin_size, int(np.floor((t1 - t0) / bin_size + 1e-9)))
        return np.stack([bin_spikes(s, grid) for s in spikes], 1).astype(np.float32), "units/spike_times"
    if not src.exists(f"{base}/binned/counts"):
        raise DataError(f"session '{sid}' has neither spike times nor binned counts", src.location)
    counts = np.asarray(src.array(f"{base}/binned/counts")[...], dtype=np.float32)
    ratio = bin_size / float(battrs["bin_size_s"])
    k = int(round(ratio))
    if k < 1 or abs(ratio - k) > 1e-6:
        raise DataError(f"session '{sid}' is binned at {battrs['bin_size_s']} s, which does not divide the "
                        f"model's {bin_size} s bins", src.location, hint="convert with --bin-size 0.02")
    T = counts.shape[0] // k
    return counts[:T * k].reshape(T, k, -1).sum(1), "binned/counts"


def _session_duration(src: Store, sid: str) -> float:
    base = f"sessions/{sid}/binned"
    if src.exists(f"{base}/counts"):
        return src.array(f"{base}/counts").shape[0] * float(src.attrs(base)["bin_size_s"])
    return 0.0


def _embed_neurons(store, *, method, dim, model, steps, batch_size, train_with, device, seed, output, overwrite,
                   no_cache) -> None:
    """``embed --method nuclr|features``: per-neuron embeddings ``neurons/<method>`` (N, K)."""
    from ncli.core.unit_features import unit_features
    from ncli.models.nuclr import NuCLR, rankme, retrieval_top1

    src = open_input(store)
    sessions = src.sessions()
    if not sessions:
        raise DataError("store has no sessions", src.location)
    if method == "features":
        if dim is not None:
            raise UsageError("--dim does not apply to --method features (its columns are fixed)", "--dim")
        params = {"method": method, "seed": seed}

        def build_features(w: StoreWriter) -> None:
            for sid in sessions:
                base = f"sessions/{sid}"
                n = src.array(f"{base}/units/id").shape[0] if src.exists(f"{base}/units/id") else 0
                spikes = [src.unit_spikes(sid, u) for u in range(n)] if src.exists(f"{base}/units/spike_index") \
                    else None
                duration = _session_duration(src, sid)
                if spikes is not None and any(s.size for s in spikes) and duration <= 0:
                    allt = np.concatenate([s for s in spikes if s.size])
                    duration = float(allt.max() - allt.min())
                counts = np.asarray(src.array(f"{base}/binned/counts")[...]) \
                    if src.exists(f"{base}/binned/counts") else None
                try:
                    F, source = unit_features(spikes, duration, counts)
                except ValueError as exc:
                    raise DataError(f"session '{sid}': {exc}", src.location) from None
                if source == "binned/counts":
                    log.warning("session '%s' has no spike times: features are computed from binned counts "
                                "(rate, Fano factor, count autocorrelation)", sid)
                w.array(f"{base}/neurons/features", F, attrs={"method": "features", "source": source})
            w.group("models/features", {"class": "hand-crafted unit features", "config": params,
                                        "version": __version__})

        write_result("embed", parent=src, params=params, build=build_features, output=output,
                     overwrite=overwrite, no_cache=no_cache)
        return

    if steps is not None and steps < 1:
        raise UsageError(f"--steps must be at least 1, got {steps}", "--steps")
    if model is not None:
        if dim is not None:
            raise UsageError("--dim cannot be combined with --model (the saved model fixes it)", "--dim")
        for name, value in (("--steps", steps), ("--batch-size", batch_size), ("--train-with", train_with)):
            if value is not None and value != []:
                raise UsageError(f"{name} cannot be combined with --model (no training)", name)
        mstore = open_input(model)
        if not mstore.exists("models/nuclr"):
            raise UsageError("no models/nuclr in the --model store", mstore.location,
                             hint="train first: ncli embed STORE --method nuclr")
        mgroup = _find_group(mstore, "models/nuclr")
        net = NuCLR.from_group(mgroup)
        net.device = device
        model_id = mstore.id
    else:
        dim = 64 if dim is None else dim
        net = NuCLR(d_model=dim, proj_dim=dim, steps=2500 if steps is None else steps,
                    batch_size=8 if batch_size is None else batch_size, seed=seed, device=device)
        net._check_params()
        model_id = None
    net._torch_device()  # an unavailable --device is a usage error before any data is read
    if any(not str(loc).strip() or str(loc).strip() == "-" for loc in train_with):
        raise UsageError("--train-with needs a store location (stdin is the input store's)", "--train-with")
    others = [open_input(loc) for loc in train_with]  # further training stores (--train-with)
    seen = {layer.meta.get("id", layer.location) for layer in src.layers}
    for other in others:  # a store that shares a layer with another would train on the same sessions twice
        ids = {layer.meta.get("id", layer.location) for layer in other.layers}
        if ids & seen:
            raise UsageError("--train-with names a store that shares its sessions with the input or with another "
                             "--train-with store; they would be trained on twice", other.location)
        seen |= ids
        if not other.sessions():
            raise DataError("store has no sessions", other.location)
    params = {"method": method, "dim": net.d_model, "steps": net.steps, "batch_size": net.batch_size, "seed": seed,
              "model": model_id, "train_with": [o.id for o in others]}

    def counts(st: Store) -> dict:
        out = {sid: session_unit_counts(st, sid, net.bin_size) for sid in st.sessions()}
        for sid, (C, _) in out.items():
            if C.shape[0] < net.window_bins:
                raise DataError(f"session '{sid}' is {C.shape[0] * net.bin_size:g} s long, shorter than one "
                                f"NuCLR window ({net.window_bins * net.bin_size:g} s)", st.location,
                                hint="NuCLR needs sessions of at least one window; "
                                     "--method features takes short ones")
        return out

    def build(w: StoreWriter) -> None:
        data = counts(src)
        if model is None:
            train = [C for C, _ in data.values()]
            for other in others:
                train += [C for C, _ in counts(other).values()]
            log.info("nuclr: training on %d session(s), %d steps", len(train), net.steps)
            net.fit(train)
        summary = {}
        for sid in sessions:
            C, source = data[sid]
            H, starts = net.transform_windows(C)
            w.array(f"sessions/{sid}/neurons/nuclr", H.mean(0).astype(np.float32),
                    attrs={"method": "nuclr", "model": "models/nuclr", "source": source,
                           "n_windows": int(len(starts)), "zero_shot": model is not None,
                           "bin_size_s": net.bin_size})
            summary[sid] = {"n_windows": int(len(starts)), "n_units": int(C.shape[1]),
                            "rankme": rankme(H.mean(0))}
            if len(starts) >= 2:  # same-unit retrieval: two windows, and the two halves of the session
                half = len(starts) // 2
                summary[sid]["retrieval_top1_window"] = retrieval_top1(H[0], H[1])
                summary[sid]["retrieval_top1_halves"] = retrieval_top1(H[:half].mean(0), H[half:].mean(0))
                log.info("nuclr %s: same-unit retrieval top-1 %.2f (two windows), %.2f (two halves), "
                         "RankMe %.1f", sid, summary[sid]["retrieval_top1_window"],
                         summary[sid]["retrieval_top1_halves"], summary[sid]["rankme"])
        metrics = {"sessions": summary, "windows_per_s": net.windows_per_s_,
                   "final_loss": float(np.mean(net.loss_history_[-20:]))}
        if model is None:
            extra = {"sessions_trained": sessions,
                     "trained_with": [{"store": o.location, "sessions": o.sessions()} for o in others],
                     "loaded_from": None}
        else:  # zero-shot: the loaded model's training provenance is carried over
            saved = dict(mgroup.attrs)
            extra = {"sessions_trained": saved.get("sessions_trained"), "trained_with": saved.get("trained_with", []),
                     "loaded_from": mstore.location}
        net.to_group(w.group("models/nuclr"), metrics=metrics, extra=extra)

    reads = others + ([mstore] if model is not None else [])  # stores read besides the input
    write_result("embed", parent=src, params=params, build=build, output=output,
                 overwrite=overwrite, no_cache=no_cache, inputs=[st.location for st in (src, *reads)],
                 identity=[x for st in (src, *reads) for x in (st.id, st.location)],
                 protect=[layer.location for st in reads for layer in st.layers])


def _find_group(store: Store, path: str):
    """The group ``path`` from the nearest layer of ``store`` that has it."""
    for layer in store.layers:
        if path in layer.group:
            return layer.group[path]
    raise DataError(f"no {path} in {store.location}")
