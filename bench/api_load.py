#!/usr/bin/env python3
"""The load side of bench.py's "api" scenario, run with the Python that has boto3
(scripts/pyenv.sh's): bench.py itself runs under Debian's python3, which has no boto3.

    api_load.py writes   ENDPOINT REGION PREFIX N
        N calls of each write operation that Trellis and moto both implement (CreateService,
        CreateTargetGroup, TagResource), one after the other on one boto3 client (closed loop,
        concurrency 1: each call waits for the previous answer, as a deploy script does); per
        operation: calls per second and the median / p99 time of one call.
    api_load.py register ENDPOINT REGION LISTENER_PORT PORT_A PORT_B TRIES
        Trellis only (moto routes nothing): a service whose listener forwards to a target group
        (health checks off, so a registered target is in service at once) over hello-instance A;
        then TRIES times: RegisterTargets B, and from its answer, requests as fast as they are
        answered until one is served by B (bounded: 5 s); DeregisterTargets B and wait until B
        gets nothing. Prints each try's time from the answer to B's first response.

Prints one JSON object on stdout. Any failed call stops the run (exit status 1).
"""

import http.client
import json
import statistics
import sys
import time

import boto3
import botocore.config
import botocore.exceptions


def client(endpoint, region):
    return boto3.client(
        "vpc-lattice", endpoint_url=endpoint, region_name=region,
        aws_access_key_id="test", aws_secret_access_key="test",
        config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"},
                                      connect_timeout=5, read_timeout=60))


def p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.99 * (len(xs) - 1))))]


def summary(times_s):
    total = sum(times_s)
    return {"n": len(times_s), "seconds": total, "per_s": len(times_s) / total if total else None,
            "median_ms": statistics.median(times_s) * 1000, "p99_ms": p99(times_s) * 1000}


def writes(c, prefix, n):
    out = {}
    made = []
    times = []
    services = []
    for i in range(n):
        t0 = time.perf_counter()
        svc = c.create_service(name=f"{prefix}svc-{i}")
        times.append(time.perf_counter() - t0)
        services.append(svc["id"])
    out["CreateService"] = summary(times)
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        tg = c.create_target_group(name=f"{prefix}tg-{i}", type="LAMBDA")
        times.append(time.perf_counter() - t0)
        made.append(tg["arn"])
    out["CreateTargetGroup"] = summary(times)
    times = []
    for i, arn in enumerate(made):
        t0 = time.perf_counter()
        c.tag_resource(resourceArn=arn, tags={"n": str(i)})
        times.append(time.perf_counter() - t0)
    out["TagResource"] = summary(times)
    # Untimed: leave the server as found, so that every round (and both servers) starts from the
    # same number of objects (Trellis rewrites its whole store per write) and no quota (500
    # target groups per region) is met after a few rounds. moto implements neither delete (it
    # answers 500): its objects stay, which costs an in-memory server nothing.
    try:
        for arn in made:
            c.delete_target_group(targetGroupIdentifier=arn)
        for sid in services:
            c.delete_service(serviceIdentifier=sid)
    except botocore.exceptions.ClientError:
        pass
    return out


def who(port, host):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": host})
        r = conn.getresponse()
        return r.read().decode(errors="replace")
    finally:
        conn.close()


def register(c, listener_port, port_a, port_b, tries):
    svc = c.create_service(name="bench-register")
    host = svc["dnsEntry"]["domainName"]
    tg = c.create_target_group(name="bench-register-tg", type="INSTANCE",
                               config={"port": port_a, "protocol": "HTTP",
                                       "healthCheck": {"enabled": False}})
    c.register_targets(targetGroupIdentifier=tg["id"], targets=[{"id": "127.0.0.1", "port": port_a}])
    c.create_listener(serviceIdentifier=svc["id"], name="http", protocol="HTTP", port=listener_port,
                      defaultAction={"forward": {"targetGroups": [{"targetGroupIdentifier": tg["id"]}]}})
    deadline = time.monotonic() + 10
    while "instance-a" not in who(listener_port, host):
        if time.monotonic() > deadline:
            raise SystemExit("the service never answered from instance-a")
        time.sleep(0.01)
    b = {"id": "127.0.0.1", "port": port_b}
    samples, requests = [], []
    for _ in range(tries):
        c.register_targets(targetGroupIdentifier=tg["id"], targets=[b])
        t0 = time.perf_counter()
        n = 0
        while True:
            n += 1
            if "instance-b" in who(listener_port, host):
                break
            if time.perf_counter() - t0 > 5:
                raise SystemExit("a registered target was not served within 5 s")
        samples.append(time.perf_counter() - t0)
        requests.append(n)
        c.deregister_targets(targetGroupIdentifier=tg["id"], targets=[b])
        deadline = time.monotonic() + 5
        while any("instance-b" in who(listener_port, host) for _ in range(4)):
            if time.monotonic() > deadline:
                raise SystemExit("a deregistered target was still served after 5 s")
    return {"samples_ms": [s * 1000 for s in samples], "median_ms": statistics.median(samples) * 1000,
            "p99_ms": p99(samples) * 1000, "requests_until_served": requests}


def main():
    command, endpoint, region = sys.argv[1:4]
    c = client(endpoint, region)
    if command == "writes":
        out = writes(c, sys.argv[4], int(sys.argv[5]))
    else:
        out = register(c, *(int(a) for a in sys.argv[4:8]))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
