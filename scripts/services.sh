#!/usr/bin/env bash
# Makes sure the local PostgreSQL (127.0.0.1:5432, trust auth, database `test`) and Redis
# (127.0.0.1:6379) that the tests use are installed and running; starts or installs what is
# missing. Idempotent: does nothing when both already answer.
set -euo pipefail

log() { echo "services: $*" >&2; }

apt_install() {
    if [[ "$(id -u)" != 0 ]]; then
        log "need root to install $*; install it yourself and re-run"; exit 1
    fi
    if [[ -z "${SLUICE_APT_UPDATED:-}" ]]; then
        apt-get update -qq
        export SLUICE_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_redis() {
    if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return; fi
    command -v redis-server >/dev/null || { log "installing redis"; apt_install redis-server redis-tools; }
    log "starting redis on 127.0.0.1:6379"
    mkdir -p /tmp/sluice-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir /tmp/sluice-redis --logfile /tmp/sluice-redis/redis.log
    for _ in $(seq 50); do
        redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return
        sleep 0.1
    done
    log "redis did not start"; exit 1
}

ensure_postgres() {
    if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
        if [[ ! -d /etc/postgresql ]]; then
            log "installing postgresql"
            apt_install postgresql postgresql-client
        fi
        local version
        version="$(ls /etc/postgresql | sort -V | tail -1)"
        local hba="/etc/postgresql/$version/main/pg_hba.conf"
        if ! grep -q "sluice-trust" "$hba"; then
            # Tests connect over TCP as `postgres` without a password (local test server only).
            sed -i '1i host all all 127.0.0.1/32 trust # sluice-trust\nhost all all ::1/128 trust # sluice-trust' "$hba"
        fi
        log "starting postgresql $version"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        for _ in $(seq 100); do
            pg_isready -q -h 127.0.0.1 -p 5432 && break
            sleep 0.2
        done
    fi
    pg_isready -q -h 127.0.0.1 -p 5432 || { log "postgresql did not start"; exit 1; }
    if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1" test >/dev/null 2>&1; then
        psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" postgres >/dev/null
    fi
}

ensure_redis
ensure_postgres
