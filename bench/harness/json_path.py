"""Scenario 1: a JSON call through the passthrough (cache off: POST is never cached) at fixed
rates up to saturation; throughput and the latency each contender adds over direct."""

from report import ms, num, ratio, rotate, signed_ms, table
from stack import Stack

PATH = "/api/ai/search/passages"
BODY = {"query": "the storm at sea", "novel_id": "moby-dick", "top_k": 5}
# hyper-floor: the same HTTP crates as sluice with none of its features, so the table shows
# how much of sluice's cost per call is the stack and how much its own work.
CONTENDERS = ["direct", "sluice", "hyper-floor", "nginx"]


def run(ctx):
    duration = 3 if ctx.smoke else 10
    fractions = [0.5] if ctx.smoke else [0.25, 0.5, 0.75]
    result = {"scenario": "json_path", "path": PATH, "duration_secs": duration,
              "saturation": {}, "rates": [], "notes": [], "failures": []}
    with Stack(ctx, "json", {"MOCK_TOKEN_DELAY_MS": "0"}, floor=True) as stack:
        ctx.current_mock = stack.mock
        result["notes"] += stack.notes
        names = [n for n in CONTENDERS if n in stack.contenders]
        # One 10 s run moves by tens of percent (throughput) and milliseconds (tail) with
        # whatever else this shared machine does for a moment: every measurement runs in
        # alternated rounds and the tables show each contender's median round (by throughput
        # at saturation, by p99 at fixed rates), every round kept in the JSON.
        rounds = 1 if ctx.smoke else 3
        result["saturation_rounds"] = {}
        for r in range(rounds):
            for name in rotate(names, r):
                result["saturation_rounds"].setdefault(name, []).append(ctx.http_load(
                    stack.contenders[name], PATH, BODY, rate=0, duration=duration,
                    connections=64))
        for name, runs in result["saturation_rounds"].items():
            result["saturation"][name] = median_round(runs, lambda run: run["throughput_rps"])
        base = result["saturation"].get("sluice", result["saturation"]["direct"])
        for i, fraction in enumerate(fractions):
            rate = max(10, round(base["throughput_rps"] * fraction))
            row = {"fraction": fraction, "rate": rate, "results": {}, "rounds": {}}
            for r in range(rounds):
                for name in rotate(names, i + 1 + r):
                    row["rounds"].setdefault(name, []).append(ctx.http_load(
                        stack.contenders[name], PATH, BODY, rate=rate, duration=duration,
                        connections=2048))
            for name, runs in row["rounds"].items():
                row["results"][name] = median_round(runs, lambda run: run["latency"]["p99_ms"])
            result["rates"].append(row)
    for name, runs in result["saturation_rounds"].items():
        for r in runs:
            if r["ok"] == 0 or r["errors"]:
                result["failures"].append(
                    f"json_path {name}: ok={r['ok']} errors={r['errors']}")
    for row in result["rates"]:
        for name, runs in row["rounds"].items():
            for r in runs:
                if r["errors"]:
                    result["failures"].append(
                        f"json_path {name} at {row['rate']}/s: errors={r['errors']}")
    return result


def worst_window(run):
    """The window of `run` with the most slow requests, as `slow / sent, max`."""
    windows = run.get("worst_windows")
    if windows is None:
        return "–"
    if not windows:
        return "none slow"
    w = max(windows, key=lambda w: w["slow"])
    return f"{w['slow']} / {w['requests']}, {w['max_ms']:.0f}"


def median_round(runs, key):
    """The round in the middle when `runs` are ordered by `key`."""
    return sorted(runs, key=key)[len(runs) // 2]


def markdown(result):
    sat = result["saturation"]
    out = ["### 1. JSON call through the passthrough (`POST " + result["path"] + "`)", ""]
    sat_rounds = result.get("saturation_rounds", {})
    sat_count = max((len(v) for v in sat_rounds.values()), default=1)
    out.append("Saturation (closed loop, 64 connections" + (
        f"; each contender's median of {sat_count} alternated rounds by throughput, every "
        "round's req/s in the last column" if sat_count > 1 else "") + "):")
    out.append("")
    rows = []
    for name, r in sat.items():
        runs = sat_rounds.get(name, [r])
        rows.append([name, num(r["throughput_rps"]),
                     ratio(r["throughput_rps"], sat.get("direct", {}).get("throughput_rps")),
                     ratio(r["throughput_rps"], sat.get("nginx", {}).get("throughput_rps")),
                     ms(r["latency"]["p50_ms"]), ms(r["latency"]["p99_ms"]),
                     f"{r['cpu_seconds'].get('contender', 0) / max(r['ok'], 1) * 1e6:.0f}",
                     " / ".join(num(run["throughput_rps"]) for run in runs)])
    out.append(table(["contender", "req/s", "× direct", "× nginx", "p50 ms", "p99 ms",
                      "contender CPU µs per call", "req/s of each round"], rows))
    out.append("")
    rounds = max((len(runs) for row in result["rates"] for runs in row.get("rounds", {}).values()),
                 default=1)
    out.append("Fixed rates (open loop, latency from the intended send time; fraction of "
               "sluice's saturation" + (f"; each contender's median of {rounds} alternated "
                                        "rounds by p99, every round's p99 in the last column"
                                        if rounds > 1 else "") + "):")
    out.append("")
    rows = []
    for row in result["rates"]:
        direct = row["results"].get("direct")
        for name, r in row["results"].items():
            added50 = added99 = None
            if direct and name != "direct":
                added50 = r["latency"]["p50_ms"] - direct["latency"]["p50_ms"]
                added99 = r["latency"]["p99_ms"] - direct["latency"]["p99_ms"]
            runs = row.get("rounds", {}).get(name, [r])
            rows.append([f"{row['rate']}/s ({row['fraction']:.0%})", name,
                         num(r["throughput_rps"]), ms(r["latency"]["p50_ms"]),
                         ms(r["latency"]["p99_ms"]), signed_ms(added50), signed_ms(added99),
                         sum(run["dropped"] for run in runs),
                         sum(sum(run["errors"].values()) for run in runs),
                         " / ".join(ms(run["latency"]["p99_ms"]) for run in runs),
                         worst_window(r)])
    out.append(table(["rate", "contender", "done/s", "p50 ms", "p99 ms", "added p50",
                      "added p99", "dropped", "errors", "p99 of each round",
                      "worst 100 ms: slow / sent, max ms"], rows))
    out.append("")
    out.append("\"Worst 100 ms\" is the median round's 100 ms of send times with the most "
               "requests over 5 ms: one stall shows as most of a window's requests slow, a "
               "tail spread over the run as a few in each.")
    return "\n".join(out)
