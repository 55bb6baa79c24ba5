"""The names CONTRACT.md fixes, for checking the deployment files against them.

Read from the shared contract (`../shared/CONTRACT.md` beside the repository, or the path in
SLUICE_CONTRACT) so the checks follow it as it grows; an embedded copy stands in where the
contract is not checked out next to the repository.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# Section 2 (gateway configuration), as of this writing.
EMBEDDED_CONFIG_VARS = frozenset(
    [
        "SLUICE_CONFIG",
        "BIND_ADDR",
        "DATABASE_URL",
        "REDIS_URL",
        "AI_SERVICE_URL",
        "AI_API_KEY",
        "AI_FALLBACK_URLS",
        "JWT_SECRET",
        "JWT_PUBLIC_KEY_FILE",
        "JWT_JWKS_URL",
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "JWT_LEEWAY_SECS",
        "JWT_JWKS_MIN_REFETCH_SECS",
        "AUTH_COOKIE_NAME",
        "DEV_LOGIN",
        "CORS_ALLOWED_ORIGINS",
        "RATE_LIMIT_PER_SECOND",
        "RATE_LIMIT_BURST",
        "AI_RATE_LIMIT_PER_MINUTE",
        "AI_RATE_LIMIT_BURST",
        "MAX_STREAMS_PER_USER",
        "TRUST_FORWARDED_FOR",
        "BREAKER_WINDOW",
        "BREAKER_FAILURE_RATE",
        "BREAKER_OPEN_SECS",
        "BREAKER_HALF_OPEN_CALLS",
        "UPSTREAM_TIMEOUT_MS",
        "STREAM_IDLE_TIMEOUT_MS",
        "SSE_KEEPALIVE_SECS",
        "SEARCH_CACHE_TTL_SECS",
        "GENERATION_TIMEOUT_SECS",
        "SHUTDOWN_GRACE_SECS",
        "LOG_FORMAT",
    ]
)

# Section 6 (`sluice mock-ai`).
EMBEDDED_MOCK_VARS = frozenset(
    [
        "MOCK_BIND",
        "REDIS_URL",
        "GATEWAY_URL",
        "AI_API_KEY",
        "MOCK_TOKENS",
        "MOCK_TOKEN_DELAY_MS",
        "MOCK_STAGE_DELAY_MS",
    ]
)

# Section 7: metric name -> label names.
EMBEDDED_METRICS: dict[str, frozenset[str]] = {
    "sluice_http_requests_total": frozenset({"route", "method", "status"}),
    "sluice_http_request_duration_seconds": frozenset({"route"}),
    "sluice_sse_streams_active": frozenset({"kind"}),
    "sluice_sse_events_total": frozenset({"kind", "event"}),
    "sluice_breaker_state": frozenset({"upstream"}),
    "sluice_breaker_rejections_total": frozenset({"upstream"}),
    "sluice_fallbacks_total": frozenset({"route", "source"}),
    "sluice_rate_limited_total": frozenset({"class"}),
    "sluice_cache_requests_total": frozenset({"cache", "result"}),
    "sluice_upstream_request_duration_seconds": frozenset({"upstream"}),
    "sluice_time_to_first_token_seconds": frozenset(),
    "sluice_pubsub_channels": frozenset(),
}

# Not in section 7 yet: the lead exports it (1 up, 0 down) for the Redis alert.
EXTRA_METRICS: dict[str, frozenset[str]] = {"sluice_redis_up": frozenset()}

# Suffixes a Prometheus histogram adds to its base name.
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@dataclass(frozen=True)
class Contract:
    """The contract's names that deployment files may use."""

    config_vars: frozenset[str]
    mock_vars: frozenset[str]
    metrics: dict[str, frozenset[str]]
    source: str


def contract_path() -> Path | None:
    """Where the shared contract is, if it is checked out."""
    override = os.environ.get("SLUICE_CONTRACT")
    candidates = [Path(override)] if override else []
    candidates.append(REPO_ROOT.parent / "shared" / "CONTRACT.md")
    return next((path for path in candidates if path.is_file()), None)


def section(text: str, number: int) -> str:
    """The body of `## N. ...` up to the next `## ` heading."""
    match = re.search(rf"^## {number}\.[^\n]*\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    if match is None:
        raise ValueError(f"CONTRACT.md has no section {number}")
    return match.group(1)


def upper_names(text: str) -> frozenset[str]:
    """Every `ENV_STYLE` name written in backticks."""
    return frozenset(re.findall(r"`([A-Z][A-Z0-9_]+)`", text))


def parse_metrics(text: str) -> dict[str, frozenset[str]]:
    """`sluice_name{a,b}` occurrences -> {name: {a, b}}."""
    metrics: dict[str, frozenset[str]] = {}
    for name, labels in re.findall(r"`(sluice_[a-z0-9_]+)(?:\{([^}]*)\})?`", text):
        found = frozenset(label.strip() for label in labels.split(",") if label.strip())
        metrics[name] = metrics.get(name, frozenset()) | found
    return metrics


def parse(text: str, source: str) -> Contract:
    """Reads the names out of the contract's text."""
    mock_section = section(text, 6)
    mock_paragraph = mock_section[mock_section.index("`sluice mock-ai` is configured by") :]
    return Contract(
        config_vars=upper_names(section(text, 2)),
        mock_vars=upper_names(mock_paragraph.split("\n\n")[0]),
        metrics=parse_metrics(section(text, 7)),
        source=source,
    )


def load() -> Contract:
    """The shared contract when present, else the embedded copy."""
    path = contract_path()
    if path is not None:
        return parse(path.read_text(encoding="utf-8"), str(path))
    return Contract(
        config_vars=EMBEDDED_CONFIG_VARS,
        mock_vars=EMBEDDED_MOCK_VARS,
        metrics=dict(EMBEDDED_METRICS),
        source="embedded copy",
    )


def known_metrics(contract: Contract) -> dict[str, frozenset[str]]:
    """Every series name a query may use, histogram suffixes included, with its labels."""
    base = {**contract.metrics, **EXTRA_METRICS}
    names = dict(base)
    for name, labels in base.items():
        for suffix in HISTOGRAM_SUFFIXES:
            names[name + suffix] = labels | ({"le"} if suffix == "_bucket" else frozenset())
    return names
