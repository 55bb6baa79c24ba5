"""Instructions per relayed chat token, counted by callgrind: one sluice build against another.

The chat relay's counterpart of callgrind_json.py, for changes worth a few per cent of the
relay's CPU, which wall-clock runs on this 2-core machine cannot show. Each build runs in a
fresh stack (mock at 20 ms per token, private Redis, new database, 100 conversations) with
sluice under `valgrind --tool=callgrind` on one event-loop thread. After 20 warm-up streams
the counters are zeroed, STREAMS chat streams of TOKENS tokens are relayed (their starts
included: a start is ~260,000 instructions, so with the defaults starts are ~1/40 of the
total), and the counters are dumped: total instructions / tokens received.

    python3 bench/harness/callgrind_chat.py \\
        before=/tmp/sluice-before after=$HOME/.cache/sluice/target/release/sluice

A build is LABEL=BINARY[:VAR=VALUE,...], as in ab_chat.py. The dumps stay in the printed work
directory for `callgrind_annotate`. Needs what callgrind_json.py needs, and `sse-load`.
"""

import argparse
import os
import subprocess
import sys

from callgrind_json import compare, latest_dump, total_instructions, wrapper
from chat_streams import PROMPT
from context import Context
from conversations import create_conversations
from stack import Stack

WARM_UP_STREAMS = 20


def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("builds", nargs="+", metavar="LABEL=BINARY[:VAR=VALUE,...]")
    p.add_argument("--streams", type=int, default=50)
    p.add_argument("--tokens", type=int, default=200)
    p.add_argument("--target-dir", default=os.environ.get(
        "CARGO_TARGET_DIR", os.path.expanduser("~/.cache/sluice/target")))
    p.add_argument("--database", default="postgres", choices=["postgres", "sqlite"])
    return p.parse_args()


def measure(args, workdir, label, binary, env):
    script, out = wrapper(workdir, label, binary)
    ctx_args = argparse.Namespace(smoke=False, workdir=workdir, out=workdir, venv="",
                                  target_dir=args.target_dir, database=args.database)
    mock_env = {"MOCK_TOKENS": str(args.tokens), "MOCK_TOKEN_DELAY_MS": "20",
                "MOCK_STAGE_DELAY_MS": "10"}
    with Context(ctx_args) as ctx:
        ctx.sluice_bin = script
        with Stack(ctx, label, mock_env, nginx=False,
                   sluice_env={"TOKIO_WORKER_THREADS": "1", **env}) as stack:
            ctx.current_mock = stack.mock
            sluice = stack.contenders["sluice"]
            pid = str(stack.sluice.pid)
            conversations = create_conversations(stack, 100)
            request = {"urls": [f"/api/conversations/{c}/messages" for c in conversations],
                       "body": {"content": PROMPT}}
            ctx.sse_load(sluice, dialect="ai", streams=WARM_UP_STREAMS, expect=args.tokens,
                         **request)
            subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
            run = ctx.sse_load(sluice, dialect="ai", streams=args.streams, expect=args.tokens,
                               **request)
            subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
    dump = latest_dump("callgrind_chat", label, out)
    if run["streams_failed"] or run["frames_lost"]:
        raise SystemExit(f"callgrind_chat: {label}: failed={run['streams_failed']} "
                         f"lost={run['frames_lost']}")
    per_token = total_instructions(dump) / run["tokens_received"]
    print(f"{label:>12}  {per_token:>8,.0f} instructions per token  "
          f"({run['tokens_received']} tokens; {dump})", flush=True)
    return per_token


def main():
    compare(parse_args(), measure, "sluice-callgrind-chat-")
    return 0


if __name__ == "__main__":
    sys.exit(main())
