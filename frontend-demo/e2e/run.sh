#!/usr/bin/env bash
# The browser tests against the real product: builds the gateway and the page, starts
# `sluice mock-ai` and `sluice serve` (temp SQLite, dev login, the built page) on free loopback
# ports, runs `npm run test:e2e` in Debian's Chromium, and stops both processes however it ends.
#
#   bash frontend-demo/e2e/run.sh [node --test args]
#   bash frontend-demo/e2e/run.sh --screens    # screenshots of every screen instead (e2e/screens.mjs)
#   bash frontend-demo/e2e/run.sh --stack      # only start the stack, print its URLs, wait for Ctrl-C
#
# Installs Debian's `chromium` when /usr/bin/chromium (or CHROMIUM_PATH) is missing; never
# downloads a browser. Exits non-zero when a test fails; with E2E_REQUIRED=1 the tests fail
# instead of skipping when something they need is missing.
# CARGO_TARGET_DIR   cargo's build directory (default $HOME/.cache/sluice/target)
# E2E_KEEP_LOGS=1    keep the temp directory with both processes' logs
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
frontend="$(cd "$here/.." && pwd)"
root="$(cd "$frontend/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}"
export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"

log() { echo "e2e: $*" >&2; }

ensure_chromium() {
    [[ -x "$CHROMIUM_PATH" ]] && return
    if [[ "$CHROMIUM_PATH" != /usr/bin/chromium ]]; then
        log "no browser at CHROMIUM_PATH=$CHROMIUM_PATH"; exit 1
    fi
    if [[ "$(id -u)" != 0 ]]; then
        log "need root to install Debian's chromium (apt-get install -y chromium)"; exit 1
    fi
    log "installing Debian's chromium"
    if [[ -z "${SLUICE_APT_UPDATED:-}" ]]; then
        apt-get update -qq
        export SLUICE_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
}

# True when $1 is missing or any file of the page's sources is newer than it.
stale() {
    [[ ! -e "$1" ]] && return 0
    [[ -n "$(find "$frontend/src" "$frontend/index.html" "$frontend/vite.config.ts" \
        "$frontend/tsconfig.json" "$frontend/package.json" "$frontend/package-lock.json" \
        -newer "$1" -print -quit)" ]]
}

build_page() {
    cd "$frontend"
    if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
        log "npm ci"
        npm ci --no-audit --no-fund --loglevel=error
    fi
    if stale dist/index.html; then
        log "building the page"
        npm run --silent build >/dev/null
    fi
}

# A loopback port nobody listens on right now.
free_port() {
    node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

# Waits (bounded) until $1/health answers 200; fails with the process's log otherwise.
wait_healthy() {
    local url="$1" pid="$2" logfile="$3"
    for _ in $(seq 150); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "the process behind $url exited; its log:"; tail -n 40 "$logfile" >&2; return 1
        fi
        curl -fsS -o /dev/null --max-time 1 "$url/health" 2>/dev/null && return 0
        sleep 0.2
    done
    log "$url/health did not answer within 30 s; log:"; tail -n 40 "$logfile" >&2
    return 1
}

ensure_chromium
(cd "$root" && cargo build --locked --quiet --bin sluice)
build_page

work="$(mktemp -d "${TMPDIR:-/tmp}/sluice-e2e.XXXXXX")"
pids=()
stop() {
    local status=$?
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ $status -ne 0 || -n "${E2E_KEEP_LOGS:-}" ]]; then
        log "logs kept in $work"
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap stop EXIT
# Ctrl-C is a failure while tests run, and the normal end of --stack.
trap 'exit "${interrupted_status:-130}"' INT TERM

sluice="$CARGO_TARGET_DIR/debug/sluice"
mock_port="$(free_port)"
gateway_port="$(free_port)"
while [[ "$gateway_port" == "$mock_port" ]]; do gateway_port="$(free_port)"; done
mock_url="http://127.0.0.1:$mock_port"
gateway_url="http://127.0.0.1:$gateway_port"
api_key="e2e-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"

# Both processes get only what this run decides: no shared Redis, database or JWT key leaks in.
clean_env=(env -u REDIS_URL -u DATABASE_URL -u AI_SERVICE_URL -u AI_FALLBACK_URLS -u JWT_SECRET
    -u JWT_PUBLIC_KEY_FILE -u JWT_JWKS_URL -u SLUICE_CONFIG -u BIND_ADDR LOG_FORMAT=json)

"${clean_env[@]}" MOCK_BIND="127.0.0.1:$mock_port" AI_API_KEY="$api_key" GATEWAY_URL="$gateway_url" \
    MOCK_STAGE_DELAY_MS="${MOCK_STAGE_DELAY_MS:-300}" MOCK_TOKEN_DELAY_MS="${MOCK_TOKEN_DELAY_MS:-30}" \
    "$sluice" mock-ai >"$work/mock-ai.log" 2>&1 &
pids+=($!)
mock_pid=$!

"${clean_env[@]}" BIND_ADDR="127.0.0.1:$gateway_port" AI_SERVICE_URL="$mock_url" AI_API_KEY="$api_key" \
    DATABASE_URL="sqlite://$work/sluice.db?mode=rwc" DEV_LOGIN=true FRONTEND_DIR="$frontend/dist" SHUTDOWN_GRACE_SECS=2 \
    "$sluice" serve >"$work/sluice.log" 2>&1 &
pids+=($!)
gateway_pid=$!

wait_healthy "$mock_url" "$mock_pid" "$work/mock-ai.log"
wait_healthy "$gateway_url" "$gateway_pid" "$work/sluice.log"
log "gateway $gateway_url, mock AI $mock_url"

cd "$frontend"
export SLUICE_URL="$gateway_url" MOCK_URL="$mock_url" E2E_REQUIRED=1
if [[ "${1:-}" == --screens ]]; then
    node e2e/screens.mjs
elif [[ "${1:-}" == --stack ]]; then
    echo "SLUICE_URL=$gateway_url MOCK_URL=$mock_url"
    interrupted_status=0
    wait -n "$mock_pid" "$gateway_pid"
elif [[ $# -gt 0 ]]; then
    node --test "$@" e2e/    # e.g. --test-name-pattern=interrupted (options must precede the path)
else
    npm run --silent test:e2e
fi
