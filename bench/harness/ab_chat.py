"""A/B rounds of chat streams: two or more sluice builds (or settings) against each other.

bench/run compares sluice with its peers; this compares sluice with itself, for a change
whose effect on the chat route's tails is smaller than the spread of one run. Every round
starts a fresh stack per build (mock, sluice, a new PostgreSQL database, 100 conversations,
a 100-stream warm-up), runs N streams direct and then through sluice (its chat route, or
with --route openai its `/v1/chat/completions`), and prints the added
time to first token and gap, the CPU per token of sluice, of PostgreSQL's backends and of
the mock, and how often sluice's threads were switched out. Builds alternate, their order
reversed every other round, so drift hits them alike; medians come last. With --timelines
DIR, sse-load's per-stream timelines (`--timeline`) are kept, to see which streams make a
tail and whether their start or their relay was slow.

    python3 bench/harness/ab_chat.py --rounds 4 --streams 1000 \\
        before=/tmp/sluice-before after=target/release/sluice \\
        one-thread=target/release/sluice:TOKIO_WORKER_THREADS=1

A build is LABEL=BINARY[:VAR=VALUE,...]; the variables are set for that sluice only, not for
the mock (the same binary's `mock-ai`), which keeps tokio's defaults: a variable that
reached the mock too would change the machine both are measured on. Needs bench/run's
release load tools (`sse-load`) under --target-dir, redis-server and PostgreSQL on
127.0.0.1:5432.
"""

import argparse
import os
import statistics
import sys
import tempfile
import uuid
from types import SimpleNamespace

from chat_streams import PROMPT
from context import Context
from conversations import create_conversations
from openai_streams import PATH as OPENAI_PATH
from openai_streams import body as openai_body
from procs import CLOCK_TICKS, read_stat
from stack import Stack

WARM_UP_STREAMS = 100


def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("builds", nargs="+", metavar="LABEL=BINARY[:VAR=VALUE,...]")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--tokens", type=int, default=200)
    p.add_argument("--route", choices=["chat", "openai"], default="chat",
                   help="sluice's chat route (database, history) or its OpenAI route")
    p.add_argument("--timelines", metavar="DIR",
                   help="keep sse-load's per-stream timeline of every round here "
                        "(LABEL-ROUND-CONTENDER.csv)")
    p.add_argument("--target-dir", default=os.environ.get(
        "CARGO_TARGET_DIR", os.path.expanduser("~/.cache/sluice/target")))
    return p.parse_args()


def parse_build(spec):
    label, rest = spec.split("=", 1)
    binary, _, extra = rest.partition(":")
    env = dict(kv.split("=", 1) for kv in extra.split(",")) if extra else {}
    return label, os.path.abspath(binary), env


def postgres_backends_cpu():
    """CPU seconds of every PostgreSQL process on the machine (backends and helpers)."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        stat = read_stat(pid)
        if stat is not None and stat[0].startswith("postgres"):
            total += int(stat[1][11]) + int(stat[1][12])
    return total / CLOCK_TICKS


def context_switches(pid):
    """(voluntary, involuntary) context switches of all of a process's threads so far."""
    voluntary = involuntary = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                status = f.read()
        except OSError:
            continue
        voluntary += int(status.split("\nvoluntary_ctxt_switches:")[1].split()[0])
        involuntary += int(status.split("nonvoluntary_ctxt_switches:")[1].split()[0])
    return voluntary, involuntary


def one_round(ctx, label, binary, env, args, round_no):
    ctx.sluice_bin = binary
    streams, tokens = args.streams, args.tokens
    mock_env = {"MOCK_TOKENS": str(tokens), "MOCK_TOKEN_DELAY_MS": "20",
                "MOCK_STAGE_DELAY_MS": "10"}

    def timeline(contender):
        if args.timelines is None:
            return None
        return os.path.join(args.timelines, f"{label}-{round_no}-{contender}.csv")

    with Stack(ctx, f"ab-{label}", mock_env, nginx=False, sluice_env=env) as stack:
        ctx.current_mock = stack.mock
        sluice = stack.contenders["sluice"]
        if args.route == "openai":
            dialect = "openai"
            through_request = direct_request = {"path": OPENAI_PATH, "body": openai_body()}
        else:
            dialect = "ai"
            conversations = create_conversations(stack, 100)
            through_request = {"urls": [f"/api/conversations/{c}/messages"
                                        for c in conversations],
                               "body": {"content": PROMPT}}
            direct_request = {"urls": [f"/api/ai/conversations/{uuid.uuid4()}/messages-stream"
                                       for _ in range(100)],
                              "body": {"content": PROMPT, "history": []}}
        ctx.sse_load(sluice, dialect=dialect, streams=WARM_UP_STREAMS, expect=tokens,
                     **through_request)
        direct = ctx.sse_load(stack.contenders["direct"], dialect=dialect, streams=streams,
                              expect=tokens, timeline=timeline("direct"), **direct_request)
        pg_before = postgres_backends_cpu()
        switches_before = context_switches(stack.sluice.pid)
        through = ctx.sse_load(sluice, dialect=dialect, streams=streams, expect=tokens,
                               timeline=timeline("sluice"), **through_request)
        pg = postgres_backends_cpu() - pg_before
        switches = [a - b for a, b in zip(context_switches(stack.sluice.pid),
                                          switches_before)]
    received = max(through["tokens_received"], 1)
    ttft, direct_ttft = through["time_to_first_token"], direct["time_to_first_token"]
    return {
        "added_ttft_p50": ttft["p50_ms"] - direct_ttft["p50_ms"],
        "added_ttft_p99": ttft["p99_ms"] - direct_ttft["p99_ms"],
        "added_gap_p99": (through["gap_between_tokens"]["p99_ms"]
                          - direct["gap_between_tokens"]["p99_ms"]),
        "sluice_us_per_token": through["cpu_seconds"]["contender"] / received * 1e6,
        "postgres_us_per_token": pg / received * 1e6,
        "mock_us_per_token": through["cpu_seconds"]["mock"] / received * 1e6,
        "switches_voluntary": switches[0],
        "switches_involuntary": switches[1],
        "machine_busy": through["machine_busy"],
        "frames_lost": through["frames_lost"],
        "streams_failed": through["streams_failed"],
    }


def line(label, name, row):
    return f"{label:>12} {name:>7} " + " ".join(
        f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def main():
    args = parse_args()
    builds = [parse_build(b) for b in args.builds]
    if args.timelines is not None:
        os.makedirs(args.timelines, exist_ok=True)
    results = {label: [] for label, _, _ in builds}
    with tempfile.TemporaryDirectory(prefix="sluice-ab-chat-") as workdir:
        ctx_args = SimpleNamespace(smoke=False, workdir=workdir, out=workdir, venv="",
                                   target_dir=args.target_dir, database="postgres")
        with Context(ctx_args) as ctx:
            for r in range(args.rounds):
                for label, binary, env in (builds if r % 2 == 0 else builds[::-1]):
                    row = one_round(ctx, label, binary, env, args, r)
                    results[label].append(row)
                    print(line(label, f"round {r}", row), flush=True)
    for label, rows in results.items():
        medians = {k: float(statistics.median(row[k] for row in rows)) for k in rows[0]}
        print(line(label, "median", medians))
    if any(row["frames_lost"] or row["streams_failed"] for rows in results.values()
           for row in rows):
        sys.exit("ab_chat: a build lost frames or failed streams")


if __name__ == "__main__":
    main()
