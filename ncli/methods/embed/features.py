"""``ncli embed --method features``: hand-crafted per-neuron features (the baseline of nuclr).

From spike times: log10 firing rate, mean CV2, a log-spaced ISI histogram, a
0-100 ms autocorrelogram and the burst fraction (43 columns); a session without
spike times gets features of its binned counts instead (12 columns), with a
warning. Writes ``sessions/<sid>/neurons/features`` (N, F) and the summary
group ``models/features``. Reference: Holt et al. 1996 (CV2, J Neurophysiol).
"""

from __future__ import annotations

import logging

import numpy as np

from ncli.core.errors import DataError
from ncli.formats.store import StoreWriter
from ncli.formats.view import views
from ncli.methods.embed._base import EmbedMethod, EmbedRun
from ncli.methods.registry import Example, register
from ncli.methods.results import Job, write_neurons, write_summary

log = logging.getLogger("ncli")


@register
class Features(EmbedMethod):
    """Fixed per-neuron features (no options: the columns are fixed)."""

    name = "features"
    summary = "per neuron, hand-crafted spike-train features"
    example = Example(setup=(("simulate", "nuclr", "--sessions", "1", "--duration", "20", "--min-units", "8",
                              "--max-units", "10"),))

    def job(self, run: EmbedRun) -> Job:
        """The features layer (computed when written).

        Raises
        ------
        DataError
            (when written) a session whose spikes and counts give no features.
        """
        from ncli.core.unit_features import unit_features

        src, sessions = run.src, run.sessions
        params = {"method": self.name, "seed": run.seed}

        def build(w: StoreWriter) -> None:
            for sid, view in views(src, sessions).items():
                spikes = [view.unit_spikes(u) for u in range(view.n_units)] if view.has("units/spike_index") \
                    else None
                duration = view.duration
                if spikes is not None and any(s.size for s in spikes) and duration <= 0:
                    allt = np.concatenate([s for s in spikes if s.size])
                    duration = float(allt.max() - allt.min())
                counts = view.counts(dtype=None) if view.has("binned/counts") else None
                try:
                    F, source = unit_features(spikes, duration, counts)
                except ValueError as exc:
                    raise DataError(f"session '{sid}': {exc}", src.location) from None
                if source == "binned/counts":
                    log.warning("session '%s' has no spike times: features are computed from binned counts "
                                "(rate, Fano factor, count autocorrelation)", sid)
                write_neurons(w, sid, "features", F, attrs={"method": "features", "source": source})
            write_summary(w, "models/features", "hand-crafted unit features", params)

        return Job(params, build)
