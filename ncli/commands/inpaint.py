"""``ncli inpaint``: infer the dynamics of every area, recorded or not, from sessions that each record some.

Input: a store whose sessions have ``binned/counts`` and ``units/area``; the
areas are the ``units/area`` values (or ``--areas``). Sessions are cut into
windows: the trials when they all span ``--window`` bins (default: their
length), else consecutive windows.

Writes, per session, ``latents/NAME/<area>`` (T, K) for every area,
``predictions/NAME_rates`` (T, N) Hz where a readout exists, and
``models/inpaint_NAME`` (the fitted model under ``model/``, the
``--evaluate`` metrics in its attributes and per-session arrays). See
docs/commands/inpaint.md; methods in :mod:`ncli.methods.inpaint`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ncli.commands._io import open_input, refuse_taken_name, write_job
from ncli.commands._methods import Plan, method_command
from ncli.commands._options import (
    Debug,
    InputStore,
    NoCache,
    Output,
    Overwrite,
    Quiet,
    Seed,
    check_result_name,
    finite,
)
from ncli.commands._runtime import ncli_command
from ncli.core.errors import DataError, UsageError
from ncli.methods.inpaint._base import InpaintRun


@ncli_command("inpaint")
@method_command("inpaint", default="neuropaint")
def inpaint(
    store: InputStore = None,
    areas: Annotated[str | None, typer.Option("--areas", help="Comma-separated areas to model (default: "
                                                 "every units/area value).", show_default=False)] = None,
    window: Annotated[int | None, typer.Option("--window", help="Window length in bins (default: the trial "
                                                  "length when all trials have one, else 50).",
                                                  show_default=False)] = None,
    evaluate: Annotated[bool, typer.Option("--evaluate", help="Hold out one recorded area per session and "
                                           "score it (deviance explained, bits/spike) against the GLM "
                                           "baseline and, on simulated stores, the true rates.")] = False,
    holdout: Annotated[str | None, typer.Option("--holdout", help="The area to hold out with --evaluate "
                                                   "(default: each session's recorded areas in turn).",
                                                   show_default=False)] = None,
    test_fraction: Annotated[float, typer.Option("--test-fraction", help="Fraction of the windows (trials) "
                                                 "held out for scoring.")] = 0.4,
    min_spikes: Annotated[int, typer.Option("--min-spikes", help="Held-out neurons with fewer test spikes are "
                                            "dropped from the scores (and counted).")] = 20,
    name: Annotated[str | None, typer.Option("--name", help="Output name: latents/NAME/<area>, "
                                                "predictions/NAME_rates, models/inpaint_NAME. Default: the "
                                                "method.", show_default=False)] = None,
    seed: Seed = 0,
    output: Output = None,
    overwrite: Overwrite = False,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    debug: Debug = False,
    *,
    plan: Plan,
) -> None:
    """Infer factors of every area (recorded or not) in every session (NeuroPaint, NeurIPS 2025).

    Output layer per session: latents/<NAME>/<area> (T, K) float32 for every area,
    predictions/<NAME>_rates (T, N) Hz (NaN where no readout), and models/inpaint_<NAME>
    (model, --evaluate metrics). Prints the output location.
    """
    finite(test_fraction, "--test-fraction", minimum=0.05, maximum=0.95)
    if window is not None and window < 4:
        raise UsageError(f"--window must be at least 4, got {window}", "--window")
    if min_spikes < 0:
        raise UsageError(f"--min-spikes must be at least 0, got {min_spikes}", "--min-spikes")
    if holdout is not None and not evaluate:
        raise UsageError("--holdout applies to --evaluate only", "--holdout")
    method = plan.build()
    check_result_name(name)
    name = name or method.name
    area_list = [a.strip() for a in areas.split(",") if a.strip()] if areas else None
    src = open_input(store)
    sessions = src.sessions()
    if not sessions:
        raise DataError("store has no sessions", src.location)
    if holdout is not None and area_list is not None and holdout not in area_list:
        raise UsageError(f"--holdout {holdout} is not one of --areas", "--holdout")
    refuse_taken_name(src, name, [f"models/inpaint_{name}"] + [f"sessions/{sid}/latents/{name}"
                                                               for sid in sessions], "inpaint")
    run = InpaintRun(src, sessions, areas=area_list, window=window, evaluate=evaluate, holdout=holdout,
                     test_fraction=test_fraction, min_spikes=min_spikes, name=name, seed=seed)
    write_job("inpaint", src, method.job(run), output=output, overwrite=overwrite, no_cache=no_cache)
