"""The one writer of result layers: per-bin latents and predictions, per-neuron embeddings, models.

Every method writes its results through these functions, so the layout of
docs/store.md (``sessions/<sid>/latents/<name>``, ``predictions/<name>``,
``neurons/<name>``, ``models/<name>/...``) is written in one place, with the
same attributes for every method.

A method hands the command a :class:`Job`: the parameters that identify the
result (for the run cache and history) and ``build(writer)``, which writes the
layer. The command layer (``write_result``) takes care of the cache, the
atomic write and the one line of stdout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ncli import __version__
from ncli.formats.store import StoreWriter


@dataclass
class Job:
    """A result ready to be written: what identifies it and how to write it.

    Attributes
    ----------
    params : dict
        Every parameter that changes the result (seed included): the run
        cache key and the history entry.
    build : callable
        ``build(writer)`` writes the layer's arrays.
    inputs : list of str, optional
        Locations read besides the input store (recorded in history).
    identity : list of str, optional
        Identities of every store read (cache key), when more than the input.
    protect : list of str, optional
        Locations the output must never replace (stores read besides the input).
    """

    params: dict
    build: Callable[[StoreWriter], None]
    inputs: list | None = None
    identity: list | None = None
    protect: list | None = field(default=None)


def write_latents(w: StoreWriter, sid: str, name: str, Z: np.ndarray, attrs: dict) -> None:
    """``sessions/<sid>/latents/<name>`` (T, K) float32, NaN rows where not embedded."""
    w.array(f"sessions/{sid}/latents/{name}", np.asarray(Z, dtype=np.float32), attrs=attrs)


def write_neurons(w: StoreWriter, sid: str, name: str, H: np.ndarray, attrs: dict) -> None:
    """``sessions/<sid>/neurons/<name>`` (N, K): one row per unit."""
    w.array(f"sessions/{sid}/neurons/{name}", H, attrs=attrs)


def write_prediction(w: StoreWriter, sid: str, name: str, pred: np.ndarray, *, unit: str | None,
                     attrs: dict) -> None:
    """``sessions/<sid>/predictions/<name>`` (T, D) float32 (NaN where not predicted); ``attrs`` holds metrics."""
    w.array(f"sessions/{sid}/predictions/{name}", np.asarray(pred).astype(np.float32), unit=unit or None,
            attrs=attrs)


def write_sequences(w: StoreWriter, sid: str, name: str, sequences: np.ndarray, *, attrs: dict) -> None:
    """``sessions/<sid>/predictions/<name>`` (n_trials,) str: a decoded token sequence per trial; ``attrs`` metrics."""
    w.array(f"sessions/{sid}/predictions/{name}", np.asarray(sequences, dtype=object), attrs=attrs)


def write_model(w: StoreWriter, path: str, model: Any, *, metrics: dict | None = None,
                extra: dict | None = None) -> None:
    """A fitted estimator saved under ``path`` (``models/<name>/<sid>``) with its metrics and provenance."""
    model.to_group(w.group(path), metrics=metrics, extra=extra)


def write_summary(w: StoreWriter, path: str, description: str, config: dict, metrics: dict | None = None,
                  **extra: Any) -> None:
    """The summary group of a result (``models/<name>``): what it is, the run's config, pooled metrics.

    Written with ``kind = "summary"`` and the ``class`` attribute older
    versions used (a description, not an estimator class), so stores stay
    readable by ncli 0.1.0.
    """
    attrs = {"kind": "summary", "class": description, "description": description, "config": config,
             "version": __version__}
    if metrics is not None:
        attrs["metrics"] = metrics
    attrs.update(extra)
    w.group(path, attrs)
