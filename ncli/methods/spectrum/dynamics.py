"""Fitted mode of ``ncli spectrum``: the spectrum and regime of a fitted transition matrix.

``STORE --from models/NAME`` reads ``A_`` of a model with dynamics
(``fit-lds``'s ``models/lds``, ``align``'s ``models/candy``) or any square
array, so dynamics of different states can be compared; writes
``spectra/<NAME>/``. The numerics live in
:func:`ncli.models.spectral.dynamics_spectrum`.
"""

from __future__ import annotations

import logging

import numpy as np

from ncli.core.errors import DataError, UsageError
from ncli.formats.store import Store, StoreWriter
from ncli.methods.results import Job
from ncli.methods.spectrum.network import complex2

log = logging.getLogger("ncli")


def load_dynamics(src: Store, source: str) -> tuple[np.ndarray, dict, str]:
    """The transition matrix named by ``--from`` (a model group with ``A_``, or an array), its attrs and path.

    Raises
    ------
    DataError
        A group without ``A_``.
    UsageError
        Nothing at ``source``.
    """
    path = source.strip("/")
    if src.is_array(path):
        arr_path, attrs = path, src.attrs(path.rpartition("/")[0]) if "/" in path else {}
    elif src.exists(path):
        arr_path, attrs = f"{path}/A_", src.attrs(path)
        if not src.is_array(arr_path):
            raise DataError(f"'{path}' holds no transition matrix A_", src.location,
                            hint="--from takes a model with dynamics (fit-lds, align) or a square array")
    else:
        models = ", ".join(f"models/{m}" for m in src.children("models")) or "(none)"
        raise UsageError(f"'{path}' is not in the store", "--from", hint=f"models in this store: {models}")
    return np.asarray(src.read(arr_path), dtype=np.float64), attrs, arr_path


def result_name(src: Store, source: str, name: str | None) -> str:
    """``--name``, else the model's name (``models/lds`` -> ``lds``; ``models/lds/A_`` -> ``lds``)."""
    parts = source.strip("/").split("/")
    return name or (parts[-2] if src.is_array(source.strip("/")) and len(parts) > 1 else parts[-1])


def dynamics_job(src: Store, source: str, *, time: str, name: str | None, seed: int) -> Job:
    """The ``spectra/<name>`` layer of the dynamics at ``source`` (the spectrum is computed now).

    The result's name is ``job.params["name"]``.

    Parameters
    ----------
    src : Store
    source : str
        ``--from``.
    time : {"discrete", "continuous"}
    name : str, optional
        ``--name``: the group under ``spectra/`` (default: see :func:`result_name`).
    seed : int
    """
    from ncli.models.spectral import dynamics_spectrum

    A, attrs, arr_path = load_dynamics(src, source)
    bin_size = attrs.get("bin_size_s") if time == "discrete" else None
    if time == "discrete" and bin_size is None:
        log.warning("spectrum: %s has no bin_size_s; time constants and frequencies are per bin", source)
    res = dynamics_spectrum(A, bin_size=bin_size, discrete=time == "discrete")
    name = result_name(src, source, name)
    params = {"mode": "fitted", "from": source, "time": time, "name": name, "seed": seed}

    def build(w: StoreWriter) -> None:
        path = f"spectra/{name}"
        w.group(path)
        w.array(f"{path}/eigenvalues", complex2(res["eigenvalues"]),
                attrs={"description": f"eigenvalues of {arr_path} [re, im], least stable first",
                       "method": "dense"})
        w.array(f"{path}/continuous_eigenvalues", complex2(res["continuous"]), unit="1/s" if bin_size else "1/bin",
                attrs={"description": "log(lambda)/bin_size for discrete dynamics [re, im]"})
        regime = {k: res[k] for k in ("regime", "stable", "frequency_hz", "time_constant_s", "margin")}
        w.group(path, attrs={"kind": "dynamics", "source": arr_path, "time": time, "bin_size_s": bin_size,
                             "regime": regime, "metrics": {"bulk_radius_entries": res["bulk_radius"],
                                                           "n_eigenvalues": int(A.shape[0])}})
        unit = "Hz" if bin_size else "cycles/bin"
        log.info("spectrum %s: %d eigenvalues, regime %s (least stable |λ| %.4g, %.3g %s)", arr_path,
                 A.shape[0], res["regime"], float(np.abs(res["eigenvalues"][0])), res["frequency_hz"], unit)

    return Job(params, build)
