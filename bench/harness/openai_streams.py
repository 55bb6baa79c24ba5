"""Scenario 3: `POST /v1/chat/completions` with `stream: true`: direct, sluice, nginx and
LiteLLM. First throughput (zero token delay, closed loop, whole streamed answers), then the
stream figures of scenario 2 at 20 ms per token."""

import os

from report import ms, num, ratio, rotate, table
from stack import Stack
from streams import check, figures_table, stream_rounds

PATH = "/v1/chat/completions"
TOKENS = 200
CONTENDERS = ["direct", "sluice", "nginx", "litellm"]


def body(stream=True):
    return {"model": "mock-1", "stream": stream,
            "messages": [{"role": "user", "content": "Tell me about the storm at sea."}]}


def _names(stack, result):
    names = [n for n in CONTENDERS if n in stack.contenders]
    status, _ = stack.sluice_call("POST", PATH, body(stream=False))
    if status in (404, 405):
        result["notes"].append("sluice: `/v1/chat/completions` is not on this build; skipped")
        names.remove("sluice")
    return names


def run(ctx):
    duration = 3 if ctx.smoke else 10
    levels = [20] if ctx.smoke else [100, 1000]
    tokens = 20 if ctx.smoke else TOKENS
    # LiteLLM takes minutes to start on a busy machine: the smoke run leaves it out unless
    # it is installed and BENCH_SMOKE_LITELLM=1.
    use_litellm = not ctx.smoke or (ctx.litellm_installed
                                    and os.environ.get("BENCH_SMOKE_LITELLM") == "1")
    result = {"scenario": "openai_streams", "tokens": tokens, "token_delay_ms": 20,
              "throughput": {}, "rounds": {}, "notes": [], "failures": []}

    with Stack(ctx, "openai0", {"MOCK_TOKENS": str(tokens), "MOCK_TOKEN_DELAY_MS": "0"},
               litellm=use_litellm) as stack:
        ctx.current_mock = stack.mock
        result["notes"] += stack.notes
        names = _names(stack, result)
        for name in rotate(names, 0):
            r = ctx.http_load(stack.contenders[name], PATH, body(), rate=0, duration=duration,
                              connections=32)
            result["throughput"][name] = r
            if r["ok"] == 0 or r["errors"]:
                result["failures"].append(
                    f"openai throughput {name}: ok={r['ok']} errors={r['errors']}")

    mock_env = {"MOCK_TOKENS": str(tokens), "MOCK_TOKEN_DELAY_MS": "20"}
    with Stack(ctx, "openai20", mock_env, litellm=use_litellm) as stack:
        ctx.current_mock = stack.mock
        result["notes"] += [n for n in stack.notes if n not in result["notes"]]
        names = _names(stack, {"notes": []})
        rounds = stream_rounds(ctx, stack, names, levels,
                               lambda name, count: {"path": PATH, "body": body()},
                               "openai", tokens)
        result["rounds"] = {str(k): v for k, v in rounds.items()}
        check(rounds, "openai_streams", result["failures"], result["notes"],
              tolerated={"litellm"})
    return result


def markdown(result):
    out = [f"### 3. `/v1/chat/completions` streaming ({result['tokens']} tokens)", ""]
    tp = result["throughput"]
    out.append("Throughput: whole streamed answers, zero token delay, 32 callers (closed loop):")
    out.append("")
    rows = []
    for name, r in tp.items():
        rows.append([name, num(r["throughput_rps"]),
                     ratio(r["throughput_rps"], tp.get("direct", {}).get("throughput_rps")),
                     ratio(r["throughput_rps"], tp.get("litellm", {}).get("throughput_rps")),
                     ratio(r["throughput_rps"], tp.get("nginx", {}).get("throughput_rps")),
                     ms(r["latency"]["p50_ms"]), ms(r["latency"]["p99_ms"]),
                     sum(r["errors"].values())])
    out.append(table(["contender", "answers/s", "× direct", "× litellm", "× nginx",
                      "p50 ms", "p99 ms", "errors"], rows))
    out.append("")
    out.append(f"Streams at {result['token_delay_ms']} ms per token (times in ms):")
    out.append("")
    rounds = {int(k): v for k, v in result["rounds"].items()}
    out.append(figures_table(rounds, ["nginx", "litellm"]))
    return "\n".join(out)
