"""``decode --method tmt``: time-masked causal transformer + CTC, with optional test-time adaptation.

Decodes a per-trial label sequence (``--target trials/phonemes``) with
:class:`ncli.models.tmt.TMTDecoder`: a causal transformer over patches of 5
bins with a T5-style relative position bias, trained with CTC under time
masking (20 masks per trial, each up to 7.5 % of the patches; more than half a
trial masked on average), white noise and per-channel offsets. ``--adapt``
decodes the test sessions' trials in order and, after writing each, takes one
optimiser step on 64 noisy, time-masked copies of it with its own decoded
sequence as the pseudo-label, updating only the patch embedding
("Time-Masked Transformers with Lightweight Test-Time Adaptation for Neural
Speech Decoding", NeurIPS 2025). Greedy CTC decoding; ``--lm FILE.arpa`` runs a
beam search with an n-gram model when pyctcdecode and kenlm are installed.
"""

from __future__ import annotations

from dataclasses import dataclass

from ncli.core.errors import UsageError
from ncli.methods.decode._sequence import SequenceConfig, SequenceMethod
from ncli.methods.registry import Example, option, register

SPEECH_SETUP = (("simulate", "speech", "--days", "2", "--trials", "6", "--electrodes", "8", "--phonemes", "16"),)


@dataclass
class TMTConfig(SequenceConfig):
    d: int = option(64, "Width of the patch embedding and transformer blocks.", minimum=1)
    layers: int = option(2, "Transformer blocks.", minimum=1)
    heads: int = option(4, "Attention heads (divides --d).", minimum=1)
    patch: int = option(5, "Bins per patch (5 = 100 ms at 20 ms bins).", minimum=1)
    n_masks: int = option(20, "Time masks per training trial (0: no masking).", minimum=0, flag="--masks")
    max_mask: float = option(0.075, "Largest time mask as a fraction of the trial's patches.", minimum=0.0,
                             maximum=1.0)
    adapt: bool = option(False, "Test-time adaptation of the patch embedding on each test trial after decoding it.")
    adapt_copies: int = option(64, "Noisy, time-masked copies per adaptation step.", minimum=1, requires="adapt")
    adapt_lr: float = option(3e-4, "Learning rate of the adaptation (Adam).", positive=True, requires="adapt")
    adapt_reset: bool = option(False, "Restore the trained patch embedding before every test trial.",
                               requires="adapt")
    lm: str | None = option(None, "ARPA n-gram language model for a CTC beam search (needs pyctcdecode "
                               "and kenlm).", metavar="FILE.arpa")


@register
class TMT(SequenceMethod):
    """Time-masked causal transformer with CTC and test-time adaptation."""

    name = "tmt"
    summary = "time-masked causal transformer + CTC over trials (--target trials/COLUMN), --adapt"
    Config = TMTConfig
    estimator = "ncli.models.tmt:TMTDecoder"
    example = Example(setup=SPEECH_SETUP, args=("--target", "trials/phonemes", "--steps", "3", "--d", "8",
                                                "--heads", "2", "--layers", "1", "--train-sessions", "day0",
                                                "--test-sessions", "day1", "--adapt", "--adapt-copies", "2"))

    def check(self, req) -> None:
        super().check(req)
        if self.config.d % self.config.heads:
            raise UsageError(f"--d must be a multiple of --heads ({self.config.heads}), got {self.config.d}", "--d")
        if self.config.lm is not None:
            from pathlib import Path

            if not Path(self.config.lm).expanduser().is_file():
                raise UsageError(f"language model file not found: {self.config.lm}", "--lm",
                                 hint="give an ARPA n-gram file, or drop --lm for greedy decoding")
            try:
                import kenlm  # noqa: F401
                import pyctcdecode  # noqa: F401
            except ImportError:
                raise UsageError("--lm needs pyctcdecode and kenlm, which are not installed", "--lm",
                                 hint="pip install pyctcdecode https://github.com/kpu/kenlm/archive/master.zip; "
                                 "greedy decoding needs neither") from None
            raise UsageError("--lm beam search is not implemented yet", "--lm", hint="drop --lm for greedy decoding")

    def make_decoder(self, seed: int, device: str, n_classes: int):
        from ncli.models.tmt import TMTDecoder

        c = self.config
        return TMTDecoder(d=c.d, layers=c.layers, heads=c.heads, patch=c.patch, n_masks=c.n_masks,
                          max_mask=c.max_mask, steps=c.steps, batch=c.batch, lr=c.lr, smooth=c.smooth,
                          causal=c.causal, noise=c.noise, offset_noise=c.offset_noise, n_classes=n_classes,
                          seed=seed, device=device)

    def adapt_options(self) -> dict | None:
        c = self.config
        return {"copies": c.adapt_copies, "lr": c.adapt_lr, "reset": c.adapt_reset} if c.adapt else None
