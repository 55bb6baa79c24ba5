"""What scenarios 2 and 3 share: running token streams through every contender, measuring
memory while N streams are held open, and the table of stream figures."""

import threading
import time

from report import ms, ratio, rotate, signed_ms, table


def stream_rounds(ctx, stack, names, levels, request_for, dialect, expect):
    """For each stream count, runs every contender in rotated order; returns
    `{count: {contender: sse-load result}}`."""
    rounds = {}
    for i, count in enumerate(levels):
        rounds[count] = {}
        for name in rotate(names, i):
            contender = stack.contenders[name]
            kwargs = request_for(name, count)
            ramp = 1000 if count <= 1000 else max(2000, count // 2)
            rounds[count][name] = ctx.sse_load(contender, streams=count, dialect=dialect,
                                               expect=expect, ramp_ms=ramp, **kwargs)
    return rounds


def held_memory(ctx, stack, name, counts, request_for, dialect, expect):
    """Resident memory of a contender with N streams open (the mock holds every stream after
    its first token until all are open): `[{streams, rss_before, rss_open, per_stream}]`."""
    contender = stack.contenders[name]
    points = []
    for count in counts:
        before = settled_rss(contender.proc)
        stack.mock_control("/__mock/hold", {"after_tokens": 1})
        sampled = {}
        released = threading.Event()

        def on_all_open():
            time.sleep(0.5)
            sampled["rss"] = max(contender.proc.rss_bytes() for _ in range(3))
            release()

        def release():
            if not released.is_set():
                released.set()
                stack.mock_control("/__mock/release", {})

        safety = threading.Timer(60 + count / 200, release)
        safety.start()
        ramp = 1000 if count <= 1000 else count // 2
        r = ctx.sse_load(contender, streams=count, dialect=dialect, expect=expect,
                         ramp_ms=ramp, on_all_open=on_all_open, **request_for(name, count))
        safety.cancel()
        release()
        rss = sampled.get("rss")
        points.append({
            "streams": count, "rss_before": before, "rss_open": rss,
            "per_stream_bytes": None if rss is None else (rss - before) / count,
            "streams_complete": r["streams_complete"],
        })
    return points


def settled_rss(proc, timeout=10.0):
    """Resident memory once it stops falling: an allocator may return the previous round's
    freed pages to the system some time after they are freed, and a baseline taken before
    that would make the open streams look smaller than they are."""
    deadline = time.monotonic() + timeout
    last = proc.rss_bytes()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = proc.rss_bytes()
        if now >= last * 0.99:
            return min(now, last)
        last = now
    return last


def check(rounds, scenario, failures, notes=None, tolerated=()):
    """Lost frames or failed streams fail the run, except for the `tolerated` peers (LiteLLM
    under more streams than it can open): theirs are a measurement, listed in `notes`."""
    for count, by_name in rounds.items():
        for name, r in by_name.items():
            if r["frames_lost"] or r["streams_failed"] or r["streams_out_of_order"]:
                line = (f"{scenario} {name} at {count} streams: failed={r['streams_failed']} "
                        f"lost={r['frames_lost']} out_of_order={r['streams_out_of_order']} "
                        f"{r['failures']}")
                if name in tolerated and notes is not None:
                    notes.append(line)
                else:
                    failures.append(line)


def figures_table(rounds, peers):
    """One row per (stream count, contender): the figures the issue asks for."""
    rows = []
    for count, by_name in rounds.items():
        direct = by_name.get("direct")
        for name, r in by_name.items():
            ttft, gap = r["time_to_first_token"], r["gap_between_tokens"]
            add50 = add99 = gap_add = None
            if direct and name != "direct":
                add50 = ttft["p50_ms"] - direct["time_to_first_token"]["p50_ms"]
                add99 = ttft["p99_ms"] - direct["time_to_first_token"]["p99_ms"]
                gap_add = gap["p99_ms"] - direct["gap_between_tokens"]["p99_ms"]
            tokens = max(r["tokens_received"], 1)
            cpu = r["cpu_seconds"].get("contender", r["cpu_seconds"].get("mock", 0.0))
            cpu_per_k = cpu / tokens * 1000
            peer_ratios = []
            for peer in peers:
                other = by_name.get(peer)
                if other is None or peer == name:
                    peer_ratios.append("–")
                    continue
                other_cpu = other["cpu_seconds"].get(
                    "contender", other["cpu_seconds"].get("mock", 0.0))
                other_per_k = other_cpu / max(other["tokens_received"], 1) * 1000
                peer_ratios.append(ratio(cpu_per_k, other_per_k))
            # What the rest of the machine spent on the same tokens: the mock (for direct,
            # already the contender) and the load tool.
            others = r["cpu_seconds"].get("load_tool", 0.0)
            if name != "direct":
                others += r["cpu_seconds"].get("mock", 0.0)
            busy = r.get("machine_busy")
            rows.append([count, name, ms(ttft["p50_ms"]), ms(ttft["p99_ms"]), signed_ms(add50),
                         signed_ms(add99), ms(gap["p99_ms"]), signed_ms(gap_add),
                         r["frames_lost"], r["streams_failed"], f"{cpu_per_k * 1000:.1f}",
                         *peer_ratios, f"{others / tokens * 1e6:.1f}",
                         "–" if busy is None else f"{busy * 100:.0f} %"])
    headers = ["streams", "contender", "TTFT p50", "TTFT p99", "added TTFT p50",
               "added TTFT p99", "gap p99", "added gap p99", "frames lost", "failed streams",
               "CPU ms / 1k tokens", *[f"CPU × {p}" for p in peers],
               "mock + load tool CPU ms / 1k tokens", "machine CPU busy"]
    return table(headers, rows)


def memory_table(memory):
    rows = []
    for name, points in memory.items():
        for p in points:
            per = p["per_stream_bytes"]
            rows.append([name, p["streams"], f"{p['rss_before'] / 2**20:.1f}",
                         "–" if p["rss_open"] is None else f"{p['rss_open'] / 2**20:.1f}",
                         "–" if per is None else f"{per / 1024:.1f}"])
    return table(["contender", "open streams", "RSS before MiB", "RSS open MiB",
                  "KiB per open stream"], rows)
