#!/usr/bin/env bash
# Runs the deployment-file tests in a private venv.
#
#   bash tests/deploy/run.sh [pytest args]
#
# DEPLOY_VENV    where the venv lives (default /tmp/sluice-deploy-venv; reused when present)
# DEPLOY_NO_APT  set to 1 to skip installing nginx and promtool with apt-get; without them the
#                tests that need them are skipped, not failed
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${DEPLOY_VENV:-/tmp/sluice-deploy-venv}"

# nginx (nginx -t and the live load-balancer tests) and promtool (PromQL syntax, alert unit
# tests) come from Debian; install them only where missing and only as root.
if [[ "${DEPLOY_NO_APT:-0}" != 1 && "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    need_nginx=0 need_promtool=0
    [[ -x /usr/sbin/nginx ]] || need_nginx=1
    command -v promtool >/dev/null || need_promtool=1
    if ((need_nginx || need_promtool)); then
        echo "installing nginx and/or promtool for tests/deploy" >&2
        # The tests run their own nginx on loopback ports: keep the packages' postinst from
        # starting the system services, unless the machine already has a policy for that.
        policy=/usr/sbin/policy-rc.d own_policy=0
        if [[ ! -e "$policy" ]]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
            trap 'rm -f "$policy"' EXIT
        fi
        apt-get update -qq
        packages=()
        if ((need_nginx)); then
            # nginx-light is bookworm's smallest build; later releases only have nginx.
            if apt-cache show nginx-light >/dev/null 2>&1; then packages+=(nginx-light); else packages+=(nginx); fi
        fi
        ((need_promtool)) && packages+=(prometheus)
        DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
        if ((own_policy)); then rm -f "$policy"; trap - EXIT; fi
    fi
fi

[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
# A no-op without network access once the pinned versions are installed.
"$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"

exec "$venv/bin/python" -m pytest "$here" "$@"
