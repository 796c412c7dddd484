#!/usr/bin/env bash
# Profiles the Weft server during the benchmark's validated HTTP produce and writes a summary of where its CPU goes.
#
# Runs the release server and the benchmark's HTTP produce of the governed stream (fsync always, auth on, every event
# validated against bench/contracts/orders.odcs.yaml), with `perf record -g` attached to the server's pid for the
# produce phase only (weft-bench --perf-record-dir), then prints the top symbols by self time
# (`perf report --no-children --stdio`) and writes them, with the run's figures, to a Markdown file.
# Installs Debian's linux-perf when perf is missing. Where perf cannot sample (no perf events in this kernel), falls
# back to counting instructions with `valgrind --tool=callgrind` over a smaller run of the same workload.
#
#   scripts/profile.sh                          # 300,000 events -> bench/results/profile-http-validated.md
#   scripts/profile.sh --events 1000000 --top 40 --out /tmp/profile.md
# Set BENCH_SKIP_BUILD=1 to profile the existing release binaries without rebuilding them; CARGO_TARGET_DIR is honoured.
# Set PROFILE_TOOL=callgrind to use the callgrind fallback even where perf works.
set -euo pipefail
cd "$(dirname "$0")/.."

events=300000
callgrind_events=20000
top=25
out=bench/results/profile-http-validated.md
while [ "$#" -gt 0 ]; do
    case "$1" in
        --events) events="$2"; shift 2 ;;
        --callgrind-events) callgrind_events="$2"; shift 2 ;;
        --top) top="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) echo "profile.sh: unknown argument $1 (expected --events N, --callgrind-events N, --top N, --out FILE)" >&2; exit 2 ;;
    esac
done

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian's /usr/bin/perf is a wrapper that fails when the perf of the running kernel's series is missing.
if ! perf --version >/dev/null 2>&1; then
    echo "profile.sh: installing linux-perf" >&2
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends linux-perf
fi

target_dir="${CARGO_TARGET_DIR:-target}"
if [ "${BENCH_SKIP_BUILD:-0}" != "1" ]; then
    cargo build --release -p weft -p weft-bench
fi
weft="$(realpath "$target_dir/release/weft")"
bench="$(realpath "$target_dir/release/weft-bench")"

work="$(mktemp -d -t weft-profile-XXXXXX)"
trap 'rm -rf "$work"' EXIT
config=weft-http-fsync-always-contracts
bench_args=(--systems weft --weft-fsync always --weft-contracts on --weft-auth on --runs 1 --skip-limits
    --latency-seconds 1 --out-dir "$work" --name profile)

# cpu-clock is a software event, so this works in virtual machines without hardware performance counters.
# PROFILE_TOOL=callgrind forces the fallback (to check it where perf works).
if [ "${PROFILE_TOOL:-}" = callgrind ]; then
    tool=callgrind
    command -v valgrind >/dev/null 2>&1 || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends valgrind
elif perf record -e cpu-clock -o "$work/probe.data" -- true >"$work/probe.log" 2>&1; then
    tool=perf
else
    tool=callgrind
    echo "profile.sh: perf cannot sample here ($(tail -n 1 "$work/probe.log")); counting instructions with callgrind instead" >&2
    command -v valgrind >/dev/null 2>&1 || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends valgrind
fi

# The first N rows of a report that start with a percentage, without perf's empty IPC columns. awk reads to the end,
# so the report's writer never dies of SIGPIPE (which pipefail would turn into a failure).
first_rows() {
    awk -v n="$1" '/^ +[0-9.]+%/ && count < n { sub(/( +-)+ *$/, ""); print; count++ }'
}

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
started="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
if [ "$tool" = perf ]; then
    "$bench" "${bench_args[@]}" --events "$events" --weft-bin "$weft" --perf-record-dir "$work" >"$work/bench.out" 2>"$work/bench.log" \
        || { cat "$work/bench.log" >&2; exit 1; }
    data="$work/$config-run1.perf.data"
    # Flat self time per symbol; the call graphs recorded with -g stay in the data file for `perf report -g`.
    perf report -i "$data" --no-children --stdio --sort symbol -g none --percent-limit 0 2>/dev/null \
        | first_rows "$top" >"$work/symbols.txt"
    perf report -i "$data" --no-children --stdio --sort dso -g none 2>/dev/null | first_rows 10 >"$work/dsos.txt"
    n_samples="$(perf script -i "$data" -F period 2>/dev/null | wc -l)"
    events_run="$events"
    reproduce="scripts/profile.sh --events $events"
    cost="self time"
    method="\`perf record -e cpu-clock -F 999 -g -p <server pid>\`, sampling only between the first batch and the last acknowledgement of the produce phase; $n_samples samples. Self time per symbol: \`perf report --no-children --stdio --sort symbol -g none\`."
else
    # callgrind runs the server in its own process (same pid), 20-50 times slower, so the run is smaller.
    wrapper="$work/weft-under-callgrind"
    printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s/callgrind.out.%%p "%s" "$@"\n' "$work" "$weft" >"$wrapper"
    chmod +x "$wrapper"
    "$bench" "${bench_args[@]}" --events "$callgrind_events" --weft-bin "$wrapper" --phase-timeout-seconds 1800 \
        >"$work/bench.out" 2>"$work/bench.log" || { cat "$work/bench.log" >&2; exit 1; }
    callgrind_annotate --inclusive=no "$work"/callgrind.out.* 2>/dev/null \
        | grep -v 'PROGRAM TOTALS' \
        | sed -E 's/^ *([0-9,]+) +\( *([0-9.]+%)\) +[^ ]*\.(rs|c|S|h):(.*)$/    \2  \4/' | first_rows "$top" >"$work/symbols.txt"
    : >"$work/dsos.txt"
    events_run="$callgrind_events"
    reproduce="PROFILE_TOOL=callgrind scripts/profile.sh --callgrind-events $callgrind_events"
    cost="self instructions"
    method="\`valgrind --tool=callgrind\` around the whole server run (start-up, produce, consume and a 1 s latency phase), so the counts are instructions, not time, and include more than produce. Self instructions per function: \`callgrind_annotate --inclusive=no\`."
fi
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

row="$(grep -m1 "^| $config |" "$work/profile.md" || true)"
produce_rate="$(echo "$row" | cut -d'|' -f3 | xargs)"
produce_cpu="$(echo "$row" | cut -d'|' -f5 | xargs)"

markdown_rows() {
    # "   12.34%  [.] symbol" -> "| 12.34% | `[.] symbol` |"; a pipe in a symbol would end the table cell.
    sed -E 's/\|/\\|/g; s/^ *([0-9.]+%) +(.*[^ ]) *$/| \1 | `\2` |/' "$1"
}

mkdir -p "$(dirname "$out")"
{
    echo "# Profile of the Weft server: validated HTTP produce"
    echo
    echo "Taken $started by \`scripts/profile.sh\` with $tool on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), Linux $(uname -r)."
    echo "Workload: the benchmark's $config configuration, $events_run events of ~250 B over 8 partitions, fsync always, auth on, every event validated against \`bench/contracts/orders.odcs.yaml\`; NDJSON batches of 1,000 from 4 HTTP connections."
    echo "Produce with the profiler attached: $produce_rate ev/s, server CPU $produce_cpu µs/event (the profiler slows the server; these are not benchmark figures)."
    echo "Load average (1, 5, 15 min) before: $load_before; after: $load_after (other work shares the machine)."
    echo "Method: $method"
    echo
    echo "## Top $top symbols by $cost"
    echo
    echo "| self | symbol |"
    echo "|---:|---|"
    markdown_rows "$work/symbols.txt"
    if [ -s "$work/dsos.txt" ]; then
        echo
        echo "## Self time by binary"
        echo
        echo "| self | binary |"
        echo "|---:|---|"
        markdown_rows "$work/dsos.txt"
    fi
    echo
    echo "Reproduce: \`$reproduce\`."
} >"$out"
cat "$out"
