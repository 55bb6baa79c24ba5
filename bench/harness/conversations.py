"""Conversations made through sluice's own API for the scenarios that need them."""

import time

from procs import http_json


def create_scenario(stack):
    status, body = stack.sluice_call("POST", "/api/scenarios",
                                     {"novel_id": "moby-dick", "description": "bench scenario"})
    if status != 201:
        raise RuntimeError(f"creating a scenario: {status} {body}")
    return body["id"]


def create_conversations(stack, count, wait_completed=True, timeout=120):
    """`count` conversations of one scenario; with `wait_completed`, returns once the mock
    has generated all of them."""
    scenario = create_scenario(stack)
    ids = []
    for _ in range(count):
        status, body = stack.sluice_call("POST", "/api/conversations", {"scenario_id": scenario})
        if status != 202:
            raise RuntimeError(f"creating a conversation: {status} {body}")
        ids.append(body["id"])
    if wait_completed:
        deadline = time.monotonic() + timeout
        pending = set(ids)
        while pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(pending)} conversations not completed in {timeout}s")
            for cid in list(pending):
                status, body = stack.sluice_call("GET", f"/api/conversations/{cid}")
                if status == 200 and body["status"] == "completed":
                    pending.discard(cid)
                elif status == 200 and body["status"] == "failed":
                    raise RuntimeError(f"conversation failed: {body}")
            time.sleep(0.05)
    return ids


def route_exists(stack, method, path, body=None):
    """False when sluice has no such route (a build without that feature): a 404/405 that is
    not sluice's own `not_found` problem for an unknown id."""
    status, answer = http_json(method, f"{stack.sluice_url}{path}", body,
                               {"Authorization": f"Bearer {stack.jwt}"})
    if status not in (404, 405):
        return True
    return isinstance(answer, dict) and answer.get("code") == "not_found"
