"""Read an NWB-Zarr folder with hdmf-zarr's own reader (NWBZarrIO) and save what ncli must match.

Runs in the separate hdmf-zarr environment (hdmf-zarr 0.13 needs zarr < 3), never in ncli's::

    /tmp/hdmfzarr_env/bin/python bench/check_nwb_zarr_hdmf.py FOLDER.nwb.zarr OUT.npz

OUT.npz holds ``unit_ids`` (N,), ``spike_times`` (S,) s concatenated per unit in table order,
``spike_index`` (N + 1,) offsets, ``position_data`` (T, 2) and ``position_timestamps`` (T,) s of
the first ``Position`` SpatialSeries, and ``trial_outcome`` (string column of the trials table,
when present). ncli's store is compared with these arrays on ncli's side (zarr 3).
tests/test_convert_nwb_zarr.py runs it when NCLI_HDMF_ZARR_PYTHON names this environment's python.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np


def main(folder: str, out: str) -> None:
    """Write the reference arrays of ``folder`` (read with NWBZarrIO) to ``out``."""
    from hdmf_zarr.nwb import NWBZarrIO

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with NWBZarrIO(folder, mode="r") as io:
            nwb = io.read()
            units = nwb.units
            ids = np.asarray(units.id[:], dtype=np.int64)
            spikes = [np.asarray(units["spike_times"][i], dtype=np.float64) for i in range(len(ids))]
            pos = None
            for module in nwb.processing.values():
                for container in module.data_interfaces.values():
                    if type(container).__name__ == "Position":
                        pos = next(iter(container.spatial_series.values()))
                        break
            result = {
                "unit_ids": ids,
                "spike_times": np.concatenate(spikes) if spikes else np.zeros(0),
                "spike_index": np.concatenate([[0], np.cumsum([s.size for s in spikes])]).astype(np.int64),
            }
            if pos is not None:
                result["position_data"] = np.asarray(pos.data[:], dtype=np.float64) * pos.conversion + pos.offset
                result["position_timestamps"] = np.asarray(pos.timestamps[:], dtype=np.float64)
            if nwb.trials is not None and "outcome" in nwb.trials.colnames:
                result["trial_outcome"] = np.asarray([str(v) for v in nwb.trials["outcome"][:]])
    np.savez(out, **result)
    print(f"{folder}: {ids.size} units, {result['spike_times'].size} spikes"
          + (f", position {result['position_data'].shape}" if pos is not None else ""))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
