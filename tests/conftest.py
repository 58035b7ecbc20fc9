"""Shared test helpers: where the corpus is, and skipping what this machine cannot run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"receiver corpus not found at {CORPUS}")
    return CORPUS


def need_binary(name: str) -> str:
    """Path of a program the test starts for real; skip (with the reason) when it is missing."""
    p = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if p is None:
        pytest.skip(f"{name} is not installed (make test installs it as root)")
    return p


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (chronyd -u root, binding 127.0.0.x)")
