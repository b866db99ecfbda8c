"""``ncli chunk``: neural chunking of population activity (DSC, PA, UCD).

Input per session: the binned counts (square-rooted unless ``--no-sqrt``;
calcium dF/F as is) or, with ``--latents NAME``, ``latents/NAME``. Bins that
are not ``binned/valid`` or hold NaN are left out (label -1). Each session is
chunked on its own (sessions have different neurons). The first
``1 - --test-fraction`` of the valid bins fit the model; the rest are held out
(for ``pa`` the split is placed so that the last ``--test-fraction`` of the
labelled bins are held out).

Writes, per session, ``sessions/<sid>/chunks/<NAME>/`` (``labels`` (T,) int32
chunk per bin, ``score`` (T, K) or ``states`` (T,)) and the chunk dictionary
``models/chunk_<NAME>/<sid>/`` (templates, member neurons, method-specific
arrays, metrics). See docs/commands/chunk.md. The numerics live in
:mod:`ncli.models.chunking`.
"""

from __future__ import annotations

import logging
from typing import Annotated, Optional

import numpy as np
import typer

from ncli import __version__
from ncli.commands._common import (Debug, InputStore, NoCache, Output, Overwrite, Quiet, Seed, choice, finite,
                                   check_result_name, load_activity, ncli_command, open_input,
                                   refuse_taken_name, write_result)
from ncli.core.errors import DataError, UsageError
from ncli.formats.store import Store, StoreWriter, as_str_array

log = logging.getLogger("ncli")
METHODS = ["dsc", "pa", "ucd"]


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


def _split_index(usable_idx: np.ndarray, test_fraction: float, labels: np.ndarray | None) -> int:
    """Number of usable bins (in time order) used for fitting."""
    n = len(usable_idx)
    if labels is None:
        return int(round((1 - test_fraction) * n))
    lab_pos = np.flatnonzero(labels[usable_idx] >= 0)
    if test_fraction == 0 or lab_pos.size == 0:
        return n
    cut = int(round((1 - test_fraction) * lab_pos.size))
    return int(lab_pos[min(cut, lab_pos.size - 1)])


@ncli_command("chunk")
def chunk(
    store: InputStore = None,
    method: Annotated[Optional[str], typer.Option("--method", help="dsc (discrete sequence chunking), pa "
                                                  "(population averaging, needs --labels) or ucd (unsupervised "
                                                  "chunk discovery).", show_default=False)] = None,
    latents: Annotated[Optional[str], typer.Option("--latents", help="Chunk latents/NAME instead of the binned "
                                                   "counts.", show_default=False)] = None,
    no_sqrt: Annotated[bool, typer.Option("--no-sqrt", help="Use raw counts (default: square-rooted; calcium "
                                          "dF/F and latents are never transformed).")] = False,
    labels: Annotated[Optional[str], typer.Option("--labels", help="[pa] Per-bin labels: chunks/NAME, "
                                                  "trials/COLUMN or intervals/TABLE/COLUMN.",
                                                  show_default=False)] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Output name: chunks/NAME and "
                                                "models/chunk_NAME. Default: the method.",
                                                show_default=False)] = None,
    test_fraction: Annotated[float, typer.Option("--test-fraction", help="Held-out fraction of the bins (pa: of "
                                                 "the labelled bins), at the end of each session.")] = 0.3,
    control: Annotated[bool, typer.Option("--control", help="Also fit a shuffle control (pa: labels shifted in "
                                          "time; dsc/ucd: each neuron shifted in time) and store its "
                                          "metrics as control_*.")] = False,
    n_chunks: Annotated[int, typer.Option("--n-chunks", help="[ucd] Number of chunk prototypes.")] = 5,
    min_similarity: Annotated[float, typer.Option("--min-similarity", help="[ucd] Smallest cosine similarity of a "
                                                  "bin to its chunk.")] = 0.25,
    merge_similarity: Annotated[float, typer.Option("--merge-similarity", help="[ucd] Prototypes more similar "
                                                    "than this are one chunk (the second is re-seeded).")] = 0.7,
    tolerance: Annotated[float, typer.Option("--tolerance", help="[pa] Detection tolerance (multiple of the "
                                             "threshold) of the reported operating point.")] = 1.0,
    quantile: Annotated[float, typer.Option("--quantile", help="[pa] Quantile of the training deviations used "
                                            "as threshold.")] = 0.99,
    min_effect: Annotated[float, typer.Option("--min-effect", help="[pa] Smallest |effect size| of a "
                                              "sub-population member.")] = 0.5,
    min_consistency: Annotated[float, typer.Option("--min-consistency", help="[pa] Smallest fraction of "
                                                   "occurrences with the template's sign.")] = 0.8,
    max_occurrences: Annotated[Optional[int], typer.Option("--max-occurrences", help="[pa] Use only the first "
                                                           "occurrences of each label (default all training "
                                                           "occurrences).", show_default=False)] = None,
    n_levels: Annotated[int, typer.Option("--n-levels", help="[dsc] k-means levels per neuron.")] = 2,
    min_state_count: Annotated[int, typer.Option("--min-state-count", help="[dsc] Fewest bins of a population "
                                                 "state.")] = 5,
    state_radius: Annotated[float, typer.Option("--state-radius", help="[dsc] Level tuples within this fraction "
                                                "of the neurons of a more frequent state merge into it.")] = 0.1,
    min_z: Annotated[float, typer.Option("--min-z", help="[dsc] Smallest z-score of a merged pair's count over "
                                         "its count under independence.")] = 5.0,
    min_ratio: Annotated[float, typer.Option("--min-ratio", help="[dsc] Smallest ratio of a merged pair's count "
                                             "to its count under independence.")] = 2.0,
    max_chunks: Annotated[int, typer.Option("--max-chunks", help="[dsc] Most merges.")] = 50,
    seed: Seed = 0,
    output: Output = None,
    overwrite: Overwrite = False,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Chunk population activity into recurring population states (DSC, PA or UCD).

    Output layer per session: chunks/<NAME>/labels (T,) int32 (-1: none),
    chunks/<NAME>/score (T, K) (pa: deviation / threshold; ucd: cosine
    similarity) or chunks/<NAME>/states (T,) (dsc), and models/chunk_<NAME>/<sid>
    (templates_, members_, ...; attrs metrics). Prints the output location.
    """
    from ncli.models import chunking as ch

    if method is None:
        raise UsageError("missing --method", "--method", hint="choose one of: " + ", ".join(METHODS))
    choice(method, METHODS, "--method")
    finite(test_fraction, "--test-fraction", minimum=0.0, maximum=0.9)
    finite(min_similarity, "--min-similarity")
    finite(merge_similarity, "--merge-similarity")
    finite(tolerance, "--tolerance", minimum=0.0)
    finite(quantile, "--quantile")
    finite(min_effect, "--min-effect")
    finite(min_consistency, "--min-consistency")
    finite(state_radius, "--state-radius")
    finite(min_z, "--min-z")
    finite(min_ratio, "--min-ratio")
    if method == "pa" and labels is None:
        raise UsageError("--method pa needs --labels", "--labels",
                         hint="e.g. --labels intervals/encoding_table/stimCategory or chunks/truth")
    if method != "pa" and labels is not None:
        raise UsageError(f"--labels is only used by --method pa, not {method}", "--labels")
    if method == "pa" and test_fraction == 0:
        raise UsageError("--method pa needs held-out bins: --test-fraction must be > 0", "--test-fraction")
    check_result_name(name)
    if method == "dsc" and n_levels > 127:
        raise UsageError(f"--n-levels must be at most 127, got {n_levels}", "--n-levels",
                         hint="population states are tuples of a few levels per neuron (2-4 is typical)")
    name = name or method
    src = open_input(store)
    sessions = src.sessions()
    if not sessions:
        raise DataError("store has no sessions", src.location)
    refuse_taken_name(src, name, [f"models/chunk_{name}"] + [f"sessions/{sid}/chunks/{name}" for sid in sessions],
                      "chunks")
    params = {"method": method, "latents": latents, "sqrt": not no_sqrt, "labels": labels, "name": name,
              "test_fraction": test_fraction, "control": control, "seed": seed}
    if method == "ucd":
        params.update(n_chunks=n_chunks, min_similarity=min_similarity, merge_similarity=merge_similarity)
    elif method == "pa":
        params.update(tolerance=tolerance, quantile=quantile, min_effect=min_effect,
                      min_consistency=min_consistency, max_occurrences=max_occurrences)
    else:
        params.update(n_levels=n_levels, min_state_count=min_state_count, state_radius=state_radius, min_z=min_z,
                      min_ratio=min_ratio, max_chunks=max_chunks)

    def make_model():
        if method == "ucd":
            return ch.UnsupervisedChunkDiscovery(n_chunks=n_chunks, min_similarity=min_similarity,
                                                 merge_similarity=merge_similarity, seed=seed)
        if method == "pa":
            return ch.PopulationAveraging(min_effect=min_effect, min_consistency=min_consistency,
                                          quantile=quantile, tolerance=tolerance, max_occurrences=max_occurrences)
        return ch.DiscreteSequenceChunking(n_levels=n_levels, min_state_count=min_state_count,
                                           state_radius=state_radius, min_z=min_z, min_ratio=min_ratio,
                                           max_chunks=max_chunks, seed=seed)

    def fit_eval(X: np.ndarray, lab: np.ndarray | None, n_fit: int, K: int):
        """Fit on the first n_fit rows of X, evaluate on the rest; (model, metrics, extra arrays)."""
        model = make_model()
        Xtr, Xte = X[:n_fit], X[n_fit:]
        if method == "pa":
            model.fit(Xtr, lab[:n_fit], n_labels=K)
            if len(Xte) == 0:
                raise DataError("no held-out bins after the split", hint="use a larger --test-fraction")
            det = ch.detection_metrics(model.score(Xte), lab[n_fit:], tolerance)
            arrays = {"sweep_tolerance": ch.TOLERANCES, "sweep_tpr": det.pop("sweep_tpr"),
                      "sweep_fpr": det.pop("sweep_fpr"), "auc": np.asarray(det["auc"])}
            det["n_members"] = np.asarray(model.members_).sum(1).tolist()
            return model, det, arrays
        model.fit(Xtr)
        held = Xte if len(Xte) else Xtr
        rec = ch.recurrence_ucd(model, held) if method == "ucd" else ch.recurrence_dsc(model, held)
        rec["evaluated_on"] = "held-out bins" if len(Xte) else "training bins"
        return model, rec, {}

    def build(w: StoreWriter) -> None:
        for sid in sessions:
            X_all, usable, source = load_activity(src, sid, latents, not no_sqrt)
            T = X_all.shape[0]
            idx = np.flatnonzero(usable)
            if idx.size < 10:
                raise DataError(f"session '{sid}' has {idx.size} usable bins; chunking needs at least 10",
                                src.location)
            X = X_all[idx]
            lab_all, names = (load_labels(src, sid, labels, T) if method == "pa" else (None, []))
            lab = lab_all[idx] if lab_all is not None else None
            n_fit = _split_index(idx, test_fraction, lab)
            K = len(names) if method == "pa" else 0
            if method == "pa":
                missing = [names[k] for k in range(K) if not (lab[:n_fit] == k).any()]
                if missing:
                    raise DataError(f"label{'s' if len(missing) > 1 else ''} "
                                    f"{', '.join(repr(m) for m in missing[:5])}{' ...' if len(missing) > 5 else ''}"
                                    f" of {labels} never occur{'s' if len(missing) == 1 else ''} in the training bins "
                                    f"({len(missing)} of {K} labels)", f"session {sid}",
                                    hint="use a smaller --test-fraction, or a column whose values recur (a "
                                         "category, not a per-trial value)")
            try:
                model, metrics, arrays = fit_eval(X, lab, n_fit, K)
            except DataError as err:
                err.where = err.where or f"session {sid}"
                raise
            if control:
                try:
                    if method == "pa":
                        lab_c = ch.shift_labels(lab, seed)
                        _, cm, _ = fit_eval(X, lab_c, _split_index(idx, test_fraction, lab_c), K)
                    else:
                        _, cm, _ = fit_eval(ch.shift_columns(X, seed), None, n_fit, K)
                except DataError as err:  # e.g. no recurring population state: nothing to chunk
                    cm = {"error": err.what}
                    if method == "dsc":
                        cm.update(n_chunks=0, compression=0.0, chunk_bin_fraction=0.0)
                metrics.update({f"control_{k}": v for k, v in cm.items()})
            labels_out = np.full(T, -1, dtype=np.int32)
            gpath = f"sessions/{sid}/chunks/{name}"
            mpath = f"models/chunk_{name}/{sid}"
            if method == "dsc":
                parse = model.parse(X)
                labels_out[idx] = parse["labels"]
                states = np.full(T, -1, dtype=np.int32)
                states[idx] = parse["states"]
                S = model.states_.shape[0]
                names = ["+".join(str(s) for s in row[row >= 0]) for row in model.chunk_states_]
                metrics.update(n_states=int(S), n_chunks=len(names), chunk_lengths=model.lengths_.tolist(),
                               chunk_counts=model.counts_.tolist(), parse_length_all=int(len(parse["tokens"])),
                               n_bins_parsed=int(idx.size))
                w.array(f"{gpath}/states", states, attrs={"description": "population state per bin (row of "
                                                          f"{mpath}/states_); -1 for unusable bins"})
            else:
                score = np.full((T, model.templates_.shape[0]), np.nan, dtype=np.float32)
                if method == "pa":
                    score[idx] = model.score(X)
                    labels_out[idx] = model.predict(X)
                    desc = "deviation from each chunk's template on its sub-population / threshold (<= tolerance: detected)"
                else:
                    score[idx] = model.similarity(X)
                    labels_out[idx] = model.predict(X)
                    names = [f"u{k}" for k in range(model.prototypes_.shape[0])]
                    metrics["n_chunks_used"] = int(np.count_nonzero(model.counts_))
                    desc = "cosine similarity of each bin to each chunk prototype"
                w.array(f"{gpath}/score", score, attrs={"description": desc})
            metrics.update(n_fit_bins=int(n_fit), n_held_out_bins=int(idx.size - n_fit))
            test_start = int(idx[n_fit]) if n_fit < idx.size else T
            w.array(f"{gpath}/labels", labels_out,
                    attrs={"description": "chunk index per bin (row of the model's templates_); -1: none or "
                                          "unusable bin"})
            w.group(gpath, {"method": method, "model": mpath, "source": source, "names": names,
                            "labels": labels, "test_start_bin": test_start, "metrics": metrics})
            g = w.group(mpath)
            model.to_group(g, metrics=metrics,
                           extra={"command": {"params": params, "version": __version__}, "source": source,
                                  "names": names, "labels": labels, "test_start_bin": test_start})
            for key, value in arrays.items():
                g.create_array(key, data=np.asarray(value, dtype=np.float64), overwrite=True)
            _report(method, sid, names, metrics)

    write_result("chunk", parent=src, params=params, build=build, output=output, overwrite=overwrite,
                 no_cache=no_cache)


def _report(method: str, sid: str, names: list[str], m: dict) -> None:
    """One summary per session on stderr."""
    if method == "pa":
        log.info("chunk pa %s: %d labels; held-out TPR %.3f, FPR %.3f, AUC %.3f (means over labels)%s", sid,
                 len(names), m["tpr_mean"], m["fpr_mean"], m["auc_mean"],
                 f"; control AUC {m['control_auc_mean']:.3f}" if "control_auc_mean" in m else "")
    elif method == "ucd":
        where = "held-out" if m.get("evaluated_on") != "training bins" else "training (no held-out bins)"
        used = m.get("n_chunks_used", len(names))
        log.info("chunk ucd %s: %d chunks%s; %s coverage %.3f, mean similarity %.3f%s", sid, len(names),
                 f" ({len(names) - used} empty: fewer distinct patterns than --n-chunks)" if used < len(names) else "",
                 where, m["coverage"], m["mean_similarity"],
                 f"; control coverage {m['control_coverage']:.3f}" if "control_coverage" in m else "")
    else:
        where = "held-out" if m.get("evaluated_on") != "training bins" else "training (no held-out bins)"
        log.info("chunk dsc %s: %d states, %d chunks; %s compression %.3f%s", sid, m["n_states"],
                 m["n_chunks"], where, m["compression"],
                 f"; control {m['control_n_chunks']} chunks, compression {m['control_compression']:.3f}"
                 if "control_compression" in m else "")
