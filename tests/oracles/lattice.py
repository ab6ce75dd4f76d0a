"""Shared pieces of the AWS API acceptance scripts (tests/oracles/api_*.py, driven by tests/api.rs).

Everything that talks to the control plane is boto3 (the `vpc-lattice` client, pointed at a
running `trellis up`'s admin address); the data plane is plain http.client to 127.0.0.1 with
the service's DNS name as Host. What the scripts expect comes from the AWS model and
../shared/LATTICE.md (ids and ARNs §4.3, DNS names §4.1, statuses §3.3, errors §9), not from
Trellis's code. A failed expectation raises AssertionError (the script exits non-zero with the
traceback on stderr, which the Rust test prints); the last stdout line is a JSON summary.

Every wait is bounded.
"""

import datetime
import http.client
import json
import re
import sys
import time

import boto3
import botocore.config
import botocore.exceptions

ACCOUNT = "123456789012"  # the config's default accountId (README: Region, account)
FUNCTION = "hello-function"  # the config file's function (tests/api.rs writes it)

# LATTICE.md §4.3: ids are a prefix and 17 characters of [0-9a-z].
ID = {
    "service": r"svc-[0-9a-z]{17}",
    "servicenetwork": r"sn-[0-9a-z]{17}",
    "targetgroup": r"tg-[0-9a-z]{17}",
    "listener": r"listener-[0-9a-z]{17}",
    "rule": r"rule-[0-9a-z]{17}",
    "servicenetworkserviceassociation": r"snsa-[0-9a-z]{17}",
    "servicenetworkvpcassociation": r"snva-[0-9a-z]{17}",
    # The VpcId shape of the model.
    "vpc": r"vpc-(([0-9a-z]{8})|([0-9a-z]{17}))",
}


def client(endpoint, region):
    """A boto3 vpc-lattice client on `endpoint`, any credentials, one attempt per call (a retry
    would hide what the server answered)."""
    return boto3.client(
        "vpc-lattice",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="AKIDTRELLISTEST",
        aws_secret_access_key="trellis-test-secret",
        config=botocore.config.Config(
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
        ),
    )


def clean(response):
    response = dict(response)
    response.pop("ResponseMetadata", None)
    return response


def check_id(kind, value):
    assert re.fullmatch(ID[kind], value or ""), f"{kind} id {value!r} is not {ID[kind]}"


def arn(region, path):
    return f"arn:aws:vpc-lattice:{region}:{ACCOUNT}:{path}"


def check_arn(region, kind, obj, parent=""):
    """`obj["arn"]` is the ARN of `obj["id"]` (LATTICE.md §4.3), under `parent` (e.g.
    "service/svc-…/" for a listener)."""
    check_id(kind, obj["id"])
    short = {"servicenetworkserviceassociation": "servicenetworkserviceassociation",
             "servicenetworkvpcassociation": "servicenetworkvpcassociation"}.get(kind, kind)
    expected = arn(region, f"{parent}{short}/{obj['id']}")
    assert obj["arn"] == expected, f"arn {obj['arn']!r}, expected {expected!r}"


def check_dns(region, service):
    """LATTICE.md §4.1: `<name>-<id without svc->.7d67968.vpc-lattice-svcs.<region>.on.aws`."""
    entry = service["dnsEntry"]
    expected = (f"{service['name']}-{service['id'][len('svc-'):]}"
                f".7d67968.vpc-lattice-svcs.{region}.on.aws")
    assert entry["domainName"] == expected, f"dnsEntry {entry}, expected {expected}"
    assert entry.get("hostedZoneId"), f"dnsEntry without hostedZoneId: {entry}"
    return expected


def check_times(obj, since, keys=("createdAt", "lastUpdatedAt")):
    """The timestamps are datetimes (botocore parsed ISO-8601 / epoch) between `since` (a
    datetime a little before the object was made) and now, lastUpdatedAt not before createdAt."""
    now = datetime.datetime.now(datetime.timezone.utc)
    for key in keys:
        value = obj.get(key)
        assert isinstance(value, datetime.datetime), f"{key} is {value!r} in {obj}"
        assert since - datetime.timedelta(seconds=2) <= value <= now + datetime.timedelta(seconds=2), \
            f"{key} {value} not between {since} and {now}"
    if "createdAt" in keys and "lastUpdatedAt" in keys:
        assert obj["lastUpdatedAt"] >= obj["createdAt"], obj


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def error_of(call, *args, **kwargs):
    """Runs a call that must fail with a ClientError; returns (code, status, response)."""
    try:
        out = call(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        return (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"],
                e.response)
    raise AssertionError(f"{getattr(call, '__name__', call)} succeeded, expected an error: {clean(out)}")


def expect_error(code, status, call, *args, **kwargs):
    got, got_status, response = error_of(call, *args, **kwargs)
    assert (got, got_status) == (code, status), \
        f"expected {code} ({status}), got {got} ({got_status}): {response}"
    message = response["Error"].get("Message") or response.get("message")
    assert message, f"{code} without a message: {response}"
    return response


def wait_until(what, predicate, timeout=10.0, step=0.05):
    """Polls `predicate()` until it returns a truthy value (returned) or `timeout` seconds
    pass (AssertionError naming `what` and the last value)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")
        time.sleep(step)


# ---- the data plane --------------------------------------------------------------------------

def request(port, host, path="/", method="GET", timeout=10):
    """One request on a fresh connection to 127.0.0.1:port with `Host: host`: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def who(body):
    """Which sample answered: "instance-a", "instance-b", … (hello-instance --name) or
    "function" (hello-lambda)."""
    m = re.match(r"Hello from the (\S+?)( at path|\n|$)", body)
    return m.group(1) if m else None


def tally(port, host, path, n):
    counts = {}
    for _ in range(n):
        status, body = request(port, host, path)
        key = who(body) if status == 200 else f"status {status}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def check_split(counts, expected, n, slack):
    """`counts` of `n` requests split as the weights `expected` ({name: weight}) say, within
    `slack` requests each: Lattice splits in proportion to the weights (LATTICE.md §2.2)."""
    total = sum(expected.values())
    for name, weight in expected.items():
        want = n * weight / total
        got = counts.get(name, 0)
        assert abs(got - want) <= slack, f"{name}: {got} of {n}, expected {want:.0f}±{slack}: {counts}"
    others = {k: v for k, v in counts.items() if k not in expected}
    assert not others, f"answers from outside the split {expected}: {counts}"


def emit(summary):
    print(json.dumps(summary, default=str, sort_keys=True))
    sys.stdout.flush()


# ---- the launch walkthrough, built by API ----------------------------------------------------

def weighted(*groups):
    return {"forward": {"targetGroups": [{"targetGroupIdentifier": g, "weight": w} for g, w in groups]}}


def wait_healthy(c, tg, targets, timeout=20):
    """ListTargets shows every (id, port) of `targets` HEALTHY (health checks on: a new target
    is INITIAL until its first check passes, LATTICE.md §3.2)."""
    def healthy():
        items = c.list_targets(targetGroupIdentifier=tg)["items"]
        status = {(t["id"], t.get("port")): t.get("status") for t in items}
        return status if all(status.get(k) == "HEALTHY" for k in targets) else None
    return wait_until(f"targets {targets} of {tg} HEALTHY", healthy, timeout=timeout, step=0.2)


def build_walkthrough(c, region, listener_port, instance_port, prefix=""):
    """The launch walkthrough (examples/walkthrough.yaml) made through the API: a service
    network with the config's VPC, a service associated with it, an INSTANCE target group over
    hello-instance at `instance_port` and a LAMBDA one over the file's function, an HTTP
    listener on `listener_port` splitting 20/10 between them, and rules /to-instance and
    /to-function. Checks every answer's ids, ARNs, statuses and timestamps; returns the ids."""
    since = utcnow()
    p = prefix
    sn = c.create_service_network(name=f"{p}demo-network")
    check_arn(region, "servicenetwork", sn)
    assert sn["name"] == f"{p}demo-network" and sn["authType"] == "NONE", sn

    svc = c.create_service(name=f"{p}lattice-svc")
    check_arn(region, "service", svc)
    assert svc["status"] == "ACTIVE" and svc["authType"] == "NONE", svc
    domain = check_dns(region, svc)

    vpc_assoc = c.create_service_network_vpc_association(
        serviceNetworkIdentifier=sn["id"], vpcIdentifier="client-vpc")
    check_arn(region, "servicenetworkvpcassociation", vpc_assoc)
    assert vpc_assoc["status"] == "ACTIVE", vpc_assoc
    vpc_assoc = c.get_service_network_vpc_association(
        serviceNetworkVpcAssociationIdentifier=vpc_assoc["id"])
    # A VPC named by its config name answers with its id (vpc- and 17 characters, §3.1).
    vpc_id = vpc_assoc["vpcId"]
    assert re.fullmatch(r"vpc-[0-9a-f]{17}", vpc_id), vpc_assoc
    assert vpc_assoc["serviceNetworkId"] == sn["id"] and vpc_assoc["serviceNetworkArn"] == sn["arn"], vpc_assoc
    check_times(vpc_assoc, since)

    # The service network's ARN is an identifier as good as its id (§4.3).
    svc_assoc = c.create_service_network_service_association(
        serviceNetworkIdentifier=sn["arn"], serviceIdentifier=svc["id"])
    check_arn(region, "servicenetworkserviceassociation", svc_assoc)
    assert svc_assoc["status"] == "ACTIVE", svc_assoc
    assert svc_assoc["dnsEntry"]["domainName"] == domain, svc_assoc

    instance_tg = c.create_target_group(
        name=f"{p}instance-tg", type="INSTANCE",
        config={"port": instance_port, "protocol": "HTTP", "protocolVersion": "HTTP1",
                "vpcIdentifier": vpc_id,
                "healthCheck": {"enabled": True, "path": "/", "healthCheckIntervalSeconds": 5}})
    check_arn(region, "targetgroup", instance_tg)
    assert instance_tg["type"] == "INSTANCE" and instance_tg["status"] == "ACTIVE", instance_tg
    assert instance_tg["config"]["port"] == instance_port, instance_tg
    reg = c.register_targets(targetGroupIdentifier=instance_tg["id"],
                             targets=[{"id": "127.0.0.1", "port": instance_port}])
    assert reg["successful"] == [{"id": "127.0.0.1", "port": instance_port}] and not reg.get("unsuccessful"), reg

    function_tg = c.create_target_group(
        name=f"{p}function-tg", type="LAMBDA", config={"lambdaEventStructureVersion": "V2"})
    check_arn(region, "targetgroup", function_tg)
    assert function_tg["type"] == "LAMBDA", function_tg
    reg = c.register_targets(targetGroupIdentifier=function_tg["id"], targets=[{"id": FUNCTION}])
    assert [t["id"] for t in reg["successful"]] == [FUNCTION] and not reg.get("unsuccessful"), reg

    listener = c.create_listener(
        serviceIdentifier=svc["id"], name="http", protocol="HTTP", port=listener_port,
        defaultAction=weighted((instance_tg["id"], 20), (function_tg["id"], 10)))
    check_arn(region, "listener", listener, parent=f"service/{svc['id']}/")
    assert listener["serviceId"] == svc["id"] and listener["serviceArn"] == svc["arn"], listener
    assert (listener["protocol"], listener["port"]) == ("HTTP", listener_port), listener

    rules = {}
    for name, priority, path, tg in (("to-instance", 10, "/to-instance", instance_tg),
                                      ("to-function", 20, "/to-function", function_tg)):
        rule = c.create_rule(
            serviceIdentifier=svc["id"], listenerIdentifier=listener["id"], name=name,
            priority=priority,
            match={"httpMatch": {"pathMatch": {"match": {"exact": path}}}},
            action={"forward": {"targetGroups": [{"targetGroupIdentifier": tg["id"]}]}})
        check_arn(region, "rule", rule, parent=f"service/{svc['id']}/listener/{listener['id']}/")
        assert rule["priority"] == priority and rule["name"] == name, rule
        rules[name] = rule["id"]

    return {
        "network": sn["id"], "service": svc["id"], "service_arn": svc["arn"], "domain": domain,
        "vpc_id": vpc_id, "vpc_assoc": vpc_assoc["id"], "svc_assoc": svc_assoc["id"],
        "instance_tg": instance_tg["id"], "function_tg": function_tg["id"],
        "listener": listener["id"], "rules": rules, "listener_port": listener_port,
        "instance_port": instance_port, "since": since.isoformat(),
    }


def check_walkthrough_serves(c, ids, slack=6):
    """Traffic through the walkthrough: each rule reaches its target group, the default action
    splits 20/10 (instance/function)."""
    port, domain = ids["listener_port"], ids["domain"]
    wait_healthy(c, ids["instance_tg"], [("127.0.0.1", ids["instance_port"])])
    def served():
        try:
            answer = request(port, domain, "/to-instance")
        except OSError as e:  # not listening (yet)
            return None if "refused" in str(e) else (0, str(e))
        return answer if answer[0] == 200 else None
    status, body = wait_until(f"the listener on port {port} to serve the service", served, timeout=10)
    assert who(body) == "instance-a", body
    assert 'at path "/to-instance"' in body, body
    status, body = request(port, domain, "/to-function")
    assert status == 200 and who(body) == "function", (status, body)
    assert 'at path "/to-function"' in body, body
    counts = tally(port, domain, "/split", 90)
    check_split(counts, {"instance-a": 20, "function": 10}, 90, slack)
    return counts


def snapshot(c, ids):
    """Everything the API says about the walkthrough's objects, for comparing before and after
    a restart (target status left out: health is probed again after a start)."""
    out = {}
    out["network"] = clean(c.get_service_network(serviceNetworkIdentifier=ids["network"]))
    out["service"] = clean(c.get_service(serviceIdentifier=ids["service"]))
    out["services"] = c.list_services()["items"]
    out["networks"] = c.list_service_networks()["items"]
    out["vpc_assoc"] = clean(c.get_service_network_vpc_association(
        serviceNetworkVpcAssociationIdentifier=ids["vpc_assoc"]))
    out["svc_assoc"] = clean(c.get_service_network_service_association(
        serviceNetworkServiceAssociationIdentifier=ids["svc_assoc"]))
    out["target_groups"] = c.list_target_groups()["items"]
    for key in ("instance_tg", "function_tg"):
        out[key] = clean(c.get_target_group(targetGroupIdentifier=ids[key]))
        out[key + "_targets"] = sorted(
            [(t["id"], t.get("port")) for t in c.list_targets(targetGroupIdentifier=ids[key])["items"]],
            key=str)
    out["listener"] = clean(c.get_listener(serviceIdentifier=ids["service"],
                                           listenerIdentifier=ids["listener"]))
    out["rules"] = c.list_rules(serviceIdentifier=ids["service"],
                                listenerIdentifier=ids["listener"])["items"]
    return json.loads(json.dumps(out, default=str, sort_keys=True))
