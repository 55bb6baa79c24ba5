"""Shared fixtures for the deployment-file tests."""

from __future__ import annotations

from pathlib import Path

import pytest

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
