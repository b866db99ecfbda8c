"""Cross-day decoding benchmark: CRRL and the FA + Procrustes stabiliser on the crossday simulator.

The default simulator (100 channels, 8 directions x 100 trials, 50 bins of 50 ms)
with one later day per scenario (shuffle, lost, tuning, mixed; default
fractions). For each method: training time (the whole fit: every day) and
inference time per later session (``transform`` of one session), the planted
permutation recovered by CRRL (moved and unmoved channels, against
``models/truth``), and the fixed day-0 decoder (ridge on the day-0 counts or
aligned features, no lags, fitted on day 0, applied unchanged to each later day):
R² of the velocity per scenario on raw counts, on CRRL-aligned counts and on the
procrustes latents. torch runs on one thread (``NCLI_BENCH_THREADS``). Writes
bench/results/crossday.json.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from ncli.core.metrics import r2_score  # noqa: E402
from ncli.models.crrl import CRRL  # noqa: E402
from ncli.models.ridge import RidgeDecoder  # noqa: E402
from ncli.models.stabilizer import FAStabilizer  # noqa: E402
from ncli.simulators import CrossDaySimulator  # noqa: E402

SCENARIOS = ("shuffle", "lost", "tuning", "mixed")


def fixed_decoder_r2(F0: np.ndarray, Y0: np.ndarray, Fs: list, Ys: list) -> list:
    """R² (mean over x, y) of a ridge decoder fitted on day 0's features and applied to each later day."""
    dec = RidgeDecoder().fit(F0, Y0)
    return [float(np.mean(r2_score(Y, dec.predict(F)))) for F, Y in zip(Fs, Ys)]


def fixed_decoder_accuracy(F0: np.ndarray, Y0: np.ndarray, Fs: list, targets: list, n_bins: int,
                           n_directions: int) -> list:
    """Target accuracy per trial of the same fixed decoder: the mean decoded velocity over each trial's
    bins points to the nearest of the ``n_directions`` targets."""
    dec = RidgeDecoder().fit(F0, Y0)
    out = []
    for F, tgt in zip(Fs, targets):
        v = dec.predict(F)[: len(tgt) * n_bins].reshape(len(tgt), n_bins, -1).mean(axis=1)
        k = np.round(np.arctan2(v[:, 1], v[:, 0]) / (2 * np.pi / n_directions)).astype(int) % n_directions
        out.append(float(np.mean(k == np.asarray(tgt))))
    return out


def main() -> int:
    import torch

    torch.set_num_threads(int(os.environ.get("NCLI_BENCH_THREADS", "1")))
    sim = CrossDaySimulator(n_days=1 + len(SCENARIOS), scenarios=SCENARIOS, seed=0).init_params()
    days = sim.sample()
    B, N = sim.n_bins, sim.n_channels
    X = [d.counts.astype(np.float64) for d in days]
    Y = [d.behavior["velocity"]["data"] for d in days]
    trials = [np.stack([np.arange(len(d.trials["target"])) * B, np.arange(len(d.trials["target"])) * B + B], 1)
              for d in days]
    out = {"simulator": {"channels": N, "directions": sim.n_directions, "trials": sim.n_trials, "bins": B,
                         "bin_size": sim.bin_size, "scenarios": list(SCENARIOS), "bins_per_day": int(X[0].shape[0])},
           "threads": torch.get_num_threads()}

    t0 = time.perf_counter()
    crrl = CRRL(seed=0).fit(X[0], trials[0], days[0].trials["target"], X[1:], trials[1:])
    crrl_fit = time.perf_counter() - t0
    aligned, inf = [], []
    for s in range(1, len(X)):
        t0 = time.perf_counter()
        aligned.append(crrl.transform(X[s], s))
        inf.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    fa = FAStabilizer(n_latents=10, seed=0).fit(X)
    fa_fit = time.perf_counter() - t0
    lat, fa_inf = [], []
    for s in range(len(X)):
        t0 = time.perf_counter()
        lat.append(fa.transform(X[s], s))
        fa_inf.append(time.perf_counter() - t0)

    recovery = {}
    for s, scen in enumerate(SCENARIOS, start=1):
        want = np.full(N, -1)
        for j, u in enumerate(sim.perm_[s]):
            if u >= 0:
                want[u] = j
        moved = (want >= 0) & (want != np.arange(N))
        stay = want == np.arange(N)
        recovery[scen] = {"moved": int(moved.sum()),
                          "moved_recovered": float(np.mean(crrl.perm_[s][moved] == want[moved])) if moved.any()
                          else None,
                          "unmoved_kept": float(np.mean(crrl.perm_[s][stay] == want[stay])),
                          "restored": int(crrl.missing_[s].sum()),
                          "units_gone": int((want < 0).sum()), "sinkhorn_error": float(crrl.sinkhorn_error_[s])}
    r2 = {"raw": fixed_decoder_r2(X[0], Y[0], X[1:], Y[1:]),
          "crrl": fixed_decoder_r2(X[0], Y[0], aligned, Y[1:]),
          "procrustes": fixed_decoder_r2(lat[0], Y[0], lat[1:], Y[1:])}
    out["fixed_decoder_r2"] = {k: dict(zip(SCENARIOS, v)) for k, v in r2.items()}
    tg = [d.trials["target"] for d in days[1:]]
    acc = {"raw": fixed_decoder_accuracy(X[0], Y[0], X[1:], tg, B, sim.n_directions),
           "crrl": fixed_decoder_accuracy(X[0], Y[0], aligned, tg, B, sim.n_directions),
           "procrustes": fixed_decoder_accuracy(lat[0], Y[0], lat[1:], tg, B, sim.n_directions)}
    out["fixed_decoder_trial_accuracy"] = {k: dict(zip(SCENARIOS, v)) for k, v in acc.items()}
    out["day0_r2_in_sample"] = fixed_decoder_r2(X[0], Y[0], [X[0]], [Y[0]])[0]
    out["crrl"] = {"train_seconds_all_days": crrl_fit, "train_seconds_per_later_day": crrl_fit / len(SCENARIOS),
                   "inference_seconds_per_session": dict(zip(SCENARIOS, inf)), "recovery": recovery,
                   "config": crrl.get_config()}
    out["procrustes"] = {"train_seconds_all_days": fa_fit, "train_seconds_per_day": fa_fit / len(X),
                         "inference_seconds_per_session": dict(zip(SCENARIOS, fa_inf[1:])),
                         "n_stable": fa.stable_.sum(axis=1).astype(int).tolist()}
    path = HERE / "results" / "crossday.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({"fixed_decoder_r2": out["fixed_decoder_r2"],
                      "fixed_decoder_trial_accuracy": out["fixed_decoder_trial_accuracy"], "crrl_fit_s": round(crrl_fit, 1),
                      "procrustes_fit_s": round(fa_fit, 1), "recovery": recovery}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
