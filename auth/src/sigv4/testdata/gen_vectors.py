#!/usr/bin/env python3
"""Regenerates vectors.json: requests signed by AWS's own signers, for the verifier's tests.

    python="$(scripts/pyenv.sh)"
    "$python" auth/src/sigv4/testdata/gen_vectors.py > auth/src/sigv4/testdata/vectors.json

Sources: botocore (SigV4Auth, SigV4QueryAuth) and awscrt (SigV4A, through botocore.crt.auth)
via tests/oracles/sign.py, and curl --aws-sigv4, whose request is captured on a loopback
socket. Each vector records the request exactly as it would arrive, the time it was signed at
(the verifier's `now`), and what the verifier must answer: "ok" or a SignatureError variant.
SigV4A signatures are randomised, so regenerating changes those bytes (not their meaning).
"""

import json
import os
import socket
import subprocess
import sys
import threading
from urllib.parse import urlsplit

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../../.."))
SIGN = os.path.join(ROOT, "tests/oracles/sign.py")
T0 = "20260102T030405Z"
REGION = "us-west-2"
USER = ("AKIDLATTICEUSER", "lattice-user-secret/+=")
TEMP = ("AKIDLATTICETEMP", "lattice-temp-secret", "session-token-1")

vectors = []


def sign(spec):
    spec = dict(spec)
    spec.setdefault("time", T0)
    spec.setdefault("region", REGION)
    out = subprocess.run(
        [sys.executable, SIGN], input=json.dumps(spec), capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def add(name, source, spec, expect="ok", now=T0, mutate=None):
    signed = sign(spec)
    url = urlsplit(signed["url"])
    headers = list(signed["headers"].items())
    if not any(k.lower() == "host" for k, _ in headers):
        headers.insert(0, ("Host", url.netloc))
    if mutate:
        headers = mutate(headers)
    vectors.append(
        {
            "name": name,
            "source": source,
            "now": now,
            "method": spec["method"],
            "path": url.path,
            "query": url.query if "?" in signed["url"] else None,
            "host": url.netloc,
            "headers": headers,
            "expect": expect,
        }
    )


def user(**kw):
    return {"key": USER[0], "secret": USER[1], **kw}


def temp(**kw):
    return {"key": TEMP[0], "secret": TEMP[1], "token": TEMP[2], **kw}


# --- botocore SigV4, Authorization header ---------------------------------------------
add("botocore GET, no port", "botocore",
    user(mode="sigv4", method="GET", url="https://svc-0123.7d67968.vpc-lattice-svcs.us-west-2.on.aws/ping"))
add("botocore POST, port, unsorted query, custom header", "botocore",
    user(mode="sigv4", method="POST", url="http://svc.example:8080/orders/42?b=2&a=1&a=0&empty&sp=a%20b",
         headers={"Content-Type": "application/json", "X-Trace": "  a   b  "}, body='{"x":1}'))
add("botocore path with //, dot segments and %-escapes", "botocore",
    user(mode="sigv4", method="GET", url="http://svc.example:8080/a//b/./c/../%7Ed%20e/"))
add("botocore temporary credentials", "botocore",
    temp(mode="sigv4", method="GET", url="http://svc.example/who"))
add("botocore Date header instead of X-Amz-Date", "botocore",
    user(mode="sigv4", method="GET", url="http://svc.example/dated", headers={"Date": "x"}))

# --- botocore presigned URLs ----------------------------------------------------------
add("botocore presigned GET", "botocore",
    user(mode="presign", method="GET", url="http://svc.example:8080/report?z=1&a=x%2Fy", expires=300))
add("botocore presigned, temporary credentials", "botocore",
    temp(mode="presign", method="GET", url="http://svc.example/report", expires=604800))

# --- awscrt SigV4A ----------------------------------------------------------------------
add("awscrt SigV4A, region set *", "awscrt",
    user(mode="sigv4a", method="GET", url="http://svc.example:8080/a/b?x=1&a=2", region="*"))
add("awscrt SigV4A, region list", "awscrt",
    user(mode="sigv4a", method="PUT", url="http://svc.example/items/1", region="eu-west-1,us-west-2",
         headers={"X-Trace": "t  1"}))
add("awscrt SigV4A, temporary credentials", "awscrt",
    temp(mode="sigv4a", method="GET", url="http://svc.example/who", region="*"))
add("awscrt SigV4A presigned", "awscrt",
    user(mode="presign-a", method="GET", url="http://svc.example:8080/report?b=2&a=1", region="*"))
add("awscrt SigV4A presigned, temporary credentials", "awscrt",
    temp(mode="presign-a", method="GET", url="http://svc.example/report", region="us-*"))

# --- refused as signed by the oracle --------------------------------------------------
add("wrong secret", "botocore",
    {"key": USER[0], "secret": "not-the-secret", "mode": "sigv4", "method": "GET", "url": "http://svc.example/x"},
    expect="SignatureMismatch")
add("unknown access key", "botocore",
    {"key": "AKIDNOBODY", "secret": "s", "mode": "sigv4", "method": "GET", "url": "http://svc.example/x"},
    expect="UnknownAccessKey")
add("stale date (10 minutes old)", "botocore",
    user(mode="sigv4", method="GET", url="http://svc.example/x", time_offset_seconds=-600), expect="Expired")
add("future date (10 minutes ahead)", "botocore",
    user(mode="sigv4", method="GET", url="http://svc.example/x", time_offset_seconds=600), expect="NotYetValid")
add("just inside the skew (4m59s old)", "botocore",
    user(mode="sigv4", method="GET", url="http://svc.example/x", time_offset_seconds=-299))
add("temporary key without its token", "botocore",
    {"key": TEMP[0], "secret": TEMP[1], "mode": "sigv4", "method": "GET", "url": "http://svc.example/x"},
    expect="SecurityTokenRequired")
add("wrong token", "botocore",
    temp(mode="sigv4", method="GET", url="http://svc.example/x", token="session-token-2"),
    expect="SecurityTokenMismatch")
add("token for a long-term key", "botocore",
    user(mode="sigv4", method="GET", url="http://svc.example/x", token="session-token-1"),
    expect="UnexpectedSecurityToken")
add("payload hash signed in x-amz-content-sha256", "botocore",
    user(mode="sigv4", method="POST", url="http://svc.example/x", body="hello",
         headers={"X-Amz-Content-SHA256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}),
    expect="ContentSha256Required(PayloadHash)")
add("payload hash, no x-amz-content-sha256", "botocore",
    user(mode="sigv4", method="POST", url="http://svc.example/x", body="hello", payload="hash"),
    expect="ContentSha256Required(Missing)")
add("x-amz-content-sha256 added after signing", "botocore",
    user(mode="sigv4", method="GET", url="http://svc.example/x", payload="hash"),
    expect="ContentSha256Required(NotSigned)",
    mutate=lambda h: h + [("x-amz-content-sha256", "UNSIGNED-PAYLOAD")])
add("region mismatch", "botocore",
    user(mode="sigv4", method="GET", url="http://svc.example/x", region="eu-west-1"), expect="WrongRegion")
add("service mismatch (control plane name)", "botocore",
    user(mode="sigv4", method="GET", url="http://svc.example/x", service="vpc-lattice"), expect="WrongService")
add("SigV4A region set without the region", "awscrt",
    user(mode="sigv4a", method="GET", url="http://svc.example/x", region="eu-west-1,eu-central-1"),
    expect="RegionSetMismatch")
add("presigned URL past X-Amz-Expires", "botocore",
    user(mode="presign", method="GET", url="http://svc.example/x", expires=60, time_offset_seconds=-120),
    expect="Expired")
add("presigned with botocore's body hash (unmodified SigV4QueryAuth)", "botocore",
    user(mode="presign", method="GET", url="http://svc.example/x", payload="hash"),
    expect="ContentSha256Required(PayloadHash)")
add("awscrt SigV4A presigned, unmodified CrtSigV4AsymQueryAuth (signs UNSIGNED-PAYLOAD itself)",
    "awscrt", user(mode="presign-a", method="GET", url="http://svc.example/x", region="*", payload="hash"))


# --- curl --aws-sigv4 -------------------------------------------------------------------
def capture_curl(args, url, host):
    """Runs curl against a loopback socket and returns (request line, headers) as sent."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    got = {}

    def serve():
        conn, _ = listener.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        got["head"] = data.split(b"\r\n\r\n")[0].decode()
        conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        conn.close()

    thread = threading.Thread(target=serve)
    thread.start()
    hostname, _, hostport = host.partition(":")
    subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "--max-time", "5",
         "--connect-to", f"{hostname}:{hostport or 80}:127.0.0.1:{port}", *args, url],
        check=True,
    )
    thread.join()
    listener.close()
    lines = got["head"].split("\r\n")
    method, target, _ = lines[0].split(" ")
    headers = [tuple(part.strip() if i == 0 else part.lstrip(" ") for i, part in enumerate(l.split(":", 1))) for l in lines[1:]]
    return method, target, headers


def add_curl(name, args, url, expect="ok"):
    host = urlsplit(url).netloc
    method, target, headers = capture_curl(args, url, host)
    path, _, query = target.partition("?")
    amz_date = next(v for k, v in headers if k.lower() == "x-amz-date")
    vectors.append({
        "name": name, "source": "curl", "now": amz_date, "method": method, "path": path,
        "query": query if "?" in target else None, "host": host, "headers": headers, "expect": expect,
    })


SIGV4 = ["--aws-sigv4", f"aws:amz:{REGION}:vpc-lattice-svcs"]
UNSIGNED = ["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]
add_curl("curl GET (default test/test key)", SIGV4 + ["--user", "test:test"] + UNSIGNED,
         "http://svc.example:8080/hello")
add_curl("curl POST with token and a custom header",
         SIGV4 + ["--user", f"{TEMP[0]}:{TEMP[1]}"] + UNSIGNED
         + ["-H", f"x-amz-security-token: {TEMP[2]}", "-H", "X-Custom:  a   b ", "-d", "hi"],
         "http://svc.example/orders")
add_curl("curl GET with a sorted query", SIGV4 + ["--user", f"{USER[0]}:{USER[1]}"] + UNSIGNED,
         "http://svc.example/search?a=1&b=2")
add_curl("curl 7.88 signs an unsorted query as sent", SIGV4 + ["--user", f"{USER[0]}:{USER[1]}"] + UNSIGNED,
         "http://svc.example/search?b=2&a=1", expect="NotCanonical")
add_curl("curl without x-amz-content-sha256", SIGV4 + ["--user", f"{USER[0]}:{USER[1]}"],
         "http://svc.example/hello", expect="ContentSha256Required(Missing)")

json.dump(
    {
        "generated_by": "auth/src/sigv4/testdata/gen_vectors.py",
        "oracles": {
            "botocore": __import__("botocore").__version__,
            "awscrt": __import__("awscrt").__version__,
            "curl": subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout.split()[1],
        },
        "region": REGION,
        "identities": [
            {"access_key_id": USER[0], "secret_access_key": USER[1],
             "arn": "arn:aws:iam::123456789012:user/alice"},
            {"access_key_id": TEMP[0], "secret_access_key": TEMP[1], "session_token": TEMP[2],
             "arn": "arn:aws:iam::123456789012:role/ordering", "session_name": "checkout"},
            {"access_key_id": "test", "secret_access_key": "test",
             "arn": "arn:aws:iam::123456789012:user/test"},
        ],
        "vectors": vectors,
    },
    sys.stdout,
    indent=1,
)
sys.stdout.write("\n")
