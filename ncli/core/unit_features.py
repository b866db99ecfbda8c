"""Hand-crafted per-neuron features: the baseline for learned neuron identity (NuCLR).

From spike times (s): log firing rate, a log-spaced ISI histogram,
an autocorrelogram, the mean CV2 and the burst fraction. For pre-binned
sessions without spike times the timing features cannot be computed; then
:func:`count_features` uses the binned counts (log rate, Fano factor,
autocorrelation of the counts at lags of 1..``n_lags`` bins) and the caller
records ``source = "binned/counts"``.

References
----------
Holt, Softky, Koch & Douglas (1996) Comparison of discharge variability in
vitro and in vivo in cat visual cortex neurons. J Neurophysiol 75, 1806-1814 (CV2).
NuCLR: "Know Thyself by Knowing Others", NeurIPS 2025 (hand-crafted baselines).
"""

from __future__ import annotations

import numpy as np

#: Log-spaced ISI histogram edges (s), 1 ms to 2 s.
ISI_EDGES = np.logspace(-3, np.log10(2.0), 21)
#: Autocorrelogram bin edges (s), 0 to 100 ms in 5 ms bins.
ACG_EDGES = np.arange(0.0, 0.1001, 0.005)


def spike_features(spikes: np.ndarray, duration: float, max_spikes: int = 20000) -> np.ndarray:
    """Features of one unit from its spike times.

    Parameters
    ----------
    spikes : (S,) float64
        Sorted spike times (s).
    duration : float
        Recording length (s), for the firing rate.
    max_spikes : int
        The ISI and autocorrelogram use at most this many spikes (the first ones).

    Returns
    -------
    (2 + 20 + 20 + 1,) float64
        ``[log10(rate + 0.01 Hz), CV2, ISI histogram (20, fraction), autocorrelogram
        (20, rate in Hz normalised by the mean rate), burst fraction (ISI < 10 ms)]``.
    """
    t = np.asarray(spikes, dtype=np.float64)
    rate = t.size / max(duration, 1e-9)
    isi = np.diff(t[:max_spikes])
    hist = np.histogram(isi, ISI_EDGES)[0].astype(float)
    hist = hist / hist.sum() if hist.sum() > 0 else hist
    cv2 = float(np.mean(2 * np.abs(np.diff(isi)) / (isi[1:] + isi[:-1] + 1e-12))) if isi.size > 1 else 0.0
    acg = np.zeros(len(ACG_EDGES) - 1)
    ts = t[:max_spikes]
    if ts.size > 1:
        hi = np.searchsorted(ts, ts + ACG_EDGES[-1], side="right")
        for i in range(ts.size):  # pairs within 100 ms only
            d = ts[i + 1:hi[i]] - ts[i]
            if d.size:
                acg += np.histogram(d, ACG_EDGES)[0]
        acg = acg / (ts.size * np.diff(ACG_EDGES)) / max(rate, 1e-3)
    burst = float(np.mean(isi < 0.01)) if isi.size else 0.0
    return np.concatenate([[np.log10(rate + 0.01), cv2], hist, acg, [burst]])


def count_features(counts: np.ndarray, n_lags: int = 10) -> np.ndarray:
    """Features of every unit from binned counts (no spike times available).

    Parameters
    ----------
    counts : (T, N) array
        Spike counts per bin.
    n_lags : int
        Autocorrelation lags (bins).

    Returns
    -------
    (N, 2 + n_lags) float64
        ``[log10(mean count + 1e-3), Fano factor, autocorrelation at lags 1..n_lags]``.
    """
    X = np.asarray(counts, dtype=np.float64)
    m = X.mean(0)
    v = X.var(0)
    Xc = X - m
    ac = np.stack([(Xc[k:] * Xc[:-k]).mean(0) / np.maximum(v, 1e-12) for k in range(1, n_lags + 1)], 1)
    return np.column_stack([np.log10(m + 1e-3), v / np.maximum(m, 1e-12), ac])


def unit_features(spike_trains: list[np.ndarray] | None, duration: float, counts: np.ndarray | None = None
                  ) -> tuple[np.ndarray, str]:
    """Per-neuron feature matrix from spike times, or from counts when there are none.

    Parameters
    ----------
    spike_trains : list of (S_u,) float64 or None
        Spike times (s) of each unit; None, or all empty, means "use counts".
    duration : float
        Recording length (s).
    counts : (T, N) array, optional
        Binned counts, required when spike times are missing.

    Returns
    -------
    features : (N, F) float32
    source : {"units/spike_times", "binned/counts"}

    Raises
    ------
    ValueError
        Neither spike times nor counts are available.
    """
    if spike_trains is not None and any(len(s) for s in spike_trains):
        F = np.stack([spike_features(s, duration) for s in spike_trains])
        return F.astype(np.float32), "units/spike_times"
    if counts is None:
        raise ValueError("no spike times and no binned counts to compute unit features from")
    return count_features(counts).astype(np.float32), "binned/counts"
