"""``ncli info``: show what a store holds (read-only; the one command that prints to stdout)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import numpy as np
import typer
import zarr

from ncli.commands._io import open_input
from ncli.commands._options import Debug, InputStore, Quiet
from ncli.commands._runtime import ncli_command
from ncli.core.errors import StoreError
from ncli.core.jsonutil import jsonable
from ncli.formats.store import Store, validate
from ncli.models.ids import canonical_id, display

PER_BIN = ("latents", "predictions")


def _array_info(store: Store, path: str, arr: zarr.Array) -> dict[str, Any]:
    info = {"shape": list(arr.shape), "dtype": str(arr.dtype), "unit": arr.attrs.get("unit", "")}
    if len(store.layers) > 1:
        info["layer"] = store.layer_of(path)
    return info


def _find_models(store: Store, path: str = "models") -> dict[str, dict]:
    out: dict[str, dict] = {}
    for name in store.children(path):
        sub = f"{path}/{name}"
        if store.is_array(sub):
            continue
        attrs = store.attrs(sub)
        if attrs.get("kind") == "summary":  # a result's summary group: a description, not an estimator
            out[sub[len("models/"):]] = {
                "kind": "summary",
                "class": attrs.get("description") or attrs.get("class"),
                "config": attrs.get("config", {}),
                "version": attrs.get("version"),
                "metrics": attrs.get("metrics", {}),
            }
        elif "class" in attrs:
            # a saved estimator (its model id, or a 0.1.0 alias), or a 0.1.0 summary (a description in `class`)
            model_id = canonical_id(str(attrs.get("class")))
            out[sub[len("models/"):]] = {
                "kind": "model" if model_id else "summary",
                "class": display(str(attrs.get("class"))),
                "config": attrs.get("config", {}),
                "version": attrs.get("version"),
                "metrics": attrs.get("metrics", {}),
            }
            if model_id:
                out[sub[len("models/"):]]["model_id"] = model_id
        out.update(_find_models(store, sub))
    return out


def _find_spectra(store: Store) -> dict[str, dict]:
    """``spectra/<name>`` groups (``ncli spectrum``): kind, regime and size of each."""
    out: dict[str, dict] = {}
    for name in store.children("spectra"):
        sub = f"spectra/{name}"
        if store.is_array(sub):
            continue
        attrs = store.attrs(sub)
        regime = attrs.get("regime") or {}
        out[name] = {"kind": attrs.get("kind"), "n": attrs.get("n"), "regime": regime.get("regime"),
                     "wavenumber": regime.get("wavenumber"), "frequency_hz": regime.get("frequency_hz"),
                     "bulk_radius": regime.get("bulk_radius"), "stable": regime.get("stable")}
    return out


def describe(store: Store, *, check: bool = False) -> dict[str, Any]:
    """Machine-readable summary of a store (the ``--json`` output).

    Returns
    -------
    dict
        ``location``, ``layers`` (nearest first, with the command that wrote
        each), ``sessions`` (attributes, arrays with shape/dtype/unit, behaviour,
        trial tables, metrics of prediction layers), ``models`` (class, config,
        metrics), ``history`` and, with ``check``, ``problems`` from the validator.
    """
    layers = []
    for layer in store.layers:
        hist = layer.meta.get("history", [])
        layers.append({"location": layer.location, "command": hist[-1]["command"] if hist else None,
                       "parent": layer.meta.get("parent")})
    sessions: dict[str, Any] = {}
    for sid in store.sessions():
        base = f"sessions/{sid}"
        attrs = store.attrs(base)
        arrays = {p[len(base) + 1:]: _array_info(store, p, a) for p, a in store.walk(base)}
        binned = store.attrs(f"{base}/binned") if store.exists(f"{base}/binned") else {}
        entry: dict[str, Any] = {"attrs": attrs, "arrays": arrays}
        if "binned/counts" in arrays:
            t, n = arrays["binned/counts"]["shape"]
            entry["binned"] = {"n_bins": t, "n_units": n, "bin_size_s": binned.get("bin_size_s"),
                               "t_start_s": binned.get("t_start_s"), "kind": binned.get("kind", "counts"),
                               "duration_s": (t * binned["bin_size_s"]) if binned.get("bin_size_s") else None}
            if store.exists(f"{base}/binned/valid"):
                entry["binned"]["valid_fraction"] = float(np.mean(store.read(f"{base}/binned/valid"))) if t else 0.0
        if "units/spike_times" in arrays:
            entry["n_spikes"] = arrays["units/spike_times"]["shape"][0]
        entry["behavior"] = {
            name: {k: store.attrs(f"{base}/binned/behavior/{name}").get(k) for k in ("unit", "columns", "circular")}
            for name in store.children(f"{base}/binned/behavior")
        }
        tables = {}
        if store.exists(f"{base}/trials"):
            tables["trials"] = store.children(f"{base}/trials")
        for t in store.children(f"{base}/intervals"):
            tables[f"intervals/{t}"] = store.children(f"{base}/intervals/{t}")
        entry["tables"] = {
            name: {"n_rows": (arrays.get(f"{name}/{cols[0]}", {}).get("shape") or [0])[0] if cols else 0,
                   "columns": cols}
            for name, cols in tables.items()
        }
        metrics = {}
        for layer in ("predictions", "latents", "neurons"):
            for name in store.children(f"{base}/{layer}"):
                m = store.attrs(f"{base}/{layer}/{name}").get("metrics")
                if m:
                    metrics[f"{layer}/{name}"] = m
        entry["metrics"] = metrics
        sessions[sid] = entry
    out = {
        "location": store.location,
        "schema": store.meta.get("schema"),
        "layers": layers,
        "sessions": sessions,
        "models": _find_models(store),
        "spectra": _find_spectra(store),
        "history": store.history,
    }
    if check:
        out["problems"] = validate(store)
    return jsonable(out)


def _fmt_metrics(metrics: dict) -> str:
    parts = []
    for key, value in metrics.items():
        if isinstance(value, float):
            parts.append(f"{key}={value:.3f}")
        elif isinstance(value, (int, str)) and not isinstance(value, bool):
            parts.append(f"{key}={value}")
        elif isinstance(value, list) and value and all(isinstance(v, (int, float)) or v is None for v in value):
            parts.append(f"{key}=[" + ", ".join("nan" if v is None else f"{v:.3f}" for v in value) + "]")
    return " ".join(parts)


def render(d: dict[str, Any], *, history: bool = True) -> str:
    """Human-readable tree of :func:`describe`'s output."""
    lines = [f"store {d['location']}  (schema {d['schema']})"]
    if len(d["layers"]) > 1:
        lines.append("layers (nearest first):")
        for i, layer in enumerate(d["layers"]):
            lines.append(f"  {i}: {layer['command'] or '?':<9} {layer['location']}")
    for sid, s in d["sessions"].items():
        a = s["attrs"]
        meta = ", ".join(f"{k} {a[k]}" for k in ("subject", "species", "start_time") if a.get(k))
        lines.append(f"session {sid}" + (f"  ({meta})" if meta else ""))
        if "binned" in s:
            b = s["binned"]
            kind = "" if b["kind"] == "counts" else f", {b['kind']}"
            vf = f", {100 * b['valid_fraction']:.1f}% valid" if "valid_fraction" in b else ""
            lines.append(f"  binned: {b['n_bins']} bins x {b['n_units']} units, {b['bin_size_s']:.6g} s bins, "
                         f"{b['duration_s']:.1f} s from t = {b['t_start_s']:.3f} s{vf}{kind}")
        if s.get("n_spikes"):
            lines.append(f"  spikes: {s['n_spikes']}")
        for name, beh in s["behavior"].items():
            cols = ", ".join(beh.get("columns") or [])
            circ = ", circular" if beh.get("circular") else ""
            unit = f" [{beh['unit']}]" if beh.get("unit") else ""
            lines.append(f"  behavior {name}{unit}: {cols}{circ}")
        for name, t in s["tables"].items():
            lines.append(f"  table {name}: {t['n_rows']} rows; columns {', '.join(t['columns'])}")
        lines.append("  arrays:")
        for path, info in s["arrays"].items():
            unit = f" {info['unit']}" if info.get("unit") else ""
            shape = str(tuple(info["shape"]))
            layer = ""
            if "layer" in info and info["layer"] != d["location"]:
                layer = "  [parent]"
            lines.append(f"    {path:<40} {shape:<16} {info['dtype']}{unit}{layer}")
        for name, m in s["metrics"].items():
            lines.append(f"  metrics {name}: {_fmt_metrics(m)}")
    if d["models"]:
        lines.append("models:")
        for name, m in d["models"].items():
            met = _fmt_metrics(m.get("metrics") or {})
            lines.append(f"  {name}: {m['class']}" + (f"  {met}" if met else ""))
    if d.get("spectra"):
        lines.append("spectra:")
        for name, sp in d["spectra"].items():
            parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in sp.items() if v is not None and k != "kind"]
            lines.append(f"  {name} ({sp.get('kind')}): " + " ".join(parts))
    if history and d["history"]:
        lines.append("history:")
        for h in d["history"]:
            argv = list(h.get("argv") or [])
            if not argv or argv[0] != h["command"]:
                argv = [h["command"]] + argv
            lines.append(f"  {h.get('started', '')}  ncli {' '.join(argv)}")
    if "problems" in d:
        if d["problems"]:
            lines.append("problems:")
            lines.extend(f"  {p}" for p in d["problems"])
        else:
            lines.append("check: store is valid (schema 1)")
    return "\n".join(lines)


@ncli_command("info")
def info(
    store: InputStore = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")] = False,
    check: Annotated[bool, typer.Option("--check", help="Validate the store against schema 1; exit 1 if invalid.")] = False,
    history: Annotated[bool, typer.Option("--history/--no-history", help="Show the command history.")] = True,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Show a store: layers, sessions, arrays (shape, dtype, unit), behaviour, trial tables,
    models with their metrics, and the history of commands that made it."""
    src = open_input(store, check=False)  # info must show a damaged store, not refuse it
    d = describe(src, check=check)
    if as_json:
        sys.stdout.write(json.dumps(d, indent=2) + "\n")
    else:
        sys.stdout.write(render(d, history=history) + "\n")
    sys.stdout.flush()
    if check and d["problems"]:
        raise StoreError(f"store does not match schema 1: {len(d['problems'])} problem(s)", src.location)
