"""``ncli decode``: decode a behaviour (or a unit label) with one of the registered methods.

The methods and their options come from the registry (``ncli/methods/decode/``:
ridge, kalman, gru, poyo, possm, and the unit probe that ``--target
units/COLUMN`` selects); this module holds only the options every method
shares. Evaluation (:mod:`ncli.methods.harness`) is either time-blocked K-fold
cross-validation within each session (contiguous folds, ``--lags`` bins
removed from training on both sides of each test block) or a split by
sessions (``--train-sessions``/``--test-sessions``). Writes
``sessions/<sid>/predictions/<method>_<target>`` (T, D) with metrics in its
attributes, and the model refit on all usable bins under
``models/<method>_<target>/<sid>`` (``.../cross_session`` for a session split).
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from ncli.commands._io import open_input, write_result
from ncli.commands._options import Debug, Device, InputStore, NoCache, Output, Overwrite, Quiet, Seed
from ncli.commands._runtime import ncli_command
from ncli.commands._methods import Plan, method_command
from ncli.core.errors import DataError, UsageError
from ncli.methods.decode._base import Request


def _resolve(method: str, common: dict) -> str:
    """``--target units/COLUMN`` runs the unit probe, whatever ``--method`` says; ``trials/COLUMN`` needs a
    sequence method (tmt, gru-ctc) and a sequence method needs ``trials/COLUMN``."""
    from ncli.methods import registry

    target = common.get("target") or ""
    if target.startswith("units/"):
        return "probe"
    table = registry.methods("decode")
    sequence = [n for n, m in table.items() if getattr(m, "task", "regression") == "sequence"]
    if target.startswith("trials/") and method not in sequence:
        raise UsageError(f"--method {method} decodes behaviours, not the sequence target '{target}'", "--method",
                         hint=f"use --method {' or '.join(sequence)}")
    if target and method in sequence and not target.startswith("trials/"):
        raise UsageError(f"--method {method} decodes per-trial sequences; got --target '{target}'", "--target",
                         hint="e.g. --target trials/phonemes")
    return method


@ncli_command("decode")
@method_command("decode", default="ridge", resolve=_resolve)
def decode(
    store: InputStore = None,
    target: Annotated[str, typer.Option("--target", help="Behaviour under binned/behavior; NAME[0,1] or "
                                        "NAME[x,y] picks columns; units/COLUMN probes a unit label; trials/COLUMN "
                                        "decodes a per-trial sequence (tmt, gru-ctc).",
                                        show_default=False)] = "",
    lags: Annotated[int, typer.Option("--lags", help="Past bins added as features (causal); also the gap "
                                      "between training and test blocks.")] = 0,
    folds: Annotated[int, typer.Option("--folds", help="Contiguous cross-validation folds.")] = 5,
    train_sessions: Annotated[Optional[str], typer.Option("--train-sessions", help="Comma-separated sessions "
                                                          "to train on (with --test-sessions).")] = None,
    test_sessions: Annotated[Optional[str], typer.Option("--test-sessions", help="Comma-separated sessions "
                                                         "to test on.")] = None,
    device: Device = "cpu",
    seed: Seed = 0,
    output: Output = None,
    overwrite: Overwrite = False,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    debug: Debug = False,
    *,
    plan: Plan,
) -> None:
    """Decode a behaviour with cross-validation and write predictions and the model.

    Output layer: sessions/<sid>/predictions/<method>_<target> (T, D), NaN where
    not predicted, attrs.metrics (r2, r2_mean, pearson_r, ...); models/<method>_<target>/...
    A summary line goes to stderr; stdout is the output location.
    Options of one method: ncli decode --method NAME --help.
    """
    if not target:
        raise UsageError("missing --target", "--target", hint="name a behaviour under binned/behavior")
    req = Request(store, target, lags=lags, folds=folds, train_sessions=train_sessions,
                  test_sessions=test_sessions, seed=seed, device=device)
    method = plan.build()
    method.check(req)
    src = open_input(store)
    if not src.sessions():
        raise DataError("store has no sessions", src.location)
    if method.streams():
        method.stream(src, req, out=sys.stdout)
        return
    job = method.job(src, req)
    write_result("decode", parent=src, params=job.params, build=job.build, output=output, overwrite=overwrite,
                 no_cache=no_cache, inputs=job.inputs, identity=job.identity, protect=job.protect)
