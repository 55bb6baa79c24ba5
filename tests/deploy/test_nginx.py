"""The nginx configs pass Server-Sent Events through unbuffered and set the forwarding headers
the gateway relies on. Statically always; with Debian's nginx installed, also `nginx -t` and
a live run of the loopback template in front of two stub gateways."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import string
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import DEPLOY
from ports import free_port

NGINX = Path("/usr/sbin/nginx")
COMPOSE_CONF = DEPLOY / "nginx" / "sluice.conf"
TEMPLATE = DEPLOY / "nginx" / "sluice-loopback.conf.template"
PLACEHOLDERS = {"LISTEN_PORT", "UPSTREAM_1", "UPSTREAM_2", "PREFIX"}
SSE_KEEPALIVE_DEFAULT_SECS = 15
WAIT_SECS = 10

needs_nginx = pytest.mark.skipif(not NGINX.exists(), reason="nginx is not installed")


# --- reading the configs -------------------------------------------------------------------


def strip_comments(text: str) -> str:
    """Without comments, and `${NAME}` placeholders as `@NAME@` so braces mean blocks only."""
    return re.sub(r"\$\{(\w+)\}", r"@\1@", re.sub(r"#[^\n]*", "", text))


def block(text: str, opener: str) -> str:
    """The body of the first `opener {...}` block, braces matched."""
    start = text.index(opener + " {") + len(opener) + 2
    depth = 1
    for index in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[start:index]
    raise ValueError(f"unclosed block {opener}")


def directives(body: str) -> dict[str, list[str]]:
    """Directive name -> argument strings, for the top level of a block body."""
    flat = body
    while re.search(r"\{[^{}]*\}", flat):  # drop nested blocks, innermost first
        flat = re.sub(r"\{[^{}]*\}", ";", flat)
    found: dict[str, list[str]] = {}
    for statement in flat.split(";"):
        parts = statement.split(None, 1)
        if parts:
            found.setdefault(parts[0], []).append(parts[1].strip() if len(parts) > 1 else "")
    return found


def proxy_location(path: Path) -> dict[str, list[str]]:
    return directives(block(strip_comments(path.read_text(encoding="utf-8")), "location /"))


def render_template(values: dict[str, str]) -> str:
    return string.Template(TEMPLATE.read_text(encoding="utf-8")).safe_substitute(values)


@pytest.mark.parametrize("path", [COMPOSE_CONF, TEMPLATE], ids=["compose", "loopback"])
def test_proxy_location_is_sse_safe(path: Path) -> None:
    found = proxy_location(path)
    assert found["proxy_buffering"] == ["off"]
    assert found["proxy_cache"] == ["off"]
    assert found["proxy_http_version"] == ["1.1"]
    assert found["chunked_transfer_encoding"] == ["on"]
    assert found["gzip"] == ["off"]
    headers = dict(value.split(None, 1) for value in found["proxy_set_header"])
    assert headers["Connection"] == '""'
    assert headers["X-Forwarded-For"] == "$remote_addr"
    assert headers["Host"] == "$http_host"
    (timeout,) = found["proxy_read_timeout"]
    assert int(timeout.removesuffix("s")) >= 20 * SSE_KEEPALIVE_DEFAULT_SECS


def test_both_configs_proxy_the_same_way() -> None:
    assert proxy_location(COMPOSE_CONF) == proxy_location(TEMPLATE)


def test_template_placeholders() -> None:
    text = strip_comments(TEMPLATE.read_text(encoding="utf-8"))
    assert set(re.findall(r"@(\w+)@", text)) == PLACEHOLDERS
    main = directives(text)
    assert main["daemon"] == ["off"]
    assert main["pid"] == ["@PREFIX@/nginx.pid"]
    assert main["error_log"][0].startswith("@PREFIX@/")
    http_block = directives(block(text, "http"))
    for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        assert http_block[f"{temp}_temp_path"][0].startswith("@PREFIX@/"), temp
    assert http_block["access_log"][0].startswith("@PREFIX@/")


def test_template_renders_alike_with_envsubst(tmp_path: Path) -> None:
    values = {
        "LISTEN_PORT": "18080",
        "UPSTREAM_1": "127.0.0.1:1",
        "UPSTREAM_2": "127.0.0.1:2",
        "PREFIX": str(tmp_path),
    }
    rendered = render_template(values)
    assert not re.search(r"@\w+@", strip_comments(rendered))
    assert "$remote_addr" in rendered  # nginx's own variables survive
    if shutil.which("envsubst") is None:
        pytest.skip("envsubst is not installed")
    shell_rendered = subprocess.run(
        ["envsubst", " ".join(f"${{{name}}}" for name in sorted(PLACEHOLDERS))],
        input=TEMPLATE.read_text(encoding="utf-8"),
        env=values,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert shell_rendered == rendered


# --- nginx itself --------------------------------------------------------------------------


def nginx_test(prefix: Path, conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(NGINX), "-t", "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )


@needs_nginx
def test_rendered_template_passes_nginx_t(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        render_template(
            {
                "LISTEN_PORT": str(free_port()),
                "UPSTREAM_1": "127.0.0.1:1",
                "UPSTREAM_2": "127.0.0.1:2",
                "PREFIX": str(tmp_path),
            }
        )
    )
    result = nginx_test(tmp_path, conf)
    assert result.returncode == 0, result.stderr


@needs_nginx
def test_compose_config_passes_nginx_t(tmp_path: Path) -> None:
    # Outside compose the service names do not resolve and /var/log/nginx may be missing:
    # point both at loopback and the temp dir, and wrap the file in a minimal nginx.conf.
    text = COMPOSE_CONF.read_text(encoding="utf-8")
    text = re.sub(r"\bsluice-[12]:", "127.0.0.1:", text)
    text = text.replace("/var/log/nginx/", f"{tmp_path}/")
    (tmp_path / "sluice.conf").write_text(text)
    temp_paths = "".join(
        f"{kind}_temp_path {tmp_path}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid;\nevents {{}}\n"
        f"http {{ {temp_paths} include {tmp_path}/sluice.conf; }}\n"
    )
    result = nginx_test(tmp_path, conf)
    assert result.returncode == 0, result.stderr


# --- a live load balancer ------------------------------------------------------------------


@dataclass
class StubGateway:
    """A stand-in for one sluice instance: echoes what nginx forwarded, or streams SSE."""

    name: str
    release: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/sse":
                    self.stream()
                    return
                body = json.dumps(
                    {
                        "gateway": stub.name,
                        "x_forwarded_for": self.headers.get("X-Forwarded-For"),
                        "x_request_id": self.headers.get("X-Request-Id"),
                        "host": self.headers.get("Host"),
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def stream(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(b'event: token\ndata: {"content":"first"}\n\n')
                self.wfile.flush()
                # The rest only once the client proved it has the first event.
                stub.release.wait(timeout=WAIT_SECS)
                self.wfile.write(b'event: complete\ndata: {"content":"second"}\n\n')
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return f"127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class LoadBalancer:
    port: int
    gateways: list[StubGateway]

    def get(self, path: str, headers: dict[str, str] | None = None) -> dict[str, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT_SECS)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            assert response.status == 200, response.status
            return json.loads(response.read())
        finally:
            conn.close()


def wait_for_port(port: int, process: subprocess.Popen[bytes], error_log: Path) -> None:
    """Until nginx accepts connections (it has no readiness signal to wait on)."""
    deadline = time.monotonic() + WAIT_SECS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"nginx exited: {error_log.read_text(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError("nginx did not start listening in time")


def start_load_balancer(tmp_path: Path, edit: str = "") -> Iterator[LoadBalancer]:
    gateways = [StubGateway("one"), StubGateway("two")]
    upstreams = [gateway.start() for gateway in gateways]
    port = free_port()
    text = render_template(
        {
            "LISTEN_PORT": str(port),
            "UPSTREAM_1": upstreams[0],
            "UPSTREAM_2": upstreams[1],
            "PREFIX": str(tmp_path),
        }
    )
    if edit:
        old, new = edit.split("=>")
        assert old in text
        text = text.replace(old, new)
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    error_log = tmp_path / "error.log"
    process = subprocess.Popen(
        [str(NGINX), "-p", str(tmp_path), "-e", str(error_log), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process, error_log)
        yield LoadBalancer(port, gateways)
    finally:
        process.terminate()
        try:
            process.wait(timeout=WAIT_SECS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=WAIT_SECS)
        for gateway in gateways:
            gateway.stop()


@pytest.fixture
def load_balancer(tmp_path: Path) -> Iterator[LoadBalancer]:
    yield from start_load_balancer(tmp_path)


@pytest.fixture
def buffering_load_balancer(tmp_path: Path) -> Iterator[LoadBalancer]:
    yield from start_load_balancer(tmp_path, "proxy_buffering off;=>proxy_buffering on;")


def read_until(sock: socket.socket, received: bytearray, marker: bytes) -> bool:
    """Reads until `marker` arrives (True) or the peer closes (False); socket timeout bounds it."""
    while marker not in received:
        chunk = sock.recv(4096)
        if not chunk:
            return False
        received.extend(chunk)
    return True


def open_stream(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_SECS)
    sock.sendall(
        b"GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        b"Accept-Encoding: gzip\r\nConnection: close\r\n\r\n"
    )
    return sock


@needs_nginx
def test_sse_event_reaches_the_client_before_the_stream_ends(load_balancer: LoadBalancer) -> None:
    with open_stream(load_balancer.port) as sock:
        received = bytearray()
        # Both stubs hold their second event until released: the first one must arrive alone.
        assert read_until(sock, received, b'"first"}\n\n'), bytes(received)
        assert b'"second"' not in received
        head = bytes(received).split(b"\r\n\r\n", 1)[0].lower()
        assert b"content-type: text/event-stream" in head
        assert b"content-encoding" not in head
        for gateway in load_balancer.gateways:
            gateway.release.set()
        assert read_until(sock, received, b'"second"}\n\n'), bytes(received)


@needs_nginx
def test_buffering_proxy_would_hold_the_event_back(buffering_load_balancer: LoadBalancer) -> None:
    # Control for the test above: with proxy_buffering on, the first event does not arrive
    # while the upstream keeps the stream open, so that test really detects buffering.
    with open_stream(buffering_load_balancer.port) as sock:
        sock.settimeout(1.0)
        received = bytearray()
        with pytest.raises(TimeoutError):
            read_until(sock, received, b'"first"}\n\n')
        for gateway in buffering_load_balancer.gateways:
            gateway.release.set()
        sock.settimeout(WAIT_SECS)
        assert read_until(sock, received, b'"second"}\n\n')
        assert b'"first"' in received


@needs_nginx
def test_client_address_replaces_a_forged_forwarded_for(load_balancer: LoadBalancer) -> None:
    seen = load_balancer.get("/echo", {"X-Forwarded-For": "203.0.113.9"})
    assert seen["x_forwarded_for"] == "127.0.0.1"


@needs_nginx
def test_host_keeps_the_port_for_same_origin_checks(load_balancer: LoadBalancer) -> None:
    seen = load_balancer.get("/echo", {"Host": "sluice.test:8443"})
    assert seen["host"] == "sluice.test:8443"


@needs_nginx
def test_request_id_is_kept_or_created(load_balancer: LoadBalancer) -> None:
    assert load_balancer.get("/echo", {"X-Request-Id": "abc-123"})["x_request_id"] == "abc-123"
    created = load_balancer.get("/echo")["x_request_id"]
    assert created
    assert re.fullmatch(r"[0-9a-f]{32}", created)


@needs_nginx
def test_requests_are_spread_over_both_gateways(load_balancer: LoadBalancer) -> None:
    seen = {load_balancer.get("/echo")["gateway"] for _ in range(6)}
    assert seen == {"one", "two"}


@needs_nginx
def test_nginx_health_answers_without_gateways(load_balancer: LoadBalancer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", load_balancer.port, timeout=WAIT_SECS)
    try:
        conn.request("GET", "/nginx-health")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"ok\n")
    finally:
        conn.close()
