"""What every scenario shares in one run: binaries, the work directory, a private Redis,
fresh databases, and the load tools (with the CPU of each contender counted around a run)."""

import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
import uuid

from procs import Proc, free_port


class Context:
    def __init__(self, args):
        self.smoke = args.smoke
        self.workdir = args.workdir
        self.out = args.out
        self.venv = args.venv
        # Smoke runs only check that the harness works, so they use the debug build that the
        # test suite already has; figures come from full runs on release binaries.
        target = os.path.join(args.target_dir, "debug" if args.smoke else "release")
        # BENCH_SLUICE_BIN measures another build of sluice (e.g. a branch not merged yet).
        self.sluice_bin = os.environ.get("BENCH_SLUICE_BIN") or os.path.join(
            target, "sluice")
        self.http_load_bin = os.path.join(target, "http-load")
        self.sse_load_bin = os.path.join(target, "sse-load")
        self.hyper_floor_bin = os.path.join(target, "hyper-floor")
        for path in (self.sluice_bin, self.http_load_bin, self.sse_load_bin, self.hyper_floor_bin):
            if not os.path.exists(path):
                raise SystemExit(f"bench: {path} is missing (bench/run builds it)")
        self.databases = []
        self.redis = None
        self.postgres = args.database == "postgres"

    def __enter__(self):
        port = free_port()
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise SystemExit("bench: redis-server is needed (apt-get install redis-server)")
        self.redis = Proc("redis", [redis_server, "--port", str(port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no", "--maxclients", "50000"],
                          {}, self.workdir)
        self.redis_port = port
        self.redis_url = f"redis://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while self.redis_cli("PING") != "PONG":
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: private redis did not start\n{self.redis.tail()}")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc):
        if self.redis:
            self.redis.stop()
        for name in self.databases:
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres",
                            "-qc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
                           capture_output=True)

    def redis_cli(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.redis_port), *args],
                           capture_output=True, text=True)
        return r.stdout.strip()

    def new_database(self, label):
        """A fresh PostgreSQL database (dropped at the end), or a SQLite file."""
        if self.postgres:
            name = f"sluice_bench_{label}_{uuid.uuid4().hex[:8]}"
            r = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres",
                                "-qc", f'CREATE DATABASE "{name}"'], capture_output=True,
                               text=True)
            if r.returncode == 0:
                self.databases.append(name)
                return f"postgres://postgres@127.0.0.1:5432/{name}"
            print(f"bench: PostgreSQL unavailable ({r.stderr.strip()}); using SQLite")
            self.postgres = False
        return f"sqlite://{self.workdir}/{label}-{uuid.uuid4().hex[:8]}.db?mode=rwc"

    # ------------------------------------------------------------------ load tools

    def http_load(self, contender, path, body, rate, duration, connections=64, warmup=None):
        argv = [self.http_load_bin, "--url", contender.base + path, "--method", "POST",
                "--body", json.dumps(body), "--rate", str(rate),
                "--connections", str(connections), "--duration-secs", str(duration),
                "--warmup-secs", str(warmup if warmup is not None else (1 if self.smoke else 2))]
        for header in contender.headers:
            argv += ["--header", header]
        return self._measured(contender, argv)

    def sse_load(self, contender, body, streams, dialect, expect, path=None, urls=None,
                 ramp_ms=1000, on_all_open=None, method="POST", idle_timeout=120,
                 timeline=None):
        argv = [self.sse_load_bin, "--method", method, "--dialect", dialect, "--streams",
                str(streams), "--ramp-ms", str(ramp_ms), "--expect-tokens", str(expect),
                "--idle-timeout-secs", str(idle_timeout)]
        if body is not None:
            argv += ["--body", json.dumps(body)]
        if urls is not None:
            urls_file = os.path.join(self.workdir, f"urls-{uuid.uuid4().hex[:8]}.txt")
            with open(urls_file, "w") as f:
                f.write("\n".join(contender.base + u for u in urls) + "\n")
            argv += ["--urls-file", urls_file]
        else:
            argv += ["--url", contender.base + path]
        for header in contender.headers:
            argv += ["--header", header]
        if timeline is not None:
            argv += ["--timeline", timeline]
        return self._measured(contender, argv, on_all_open)

    def _measured(self, contender, argv, on_all_open=None):
        """Runs a load tool; adds the CPU seconds the contender, the mock and the load tool
        itself used meanwhile, and how busy the whole machine was (`machine_busy`, 0..1 of
        all CPUs): whether a contender's tail latencies measure it or a machine with no CPU
        left."""
        settled = _settle()
        procs = {"contender": contender.proc, "mock": self.current_mock}
        before = {k: p.cpu_seconds() for k, p in procs.items() if p is not None}
        machine_before = _machine_jiffies()
        overflows_before = _listen_overflows()
        children_before = _children_cpu()
        started = time.monotonic()
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        stderr_lines = []

        def watch_stderr():
            for line in child.stderr:
                stderr_lines.append(line)
                if line.strip() == "all-streams-open" and on_all_open is not None:
                    on_all_open()

        watcher = threading.Thread(target=watch_stderr, daemon=True)
        watcher.start()
        stdout = child.stdout.read()
        child.wait()
        watcher.join(timeout=5)
        if child.returncode != 0:
            raise RuntimeError(f"{os.path.basename(argv[0])} failed against {contender.name}: "
                               f"{''.join(stderr_lines)[-800:]}")
        result = json.loads(stdout)
        result["cpu_seconds"] = {k: round(p.cpu_seconds() - before[k], 3)
                                 for k, p in procs.items() if p is not None}
        # The load tool is this process's only child that ends meanwhile.
        result["cpu_seconds"]["load_tool"] = round(_children_cpu() - children_before, 3)
        total, idle = (a - b for a, b in zip(_machine_jiffies(), machine_before))
        result["machine_busy"] = round(1 - idle / total, 3) if total else None
        # Machine-wide, so every listener's: with the contenders run one at a time, those of
        # the contender in front and of the mock behind it.
        result["listen_overflows"] = _listen_overflows() - overflows_before
        result["elapsed_secs"] = round(time.monotonic() - started, 3)
        result["settle_secs"] = settled
        return result

    current_mock = None


def _settle(busy_share=0.10, window=0.5, limit=60.0):
    """Waits until the machine is idle (under `busy_share` of all CPUs busy over `window`
    seconds), for at most `limit` seconds, and returns the seconds waited. Something still
    working when a round starts takes the CPU from the contender it measures: LiteLLM's
    workers went on for seconds after their load ended, or after they answered their health
    check, and the direct round that followed ran on a machine 62-100 % busy."""
    started = time.monotonic()
    last = _machine_jiffies()
    while time.monotonic() - started < limit:
        time.sleep(window)
        now = _machine_jiffies()
        total, idle = (a - b for a, b in zip(now, last))
        if total and 1 - idle / total < busy_share:
            break
        last = now
    else:
        print(f"bench: the machine is still busy after {limit:.0f} s; measuring anyway",
              file=sys.stderr)
    return round(time.monotonic() - started, 1)


def _listen_overflows():
    """Connections dropped at a full accept queue, machine-wide (each client waits a second
    for its SYN to be resent), from /proc/net/netstat."""
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            row = dict(zip(names.split()[1:], values.split()[1:]))
            return int(row.get("ListenOverflows", 0))
    return 0


def _machine_jiffies():
    """(all, idle) CPU time of the whole machine from /proc/stat; idle counts I/O wait, and
    time the hypervisor gave to other guests (steal), which no process here used."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields), fields[3] + fields[4] + fields[7]


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
