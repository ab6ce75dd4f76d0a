#!/usr/bin/env bash
# The walkthrough demo: a hello-instance app and the hello-wasm function behind one Trellis service.
#   scripts/demo.sh              interactive: serves until Ctrl-C
#   DEMO_CHECK=1 scripts/demo.sh  runs the curl commands, checks the answers, stops (used by make test)
set -euo pipefail
cd "$(dirname "$0")/.."

TRELLIS=${TRELLIS:-target/debug/trellis}
HELLO_INSTANCE=${HELLO_INSTANCE:-sample-functions/dist/hello-instance}
CONFIG=examples/walkthrough.yaml
HOST=lattice-svc.trellis.localhost
PORT=8080
# Trellis answers DNS here for the generated Lattice names (the README's dig line).
DNS=127.0.0.1:10053

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for port in 8080 8081; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "demo: port $port is already in use; stop what runs there (an earlier demo?) and try again" >&2
        exit 1
    fi
done

[ -f sample-functions/dist/hello-wasm.wasm ] || { echo "demo: run 'make sample-functions' first" >&2; exit 1; }
"$HELLO_INSTANCE" --port 8081 --bind 127.0.0.1 --name instance & pids+=($!)

wait_for_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "demo: nothing listens on port $1 after 10s" >&2
    return 1
}
wait_for_port 8081
# The service's generated Lattice name, as `trellis services` shows it.
NAME=$("$TRELLIS" services -f "$CONFIG" --admin off | sed -n 's/^  dns name: *//p' | head -1)

if [ -z "${DEMO_CHECK:-}" ]; then
    cat <<EOT

Trellis demo: service lattice-svc on port $PORT; an instance and a wasm function weighted 20/10.
Try, in another terminal:
  curl http://$HOST:$PORT/                 # 2 of 3 answers from "the instance", 1 of 3 from "the function"
  curl http://$HOST:$PORT/to-instance      # always the instance (hello-instance on port 8081)
  curl http://$HOST:$PORT/to-function      # always the function (sample-functions/dist/hello-wasm.wasm)
  for i in \$(seq 30); do curl -s http://$HOST:$PORT/; done | sort | uniq -c
  # The network is AWS_IAM (allow everyone): a signed request must verify; test/test is the default key.
  curl --aws-sigv4 "aws:amz:us-west-2:vpc-lattice-svcs" --user test:test -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" http://$HOST:$PORT/to-function
  curl --aws-sigv4 "aws:amz:us-west-2:vpc-lattice-svcs" --user test:wrong -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" http://$HOST:$PORT/to-function   # 403
  $TRELLIS routes lattice-svc -f $CONFIG
  dig @127.0.0.1 -p 10053 $NAME   # the generated name, answered by Trellis
Access logs: this terminal (stdout) and logs/network.log; function logs are prefixed [hello-function].
Edit examples/walkthrough.yaml while it runs: a good edit is applied at once, a bad one is reported.
Ctrl-C stops everything.

EOT
    "$TRELLIS" up -f "$CONFIG" --dns "$DNS" & pids+=($!)
    wait "${pids[-1]}"
    exit 0
fi

# DEMO_CHECK: the same commands a user runs, with their answers checked.
"$TRELLIS" up -f "$CONFIG" --dns "$DNS" > /tmp/trellis-demo-access.log 2> /tmp/trellis-demo.err & trellis_pid=$!
pids+=($trellis_pid)
wait_for_port $PORT
fail() { echo "demo-check: $*" >&2; cat /tmp/trellis-demo.err >&2; exit 1; }
check() { # URL EXPECTED-SUBSTRING [CURL-ARGS...]
    local got url=$1 want=$2
    shift 2
    got=$(curl -sS --max-time 5 "$@" "$url") || fail "curl $* $url failed"
    case "$got" in *"$want"*) echo "ok: curl $* $url -> $got" ;; *) fail "curl $* $url answered '$got', expected '$want'" ;; esac
}
check "http://$HOST:$PORT/to-instance" 'Hello from the instance at path "/to-instance"'
check "http://$HOST:$PORT/to-function" 'Hello from the function at path "/to-function"'
a=0; b=0
for _ in $(seq 30); do
    got=$(curl -sS --max-time 5 "http://$HOST:$PORT/") || fail "curl / failed"
    case "$got" in "Hello from the function"*) b=$((b+1)) ;; "Hello from the instance"*) a=$((a+1)) ;; *) fail "unexpected answer '$got'" ;; esac
done
echo "ok: 30 requests to / split $a instance / $b function (expected 20/10)"
# The network is AWS_IAM, allowing everyone: a signed request must verify (test/test is the default key).
check "http://$HOST:$PORT/to-function" 'Hello from the function' --aws-sigv4 aws:amz:us-west-2:vpc-lattice-svcs --user test:test -H "x-amz-content-sha256: UNSIGNED-PAYLOAD"
check "http://$HOST:$PORT/to-function" 'SignatureDoesNotMatch' --aws-sigv4 aws:amz:us-west-2:vpc-lattice-svcs --user test:wrong -H "x-amz-content-sha256: UNSIGNED-PAYLOAD"
[ "$a" -eq 20 ] && [ "$b" -eq 10 ] || fail "the 20/10 split came out $a/$b"
# The README's dig line: the generated name it shows is the one Trellis answers for.
grep -q "dig @127.0.0.1 -p 10053 $NAME" README.md || fail "the README's dig line does not show $NAME"
got=$(dig @127.0.0.1 -p 10053 +short +time=2 +tries=2 "$NAME") || fail "dig $NAME failed"
[ "$got" = 127.0.0.1 ] || fail "dig $NAME answered '$got', expected 127.0.0.1"
echo "ok: dig @127.0.0.1 -p 10053 $NAME -> $got"
grep -q 'lattice-svc.trellis.localhost:8080/' /tmp/trellis-demo.err || fail "trellis up did not print the curl command"
kill -INT $trellis_pid
wait $trellis_pid || fail "trellis up did not exit 0 after SIGINT"
lines=$(grep -c '"serviceArn"' /tmp/trellis-demo-access.log || true)
[ "$lines" -eq 34 ] || fail "expected 34 access-log records on stdout, found $lines"
echo "demo-check: passed"
