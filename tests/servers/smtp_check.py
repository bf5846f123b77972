#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A small independent SMTP client (stdlib only) to check the test servers: STARTTLS or
implicit TLS with verification, AUTH PLAIN / LOGIN / CRAM-MD5 / XOAUTH2 / OAUTHBEARER /
SCRAM-SHA-1 / SCRAM-SHA-256 (client side written from RFC 5802/7677 and checked against
their test vectors with --vectors), and one message by DATA or BDAT.

  smtp_check.py --port P [--starttls | --implicit] [--ca CA] [--auth MECH]
                [--user U] [--password P] [--token T] [--via DATA|BDAT|none]
                [--from A] [--to B ...] [--body-file F] [--expect-auth CODE]
                [--expect-end CODE] [--expect-scram-error]
  smtp_check.py --vectors        check the SCRAM client against the RFC test vectors

Prints the dialogue ("C: ..." / "S: ...", AUTH payloads not shown) and exits 0 when every
expectation held, 1 otherwise.
"""
import argparse
import base64
import hashlib
import hmac
import secrets
import socket
import ssl
import sys

DEFAULT_BODY = (b"From: <sender@example.com>\r\nTo: <rcpt@example.com>\r\n"
                b"Subject: smtp_check\r\n\r\n.leading dot\r\n.\r\n..two\r\nend\r\n")


class SMTPError(Exception):
    pass


class ScramError(Exception):
    pass


def scram_escape(name):
    return name.replace("=", "=3D").replace(",", "=2C")


class ScramClient:
    """RFC 5802 client, no channel binding ("n,,")."""

    def __init__(self, hname, user, password, cnonce=None):
        self.hname = hname
        self.H = getattr(hashlib, hname)
        self.password = password.encode()
        self.cnonce = cnonce or base64.b64encode(secrets.token_bytes(18)).decode()
        self.gs2 = "n,,"
        self.bare = "n=%s,r=%s" % (scram_escape(user), self.cnonce)

    def first(self):
        return self.gs2 + self.bare

    def final(self, server_first):
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        nonce, salt, iters = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
        if not nonce.startswith(self.cnonce) or len(nonce) == len(self.cnonce):
            raise ScramError("server nonce does not extend the client nonce")
        if iters < 1:
            raise ScramError("bad iteration count")
        salted = hashlib.pbkdf2_hmac(self.hname, self.password, salt, iters)
        client_key = hmac.new(salted, b"Client Key", self.H).digest()
        stored_key = self.H(client_key).digest()
        without_proof = "c=%s,r=%s" % (base64.b64encode(self.gs2.encode()).decode(), nonce)
        auth_message = ("%s,%s,%s" % (self.bare, server_first, without_proof)).encode()
        sig = hmac.new(stored_key, auth_message, self.H).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        server_key = hmac.new(salted, b"Server Key", self.H).digest()
        self.expected_v = base64.b64encode(hmac.new(server_key, auth_message, self.H).digest()).decode()
        return without_proof + ",p=" + base64.b64encode(proof).decode()

    def verify(self, server_final):
        if server_final.startswith("e="):
            raise ScramError("server error: " + server_final[2:])
        if not server_final.startswith("v=") or \
                not hmac.compare_digest(server_final[2:], self.expected_v):
            raise ScramError("server signature mismatch")


def vectors():
    """RFC 5802 section 5 (SHA-1) and RFC 7677 section 3 (SHA-256)."""
    cases = [
        ("sha1", "fyko+d2lbbFgONRv9qkxdawL",
         "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
         "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
         "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="),
        ("sha256", "rOprNGfwEbeRWgbNEkqO",
         "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
         "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
         "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
         "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
    ]
    ok = True
    for hname, cnonce, sfirst, want_final, want_v in cases:
        c = ScramClient(hname, "user", "pencil", cnonce)
        got = c.final(sfirst)
        good = c.first() == "n,,n=user,r=" + cnonce and got == want_final
        try:
            c.verify(want_v)
        except ScramError:
            good = False
        print("SCRAM-%s RFC vector: %s" % (hname.upper(), "ok" if good else "MISMATCH"))
        ok &= good
    return ok


class Client:
    def __init__(self, port, host="127.0.0.1", implicit=False, ctx=None, timeout=10):
        self.ctx = ctx
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if implicit:
            self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""

    def _line(self):
        while b"\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise SMTPError("connection closed by the server")
            self.buf += d
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self, quiet=False):
        lines = []
        while True:
            line = self._line()
            if not quiet:
                print("S: " + line)
            if len(line) < 3 or not line[:3].isdigit():
                raise SMTPError("malformed reply line %r" % line)
            lines.append(line[4:])
            if line[3:4] != "-":
                return int(line[:3]), lines

    def send(self, data, show=None):
        if show is not None:
            print("C: " + show)
        self.sock.sendall(data)

    def cmd(self, line, show=None):
        self.send(line.encode() + b"\r\n", line if show is None else show)
        return self.reply()

    def ehlo(self):
        code, lines = self.cmd("EHLO client.test")
        if code != 250:
            raise SMTPError("EHLO failed")
        return {l.split(" ")[0].upper(): l for l in lines[1:]}

    def starttls(self):
        code, _ = self.cmd("STARTTLS")
        if code != 220:
            raise SMTPError("STARTTLS refused")
        if self.buf:
            raise SMTPError("data after STARTTLS 220 (injection)")
        self.sock = self.ctx.wrap_socket(self.sock, server_hostname="localhost")
        print("   TLS %s %s" % (self.sock.version(), self.sock.cipher()[0]))

    def auth(self, mech, user, password, token):
        b64 = lambda s: base64.b64encode(s if isinstance(s, bytes) else s.encode()).decode()
        unb64 = lambda s: base64.b64decode(s).decode("utf-8", "replace")
        hidden = "<credentials>"
        if mech == "PLAIN":
            return self.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (user, password)), "AUTH PLAIN " + hidden)
        if mech == "LOGIN":
            code, _ = self.cmd("AUTH LOGIN")
            if code != 334:
                return code, []
            code, _ = self.cmd(b64(user), hidden)
            if code != 334:
                return code, []
            return self.cmd(b64(password), hidden)
        if mech == "CRAM-MD5":
            code, lines = self.cmd("AUTH CRAM-MD5")
            if code != 334:
                return code, lines
            digest = hmac.new(password.encode(), base64.b64decode(lines[0]), hashlib.md5).hexdigest()
            return self.cmd(b64("%s %s" % (user, digest)), hidden)
        if mech in ("XOAUTH2", "OAUTHBEARER"):
            if mech == "XOAUTH2":
                ir = "user=%s\x01auth=Bearer %s\x01\x01" % (user, token)
            else:
                ir = "n,a=%s,\x01auth=Bearer %s\x01\x01" % (scram_escape(user), token)
            code, lines = self.cmd("AUTH %s %s" % (mech, b64(ir)), "AUTH %s %s" % (mech, hidden))
            if code == 334:           # error details; finish the exchange
                print("   (error challenge: %s)" % unb64(lines[0]))
                code, lines = self.cmd("" if mech == "XOAUTH2" else b64("\x01"), "<end>")
            return code, lines
        if mech in ("SCRAM-SHA-1", "SCRAM-SHA-256"):
            sc = ScramClient("sha1" if mech == "SCRAM-SHA-1" else "sha256", user, password)
            code, lines = self.cmd("AUTH %s %s" % (mech, b64(sc.first())),
                                   "AUTH %s <client-first>" % mech)
            if code != 334:
                return code, lines
            try:
                final = sc.final(unb64(lines[0]))
            except ScramError:
                self.cmd("*")
                raise
            code, lines = self.cmd(b64(final), "<client-final>")
            if code != 334:
                return code, lines
            try:
                sc.verify(unb64(lines[0]))
            except ScramError:
                self.cmd("*")
                raise
            print("   server signature verified")
            return self.cmd("", "<empty>")
        raise SystemExit("unknown mechanism " + mech)

    def mail(self, frm, tos, body, via, expect_end):
        ok = True
        code, _ = self.cmd("MAIL FROM:<%s>" % frm)
        ok &= code == 250
        accepted = 0
        for t in tos:
            code, _ = self.cmd("RCPT TO:<%s>" % t)
            accepted += code == 250
        if not accepted:
            self.cmd("RSET")
            return ok and expect_end is None
        if via == "DATA":
            code, _ = self.cmd("DATA")
            if code != 354:
                return False
            stuffed = body.replace(b"\r\n.", b"\r\n..")
            if stuffed.startswith(b"."):
                stuffed = b"." + stuffed
            self.send(stuffed + b".\r\n", "<body %d bytes> ." % len(body))
            code, _ = self.reply()
        else:
            half = len(body) // 2
            self.send(b"BDAT %d\r\n" % half + body[:half], "BDAT %d" % half)
            code, _ = self.reply()
            ok &= code == 250
            rest = body[half:]
            self.send(b"BDAT %d LAST\r\n" % len(rest) + rest, "BDAT %d LAST" % len(rest))
            code, _ = self.reply()
        return ok and code == (expect_end or 250)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--vectors", action="store_true")
    p.add_argument("--port", type=int)
    p.add_argument("--starttls", action="store_true")
    p.add_argument("--implicit", action="store_true")
    p.add_argument("--ca")
    p.add_argument("--auth")
    p.add_argument("--user", default="testuser@example.com")
    p.add_argument("--password", default="testpass")
    p.add_argument("--token", default="test-oauth-token")
    p.add_argument("--via", default="DATA", choices=["DATA", "BDAT", "none"])
    p.add_argument("--from", dest="frm", default="sender@example.com")
    p.add_argument("--to", action="append")
    p.add_argument("--body-file")
    p.add_argument("--expect-auth", type=int, default=235)
    p.add_argument("--expect-end", type=int)
    p.add_argument("--expect-scram-error", action="store_true")
    a = p.parse_args()
    if a.vectors:
        return 0 if vectors() else 1
    if not a.port:
        p.error("--port is required")
    ctx = ssl.create_default_context(cafile=a.ca) if a.ca else ssl.create_default_context()
    c = Client(a.port, implicit=a.implicit, ctx=ctx)
    code, _ = c.reply()
    if code != 220:
        return 1
    exts = c.ehlo()
    if a.starttls:
        c.starttls()
        exts = c.ehlo()
    ok = True
    if a.auth:
        try:
            code, _ = c.auth(a.auth, a.user, a.password, a.token)
        except ScramError as e:
            print("   SCRAM error detected: %s" % e)
            return 0 if a.expect_scram_error else 1
        if a.expect_scram_error:
            print("   expected a SCRAM error, got %d" % code)
            return 1
        if code != a.expect_auth:
            print("   AUTH %s: expected %d, got %d" % (a.auth, a.expect_auth, code))
            ok = False
    if a.via != "none" and ok:
        if a.via == "BDAT" and "CHUNKING" not in exts:
            print("   server does not offer CHUNKING")
            return 1
        body = open(a.body_file, "rb").read() if a.body_file else DEFAULT_BODY
        ok &= c.mail(a.frm, a.to or ["rcpt@example.com"], body, a.via, a.expect_end)
    try:
        c.cmd("QUIT")
    except (SMTPError, OSError):
        pass
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
