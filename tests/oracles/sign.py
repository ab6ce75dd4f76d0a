#!/usr/bin/env python3
"""Signs one HTTP request with AWS's own signers, for Trellis's SigV4/SigV4A tests.

The point is an oracle nobody on this project wrote: botocore's SigV4Auth / SigV4QueryAuth for
SigV4, and awscrt (through botocore.crt.auth's CrtSigV4AsymAuth / CrtSigV4AsymQueryAuth) for
SigV4A. Run it with the Python that scripts/pyenv.sh prints.

stdin: one JSON object
  mode      "sigv4" | "sigv4a" | "presign" | "presign-a"
  method    e.g. "GET"
  url       e.g. "http://svc.example:8080/path?a=1"
  headers   {name: value}, sent as given and signed (optional)
  key, secret, token (token optional: temporary credentials)
  region    SigV4's scope region; for SigV4A the region set (default "*")
  service   default "vpc-lattice-svcs"
  time      fixed signing time, "YYYYMMDDTHHMMSSZ" or epoch seconds (optional; default now)
  time_offset_seconds   added to the signing time (optional; e.g. -600 for a stale signature)
  expires   presigned URL lifetime in seconds (default 3600)
  payload   "unsigned" (default): x-amz-content-sha256: UNSIGNED-PAYLOAD, as Lattice requires
            (header modes send and sign that header; presigned modes use the constant in the
            canonical request, as AWS's presigned-URL spec says, and send no header);
            "hash": let the signer hash `body` (what Lattice refuses)
  body      request body for payload "hash" (optional, default empty)

stdout: {"url": signed url, "headers": {name: value}} - send exactly these (botocore leaves
out Host, which it signs as the URL's host[:port]; any HTTP client sends that).

Get the Python with `python="$(scripts/pyenv.sh)"`, then `echo "$json" | "$python" tests/oracles/sign.py`.
"""

import datetime
import json
import sys

import botocore.auth
import botocore.crt.auth
from botocore.auth import UNSIGNED_PAYLOAD, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.crt.auth import CrtSigV4AsymAuth, CrtSigV4AsymQueryAuth


class UnsignedPayloadQueryAuth(SigV4QueryAuth):
    """botocore's presigner, with UNSIGNED-PAYLOAD as the payload hash (botocore only does that
    for S3, whose path rules differ; for other services it hashes the body, even over http)."""

    def payload(self, request):
        return UNSIGNED_PAYLOAD


class UnsignedPayloadAsymQueryAuth(CrtSigV4AsymQueryAuth):
    """The CRT SigV4A presigner with UNSIGNED-PAYLOAD, keeping the non-S3 path rules (what
    CrtS3SigV4AsymQueryAuth does for S3, minus S3's single encoding and raw paths)."""

    def _should_sha256_sign_payload(self, request):
        return False

    def _should_add_content_sha256_header(self, explicit_payload):
        return False


def signing_time(spec):
    t = spec.get("time")
    if t is None:
        now = datetime.datetime.now(datetime.timezone.utc)
    elif isinstance(t, (int, float)):
        now = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    else:
        now = datetime.datetime.strptime(t, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc
        )
    now += datetime.timedelta(seconds=spec.get("time_offset_seconds", 0))
    return now.replace(microsecond=0)


def main():
    spec = json.load(sys.stdin)
    mode = spec["mode"]
    service = spec.get("service", "vpc-lattice-svcs")
    creds = Credentials(spec["key"], spec["secret"], spec.get("token"))
    payload = spec.get("payload", "unsigned")
    headers = dict(spec.get("headers", {}))
    body = spec.get("body", "").encode()
    if payload == "unsigned" and mode in ("sigv4", "sigv4a"):
        if not any(k.lower() == "x-amz-content-sha256" for k in headers):
            headers["X-Amz-Content-SHA256"] = UNSIGNED_PAYLOAD
    expires = spec.get("expires", 3600)

    if mode == "sigv4":
        signer = SigV4Auth(creds, service, spec["region"])
    elif mode == "presign":
        cls = UnsignedPayloadQueryAuth if payload == "unsigned" else SigV4QueryAuth
        signer = cls(creds, service, spec["region"], expires=expires)
    elif mode == "sigv4a":
        signer = CrtSigV4AsymAuth(creds, service, spec.get("region", "*"))
    elif mode == "presign-a":
        cls = UnsignedPayloadAsymQueryAuth if payload == "unsigned" else CrtSigV4AsymQueryAuth
        signer = cls(creds, service, spec.get("region", "*"), expires=expires)
    else:
        raise SystemExit(f"unknown mode {mode!r}")

    when = signing_time(spec)

    def fixed_clock(remove_tzinfo=True):
        return when.replace(tzinfo=None) if remove_tzinfo else when

    # Both signers read the clock through this function (patching datetime does not work).
    botocore.auth.get_current_datetime = fixed_clock
    botocore.crt.auth.get_current_datetime = fixed_clock

    request = AWSRequest(method=spec["method"], url=spec["url"], headers=headers, data=body)
    signer.add_auth(request)
    json.dump({"url": request.url, "headers": dict(request.headers.items())}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
