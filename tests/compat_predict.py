"""Predictions of the models saved in tests/fixtures/store_v010.zarr (ridge, possm, nuclr).

Shared by the fixture's writer (run once with ncli 0.1.0) and
tests/test_store_compat.py, so both compute the same thing. It uses only the
public loading path: ``Store.open``, the estimators' ``from_group``.
"""

from __future__ import annotations

import numpy as np


def predict_all(location: str) -> dict[str, np.ndarray]:
    """``{name: prediction}`` of every saved model in the fixture store, on its own session data."""
    import torch

    from ncli.formats.store import Store

    torch.set_num_threads(1)
    st = Store.open(location)
    out: dict[str, np.ndarray] = {}
    for sid in st.sessions():
        out.update(_ridge(st, sid))
        out.update(_possm(st, sid))
        out.update(_nuclr(st, sid))
    return out


def _group(st, path):
    for layer in st.layers:
        if path in layer.group:
            return layer.group[path]
    raise KeyError(path)


def _ridge(st, sid):
    from ncli.core.features import lag_features, sqrt_counts
    from ncli.models.ridge import RidgeDecoder

    path = f"models/ridge_velocity/{sid}"
    if not st.exists(path):
        return {}
    model = RidgeDecoder.from_group(_group(st, path))
    counts = np.asarray(st.read(f"sessions/{sid}/binned/counts"), dtype=np.float64)
    valid = st.read(f"sessions/{sid}/binned/valid").astype(bool)
    X, usable = lag_features(sqrt_counts(counts), 2, valid)
    idx = np.flatnonzero(usable)
    return {f"ridge/{sid}": model.predict(X[idx])}


def _possm(st, sid):
    from ncli.models.possm import POSSMDecoder, SpikeSession

    path = f"models/possm_velocity/{sid}"
    if not st.exists(path):
        return {}
    model = POSSMDecoder.from_group(_group(st, path))
    at = st.attrs(f"sessions/{sid}/binned")
    ids = [str(u) for u in st.read(f"sessions/{sid}/units/id").tolist()]
    sess = SpikeSession(sid, np.array([f"{sid}/{u}" for u in ids], dtype=object),
                        np.asarray(st.read(f"sessions/{sid}/units/spike_times"), dtype=np.float64),
                        np.asarray(st.read(f"sessions/{sid}/units/spike_index"), dtype=np.int64),
                        float(at["t_start_s"]), float(at["bin_size_s"]),
                        int(st.array(f"sessions/{sid}/binned/counts").shape[0]), None, None)
    return {f"possm/{sid}": model.predict(sess)}


def _nuclr(st, sid):
    from ncli.core.binning import Grid, bin_spikes
    from ncli.models.nuclr import NuCLR

    if not st.exists("models/nuclr"):
        return {}
    model = NuCLR.from_group(_group(st, "models/nuclr"))
    n = st.array(f"sessions/{sid}/units/id").shape[0]
    at = st.attrs(f"sessions/{sid}/binned")
    t0 = float(at["t_start_s"])
    t1 = t0 + st.array(f"sessions/{sid}/binned/counts").shape[0] * float(at["bin_size_s"])
    grid = Grid(t0, model.bin_size, int(np.floor((t1 - t0) / model.bin_size + 1e-9)))
    C = np.stack([bin_spikes(st.unit_spikes(sid, u), grid) for u in range(n)], 1).astype(np.float32)
    H, _ = model.transform_windows(C)
    return {f"nuclr/{sid}": H.mean(0)}
