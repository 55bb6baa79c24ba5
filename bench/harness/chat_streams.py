"""Scenario 2: chat token streams (200 tokens at 20 ms each) through sluice's
`POST /api/conversations/{id}/messages` versus the AI service's own stream, direct and
through nginx."""

import resource
import uuid

from conversations import create_conversations
from report import table
from stack import Stack
from streams import check, figures_table, held_memory, memory_table, stream_rounds

PROMPT = "Tell me about the storm at sea."
TOKENS = 200


def _fd_limit():
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def run(ctx):
    # 9,000, not 10,000: a proxy holds two descriptors per stream and this sandbox's hard
    # limit on open files is 20,000 (not raisable here); bench/run raises it where it can.
    top = 10000 if _fd_limit() >= 25000 else 9000
    levels = [20, 100] if ctx.smoke else [100, 1000, top]
    tokens = 20 if ctx.smoke else TOKENS
    memory_levels = [50] if ctx.smoke else [100, 1000, top]
    result = {"scenario": "chat_streams", "tokens": tokens, "token_delay_ms": 20,
              "rounds": {}, "memory": {}, "notes": [], "failures": []}
    mock_env = {"MOCK_TOKENS": str(tokens), "MOCK_TOKEN_DELAY_MS": "20",
                "MOCK_STAGE_DELAY_MS": "10"}
    with Stack(ctx, "chat", mock_env) as stack:
        ctx.current_mock = stack.mock
        result["notes"] += stack.notes
        names = [n for n in ("direct", "sluice", "nginx") if n in stack.contenders]
        conversations = []
        try:
            conversations = create_conversations(stack, 20 if ctx.smoke else 100)
        except RuntimeError as e:
            result["notes"].append(f"sluice: conversations could not be made ({e}); skipped")
        probe = conversations and stack.sluice_call(
            "POST", f"/api/conversations/{conversations[0]}/messages", {"content": "hi"})[0]
        if not conversations or probe in (404, 405):
            result["notes"].append("sluice: `POST /api/conversations/{id}/messages` is not on "
                                   "this build; sluice skipped in scenario 2")
            names.remove("sluice")

        def request_for(name, count):
            if name == "sluice":
                return {"urls": [f"/api/conversations/{c}/messages" for c in conversations],
                        "body": {"content": PROMPT}}
            urls = [f"/api/ai/conversations/{uuid.uuid4()}/messages-stream"
                    for _ in range(min(count, 100))]
            return {"urls": urls, "body": {"content": PROMPT, "history": []}}

        rounds = stream_rounds(ctx, stack, names, levels, request_for, "ai", tokens)
        result["rounds"] = {str(k): v for k, v in rounds.items()}
        check(rounds, "chat_streams", result["failures"])
    # Memory is measured in fresh processes: after the rounds above, a baseline would start
    # from their high-water mark and hide what the streams need.
    with Stack(ctx, "chat-memory", mock_env) as stack:
        ctx.current_mock = stack.mock
        if "sluice" in names:
            conversations[:] = create_conversations(stack, 20 if ctx.smoke else 100)
        for name in names:
            if name != "direct":
                result["memory"][name] = held_memory(ctx, stack, name, memory_levels,
                                                     request_for, "ai", tokens)
    return result


def markdown(result):
    rounds = {int(k): v for k, v in result["rounds"].items()}
    out = [f"### 2. Chat token streams ({result['tokens']} tokens at "
           f"{result['token_delay_ms']} ms, `POST /api/conversations/{{id}}/messages`)", ""]
    out.append("Times in ms; added = contender minus direct at the same stream count. CPU is "
               "the contender's process (for direct: the mock's own).")
    out.append("")
    out.append(figures_table(rounds, ["nginx"]))
    out.append("")
    out.append("Resident memory with every stream held open after its first token:")
    out.append("")
    out.append(memory_table(result["memory"]) if result["memory"] else "(not measured)")
    return "\n".join(out)


__all__ = ["run", "markdown", "table"]
