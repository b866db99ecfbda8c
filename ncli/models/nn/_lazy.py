"""Deferred torch classes: a module ``__getattr__`` that builds them on first access.

Importing :mod:`ncli.models.nn` or any of its modules never imports torch
(``ncli info``, ``ncli convert`` and the numpy models stay fast to start);
torch is imported the first time one of the classes is looked up, e.g.
``from ncli.models.nn.rotary import Rotary`` inside a function.
"""

from __future__ import annotations

from typing import Callable


def lazy_classes(module: str, build: Callable[[], dict], names: tuple[str, ...]) -> Callable[[str], type]:
    """A PEP 562 module ``__getattr__`` serving the classes ``build()`` returns, built once.

    Parameters
    ----------
    module : str
        The module's ``__name__`` (for the error message).
    build : callable
        ``build() -> {name: class}``; imports torch and defines the classes.
    names : tuple of str
        The names ``build`` defines.

    Returns
    -------
    callable
        ``__getattr__(name) -> class``; raises ``AttributeError`` for other names.
    """
    cache: dict[str, type] = {}

    def __getattr__(name: str) -> type:
        if name in names:
            if not cache:
                cache.update(build())
            return cache[name]
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
