"""Ground truth for neural speech decoding: phoneme templates in threshold crossings and spike-band power.

:class:`SpeechSimulator` records attempted speech from ``n_electrodes``
electrodes of an intracortical array on several days. Each of ``n_phonemes``
phoneme classes has a spatiotemporal template (``2 n_electrodes`` features x
``template_bins`` bins) and the word separator ``|`` one of its own. A
trial is a sentence of words (2-5 phonemes each, ``min_phonemes`` to
``max_phonemes`` phonemes in all); every phoneme lasts a random number of bins
and plays its template time-warped to that duration, with silence before and
after the sentence. Trials are laid end to end.

Features per bin (20 ms by default), the setting of Willett et al. (2023) and
the Brain-to-Text benchmarks: threshold crossings ``tx ~ Poisson(exp(a + s))``
and spike-band power ``sbp = b + s' + noise`` per electrode, where ``s, s'`` are
the summed templates. Day ``d`` applies a near-identity linear distortion
``x -> M_d x + o_d`` to the feature vector (electrode drift, gain changes), a
random walk from day to day: ``M_0 = I``, ``M_d = M_{d-1} + drift · E_d / sqrt(F)``
(``E_d`` standard normal), ``o_d = o_{d-1} + offset · e_d``; a decoder trained on
the first days loses accuracy on the later ones, more the later the day.

References
----------
Willett et al. (2023) A high-performance speech neuroprosthesis. Nature 620, 1031-1036.
Card et al. (2024) An accurate and rapidly calibrating speech neuroprosthesis. NEJM 391, 609-618.
"""

from __future__ import annotations

import numpy as np

from ncli.models.base import Estimator, check_fitted, check_params
from ncli.simulators.session import SimulatedSession

#: ARPAbet phonemes (39, CMU dictionary order of Willett et al. 2023); the first ``n_phonemes`` are used.
PHONEMES = ("AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH",
            "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V",
            "W", "Y", "Z", "ZH")

#: The word separator token (a vocabulary entry of its own, so word error rates can be computed).
SEPARATOR = "|"


class SpeechSimulator(Estimator):
    """Phoneme sequences encoded in threshold crossings and spike-band power, on several days.

    Parameters
    ----------
    n_electrodes : int
        Electrodes (features ``F = 2 n_electrodes``: threshold crossings then spike-band power), >= 4.
    n_phonemes : int
        Phoneme classes, 16-39 (the first of :data:`PHONEMES`).
    n_days : int
        Days (sessions ``day0``, ``day1``, ...), >= 1.
    n_trials : int
        Sentences per day, >= 1.
    n_words : int
        Words of the lexicon (each a fixed string of 2-5 phonemes), >= 2.
    min_phonemes, max_phonemes : int
        Phonemes per sentence (separators not counted).
    duration_range : (int, int)
        Bins per phoneme or separator (inclusive).
    template_bins : int
        Bins of each template before time-warping (4-8 in the issue's setting).
    gain : float
        Template amplitude (log-rate units for threshold crossings; SBP uses the same scale).
    drift : float
        Size of each day's step of the mixing random walk (0: no day effect).
    offset : float
        Standard deviation of each day's step of the feature offsets (feature units).
    bin_size : float
        Bin width (s).
    seed : int

    Attributes
    ----------
    templates_ : (n_phonemes + 1, template_bins, F) float64
        Templates of the phonemes then of the separator.
    lexicon_ : (n_words, 5) int64
        Phoneme ids of each word, -1 padded.
    mixing_ : (n_days, F, F) float64
        ``M_d`` (identity on day 0).
    offsets_ : (n_days, F) float64
        ``o_d`` (zero on day 0).
    baseline_ : (F,) float64
        Log rate of the threshold crossings / mean spike-band power per feature.
    """

    model_id = "ncli/sim-speech@1"
    _learned = ("templates_", "lexicon_", "mixing_", "offsets_", "baseline_")

    def __init__(self, n_electrodes: int = 32, n_phonemes: int = 24, n_days: int = 8, n_trials: int = 100,
                 n_words: int = 60, min_phonemes: int = 8, max_phonemes: int = 20, duration_range=(6, 12),
                 template_bins: int = 6, gain: float = 1.0, drift: float = 0.8, offset: float = 0.3,
                 bin_size: float = 0.02, seed: int = 0):
        self.n_electrodes = n_electrodes
        self.n_phonemes = n_phonemes
        self.n_days = n_days
        self.n_trials = n_trials
        self.n_words = n_words
        self.min_phonemes = min_phonemes
        self.max_phonemes = max_phonemes
        self.duration_range = tuple(duration_range)
        self.template_bins = template_bins
        self.gain = gain
        self.drift = drift
        self.offset = offset
        self.bin_size = bin_size
        self.seed = seed
        for name in self._learned:
            setattr(self, name, None)

    @property
    def vocabulary(self) -> list[str]:
        """Tokens in class-id order (class id = index + 1; the CTC blank is 0): phonemes, then ``|``."""
        return list(PHONEMES[: int(self.n_phonemes)]) + [SEPARATOR]

    def init_params(self) -> SpeechSimulator:
        """Draw templates, lexicon and each day's distortion from ``seed``.

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            Invalid hyperparameters (the message names the parameter).
        """
        lo, hi = self.duration_range
        check_params([
            (self.n_electrodes >= 4, f"{{n_electrodes}} must be at least 4, got {self.n_electrodes}", "n_electrodes"),
            (16 <= self.n_phonemes <= len(PHONEMES),
             f"{{n_phonemes}} must be in [16, {len(PHONEMES)}], got {self.n_phonemes}", "n_phonemes"),
            (self.n_days >= 1, f"{{n_days}} must be at least 1, got {self.n_days}", "n_days"),
            (self.n_trials >= 1, f"{{n_trials}} must be at least 1, got {self.n_trials}", "n_trials"),
            (self.n_words >= 2, f"{{n_words}} must be at least 2, got {self.n_words}", "n_words"),
            (2 <= self.min_phonemes <= self.max_phonemes,
             f"{{min_phonemes}} must be in [2, max_phonemes], got {self.min_phonemes}", "min_phonemes"),
            (2 <= lo <= hi, f"{{duration_range}} must be ordered and at least 2 bins, got {lo}-{hi}",
             "duration_range"),
            (2 <= self.template_bins <= 16, f"{{template_bins}} must be in [2, 16], got {self.template_bins}",
             "template_bins"),
            (self.gain >= 0, f"{{gain}} must be >= 0, got {self.gain}", "gain"),
            (self.drift >= 0, f"{{drift}} must be >= 0, got {self.drift}", "drift"),
            (self.offset >= 0, f"{{offset}} must be >= 0, got {self.offset}", "offset"),
            (self.bin_size > 0, f"{{bin_size}} must be > 0 s, got {self.bin_size}", "bin_size"),
        ])
        rng = np.random.default_rng([int(self.seed), 53])
        E, K, L = int(self.n_electrodes), int(self.n_phonemes), int(self.template_bins)
        F = 2 * E
        # each phoneme drives a random subset of electrodes with a smooth time course (tx and sbp alike)
        t = np.linspace(0, np.pi, L)
        temps = np.zeros((K + 1, L, F))
        for k in range(K + 1):
            amp = rng.normal(0, 1, E) * (rng.random(E) < 0.5)
            phase = rng.uniform(0, np.pi, E)
            course = np.sin(t[:, None] + phase[None, :]) * amp[None, :]  # (L, E)
            temps[k, :, :E] = course
            temps[k, :, E:] = 0.8 * course + 0.3 * rng.normal(0, 1, (1, E))
        self.templates_ = self.gain * temps
        self.lexicon_ = np.full((int(self.n_words), 5), -1, dtype=np.int64)
        for w in range(int(self.n_words)):
            n = rng.integers(2, 6)
            self.lexicon_[w, :n] = rng.integers(0, K, n)
        self.baseline_ = np.concatenate([rng.uniform(np.log(0.5), np.log(3.0), E), rng.uniform(1.0, 3.0, E)])
        D = int(self.n_days)
        self.mixing_ = np.tile(np.eye(F), (D, 1, 1))
        self.offsets_ = np.zeros((D, F))
        for d in range(1, D):
            drng = np.random.default_rng([int(self.seed), 59, d])
            self.mixing_[d] = self.mixing_[d - 1] + self.drift * drng.normal(0, 1, (F, F)) / np.sqrt(F)
            self.offsets_[d] = self.offsets_[d - 1] + self.offset * drng.normal(0, 1, F)
        return self

    def _sentence(self, rng) -> list[int]:
        """Token ids (0-based: phonemes < n_phonemes, the separator = n_phonemes) of one sentence."""
        K = int(self.n_phonemes)
        target = int(rng.integers(self.min_phonemes, self.max_phonemes + 1))
        out: list[int] = []
        n = 0
        while n < target:
            word = [int(p) for p in self.lexicon_[rng.integers(len(self.lexicon_))] if p >= 0][: target - n]
            if out:
                out.append(K)
            out.extend(word)
            n += len(word)
        return out

    def sample(self) -> list[SimulatedSession]:
        """Simulate every day: ``n_trials`` sentences laid end to end.

        Returns
        -------
        list of SimulatedSession
            Sessions ``day0, day1, ...`` with ``counts`` (T, 2 n_electrodes) float32 (threshold crossings,
            then spike-band power), from ``t_start = 0``; trials ``start_time``, ``stop_time`` (s),
            ``phonemes`` (space-separated tokens, ``|`` between words), ``text`` (the words, each the
            concatenation of its phonemes), ``n_phonemes``; ``latents`` the (T, 1) token id being spoken
            (-1 in silence). ``spike_times`` is empty; no behaviour.

        Raises
        ------
        NotFittedError
            Before :meth:`init_params`.
        """
        check_fitted(self)
        E, K, L = int(self.n_electrodes), int(self.n_phonemes), int(self.template_bins)
        F, dt = 2 * E, float(self.bin_size)
        vocab = self.vocabulary
        lo, hi = self.duration_range
        out = []
        for d in range(int(self.n_days)):
            rng = np.random.default_rng([int(self.seed), 61, d])
            drives, labels, starts, stops, phon, text, nph = [], [], [], [], [], [], []
            t0 = 0
            for _ in range(int(self.n_trials)):
                tokens = self._sentence(rng)
                pieces = [np.zeros((int(rng.integers(5, 11)), F))]
                lab = [np.full(len(pieces[0]), -1)]
                for tok in tokens:
                    dur = int(rng.integers(lo, hi + 1))
                    src = np.linspace(0, L - 1, dur)  # time-warp the template to the phoneme's duration
                    i0 = np.floor(src).astype(int)
                    i1 = np.minimum(i0 + 1, L - 1)
                    frac = (src - i0)[:, None]
                    pieces.append((1 - frac) * self.templates_[tok, i0] + frac * self.templates_[tok, i1])
                    lab.append(np.full(dur, tok))
                tail = int(rng.integers(5, 11))
                pieces.append(np.zeros((tail, F)))
                lab.append(np.full(tail, -1))
                s = np.vstack(pieces)
                drives.append(s)
                labels.append(np.concatenate(lab))
                starts.append(t0 * dt)
                t0 += len(s)
                stops.append(t0 * dt)
                phon.append(" ".join(vocab[t] for t in tokens))
                words, cur = [], []
                for t in tokens + [K]:
                    if t == K:
                        words.append("".join(vocab[p] for p in cur))
                        cur = []
                    else:
                        cur.append(t)
                text.append(" ".join(words))
                nph.append(sum(t != K for t in tokens))
            S = np.vstack(drives)
            tx = rng.poisson(np.exp(self.baseline_[None, :E] + S[:, :E]))
            sbp = self.baseline_[None, E:] + S[:, E:] + rng.normal(0, 0.5, (len(S), E))
            X = np.hstack([tx, sbp]) @ self.mixing_[d].T + self.offsets_[d][None, :]
            out.append(SimulatedSession(
                session_id=f"day{d}",
                ids=np.array([f"e{j:02d}_tx" for j in range(E)] + [f"e{j:02d}_sbp" for j in range(E)]),
                areas=np.array(["6v"] * F), spike_times=[], counts=X.astype(np.float32),
                latents=np.concatenate(labels)[:, None].astype(np.float64), t_start=0.0, bin_size=dt,
                trials={"start_time": np.asarray(starts), "stop_time": np.asarray(stops),
                        "phonemes": np.asarray(phon, dtype=object), "text": np.asarray(text, dtype=object),
                        "n_phonemes": np.asarray(nph, dtype=np.int64)},
                epochs=np.array([[0.0, t0 * dt]]),
            ))
        return out

