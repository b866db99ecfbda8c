"""Option types and value checks shared by every command (no I/O, no error handling).

``InputStore``, ``Output``, ``Overwrite``, ``NoCache``, ``Quiet``, ``Debug``,
``Seed``, ``Device`` are the Typer annotations of the options every command
shares; :func:`finite`, :func:`choice` and :func:`check_result_name` check
option values with ncli's wording. Method-specific options come from the
registry (:mod:`ncli.commands._methods`).
"""

from __future__ import annotations

from typing import Annotated, Optional

import numpy as np
import typer

from ncli.core.errors import UsageError


InputStore = Annotated[
    Optional[str],
    typer.Argument(help="Input store (path or URL); '-' or omitted: read its location from stdin.",
                   show_default=False),
]
Output = Annotated[
    Optional[str],
    typer.Option("--output", "-o", help="Output store location. Default: the run cache ($NCLI_CACHE).",
                 show_default=False),
]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing -o target.")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Recompute even when the run cache holds this result.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr; no progress bars.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")]
Seed = Annotated[int, typer.Option("--seed", min=0, help="Random seed (>= 0); the same seed gives the same result.")]
Device = Annotated[str, typer.Option("--device", help="Torch device: cpu, cuda or auto.")]


def finite(value: float | None, option: str, *, minimum: float | None = None, positive: bool = False,
           maximum: float | None = None) -> float | None:
    """Check a numeric option: finite, and within bounds when given (UsageError otherwise)."""
    if value is None:
        return None
    if not np.isfinite(value):
        raise UsageError(f"{option} must be a finite number, got {value}", option)
    if positive and value <= 0:
        raise UsageError(f"{option} must be > 0, got {value:g}", option)
    if minimum is not None and value < minimum:
        raise UsageError(f"{option} must be >= {minimum:g}, got {value:g}", option)
    if maximum is not None and value > maximum:
        raise UsageError(f"{option} must be <= {maximum:g}, got {value:g}", option)
    return float(value)


def choice(value: str, allowed: list[str], option: str) -> str:
    """Validate a string option against its allowed values (UsageError otherwise)."""
    if value not in allowed:
        raise UsageError(f"invalid value '{value}' for {option}", option,
                         hint=f"choose one of: {', '.join(allowed)}")
    return value


def check_result_name(name: str | None) -> None:
    """Refuse a ``--name`` that is not one store path component (empty, with '/', or starting with '.').

    Raises
    ------
    UsageError
    """
    if name is not None and (not name.strip() or "/" in name or name.startswith(".")):
        raise UsageError(f"invalid --name '{name}' (one path component, not starting with '.')", "--name")
