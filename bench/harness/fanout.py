"""Scenario 4: progress fan-out. N open progress streams (`GET /api/conversations/{id}/events`,
one conversation each) on one sluice instance; the harness publishes stamped progress
messages to Redis at a fixed rate and every stream times publish-to-browser. Also counts the
Redis connections sluice holds."""

import socket
import threading
import time

from conversations import create_conversations, route_exists
from report import ms, table
from stack import Stack

EVENTS_PER_STREAM = 3


class Publisher:
    """A bare RESP client: PUBLISH is all it needs, pipelined per tick."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")

    @staticmethod
    def _command(*parts):
        out = [f"*{len(parts)}\r\n".encode()]
        for p in parts:
            b = p.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        return b"".join(out)

    def publish_many(self, messages):
        self.sock.sendall(b"".join(self._command("PUBLISH", c, m) for c, m in messages))
        for _ in messages:
            self.reader.readline()

    def close(self):
        self.sock.close()


def publish_at_rate(port, conversations, rounds, rate, stats):
    """Publishes `rounds` messages to every conversation, `rate` messages a second overall."""
    pub = Publisher(port)
    total = len(conversations) * rounds
    tick = 0.005
    per_tick = max(1, round(rate * tick))
    start = time.monotonic()
    sent = 0
    while sent < total:
        batch = []
        for _ in range(min(per_tick, total - sent)):
            seq, index = divmod(sent, len(conversations))
            message = ('{"event":"progress","progress":%d,"message":"bench:%d:%d"}'
                       % (seq + 1, seq + 1, time.time_ns()))
            batch.append((f"conversation:{conversations[index]}", message))
            sent += 1
        pub.publish_many(batch)
        delay = start + sent / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    stats["published"] = sent
    stats["publish_secs"] = time.monotonic() - start
    pub.close()


def redis_connections(ctx):
    """(subscriber connections, all client connections) on the private Redis, less this
    query's own."""
    listing = ctx.redis_cli("CLIENT", "LIST").splitlines()
    subscribers = sum(1 for line in listing if " sub=0 " not in line or " psub=0 " not in line)
    return subscribers, len(listing) - 1


def run(ctx):
    levels = [50] if ctx.smoke else [1000, 10000]
    rate = 200 if ctx.smoke else 1000
    result = {"scenario": "fanout", "events_per_stream": EVENTS_PER_STREAM,
              "publish_rate": rate, "rounds": {}, "redis": {}, "notes": [], "failures": []}
    # Generations never move on their own: the harness's messages are the only progress.
    with Stack(ctx, "fanout", {"MOCK_STAGE_DELAY_MS": "36000000"}, nginx=False) as stack:
        ctx.current_mock = stack.mock
        result["notes"] += stack.notes
        if not route_exists(stack, "GET", "/api/conversations/00000000-0000-7000-8000-"
                                          "000000000000/events"):
            result["notes"].append("sluice: `GET /api/conversations/{id}/events` is not on this "
                                   "build; scenario 4 skipped")
            return result
        sluice = stack.contenders["sluice"]
        for count in levels:
            conversations = create_conversations(stack, count, wait_completed=False)
            stats = {}

            def on_all_open():
                subs, total = redis_connections(ctx)
                stats["redis_subscriber_connections"] = subs
                stats["redis_connections"] = total
                stats["pubsub_channels"] = len(
                    ctx.redis_cli("PUBSUB", "CHANNELS", "conversation:*").split())
                stats["rss_open"] = sluice.proc.rss_bytes()
                threading.Thread(target=publish_at_rate, daemon=True,
                                 args=(ctx.redis_port, conversations, EVENTS_PER_STREAM,
                                       rate, stats)).start()

            r = ctx.sse_load(sluice, body=None, streams=count, dialect="progress",
                             expect=EVENTS_PER_STREAM, method="GET",
                             urls=[f"/api/conversations/{c}/events" for c in conversations],
                             ramp_ms=max(1000, count // 2), on_all_open=on_all_open)
            r["redis"] = stats
            result["rounds"][str(count)] = r
            if r["frames_lost"] or r["streams_failed"] or r["streams_out_of_order"]:
                result["failures"].append(
                    f"fanout at {count} streams: failed={r['streams_failed']} "
                    f"lost={r['frames_lost']} out_of_order={r['streams_out_of_order']} "
                    f"{r['failures']}")
    return result


def markdown(result):
    out = [f"### 4. Progress fan-out ({result['events_per_stream']} events per stream, "
           f"published to Redis at {result['publish_rate']}/s)", ""]
    rows = []
    for count, r in result["rounds"].items():
        d, redis = r["publish_to_browser"], r["redis"]
        rows.append([count, ms(d["p50_ms"]), ms(d["p99_ms"]), ms(d["max_ms"]), r["frames_lost"],
                     r["streams_failed"], redis.get("redis_subscriber_connections", "–"),
                     redis.get("redis_connections", "–"), redis.get("pubsub_channels", "–"),
                     f"{r['cpu_seconds'].get('contender', 0):.1f}"])
    out.append(table(["open streams", "publish→browser p50 ms", "p99 ms", "max ms",
                      "events lost", "failed streams", "Redis subscriber conns",
                      "Redis conns (all clients)", "channels", "sluice CPU s"], rows)
               if rows else "(not run)")
    return "\n".join(out)
