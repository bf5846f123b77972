#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Raw SOCKS5 client (RFC 1928 / RFC 1929) for checking the proxy test server byte
by byte: what the proxy answers to each step is what smtpuv's handshake must map to
its error codes.

  socks5_check.py --port P [--user U --password PW] [--no-offer-none]
                  (--dst-name NAME | --dst-ip ADDR) --dst-port N
                  [--expect-method HEX] [--expect-auth HEX] [--expect-rep N]
                  [--expect-greeting]

--expect-greeting: after a successful CONNECT, read the SMTP greeting through the
tunnel (a 220 line). Exit 0 when every expectation holds.
"""
import argparse
import ipaddress
import socket
import sys


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        d = s.recv(n - len(out))
        if not d:
            raise EOFError("proxy closed after %d of %d bytes" % (len(out), n))
        out += d
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--no-offer-none", action="store_true")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--dst-name")
    g.add_argument("--dst-ip")
    p.add_argument("--dst-port", type=int, required=True)
    p.add_argument("--expect-method", default="00")
    p.add_argument("--expect-auth", default="00")
    p.add_argument("--expect-rep", type=int, default=0)
    p.add_argument("--expect-greeting", action="store_true")
    a = p.parse_args()

    s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
    methods = ([] if a.no_offer_none else [0]) + ([2] if a.user else [])
    s.sendall(bytes([5, len(methods)] + methods))
    r = recv_exact(s, 2)
    print("method reply", r.hex())
    if r[0] != 5 or r[1] != int(a.expect_method, 16):
        print("expected method %s" % a.expect_method)
        return 1
    if r[1] == 0xFF:
        return 0
    if r[1] == 2:
        u, pw = a.user.encode(), a.password.encode()
        s.sendall(bytes([1, len(u)]) + u + bytes([len(pw)]) + pw)
        r = recv_exact(s, 2)
        print("auth reply", r.hex())
        if r[0] != 1 or r[1] != int(a.expect_auth, 16):
            print("expected auth status %s" % a.expect_auth)
            return 1
        if r[1] != 0:
            return 0
    if a.dst_name:
        dst = bytes([3, len(a.dst_name)]) + a.dst_name.encode()
    else:
        ip = ipaddress.ip_address(a.dst_ip)
        dst = bytes([1 if ip.version == 4 else 4]) + ip.packed
    s.sendall(b"\x05\x01\x00" + dst + a.dst_port.to_bytes(2, "big"))
    head = recv_exact(s, 4)
    alen = {1: 4, 4: 16}.get(head[3])
    if alen is None:
        alen = recv_exact(s, 1)[0]
    rest = recv_exact(s, alen + 2)
    print("connect reply", (head + rest).hex())
    if head[0] != 5 or head[1] != a.expect_rep or head[2] != 0:
        print("expected reply code %d" % a.expect_rep)
        return 1
    if a.expect_greeting:
        line = b""
        while not line.endswith(b"\n"):
            line += recv_exact(s, 1)
        print("through the tunnel:", line)
        if not line.startswith(b"220"):
            return 1
        s.sendall(b"QUIT\r\n")
    s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
