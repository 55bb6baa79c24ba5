"""Scenario 5: the long-polling design this replaces. Each run is one generation of about
30 s: a poller creates a conversation and asks `GET /api/conversations/{id}/status` every
2 s; a streaming client opens `GET /api/conversations/create-stream` once. Both count their
requests and how long after the stored completion (`completed_at`) they knew."""

import http.client
import json
import random
import threading
import time
from datetime import datetime

from conversations import create_scenario, route_exists
from report import ms, table
from stack import Stack


def _completed_at(stack, cid):
    status, body = stack.sluice_call("GET", f"/api/conversations/{cid}")
    if status != 200 or not body.get("completed_at"):
        raise RuntimeError(f"conversation {cid} has no completed_at: {status} {body}")
    return datetime.fromisoformat(body["completed_at"].replace("Z", "+00:00")).timestamp()


def poller(stack, scenario, interval, out):
    status, body = stack.sluice_call("POST", "/api/conversations", {"scenario_id": scenario})
    if status != 202:
        raise RuntimeError(f"creating a conversation: {status} {body}")
    cid, requests = body["id"], 1
    start = time.monotonic() + random.uniform(0, interval)
    k = 0
    while True:
        time.sleep(max(0.0, start + k * interval - time.monotonic()))
        k += 1
        requests += 1
        status, body = stack.sluice_call("GET", f"/api/conversations/{cid}/status")
        if status == 200 and body["status"] in ("completed", "failed"):
            known = time.time()
            break
    out.append({"requests": requests, "delay_ms": (known - _completed_at(stack, cid)) * 1000})


def streamer(stack, scenario, out):
    host, port = stack.sluice_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=600)
    conn.request("GET", f"/api/conversations/create-stream?scenario_id={scenario}",
                 headers={"Authorization": f"Bearer {stack.jwt}", "Accept": "text/event-stream"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"create-stream: {response.status} {response.read()[:300]}")
    event, cid, known = None, None, None
    for raw in response:
        line = raw.decode().rstrip("\r\n")
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event in ("complete", "error"):
            known = time.time()
            cid = json.loads(line.split(":", 1)[1])["conversation_id"]
            break
    conn.close()
    if cid is None:
        raise RuntimeError("create-stream ended without complete")
    out.append({"requests": 1, "delay_ms": (known - _completed_at(stack, cid)) * 1000})


def _percentile(values, q):
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(q * len(s) + 0.999999) - 1))] if s else None


def run(ctx):
    runs = 3 if ctx.smoke else 20
    stage_ms = 300 if ctx.smoke else 10000
    interval = 0.5 if ctx.smoke else 2.0
    result = {"scenario": "long_polling", "generation_secs": 3 * stage_ms / 1000,
              "poll_interval_secs": interval, "runs": runs, "poll": [], "stream": [],
              "notes": [], "failures": []}
    with Stack(ctx, "polling", {"MOCK_STAGE_DELAY_MS": str(stage_ms)}, nginx=False) as stack:
        ctx.current_mock = stack.mock
        scenario = create_scenario(stack)
        if not route_exists(stack, "GET", "/api/conversations/create-stream?scenario_id="
                                          "00000000-0000-7000-8000-000000000000"):
            result["notes"].append("sluice: `GET /api/conversations/create-stream` is not on "
                                   "this build; scenario 5 skipped")
            return result
        errors = []

        def guarded(fn, *args):
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001 - collected and reported as a failure
                errors.append(str(e))

        threads = []
        for _ in range(runs):
            threads.append(threading.Thread(target=guarded,
                                            args=(poller, stack, scenario, interval,
                                                  result["poll"])))
            threads.append(threading.Thread(target=guarded,
                                            args=(streamer, stack, scenario, result["stream"])))
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        result["failures"] += [f"long_polling: {e}" for e in errors]
    for kind in ("poll", "stream"):
        samples = result[kind]
        delays = [s["delay_ms"] for s in samples]
        result[f"{kind}_summary"] = {
            "runs": len(samples),
            "requests_mean": sum(s["requests"] for s in samples) / max(len(samples), 1),
            "delay_p50_ms": _percentile(delays, 0.5), "delay_p99_ms": _percentile(delays, 0.99),
        }
    return result


def markdown(result):
    out = [f"### 5. Long polling replaced ({result['generation_secs']:.0f} s generation, "
           f"polled every {result['poll_interval_secs']} s, {result['runs']} runs)", ""]
    rows = []
    for kind, label in (("poll", "polling `/status`"), ("stream", "one progress stream")):
        s = result.get(f"{kind}_summary")
        if s and s["runs"]:
            rows.append([label, f"{s['requests_mean']:.1f}", ms(s["delay_p50_ms"]),
                         ms(s["delay_p99_ms"])])
    out.append(table(["client", "requests per generation", "completion → client knows p50 ms",
                      "p99 ms"], rows) if rows else "(not run)")
    return "\n".join(out)
