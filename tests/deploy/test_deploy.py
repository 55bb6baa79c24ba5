"""The container image, the compose stack and the Kubernetes manifests, checked without running
them: schemas, the contract's names, and the invariants that keep shutdown and SSE working."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from conftest import DEPLOY, REPO_ROOT

K8S = DEPLOY / "k8s"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"

# Oldest Kubernetes the manifests must still apply to, and the newest schemas shipped.
K8S_VERSIONS = ("1.28.0", kubernetes_validate.utils.latest_version() + ".0")

SLUICE_SERVICES = ("sluice-1", "sluice-2")
SECRET_KEYS = {"JWT_SECRET", "AI_API_KEY", "DATABASE_URL", "REDIS_URL"}


# --- helpers -----------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def kustomization() -> dict[str, Any]:
    return load_yaml(K8S / "kustomization.yaml")


def manifest(kind: str) -> dict[str, Any]:
    """The one resource of `kind` among the kustomization's resources."""
    found = [doc for doc in k8s_documents() if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def k8s_documents() -> list[dict[str, Any]]:
    docs = []
    for name in kustomization()["resources"]:
        with (K8S / name).open(encoding="utf-8") as handle:
            docs.extend(doc for doc in yaml.safe_load_all(handle) if doc)
    return docs


def gateway_container() -> dict[str, Any]:
    containers = manifest("Deployment")["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "sluice")


def seconds(value: str | int) -> int:
    """`25s`, `1m30s` or a bare number of seconds."""
    if isinstance(value, int):
        return value
    assert value, "empty duration"
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", value)
    assert parts, f"unreadable duration {value!r}"
    return int(parts.group(1) or 0) * 60 + int(parts.group(2) or 0)


def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


def env_names(service: dict[str, Any]) -> set[str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return {item.split("=", 1)[0] for item in env}
    return set(env)


def env_dict(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


# --- Kubernetes ----------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    listed = kustomization()["resources"]
    on_disk = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk
    kinds = {doc["kind"] for doc in k8s_documents()}
    expected = {"ConfigMap", "Secret", "Deployment", "Service", "HorizontalPodAutoscaler"}
    assert expected <= kinds


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_validate_strictly_against_kubernetes_schemas(version: str) -> None:
    for doc in k8s_documents():
        kubernetes_validate.validate(doc, version, strict=True)


def test_strict_validation_rejects_an_unknown_field() -> None:
    # Guards the test above: a misspelt field must not pass silently.
    doc = copy.deepcopy(manifest("Deployment"))
    doc["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_build_renders_valid_manifests_with_the_image_tag() -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(K8S)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    docs = [doc for doc in yaml.safe_load_all(rendered) if doc]
    assert len(docs) == len(k8s_documents())
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)
    image = kustomization()["images"][0]
    deployment = next(doc for doc in docs if doc["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"{image['newName']}:{image['newTag']}"


def test_probes_use_the_contract_health_routes() -> None:
    container = gateway_container()
    port_names = {port["name"] for port in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/liveness"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    assert container["startupProbe"]["httpGet"]["path"] == "/health/liveness"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in port_names


def test_grace_period_covers_pre_stop_and_stream_drain() -> None:
    config = manifest("ConfigMap")["data"]
    drain = int(config["SHUTDOWN_GRACE_SECS"])
    pod = manifest("Deployment")["spec"]["template"]["spec"]
    command = gateway_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = int(command[1])
    assert pre_stop > 0
    # The kubelet counts the preStop hook inside the grace period; leave time to exit.
    assert pod["terminationGracePeriodSeconds"] > drain
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain + 5


def test_gateway_runs_non_root_read_only_without_capabilities() -> None:
    pod = manifest("Deployment")["spec"]["template"]["spec"]
    container = gateway_container()["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert container["runAsNonRoot"] is True
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]


def test_deployment_shape() -> None:
    deployment = manifest("Deployment")
    container = gateway_container()
    assert deployment["spec"]["replicas"] == 2
    sources = {
        ref["configMapRef"]["name"] if "configMapRef" in ref else ref["secretRef"]["name"]
        for ref in container["envFrom"]
    }
    assert sources == {
        manifest("ConfigMap")["metadata"]["name"],
        manifest("Secret")["metadata"]["name"],
    }
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_config_and_secret_use_contract_names_only(contract: Any) -> None:
    config = manifest("ConfigMap")["data"]
    secret = manifest("Secret")["stringData"]
    assert set(config) <= contract.config_vars, contract.source
    assert set(secret) == SECRET_KEYS
    assert not set(config) & set(secret), "a variable must come from one place"
    assert all(isinstance(value, str) for value in config.values())
    assert config["BIND_ADDR"].startswith("0.0.0.0:")


def test_secret_holds_placeholders_only() -> None:
    for key, value in manifest("Secret")["stringData"].items():
        assert "change-me" in value, key


def test_service_reaches_the_gateway_port() -> None:
    service = manifest("Service")
    labels = manifest("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    port_names = {port["name"] for port in gateway_container()["ports"]}
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= port_names


def test_hpa_scales_the_deployment_on_cpu() -> None:
    hpa = manifest("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == manifest("Deployment")["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["averageUtilization"] == 70


# --- docker compose ------------------------------------------------------------------------


def test_compose_has_the_whole_stack() -> None:
    services = compose()["services"]
    assert {*SLUICE_SERVICES, "nginx", "mock-ai", "redis", "postgres"} <= set(services)


def test_compose_dependencies_exist_are_healthy_and_acyclic() -> None:
    services = compose()["services"]
    graph: dict[str, set[str]] = {}
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: use the long form with a condition"
        for target, condition in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            assert condition["condition"] == "service_healthy", f"{name} -> {target}"
        graph[name] = set(depends)

    visiting: set[str] = set()
    done: set[str] = set()

    def visit(node: str) -> None:
        assert node not in visiting, f"dependency cycle through {node}"
        if node in done:
            return
        visiting.add(node)
        for target in graph[node]:
            visit(target)
        visiting.discard(node)
        done.add(node)

    for node in graph:
        visit(node)
    assert graph["nginx"] >= set(SLUICE_SERVICES)


def test_every_compose_service_has_a_healthcheck() -> None:
    for name, service in compose()["services"].items():
        test = service.get("healthcheck", {}).get("test")
        assert test, name
        assert test[0] in ("CMD", "CMD-SHELL"), name


def test_compose_health_checks_use_the_contract_routes() -> None:
    services = compose()["services"]
    for name in SLUICE_SERVICES:
        assert services[name]["healthcheck"]["test"][-1].endswith("/health/readiness"), name
    assert services["mock-ai"]["healthcheck"]["test"][-1].endswith(":8090/health")
    assert "redis-cli" in services["redis"]["healthcheck"]["test"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])


def test_sluice_services_set_contract_variables_only(contract: Any) -> None:
    services = compose()["services"]
    for name in SLUICE_SERVICES:
        names = env_names(services[name])
        assert names <= contract.config_vars, (name, names - contract.config_vars)
        env = env_dict(services[name])
        assert env["BIND_ADDR"] == "0.0.0.0:8080"
        assert env["TRUST_FORWARDED_FOR"] == "true"
        assert env["SHUTDOWN_GRACE_SECS"] == "20"
        assert env["AI_SERVICE_URL"] == "http://mock-ai:8090"
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["REDIS_URL"].startswith("redis://redis:")
    mock = services["mock-ai"]
    assert env_names(mock) <= contract.mock_vars, env_names(mock) - contract.mock_vars
    assert mock["command"] == ["mock-ai"]
    assert env_dict(mock)["GATEWAY_URL"] == "http://nginx:80"


def test_compose_commits_no_secret() -> None:
    services = compose()["services"]
    for name in (*SLUICE_SERVICES, "mock-ai"):
        env = env_dict(services[name])
        for key in ("JWT_SECRET", "AI_API_KEY"):
            if key in env:
                assert re.fullmatch(rf"\$\{{{key}:\?[^}}]+\}}", env[key]), (name, key)


def test_compose_gives_streams_time_to_drain() -> None:
    services = compose()["services"]
    for name in SLUICE_SERVICES:
        drain = int(env_dict(services[name])["SHUTDOWN_GRACE_SECS"])
        assert seconds(services[name]["stop_grace_period"]) > drain, name


def test_compose_nginx_uses_the_repository_config() -> None:
    nginx = compose()["services"]["nginx"]
    mounts = [volume.split(":") for volume in nginx["volumes"]]
    config = next(src for src, dst, *_ in mounts if dst.startswith("/etc/nginx/"))
    path = (REPO_ROOT / config).resolve()
    assert path == (DEPLOY / "nginx" / "sluice.conf").resolve()
    text = path.read_text(encoding="utf-8")
    servers = set(re.findall(r"^\s*server\s+([\w.-]+:\d+)", text, re.M))
    assert servers == {f"{name}:8080" for name in SLUICE_SERVICES}
    assert re.search(r"^\s*proxy_buffering\s+off;", text, re.M)


# --- Dockerfile ----------------------------------------------------------------------------


def dockerfile_stages() -> list[tuple[str, str, list[str]]]:
    """(image, stage name, instruction lines) per stage, continuation lines joined."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    stages: list[tuple[str, str, list[str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if match:
            stages.append((match.group(1), match.group(2) or "", []))
        else:
            stages[-1][2].append(line)
    return stages


def test_dockerfile_builds_binary_frontend_and_small_runtime() -> None:
    stages = {name: (image, lines) for image, name, lines in dockerfile_stages()}
    builder_image, builder = stages["builder"]
    assert builder_image.startswith("rust:")
    assert any("cargo build --release --locked" in line for line in builder)
    frontend_image, frontend = stages["frontend"]
    assert frontend_image == "node:20-slim"
    assert any(line.startswith("RUN npm ci") for line in frontend)
    assert any(line.startswith("RUN npm run build") for line in frontend)


def test_dockerfile_runtime_stage() -> None:
    image, _name, lines = dockerfile_stages()[-1]
    assert image.startswith(("debian:bookworm-slim", "gcr.io/distroless/cc"))
    joined = "\n".join(lines)
    assert "COPY --from=builder /usr/local/bin/sluice /usr/local/bin/sluice" in joined
    assert re.search(r"COPY --from=frontend \S+/frontend-demo/dist /app/frontend-demo/dist", joined)
    assert "WORKDIR /app" in lines
    assert re.search(r"^USER 10001(:10001)?$", joined, re.M)
    assert "EXPOSE 8080" in lines
    assert re.search(r"BIND_ADDR=0\.0\.0\.0:8080", joined)
    assert re.search(r"^HEALTHCHECK .*CMD", joined, re.M)
    assert 'ENTRYPOINT ["sluice"]' in lines
    assert 'CMD ["serve"]' in lines


def test_dockerfile_dependency_stub_matches_the_crate_targets() -> None:
    # The dependency layer builds against stub src/main.rs and src/lib.rs only: any other
    # declared target (or build script) would make that step fail, so the stub must change
    # with Cargo.toml.
    manifest_toml = tomllib.loads((REPO_ROOT / "Cargo.toml").read_text(encoding="utf-8"))
    assert manifest_toml.get("lib", {}).get("path", "src/lib.rs") == "src/lib.rs"
    for binary in manifest_toml.get("bin", []):
        assert binary.get("path", "src/main.rs") == "src/main.rs", binary
    for section in ("test", "bench", "example"):
        assert section not in manifest_toml, f"[[{section}]] needs a stub in the Dockerfile"
    assert "build" not in manifest_toml["package"], "a build script needs a stub too"


def test_dockerignore_keeps_the_context_small() -> None:
    entries = {
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".env"} <= entries
    assert entries & {"target", "**/target", "/target"}
    assert entries & {"node_modules", "**/node_modules"}


def hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


@pytest.mark.skipif(hadolint() is None, reason="hadolint is not installed")
def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [str(hadolint()), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
