"""``ncli fit-lds``: one linear dynamical system shared by every session's latents.

Input: ``sessions/<sid>/latents/NAME`` (any latents, e.g. from ``embed``) or,
with ``--counts``, the square-rooted binned counts. Bins that are not
``binned/valid`` or hold NaN are missing observations. The last
``--test-fraction`` of each session is held out: it is never used for fitting
and scores the k-step-ahead forecasts (k = 1..4).

Writes a layer with ``sessions/<sid>/latents/lds`` (T, K) float32, the smoothed
state (NaN for missing bins), and ``models/lds`` (parameters, log-likelihood
curve, eigenvalues with time constants and rotation frequencies, forecast R²).
The methods (ssid, em) live in :mod:`ncli.methods.fit_lds`, the numerics in
:mod:`ncli.models.lds`.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ncli.commands._io import open_input, write_job
from ncli.commands._options import Debug, InputStore, NoCache, Output, Overwrite, Quiet, Seed
from ncli.commands._runtime import ncli_command
from ncli.commands._methods import Plan, method_command
from ncli.core.errors import DataError, UsageError
from ncli.methods.fit_lds._base import LdsRun


@ncli_command("fit-lds")
@method_command("fit-lds", default="em")
def fit_lds(
    store: InputStore = None,
    latents: Annotated[Optional[str], typer.Option("--latents", help="Fit the latents under "
                                                   "sessions/*/latents/NAME.", show_default=False)] = None,
    counts: Annotated[bool, typer.Option("--counts", help="Fit the square-rooted binned counts instead of "
                                         "latents (all sessions must have the same units).")] = False,
    test_fraction: Annotated[float, typer.Option("--test-fraction", help="Last fraction of each session held "
                                                 "out of fitting; scores the k-step forecasts.")] = 0.2,
    seed: Seed = 0,
    output: Output = None,
    overwrite: Overwrite = False,
    no_cache: NoCache = False,
    quiet: Quiet = False,
    debug: Debug = False,
    *,
    plan: Plan,
) -> None:
    """Fit one linear dynamical system to every session (subspace identification + EM).

    Output layer: sessions/<sid>/latents/lds (T, K) smoothed states (NaN for missing
    bins) and models/lds (A_, C_, Q_, R_, d_, x0_, P0_, loglik_, eigenvalues_,
    time_constants_s, rotation_hz, forecast_r2; attrs metrics). Prints the output
    store's location; a summary goes to stderr.
    """
    method = plan.build()
    method.check()
    if not 0 <= test_fraction < 0.9:
        raise UsageError(f"--test-fraction must be in [0, 0.9), got {test_fraction}", "--test-fraction")
    if counts and latents is not None:
        raise UsageError("--latents and --counts are mutually exclusive", "--latents/--counts")
    src = open_input(store)
    sessions = src.sessions()
    if not sessions:
        raise DataError("store has no sessions", src.location)
    run = LdsRun(src, sessions, latents=latents, counts=counts, test_fraction=test_fraction, seed=seed)
    write_job("fit-lds", src, method.job(run), output=output, overwrite=overwrite, no_cache=no_cache)
