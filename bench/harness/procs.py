"""Processes under test: start them, wait for their port, read their CPU time and memory.

Every process is started in its own session so it can be stopped (and its children with it)
by its own id, and its output goes to a log file in the run's work directory.
"""

import os
import signal
import socket
import subprocess
import time
import urllib.request

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def read_stat(pid):
    """(command name, the fields after it) of /proc/PID/stat, or None once the process is
    gone. In those fields user and system CPU ticks are [11] and [12], and those of waited-for
    children that exited [13] and [14]."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    comm, rest = stat[stat.index("(") + 1:].rsplit(")", 1)
    return comm, rest.split()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """One started process and its log."""

    def __init__(self, name, argv, env, workdir, cwd=None):
        self.name = name
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.log = open(self.log_path, "ab")
        full_env = dict(os.environ)
        full_env.update({k: str(v) for k, v in env.items()})
        self.popen = subprocess.Popen(
            argv, env=full_env, stdout=self.log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, cwd=cwd,
        )
        self.pid = self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def tail(self, lines=20):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, grace=5.0):
        if not self.alive():
            return
        try:
            os.killpg(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(timeout=5)
        self.log.close()

    # --- accounting over the process and its descendants ---

    def tree(self):
        pids = [self.pid]
        i = 0
        while i < len(pids):
            try:
                with open(f"/proc/{pids[i]}/task/{pids[i]}/children") as f:
                    pids.extend(int(p) for p in f.read().split())
            except OSError:
                pass
            i += 1
        return pids

    def cpu_seconds(self):
        """User + system CPU seconds used so far by the process tree."""
        total = 0
        for pid in self.tree():
            stat = read_stat(pid)
            if stat is None:
                continue
            fields = stat[1]
            total += int(fields[11]) + int(fields[12])
            if pid == self.pid:  # children that already exited (worker restarts)
                total += int(fields[13]) + int(fields[14])
        return total / CLOCK_TICKS

    def rss_bytes(self):
        """Resident memory of the process tree."""
        total = 0
        for pid in self.tree():
            try:
                with open(f"/proc/{pid}/statm") as f:
                    total += int(f.read().split()[1]) * PAGE_BYTES
            except (OSError, IndexError, ValueError):
                pass
        return total


def wait_http(url, proc=None, timeout=60.0, headers=None):
    """Waits until `url` answers with any HTTP status; fails early if `proc` died."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited during start-up:\n{proc.tail()}")
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=2) as r:
                r.read()
                return
        except urllib.error.HTTPError:
            return
        except OSError as e:
            last = e
        time.sleep(0.1)
    tail = proc.tail() if proc else ""
    raise RuntimeError(f"{url} did not answer within {timeout}s ({last})\n{tail}")


def http_json(method, url, body=None, headers=None, timeout=30):
    """One JSON call; returns (status, parsed body or None)."""
    import json
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None
