#!/usr/bin/env bash
# The docker compose demo (compose.yaml): the walkthrough as containers.
#   scripts/compose.sh up      start it in the background and print what to try
#   scripts/compose.sh check   start it, resolve the generated name from the client container
#                              through Trellis's DNS, check the 20/10 split and both rules from
#                              the client container and from the host, stop it, and check
#                              nothing is left
#   scripts/compose.sh down    stop it and remove everything it created
# Works with `docker compose` (plugin) and with `docker-compose`.
set -euo pipefail
cd "$(dirname "$0")/.."

PROJECT=trellis-demo
DNS=lattice-svc-fb537ac7a83dff38e.7d67968.vpc-lattice-svcs.us-west-2.on.aws
if docker compose version >/dev/null 2>&1; then compose() { docker compose -p "$PROJECT" "$@"; }
elif command -v docker-compose >/dev/null 2>&1; then compose() { docker-compose -p "$PROJECT" "$@"; }
else echo "compose: neither 'docker compose' nor 'docker-compose' is installed" >&2; exit 1; fi

leftovers() {
    docker ps -a --filter label=trellis.managed=true --format '{{.Names}}'
    docker ps -a --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}}'
    docker network ls --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Name}}'
}

up() {
    compose up -d
    for _ in $(seq 1 120); do
        curl -s -m 2 -o /dev/null http://lattice-svc.trellis.localhost:8080/to-instance && return 0
        sleep 0.5
    done
    echo "compose: the router did not answer on localhost:8080 within 60s; its log:" >&2
    compose logs trellis >&2
    return 1
}

down() {
    compose down --remove-orphans --timeout 20
}

case "${1:-}" in
up)
    up
    cat <<EOT

The service network runs. From the host:
  curl http://lattice-svc.trellis.localhost:8080/            # 2/3 instance, 1/3 function (a container Trellis started)
  curl http://lattice-svc.trellis.localhost:8080/to-function
From the client container, by the generated Lattice DNS name:
  $(command -v docker-compose >/dev/null && echo docker-compose || echo docker compose) -p $PROJECT exec client wget -qO- http://$DNS:8080/to-instance
Logs: ... -p $PROJECT logs -f trellis        Stop: scripts/compose.sh down
EOT
    ;;
down) down ;;
check)
    trap 'down >/dev/null 2>&1 || true' EXIT
    up
    fail() { echo "compose-check: $*" >&2; compose logs trellis >&2 || true; exit 1; }
    expect() { # WHERE GOT WANT
        case "$2" in *"$3"*) echo "ok: $1 -> $2" ;; *) fail "$1 answered '$2', expected '$3'" ;; esac
    }
    # The generated name resolves through Trellis's DNS server (compose.yaml has no aliases).
    resolved=$(compose exec -T client nslookup "$DNS" 2>&1) || fail "nslookup $DNS from the client: $resolved"
    expect "client nslookup $DNS" "$resolved" "10.213.0.53"
    unknown=$(compose exec -T client nslookup nothing.trellis.localhost 2>&1) && fail "nothing.trellis.localhost resolved: $unknown"
    expect "client nslookup nothing.trellis.localhost" "$unknown" "NXDOMAIN"
    from_client() { compose exec -T client wget -qO- "http://$DNS:8080$1"; }
    from_host() { curl -sS -m 10 "http://lattice-svc.trellis.localhost:8080$1"; }
    for where in client host; do
        get=from_$where
        expect "$where /to-instance" "$($get /to-instance)" 'Hello from the instance at path "/to-instance"'
        expect "$where /to-function" "$($get /to-function)" 'Hello from the function at path "/to-function"'
        a=0; b=0
        for _ in $(seq 30); do
            got=$($get /) || fail "$where: request to / failed"
            case "$got" in "Hello from the function"*) b=$((b+1)) ;; "Hello from the instance"*) a=$((a+1)) ;; *) fail "$where: unexpected answer '$got'" ;; esac
        done
        echo "ok: $where: 30 requests to / split $a instance / $b function"
        [ "$a" -eq 20 ] && [ "$b" -eq 10 ] || fail "$where: the 20/10 split came out $a/$b"
    done
    down
    trap - EXIT
    left=$(leftovers)
    [ -z "$left" ] || fail "left behind after down: $left"
    echo "compose-check: passed"
    ;;
*) echo "usage: scripts/compose.sh up|check|down" >&2; exit 2 ;;
esac
