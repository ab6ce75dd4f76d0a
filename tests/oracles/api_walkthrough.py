#!/usr/bin/env python3
"""The launch walkthrough built, served, changed and checked through the AWS API (boto3).

    api_walkthrough.py build    ENDPOINT REGION LISTENER_PORT INSTANCE_PORT
        From a file with only `vpcs` and `functions`: creates the walkthrough (lattice.py
        build_walkthrough), checks Get*/List* of what it made, sends traffic through it (each
        rule, the 20/10 split); prints the ids as JSON.
    api_walkthrough.py create   ENDPOINT REGION LISTENER_PORT INSTANCE_PORT
        The same without the traffic (for a listener port served only after a restart).
    api_walkthrough.py check    ENDPOINT REGION IDS_JSON
        Traffic again (each rule, the split): after a restart.
    api_walkthrough.py snapshot ENDPOINT REGION IDS_JSON
        Prints what the API says about every object (lattice.py snapshot).
    api_walkthrough.py weights  ENDPOINT REGION IDS_JSON
        UpdateListener's weights, then UpdateRule's and BatchUpdateRule's forward: the split
        follows each change within a bounded wait; prints how long each change took to be served.
"""

import sys
import time
import json

import lattice as L


def build(c, region, listener_port, instance_port, serve):
    ids = L.build_walkthrough(c, region, listener_port, instance_port)
    since = L.datetime.datetime.fromisoformat(ids["since"])

    svc = c.get_service(serviceIdentifier=ids["service"])
    assert svc["name"] == "lattice-svc" and svc["status"] == "ACTIVE", svc
    assert svc["dnsEntry"]["domainName"] == ids["domain"], svc
    L.check_times(svc, since)
    # By ARN as well as by id (§4.3).
    assert c.get_service(serviceIdentifier=ids["service_arn"])["id"] == ids["service"]

    sn = c.get_service_network(serviceNetworkIdentifier=ids["network"])
    assert (sn["numberOfAssociatedServices"], sn["numberOfAssociatedVPCs"]) == (1, 1), sn
    L.check_times(sn, since)

    assoc = c.get_service_network_service_association(
        serviceNetworkServiceAssociationIdentifier=ids["svc_assoc"])
    assert (assoc["serviceId"], assoc["serviceName"], assoc["serviceNetworkId"]) == \
        (ids["service"], "lattice-svc", ids["network"]), assoc
    assert assoc["status"] == "ACTIVE" and assoc["dnsEntry"]["domainName"] == ids["domain"], assoc
    listed = c.list_service_network_service_associations(serviceNetworkIdentifier=ids["network"])["items"]
    assert [a["id"] for a in listed] == [ids["svc_assoc"]], listed
    listed = c.list_service_network_vpc_associations(serviceNetworkIdentifier=ids["network"])["items"]
    assert [(a["id"], a["vpcId"]) for a in listed] == [(ids["vpc_assoc"], ids["vpc_id"])], listed

    tg = c.get_target_group(targetGroupIdentifier=ids["instance_tg"])
    assert tg["serviceArns"] == [ids["service_arn"]], tg  # used by the service's listener
    assert tg["config"]["healthCheck"]["healthCheckIntervalSeconds"] == 5, tg
    L.check_times(tg, since)

    listener = c.get_listener(serviceIdentifier=ids["service"], listenerIdentifier=ids["listener"])
    groups = listener["defaultAction"]["forward"]["targetGroups"]
    assert sorted((g["targetGroupIdentifier"], g["weight"]) for g in groups) == \
        sorted([(ids["instance_tg"], 20), (ids["function_tg"], 10)]), listener
    L.check_times(listener, since)

    rules = c.list_rules(serviceIdentifier=ids["service"], listenerIdentifier=ids["listener"])["items"]
    # The two rules and the listener's default rule (isDefault, evaluated last).
    names = sorted((r["name"], r.get("isDefault", False)) for r in rules)
    assert [n for n in names if not n[1]] == [("to-function", False), ("to-instance", False)], rules
    assert sum(1 for r in rules if r.get("isDefault")) == 1, rules
    rule = c.get_rule(serviceIdentifier=ids["service"], listenerIdentifier=ids["listener"],
                      ruleIdentifier=ids["rules"]["to-instance"])
    assert rule["match"]["httpMatch"]["pathMatch"]["match"] == {"exact": "/to-instance"}, rule
    assert rule["isDefault"] is False and rule["priority"] == 10, rule
    L.check_times(rule, since)

    targets = c.list_targets(targetGroupIdentifier=ids["function_tg"])["items"]
    assert [t["id"] for t in targets] == [L.FUNCTION], targets

    if serve:
        ids["counts"] = L.check_walkthrough_serves(c, ids)
    return ids


def weights(c, ids):
    port, domain = ids["listener_port"], ids["domain"]
    took = {}

    def served_by(path, who_expected, n=6):
        def check():
            seen = [L.who(L.request(port, domain, path)[1]) for _ in range(n)]
            return seen if all(s == who_expected for s in seen) else None
        return check

    # UpdateListener: the default action now sends everything to the function, then 1:3.
    start = time.monotonic()
    out = c.update_listener(serviceIdentifier=ids["service"], listenerIdentifier=ids["listener"],
                            defaultAction=L.weighted((ids["instance_tg"], 0), (ids["function_tg"], 100)))
    assert out["id"] == ids["listener"], out
    L.wait_until("the default action to send all to the function", served_by("/split", "function"), 5)
    took["update_listener_s"] = time.monotonic() - start
    c.update_listener(serviceIdentifier=ids["service"], listenerIdentifier=ids["listener"],
                      defaultAction=L.weighted((ids["instance_tg"], 10), (ids["function_tg"], 30)))
    def split_1_3():
        counts = L.tally(port, domain, "/split", 40)
        return counts if abs(counts.get("instance-a", 0) - 10) <= 3 and \
            abs(counts.get("function", 0) - 30) <= 3 else None
    took["split_1_3"] = L.wait_until("the 10/30 split", split_1_3, 5, step=0.1)
    listener = c.get_listener(serviceIdentifier=ids["service"], listenerIdentifier=ids["listener"])
    assert sorted(g["weight"] for g in listener["defaultAction"]["forward"]["targetGroups"]) == [10, 30], listener
    assert listener["lastUpdatedAt"] > listener["createdAt"], listener

    # UpdateRule: /to-instance now forwards to the function.
    start = time.monotonic()
    out = c.update_rule(serviceIdentifier=ids["service"], listenerIdentifier=ids["listener"],
                        ruleIdentifier=ids["rules"]["to-instance"],
                        action={"forward": {"targetGroups": [
                            {"targetGroupIdentifier": ids["function_tg"], "weight": 1}]}})
    assert out["id"] == ids["rules"]["to-instance"] and out["priority"] == 10, out
    L.wait_until("/to-instance to reach the function", served_by("/to-instance", "function"), 5)
    took["update_rule_s"] = time.monotonic() - start

    # BatchUpdateRule: both rules swap to the instance.
    start = time.monotonic()
    out = c.batch_update_rule(serviceIdentifier=ids["service"], listenerIdentifier=ids["listener"],
                              rules=[{"ruleIdentifier": ids["rules"][name],
                                      "action": {"forward": {"targetGroups": [
                                          {"targetGroupIdentifier": ids["instance_tg"]}]}}}
                                     for name in ("to-instance", "to-function")])
    assert sorted(r["id"] for r in out["successful"]) == sorted(ids["rules"].values()) \
        and not out.get("unsuccessful"), out
    L.wait_until("/to-function to reach the instance", served_by("/to-function", "instance-a"), 5)
    L.wait_until("/to-instance to reach the instance", served_by("/to-instance", "instance-a"), 5)
    took["batch_update_rule_s"] = time.monotonic() - start
    # The rule's priority and match are untouched by a change of its action.
    rule = c.get_rule(serviceIdentifier=ids["service"], listenerIdentifier=ids["listener"],
                      ruleIdentifier=ids["rules"]["to-function"])
    assert rule["priority"] == 20 and rule["match"]["httpMatch"]["pathMatch"]["match"] == {"exact": "/to-function"}, rule
    return took


def main():
    command, endpoint, region = sys.argv[1:4]
    c = L.client(endpoint, region)
    if command in ("build", "create"):
        L.emit(build(c, region, int(sys.argv[4]), int(sys.argv[5]), serve=command == "build"))
    elif command == "check":
        L.emit({"counts": L.check_walkthrough_serves(c, json.loads(sys.argv[4]))})
    elif command == "snapshot":
        L.emit(L.snapshot(c, json.loads(sys.argv[4])))
    elif command == "weights":
        L.emit(weights(c, json.loads(sys.argv[4])))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
