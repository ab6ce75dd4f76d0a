"""Queries a DNS server with dnspython (a resolver nobody here wrote) and prints one JSON line.

    python dns_query.py '{"server": "127.0.0.1", "port": 10053, "queries": [...]}'

Each query: {"name", "type" (A, AAAA, ...), "source" (client address, default 127.0.0.1),
"transport": "udp" | "tcp" | "fallback" (UDP, then TCP when the answer has TC set),
"until": optional {"rcode": "NOERROR", "deadline": seconds} to repeat the query every 20 ms until
it gets that rcode with an answer (or NXDOMAIN), reporting when (time.time()) it first did}.
Each result: {"rcode", "answers": [text...], "ttls": [...], "tc" (the UDP answer's TC bit, for
"fallback"), "tcp" (whether TCP was used), "at" (time.time() of the answer)}.
With "ready": true in the spec, the script prints a line `ready` just before its first query, so
that a test can make a change while the queries already run: the time to see it then counts
none of the interpreter's start-up.
"""
import json
import sys
import time

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype


def ask(server, port, q):
    msg = dns.message.make_query(q["name"], q.get("type", "A"))
    source = q.get("source", "127.0.0.1")
    transport = q.get("transport", "udp")
    result = {"tc": None, "tcp": transport == "tcp"}
    if transport == "tcp":
        resp = dns.query.tcp(msg, server, port=port, source=source, timeout=5)
    elif transport == "fallback":
        first = dns.query.udp(msg, server, port=port, source=source, timeout=5, raise_on_truncation=False)
        result["tc"] = bool(first.flags & dns.flags.TC)
        resp, used_tcp = dns.query.udp_with_fallback(msg, server, port=port, source=source, timeout=5)
        result["tcp"] = used_tcp
    else:
        resp = dns.query.udp(msg, server, port=port, source=source, timeout=5)
    answers, ttls = [], []
    for rrset in resp.answer:
        for rr in rrset:
            answers.append(rr.to_text())
            ttls.append(rrset.ttl)
    result.update(rcode=dns.rcode.to_text(resp.rcode()), answers=answers, ttls=ttls, at=time.time())
    return result


def main():
    spec = json.loads(sys.argv[1])
    out = []
    if spec.get("ready"):
        print("ready", flush=True)
    for q in spec["queries"]:
        until = q.get("until")
        if until is None:
            out.append(ask(spec["server"], spec["port"], q))
            continue
        deadline = time.time() + until["deadline"]
        while True:
            r = ask(spec["server"], spec["port"], q)
            wanted = r["rcode"] == until["rcode"] and (r["answers"] or r["rcode"] != "NOERROR")
            if wanted or time.time() > deadline:
                out.append(r)
                break
            time.sleep(0.02)
    print(json.dumps(out))


main()
