"""The layering of docs/architecture.md holds: import contracts, no flags in models, stable model ids."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_pass():
    """`lint-imports` checks the contracts of pyproject.toml [tool.importlinter] (models -> core, ...)."""
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.fail(f"import-linter is not installed next to {sys.executable} (pip install import-linter)")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


def test_models_and_simulators_name_no_flag():
    """Models speak parameter names (``{n_units}``); only commands and methods know flags (``--units``)."""
    found = []
    for package in ("models", "simulators"):
        for path in sorted((ROOT / "ncli" / package).rglob("*.py")):
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if '"--' in line or "'--" in line or re.search(r"(?<![-\w])--[a-z]", line):
                    found.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not found, "\n".join(found)


def test_every_model_id_resolves_to_its_class_and_every_alias_to_an_id():
    from ncli.models import ids
    from ncli.models.base import Estimator

    for model_id, target in ids.MODEL_IDS.items():
        assert re.fullmatch(r"ncli/[a-z0-9-]+@\d+", model_id), model_id
        klass = ids.model_class(model_id)
        assert issubclass(klass, Estimator) and klass.model_id == model_id, target
    for alias, model_id in ids.ALIASES.items():
        klass = ids.model_class(alias)
        assert klass.model_id == model_id and alias.rsplit(".", 1)[1] == klass.__name__, alias


def test_every_saved_estimator_class_has_a_registered_id():
    import importlib
    import pkgutil

    import ncli.models
    import ncli.simulators
    from ncli.models import ids
    from ncli.models.base import Estimator

    for pkg in (ncli.models, ncli.simulators):
        for mod in pkgutil.iter_modules(pkg.__path__):
            if mod.name != "nn":
                importlib.import_module(f"{pkg.__name__}.{mod.name}")

    def leaves(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from leaves(sub)

    concrete = {c for c in leaves(Estimator) if c.__module__.startswith("ncli.") and not c.__name__.startswith("_")
                and c.__name__ != "SequenceDecoder"}
    missing = sorted(c.__name__ for c in concrete if c.model_id not in ids.MODEL_IDS)
    assert not missing, missing


def test_load_model_reads_every_model_of_a_v010_store_through_its_alias():
    """0.1.0 wrote module paths as `class`; they resolve through the alias table, moved modules included."""
    import numpy as np
    import zarr

    from ncli.core.errors import DataError
    from ncli.models.base import Estimator, load_model
    from ncli.models.nuclr import NuCLR
    from ncli.models.possm import POSSMDecoder
    from ncli.models.ridge import RidgeDecoder
    from ncli.simulators import ReachSimulator

    root = zarr.open_group(str(ROOT / "tests" / "fixtures" / "store_v010.zarr"), mode="r")
    want = {"models/ridge_velocity/reach0": RidgeDecoder, "models/possm_velocity/reach0": POSSMDecoder,
            "models/nuclr": NuCLR, "models/truth": ReachSimulator}
    for path, klass in want.items():
        model = load_model(root[path])
        assert type(model) is klass, path
        again = klass.from_group(root[path])
        for name in klass._learned:
            assert np.array_equal(getattr(model, name), getattr(again, name)), (path, name)
    assert set(load_model(root["models/possm_velocity/reach0"]).weights_)  # its own from_group ran
    assert set(Estimator.from_group(root["models/nuclr"]).weights_)
    with pytest.raises(DataError, match="saved model is a ncli.models.nuclr.NuCLR, not a RidgeDecoder"):
        RidgeDecoder.from_group(root["models/nuclr"])
    with pytest.raises(DataError, match="refusing to load model class 'ridge decoder of velocity'"):
        load_model(root["models/ridge_velocity"])  # a 0.1.0 summary group, not an estimator
