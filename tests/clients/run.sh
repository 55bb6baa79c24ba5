#!/usr/bin/env bash
# Real clients against a real gateway: the official `openai` package streams a chat completion
# through sluice, and httpx-sse reads the conversation message stream.
#
#   bash tests/clients/run.sh [pytest args]
#
# Builds the debug binary, installs the pinned clients into a venv under /tmp, and runs pytest;
# the tests start their own `sluice serve` (free port, temp SQLite, in-process mock AI).
# CLIENTS_VENV   where the venv lives (default /tmp/sluice-clients-venv; reused when present)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${CLIENTS_VENV:-/tmp/sluice-clients-venv}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}"

(cd "$root" && cargo build --locked --quiet --bin sluice)
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"

export PYTHONDONTWRITEBYTECODE=1
export SLUICE_BIN="$CARGO_TARGET_DIR/debug/sluice"
cd "$here"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
