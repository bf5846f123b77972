#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A scripted, misbehaving SMTP server for the client's fault matrix (loopback only).

  /usr/bin/python3 fault_server.py --port P --scenario NAME [--pki DIR | --cert C --key K]
                                   [--implicit] [--transcript FILE] [--pid-file F]
                                   [--lifetime S] [--max-connections N]
  /usr/bin/python3 fault_server.py --list-scenarios

Prints "READY <port>" once listening (--port 0 picks a free port), then serves every
connection with the same scenario (each in its own thread) until killed, until
--max-connections connections have been served, or after --lifetime seconds (120).

Outside the fault it is a small, permissive ESMTP server: 220 greeting; EHLO answers
PIPELINING 8BITMIME SIZE ENHANCEDSTATUSCODES CHUNKING AUTH PLAIN LOGIN, and STARTTLS when
a certificate is available and TLS is not on yet; any AUTH PLAIN/LOGIN succeeds; MAIL,
RCPT, DATA (354 ... ".") and BDAT are accepted; QUIT gets 221 and a close. With
--implicit, TLS starts at the first byte (port-465 style).

Certificates: --pki DIR (from gen_certs.sh) uses DIR/server.{crt,key}, except that the
scenarios wrong_host and untrusted_cert use DIR/wrong.* and DIR/untrusted.*. --cert/--key
override.

--transcript FILE appends what happens, one line each, flushed at once:
  "#<n> open", "C: <command line>", "S: <reply line>", "#<n> tls", "C: <body: N bytes>",
  "#<n> close <why>". Tests grep it, e.g. to prove that no AUTH or MAIL was sent after a
  failed STARTTLS.

Scenarios (the fault happens at the named point, on every connection):
  normal              no fault (a control)
  refuse              nothing listens: print READY with a free port that is closed, exit
  no_greeting         accept, never send anything
  greeting_421        "421 4.3.2 Service not available", then close
  close_after_ehlo    read EHLO, close without replying
  close_in_auth       read the AUTH command, close without replying
  close_after_mail    read MAIL, close without replying
  close_mid_body      after DATA's 354 read the first body line (or read a BDAT command
                      line), close
  close_after_dot     read the body up to "\\r\\n.\\r\\n" (or the BDAT LAST chunk), close
                      without replying
  silent_after_ehlo   read EHLO and never reply (the connection stays open)
  silent_after_mail   same for MAIL
  silent_after_data   same for DATA (no 354) or the first BDAT
  silent_after_dot    same after the end of the body
  garbage_reply       answer EHLO with a malformed multi-line reply
  starttls_injection  answer STARTTLS with "220 go ahead\\r\\n250 injected\\r\\n" in one write
  starttls_refused    answer STARTTLS with 454, then go on in plaintext
  tls_abort           after STARTTLS's 220, read the ClientHello, answer garbage, close
  silent_in_tls       after STARTTLS's 220 (or, with --implicit, at once) read the
                      ClientHello and never answer it (the connection stays open)
  silent_in_auth      read the AUTH command and never reply
  stall_mid_body      after DATA's 354 (or on the first BDAT command line) stop reading
                      altogether: the client's writes block once the socket buffers
                      are full (send it a body of several MB)
  wrong_host          TLS with a certificate for wrong.example signed by the good CA
  untrusted_cert      TLS with a certificate for localhost from an unrelated CA
"""
import argparse
import os
import signal
import socket
import ssl
import sys
import threading
import time

SCENARIOS = """normal refuse no_greeting greeting_421 close_after_ehlo close_in_auth
close_after_mail close_mid_body close_after_dot silent_after_ehlo silent_after_mail
silent_after_data silent_after_dot garbage_reply starttls_injection starttls_refused
tls_abort wrong_host untrusted_cert silent_in_tls silent_in_auth stall_mid_body""".split()

EHLO_KEYWORDS = ["PIPELINING", "8BITMIME", "SIZE 10485760", "ENHANCEDSTATUSCODES",
                 "CHUNKING", "AUTH PLAIN LOGIN"]


def parse():
    if sys.argv[1:] == ["--list-scenarios"]:
        print(" ".join(SCENARIOS))
        sys.exit(0)
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--scenario", required=True, choices=SCENARIOS)
    p.add_argument("--pki")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--implicit", action="store_true")
    p.add_argument("--transcript")
    p.add_argument("--pid-file")
    p.add_argument("--lifetime", type=float, default=120.0)
    p.add_argument("--max-connections", type=int, default=0, help="0: unlimited")
    a = p.parse_args()
    if a.host not in ("127.0.0.1", "::1", "localhost"):
        p.error("loopback only")
    if a.pki and not a.cert:
        base = {"wrong_host": "wrong", "untrusted_cert": "untrusted"}.get(a.scenario, "server")
        a.cert = os.path.join(a.pki, base + ".crt")
        a.key = os.path.join(a.pki, base + ".key")
    if a.implicit and not a.cert:
        p.error("--implicit needs a certificate (--pki or --cert/--key)")
    return a


A = parse()
_log_lock = threading.Lock()


def log(line):
    if not A.transcript:
        return
    with _log_lock, open(A.transcript, "a", encoding="utf-8", errors="replace") as f:
        f.write(line + "\n")


class Closed(Exception):
    pass


class Conn:
    def __init__(self, sock, n, ctx):
        self.sock, self.n, self.ctx = sock, n, ctx
        self.buf = b""
        self.tls = False

    def send(self, data):
        for line in data.decode("utf-8", "replace").split("\r\n"):
            if line:
                log("S: " + line)
        self.sock.sendall(data)

    def readline(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed("client closed")
            self.buf += chunk
            if len(self.buf) > 1 << 20:
                raise Closed("line too long")
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def readexactly(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed("client closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def start_tls(self):
        self.buf = b""                        # nothing sent before the handshake counts
        self.sock = self.ctx.wrap_socket(self.sock, server_side=True)
        self.tls = True
        log("#%d tls %s" % (self.n, self.sock.version()))

    def close(self, why):
        log("#%d close %s" % (self.n, why))
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def hang(c):
    """Stay silent: read and discard until the client goes away or the lifetime ends."""
    while True:
        data = c.sock.recv(65536)
        if not data:
            raise Closed("client closed while the server was silent")


def stall(c):
    """Stop reading: sleep until killed or the lifetime ends."""
    log("#%d stalled" % c.n)
    time.sleep(A.lifetime)
    raise Closed("stalled until the end of the lifetime")


def silent_tls(c):
    """Read the ClientHello, never answer it."""
    hello = c.sock.recv(65536)
    log("C: <%d bytes of TLS handshake>" % len(hello))
    hang(c)


def session(c):
    s = A.scenario
    if A.implicit and s == "silent_in_tls":
        silent_tls(c)
    if A.implicit:
        c.start_tls()
    if s == "no_greeting":
        hang(c)
    if s == "greeting_421":
        c.send(b"421 4.3.2 Service not available\r\n")
        return "after 421"
    c.send(b"220 localhost ESMTP fault server (%s)\r\n" % s.encode())
    while True:
        raw = c.readline()
        line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
        log("C: " + line)
        verb = line.split(" ", 1)[0].upper()
        if verb in ("EHLO", "HELO"):
            if s == "close_after_ehlo":
                return "after EHLO"
            if s == "silent_after_ehlo":
                hang(c)
            if s == "garbage_reply":
                c.send(b"250-localhost\r\nthis is not an SMTP reply\r\n250 OK\r\n")
                continue
            if verb == "HELO":
                c.send(b"250 localhost\r\n")
                continue
            kws = list(EHLO_KEYWORDS)
            if c.ctx is not None and not c.tls:
                kws.insert(4, "STARTTLS")
            c.send(("250-localhost\r\n" + "".join("250-%s\r\n" % k for k in kws[:-1]) +
                    "250 %s\r\n" % kws[-1]).encode())
        elif verb == "STARTTLS":
            if c.tls or c.ctx is None:
                c.send(b"503 5.5.1 TLS already active or not available\r\n")
                continue
            if s == "starttls_refused":
                c.send(b"454 4.7.0 TLS not available due to temporary reason\r\n")
                continue
            if s == "starttls_injection":
                c.send(b"220 go ahead\r\n250 injected\r\n")
            else:
                c.send(b"220 2.0.0 Ready to start TLS\r\n")
            if s == "silent_in_tls":
                silent_tls(c)
            if s == "tls_abort":
                hello = c.sock.recv(65536)
                log("C: <%d bytes of TLS handshake>" % len(hello))
                c.sock.sendall(b"this is not TLS\r\n" * 4)
                return "during TLS handshake"
            c.start_tls()
        elif verb == "AUTH":
            if s == "close_in_auth":
                return "after AUTH"
            if s == "silent_in_auth":
                hang(c)
            parts = line.split()
            mech = parts[1].upper() if len(parts) > 1 else ""
            if mech == "PLAIN":
                if len(parts) < 3:
                    c.send(b"334 \r\n")
                    c.readline()
                    log("C: <auth data>")
                c.send(b"235 2.7.0 Authentication successful\r\n")
            elif mech == "LOGIN":
                if len(parts) < 3:
                    c.send(b"334 VXNlcm5hbWU6\r\n")
                    c.readline()
                c.send(b"334 UGFzc3dvcmQ6\r\n")
                c.readline()
                log("C: <auth data>")
                c.send(b"235 2.7.0 Authentication successful\r\n")
            else:
                c.send(b"504 5.5.4 Unrecognized authentication type\r\n")
        elif verb == "MAIL":
            if s == "close_after_mail":
                return "after MAIL"
            if s == "silent_after_mail":
                hang(c)
            c.send(b"250 2.1.0 OK\r\n")
        elif verb == "RCPT":
            c.send(b"250 2.1.5 OK\r\n")
        elif verb == "DATA":
            if s == "silent_after_data":
                hang(c)
            c.send(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            if s == "stall_mid_body":
                stall(c)
            size = 0
            while True:
                body = c.readline()
                if s == "close_mid_body":
                    log("C: <body: first line, %d bytes>" % len(body))
                    return "in the middle of the body"
                if body == b".\r\n":
                    break
                size += len(body)
            log("C: <body: %d bytes> ." % size)
            if s == "close_after_dot":
                return "after the final dot"
            if s == "silent_after_dot":
                hang(c)
            c.send(b"250 2.0.0 OK queued\r\n")
        elif verb == "BDAT":
            if s == "close_mid_body":
                return "after a BDAT command line"
            if s == "stall_mid_body":
                stall(c)
            if s == "silent_after_data":
                hang(c)
            parts = line.split()
            try:
                n = int(parts[1])
            except (IndexError, ValueError):
                c.send(b"501 5.5.4 Syntax: BDAT <size> [LAST]\r\n")
                continue
            c.readexactly(n)
            last = len(parts) > 2 and parts[2].upper() == "LAST"
            log("C: <chunk: %d bytes>%s" % (n, " LAST" if last else ""))
            if not last:
                c.send(b"250 2.0.0 %d octets received\r\n" % n)
                continue
            if s == "close_after_dot":
                return "after the BDAT LAST chunk"
            if s == "silent_after_dot":
                hang(c)
            c.send(b"250 2.0.0 OK queued\r\n")
        elif verb in ("RSET", "NOOP"):
            c.send(b"250 2.0.0 OK\r\n")
        elif verb == "QUIT":
            c.send(b"221 2.0.0 Bye\r\n")
            return "after QUIT"
        else:
            c.send(b"500 5.5.2 Unknown command\r\n")


def handle(sock, n, ctx):
    sock.settimeout(A.lifetime)
    c = Conn(sock, n, ctx)
    log("#%d open" % n)
    try:
        why = session(c)
    except Closed as e:
        why = str(e)
    except (OSError, ssl.SSLError) as e:
        why = "error: %s" % e
    c.close(why)


def main():
    if A.pid_file:
        with open(A.pid_file, "w") as f:
            f.write("%d\n" % os.getpid())
    fam = socket.AF_INET6 if ":" in A.host else socket.AF_INET
    if A.scenario == "refuse":
        # Find a free port, then close it: connecting to it is refused.
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.bind((A.host, A.port))
        port = s.getsockname()[1]
        s.close()
        print("READY", port, flush=True)
        return
    ctx = None
    if A.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(A.cert, A.key)
    srv = socket.socket(fam, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((A.host, A.port))
    srv.listen(16)
    deadline = time.monotonic() + A.lifetime
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print("READY", srv.getsockname()[1], flush=True)
    n = 0
    while A.max_connections == 0 or n < A.max_connections:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        srv.settimeout(left)
        try:
            sock, _ = srv.accept()
        except socket.timeout:
            break
        n += 1
        threading.Thread(target=handle, args=(sock, n, ctx), daemon=True).start()
    srv.close()
    # let the last connections finish their script (bounded by the lifetime)
    for t in threading.enumerate():
        if t is not threading.current_thread():
            t.join(max(0.0, deadline - time.monotonic()))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
