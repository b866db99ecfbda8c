"""Progress bars on stderr, shown only when stderr is a terminal and --quiet is off."""

from __future__ import annotations

import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
_enabled = True


def configure(enabled: bool) -> None:
    """Enable or disable progress bars for this process (``--quiet`` disables them)."""
    global _enabled
    _enabled = bool(enabled)


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr when stderr is a terminal."""
    show = _enabled and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, file=sys.stderr, disable=not show, leave=False)
