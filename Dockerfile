# syntax=docker/dockerfile:1
#
# sluice container image: three stages so the runtime carries only the binary, the built demo
# frontend and a static busybox for the health check.
#
#   docker build -t sluice .
#   docker run --rm -p 8080:8080 -e JWT_SECRET=... sluice
#
# The same image runs the simulated AI service: `docker run sluice mock-ai`.

# --- 1. Rust builder ------------------------------------------------------------------------
FROM rust:1-slim-bookworm AS builder
WORKDIR /build

# Dependencies first, against stub sources, so this layer is rebuilt only when Cargo.toml or
# Cargo.lock change and not on every source edit.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --bin sluice \
    && rm -rf src

COPY . .
# COPY keeps the files' own mtimes, which may be older than the stub build: touch the crate
# roots so cargo rebuilds sluice itself instead of reusing the stub.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin sluice \
    && cp target/release/sluice /usr/local/bin/sluice

# --- 2. Demo frontend -----------------------------------------------------------------------
FROM node:20-slim AS frontend
WORKDIR /build/frontend-demo
COPY frontend-demo/package.json frontend-demo/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend-demo/ ./
RUN npm run build

# --- 3. Runtime -----------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# busybox-static gives `wget` for HEALTHCHECK (about 1 MB, no shared-library dependencies);
# ca-certificates lets the gateway reach TLS upstreams and JWKS endpoints. Versions are not
# pinned: bookworm's security updates replace them, and a pin would break the build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends busybox-static ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 sluice \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin sluice \
    && mkdir -p /app/data \
    && chown 10001:10001 /app/data

COPY --from=builder /usr/local/bin/sluice /usr/local/bin/sluice
COPY --from=frontend /build/frontend-demo/dist /app/frontend-demo/dist

# The gateway serves `frontend-demo/dist` relative to its working directory.
WORKDIR /app
USER 10001:10001

# Listen on every interface inside the container (the contract's default is loopback only,
# which no published port could reach). Without a DATABASE_URL the embedded SQLite database
# lives in /app/data, the only directory the sluice user can write: mount a volume there to
# keep it, or set a Postgres DATABASE_URL.
ENV BIND_ADDR=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///app/data/sluice.db?mode=rwc \
    LOG_FORMAT=json
VOLUME ["/app/data"]
EXPOSE 8080

# Liveness, not readiness: an orchestrator that restarts unhealthy containers must not restart
# a gateway because Redis or the database is down (compose and Kubernetes probe readiness
# separately). The port follows BIND_ADDR.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/bin/sh", "-c", "busybox wget -q -T 2 -O /dev/null \"http://127.0.0.1:${BIND_ADDR##*:}/health/liveness\""]

ENTRYPOINT ["sluice"]
CMD ["serve"]
