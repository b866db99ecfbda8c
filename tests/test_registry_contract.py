"""Contract tests generated from the method registry: every registered method, the same checks.

For each (command, method) of ``ncli.methods.registry``:

- it declares an ``example`` (a small seeded invocation) and a summary;
- seed determinism: the example run twice gives identical arrays;
- every saved estimator in its output loads back (``load_model``) and saves to the same arrays;
- its estimator raises ``NotFittedError`` when used before ``fit``;
- every option of the command that it does not declare is refused, exit 2, with the generic wording;
- the invariances it declares: ``permutation`` (unit order does not change per-bin results),
  ``causal`` (a prediction never depends on later input: trained on one session, the test
  session's predictions before t do not change when its input after t does).
  Online == batch for ``decode --stream`` stays in tests/test_possm.py (it needs the model's own
  batch predictions).

A new method gets all of these by registering itself; nothing here names a method.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

from ncli.cli import app
from ncli.core.errors import NotFittedError
from ncli.methods import registry

runner = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Bitwise seed determinism of the torch methods on CPU holds on one thread (parallel reductions
    reorder sums: poyo/possm differ by ~5e-7 between two runs on two threads)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
ALL = [(c, n) for c in registry.commands() for n in registry.methods(c)]
IDS = [f"{c}-{n}" for c, n in ALL]


def _ok(args) -> str:
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, f"ncli {' '.join(map(str, args))}: {res.stderr}"
    return res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""


_SETUP: dict = {}


def _setup(method, tmp_path_factory) -> dict[str, str]:
    """Run the example's setup chain once per distinct chain (shared across tests).

    Step ``i`` writes ``{setup<i>}``; a step may name earlier outputs; the last one is ``{input}``.
    """
    key = tuple(tuple(s) for s in method.example.setup)
    if key not in _SETUP:
        work = tmp_path_factory.mktemp("setup")
        out: dict[str, str] = {}
        for i, argv in enumerate(method.example.setup):
            args = [a.format(**out) for a in argv]
            out[f"setup{i}"] = _ok([*args, "-o", work / f"setup{i}.zarr"])
        out["input"] = out[f"setup{len(method.example.setup) - 1}"]
        _SETUP[key] = out
    return _SETUP[key]


def _run(command, method, inputs, out: Path, extra=()) -> str:
    args = [a.format(**inputs) for a in method.example.args]
    return _ok([command, inputs["input"], "--method", method.name, *args, *extra, "-o", out])


def _arrays(location: str) -> dict[str, np.ndarray]:
    root = zarr.open_group(location, mode="r")
    out = {}

    def walk(g, prefix):
        for name, a in g.arrays():
            out[f"{prefix}{name}"] = np.asarray(a[...])
        for name, sub in g.groups():
            walk(sub, f"{prefix}{name}/")

    walk(root, "")
    return out


@pytest.mark.parametrize("command,name", ALL, ids=IDS)
def test_declares_example_and_summary(command, name):
    m = registry.methods(command)[name]
    assert m.summary, f"{command} {name}: no summary"
    assert m.example is not None, f"{command} {name}: no example for the contract tests"
    assert set(m.invariances) <= {"seed", "permutation", "causal"}
    if "causal" in m.invariances:
        assert m.example.split, f"{command} {name}: 'causal' needs example.split (train, test session)"


@pytest.mark.parametrize("command,name", ALL, ids=IDS)
def test_seed_determinism_and_model_round_trip(command, name, tmp_path, tmp_path_factory):
    from ncli.models.base import load_model

    m = registry.methods(command)[name]
    inputs = _setup(m, tmp_path_factory)
    a = _run(command, m, inputs, tmp_path / "a.zarr", ["--seed", "3"])
    b = _run(command, m, inputs, tmp_path / "b.zarr", ["--seed", "3", "--no-cache"])
    A, B = _arrays(a), _arrays(b)
    assert A, "the method wrote no arrays"
    assert sorted(A) == sorted(B)
    for k in A:
        np.testing.assert_array_equal(A[k], B[k], err_msg=k)
    # every saved estimator loads and saves back to the same arrays
    root = zarr.open_group(a, mode="r")
    loaded = 0
    if "models" in root:
        stack = [root["models"]]
        while stack:
            g = stack.pop()
            if "class" in g.attrs and g.attrs.get("kind") != "summary" and "learned" in g.attrs:
                model = load_model(g)
                copy = zarr.open_group(zarr.storage.MemoryStore(), mode="w")
                model.to_group(copy)
                for k, arr in g.arrays():
                    if k in copy:
                        np.testing.assert_array_equal(np.asarray(copy[k][...]), np.asarray(arr[...]), err_msg=k)
                loaded += 1
            stack.extend(sub for _, sub in g.groups())
    if m.estimator is not None:
        assert loaded >= 1, f"{command} {name} declares an estimator but saved none"


@pytest.mark.parametrize("command,name", [x for x in ALL if registry.methods(x[0])[x[1]].estimator is not None],
                         ids=[i for i, x in zip(IDS, ALL) if registry.methods(x[0])[x[1]].estimator is not None])
def test_clear_error_before_fitting(command, name):
    est = registry.methods(command)[name].estimator_class()
    model = est()
    import inspect

    use = next((getattr(model, f) for f in ("predict", "transform", "transform_windows", "smooth")
                if hasattr(model, f)), None)
    assert use is not None, f"{est.__name__} has no predict/transform"
    required = [p for p in inspect.signature(use).parameters.values()
                if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    args = [np.ones((20, 4))] + ["s0"] * (len(required) - 1)  # data first, then e.g. a session id
    with pytest.raises(NotFittedError, match="not fitted yet"):
        use(*args)


def _value_for(field: registry.Field) -> list[str]:
    tp = registry._base_type(field.type)
    if tp is bool:
        return [field.flag] if not field.default else [field.spec.secondary or field.flag]
    if field.spec.choices:
        return [field.flag, field.spec.choices[0]]
    if field.default not in (None, [], ()):
        d = field.default
        return [field.flag, str(d[0] if isinstance(d, (list, tuple)) else d)]
    return [field.flag, "1" if tp in (int, float) else "x"]


@pytest.mark.parametrize("command,name", ALL, ids=IDS)
def test_refuses_foreign_options(command, name):
    table = registry.methods(command)
    own = {f.flag for f in table[name].fields()}
    foreign = {}
    for other in table.values():
        for f in other.fields():
            if f.flag not in own:
                foreign.setdefault(f.flag, f)
    for flag, f in foreign.items():
        res = runner.invoke(app, [command, "no-such.zarr", "--method", name, *_value_for(f)])
        assert res.exit_code == 2, (flag, res.stderr)
        assert f"error: {flag} applies to --method" in res.stderr, res.stderr
        assert name not in res.stderr.split("applies to --method", 1)[1].split(" only")[0].split(", ")


@pytest.mark.parametrize("command,name", ALL, ids=IDS)
def test_help_lists_only_its_options(command, name):
    table = registry.methods(command)
    res = runner.invoke(app, [command, "--method", name, "--help"])
    assert res.exit_code == 0, res.stderr
    own = {f.flag for f in table[name].fields()}
    for other in table.values():
        for f in other.fields():
            listed = f"  {f.flag} " in res.stdout or f"  {f.flag}/" in res.stdout or f"{f.flag}," in res.stdout
            assert listed == (f.flag in own), (f.flag, res.stdout)


# ----------------------------------------------------------------------------- declared invariances


def _with(invariance):
    picked = [(c, n) for c, n in ALL if invariance in registry.methods(c)[n].invariances]
    return pytest.mark.parametrize("command,name", picked, ids=[f"{c}-{n}" for c, n in picked])


def _permuted_copy(src: str, dst: Path, seed: int = 0) -> np.ndarray:
    """A flattened copy of ``src`` whose units are reordered in every session; returns the permutation."""
    _ok(["export", src, "--flatten", "-o", dst])
    root = zarr.open_group(str(dst), mode="r+")
    rng = np.random.default_rng(seed)
    perm = None
    for sid, sess in root["sessions"].groups():
        n = sess["units/id"].shape[0]
        perm = rng.permutation(n)
        st, si = np.asarray(sess["units/spike_times"][...]), np.asarray(sess["units/spike_index"][...])
        trains = [st[si[u]:si[u + 1]] for u in perm]
        new_index = np.concatenate([[0], np.cumsum([len(t) for t in trains])]).astype(np.int64)
        for key, value in (("units/id", np.asarray(sess["units/id"][...])[perm]),
                           ("units/area", np.asarray(sess["units/area"][...])[perm]),
                           ("units/spike_times", np.concatenate(trains) if trains else st),
                           ("units/spike_index", new_index),
                           ("binned/counts", np.asarray(sess["binned/counts"][...])[:, perm])):
            attrs = dict(sess[key].attrs)
            sess[key][...] = value
            sess[key].attrs.update(attrs)
    return perm


def _per_bin_results(location: str) -> dict[str, np.ndarray]:
    return {k: v for k, v in _arrays(location).items()
            if k.startswith("sessions/") and ("/predictions/" in k or "/latents/" in k)}


@_with("permutation")
def test_unit_order_does_not_matter(command, name, tmp_path, tmp_path_factory):
    m = registry.methods(command)[name]
    inputs = _setup(m, tmp_path_factory)
    _permuted_copy(inputs["input"], tmp_path / "perm.zarr")
    a = _per_bin_results(_run(command, m, inputs, tmp_path / "a.zarr"))
    b = _per_bin_results(_run(command, m, {**inputs, "input": str(tmp_path / "perm.zarr")}, tmp_path / "b.zarr"))
    assert a and sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-4, err_msg=k)


@_with("causal")
def test_predictions_never_use_later_input(command, name, tmp_path, tmp_path_factory):
    """Trained on one session, the test session's predictions before t ignore its input after t."""
    m = registry.methods(command)[name]
    inputs = _setup(m, tmp_path_factory)
    train, test = m.example.split
    dst = tmp_path / "late.zarr"
    _ok(["export", inputs["input"], "--flatten", "-o", dst])
    sess = zarr.open_group(str(dst), mode="r+")[f"sessions/{test}"]
    counts = np.asarray(sess["binned/counts"][...])
    k = counts.shape[0] * 3 // 4
    counts[k:] = counts[k:][::-1]
    sess["binned/counts"][...] = counts
    split = ["--train-sessions", train, "--test-sessions", test]
    a = _per_bin_results(_run(command, m, inputs, tmp_path / "a.zarr", split))
    b = _per_bin_results(_run(command, m, {**inputs, "input": str(dst)}, tmp_path / "b.zarr", split))
    keys = [key for key in a if key.split("/")[1] == test]
    assert keys
    for key in keys:
        np.testing.assert_allclose(a[key][:k], b[key][:k], rtol=1e-6, atol=1e-6, err_msg=key)
        assert not np.allclose(a[key][k:], b[key][k:], equal_nan=True), "the change after t had no effect"
