"""``decode --method popmean``: ridge regression on the population-mean activity, a baseline.

How much of a behaviour can be read from the population's overall activity
alone, with no unit-specific weights? The feature of each bin is the mean over
units of the (square-rooted) counts, with ``--lags`` past bins, regressed on
the target by ridge regression with the penalty chosen by generalised
cross-validation (:class:`ncli.models.ridge.RidgeDecoder`). A decoder that does
not beat this baseline by a clear margin is reading out arousal, movement
vigour or a global gain change, not a population code (compare the
"population rate" control of Churchland et al. 2012, Nature 487:51-56, and
the gain confound discussed by Stringer et al. 2019, Science 364:eaav7893).

This module is the worked example of docs/adding-a-method.md: one file, one
``@register``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ncli.methods.decode._base import LinearMethod
from ncli.methods.registry import Example, option, register
from ncli.models.ridge import DEFAULT_ALPHAS, RidgeDecoder


@dataclass
class PopMeanConfig:
    """Options of ``--method popmean``."""

    sqrt: bool = option(True, "Square-root transform counts before averaging over units.", secondary="--no-sqrt")


@register
class PopMean(LinearMethod):
    """Ridge regression of the target on the population-mean activity (one feature per lag).

    Input: binned counts ``(T, N)`` of every session; feature ``(T, 1)`` =
    mean over the ``N`` units of ``sqrt(counts)`` (``--no-sqrt``: of the
    counts; calcium dF/F is averaged as is); evaluated like ``ridge`` (blocked
    K-fold with a ``--lags`` gap, or a session split). Writes
    ``predictions/popmean_<target>`` and ``models/popmean_<target>/<sid>``
    (a saved ``ncli/ridge@1``).
    """

    name = "popmean"
    summary = "baseline: ridge on the population-mean activity"
    Config = PopMeanConfig
    estimator = RidgeDecoder
    invariances = ("seed", "permutation", "causal")
    example = Example(setup=(("simulate", "lds", "--duration", "30", "--units", "10", "--sessions", "2"),),
                      args=("--target", "velocity", "--lags", "2", "--folds", "2"), split=("sim0", "sim1"))

    def transform(self, F: np.ndarray) -> np.ndarray:
        """(T, N) activity -> (T, 1) its mean over units (NaN where any unit is NaN)."""
        return F.mean(axis=1, keepdims=True)

    def feature_source(self) -> str:
        return "binned/counts (population mean)"

    def alpha_param(self):
        return list(DEFAULT_ALPHAS)

    def make_model(self):
        return RidgeDecoder(alphas=DEFAULT_ALPHAS)
