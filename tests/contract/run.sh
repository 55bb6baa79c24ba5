#!/usr/bin/env bash
# Contract fuzzing: schemathesis generates requests from the gateway's own OpenAPI document
# (`/openapi.json`) and checks every answer against it: no 5xx, only documented status codes,
# the documented content types, headers and response schemas, invalid input refused and valid
# input accepted.
#
#   bash tests/contract/run.sh [extra schemathesis args]
#
# Builds the debug binary, installs the pinned schemathesis into a venv under /tmp, starts one
# `sluice serve` (free port, temp SQLite, in-process simulated AI service, rate limits out of
# the way) and fuzzes it three times: with a user's JWT, anonymously, and with the AI service's
# key on the internal routes. Exits non-zero when any run finds something; schemathesis prints
# a curl command reproducing each finding.
#
# CONTRACT_VENV          where the venv lives (default /tmp/sluice-contract-venv; reused)
# CONTRACT_MAX_EXAMPLES  generated cases per operation and phase (default 25)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${CONTRACT_VENV:-/tmp/sluice-contract-venv}"
max_examples="${CONTRACT_MAX_EXAMPLES:-25}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}"

(cd "$root" && cargo build --locked --quiet --bin sluice)
# CPython before 3.13 can raise "SystemError: AST constructor recursion depth mismatch" from
# ast.parse (gh-106905), which Hypothesis calls to describe its filters: prefer a newer one.
fixed() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 13))' 2>/dev/null; }
python=python3
for candidate in python3.14 python3.13 ${PYENV_ROOT:-$HOME/.pyenv}/versions/3.1[3-9]*/bin/python3; do
    if fixed "$candidate"; then python="$candidate"; break; fi
done
if [[ ! -x "$venv/bin/python" ]] || { ! fixed "$venv/bin/python" && fixed "$python"; }; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"

binary="$CARGO_TARGET_DIR/debug/sluice"
workdir="$(mktemp -d /tmp/sluice-contract.XXXXXX)"
port="$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:$port"
ai_key="contract-ai-key-$RANDOM$RANDOM"

# The embedded default (no Redis, no external AI service), whatever the caller's shell has set.
unset REDIS_URL AI_SERVICE_URL AI_FALLBACK_URLS SLUICE_CONFIG
export BIND_ADDR="127.0.0.1:$port" \
    DATABASE_URL="sqlite://$workdir/sluice.db?mode=rwc" \
    JWT_SECRET="contract-test-secret-$RANDOM$RANDOM$RANDOM" \
    AI_API_KEY="$ai_key" \
    DEV_LOGIN=true \
    LOG_FORMAT=json \
    RATE_LIMIT_PER_SECOND=100000 RATE_LIMIT_BURST=100000 \
    AI_RATE_LIMIT_PER_MINUTE=100000 AI_RATE_LIMIT_BURST=100000 \
    MAX_STREAMS_PER_USER=1000 \
    UPSTREAM_TIMEOUT_MS=2000 STREAM_IDLE_TIMEOUT_MS=2000 \
    GENERATION_TIMEOUT_SECS=10 SHUTDOWN_GRACE_SECS=1 \
    MOCK_TOKENS=3 MOCK_TOKEN_DELAY_MS=1 MOCK_STAGE_DELAY_MS=5

"$binary" serve >"$workdir/sluice.log" 2>&1 &
server=$!
cleanup() {
    kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$workdir"
}
trap cleanup EXIT

for _ in $(seq 300); do
    curl -fsS -o /dev/null "$url/health/readiness" 2>/dev/null && break
    kill -0 "$server" 2>/dev/null || { cat "$workdir/sluice.log" >&2; echo "sluice exited" >&2; exit 1; }
    sleep 0.1
done
curl -fsS -o /dev/null "$url/health/readiness" || { echo "sluice did not become ready" >&2; exit 1; }

token="$("$binary" token --sub contract-fuzz)"

# All checks (the default; exceptions in schemathesis.toml); `timeout` bounds a run even if a stream should hang despite --request-timeout.
fuzz() {
    local name="$1"
    shift
    printf '\n==> schemathesis: %s\n' "$name"
    (cd "$workdir" && timeout 300 "$venv/bin/st" --config-file "$here/schemathesis.toml" \
        run "$url/openapi.json" \
        --max-examples "$max_examples" \
        --request-timeout 5 \
        --max-failures 20 \
        --workers 2 \
        --seed 1 \
        --generation-database none \
        --no-color \
        "$@")
}

failed=()
fuzz "with a user's JWT" -H "Authorization: Bearer $token" --exclude-tag internal "$@" ||
    failed+=("user")
fuzz "anonymous" "$@" || failed+=("anonymous")
fuzz "internal routes with AI_API_KEY" -H "Authorization: Bearer $ai_key" --include-tag internal "$@" ||
    failed+=("internal")

if grep -q '"level":"ERROR"' "$workdir/sluice.log"; then
    echo "the gateway logged errors during the fuzzing:" >&2
    grep '"level":"ERROR"' "$workdir/sluice.log" | head -20 >&2
    failed+=("gateway errors")
fi

if ((${#failed[@]})); then
    echo "contract fuzzing found problems: ${failed[*]}" >&2
    exit 1
fi
echo "contract fuzzing: no findings"
