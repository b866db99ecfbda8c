"""Shared torch building blocks and the one training loop of the torch estimators.

============================  =====================================================
module                        contents
============================  =====================================================
:mod:`.rotary`                :class:`Rotary` time embedding (RoFormer §3.4)
:mod:`.attention`             :class:`SpikeCrossAttention` (POYO/POSSM spike tokens
                              -> latents), :class:`OutputAttention` (POSSM readout)
:mod:`.s4d`                   :class:`S4DLayer` (Gu et al. 2022), :class:`Backbone`
                              (GRU or S4D stack)
:mod:`.transformer`           :class:`PreNormBlock` with additive attention bias
:mod:`.kalman`                :class:`KalmanLDS`, a differentiable Kalman filter
:mod:`.mlp`                   :class:`MLP` (LeakyReLU)
:mod:`.vocab`                 extendable unit / session vocabularies, row-wise fine-tuning
:mod:`.train`                 seeding, device, optimiser, warm-up + cosine schedule,
                              :func:`fit_loop` (clipping, progress, early stopping)
:mod:`.weights`               the one layout of torch weights in a store
============================  =====================================================

Users: POSSM (:mod:`ncli.models.possm`), POYO and GRU
(:mod:`ncli.models.neural_decoders`), NuCLR (:mod:`ncli.models.nuclr`), CANDY
(:mod:`ncli.models.candy`).

Importing this package (or any module of it) does not import torch: each
module builds its ``nn.Module`` classes the first time one is looked up
(``from ncli.models.nn.s4d import S4DLayer`` inside a function, or
:func:`modules`).
"""

from __future__ import annotations

_BLOCKS = {
    "rotary": ("Rotary",),
    "attention": ("SpikeCrossAttention", "OutputAttention"),
    "s4d": ("S4DLayer", "Backbone"),
    "transformer": ("PreNormBlock",),
    "kalman": ("KalmanLDS",),
    "mlp": ("MLP",),
}


def modules() -> dict:
    """Every torch block class by name (imports torch on first call).

    Returns
    -------
    dict str -> type
        ``{"Rotary": ..., "SpikeCrossAttention": ..., "S4DLayer": ..., ...}``.
    """
    import importlib

    out = {}
    for mod, names in _BLOCKS.items():
        m = importlib.import_module(f"{__name__}.{mod}")
        out.update({n: getattr(m, n) for n in names})
    return out


def import_torch():
    """The ``torch`` module, imported on first use."""
    import torch as _t

    return _t
