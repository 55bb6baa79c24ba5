"""Starts one sluice for the session: free port, temp SQLite, HS256 secret, in-process mock AI."""

import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass

import httpx
import pytest

# The helpers the Python suites share (free ports).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pyhelpers"))
from ports import free_port  # noqa: E402

SECRET = "clients-test-secret-0123456789"
# Variables that would point the gateway at shared services; the tests want the embedded default.
INHERITED_OFF = ("REDIS_URL", "AI_SERVICE_URL", "AI_FALLBACK_URLS", "DATABASE_URL", "SLUICE_CONFIG")


@dataclass
class Sluice:
    url: str
    env: dict
    db_path: str
    binary: str

    def token(self, sub: str) -> str:
        out = subprocess.run(
            [self.binary, "token", "--sub", sub],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return out.stdout.strip()


@pytest.fixture(scope="session")
def sluice():
    binary = os.environ["SLUICE_BIN"]
    workdir = tempfile.mkdtemp(prefix="sluice-clients-")
    db_path = os.path.join(workdir, "sluice.db")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in INHERITED_OFF}
    env.update(
        BIND_ADDR=f"127.0.0.1:{port}",
        DATABASE_URL=f"sqlite://{db_path}?mode=rwc",
        JWT_SECRET=SECRET,
        DEV_LOGIN="false",
        LOG_FORMAT="json",
        MOCK_TOKENS="12",
        MOCK_TOKEN_DELAY_MS="5",
        MOCK_STAGE_DELAY_MS="20",
    )
    subprocess.run([binary, "migrate"], env=env, check=True, timeout=60)
    log = open(os.path.join(workdir, "sluice.log"), "wb")
    process = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"sluice exited; see {log.name}"
            try:
                if httpx.get(f"{url}/health/readiness", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "sluice did not become ready"
            time.sleep(0.05)
        yield Sluice(url=url, env=env, db_path=db_path, binary=binary)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def user():
    return f"client-{uuid.uuid4()}"


@pytest.fixture
def token(sluice, user):
    return sluice.token(user)


@pytest.fixture
def conversation(sluice, user, token):
    """A completed conversation of `user`: through the API when the conversation routes exist,
    else inserted into the database directly."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=sluice.url, headers=headers, timeout=30) as client:
        scenario = client.post(
            "/api/scenarios", json={"novel_id": "novel-1", "description": "A storm at sea"}
        )
        assert scenario.status_code == 201, scenario.text
        scenario_id = scenario.json()["id"]
        created = client.post("/api/conversations", json={"scenario_id": scenario_id})
        if created.status_code != 202:
            return insert_completed_conversation(sluice.db_path, user, scenario_id)
        conversation_id = created.json()["id"]
        deadline = time.monotonic() + 30
        while True:
            status = client.get(f"/api/conversations/{conversation_id}").json()["status"]
            if status == "completed":
                return conversation_id
            assert status in ("pending", "generating"), status
            assert time.monotonic() < deadline, "conversation did not complete"
            time.sleep(0.05)


def insert_completed_conversation(db_path: str, owner: str, scenario_id: str) -> str:
    conversation_id = str(uuid.uuid4())
    now = int(time.time() * 1000)
    with sqlite3.connect(db_path, timeout=10) as db:
        db.execute(
            "INSERT INTO conversations (id, owner, scenario_id, status, progress, event_seq,"
            " created_at, updated_at, completed_at) VALUES (?, ?, ?, 'completed', 100, 1, ?, ?, ?)",
            (conversation_id, owner, scenario_id, now, now, now),
        )
        db.execute(
            "INSERT INTO messages (id, conversation_id, owner, role, content, status, created_at)"
            " VALUES (?, ?, ?, 'assistant', 'Once upon a time.', 'completed', ?)",
            (str(uuid.uuid4()), conversation_id, owner, now),
        )
    return conversation_id
