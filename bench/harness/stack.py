"""The processes one scenario runs against: the mock AI service (the common upstream), sluice,
nginx and optionally LiteLLM in front of it, and how a load client reaches each of them.

Every contender proxies to the same `sluice mock-ai` process; `direct` is the mock itself, and
`hyper-floor` (bench/loadgen) a bare proxy on sluice's HTTP crates: the least such a proxy costs.
"""

import os
import shutil
import string
import subprocess
from dataclasses import dataclass, field

from procs import Proc, free_port, http_json, wait_http

API_KEY = "bench-ai-key-0123456789"
JWT_SECRET = "bench-jwt-secret-0123456789abcdef"
LITELLM_KEY = "sk-bench-litellm"
BENCH_USER = "bench-user"
HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass
class Contender:
    """One way to reach the mock: its base URL, the headers a client sends, and the process
    whose CPU and memory count as its cost (None for `direct`)."""

    name: str
    base: str
    headers: list = field(default_factory=list)
    proc: Proc | None = None


class Stack:
    """Starts and stops one set of processes with the given mock settings."""

    def __init__(self, ctx, label, mock_env, litellm=False, nginx=True, floor=False,
                 sluice_env=None):
        self.ctx = ctx
        self.label = label
        self.mock_env = mock_env
        self.extra_sluice_env = sluice_env or {}  # for sluice alone, not the mock
        self.want_litellm = litellm
        self.want_nginx = nginx
        self.want_floor = floor
        self.procs = []
        self.contenders = {}
        self.notes = []

    # ------------------------------------------------------------------ start/stop

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()

    def _start(self):
        ctx = self.ctx
        mock_port, sluice_port = free_port(), free_port()
        self.mock_url = f"http://127.0.0.1:{mock_port}"
        self.sluice_url = f"http://127.0.0.1:{sluice_port}"

        mock_env = {
            "MOCK_BIND": f"127.0.0.1:{mock_port}",
            "AI_API_KEY": API_KEY,
            "REDIS_URL": ctx.redis_url,
            "GATEWAY_URL": self.sluice_url,
            "RUST_LOG": "warn",
            "LOG_FORMAT": "json",
        }
        mock_env.update(self.mock_env)
        self.mock = self._spawn("mock-ai", [ctx.sluice_bin, "mock-ai"], mock_env)
        wait_http(f"{self.mock_url}/health", self.mock)
        self.contenders["direct"] = Contender(
            "direct", self.mock_url, [f"Authorization: Bearer {API_KEY}"], None)

        database_url = ctx.new_database(self.label)
        big = "100000000"
        sluice_env = {
            "BIND_ADDR": f"127.0.0.1:{sluice_port}",
            "DATABASE_URL": database_url,
            "REDIS_URL": ctx.redis_url,
            "AI_SERVICE_URL": self.mock_url,
            "AI_API_KEY": API_KEY,
            "JWT_SECRET": JWT_SECRET,
            "DEV_LOGIN": "false",
            "RATE_LIMIT_PER_SECOND": big,
            "RATE_LIMIT_BURST": big,
            "AI_RATE_LIMIT_PER_MINUTE": big,
            "AI_RATE_LIMIT_BURST": big,
            "MAX_STREAMS_PER_USER": big,
            "UPSTREAM_TIMEOUT_MS": "120000",
            "STREAM_IDLE_TIMEOUT_MS": "600000",
            "GENERATION_TIMEOUT_SECS": "3600",
            "SHUTDOWN_GRACE_SECS": "1",
            "LOG_FORMAT": "json",
            "RUST_LOG": "warn",
        }
        sluice_env.update(self.extra_sluice_env)
        self.sluice = self._spawn("sluice", [ctx.sluice_bin, "serve"], sluice_env)
        wait_http(f"{self.sluice_url}/health", self.sluice)
        token = subprocess.run(
            [ctx.sluice_bin, "token", "--sub", BENCH_USER, "--ttl", "86400"],
            env={**os.environ, "JWT_SECRET": JWT_SECRET}, capture_output=True, text=True,
            check=True,
        ).stdout.strip()
        self.jwt = token
        self.contenders["sluice"] = Contender(
            "sluice", self.sluice_url, [f"Authorization: Bearer {token}"], self.sluice)

        if self.want_floor:
            self._start_floor()
        if self.want_nginx:
            self._start_nginx(mock_port)
        if self.want_litellm:
            self._start_litellm()

    def _spawn(self, name, argv, env, cwd=None):
        proc = Proc(f"{self.label}-{name}", argv, env, self.ctx.workdir, cwd=cwd)
        self.procs.append(proc)
        return proc

    def _start_floor(self):
        port = free_port()
        proc = self._spawn("hyper-floor", [self.ctx.hyper_floor_bin, "--listen",
                                           f"127.0.0.1:{port}", "--upstream", self.mock_url,
                                           "--upstream-key", API_KEY], {})
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health", proc)
        self.contenders["hyper-floor"] = Contender("hyper-floor", url, [], proc)

    def _start_nginx(self, mock_port):
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(nginx):
            self.notes.append("nginx: not installed (apt-get install nginx-light)")
            return
        port = free_port()
        prefix = os.path.join(self.ctx.workdir, f"{self.label}-nginx")
        os.makedirs(prefix, exist_ok=True)
        os.chmod(prefix, 0o777)
        with open(os.path.join(HERE, "nginx.conf.template")) as f:
            conf = string.Template(f.read()).safe_substitute(
                LISTEN_PORT=port, UPSTREAM=f"127.0.0.1:{mock_port}", PREFIX=prefix)
        conf_path = os.path.join(prefix, "nginx.conf")
        with open(conf_path, "w") as f:
            f.write(conf)
        proc = self._spawn("nginx", [nginx, "-p", prefix, "-e", f"{prefix}/error.log",
                                     "-c", conf_path], {})
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/nginx-health", proc)
        self.contenders["nginx"] = Contender(
            "nginx", url, [f"Authorization: Bearer {API_KEY}"], proc)

    def _start_litellm(self):
        litellm = os.path.join(self.ctx.venv, "bin", "litellm")
        if not os.path.exists(litellm):
            self.notes.append(f"LiteLLM: not installed in {self.ctx.venv} (bench/run installs it "
                              "in the full run)")
            return
        port = free_port()
        conf_path = os.path.join(self.ctx.workdir, f"{self.label}-litellm.yaml")
        with open(conf_path, "w") as f:
            f.write(
                "model_list:\n"
                "  - model_name: mock-1\n"
                "    litellm_params:\n"
                "      model: openai/mock-1\n"
                f"      api_base: {self.mock_url}/v1\n"
                f"      api_key: {API_KEY}\n"
                "general_settings:\n"
                f"  master_key: {LITELLM_KEY}\n"
                "litellm_settings:\n"
                "  telemetry: false\n"
                "  drop_params: true\n"
            )
        env = {"LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False",
               "LITELLM_LOCAL_MODEL_COST_MAP": "True", "NO_DOCS": "True"}
        workers = str(os.cpu_count() or 1)
        proc = self._spawn("litellm", [litellm, "--config", conf_path, "--host", "127.0.0.1",
                                       "--port", str(port), "--num_workers", workers], env,
                           cwd=self.ctx.workdir)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{url}/health/liveliness", proc, timeout=300)
        except RuntimeError as e:
            self.notes.append(f"LiteLLM: did not start: {str(e).strip()[-600:]}")
            proc.stop()
            return
        self.contenders["litellm"] = Contender(
            "litellm", url, [f"Authorization: Bearer {LITELLM_KEY}"], proc)

    # ------------------------------------------------------------------ helpers

    def mock_control(self, path, body=None):
        method = "GET" if body is None else "POST"
        return http_json(method, f"{self.mock_url}{path}", body)

    def sluice_call(self, method, path, body=None):
        return http_json(method, f"{self.sluice_url}{path}", body,
                         {"Authorization": f"Bearer {self.jwt}"})
