"""A tiny upstream resolver for tests/dns.rs, on loopback only: UDP and TCP on 127.0.0.1:PORT.

    python dns_upstream.py PORT

Answers `forwarded.test` A 192.0.2.7, `big.test` with 120 A records (over UDP that does not fit
the 512 bytes of a query without EDNS, so the answer has TC set and no records, as a real server
does; over TCP it is whole); every other name NXDOMAIN. Prints "ready" once both sockets are
bound; exits when its stdin closes (the test holding the pipe ends), so it never outlives the test.
"""
import socket
import struct
import sys
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rrset


def answer(wire, udp):
    query = dns.message.from_wire(wire)
    resp = dns.message.make_response(query)
    name = query.question[0].name.to_text().lower()
    if name == "forwarded.test.":
        resp.answer.append(dns.rrset.from_text(name, 30, "IN", "A", "192.0.2.7"))
    elif name == "big.test.":
        ips = [f"198.51.100.{i}" for i in range(1, 121)]
        resp.answer.append(dns.rrset.from_text_list(name, 30, "IN", "A", ips))
    else:
        resp.set_rcode(dns.rcode.NXDOMAIN)
    out = resp.to_wire()
    limit = query.payload if query.edns >= 0 else 512
    if udp and len(out) > limit:
        resp.answer = []
        resp.flags |= dns.flags.TC
        out = resp.to_wire()
    return out


def serve_udp(sock):
    while True:
        wire, peer = sock.recvfrom(65535)
        try:
            sock.sendto(answer(wire, True), peer)
        except Exception as e:  # a test's garbage: keep serving
            print(f"udp: {e}", file=sys.stderr)


def serve_tcp(listener):
    while True:
        conn, _ = listener.accept()
        with conn:
            try:
                conn.settimeout(5)
                head = conn.recv(2, socket.MSG_WAITALL)
                (n,) = struct.unpack("!H", head)
                wire = conn.recv(n, socket.MSG_WAITALL)
                out = answer(wire, False)
                conn.sendall(struct.pack("!H", len(out)) + out)
            except Exception as e:
                print(f"tcp: {e}", file=sys.stderr)


def main():
    port = int(sys.argv[1])
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", port))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", port))
    tcp.listen(16)
    threading.Thread(target=serve_udp, args=(udp,), daemon=True).start()
    threading.Thread(target=serve_tcp, args=(tcp,), daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()


main()
