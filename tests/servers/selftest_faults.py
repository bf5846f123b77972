#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Check every fault_server.py scenario with a raw socket client.

usage: selftest_faults.py PKI_DIR WORK_DIR
Starts one fault_server.py per scenario (port 0, a few in parallel), checks that the
fault happens where it should, stops the server by its PID. Prints one line per
scenario and exits 1 if any check failed.
"""
import concurrent.futures
import os
import socket
import ssl
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PKI, WORK = sys.argv[1], sys.argv[2]
os.makedirs(WORK, exist_ok=True)
CTX = ssl.create_default_context(cafile=os.path.join(PKI, "ca.crt"))
SILENCE = 0.4   # seconds of silence that count as "the server does not answer"


class Peer:
    def __init__(self, port, implicit=False):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if implicit:
            self.s = CTX.wrap_socket(self.s, server_hostname="localhost")
        self.buf = b""

    def reply(self, timeout=5):
        """One complete reply as (code, lines); None on EOF/reset; 'silent' on timeout."""
        self.s.settimeout(timeout)
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                try:
                    d = self.s.recv(65536)
                except socket.timeout:
                    return "silent"
                except (ConnectionResetError, ssl.SSLError):
                    return None
                if not d:
                    return None
                self.buf += d
            line, _, self.buf = self.buf.partition(b"\r\n")
            lines.append(line)
            if line[3:4] != b"-":
                return int(line[:3]) if line[:3].isdigit() else -1, lines

    def cmd(self, line, timeout=5):
        self.s.sendall(line + b"\r\n")
        return self.reply(timeout)

    def starttls(self):
        r = self.cmd(b"STARTTLS")
        assert r[0] == 220, r
        self.s = CTX.wrap_socket(self.s, server_hostname="localhost")

    def to_ready(self, tls=False):
        assert self.reply()[0] == 220
        assert self.cmd(b"EHLO t")[0] == 250
        if tls:
            self.starttls()
            assert self.cmd(b"EHLO t")[0] == 250


def closed(r):
    return r is None


def check(name, p, t):
    """Return None when the scenario behaves, else a description of what happened."""
    if name == "normal":
        p.to_ready(tls=True)
        assert p.cmd(b"AUTH PLAIN AHVAcA==")[0] == 235
        for c in (b"MAIL FROM:<a@x>", b"RCPT TO:<b@x>"):
            assert p.cmd(c)[0] == 250
        assert p.cmd(b"DATA")[0] == 354
        assert p.cmd(b"hi\r\n.")[0] == 250
        assert p.cmd(b"QUIT")[0] == 221
        time.sleep(0.05)
        assert "tls" in open(t).read()
    elif name == "no_greeting":
        assert p.reply(SILENCE) == "silent"
    elif name == "greeting_421":
        assert p.reply()[0] == 421 and closed(p.reply())
    elif name == "close_after_ehlo":
        assert p.reply()[0] == 220 and closed(p.cmd(b"EHLO t"))
    elif name == "close_in_auth":
        p.to_ready(tls=True)
        assert closed(p.cmd(b"AUTH PLAIN AHVAcA=="))
    elif name == "close_after_mail":
        p.to_ready()
        assert closed(p.cmd(b"MAIL FROM:<a@x>"))
    elif name == "close_mid_body":
        p.to_ready()
        assert p.cmd(b"MAIL FROM:<a@x>")[0] == 250 and p.cmd(b"RCPT TO:<b@x>")[0] == 250
        assert p.cmd(b"DATA")[0] == 354
        p.s.sendall(b"Subject: x\r\n")
        assert closed(p.reply())
    elif name == "close_after_dot":
        p.to_ready()
        assert p.cmd(b"MAIL FROM:<a@x>")[0] == 250 and p.cmd(b"RCPT TO:<b@x>")[0] == 250
        assert p.cmd(b"DATA")[0] == 354
        assert closed(p.cmd(b"body\r\n."))
    elif name == "silent_after_ehlo":
        assert p.reply()[0] == 220 and p.cmd(b"EHLO t", SILENCE) == "silent"
    elif name == "silent_after_mail":
        p.to_ready()
        assert p.cmd(b"MAIL FROM:<a@x>", SILENCE) == "silent"
    elif name == "silent_after_data":
        p.to_ready()
        assert p.cmd(b"MAIL FROM:<a@x>")[0] == 250 and p.cmd(b"RCPT TO:<b@x>")[0] == 250
        assert p.cmd(b"DATA", SILENCE) == "silent"
    elif name == "silent_after_dot":
        p.to_ready()
        assert p.cmd(b"MAIL FROM:<a@x>")[0] == 250 and p.cmd(b"RCPT TO:<b@x>")[0] == 250
        assert p.cmd(b"DATA")[0] == 354
        assert p.cmd(b"body\r\n.", SILENCE) == "silent"
    elif name == "garbage_reply":
        assert p.reply()[0] == 220
        r = p.cmd(b"EHLO t")
        assert r[0] == -1, r
    elif name == "starttls_injection":
        p.to_ready()
        p.s.sendall(b"STARTTLS\r\n")
        time.sleep(0.1)
        assert p.reply()[0] == 220 and p.buf == b"250 injected\r\n", p.buf
    elif name == "starttls_refused":
        p.to_ready()
        assert p.cmd(b"STARTTLS")[0] == 454
        assert p.cmd(b"NOOP")[0] == 250
    elif name == "tls_abort":
        p.to_ready()
        try:
            p.starttls()
        except ssl.SSLError:
            return None
        return "TLS handshake succeeded"
    elif name in ("wrong_host", "untrusted_cert"):
        p.to_ready()
        want = "Hostname mismatch" if name == "wrong_host" else "unable to get local issuer"
        try:
            p.starttls()
        except ssl.SSLCertVerificationError as e:
            return None if want in str(e) else "wrong verification error: %s" % e
        return "certificate accepted"
    elif name == "silent_in_tls":
        p.to_ready()
        assert p.cmd(b"STARTTLS")[0] == 220
        p.s.settimeout(SILENCE)
        try:
            CTX.wrap_socket(p.s, server_hostname="localhost")
        except socket.timeout:
            return None
        return "TLS handshake answered"
    elif name == "silent_in_auth":
        p.to_ready(tls=True)
        assert p.cmd(b"AUTH PLAIN AHVAcA==", SILENCE) == "silent"
    elif name == "stall_mid_body":
        p.to_ready()
        assert p.cmd(b"MAIL FROM:<a@x>")[0] == 250 and p.cmd(b"RCPT TO:<b@x>")[0] == 250
        assert p.cmd(b"DATA")[0] == 354
        p.s.settimeout(SILENCE)
        sent, block = 0, b"x" * 65535 + b"\n"
        try:
            while sent < 256 << 20:
                sent += p.s.send(block)
        except socket.timeout:
            return None
        return "the server kept reading (%d bytes)" % sent
    else:
        return "no check for this scenario"
    return None


def run(name, implicit=False):
    tag = name + (" (implicit)" if implicit else "")
    t = os.path.join(WORK, "%s%s.transcript" % (name, "-implicit" if implicit else ""))
    cmd = ["/usr/bin/python3", os.path.join(HERE, "fault_server.py"), "--port", "0",
           "--scenario", name, "--pki", PKI, "--transcript", t, "--lifetime", "20"]
    if implicit:
        cmd.append("--implicit")
    srv = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        ready = srv.stdout.readline().split()
        if not ready or ready[0] != "READY":
            return tag, "no READY line"
        port = int(ready[1])
        if name == "refuse":
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                return tag, "connection accepted"
            except ConnectionRefusedError:
                return tag, None
        try:
            if implicit:
                try:
                    Peer(port, implicit=True)
                except ssl.SSLCertVerificationError:
                    return tag, None
                return tag, "certificate accepted"
            return tag, check(name, Peer(port), t)
        except AssertionError as e:
            return tag, "check failed %s" % (e.args or "")
        except Exception as e:  # noqa: BLE001 (report anything unexpected)
            return tag, "%s: %s" % (type(e).__name__, e)
    finally:
        srv.kill()
        srv.wait()


if __name__ == "__main__":
    names = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "fault_server.py"),
                            "--list-scenarios"], capture_output=True, text=True,
                           check=True).stdout.split()
    jobs = [(n, False) for n in names] + [("wrong_host", True), ("untrusted_cert", True)]
    failed = 0
    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        for tag, err in ex.map(lambda j: run(*j), jobs):
            print("  fault %-28s %s" % (tag, "ok" if err is None else "FAIL: " + err))
            failed += err is not None
    print("fault scenarios: %d passed, %d failed" % (len(jobs) - failed, failed))
    sys.exit(1 if failed else 0)
