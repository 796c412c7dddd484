#!/usr/bin/env bash
# Runs the Weft benchmark (bench/, crate weft-bench) against NATS JetStream, Redis Streams and a PostgreSQL outbox,
# with Weft over HTTP and over its Kafka listener (kcat).
#
# Installs the peer servers from Debian when they are missing, makes sure a non-root OS user exists for PostgreSQL,
# builds in release, and passes every argument on to the tool, for example:
#   scripts/bench.sh                 # full run: 1,000,000 events, 3 runs per system -> bench/results/latest.{md,json}
#   scripts/bench.sh --smoke         # under a minute, for CI           -> bench/results/smoke.{md,json}
#   scripts/bench.sh --systems weft --weft-fsync always --runs 1
#   scripts/bench.sh --weft-contracts off,on --weft-auth on,off   # adds the cost of validation and of authorization
#   scripts/bench.sh --systems weft,weft-kafka,nats,redis-none --weft-fsync always --weft-contracts off,on --name issue10
# Set BENCH_SKIP_WEFT_BUILD=1 to benchmark an existing release weft without rebuilding it, and BENCH_SKIP_BUILD=1 to
# build nothing at all (the existing release weft and weft-bench of CARGO_TARGET_DIR, default target/, are run).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
# kcat (librdkafka's CLI) is the Kafka client for the weft-kafka configurations.
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "bench.sh: installing ${missing[*]}" >&2
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# PostgreSQL refuses to run as root; as root, the tool runs its private cluster as this user (--pg-user).
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin postgres
fi

if [ "${BENCH_SKIP_BUILD:-0}" = "1" ]; then
    exec "${CARGO_TARGET_DIR:-target}/release/weft-bench" "$@"
fi
if [ "${BENCH_SKIP_WEFT_BUILD:-0}" != "1" ]; then
    # A failing Weft build must not stop the peers from being measured: the tool reports Weft as skipped instead.
    cargo build --release -p weft || echo "bench.sh: cargo build -p weft failed; Weft will be skipped" >&2
fi
cargo build --release -p weft-bench
exec cargo run --release -p weft-bench -- "$@"
