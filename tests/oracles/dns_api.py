#!/usr/bin/env python3
"""Names made and removed through the AWS API (boto3) resolve, and stop resolving, through
Trellis's DNS (dnspython): issue 17, "names are added and removed ... by the API".

    python dns_api.py ENDPOINT REGION DNS_HOST DNS_PORT

The config file (tests/dns.rs) has the VPC `client-vpc` (127.0.0.2/32), no service network and
no service. Steps, each timed from the moment the API call returned, each name asked over UDP
every 10 ms (and once over TCP):

1. CreateService `api-svc` with a custom domain: its generated name (the dnsEntry boto3 got),
   the custom domain and `api-svc.trellis.localhost` answer Trellis's address.
2. DeleteService: all three are NXDOMAIN (the generated and custom names are then forwarded to
   the test's upstream, which knows none of them).
3. A service network with client-vpc and a new service `api-net-svc`, made by API: the name
   resolves from 127.0.0.2 (in client-vpc) and is NXDOMAIN from 127.0.0.3 (in no VPC).

The last stdout line is a JSON summary: seconds from each API call to the answer that showed it.
"""

import sys
import time

import dns.message
import dns.query
import dns.rcode

import lattice as L

# How long a change may take before the script gives up (the Rust test asserts < 1 s on what
# the summary reports; this only bounds the wait).
DEADLINE = 5.0


def ask(server, port, name, source="127.0.0.1", tcp=False):
    msg = dns.message.make_query(name, "A")
    query = dns.query.tcp if tcp else dns.query.udp
    resp = query(msg, server, port=port, source=source, timeout=2)
    answers = sorted(rr.to_text() for rrset in resp.answer for rr in rrset)
    return dns.rcode.to_text(resp.rcode()), answers


def wait_for(server, port, name, want, since, source="127.0.0.1"):
    """Seconds from `since` (time.monotonic()) to the first answer with rcode `want` (NOERROR
    only counts with an answer); the answers go with it. AssertionError past DEADLINE."""
    last = None
    while time.monotonic() - since < DEADLINE:
        last = ask(server, port, name, source)
        if last[0] == want and (want != "NOERROR" or last[1]):
            return round(time.monotonic() - since, 3), last[1]
        time.sleep(0.01)
    raise AssertionError(f"{name} from {source}: still {last} {DEADLINE}s after the API call, wanted {want}")


def main():
    endpoint, region, server, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    c = L.client(endpoint, region)
    summary = {"created": {}, "deleted": {}}

    assert ask(server, port, "api-svc.trellis.localhost")[0] == "NXDOMAIN"
    svc = c.create_service(name="api-svc", customDomainName="api-svc.example.com")
    since = time.monotonic()
    domain = L.check_dns(region, svc)
    names = [domain, "api-svc.example.com", "api-svc.trellis.localhost"]
    for name in names:
        took, answers = wait_for(server, port, name, "NOERROR", since)
        assert answers == ["127.0.0.1"], (name, answers)
        summary["created"][name] = took
    assert ask(server, port, domain, tcp=True) == ("NOERROR", ["127.0.0.1"])

    c.delete_service(serviceIdentifier=svc["id"])
    since = time.monotonic()
    for name in names:
        summary["deleted"][name] = wait_for(server, port, name, "NXDOMAIN", since)[0]
    assert ask(server, port, domain, tcp=True)[0] == "NXDOMAIN"

    net_svc = c.create_service(name="api-net-svc")
    sn = c.create_service_network(name="api-net")
    c.create_service_network_vpc_association(serviceNetworkIdentifier=sn["id"], vpcIdentifier="client-vpc")
    c.create_service_network_service_association(serviceNetworkIdentifier=sn["id"], serviceIdentifier=net_svc["id"])
    since = time.monotonic()
    name = L.check_dns(region, net_svc)
    took, answers = wait_for(server, port, name, "NOERROR", since, source="127.0.0.2")
    assert answers == ["127.0.0.1"], answers
    summary["admitted"] = took
    summary["refused"] = wait_for(server, port, name, "NXDOMAIN", since, source="127.0.0.3")[0]
    L.emit(summary)


if __name__ == "__main__":
    main()
