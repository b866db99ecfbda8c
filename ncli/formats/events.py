"""The NDJSON event protocol of ncli's online tools: spike events in, prediction records out.

Spike events are newline-delimited JSON objects, one per line, in time order::

    {"t": 12.3456, "unit": "u017"}      a spike (seconds on the store's clock; unit id as in units/id)
    {"t": 12.4}                          a clock tick: no spike, but time has advanced

``t`` must be a finite number of seconds (not a string or a boolean);
``"unit": null`` is refused (leave the key out for a tick); an event may lie
at most :data:`MAX_JUMP_S` seconds after the previous one (or the session
start), so one wrong timestamp cannot flood the output with empty chunks.
Blank lines are skipped.

Predictions go out as one JSON object per line, written and flushed as soon
as each is made (:func:`write_record`), e.g.
``{"session": "s0", "bin": 17, "t": 0.9, "x": 1.2, "y": -0.3}``.

Used by ``ncli decode --stream`` and meant for every online tool (the
closed-loop stimulation server of ``stimopt``); the chunk clock that consumes
the events is :mod:`ncli.core.online`.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Iterable, Iterator, Sequence

import numpy as np

from ncli.core.errors import DataError, UsageError

MAX_JUMP_S = 3600.0  # an event may lie at most this far after the previous one (or the session start)


def open_events(path: str) -> tuple[IO[str], str]:
    """The text stream of an event source: ``"-"`` is stdin, anything else a file.

    Returns
    -------
    stream : text file
        Left open (it is read to its end; the process closes it at exit).
    where : str
        ``"stdin"`` or the path, for error messages.

    Raises
    ------
    UsageError
        ``path`` is not an existing file.
    """
    if path != "-" and not os.path.isfile(path):
        raise UsageError("no such spike-event file (or not a file)", path, hint="give an NDJSON file or - for stdin")
    if path == "-":
        return sys.stdin, "stdin"
    return open(path, encoding="utf-8"), path


def read_spike_events(lines: Iterable[str], unit_index: dict, session: str, t0: float,
                      where: str = "stdin") -> Iterator[tuple[float, int]]:
    """Parse and validate NDJSON spike events lazily, one line at a time.

    Parameters
    ----------
    lines : iterable of str
        The event lines (a text stream).
    unit_index : dict
        Unit id (str) -> unit index.
    session : str
        Session id, for the unknown-unit error.
    t0 : float
        Session start (s): the first event may lie at most :data:`MAX_JUMP_S` after it.
    where : str
        The source, for error messages.

    Yields
    ------
    (t, unit) : (float, int)
        Event time (s) and the unit's index, or -1 for a clock tick.

    Raises
    ------
    DataError
        A line that is not an object with a finite numeric ``t`` (booleans and strings are refused),
        a null unit, times out of order or jumping more than ``MAX_JUMP_S`` ahead, or an unknown unit.
    """
    last, prev = -np.inf, t0
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            ev = json.loads(line)
            t = ev["t"]
        except (ValueError, KeyError, TypeError):
            raise DataError(f"line {n} of the spike events is not a JSON object with a time 't'", where,
                            hint='e.g. {"t": 12.345, "unit": "17"}') from None
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not np.isfinite(t):
            raise DataError(f"line {n} of the spike events: 't' must be a finite number of seconds, got {t!r}",
                            where)
        t = float(t)
        if t < last:
            raise DataError(f"spike events must come in time order (line {n}: t = {t})", where)
        if t - prev > MAX_JUMP_S:
            raise DataError(f"line {n} of the spike events jumps {t - prev:.6g} s ahead (at most {MAX_JUMP_S:g} s "
                            "after the previous event)", where, hint="check the rig's clock")
        last = prev = t
        if "unit" in ev and ev["unit"] is None:
            raise DataError(f"line {n} of the spike events has a null unit", where,
                            hint='leave "unit" out for a clock tick')
        unit = ev.get("unit")
        if unit is None:
            yield t, -1
            continue
        if str(unit) not in unit_index:
            raise DataError(f"unknown unit '{unit}' on line {n}", f"session {session}")
        yield t, unit_index[str(unit)]


def prediction_record(session: str, bin_index: int, t: float, columns: Sequence[str], values) -> dict:
    """One output record: ``{"session", "bin", "t" (bin end, s, rounded to 1 ns), <column>: value, ...}``."""
    rec = {"session": session, "bin": int(bin_index), "t": round(t, 9)}
    rec.update({c: float(v) for c, v in zip(columns, values)})
    return rec


def write_record(out: IO[str], record: dict) -> None:
    """Write one NDJSON line and flush it, so a reader downstream sees it at once."""
    out.write(json.dumps(record) + "\n")
    out.flush()
