"""``ncli plot``: draw a result of a store to an image file (PNG, PDF or SVG).

Reads a store (first argument or stdin) and writes one figure file (not a
store); prints the file's path. The kind of result is detected from the store
(``--kind`` chooses when several are present). Kinds are registered in
:data:`KINDS`: a function that lists the drawable items of a store and one that
draws an item onto a matplotlib figure, so new result kinds are one entry each.

Kinds today:

- ``spectrum`` (``spectra/<name>/`` from ``ncli spectrum``): the computed
  eigenvalue cloud, the predicted bulk disk (radius r), the predicted outliers
  and the stability line Re λ = 1 (network spectra), or the unit circle
  (discrete fitted dynamics).

matplotlib is an optional dependency (``pip install 'ncli[plot]'``).
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Callable, Optional

import numpy as np
import typer

from ncli.commands._io import open_input
from ncli.commands._options import Debug, InputStore, Overwrite, Quiet, choice
from ncli.commands._runtime import ncli_command
from ncli.core.errors import DataError, UsageError
from ncli.formats.pipe import emit_location
from ncli.formats.store import Store

log = logging.getLogger("ncli")
FORMATS = (".png", ".pdf", ".svg")


@dataclass
class PlotKind:
    """One drawable result kind: ``find(store) -> [item names]``, ``draw(store, item, fig, title)``."""

    find: Callable[[Store], list[str]]
    draw: Callable[..., None]
    description: str


# ----------------------------------------------------------------------------- spectrum


def _find_spectra(store: Store) -> list[str]:
    return [n for n in store.children("spectra") if store.exists(f"spectra/{n}/eigenvalues")
            or store.exists(f"spectra/{n}/theory/eigenvalues")]


def _read_complex(store: Store, path: str) -> np.ndarray:
    if not store.exists(path):
        return np.zeros(0, dtype=complex)
    a = np.asarray(store.read(path), dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 2:
        raise DataError(f"{path} must be (n, 2) [re, im], got shape {a.shape}", store.location)
    return a[:, 0] + 1j * a[:, 1]


def draw_spectrum(store: Store, item: str, fig, title: str | None = None) -> None:
    """Eigenvalues in the complex plane with the predicted bulk disk and outliers.

    Parameters
    ----------
    store : Store
    item : str
        Name under ``spectra/``.
    fig : matplotlib.figure.Figure
    title : str, optional
        Default: the regime and, for networks, N and the bulk radius.
    """
    base = f"spectra/{item}"
    attrs = store.attrs(base)
    lam = _read_complex(store, f"{base}/eigenvalues")
    ax = fig.add_subplot(1, 1, 1)
    if lam.size:
        ax.scatter(lam.real, lam.imag, s=3 if lam.size > 500 else 10, c="0.25", alpha=0.6, linewidths=0,
                   label=f"computed ({lam.size})", zorder=2)
    th = np.linspace(0, 2 * np.pi, 400)
    kind = attrs.get("kind", "network")
    extent = [float(np.max(np.abs(lam))) if lam.size else 1.0]
    if kind == "network":
        r = float(store.attrs(f"{base}/theory").get("bulk_radius", np.nan))
        if np.isfinite(r):
            ax.fill(r * np.cos(th), r * np.sin(th), color="tab:blue", alpha=0.12, zorder=1)
            ax.plot(r * np.cos(th), r * np.sin(th), color="tab:blue", lw=1.2, ls="--",
                    label=f"predicted bulk (r = {r:.3g})", zorder=3)
            extent.append(r)
        modes = _read_complex(store, f"{base}/theory/eigenvalues")
        if store.exists(f"{base}/theory/outlier") and modes.size:
            out = modes[np.asarray(store.read(f"{base}/theory/outlier"), dtype=bool)]
            if out.size:
                ax.scatter(out.real, out.imag, s=60, facecolors="none", edgecolors="tab:red", lw=1.3,
                           label=f"predicted outliers ({out.size} modes)", zorder=4)
                extent.append(float(np.max(np.abs(out))))
        ax.axvline(1.0, color="tab:green", lw=1, ls=":", label="stability Re λ = 1")
        extent.append(1.0)
    else:
        if attrs.get("time", "discrete") == "discrete":
            ax.plot(np.cos(th), np.sin(th), color="tab:green", lw=1, ls=":", label="|λ| = 1")
            extent.append(1.0)
    m = 1.1 * max(extent)
    ax.set_xlim(-m, m)
    ax.set_ylim(-m, m)
    ax.set_aspect("equal")
    ax.axhline(0, color="0.8", lw=0.6, zorder=0)
    ax.axvline(0, color="0.8", lw=0.6, zorder=0)
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")
    reg = attrs.get("regime") or {}
    if title is None:
        title = f"{item}: {reg.get('regime', '?')}"
        if kind == "network":
            if reg.get("source") == "outlier":
                title += f", k = {reg.get('wavenumber', 0):.3g}"
                if reg.get("frequency_hz"):
                    title += f", {reg['frequency_hz']:.3g} Hz"
            title += f" (N = {attrs.get('n', '?')})"
        elif reg.get("frequency_hz"):
            unit = "Hz" if attrs.get("bin_size_s") else "cycles/bin"
            title += f", {reg['frequency_hz']:.3g} {unit}"
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=7, frameon=False)


KINDS: dict[str, PlotKind] = {
    "spectrum": PlotKind(find=_find_spectra, draw=draw_spectrum,
                         description="spectra/<name> from ncli spectrum"),
}


# ----------------------------------------------------------------------------- command


def _target(output: str | None, overwrite: bool) -> Path:
    if not output:
        raise UsageError("missing -o FILE", "-o/--output", hint="e.g. -o spectrum.png (png, pdf or svg)")
    path = Path(output).expanduser().resolve()
    if path.suffix.lower() not in FORMATS:
        raise UsageError(f"unknown figure format '{path.suffix or '(none)'}'", str(path),
                         hint=f"use one of: {', '.join(FORMATS)}")
    if not path.parent.is_dir():
        raise UsageError("output directory does not exist", str(path.parent))
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise UsageError("output already exists", str(path), hint="pass --overwrite to replace it")
        if path.is_dir():
            raise UsageError("refusing to replace a directory with a figure", str(path))
    return path


def _refuse_inside_input(path: Path, src: Store) -> None:
    """The figure must not land inside the input store or one of its parents (inputs are never modified)."""
    from ncli.formats.store import _local_path, is_local

    for layer in src.layers:
        if not is_local(layer.location):
            continue
        root = _local_path(layer.location).expanduser().resolve()
        if path == root or root in path.parents:
            raise UsageError("the figure would be written inside an input store", str(path),
                             hint="write it outside the store, e.g. -o spectrum.png")


@ncli_command("plot")
def plot(
    store: InputStore = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Figure file: .png, .pdf or .svg.",
                                                  show_default=False)] = None,
    kind: Annotated[str, typer.Option("--kind", help="What to draw: auto or " + ", ".join(KINDS) + ".")] = "auto",
    name: Annotated[Optional[str], typer.Option("--name", help="Which result (NAME of spectra/NAME) when the store "
                                                "holds several.", show_default=False)] = None,
    title: Annotated[Optional[str], typer.Option("--title", help="Figure title.", show_default=False)] = None,
    dpi: Annotated[int, typer.Option("--dpi", help="Resolution of raster formats.")] = 150,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Draw a result of a store to a figure file (PNG, PDF or SVG) and print the file's path.

    Kinds: spectrum (the eigenvalue cloud of `ncli spectrum` with the predicted
    bulk disk and outliers). An existing file is replaced only with --overwrite.
    """
    choice(kind, ["auto", *KINDS], "--kind")
    if not 10 <= dpi <= 1200:
        raise UsageError(f"--dpi must be in [10, 1200], got {dpi}", "--dpi")
    path = _target(output, overwrite)
    src = open_input(store)
    _refuse_inside_input(path, src)
    found = {k: KINDS[k].find(src) for k in (KINDS if kind == "auto" else [kind])}
    found = {k: v for k, v in found.items() if v}
    if not found:
        want = "drawable result" if kind == "auto" else f"{kind} result ({KINDS[kind].description})"
        raise DataError(f"store holds no {want}", src.location, hint="run e.g. `ncli spectrum` first")
    if len(found) > 1:
        raise UsageError(f"store holds several kinds of results: {', '.join(found)}", "--kind",
                         hint="choose one with --kind")
    (k, items), = found.items()
    if name is not None:
        if name not in items:
            raise UsageError(f"no {k} result named '{name}'", "--name", hint=f"available: {', '.join(items)}")
        item = name
    elif len(items) > 1:
        raise UsageError(f"store holds several {k} results: {', '.join(items)}", "--name",
                         hint="choose one with --name")
    else:
        item = items[0]
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError:
        raise DataError("ncli plot needs matplotlib", hint="pip install 'ncli[plot]'") from None
    fig = Figure(figsize=(5.5, 5.0))
    KINDS[k].draw(src, item, fig, title)
    fig.tight_layout()
    partial = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:12]}{path.suffix}")
    try:
        fig.savefig(partial, dpi=dpi, format=path.suffix[1:].lower())
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()
    log.info("plot: drew %s '%s' to %s", k, item, path)
    emit_location(str(path))
