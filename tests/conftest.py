"""Shared test set-up: a writable Numba cache, and the optional standard corpus."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))

TINY_SHAKESPEARE = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"


@pytest.fixture
def tinyshakespeare() -> Path:
    """The standard corpus, when it is present beside the repository; skips otherwise."""
    if not TINY_SHAKESPEARE.exists():
        pytest.skip("../shared/corpora/tinyshakespeare.txt is not present")
    return TINY_SHAKESPEARE


@pytest.fixture
def isolated(tmp_path, monkeypatch) -> Path:
    """Work in tmp_path with a private corpus cache (for `pytest.mark.usefixtures`)."""
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path
