"""Write tests/fixtures/nwb_zarr/: one small NWB session as HDF5 (``session.nwb``) and as
hdmf-zarr's Zarr backend (``session.nwb.zarr``), with the same content.

hdmf-zarr 0.13 needs zarr < 3, so this script runs in a separate environment, never in ncli's::

    python3 -m venv /tmp/hdmfzarr_env
    /tmp/hdmfzarr_env/bin/pip install hdmf-zarr pynwb      # hdmf-zarr 0.13.0, zarr 2.18, numcodecs 0.15
    /tmp/hdmfzarr_env/bin/python bench/make_nwb_zarr_fixture.py [OUT_DIR]
    /tmp/hdmfzarr_env/bin/python bench/make_nwb_zarr_fixture.py --big OUT_DIR N_UNITS N_SPIKES N_SAMPLES

The HDF5 file is written with pynwb, then exported to Zarr with ``NWBZarrIO.export``
(hdmf's own export), so both files hold one and the same NWB tree; ``session_json.nwb.zarr``
is the same content written directly with ``ZarrIO(object_codec_class=numcodecs.JSON)``
(references as JSON instead of hdmf-zarr's default Pickle):

- 4 electrodes in one group (location 'DG') with locations CA1, CA1, '' and V1; the
  electrodes' ``group`` column holds object references to the group;
- 4 units (ids 11, 12, 15, 20), Poisson spike times (ragged ``spike_times``), one
  electrode each, a string ``quality`` column and a float ``amplitude`` column;
- a ``Position`` SpatialSeries (x = 2 t + 1, y = -t cm at 100 Hz) and a
  ``BehavioralTimeSeries`` sampled at a rate (speed, 50 Hz);
- 5 trials with an integer ``target`` and a string ``outcome`` column; one epoch.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np

DURATION = 12.0


def build():
    """The NWBFile of the fixture (pynwb objects, not yet written)."""
    from pynwb import NWBFile, TimeSeries
    from pynwb.behavior import BehavioralTimeSeries, Position, SpatialSeries
    from pynwb.file import Subject

    rng = np.random.default_rng(12)
    nwb = NWBFile(session_description="ncli NWB-Zarr fixture", identifier="ncli-nwb-zarr-0001",
                  session_start_time=dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC),
                  subject=Subject(subject_id="mouse-12", species="Mus musculus"), lab="ncli lab")
    device = nwb.create_device(name="probe")
    group = nwb.create_electrode_group(name="shank0", description="test shank", location="DG", device=device)
    for loc in ("CA1", "CA1", "none", "V1"):
        nwb.add_electrode(group=group, location=loc)
    nwb.add_unit_column(name="quality", description="curation label")
    nwb.add_unit_column(name="amplitude", description="mean amplitude (uV)")
    for u, (uid, rate, quality) in enumerate(zip((11, 12, 15, 20), (5.0, 12.0, 8.0, 3.0),
                                                 ("good", "mua", "good", "noise"))):
        times = np.sort(rng.uniform(0.5, DURATION - 0.5, rng.poisson(rate * (DURATION - 1.0))))
        nwb.add_unit(spike_times=times, id=uid, electrodes=[u], quality=quality, amplitude=50.0 + 10 * u)
    nwb.add_trial_column(name="target", description="target index")
    nwb.add_trial_column(name="outcome", description="trial outcome")
    for i, (target, outcome) in enumerate(zip((3, 1, 4, 1, 5), ("hit", "miss", "hit", "hit", "false alarm"))):
        nwb.add_trial(start_time=1.0 + 2.0 * i, stop_time=2.5 + 2.0 * i, target=target, outcome=outcome)
    nwb.add_epoch(start_time=0.0, stop_time=DURATION, tags=["run"])
    module = nwb.create_processing_module(name="behavior", description="behaviour")
    t = np.arange(0.0, DURATION + 1e-9, 0.01)
    position = Position()
    position.add_spatial_series(SpatialSeries(name="position", data=np.c_[2 * t + 1, -t], timestamps=t,
                                              unit="cm", reference_frame="arena corner"))
    module.add(position)
    speed = BehavioralTimeSeries()
    speed.add_timeseries(TimeSeries(name="speed", data=3.0 + 0.5 * np.arange(0.0, DURATION, 0.02), rate=50.0,
                                    starting_time=0.0, unit="cm/s"))
    module.add(speed)
    return nwb


def main(out: Path) -> None:
    """Write ``out/session.nwb``, ``out/session.nwb.zarr`` and ``out/session_json.nwb.zarr`` (replaced)."""
    import numcodecs
    from hdmf_zarr import ZarrIO
    from hdmf_zarr.nwb import NWBZarrIO
    from pynwb import NWBHDF5IO, get_manager

    out.mkdir(parents=True, exist_ok=True)
    h5, zr, zj = out / "session.nwb", out / "session.nwb.zarr", out / "session_json.nwb.zarr"
    for folder in (zr, zj):
        if folder.exists():
            shutil.rmtree(folder)
    h5.unlink(missing_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with NWBHDF5IO(str(h5), "w") as io:
            io.write(build())
        with NWBHDF5IO(str(h5), "r") as src, NWBZarrIO(str(zr), mode="w") as dst:
            dst.export(src_io=src, write_args={"link_data": False})
        # the same tree with numcodecs JSON instead of Pickle for object references (ZarrIO's option)
        with ZarrIO(str(zj), mode="w", manager=get_manager(), object_codec_class=numcodecs.JSON) as io:
            io.write(build())
    for f in (h5, zr, zj):
        size = f.stat().st_size if f.is_file() else sum(q.stat().st_size for q in f.rglob("*") if q.is_file())
        print(f"{f}: {size} bytes")


def big(out: Path, n_units: int, n_spikes: int, n_samples: int) -> None:
    """Write ``out/big.nwb`` and ``out/big.nwb.zarr`` for bench/bench_nwb_zarr.py.

    ``n_units`` units sharing ``n_spikes`` uniform spike times over 3600 s, and a 2-d
    position of ``n_samples`` samples over the same hour.
    """
    from hdmf_zarr.nwb import NWBZarrIO
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.behavior import Position, SpatialSeries

    rng = np.random.default_rng(0)
    nwb = NWBFile(session_description="ncli NWB-Zarr bench", identifier="ncli-nwb-zarr-big",
                  session_start_time=dt.datetime(2024, 5, 6, tzinfo=dt.UTC))
    per = rng.multinomial(n_spikes, np.ones(n_units) / n_units)
    for u, k in enumerate(per):
        nwb.add_unit(spike_times=np.sort(rng.uniform(0.0, 3600.0, k)), id=u)
    t = np.linspace(0.0, 3600.0, n_samples)
    position = Position()
    position.add_spatial_series(SpatialSeries(name="position", data=np.c_[np.sin(t), np.cos(t)], timestamps=t,
                                              unit="cm", reference_frame="arena"))
    nwb.create_processing_module(name="behavior", description="behaviour").add(position)
    out.mkdir(parents=True, exist_ok=True)
    h5, zr = out / "big.nwb", out / "big.nwb.zarr"
    if zr.exists():
        shutil.rmtree(zr)
    h5.unlink(missing_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with NWBHDF5IO(str(h5), "w") as io:
            io.write(nwb)
        with NWBHDF5IO(str(h5), "r") as src, NWBZarrIO(str(zr), mode="w") as dst:
            dst.export(src_io=src, write_args={"link_data": False})


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--big":
        big(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        default = Path(__file__).resolve().parents[1] / "tests/fixtures/nwb_zarr"
        main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
