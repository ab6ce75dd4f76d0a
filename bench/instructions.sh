#!/usr/bin/env bash
# bench/instructions.sh BIN [N] [oha flags...] — Trellis's user-space instructions per request,
# counted by valgrind's callgrind: for A/B checks of changes worth a few per cent, below what one
# `make bench` run can resolve (docs/BENCHMARKS.md, "Method"). Counts repeat for the same binary
# and load whatever else the machine does; they leave out the kernel and cache-line contention.
#
#   bench/instructions.sh target/release/trellis 2000            HTTP/1.1, the walkthrough shape
#   bench/instructions.sh /tmp/trellis-before 2000 --http2       h2c
#
# Starts two hello-instance backends and `BIN up` under callgrind on loopback ports, warms up
# with 300 requests, zeroes the counters, sends N requests (oha -n N -c 4), dumps the counters and
# prints instructions per request and the functions costing the most. Needs valgrind, oha
# (bench/.tools, installed by bench/run.sh) and the sample functions (make sample-functions).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "$1"); n=${2:-2000}; shift $(( $# >= 2 ? 2 : 1 ))
OHA=${OHA:-bench/.tools/bin/oha}
for tool in valgrind callgrind_control callgrind_annotate "$OHA"; do
    command -v "$tool" >/dev/null || { echo "instructions: $tool is missing" >&2; exit 1; }
done
work=$(mktemp -d /tmp/trellis-instructions-XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
read -r port a b < <(/usr/bin/python3 - "$work" <<'PY'
import json, sys
sys.path.insert(0, "bench")
import bench
work = sys.argv[1]
ports = {"h1": bench.free_port(), "tls": bench.free_port()}
ports["h2c"] = ports["h1"]
a, b = bench.free_port(), bench.free_port()
cert, key, _ = bench.tls_material(work)
open(f"{work}/trellis.yaml", "w").write(bench.trellis_http_yaml(ports, a, b, cert, key))
print(ports["h1"], a, b)
PY
)
dist=sample-functions/dist
"$dist/hello-instance" --port "$a" --bind 127.0.0.1 --name instance-a >/dev/null 2>&1 & pids+=($!)
"$dist/hello-instance" --port "$b" --bind 127.0.0.1 --name instance-b >/dev/null 2>&1 & pids+=($!)
valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$bin" up -f "$work/trellis.yaml" \
    --bind 127.0.0.1 --state-dir "$work/state" >"$work/trellis.log" 2>&1 & trellis=$!; pids+=($trellis)
host=lattice-svc.trellis.localhost
load() { "$OHA" -n "$1" -c 4 --no-tui "${@:2}" --connect-to "$host:$port:127.0.0.1:$port" "http://$host:$port/"; }
for _ in $(seq 1 300); do   # valgrind starts slowly: up to 60 s
    curl -sf -o /dev/null -H "Host: $host" "http://127.0.0.1:$port/" && break
    sleep 0.2
done
load 300 "$@" >/dev/null
callgrind_control -z "$trellis" >/dev/null
load "$n" "$@" | grep -E "Success rate" >&2
callgrind_control -d "$trellis" >/dev/null
total=$(callgrind_annotate "$work/cg.out.1" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
echo "$(basename "$bin"): $((total / n)) instructions per request ($n requests, $total in all)"
# The functions' own instructions (callgrind's dump also lists the threads' entry points, with
# everything under them: those lines, at 100 % or near it, are left out).
callgrind_annotate --inclusive=no --threshold=100 "$work/cg.out.1" | /usr/bin/python3 -c '
import re, sys
n, shown = int(sys.argv[1]), 0
for line in sys.stdin:
    m = re.match(r"^ *([0-9,]+) +\( *([0-9.]+)%\) +(.*)$", line)
    if m and float(m[2]) < 50 and shown < 30:
        name = re.sub(r" \[.*$", "", m[3]).removeprefix("???:")
        per_request = int(m[1].replace(",", "")) // n
        print(f"{per_request:8d}  {float(m[2]):5.2f} %  {name}")
        shown += 1
' "$n"
