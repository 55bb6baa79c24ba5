"""bench/run's driver: runs the scenarios, writes `<out>/<scenario>.json`, `<out>/summary.md`
and (with matplotlib) the PNG plots; exits 1 when a scenario broke (frames lost, a contender
failing, errors)."""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback

import chat_streams
import fanout
import json_path
import long_polling
import openai_streams
import plots
from context import Context

SCENARIOS = {
    "json": json_path,
    "chat": chat_streams,
    "openai": openai_streams,
    "fanout": fanout,
    "polling": long_polling,
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--smoke", action="store_true", help="small N, seconds (CI)")
    p.add_argument("--only", default=",".join(SCENARIOS),
                   help="comma-separated scenarios: " + ",".join(SCENARIOS))
    p.add_argument("--out", required=True)
    p.add_argument("--target-dir", required=True)
    p.add_argument("--venv", required=True)
    p.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    return p.parse_args()


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=os.path.dirname(os.path.abspath(__file__)))
    return {"cpus": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "commit": commit.stdout.strip() or None}


def main():
    args = parse_args()
    os.makedirs(args.out, exist_ok=True)
    args.workdir = tempfile.mkdtemp(prefix="sluice-bench-")
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    failures, sections = [], []
    info = machine()
    info["mode"] = "smoke" if args.smoke else "full"
    with Context(args) as ctx:
        ctx.litellm_installed = os.path.exists(os.path.join(args.venv, "bin", "litellm"))
        for key in chosen:
            module = SCENARIOS[key]
            print(f"bench: scenario {key} …", flush=True)
            started = time.monotonic()
            try:
                result = module.run(ctx)
            except Exception as e:  # noqa: BLE001 - a broken scenario is reported, not fatal
                traceback.print_exc()
                failures.append(f"{key}: {e}")
                continue
            result["machine"] = info
            result["wall_secs"] = round(time.monotonic() - started, 1)
            with open(os.path.join(args.out, f"{result['scenario']}.json"), "w") as f:
                json.dump(result, f, indent=1)
            section = module.markdown(result)
            if result["notes"]:
                section += "\n\nNotes:\n" + "\n".join(f"- {n}" for n in result["notes"])
            sections.append(section)
            failures += result["failures"]
            print(section + "\n", flush=True)
            if not args.smoke:
                plots.draw(result, args.out)
    header = (f"Machine: {info['cpus']} CPUs ({info['cpu']}), kernel {info['kernel']}, "
              f"{info['date']}, commit {info['commit']}, mode {info['mode']}.")
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(header + "\n\n" + "\n\n".join(sections) + "\n")
    if failures:
        print("bench: FAILED\n" + "\n".join(f"  - {x}" for x in failures), file=sys.stderr)
        sys.exit(1)
    print(f"bench: done; results in {args.out}")


if __name__ == "__main__":
    main()
