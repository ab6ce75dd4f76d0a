#!/usr/bin/env python3
"""Each error class of the API through boto3, and clientToken idempotency (LATTICE.md §7, §9).

    api_errors.py errors      ENDPOINT REGION PORTS
    api_errors.py idempotency ENDPOINT REGION PORTS

PORTS: four free ports, comma-separated, for the listeners the scripts create.

The config file holds service `file-svc` (one listener) and target group `file-tg` (one
target on 127.0.0.1:9); tests/api.rs writes it.
"""

import sys

import lattice as L


def fields(response):
    return [f["name"] for f in response.get("fieldList", [])]


def check_not_found(r, identifier):
    assert r.get("resourceId") == identifier, f"resourceId: {r}"
    assert r.get("resourceType"), f"resourceType: {r}"


def errors(c, region, ports):
    out = {}
    # ValidationException (400): the SDK does not check patterns, the server must.
    r = L.expect_error("ValidationException", 400, c.create_service, name="Bad_Name")
    assert fields(r) == ["name"], r
    assert r.get("reason") == "fieldValidationFailed", r
    assert "Bad_Name" in r["Error"]["Message"], r
    r = L.expect_error("ValidationException", 400, c.create_target_group, name="tg-reserved", type="LAMBDA")
    assert fields(r) == ["name"], r
    # A rule with a path that does not start with "/" (§2.2).
    svc = c.create_service(name="errors-svc")
    listener = c.create_listener(serviceIdentifier=svc["id"], name="one", protocol="HTTP", port=ports[0],
                                 defaultAction={"fixedResponse": {"statusCode": 404}})
    r = L.expect_error("ValidationException", 400, c.create_rule, serviceIdentifier=svc["id"],
                       listenerIdentifier=listener["id"], name="bad-path", priority=1,
                       match={"httpMatch": {"pathMatch": {"match": {"prefix": "no-slash"}}}},
                       action={"fixedResponse": {"statusCode": 404}})
    assert r.get("fieldList"), r
    out["validation"] = r["Error"]["Message"]
    # A config VPC may be named by name (README), id or ARN wherever a vpcIdentifier is taken.
    vpc_tg = c.create_target_group(name="x-tg", type="INSTANCE",
                                   config={"port": 80, "vpcIdentifier": "client-vpc"})
    vpc_id = vpc_tg["config"]["vpcIdentifier"]
    L.check_id("vpc", vpc_id)
    got = c.get_target_group(targetGroupIdentifier=vpc_tg["id"])
    assert got["config"]["vpcIdentifier"] == vpc_id, got
    for given in ("client-vpc", vpc_id):
        listed = [t["name"] for t in c.list_target_groups(vpcIdentifier=given)["items"]]
        assert listed == ["x-tg"], (given, listed)
    # A problem is said in the API's terms: the input member, never the store's inside.
    r = L.expect_error("ValidationException", 400, c.create_target_group, name="y-tg", type="INSTANCE",
                       config={"port": 80, "vpcIdentifier": "nope-vpc"})
    assert fields(r) == ["config.vpcIdentifier"], r
    assert "nope-vpc" in r["Error"]["Message"], r
    ip_tg = c.create_target_group(name="ip-tg", type="IP", config={"port": 80})
    r = L.expect_error("ValidationException", 400, c.register_targets, targetGroupIdentifier=ip_tg["id"],
                       targets=[{"id": "127.0.0.3"}, {"id": "not-an-ip"}])
    assert fields(r) == ["targets[1].id"], r
    for message in (out["validation"], r["Error"]["Message"]):
        assert "document" not in message and "store.json" not in message, message
    out["api_terms"] = r["Error"]["Message"]

    # ResourceNotFoundException (404) with resourceId and resourceType.
    missing = "svc-0123456789abcdef0"
    r = L.expect_error("ResourceNotFoundException", 404, c.get_service, serviceIdentifier=missing)
    check_not_found(r, missing)
    missing_tg = "tg-0123456789abcdef0"
    r = L.expect_error("ResourceNotFoundException", 404, c.register_targets,
                       targetGroupIdentifier=missing_tg, targets=[{"id": "127.0.0.1"}])
    check_not_found(r, missing_tg)
    missing_listener = "listener-0123456789abcdef0"
    r = L.expect_error("ResourceNotFoundException", 404, c.get_listener,
                       serviceIdentifier=svc["id"], listenerIdentifier=missing_listener)
    check_not_found(r, missing_listener)
    out["not_found"] = r["Error"]["Message"]

    # ConflictException (409): a service still associated cannot be deleted (§4.1); nor a
    # network with associations; nor a target group a listener forwards to (§3.1); a name in use.
    sn = c.create_service_network(name="errors-network")
    c.create_service_network_service_association(serviceNetworkIdentifier=sn["id"], serviceIdentifier=svc["id"])
    r = L.expect_error("ConflictException", 409, c.delete_service, serviceIdentifier=svc["id"])
    assert r.get("resourceId") in (svc["id"], svc["arn"]), r
    assert r.get("resourceType"), r
    out["conflict"] = r["Error"]["Message"]
    r = L.expect_error("ConflictException", 409, c.delete_service_network, serviceNetworkIdentifier=sn["id"])
    assert r.get("resourceId") in (sn["id"], sn["arn"]), r
    tg = c.create_target_group(name="errors-tg", type="LAMBDA")
    c.update_listener(serviceIdentifier=svc["id"], listenerIdentifier=listener["id"],
                      defaultAction={"forward": {"targetGroups": [{"targetGroupIdentifier": tg["id"]}]}})
    r = L.expect_error("ConflictException", 409, c.delete_target_group, targetGroupIdentifier=tg["id"])
    assert r.get("resourceId") in (tg["id"], tg["arn"]), r
    L.expect_error("ConflictException", 409, c.create_service, name="errors-svc")
    # Names are unique across the file and the API.
    L.expect_error("ConflictException", 409, c.create_target_group, name="file-tg", type="LAMBDA")
    L.expect_error("ConflictException", 409, c.create_service, name="file-svc")
    # The same clientToken with another input.
    c.create_target_group(name="token-tg", type="LAMBDA", clientToken="errors-token-1")
    L.expect_error("ConflictException", 409, c.create_target_group, name="token-tg-2", type="LAMBDA",
                   clientToken="errors-token-1")

    # ServiceQuotaExceededException (402): 2 listeners per service, 10 rules per listener (§7).
    c.create_listener(serviceIdentifier=svc["id"], name="two", protocol="HTTP", port=ports[1],
                      defaultAction={"fixedResponse": {"statusCode": 404}})
    r = L.expect_error("ServiceQuotaExceededException", 402, c.create_listener, serviceIdentifier=svc["id"],
                       name="three", protocol="HTTP", port=ports[2],
                       defaultAction={"fixedResponse": {"statusCode": 404}})
    assert r.get("resourceType") and r.get("serviceCode") and r.get("quotaCode"), r
    out["quota"] = r["Error"]["Message"]
    assert len(c.list_listeners(serviceIdentifier=svc["id"])["items"]) == 2
    for i in range(10):
        c.create_rule(serviceIdentifier=svc["id"], listenerIdentifier=listener["id"], name=f"route-{i}",
                      priority=i + 1, match={"httpMatch": {"pathMatch": {"match": {"prefix": f"/r{i}"}}}},
                      action={"fixedResponse": {"statusCode": 404}})
    r = L.expect_error("ServiceQuotaExceededException", 402, c.create_rule, serviceIdentifier=svc["id"],
                       listenerIdentifier=listener["id"], name="route-10", priority=11,
                       match={"httpMatch": {"pathMatch": {"match": {"prefix": "/r10"}}}},
                       action={"fixedResponse": {"statusCode": 404}})
    assert r.get("quotaCode"), r

    # Objects of the config file: any change but (de)registering targets is refused, saying so.
    file_svc = [s for s in c.list_services()["items"] if s["name"] == "file-svc"]
    assert len(file_svc) == 1, c.list_services()["items"]
    file_svc = file_svc[0]
    L.check_id("service", file_svc["id"])
    file_tg = [t for t in c.list_target_groups()["items"] if t["name"] == "file-tg"][0]
    refusals = [
        (c.update_service, {"serviceIdentifier": file_svc["id"], "authType": "AWS_IAM"}),
        (c.delete_service, {"serviceIdentifier": file_svc["id"]}),
        (c.delete_target_group, {"targetGroupIdentifier": file_tg["id"]}),
        (c.update_target_group, {"targetGroupIdentifier": file_tg["id"],
                                 "healthCheck": {"enabled": False}}),
        (c.create_listener, {"serviceIdentifier": file_svc["id"], "name": "more", "protocol": "HTTP",
                             "port": ports[3], "defaultAction": {"fixedResponse": {"statusCode": 404}}}),
    ]
    for call, kwargs in refusals:
        code, status, r = L.error_of(call, **kwargs)
        assert (code, status) in (("ValidationException", 400), ("ConflictException", 409)), (code, r)
        assert "config file" in r["Error"]["Message"], r
    out["file_owned"] = r["Error"]["Message"]
    assert c.get_service(serviceIdentifier=file_svc["id"])["authType"] == "NONE"
    # Its targets may be registered and deregistered.
    reg = c.register_targets(targetGroupIdentifier=file_tg["id"], targets=[{"id": "127.0.0.2", "port": 9}])
    assert len(reg["successful"]) == 1 and not reg.get("unsuccessful"), reg
    listed = {(t["id"], t["port"]) for t in c.list_targets(targetGroupIdentifier=file_tg["id"])["items"]}
    assert listed == {("127.0.0.1", 9), ("127.0.0.2", 9)}, listed
    c.deregister_targets(targetGroupIdentifier=file_tg["id"], targets=[{"id": "127.0.0.1", "port": 9}])
    listed = {(t["id"], t["port"]) for t in c.list_targets(targetGroupIdentifier=file_tg["id"])["items"]
              if t.get("status") != "DRAINING"}
    assert listed == {("127.0.0.2", 9)}, listed
    return out


def idempotency(c, region, ports):
    first = c.create_service(name="idem-svc", clientToken="token-service-1")
    again = c.create_service(name="idem-svc", clientToken="token-service-1")
    assert L.clean(first) == L.clean(again), (first, again)
    assert [s["id"] for s in c.list_services()["items"] if s["name"] == "idem-svc"] == [first["id"]]

    tg1 = c.create_target_group(name="idem-tg", type="LAMBDA", clientToken="token-tg-1")
    tg2 = c.create_target_group(name="idem-tg", type="LAMBDA", clientToken="token-tg-1")
    assert tg1["id"] == tg2["id"] and tg1["arn"] == tg2["arn"], (tg1, tg2)

    action = {"fixedResponse": {"statusCode": 404}}
    l1 = c.create_listener(serviceIdentifier=first["id"], name="http", protocol="HTTP", port=ports[0],
                           defaultAction=action, clientToken="token-listener-1")
    l2 = c.create_listener(serviceIdentifier=first["id"], name="http", protocol="HTTP", port=ports[0],
                           defaultAction=action, clientToken="token-listener-1")
    assert l1["id"] == l2["id"], (l1, l2)
    assert len(c.list_listeners(serviceIdentifier=first["id"])["items"]) == 1

    sn1 = c.create_service_network(name="idem-network", clientToken="token-sn-1")
    sn2 = c.create_service_network(name="idem-network", clientToken="token-sn-1")
    assert sn1["id"] == sn2["id"]
    a1 = c.create_service_network_service_association(
        serviceNetworkIdentifier=sn1["id"], serviceIdentifier=first["id"], clientToken="token-snsa-1")
    a2 = c.create_service_network_service_association(
        serviceNetworkIdentifier=sn1["id"], serviceIdentifier=first["id"], clientToken="token-snsa-1")
    assert a1["id"] == a2["id"], (a1, a2)

    # Without a token, the second create of a name is a conflict, not a silent success.
    L.expect_error("ConflictException", 409, c.create_service, name="idem-svc")
    # The same token with another input: a conflict.
    L.expect_error("ConflictException", 409, c.create_service, name="idem-svc-2", clientToken="token-service-1")
    return {"service": first["id"], "target_group": tg1["id"], "listener": l1["id"]}


def main():
    command, endpoint, region, ports = sys.argv[1:5]
    c = L.client(endpoint, region)
    ports = [int(p) for p in ports.split(",")]
    L.emit({"errors": errors, "idempotency": idempotency}[command](c, region, ports))


if __name__ == "__main__":
    main()
