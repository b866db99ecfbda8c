"""Tiny pynwb builders for the convert tests: known spikes, areas, trials and behaviour.

Each builder writes one small NWB file and returns its path, so a test says
exactly what is in the file it converts.
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path
from typing import Any

import numpy as np


_EMPTY = "__empty__"


def _nwbfile(**kwargs):
    from pynwb import NWBFile
    from pynwb.file import Subject

    return NWBFile(
        session_description=kwargs.get("description", "ncli test session"),
        identifier=kwargs.get("identifier", "ncli-test-0001"),
        session_start_time=dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc),
        subject=Subject(subject_id=kwargs.get("subject", "mouse-7"), species=kwargs.get("species", "Mus musculus")),
    )


def write_nwb(
    path: str | Path,
    *,
    spikes: list[np.ndarray] | None = None,
    unit_ids: list[int] | None = None,
    unit_locations: list[str] | None = None,
    group_location: str = "",
    trials: dict[str, np.ndarray] | None = None,
    epochs: list[tuple[float, float, str]] | None = None,
    intervals: dict[str, dict[str, np.ndarray]] | None = None,
    behavior: dict[str, dict[str, Any]] | None = None,
    acquisition: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """Write a small NWB file.

    Parameters
    ----------
    path : str or Path
    spikes : list of (S_u,) float arrays, optional
        Spike times (s) per unit, written as given (no sorting, NaN allowed).
        None writes no units table.
    unit_ids : list of int, optional
        The units table ``id`` (default 0..N-1).
    unit_locations : list of str, optional
        Location of the one electrode each unit sits on ('' = unknown).
    group_location : str
        Location of the electrode group.
    trials : dict column -> (n,) array, optional
        ``start_time``, ``stop_time`` plus extra columns.
    epochs : list of (start, stop, tag), optional
    intervals : dict table -> dict column -> array, optional
        Extra TimeIntervals tables.
    behavior : dict name -> spec, optional
        spec keys: ``timestamps`` (or ``rate`` + ``starting_time``), ``data``,
        ``container`` ('Position', 'CompassDirection', 'BehavioralTimeSeries',
        'BehavioralEvents' or None for a bare series), ``unit``.
        Written under ``processing/behavior``.
    acquisition : dict name -> spec, optional
        Bare TimeSeries under ``acquisition`` (same spec keys).

    Returns
    -------
    Path
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pynwb deprecations (BehavioralEvents) are not the test's business
        return _write_nwb(Path(path), spikes, unit_ids, unit_locations, group_location, trials, epochs,
                          intervals, behavior, acquisition)


def _write_nwb(path, spikes, unit_ids, unit_locations, group_location, trials, epochs, intervals, behavior,
               acquisition) -> Path:
    from pynwb import NWBHDF5IO, TimeSeries
    from pynwb.behavior import BehavioralEvents, BehavioralTimeSeries, CompassDirection, Position, SpatialSeries
    from pynwb.epoch import TimeIntervals

    nwb = _nwbfile()
    if spikes is not None:
        n = len(spikes)
        ids = list(unit_ids) if unit_ids is not None else list(range(n))
        locs = list(unit_locations) if unit_locations is not None else [""] * n
        if n:
            device = nwb.create_device(name="probe")
            group = nwb.create_electrode_group(name="shank0", description="test shank", location=group_location,
                                               device=device)
            for u in range(n):
                nwb.add_electrode(group=group, location=locs[u] or _EMPTY)  # pynwb refuses ''; patched below
        for u in range(n):
            nwb.add_unit(spike_times=np.asarray(spikes[u], dtype=np.float64), id=int(ids[u]), electrodes=[u])
    if trials:
        for col in trials:
            if col not in ("start_time", "stop_time"):
                nwb.add_trial_column(name=col, description=f"{col} column")
        for i in range(len(trials["start_time"])):
            nwb.add_trial(**{k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in trials.items()})
    for start, stop, tag in epochs or []:
        nwb.add_epoch(start_time=start, stop_time=stop, tags=[tag])
    for name, cols in (intervals or {}).items():
        table = TimeIntervals(name=name, description=f"{name} table")
        for col in cols:
            if col not in ("start_time", "stop_time"):
                table.add_column(name=col, description=f"{col} column")
        for i in range(len(cols["start_time"])):
            table.add_row(**{k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in cols.items()})
        nwb.add_time_intervals(table)

    def series(name: str, spec: dict, spatial: bool):
        kwargs: dict[str, Any] = {"name": name, "data": np.asarray(spec["data"]), "unit": spec.get("unit", "a.u.")}
        if "timestamps" in spec:
            kwargs["timestamps"] = np.asarray(spec["timestamps"], dtype=np.float64)
        else:
            kwargs["rate"] = float(spec["rate"])
            kwargs["starting_time"] = float(spec.get("starting_time", 0.0))
        if spatial:
            kwargs["reference_frame"] = "arena corner"
            return SpatialSeries(**kwargs)
        return TimeSeries(**kwargs)

    if behavior:
        module = nwb.create_processing_module(name="behavior", description="behaviour")
        containers: dict[str, Any] = {}
        for name, spec in behavior.items():
            kind = spec.get("container")
            if kind is None:
                module.add(series(name, spec, False))
                continue
            cls = {"Position": Position, "CompassDirection": CompassDirection,
                   "BehavioralTimeSeries": BehavioralTimeSeries, "BehavioralEvents": BehavioralEvents}[kind]
            if kind not in containers:
                containers[kind] = cls()
                module.add(containers[kind])
            s = series(name, spec, kind in ("Position", "CompassDirection"))
            if kind in ("Position", "CompassDirection"):
                containers[kind].add_spatial_series(s)
            else:
                containers[kind].add_timeseries(s)
    for name, spec in (acquisition or {}).items():
        nwb.add_acquisition(series(name, spec, False))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    if spikes is not None and any(not loc for loc in (unit_locations or [])):
        import h5py

        with h5py.File(path, "r+") as f:
            ds = f["general/extracellular_ephys/electrodes/location"]
            values = [b"" if v in (_EMPTY, _EMPTY.encode()) else v for v in ds[:]]
            ds[...] = np.array(values, dtype=object)
    return path


def standard_nwb(path: str | Path, *, duration: float = 20.0, seed: int = 0) -> tuple[Path, dict[str, Any]]:
    """A synthetic session with everything convert reads, and its ground truth.

    4 units with ids 11, 12, 15, 20 on electrodes in CA1, CA1, '' (group
    location 'DG' applies) and V1; Poisson spikes on [0.5, duration - 0.5] s;
    one epoch [0, duration); 5 trials with a 'target' column and a string
    'label' column; a 'stimuli' intervals table; a linear 2-d position
    ``x = 2 t + 1, y = -t`` (cm) at 100 Hz; a head direction in radians that
    turns at 1 rad/s (wrapping across +-pi) at 50 Hz; and an integer TTL
    series in acquisition.

    Returns
    -------
    path : Path
    truth : dict
        ``spikes`` (list of arrays), ``ids``, ``areas``, ``trials``, ``duration``.
    """
    rng = np.random.default_rng(seed)
    spikes = [np.sort(rng.uniform(0.5, duration - 0.5, rng.poisson(rate * (duration - 1.0))))
              for rate in (5.0, 12.0, 8.0, 3.0)]
    ids = [11, 12, 15, 20]
    locations = ["CA1", "CA1", "", "V1"]
    trials = {"start_time": np.arange(5) * 3.0 + 1.0, "stop_time": np.arange(5) * 3.0 + 2.5,
              "target": np.array([3, 1, 4, 1, 5]), "label": np.array(["a", "b", "c", "d", "e"])}
    t_pos = np.arange(0.0, duration + 1e-9, 0.01)
    t_hd = np.arange(0.0, duration + 1e-9, 0.02)
    hd = np.angle(np.exp(1j * (t_hd - 3.0)))  # wraps from +pi to -pi at t = 3 + pi + 2k pi
    path = write_nwb(
        path, spikes=spikes, unit_ids=ids, unit_locations=locations, group_location="DG", trials=trials,
        epochs=[(0.0, duration, "run")],
        intervals={"stimuli": {"start_time": np.array([2.0, 6.0]), "stop_time": np.array([2.2, 6.2]),
                               "contrast": np.array([0.5, 1.0])}},
        behavior={
            "position": {"timestamps": t_pos, "data": np.c_[2 * t_pos + 1, -t_pos], "container": "Position",
                         "unit": "cm"},
            "head_direction": {"timestamps": t_hd, "data": hd, "container": "CompassDirection", "unit": "radians"},
            "speed": {"rate": 100.0, "starting_time": 0.0, "data": 3.0 + 0.5 * t_pos,
                      "container": "BehavioralTimeSeries", "unit": "cm/s"},
        },
        acquisition={"ttl": {"timestamps": np.array([-1.5e9, 1.0, 4.0, 7.0]), "data": np.array([0, 1, 2, 1],
                                                                                                dtype=np.int8),
                             "unit": "NA"}},
    )
    truth = {"spikes": spikes, "ids": [str(i) for i in ids], "areas": ["CA1", "CA1", "DG", "V1"],
             "trials": trials, "duration": duration}
    return path, truth
