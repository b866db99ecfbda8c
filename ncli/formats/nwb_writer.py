"""Write one recording session as an NWB 2 file (pynwb).

Used by ``ncli simulate --nwb`` so that synthetic data with known ground truth
can be fed through ``ncli convert`` exactly like a real recording. The file
holds:

- ``general/extracellular_ephys``: one electrode group per brain area (its
  ``location`` is the area) and one electrode per unit, whose ``location`` is
  the unit's area;
- ``units``: one row per unit, ids as integers when every id is an integer
  string, spike times (s), and a reference to the unit's electrode;
- ``processing/behavior``: each behaviour as a ``TimeSeries`` inside a
  ``BehavioralTimeSeries`` interface (``SpatialSeries`` inside ``Position``
  when its unit is a length, e.g. cm), with explicit timestamps;
- ``trials`` with any extra columns, and ``epochs`` for the recorded range.

The file is written under a temporary name and renamed when complete.

References
----------
Rübel et al. (2022) The Neurodata Without Borders ecosystem for
neurophysiological data science. eLife 11, e78362.
"""

from __future__ import annotations

import datetime as _dt
import os
import uuid
from pathlib import Path
from typing import Mapping

import numpy as np

from ncli.core.errors import DataError

LENGTH_UNITS = {"m", "cm", "mm", "um", "µm"}


def write_nwb(
    path: str | os.PathLike,
    *,
    session_id: str,
    unit_ids: np.ndarray,
    unit_areas: np.ndarray,
    spike_times: list,
    behavior: Mapping[str, Mapping] | None = None,
    trials: Mapping[str, np.ndarray] | None = None,
    epochs: np.ndarray | None = None,
    subject: str = "sim",
    species: str = "simulated",
    start_time: str = "2000-01-01T00:00:00+00:00",
    description: str = "",
    overwrite: bool = False,
) -> str:
    """Write one session to an NWB file.

    Parameters
    ----------
    path : path-like
        Output ``.nwb`` file.
    session_id : str
        NWB ``session_id`` and ``identifier``.
    unit_ids : (N,) str or int
        Unit ids (integer strings are stored as integers, NWB's id type).
    unit_areas : (N,) str
        Brain area per unit ('' allowed), stored as the electrode location.
    spike_times : list of (S_u,) float64
        Sorted spike times (s) per unit.
    behavior : dict name -> {"timestamps": (Tb,), "data": (Tb, D), "unit": str,
               "columns": list}, optional
    trials : dict column -> (n_trials,), optional
        ``start_time`` and ``stop_time`` required; other columns added with
        their names.
    epochs : (E, 2) float, optional
        Recorded epochs ``[start, stop]`` (s).
    subject, species, start_time, description : str
        Metadata; ``start_time`` ISO 8601.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    str
        The written path.

    Raises
    ------
    DataError
        The file exists (without ``overwrite``), its directory is missing,
        or the inputs are inconsistent (lengths of ids, areas and spike lists).
    """
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.behavior import BehavioralTimeSeries, Position, SpatialSeries
    from pynwb.file import Subject

    path = Path(path).expanduser().resolve()
    if path.exists() and not overwrite:
        raise DataError("NWB output already exists", str(path), hint="pass --overwrite to replace it")
    if not path.parent.exists():
        raise DataError("output directory does not exist", str(path.parent))
    n = len(unit_ids)
    if len(unit_areas) != n or len(spike_times) != n:
        raise DataError(f"{n} unit ids but {len(unit_areas)} areas and {len(spike_times)} spike trains")

    nwb = NWBFile(
        session_description=description or f"ncli session {session_id}",
        identifier=str(session_id),
        session_id=str(session_id),
        session_start_time=_dt.datetime.fromisoformat(start_time),
        subject=Subject(subject_id=subject, species=species),
    )
    device = nwb.create_device(name="array", description="simulated probe")
    groups = {}
    for area in dict.fromkeys(str(a) for a in unit_areas):
        groups[area] = nwb.create_electrode_group(
            name=f"group_{area or 'unknown'}", description=f"electrodes in {area or 'unknown area'}",
            location=area, device=device,
        )
    for i in range(n):
        nwb.add_electrode(location=str(unit_areas[i]), group=groups[str(unit_areas[i])])
    ids = [str(u) for u in unit_ids]
    int_ids = all(s.lstrip("-").isdigit() for s in ids)
    for i in range(n):
        nwb.add_unit(id=int(ids[i]) if int_ids else i, spike_times=np.asarray(spike_times[i], dtype=np.float64),
                     electrodes=[i])
    if not int_ids:
        nwb.units.add_column(name="unit_name", description="unit id in the source", data=ids)

    if behavior:
        module = nwb.create_processing_module(name="behavior", description="behaviour")
        bts = BehavioralTimeSeries(name="BehavioralTimeSeries")
        pos = Position(name="Position")
        for name, series in behavior.items():
            data = np.asarray(series["data"], dtype=np.float64)
            ts = np.asarray(series["timestamps"], dtype=np.float64)
            unit = str(series.get("unit", ""))
            desc = "columns: " + ", ".join(series.get("columns", []))
            if unit in LENGTH_UNITS:
                pos.add_spatial_series(SpatialSeries(name=name, data=data, timestamps=ts, unit=unit,
                                                     reference_frame="origin", description=desc))
            else:
                bts.add_timeseries(TimeSeries(name=name, data=data, timestamps=ts, unit=unit or "n.a.",
                                              description=desc))
        if bts.time_series:
            module.add(bts)
        if pos.spatial_series:
            module.add(pos)

    if trials:
        extra = [c for c in trials if c not in ("start_time", "stop_time")]
        for col in extra:
            nwb.add_trial_column(name=col, description=col)
        starts, stops = np.asarray(trials["start_time"]), np.asarray(trials["stop_time"])
        for i in range(len(starts)):
            row = {c: np.asarray(trials[c])[i].item() for c in extra}
            nwb.add_trial(start_time=float(starts[i]), stop_time=float(stops[i]), **row)
    if epochs is not None:
        for start, stop in np.asarray(epochs, dtype=np.float64).reshape(-1, 2):
            nwb.add_epoch(start_time=float(start), stop_time=float(stop), tags=["recording"])

    tmp = path.parent / f".{path.stem}.partial-{uuid.uuid4().hex[:12]}.nwb"
    try:
        with NWBHDF5IO(str(tmp), "w") as io:
            io.write(nwb)
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    return str(path)
