#!/usr/bin/env python3
"""Targets registered and deregistered through the API while traffic flows; ListTargets' live
status (LATTICE.md §3.2-3.4).

    api_targets.py ENDPOINT REGION LISTENER_PORT PORT_A PORT_B DEAD_PORT

hello-instance answers on PORT_A (instance-a) and PORT_B (instance-b); nothing listens on
DEAD_PORT. A service whose listener forwards to one INSTANCE group (health checks every 5 s):
both targets HEALTHY and both served; a target on DEAD_PORT UNHEALTHY with a reason code and
never served; B deregistered: no more traffic to B, and ListTargets no longer lists it as
serving (absent or DRAINING); a group no service uses lists its targets UNUSED.
"""

import sys
import time

import lattice as L


def main():
    endpoint, region = sys.argv[1:3]
    listener_port, port_a, port_b, dead = (int(a) for a in sys.argv[3:7])
    c = L.client(endpoint, region)

    svc = c.create_service(name="targets-svc")
    domain = L.check_dns(region, svc)
    tg = c.create_target_group(
        name="web-tg", type="INSTANCE",
        config={"port": port_a, "protocol": "HTTP",
                "healthCheck": {"enabled": True, "healthCheckIntervalSeconds": 5,
                                "healthyThresholdCount": 2, "unhealthyThresholdCount": 2}})
    out = c.register_targets(targetGroupIdentifier=tg["id"],
                             targets=[{"id": "127.0.0.1"}, {"id": "127.0.0.1", "port": port_b}])
    # A target without a port takes the group's (§3.1).
    assert sorted((t["id"], t["port"]) for t in out["successful"]) == \
        sorted([("127.0.0.1", port_a), ("127.0.0.1", port_b)]), out
    assert not out.get("unsuccessful"), out
    c.create_listener(serviceIdentifier=svc["id"], name="http", protocol="HTTP", port=listener_port,
                      defaultAction={"forward": {"targetGroups": [{"targetGroupIdentifier": tg["id"]}]}})

    status = L.wait_healthy(c, tg["id"], [("127.0.0.1", port_a), ("127.0.0.1", port_b)])
    assert len(status) == 2, status
    counts = L.tally(listener_port, domain, "/rr", 20)
    # Round robin among healthy targets (§3.4).
    assert counts == {"instance-a": 10, "instance-b": 10}, counts

    # A target that refuses connections: UNHEALTHY once its first check fails, with a reason.
    c.register_targets(targetGroupIdentifier=tg["id"], targets=[{"id": "127.0.0.1", "port": dead}])
    def dead_unhealthy():
        items = c.list_targets(targetGroupIdentifier=tg["id"])["items"]
        found = [t for t in items if t.get("port") == dead]
        return found[0] if found and found[0].get("status") == "UNHEALTHY" else None
    unhealthy = L.wait_until("the dead target UNHEALTHY", dead_unhealthy, 15, step=0.2)
    assert unhealthy.get("reasonCode"), f"an UNHEALTHY target without reasonCode: {unhealthy}"
    counts = L.tally(listener_port, domain, "/rr", 20)
    assert counts == {"instance-a": 10, "instance-b": 10}, counts

    # ListTargets filtered by `targets`.
    only = c.list_targets(targetGroupIdentifier=tg["id"], targets=[{"id": "127.0.0.1", "port": port_b}])["items"]
    assert [(t["id"], t["port"], t["status"]) for t in only] == [("127.0.0.1", port_b, "HEALTHY")], only

    # Deregister B: it leaves the rotation at once (§3.4), and stops being listed as serving.
    start = time.monotonic()
    out = c.deregister_targets(targetGroupIdentifier=tg["id"],
                               targets=[{"id": "127.0.0.1", "port": port_b},
                                        {"id": "127.0.0.1", "port": dead}])
    assert sorted(t["port"] for t in out["successful"]) == sorted([port_b, dead]), out
    assert not out.get("unsuccessful"), out
    def only_a():
        counts = L.tally(listener_port, domain, "/after", 10)
        return counts if counts == {"instance-a": 10} else None
    L.wait_until("traffic to A only", only_a, 5)
    took = time.monotonic() - start
    items = c.list_targets(targetGroupIdentifier=tg["id"])["items"]
    left = {(t["id"], t.get("port")): t.get("status") for t in items}
    assert left.get(("127.0.0.1", port_a)) == "HEALTHY", items
    for port in (port_b, dead):
        assert left.get(("127.0.0.1", port)) in (None, "DRAINING"), \
            f"deregistered target {port} still listed as {left.get(('127.0.0.1', port))}: {items}"
    counts = L.tally(listener_port, domain, "/after", 20)
    assert counts == {"instance-a": 20}, counts

    # A group no service uses: its targets are UNUSED (§3.3).
    spare = c.create_target_group(name="spare-tg", type="INSTANCE",
                                  config={"port": port_a, "protocol": "HTTP"})
    c.register_targets(targetGroupIdentifier=spare["id"], targets=[{"id": "127.0.0.1"}])
    items = c.list_targets(targetGroupIdentifier=spare["id"])["items"]
    assert [(t["id"], t["port"], t["status"]) for t in items] == [("127.0.0.1", port_a, "UNUSED")], items
    assert c.get_target_group(targetGroupIdentifier=spare["id"]).get("serviceArns", []) == [], spare

    L.emit({"deregistered_served_after_s": took, "unhealthy": unhealthy})


if __name__ == "__main__":
    main()
