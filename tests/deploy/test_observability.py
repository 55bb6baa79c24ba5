"""The Grafana dashboard and the Prometheus alerts query only the contract's metrics, with
their labels, in valid PromQL (promtool checks syntax and runs the alert unit tests when it
is installed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import pytest
import yaml

import contract as contract_module
import promql
from conftest import DEPLOY

DASHBOARD = DEPLOY / "grafana" / "sluice-dashboard.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts_test.yml"

# Labels every scraped series carries besides its own.
TARGET_LABELS = {"instance", "job"}
# Prometheus's own scrape-health series, fine in alerts.
PROMETHEUS_SERIES = {"up"}

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing")


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def dashboard_exprs() -> list[str]:
    return [
        target["expr"]
        for panel in all_panels(dashboard()["panels"])
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def assert_uses_contract_names(expr: str, allowed: dict[str, frozenset[str]]) -> None:
    names = promql.series_names(expr)
    assert names, f"no series found in {expr!r}"
    unknown = names - set(allowed)
    assert not unknown, f"{sorted(unknown)} not in CONTRACT.md section 7: {expr}"
    labels = set().union(*(allowed[name] for name in names)) | TARGET_LABELS
    stray = promql.label_names(expr) - labels
    assert not stray, f"labels {sorted(stray)} not on {sorted(names)}: {expr}"


# --- Grafana -------------------------------------------------------------------------------


def test_dashboard_is_importable_with_a_prometheus_input() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 36
    inputs = {item["name"]: item for item in board["__inputs"]}
    assert inputs["DS_PROMETHEUS"]["pluginId"] == "prometheus"
    for panel in all_panels(board["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]


def test_dashboard_panel_ids_are_unique() -> None:
    ids = [panel["id"] for panel in all_panels(dashboard()["panels"])]
    assert len(ids) == len(set(ids))


def test_dashboard_queries_only_contract_metrics(contract: contract_module.Contract) -> None:
    allowed = contract_module.known_metrics(contract)
    exprs = dashboard_exprs()
    assert exprs
    for expr in exprs:
        assert_uses_contract_names(expr, allowed)


def test_dashboard_covers_every_contract_metric(contract: contract_module.Contract) -> None:
    used = set().union(*(promql.series_names(expr) for expr in dashboard_exprs()))
    used_bases = {
        name.removesuffix(suffix)
        for name in used
        for suffix in contract_module.HISTOGRAM_SUFFIXES + ("",)
        if name.endswith(suffix)
    }
    missing = set(contract.metrics) - used_bases
    assert not missing, f"no panel shows {sorted(missing)}"


def test_promql_reader_rejects_unknown_names() -> None:
    # Guards the checks above: a metric or label outside the contract is reported.
    allowed = contract_module.known_metrics(contract_module.load())
    with pytest.raises(AssertionError, match="not in CONTRACT"):
        assert_uses_contract_names("sum(rate(sluice_requests_total[5m]))", allowed)
    with pytest.raises(AssertionError, match="labels"):
        assert_uses_contract_names("sum by (path) (rate(sluice_http_requests_total[5m]))", allowed)


@needs_promtool
def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    # promtool checks expressions inside rule files: wrap each query in a recording rule,
    # with Grafana's variables replaced by what Grafana would send.
    rules = [
        {
            "record": f"dashboard:query_{index}",
            "expr": expr.replace("$__rate_interval", "5m").replace("$instance", ".*"),
        }
        for index, expr in enumerate(dashboard_exprs())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- Prometheus alerts ---------------------------------------------------------------------


def test_alert_rules_are_complete() -> None:
    rules = alert_rules()
    names = {rule["alert"] for rule in rules}
    assert {
        "SluiceBreakerOpen",
        "SluiceHighLatencyP95",
        "SluiceRedisDown",
        "SluiceHigh5xxRate",
    } <= names
    for rule in rules:
        assert rule["expr"].strip(), rule["alert"]
        assert rule["for"], rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_alerts_query_only_contract_metrics(contract: contract_module.Contract) -> None:
    allowed = contract_module.known_metrics(contract)
    allowed.update({name: frozenset() for name in PROMETHEUS_SERIES})
    for rule in alert_rules():
        assert_uses_contract_names(rule["expr"], allowed)


def test_latency_alert_leaves_stream_routes_out() -> None:
    rule = next(rule for rule in alert_rules() if rule["alert"] == "SluiceHighLatencyP95")
    assert 'route!~"' in rule["expr"]


@needs_promtool
def test_alert_rules_pass_promtool_check() -> None:
    result = subprocess.run(
        ["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_alert_unit_tests_pass() -> None:
    result = subprocess.run(
        ["promtool", "test", "rules", str(ALERT_TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test() -> None:
    document = yaml.safe_load(ALERT_TESTS.read_text(encoding="utf-8"))
    tested = {
        case["alertname"]
        for test in document["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert {rule["alert"] for rule in alert_rules()} <= tested
