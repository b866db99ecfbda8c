"""``decode --method gru-ctc``: the Brain-to-Text baseline shape, a GRU over patches of bins with CTC.

Day-specific input layers (``softsign(W_d x + b_d)``, one per training
session; a test session uses the last training session's), patches of
``--patch`` bins every ``--stride`` bins, a ``--layers`` x ``--hidden`` GRU and
a linear CTC readout (:class:`ncli.models.tmt.GRUCTCDecoder`; Willett et al.
2023, Card et al. 2024; the B2T'25 baseline is 5 x 768 with patches of 14 bins,
stride 4). Smaller defaults here, for the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from ncli.methods.decode._sequence import SequenceConfig, SequenceMethod
from ncli.methods.decode.tmt import SPEECH_SETUP
from ncli.methods.registry import Example, option, register


@dataclass
class GRUCTCConfig(SequenceConfig):
    hidden: int = option(128, "GRU width (B2T'25: 768).", minimum=1)
    layers: int = option(2, "GRU layers (B2T'25: 5).", minimum=1)
    patch: int = option(14, "Bins per input patch.", minimum=1)
    stride: int = option(4, "Bins between patches.", minimum=1)


@register
class GRUCTC(SequenceMethod):
    """GRU + CTC baseline with day-specific input layers."""

    name = "gru-ctc"
    summary = "baseline: day-specific softsign inputs, GRU over patches, CTC (--target trials/COLUMN)"
    Config = GRUCTCConfig
    estimator = "ncli.models.tmt:GRUCTCDecoder"
    example = Example(setup=SPEECH_SETUP, args=("--target", "trials/phonemes", "--steps", "3", "--hidden", "8",
                                                "--layers", "1", "--folds", "3"))

    def make_decoder(self, seed: int, device: str, n_classes: int):
        from ncli.models.tmt import GRUCTCDecoder

        c = self.config
        return GRUCTCDecoder(hidden=c.hidden, layers=c.layers, patch=c.patch, stride=min(c.stride, c.patch),
                             steps=c.steps, batch=c.batch, lr=c.lr, smooth=c.smooth, causal=c.causal,
                             noise=c.noise, offset_noise=c.offset_noise, n_classes=n_classes, seed=seed,
                             device=device)
