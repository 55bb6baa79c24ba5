"""Shared fixtures for the deployment-file tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The helpers the Python suites share (free ports), importable by every test module here.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pyhelpers"))

import contract as contract_module

REPO_ROOT = contract_module.REPO_ROOT
DEPLOY = REPO_ROOT / "deploy"


@pytest.fixture(scope="session")
def contract() -> contract_module.Contract:
    """The contract's names (shared CONTRACT.md when checked out, else the embedded copy)."""
    return contract_module.load()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's root directory."""
    return REPO_ROOT
