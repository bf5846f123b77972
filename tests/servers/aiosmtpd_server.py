#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Capturing ESMTP server for smtpuv's integration tests (Debian's python3-aiosmtpd 1.4).

Run it with /usr/bin/python3: a pyenv/venv python3 first on PATH cannot import aiosmtpd.

  /usr/bin/python3 aiosmtpd_server.py --port 0 --tls-port 0 --cert C --key K --outdir DIR

Listeners (127.0.0.1 only; port 0 picks a free port):
  --port      ESMTP with STARTTLS (when --cert/--key are given); AUTH only after TLS
              unless --auth-without-tls
  --tls-port  the same with TLS from the first byte (port-465 style)
Advertised: PIPELINING, CHUNKING (BDAT, implemented here), SIZE, 8BITMIME, SMTPUTF8,
STARTTLS, AUTH CRAM-MD5 LOGIN OAUTHBEARER PLAIN SCRAM-SHA-1 SCRAM-SHA-256 XOAUTH2.
One user (--user/--password, default testuser@example.com / testpass) and one bearer
token (--token, default test-oauth-token).

Readiness: prints "READY <port> <tls-port>" (0 when there is no TLS listener) on stdout
once bound; --pid-file gets the PID. Stops on SIGTERM/SIGINT or after --lifetime seconds.

Per accepted message, in --outdir:
  NNNNNN.eml   the exact payload (dot-unstuffed for DATA, CRLFs kept; BDAT bytes as sent)
  NNNNNN.json  written last (atomic rename, so poll for it): via (DATA/BDAT), mail_from,
               mail_options, rcpt_tos, rcpt_options, smtputf8, size, helo, auth (user),
               auth_mech, tls, peer, reply (the reply given to the end of data)

Scripted outcomes (for per-recipient and failure tests):
  RCPT TO:<reject...@...>    550 5.1.1 recipient rejected
  RCPT TO:<tempfail...@...>  451 4.2.0 try again later
  MAIL FROM:<reject...@...>  550 5.7.1 sender rejected
  a message with a header line "X-Test-Reply: NNN text" gets that reply at its end
  --scram-fault bad-signature|bad-nonce   misbehave in SCRAM (client must detect it)
  --hide KW[,KW]             drop EHLO keywords (e.g. --hide PIPELINING,SMTPUTF8)

LMTP (RFC 2033), --lmtp: every listener speaks LMTP (aiosmtpd's LMTP class: LHLO,
EHLO and HELO refused with 500) and answers the end of data (DATA's "." or BDAT
LAST) once per accepted recipient, in RCPT order:
  <failtemp...@...>  452 4.2.2 <addr> mailbox full, try again later
  <fail...@...>      550 5.2.1 <addr> mailbox disabled
  others             250 2.0.0 <addr> delivered (or the X-Test-Reply reply)
  --unix PATH        also listen on a Unix socket (what local delivery agents use)
  The .json gains "lmtp": [[recipient, reply], ...]; the message is stored once.
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import ssl
import sys
import time

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, MISSING


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls-port", type=int)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--outdir", required=True)
    p.add_argument("--user", default="testuser@example.com")
    p.add_argument("--password", default="testpass")
    p.add_argument("--token", default="test-oauth-token", help="XOAUTH2/OAUTHBEARER token")
    p.add_argument("--size", type=int, default=10 * 1024 * 1024)
    p.add_argument("--max-line", type=int, default=1001, help="longest DATA line (RFC: 1001)")
    p.add_argument("--hostname", default="localhost")
    p.add_argument("--auth-without-tls", action="store_true")
    p.add_argument("--auth-required", action="store_true", help="refuse MAIL before AUTH")
    p.add_argument("--no-chunking", action="store_true")
    p.add_argument("--hide", default="", help="EHLO keywords to drop, comma separated")
    p.add_argument("--scram-iterations", type=int, default=4096)
    p.add_argument("--scram-fault", choices=["none", "bad-signature", "bad-nonce"], default="none")
    p.add_argument("--pid-file")
    p.add_argument("--lifetime", type=float, default=120.0, help="exit after this many seconds")
    p.add_argument("--lmtp", action="store_true", help="speak LMTP (RFC 2033) instead of ESMTP")
    p.add_argument("--unix", help="also listen on this Unix socket path")
    a = p.parse_args()
    if a.host not in ("127.0.0.1", "::1", "localhost"):
        p.error("loopback only")
    if a.tls_port is not None and not (a.cert and a.key):
        p.error("--tls-port needs --cert and --key")
    return a


A = parse()
os.makedirs(A.outdir, exist_ok=True)
HIDDEN = {k.strip().upper() for k in A.hide.split(",") if k.strip()}
_counter = 0


def _login_name(d):
    if isinstance(d, LoginPassword):
        d = d.login
    return d.decode("utf-8", "replace") if isinstance(d, (bytes, bytearray)) else d


def _tls_resumed(server):
    """The server's own view: did this TLS session resume an earlier one?"""
    t = getattr(server, "transport", None)
    o = t.get_extra_info("ssl_object") if t is not None else None
    return bool(o.session_reused) if o is not None else None


def save(server, session, envelope, via, reply, lmtp=None):
    base = os.path.join(A.outdir, "%06d" % _counter)
    with open(base + ".eml", "wb") as f:
        f.write(envelope.original_content)
    meta = {
        "via": via,
        "mail_from": envelope.mail_from,
        "mail_options": envelope.mail_options,
        "rcpt_tos": envelope.rcpt_tos,
        "rcpt_options": envelope.rcpt_options,
        "smtputf8": envelope.smtp_utf8,
        "size": len(envelope.original_content),
        "helo": session.host_name,
        "auth": _login_name(session.auth_data),
        "auth_mech": getattr(session, "auth_mech", None),
        "tls": bool(server._is_tls or server._tls_protocol),
        "tls_resumed": _tls_resumed(server),
        "peer": list(session.peer) if session.peer else None,
        "reply": reply,
    }
    if lmtp is not None:
        meta["lmtp"] = lmtp
    with open(base + ".json.tmp", "w") as f:
        json.dump(meta, f, indent=1, default=str)
    os.rename(base + ".json.tmp", base + ".json")


def authenticator(server, session, envelope, mechanism, auth_data):
    """Checks PLAIN and LOGIN (aiosmtpd's built-in mechanisms)."""
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login == A.user.encode() and auth_data.password == A.password.encode())
    if ok:
        session.auth_mech = mechanism
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def _success(server, mech, user):
    server.session.auth_mech = mech
    return AuthResult(success=True, handled=False, auth_data=LoginPassword(user.encode(), b""))


def _initial(args):
    """The initial response of AUTH MECH [ir]: bytes, b"" for "=", None when absent,
    or False when it is not base64."""
    if len(args) < 2:
        return None
    if args[1] == "=":
        return b""
    try:
        return base64.b64decode(args[1], validate=True)
    except Exception:
        return False


# ---------------------------------------------------------------- SCRAM (RFC 5802/7677)

def _scram_unescape(s):
    if re.search(r"=(?!2C|3D)", s):
        raise ValueError("bad escape in saslname")
    return s.replace("=2C", ",").replace("=3D", "=")


def _scram_attrs(msg):
    out = {}
    for part in msg.split(","):
        if len(part) < 2 or part[1] != "=":
            raise ValueError("bad attribute %r" % part)
        out.setdefault(part[0], part[2:])
    return out


async def scram(server, args, hname):
    """Server side of SCRAM-SHA-1 / SCRAM-SHA-256 (no channel binding, no SASLprep:
    the test credentials are ASCII). Failures answer 535 directly (like Dovecot)."""
    H = getattr(hashlib, hname)
    mech = "SCRAM-SHA-256" if hname == "sha256" else "SCRAM-SHA-1"
    first = _initial(args)
    if first is False:
        await server.push("501 5.5.2 Can't decode base64")
        return AuthResult(success=False, handled=True)
    if first is None:
        first = await server.challenge_auth("")
        if first is MISSING:          # "*" or bad base64: challenge_auth already replied 501
            return AuthResult(success=False, handled=True)
    try:
        cfm = first.decode("utf-8")
        # gs2-header: cbind-flag "," [authzid] ","
        flag, authz, bare = cfm.split(",", 2)
        if flag.startswith("p="):
            await server.push("535 5.7.8 channel binding not supported")
            return AuthResult(success=False, handled=True)
        if flag not in ("n", "y") or (authz and not authz.startswith("a=")):
            raise ValueError("bad gs2 header")
        gs2 = flag + "," + authz + ","
        if not bare.startswith("n=") or ",r=" not in bare:
            raise ValueError("bad client-first-message-bare")
        attrs = _scram_attrs(bare)
        user = _scram_unescape(attrs["n"])
        cnonce = attrs["r"]
        if not cnonce or "," in cnonce:
            raise ValueError("bad nonce")
        if "m" in attrs:
            raise ValueError("mandatory extension not supported")
    except (ValueError, KeyError, UnicodeDecodeError) as e:
        await server.push("501 5.5.2 malformed SCRAM client-first-message: %s" % e)
        return AuthResult(success=False, handled=True)

    salt = secrets.token_bytes(16)
    snonce = base64.b64encode(secrets.token_bytes(18)).decode()
    nonce = cnonce + snonce
    if A.scram_fault == "bad-nonce":
        nonce = snonce + cnonce                     # does not start with the client's nonce
    sfm = "r=%s,s=%s,i=%d" % (nonce, base64.b64encode(salt).decode(), A.scram_iterations)
    final = await server.challenge_auth(sfm)
    if final is MISSING:
        return AuthResult(success=False, handled=True)
    try:
        cfinal = final.decode("utf-8")
        without_proof, _, proof_b64 = cfinal.rpartition(",p=")
        if not without_proof:
            raise ValueError("no proof")
        fattrs = _scram_attrs(without_proof)
        if base64.b64decode(fattrs["c"], validate=True) != gs2.encode():
            raise ValueError("channel-binding data does not match the gs2 header")
        if fattrs["r"] != nonce:
            raise ValueError("nonce mismatch")
        proof = base64.b64decode(proof_b64, validate=True)
    except (ValueError, KeyError, UnicodeDecodeError) as e:
        await server.push("501 5.5.2 malformed SCRAM client-final-message: %s" % e)
        return AuthResult(success=False, handled=True)

    salted = hashlib.pbkdf2_hmac(hname, A.password.encode(), salt, A.scram_iterations)
    client_key = hmac.new(salted, b"Client Key", H).digest()
    stored_key = H(client_key).digest()
    auth_message = ("%s,%s,%s" % (bare, sfm, without_proof)).encode()
    client_sig = hmac.new(stored_key, auth_message, H).digest()
    if len(proof) != len(client_sig):
        await server.push("535 5.7.8 Authentication credentials invalid")
        return AuthResult(success=False, handled=True)
    recovered = bytes(x ^ y for x, y in zip(proof, client_sig))
    if user != A.user or not hmac.compare_digest(H(recovered).digest(), stored_key):
        await server.push("535 5.7.8 Authentication credentials invalid")
        return AuthResult(success=False, handled=True)
    server_key = hmac.new(salted, b"Server Key", H).digest()
    server_sig = hmac.new(server_key, auth_message, H).digest()
    if A.scram_fault == "bad-signature":
        server_sig = bytes([server_sig[0] ^ 1]) + server_sig[1:]
    # RFC 4954: the server-final-message goes in a 334; the client answers with an
    # empty line (or "*" when the signature is wrong), then 235.
    ack = await server.challenge_auth("v=" + base64.b64encode(server_sig).decode())
    if ack is MISSING:
        return AuthResult(success=False, handled=True)
    if ack != b"":
        await server.push("501 5.5.2 expected an empty response after server-final-message")
        return AuthResult(success=False, handled=True)
    return _success(server, mech, user)


class Handler:
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        extra = ["250-PIPELINING"] + ([] if A.no_chunking else ["250-CHUNKING"])
        out = responses[:1] + extra + responses[1:]
        if HIDDEN:
            out = [r for r in out if r[4:].split(" ")[0].upper() not in HIDDEN]
        return out

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if address.lower().startswith("reject"):
            return "550 5.7.1 sender rejected"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        low = address.lower()
        if low.startswith("reject"):
            return "550 5.1.1 recipient rejected"
        if low.startswith("tempfail"):
            return "451 4.2.0 try again later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        global _counter
        _counter += 1
        m = re.search(rb"^X-Test-Reply: ([2-5][0-9][0-9] [^\r\n]*)\r?$",
                      envelope.original_content.split(b"\r\n\r\n", 1)[0], re.M)
        reply = m.group(1).decode("ascii", "replace") if m else "250 2.0.0 OK queued as %06d" % _counter
        if A.lmtp:
            return await self.lmtp_replies(server, session, envelope, m)
        save(server, session, envelope, getattr(envelope, "_via", "DATA"), reply)
        return reply

    async def lmtp_replies(self, server, session, envelope, m):
        """One reply per accepted recipient: all but the last pushed here, the
        last returned (aiosmtpd pushes it)."""
        out = []
        for rcpt in envelope.rcpt_tos:
            low = rcpt.lower()
            if low.startswith("failtemp"):
                r = "452 4.2.2 <%s> mailbox full, try again later" % rcpt
            elif low.startswith("fail"):
                r = "550 5.2.1 <%s> mailbox disabled" % rcpt
            elif m:
                r = m.group(1).decode("ascii", "replace")
            else:
                r = "250 2.0.0 <%s> delivered as %06d" % (rcpt, _counter)
            out.append([rcpt, r])
        save(server, session, envelope, getattr(envelope, "_via", "DATA"),
             out[-1][1], lmtp=out)
        for _, r in out[:-1]:
            await server.push(r)
        return out[-1][1]

    # Extra AUTH mechanisms: a method auth_X__Y is mechanism "X-Y".
    async def auth_CRAM__MD5(self, server, args):
        if len(args) != 1:
            await server.push("501 5.5.2 CRAM-MD5 takes no initial response")
            return AuthResult(success=False, handled=True)
        chal = "<%s.%d@%s>" % (secrets.token_hex(8), int(time.time()), A.hostname)
        resp = await server.challenge_auth(chal)
        if resp is MISSING:
            return AuthResult(success=False, handled=True)
        try:
            user, digest = resp.decode().rsplit(" ", 1)
        except ValueError:
            return AuthResult(success=False, handled=False)
        want = hmac.new(A.password.encode(), chal.encode(), hashlib.md5).hexdigest()
        if user == A.user and hmac.compare_digest(digest.lower(), want):
            return _success(server, "CRAM-MD5", user)
        return AuthResult(success=False, handled=False)

    async def auth_XOAUTH2(self, server, args):
        raw = _initial(args)
        if raw is False:
            await server.push("501 5.5.2 Can't decode base64")
            return AuthResult(success=False, handled=True)
        if raw is None:
            raw = await server.challenge_auth("")
            if raw is MISSING:
                return AuthResult(success=False, handled=True)
        fields = dict(kv.split("=", 1) for kv in raw.decode("utf-8", "replace").split("\x01")
                      if "=" in kv)
        user, auth = fields.get("user", ""), fields.get("auth", "")
        if user == A.user and auth == "Bearer " + A.token:
            return _success(server, "XOAUTH2", user)
        # Gmail's behaviour: 334 <base64 JSON>, the client answers an empty line, then 535.
        err = json.dumps({"status": "401", "schemes": "bearer",
                          "scope": "https://mail.google.com/"})
        await server.challenge_auth(err)
        return AuthResult(success=False, handled=False)

    async def auth_OAUTHBEARER(self, server, args):
        raw = _initial(args)
        if raw is False:
            await server.push("501 5.5.2 Can't decode base64")
            return AuthResult(success=False, handled=True)
        if raw is None:
            raw = await server.challenge_auth("")
            if raw is MISSING:
                return AuthResult(success=False, handled=True)
        # RFC 7628: gs2-header "n,a=user," then kvpairs separated by ^A, ending ^A^A
        text = raw.decode("utf-8", "replace")
        gs2, _, rest = text.partition("\x01")
        user = ""
        for part in gs2.split(",")[1:]:
            if part.startswith("a="):
                try:
                    user = _scram_unescape(part[2:])
                except ValueError:
                    user = None
        kv = dict(x.split("=", 1) for x in rest.split("\x01") if "=" in x)
        if user == A.user and kv.get("auth") == "Bearer " + A.token:
            return _success(server, "OAUTHBEARER", user)
        err = json.dumps({"status": "invalid_token", "scope": "email"})
        await server.challenge_auth(err)      # the client answers ^A, then 535
        return AuthResult(success=False, handled=False)

    async def auth_SCRAM__SHA__256(self, server, args):
        return await scram(server, args, "sha256")

    async def auth_SCRAM__SHA__1(self, server, args):
        return await scram(server, args, "sha1")


class TestSMTP(SMTP):
    line_length_limit = A.max_line

    def __init__(self, *a, is_tls=False, **kw):
        super().__init__(*a, **kw)
        self._is_tls = is_tls

    async def smtp_BDAT(self, arg):
        parts = (arg or "").split()
        if not parts or not parts[0].isdigit() or len(parts) > 2 or \
                (len(parts) == 2 and parts[1].upper() != "LAST"):
            await self.push("501 5.5.4 Syntax: BDAT <size> [LAST]")
            return
        n, last = int(parts[0]), len(parts) == 2
        # RFC 3030: the chunk follows the command; consume it whatever the outcome.
        chunk = await self._reader.readexactly(n) if n else b""
        if A.no_chunking:
            await self.push("500 5.5.1 BDAT not supported")
            return
        if await self.check_helo_needed() or await self.check_auth_needed("BDAT"):
            return
        env = self.envelope
        if not env.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        buf = getattr(env, "_bdat", None)
        if buf is None:
            buf = env._bdat = bytearray()
        buf += chunk
        if self.data_size_limit and len(buf) > self.data_size_limit:
            self._set_post_data_state()
            await self.push("552 5.3.4 Error: message too large")
            return
        if not last:
            await self.push("250 2.0.0 %d octets received" % n)
            return
        env.original_content = bytes(buf)
        env.content = env.original_content
        env._via = "BDAT"
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)


class TestLMTP(LMTP, TestSMTP):
    """LMTP on top of TestSMTP (LHLO; EHLO/HELO refused; BDAT kept)."""


def make_factory(tls_ctx, implicit):
    def factory():
        kw = dict(hostname=A.hostname, data_size_limit=A.size, enable_SMTPUTF8=True,
                  decode_data=False, authenticator=authenticator,
                  auth_required=A.auth_required,
                  auth_require_tls=not (A.auth_without_tls or implicit),
                  is_tls=implicit)
        if tls_ctx is not None and not implicit:
            kw["tls_context"] = tls_ctx      # enables STARTTLS
        return (TestLMTP if A.lmtp else TestSMTP)(Handler(), **kw)
    return factory


async def main():
    loop = asyncio.get_running_loop()
    ctx = None
    if A.cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(A.cert, A.key)
    plain = await loop.create_server(make_factory(ctx, False), A.host, A.port)
    servers = [plain]
    tls_port = 0
    if A.tls_port is not None:
        tls = await loop.create_server(make_factory(ctx, True), A.host, A.tls_port, ssl=ctx)
        servers.append(tls)
        tls_port = tls.sockets[0].getsockname()[1]
    if A.unix:
        if os.path.exists(A.unix):
            os.unlink(A.unix)
        servers.append(await loop.create_unix_server(make_factory(ctx, False), A.unix))
    stop = asyncio.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    loop.call_later(A.lifetime, stop.set)
    if A.pid_file:
        with open(A.pid_file, "w") as f:
            f.write("%d\n" % os.getpid())
    print("READY", plain.sockets[0].getsockname()[1], tls_port, flush=True)
    await stop.wait()
    for s in servers:
        s.close()


if __name__ == "__main__":
    asyncio.run(main())
