"""The embedded copy of the contract's names stays true to the shared CONTRACT.md."""

from __future__ import annotations

import pytest

import contract as contract_module


@pytest.fixture(scope="module")
def shared() -> contract_module.Contract:
    path = contract_module.contract_path()
    if path is None:
        pytest.skip("shared/CONTRACT.md is not checked out beside the repository")
    return contract_module.parse(path.read_text(encoding="utf-8"), str(path))


def test_contract_sections_are_found(shared: contract_module.Contract) -> None:
    assert {"BIND_ADDR", "SHUTDOWN_GRACE_SECS", "JWT_SECRET"} <= shared.config_vars
    assert {"MOCK_BIND", "GATEWAY_URL"} <= shared.mock_vars
    assert shared.metrics["sluice_breaker_state"] == {"upstream"}


def test_embedded_names_are_still_in_the_contract(shared: contract_module.Contract) -> None:
    # The contract may grow; a name it dropped must leave the embedded copy too.
    assert shared.config_vars >= contract_module.EMBEDDED_CONFIG_VARS
    assert shared.mock_vars >= contract_module.EMBEDDED_MOCK_VARS
    for name, labels in contract_module.EMBEDDED_METRICS.items():
        assert name in shared.metrics, name
        assert labels <= shared.metrics[name], name
