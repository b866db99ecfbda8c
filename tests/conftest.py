"""Shared pytest fixtures: an isolated run cache and the path of the shared real recordings."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own run cache, so the user's cache is never touched."""
    monkeypatch.setenv("NCLI_CACHE", str(tmp_path_factory.mktemp("ncli-cache")))


@pytest.fixture
def shared_data() -> Path:
    """../shared/data (skips the test when the folder is absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real recordings not found at {SHARED_DATA}")
    return SHARED_DATA
