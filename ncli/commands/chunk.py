"""``ncli chunk``: neural chunking of population activity (DSC, PA, UCD).

Input per session: the binned counts (square-rooted unless ``--no-sqrt``;
calcium dF/F as is) or, with ``--latents NAME``, ``latents/NAME``. Bins that
are not ``binned/valid`` or hold NaN are left out (label -1). Each session is
chunked on its own (sessions have different neurons). The first
``1 - --test-fraction`` of the valid bins fit the model; the rest are held out
(for ``pa`` the split is placed so that the last ``--test-fraction`` of the
labelled bins are held out).

Writes, per session, ``sessions/<sid>/chunks/<NAME>/`` (``labels`` (T,) int32
chunk per bin, ``score`` (T, K) or ``states`` (T,)) and the chunk dictionary
``models/chunk_<NAME>/<sid>/`` (templates, member neurons, method-specific
arrays, metrics). See docs/commands/chunk.md. The methods live in
:mod:`ncli.methods.chunk`, the numerics in :mod:`ncli.models.chunking`.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ncli.commands._io import open_input, refuse_taken_name, write_job
from ncli.commands._options import (Debug, InputStore, NoCache, Output, Overwrite, Quiet, Seed, check_result_name,
                                    finite)
from ncli.commands._runtime import ncli_command
from ncli.commands._methods import Plan, method_command
from ncli.core.errors import DataError
from ncli.methods.chunk._base import ChunkRun


@ncli_command("chunk")
@method_command("chunk", required=True)
def chunk(
    store: InputStore = None,
    latents: Annotated[Optional[str], typer.Option("--latents", help="Chunk latents/NAME instead of the binned "
                                                   "counts.", show_default=False)] = None,
    no_sqrt: Annotated[bool, typer.Option("--no-sqrt", help="Use raw counts (default: square-rooted; calcium "
                                          "dF/F and latents are never transformed).")] = False,
    name: Annotated[Optional[str], typer.Option("--name", help="Output name: chunks/NAME and "
                                                "models/chunk_NAME. Default: the method.",
                                                show_default=False)] = None,
    test_fraction: Annotated[float, typer.Option("--test-fraction", help="Held-out fraction of the bins (pa: of "
                                                 "the labelled bins), at the end of each session.")] = 0.3,
    control: Annotated[bool, typer.Option("--control", help="Also fit a shuffle control (pa: labels shifted in "
                                          "time; dsc/ucd: each neuron shifted in time) and store its "
                                          "metrics as control_*.")] = False,
    seed: Seed = 0,
    output: Output = None,
    overwrite: Overwrite = False,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    debug: Debug = False,
    *,
    plan: Plan,
) -> None:
    """Chunk population activity into recurring population states (DSC, PA or UCD).

    Output layer per session: chunks/<NAME>/labels (T,) int32 (-1: none),
    chunks/<NAME>/score (T, K) (pa: deviation / threshold; ucd: cosine
    similarity) or chunks/<NAME>/states (T,) (dsc), and models/chunk_<NAME>/<sid>
    (templates_, members_, ...; attrs metrics). Prints the output location.
    """
    finite(test_fraction, "--test-fraction", minimum=0.0, maximum=0.9)
    method = plan.build()
    method.check(test_fraction)
    check_result_name(name)
    name = name or method.name
    src = open_input(store)
    sessions = src.sessions()
    if not sessions:
        raise DataError("store has no sessions", src.location)
    refuse_taken_name(src, name, [f"models/chunk_{name}"] + [f"sessions/{sid}/chunks/{name}" for sid in sessions],
                      "chunks")
    run = ChunkRun(src, sessions, latents=latents, sqrt=not no_sqrt, name=name, test_fraction=test_fraction,
                   control=control, seed=seed)
    write_job("chunk", src, method.job(run), output=output, overwrite=overwrite, no_cache=no_cache)
