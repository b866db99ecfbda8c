"""Stable model ids: what a saved model's ``class`` attribute holds, and how it is resolved.

A fitted model is saved (:meth:`ncli.models.base.Estimator.to_group`) with
``class`` = its **model id**, ``ncli/<name>@<version>`` (the class attribute
``model_id`` of the estimator), never its Python module path, so modules can
move without breaking a store. ``<version>`` is raised when the saved layout
of a model changes so that older code cannot read it.

:data:`MODEL_IDS` is the one registry of ids, ``id -> "module:Class"``,
resolved lazily (loading a ridge decoder never imports torch). :data:`ALIASES`
maps every ``class`` that ncli 0.1.0 wrote (the module path of the class at the
time) to its id, so stores written by 0.1.0 load unchanged. Nothing else is
ever imported: a store from an unknown source cannot name a class to load
(an allowlist; no pickle anywhere).
"""

from __future__ import annotations

import importlib

from ncli.core.errors import DataError

#: model id -> "module:Class" (imported on first use).
MODEL_IDS: dict[str, str] = {
    # decoders
    "ncli/ridge@1": "ncli.models.ridge:RidgeDecoder",
    "ncli/kalman@1": "ncli.models.kalman:KalmanDecoder",
    "ncli/gru@1": "ncli.models.neural_decoders:GRUDecoder",
    "ncli/poyo@1": "ncli.models.neural_decoders:POYODecoder",
    "ncli/possm@1": "ncli.models.possm:POSSMDecoder",
    "ncli/tmt@1": "ncli.models.tmt:TMTDecoder",
    "ncli/gru-ctc@1": "ncli.models.tmt:GRUCTCDecoder",
    # embeddings and dynamics
    "ncli/pca@1": "ncli.models.factor:PCAEmbedding",
    "ncli/fa@1": "ncli.models.factor:FAEmbedding",
    "ncli/nuclr@1": "ncli.models.nuclr:NuCLR",
    "ncli/candy@1": "ncli.models.candy:CANDY",
    "ncli/fa-stabilizer@1": "ncli.models.stabilizer:FAStabilizer",
    "ncli/crrl@1": "ncli.models.crrl:CRRL",
    "ncli/neuropaint@1": "ncli.models.neuropaint:NeuroPaint",
    "ncli/neuropaint-linear@1": "ncli.models.neuropaint:NeuroPaintLinear",
    "ncli/lds@1": "ncli.models.lds:LinearDynamicalSystem",
    # chunking
    "ncli/chunk-pa@1": "ncli.models.chunking:PopulationAveraging",
    "ncli/chunk-ucd@1": "ncli.models.chunking:UnsupervisedChunkDiscovery",
    "ncli/chunk-dsc@1": "ncli.models.chunking:DiscreteSequenceChunking",
    # ground-truth generators (ncli/simulators/), saved as models/truth
    "ncli/sim-lds@1": "ncli.simulators.lds:PoissonLDS",
    "ncli/sim-candy@1": "ncli.simulators.candy:CandySimulator",
    "ncli/sim-nuclr@1": "ncli.simulators.nuclr:NuclrSimulator",
    "ncli/sim-reach@1": "ncli.simulators.reach:ReachSimulator",
    "ncli/sim-crossday@1": "ncli.simulators.crossday:CrossDaySimulator",
    "ncli/sim-areas@1": "ncli.simulators.areas:AreasSimulator",
    "ncli/sim-speech@1": "ncli.simulators.speech:SpeechSimulator",
    "ncli/sim-chunks-concepts@1": "ncli.simulators.chunks:ConceptChunkSimulator",
    "ncli/sim-chunks-sequence@1": "ncli.simulators.chunks:SequenceChunkSimulator",
}

#: ``class`` attribute written by ncli 0.1.0 (module path of the class) -> model id.
ALIASES: dict[str, str] = {
    "ncli.models.ridge.RidgeDecoder": "ncli/ridge@1",
    "ncli.models.kalman.KalmanDecoder": "ncli/kalman@1",
    "ncli.models.neural_decoders.GRUDecoder": "ncli/gru@1",
    "ncli.models.neural_decoders.POYODecoder": "ncli/poyo@1",
    "ncli.models.possm.POSSMDecoder": "ncli/possm@1",
    "ncli.models.factor.PCAEmbedding": "ncli/pca@1",
    "ncli.models.factor.FAEmbedding": "ncli/fa@1",
    "ncli.models.nuclr.NuCLR": "ncli/nuclr@1",
    "ncli.models.candy.CANDY": "ncli/candy@1",
    "ncli.models.lds.LinearDynamicalSystem": "ncli/lds@1",
    "ncli.models.chunking.PopulationAveraging": "ncli/chunk-pa@1",
    "ncli.models.chunking.UnsupervisedChunkDiscovery": "ncli/chunk-ucd@1",
    "ncli.models.chunking.DiscreteSequenceChunking": "ncli/chunk-dsc@1",
    "ncli.models.simulators.PoissonLDS": "ncli/sim-lds@1",
    "ncli.models.simulators.CandySimulator": "ncli/sim-candy@1",
    "ncli.models.simulators.NuclrSimulator": "ncli/sim-nuclr@1",
    "ncli.models.sim_reach.ReachSimulator": "ncli/sim-reach@1",
    "ncli.models.sim_chunks.ConceptChunkSimulator": "ncli/sim-chunks-concepts@1",
    "ncli.models.sim_chunks.SequenceChunkSimulator": "ncli/sim-chunks-sequence@1",
}


def canonical_id(name: str) -> str | None:
    """The model id that a saved ``class`` attribute stands for (an id, or a 0.1.0 alias); None if unknown."""
    if name in MODEL_IDS:
        return name
    return ALIASES.get(name)


def model_class(name: str) -> type:
    """The estimator class of a saved ``class`` attribute (a model id or a 0.1.0 alias).

    Parameters
    ----------
    name : str
        ``"ncli/possm@1"``, or ``"ncli.models.possm.POSSMDecoder"`` as ncli 0.1.0 wrote it.

    Returns
    -------
    type
        The class, imported on first use.

    Raises
    ------
    DataError
        ``name`` is neither a registered id nor an alias (the allowlist):
        ``"refusing to load model class 'os.system' from outside ncli"``, or
        for an id of the ``ncli/<name>@<version>`` form this ncli does not know,
        ``"unknown model id 'ncli/possm@9'"``.
    """
    model_id = canonical_id(name)
    if model_id is None:
        if name.startswith("ncli/") and "@" in name:
            raise DataError(f"unknown model id '{name}'",
                            hint="the model was saved by another version of ncli")
        raise DataError(f"refusing to load model class '{name}' from outside ncli")
    module, _, clsname = MODEL_IDS[model_id].partition(":")
    return getattr(importlib.import_module(module), clsname)


def display(name: str | None) -> str | None:
    """How ``ncli info`` shows a saved ``class``: the id itself, or ``"<alias> (= <id>)"`` for a 0.1.0 store."""
    if not name:
        return name
    model_id = canonical_id(name)
    if model_id is None or model_id == name:
        return name
    return f"{model_id} (saved as {name})"
