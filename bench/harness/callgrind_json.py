"""Instructions per proxied JSON call, counted by callgrind: one sluice build against another.

Wall-clock figures on this shared 2-core machine move by tens of percent between runs;
instruction counts do not (the same build gives the same count to ~0.1 %, whatever else the
machine does), so a change worth a few per cent shows here and nowhere else. Each build runs
in a fresh stack (mock, private Redis, new database) with sluice under
`valgrind --tool=callgrind` on one event-loop thread. After a warm-up the counters are
zeroed, CALLS passthrough calls of scenario 1 are sent at a fixed rate over 8 connections,
and the counters are dumped: total instructions / calls answered.

    python3 bench/harness/callgrind_json.py \\
        before=/tmp/sluice-before after=$HOME/.cache/sluice/target/release/sluice

A build is LABEL=BINARY[:VAR=VALUE,...], as in ab_chat.py; the variables are set for that
sluice only, and the same binary serves as the mock (outside valgrind). The dumps
stay in the printed work directory for `callgrind_annotate`. Needs valgrind, bench/run's
release load tools under --target-dir, redis-server and PostgreSQL on 127.0.0.1:5432
(SQLite otherwise).
"""

import argparse
import glob
import os
import subprocess
import sys
import tempfile

from ab_chat import parse_build
from context import Context
from json_path import BODY, PATH
from stack import Stack

RATE = 300  # calls a second: callgrind runs sluice ~50× slower, so well under its limit
CONNECTIONS = 8


def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("builds", nargs="+", metavar="LABEL=BINARY[:VAR=VALUE,...]")
    p.add_argument("--seconds", type=int, default=10, help="measured seconds at 300 calls/s")
    p.add_argument("--target-dir", default=os.environ.get(
        "CARGO_TARGET_DIR", os.path.expanduser("~/.cache/sluice/target")))
    p.add_argument("--database", default="postgres", choices=["postgres", "sqlite"])
    return p.parse_args()


def wrapper(workdir, label, binary):
    """A stand-in for the sluice binary that runs `serve` under callgrind and `mock-ai` and
    `token` as they are."""
    out = os.path.join(workdir, f"callgrind-{label}.out")
    path = os.path.join(workdir, f"sluice-{label}.sh")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n"
                f'if [ "$1" = serve ]; then exec valgrind --tool=callgrind -q '
                f'--callgrind-out-file={out}.%p "{binary}" "$@"; fi\n'
                f'exec "{binary}" "$@"\n')
    os.chmod(path, 0o755)
    return path, out


def total_instructions(dump):
    with open(dump) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise SystemExit(f"callgrind_json: no totals in {dump}")


def measure(args, workdir, label, binary, env):
    script, out = wrapper(workdir, label, binary)
    ctx_args = argparse.Namespace(smoke=False, workdir=workdir, out=workdir, venv="",
                                  target_dir=args.target_dir, database=args.database)
    with Context(ctx_args) as ctx:
        ctx.sluice_bin = script
        with Stack(ctx, label, {"MOCK_TOKEN_DELAY_MS": "0"}, nginx=False,
                   sluice_env={"TOKIO_WORKER_THREADS": "1", **env}) as stack:
            ctx.current_mock = stack.mock
            sluice = stack.contenders["sluice"]
            pid = str(stack.sluice.pid)
            ctx.http_load(sluice, PATH, BODY, rate=RATE, duration=3,
                          connections=CONNECTIONS, warmup=0)
            subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
            run = ctx.http_load(sluice, PATH, BODY, rate=RATE, duration=args.seconds,
                                connections=CONNECTIONS, warmup=0)
            subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
    dump = latest_dump("callgrind_json", label, out)
    if run["ok"] == 0 or run["errors"]:
        raise SystemExit(f"callgrind_json: {label}: ok={run['ok']} errors={run['errors']}")
    per_call = total_instructions(dump) / run["ok"]
    print(f"{label:>12}  {per_call:>10,.0f} instructions per call  "
          f"({run['ok']} calls; {dump})", flush=True)
    return per_call


def latest_dump(tool, label, out):
    """The dump asked for with `callgrind_control -d`: part 1 (the one written at exit, on
    shutdown, is the base file)."""
    dumps = sorted(glob.glob(f"{out}.*.1"), key=os.path.getmtime)
    if not dumps:
        raise SystemExit(f"{tool}: {label}: no dump under {out}.*")
    return dumps[-1]


def compare(args, measure, workdir_prefix):
    """Measures each of `args.builds` in turn with `measure` and prints each figure against
    the first build's."""
    workdir = tempfile.mkdtemp(prefix=workdir_prefix)
    results = {}
    for spec in args.builds:
        label, binary, env = parse_build(spec)
        results[label] = measure(args, workdir, label, binary, env)
    first_label, first = next(iter(results.items()))
    for label, figure in results.items():
        print(f"{label:>12}  {figure / first - 1:+.1%} against {first_label}")


def main():
    compare(parse_args(), measure, "sluice-callgrind-")
    return 0


if __name__ == "__main__":
    sys.exit(main())
