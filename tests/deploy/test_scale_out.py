"""The scale-out topology without containers: two `sluice serve` processes sharing the local
Redis and a fresh Postgres database, one `sluice mock-ai` publishing progress on Redis and
calling back through the load balancer, and nginx from the loopback template in front.

Progress and chat streams must work through nginx whichever instance serves them, arrive
unbuffered, and the rate limit must be one budget across the instances.

Needs the built binary (`SLUICE_BIN`, else `$CARGO_TARGET_DIR/debug/sluice`), nginx, Redis on
127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (`psql`); skipped when one is missing.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from ports import free_port
from test_nginx import NGINX, render_template, wait_for_port

POSTGRES_ADMIN_URL = os.environ.get("SCALE_OUT_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("SCALE_OUT_REDIS_URL", "redis://127.0.0.1:6379")
WAIT_SECS = 30
RATE_LIMIT_BURST = 12
MOCK_STAGE_DELAY_MS = 150
MOCK_TOKEN_DELAY_MS = 30
MOCK_TOKENS = 8


def sluice_binary() -> Path | None:
    explicit = os.environ.get("SLUICE_BIN")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    candidate = target / "debug" / "sluice"
    return candidate if candidate.exists() else None


def reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def missing_requirement() -> str | None:
    if sluice_binary() is None:
        return "no sluice binary (set SLUICE_BIN or build into $CARGO_TARGET_DIR)"
    if not NGINX.exists():
        return "nginx is not installed"
    if shutil.which("psql") is None:
        return "psql is not installed"
    if not reachable("127.0.0.1", 6379) or not reachable("127.0.0.1", 5432):
        return "Redis or PostgreSQL is not running on loopback"
    return None


pytestmark = pytest.mark.skipif(missing_requirement() is not None, reason=str(missing_requirement()))


# --- processes -----------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


@dataclass
class Instance:
    """One gateway, reachable directly (for its metrics) and through nginx."""

    process: Process
    port: int

    def metrics(self) -> str:
        status, _, body = request("GET", self.port, "/metrics")
        assert status == 200, status
        return body.decode()

    def counter(self, name: str, **labels: str) -> float:
        """Sum of a counter's samples whose labels include `labels`."""
        total = 0.0
        for line in self.metrics().splitlines():
            match = re.match(rf"^{name}(?:_total)?\{{(.*)\}} (\S+)$", line)
            if not match:
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            if all(found.get(key) == value for key, value in labels.items()):
                total += float(match.group(2))
        return total


@dataclass
class Stack:
    lb_port: int
    instances: list[Instance]
    env: dict[str, str]
    binary: Path
    processes: list[Process] = field(default_factory=list)

    def token(self, sub: str) -> str:
        return subprocess.run(
            [str(self.binary), "token", "--sub", sub],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            timeout=WAIT_SECS,
        ).stdout.strip()

    def logs(self) -> str:
        return "\n".join(process.tail() for process in self.processes)


def request(
    method: str,
    port: int,
    path: str,
    headers: dict[str, str] | None = None,
    body: object | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_SECS)
    try:
        payload = None if body is None else json.dumps(body).encode()
        all_headers = dict(headers or {})
        if payload is not None:
            all_headers["Content-Type"] = "application/json"
        conn.request(method, path, body=payload, headers=all_headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def wait_ready(process: Process, port: int, path: str) -> None:
    deadline = time.monotonic() + WAIT_SECS
    while time.monotonic() < deadline:
        assert process.popen.poll() is None, process.tail()
        try:
            if request("GET", port, path)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{process.name} did not become ready\n{process.tail()}")


def psql(sql: str) -> None:
    subprocess.run(
        ["psql", POSTGRES_ADMIN_URL, "-v", "ON_ERROR_STOP=1", "-qc", sql],
        check=True,
        capture_output=True,
        timeout=WAIT_SECS,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    binary = sluice_binary()
    assert binary is not None
    workdir = tmp_path_factory.mktemp("scale-out")
    database = f"sluice_scale_out_{secrets.token_hex(6)}"
    psql(f"CREATE DATABASE {database}")
    database_url = re.sub(r"/[^/]*$", f"/{database}", POSTGRES_ADMIN_URL)

    lb_port, mock_port = free_port(), free_port()
    gateway_ports = [free_port(), free_port()]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MOCK_", "RATE_LIMIT_", "AI_", "JWT_", "BREAKER_"))
        and key not in ("DATABASE_URL", "REDIS_URL", "SLUICE_CONFIG", "GATEWAY_URL", "BIND_ADDR")
    }
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_URL,
        AI_SERVICE_URL=f"http://127.0.0.1:{mock_port}",
        AI_API_KEY=secrets.token_hex(16),
        JWT_SECRET=secrets.token_hex(32),
        DEV_LOGIN="false",
        LOG_FORMAT="json",
        TRUST_FORWARDED_FOR="true",
        # One token a second: a burst of RATE_LIMIT_BURST + 1 requests cannot earn a refill.
        RATE_LIMIT_PER_SECOND="1",
        RATE_LIMIT_BURST=str(RATE_LIMIT_BURST),
        AI_RATE_LIMIT_PER_MINUTE="600",
        AI_RATE_LIMIT_BURST="100",
        SHUTDOWN_GRACE_SECS="1",
    )
    processes: list[Process] = []

    def start(name: str, args: list[str], extra: dict[str, str]) -> Process:
        log = workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                args, env={**env, **extra}, stdout=out, stderr=subprocess.STDOUT, cwd=workdir
            )
        process = Process(name, popen, log)
        processes.append(process)
        return process

    try:
        subprocess.run(
            [str(binary), "migrate"], env=env, check=True, capture_output=True, timeout=WAIT_SECS * 2
        )
        instances = []
        for index, port in enumerate(gateway_ports, start=1):
            process = start(f"sluice-{index}", [str(binary), "serve"], {"BIND_ADDR": f"127.0.0.1:{port}"})
            instances.append(Instance(process, port))
        mock = start(
            "mock-ai",
            [str(binary), "mock-ai"],
            {
                "MOCK_BIND": f"127.0.0.1:{mock_port}",
                "GATEWAY_URL": f"http://127.0.0.1:{lb_port}",
                "MOCK_TOKENS": str(MOCK_TOKENS),
                "MOCK_TOKEN_DELAY_MS": str(MOCK_TOKEN_DELAY_MS),
                "MOCK_STAGE_DELAY_MS": str(MOCK_STAGE_DELAY_MS),
            },
        )
        conf = workdir / "nginx.conf"
        conf.write_text(
            render_template(
                {
                    "LISTEN_PORT": str(lb_port),
                    "UPSTREAM_1": f"127.0.0.1:{gateway_ports[0]}",
                    "UPSTREAM_2": f"127.0.0.1:{gateway_ports[1]}",
                    "PREFIX": str(workdir),
                }
            )
        )
        nginx = start(
            "nginx",
            [str(NGINX), "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf)],
            {},
        )
        for instance in instances:
            wait_ready(instance.process, instance.port, "/health/readiness")
        wait_ready(mock, mock_port, "/health")
        wait_for_port(lb_port, nginx.popen, workdir / "error.log")
        yield Stack(lb_port, instances, env, binary, processes)
    finally:
        for process in reversed(processes):
            process.stop()
        psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


# --- Server-Sent Events through nginx -----------------------------------------------------


@dataclass
class Event:
    name: str
    data: dict
    at: float


class SseStream:
    """One SSE response through nginx, read event by event; each event stamped on arrival."""

    def __init__(self, port: int, method: str, path: str, token: str, body: object | None = None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_SECS)
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=payload, headers=headers)
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.events: list[Event] = []

    def __enter__(self) -> SseStream:
        return self

    def __exit__(self, *_: object) -> None:
        self.conn.close()

    def next_event(self) -> Event | None:
        """The next event, or None when the stream ended."""
        name, data = "message", []
        while True:
            line = self.response.readline()
            if not line:
                return None
            text = line.decode().rstrip("\r\n")
            if text.startswith("event:"):
                name = text[6:].strip()
            elif text.startswith("data:"):
                data.append(text[5:].strip())
            elif text == "" and data:
                event = Event(name, json.loads("\n".join(data)), time.monotonic())
                self.events.append(event)
                return event

    def read_to_end(self) -> list[Event]:
        """Every event up to the terminal `complete` or `error`."""
        assert self.status == 200, self.status
        assert self.response.getheader("Content-Type", "").startswith("text/event-stream")
        while not self.events or self.events[-1].name not in ("complete", "error"):
            if self.next_event() is None:
                break
        return self.events


def served_by_each(stack: Stack, kind: str) -> list[float]:
    return [
        instance.counter("sluice_sse_events", kind=kind, event="complete")
        for instance in stack.instances
    ]


def create_scenario(stack: Stack, token: str) -> str:
    status, _, body = request(
        "POST",
        stack.lb_port,
        "/api/scenarios",
        {"Authorization": f"Bearer {token}"},
        {"novel_id": "novel-1", "description": "A storm at sea"},
    )
    assert status == 201, body
    return json.loads(body)["id"]


def open_progress_stream(stack: Stack, token: str) -> SseStream:
    scenario = create_scenario(stack, token)
    return SseStream(
        stack.lb_port, "GET", f"/api/conversations/create-stream?scenario_id={scenario}", token
    )


def check_progress(stack: Stack, events: list[Event]) -> None:
    names = [event.name for event in events]
    assert names and names[-1] == "complete", (names, stack.logs())
    assert set(names[:-1]) == {"progress"}, names
    assert events[-1].data["status"] == "completed"
    assert events[-1].data["message_count"] >= 1
    # Unbuffered: the first progress (sent by the gateway at once) reached the client while
    # generation was still running, stages before the complete.
    assert events[-1].at - events[0].at >= MOCK_STAGE_DELAY_MS / 1000 / 2, events


def test_progress_streams_work_through_nginx_on_both_instances(stack: Stack) -> None:
    before = served_by_each(stack, "progress")
    # nginx balances on open connections: while the first stream is open, the second one
    # goes to the other instance. Each user stays far inside the per-user limits.
    first_user, second_user = (stack.token(f"scale-progress-{secrets.token_hex(4)}") for _ in "12")
    with open_progress_stream(stack, first_user) as first:
        assert first.status == 200, stack.logs()
        opening = first.next_event()
        assert opening is not None and opening.name == "progress"
        # Not held back by nginx: the first event is here while the generation still runs.
        status, _, body = request(
            "GET",
            stack.instances[0].port,
            f"/api/conversations/{opening.data['conversation_id']}",
            {"Authorization": f"Bearer {first_user}"},
        )
        assert status == 200, body
        assert json.loads(body)["status"] in ("pending", "generating"), body
        with open_progress_stream(stack, second_user) as second:
            check_progress(stack, second.read_to_end())
        check_progress(stack, first.read_to_end())
    served = [now - then for now, then in zip(served_by_each(stack, "progress"), before)]
    assert served == [1, 1], served


def completed_conversation(stack: Stack, token: str) -> str:
    with open_progress_stream(stack, token) as stream:
        events = stream.read_to_end()
    check_progress(stack, events)
    return events[-1].data["conversation_id"]


def check_chat(stack: Stack, events: list[Event]) -> None:
    names = [event.name for event in events]
    assert names and names[-1] == "complete", (names, stack.logs())
    tokens = [event for event in events if event.name == "token"]
    assert len(tokens) == MOCK_TOKENS, names
    assert events[-1].data["content"] == "".join(event.data["content"] for event in tokens)
    # Token by token: the first arrived well before the last was even generated.
    assert events[-1].at - tokens[0].at >= (MOCK_TOKENS - 2) * MOCK_TOKEN_DELAY_MS / 1000 / 2


def test_chat_streams_work_through_nginx_on_both_instances(stack: Stack) -> None:
    users = [stack.token(f"scale-chat-{secrets.token_hex(4)}") for _ in "12"]
    conversations = [completed_conversation(stack, user) for user in users]
    before = served_by_each(stack, "chat")

    def open_chat(index: int) -> SseStream:
        return SseStream(
            stack.lb_port,
            "POST",
            f"/api/conversations/{conversations[index]}/messages",
            users[index],
            {"content": "Where does the storm go?"},
        )

    with open_chat(0) as first:
        assert first.status == 200, stack.logs()
        opening = first.next_event()
        assert opening is not None and opening.name == "token", opening
        with open_chat(1) as second:
            check_chat(stack, second.read_to_end())
        check_chat(stack, first.read_to_end())
    served = [now - then for now, then in zip(served_by_each(stack, "chat"), before)]
    assert served == [1, 1], served


def test_the_rate_limit_is_shared_across_instances(stack: Stack) -> None:
    token = stack.token(f"scale-limit-{secrets.token_hex(4)}")
    headers = {"Authorization": f"Bearer {token}"}
    served_before = [
        instance.counter("sluice_http_requests", route="/api/me") for instance in stack.instances
    ]
    statuses = []
    for _ in range(RATE_LIMIT_BURST + 1):
        status, response_headers, _ = request("GET", stack.lb_port, "/api/me", headers)
        statuses.append(status)
    assert statuses == [200] * RATE_LIMIT_BURST + [429], statuses
    assert int(response_headers["retry-after"]) >= 1
    served = [
        instance.counter("sluice_http_requests", route="/api/me") - before
        for instance, before in zip(stack.instances, served_before)
    ]
    # Both instances answered part of the burst, so neither could have counted it alone.
    assert sum(served) == RATE_LIMIT_BURST + 1, served
    assert all(count >= 1 for count in served), served
