#!/usr/bin/env bash
# Prints the path of a Python that has the oracles installed: the SigV4 signers (botocore,
# awscrt), the AWS API clients (boto3, and the AWS CLI v1 from PyPI, as `bin/aws` beside it) and
# cfn-lint (the CloudFormation export's oracle: `"$python" -m cfnlint template.json`) and
# dnspython (the DNS server's resolver in tests/dns.rs) and selenium (the console's browser
# tests drive Debian's chromium through chromedriver):
#
#     python="$(scripts/pyenv.sh)"
#     echo '{"mode":"sigv4", ...}' | "$python" tests/oracles/sign.py
#
# The virtualenv lives under the cargo target directory ("${CARGO_TARGET_DIR:-target}/pyenv"),
# so it is built once per checkout, never touches the system Python, and `cargo clean` removes
# it. Idempotent, quiet (only the path goes to stdout) and safe to run from parallel tests
# (a lock file serialises the first install). Packages come from PyPI through pip.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
venv="$target/pyenv"
python="$venv/bin/python"

ready() {
    [ -x "$python" ] && [ -x "$venv/bin/aws" ] &&
        "$python" -c 'import botocore.auth, botocore.crt.auth, awscrt, boto3, awscli, cfnlint, dns.resolver, selenium' >/dev/null 2>&1
}

if ! ready; then
    mkdir -p "$target"
    exec 9>"$target/pyenv.lock"
    if command -v flock >/dev/null; then flock 9; fi
    if ! ready; then
        if [ ! -x "$python" ]; then
            if ! python3 -m venv "$venv" >&2; then
                # Debian splits venv (and ensurepip) out of python3: install it when we may.
                rm -rf "$venv"
                if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
                    { apt-get install -y -q python3-venv || { apt-get update -q && apt-get install -y -q python3-venv; }; } >&2
                fi
                python3 -m venv "$venv" >&2 || {
                    echo "pyenv.sh: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2
                    exit 1
                }
            fi
        fi
        "$python" -m pip install --quiet --disable-pip-version-check 'botocore[crt]' boto3 awscli cfn-lint dnspython selenium >&2
        ready || { echo "pyenv.sh: botocore/awscrt/boto3/awscli/cfn-lint/dnspython/selenium still not importable in $venv" >&2; exit 1; }
    fi
fi
echo "$python"
