#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""smtpuv-send and the client examples against real local servers.

  /usr/bin/python3 tests/integration/cli/test_cli.py [-v] [-k PATTERN]

Environment (CTest sets them):
  SMTPUV_SEND       path of the smtpuv-send binary
  SMTPUV_EXAMPLES   directory with the example programs (minimal, sync,
                    oauth2, notify_server); their tests are skipped without it
  SMTPUV_SOURCE_DIR the source tree (for tests/servers/)
  SMTPUV_KEEP_TEST_DIRS=1 keeps the work directory
  CI=true           a skipped test is a failure (CI installs every server);
                    otherwise skips are listed, and exit status 77 (CTest's
                    SKIP_RETURN_CODE) says that nothing ran at all

Servers, all on 127.0.0.1, started here and stopped by their PID:
  - aiosmtpd_server.py: STARTTLS + implicit TLS + AUTH (after TLS) + BDAT,
    one .eml + .json per message: exact bytes and envelope are checked;
  - smtp-sink (tests/servers/smtp_sink.sh): no STARTTLS, DSN (needs root and
    postfix; skipped otherwise);
  - fault_server.py: one process per fault scenario, for the exit statuses.
Every case checks the exit status (sysexits.h) and that error output is one
line naming the problem.
"""
import glob
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("SMTPUV_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", "..", ".."))
SERVERS = os.path.join(SRC, "tests", "servers")
PY = "/usr/bin/python3"  # the one with python3-aiosmtpd
BIN = os.environ.get("SMTPUV_SEND", "")
EXAMPLES = os.environ.get("SMTPUV_EXAMPLES", "")
USER, PASSWORD, TOKEN = "testuser@example.com", "testpass", "test-oauth-token"

WORK = None
PKI = None
AIO = None  # {"proc", "port", "tls_port", "outdir"}


def start_reading(cmd, log, ready_prefix="READY", timeout=15.0):
    """Start a server whose first stdout line is READY ...; return (proc, fields)."""
    with open(log, "wb") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=out, stdin=subprocess.DEVNULL)
    deadline = time.time() + timeout
    line = b""
    while time.time() < deadline:
        line = proc.stdout.readline()
        if line.startswith(ready_prefix.encode()) or not line:
            break
    if not line.startswith(ready_prefix.encode()):
        stop(proc)
        raise RuntimeError("%s did not start: %r (see %s)" % (cmd[1] if len(cmd) > 1 else cmd[0], line, log))
    return proc, line.decode().split()[1:]


def stop(proc):
    if proc is None:
        return
    if proc.stdout:
        proc.stdout.close()
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def setUpModule():
    global WORK, PKI, AIO
    if not BIN or not os.access(BIN, os.X_OK):
        raise unittest.SkipTest("SMTPUV_SEND is not set to the smtpuv-send binary")
    WORK = tempfile.mkdtemp(prefix="smtpuv-cli-")
    os.chmod(WORK, 0o755)
    PKI = os.path.join(WORK, "pki")
    subprocess.run(["sh", os.path.join(SERVERS, "gen_certs.sh"), PKI], check=True,
                   stdout=subprocess.DEVNULL)
    outdir = os.path.join(WORK, "aiosmtpd")
    os.makedirs(outdir)
    proc, (port, tls_port) = start_reading(
        [PY, os.path.join(SERVERS, "aiosmtpd_server.py"), "--port", "0", "--tls-port", "0",
         "--cert", os.path.join(PKI, "server.crt"), "--key", os.path.join(PKI, "server.key"),
         "--outdir", outdir, "--lifetime", "900"], os.path.join(WORK, "aiosmtpd.log"))
    AIO = {"proc": proc, "port": int(port), "tls_port": int(tls_port), "outdir": outdir}


def tearDownModule():
    if AIO:
        stop(AIO["proc"])
    if WORK and not os.environ.get("SMTPUV_KEEP_TEST_DIRS"):
        shutil.rmtree(WORK, ignore_errors=True)
    elif WORK:
        print("kept", WORK, file=sys.stderr)


def run(args, stdin=b"", timeout=30, binary=None):
    t0 = time.time()
    p = subprocess.run([binary or BIN] + args, input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"), time.time() - t0


def crlf(b):
    """What the client puts on the wire: every line ending CRLF."""
    return b.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


class Base(unittest.TestCase):
    def aio_args(self, *extra, port=None, auth=True):
        a = ["--host=127.0.0.1", "--port=%d" % (port or AIO["port"]),
             "--tls-trust-file=" + os.path.join(PKI, "ca.crt"), "--timeout=20"]
        if auth:
            a += ["--user=" + USER, "--passwordeval=echo " + PASSWORD]
        return a + list(extra)

    def messages(self):
        return set(glob.glob(os.path.join(AIO["outdir"], "*.json")))

    def new_messages(self, before, expect, wait=5.0):
        """The .json/.eml pairs that appeared since `before` (sorted)."""
        deadline = time.time() + wait
        while True:
            new = sorted(self.messages() - before)
            if len(new) >= expect or time.time() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(len(new), expect, "new messages on the server")
        out = []
        for j in new:
            with open(j) as f:
                meta = json.load(f)
            with open(j[:-5] + ".eml", "rb") as f:
                meta["eml"] = f.read()
            out.append(meta)
        return out

    def assertOneLine(self, err, *needles):
        lines = [l for l in err.splitlines() if l]
        self.assertGreaterEqual(len(lines), 1, "an error line on stderr")
        for l in lines:
            self.assertTrue(l.startswith("smtpuv-send: "), l)
        for n in needles:
            self.assertIn(n, err)


# ---------------------------------------------------------------------------
class SendAiosmtpd(Base):
    """STARTTLS + AUTH against aiosmtpd: bytes and envelope read back."""

    MSG = (b"From: Alice <alice@example.com>\n"
           b"To: Bob <bob@example.org>, carol@example.org\n"
           b"Cc: dave@example.org\n"
           b"Bcc: eve@example.org,\n  frank@example.org\n"
           b"Subject: smtpuv-send test\n"
           b"\n"
           b"Hello.\n"
           b".leading dot\n"
           b"..two dots\n"
           b".\n"
           b"Bcc: in the body stays\n")

    def test_t_reads_recipients_bcc_not_transmitted(self):
        before = self.messages()
        rc, out, err, _ = run(self.aio_args("-t", "-oi"), self.MSG)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "")
        self.assertEqual(err, "")
        (m,) = self.new_messages(before, 1)
        self.assertEqual(m["mail_from"], "alice@example.com")  # From header by default
        self.assertEqual(m["rcpt_tos"], ["bob@example.org", "carol@example.org",
                                         "dave@example.org", "eve@example.org",
                                         "frank@example.org"])
        self.assertTrue(m["tls"])
        self.assertEqual(m["auth"], USER)
        expect = crlf(self.MSG.replace(b"Bcc: eve@example.org,\n  frank@example.org\n", b""))
        self.assertEqual(m["eml"], expect)
        self.assertNotIn(b"eve@", m["eml"])

    def test_explicit_recipients_and_f(self):
        before = self.messages()
        rc, out, err, _ = run(self.aio_args("-f", "bounces@example.com", "-i", "--",
                                            "x@example.net", "Y Name <y@example.net>, z@example.net"),
                              self.MSG)
        self.assertEqual(rc, 0, err)
        (m,) = self.new_messages(before, 1)
        self.assertEqual(m["mail_from"], "bounces@example.com")
        self.assertEqual(m["rcpt_tos"], ["x@example.net", "y@example.net", "z@example.net"])
        self.assertNotIn(b"\r\nBcc:", m["eml"].split(b"\r\n\r\n")[0])

    def test_t_plus_arguments_deduplicated(self):
        before = self.messages()
        rc, _, err, _ = run(self.aio_args("-t", "bob@example.org", "extra@example.net"), self.MSG)
        self.assertEqual(rc, 0, err)
        (m,) = self.new_messages(before, 1)
        self.assertEqual(m["rcpt_tos"][:2], ["bob@example.org", "extra@example.net"])
        self.assertEqual(m["rcpt_tos"].count("bob@example.org"), 1)
        self.assertEqual(len(m["rcpt_tos"]), 6)

    def test_read_envelope_from_and_null_sender(self):
        msg = b"Sender: s@example.com\nFrom: \"Doe, J\" <jd@example.com>\nTo: r@example.org\n\nx\n"
        before = self.messages()
        rc, _, err, _ = run(self.aio_args("--read-envelope-from", "r@example.org"), msg)
        self.assertEqual(rc, 0, err)
        (m,) = self.new_messages(before, 1)
        self.assertEqual(m["mail_from"], "jd@example.com")
        before = self.messages()
        rc, _, err, _ = run(self.aio_args("-f", "<>", "r@example.org"), msg)
        self.assertEqual(rc, 0, err)
        (m,) = self.new_messages(before, 1)
        self.assertEqual(m["mail_from"], "<>")  # aiosmtpd's way of saying MAIL FROM:<>

    def test_t_groups_comments_and_bcc_without_from(self):
        # -t over groups, comments, quoted display names and folded lines
        msg = (b"To: Team: g1@example.org (first),\n g2@example.org;, undisclosed:;\n"
               b"Cc: \"Doe, C\" <c@example.org>\n\nbody\n")
        before = self.messages()
        rc, _, err, _ = run(self.aio_args("-t", "-f", "s@example.com"), msg)
        self.assertEqual(rc, 0, err)
        (m,) = self.new_messages(before, 1)
        self.assertEqual(m["rcpt_tos"], ["g1@example.org", "g2@example.org", "c@example.org"])
        # no From and no To (the envelope is on the command line): the Bcc
        # field still goes, a "Bcc:" line of the body stays
        msg = b"Subject: no From, no To\nBcc: hidden@example.org\n\nBcc: body stays\n"
        before = self.messages()
        rc, _, err, _ = run(self.aio_args("-f", "s@example.com", "r@example.org"), msg)
        self.assertEqual(rc, 0, err)
        (m,) = self.new_messages(before, 1)
        self.assertEqual(m["rcpt_tos"], ["r@example.org"])
        self.assertEqual(m["eml"], crlf(b"Subject: no From, no To\n\nBcc: body stays\n"))
        # an unterminated display name in To: refused before connecting
        rc, _, err, _ = run(self.aio_args("-t"), b"From: a@example.com\nTo: \"Bob <b@example.org>\n\nx\n")
        self.assertEqual(rc, 65, err)
        self.assertOneLine(err, "cannot read the addresses of the To header")

    def test_keep_bcc_when_asked(self):
        before = self.messages()
        rc, _, err, _ = run(self.aio_args("--remove-bcc-headers=off", "r@example.org"), self.MSG)
        self.assertEqual(rc, 0, err)
        (m,) = self.new_messages(before, 1)
        self.assertEqual(m["eml"], crlf(self.MSG))

    def test_json_output(self):
        before = self.messages()
        rc, out, err, _ = run(self.aio_args("--json", "-t"), self.MSG)
        self.assertEqual(rc, 0, err)
        j = json.loads(out)
        self.assertEqual(j["status"], "sent")
        self.assertIsNone(j["error"])
        self.assertEqual(j["exit"], 0)
        self.assertEqual(j["reply"]["code"], 250)
        self.assertIn("queued as", j["reply"]["text"])
        self.assertEqual([r["address"] for r in j["recipients"]],
                         ["bob@example.org", "carol@example.org", "dave@example.org",
                          "eve@example.org", "frank@example.org"])
        self.assertTrue(all(r["accepted"] and r["code"] == 250 for r in j["recipients"]))
        self.assertIn("TLSv1", j["tls"])
        self.assertEqual(len(self.new_messages(before, 1)), 1)

    def test_some_recipients_refused(self):
        before = self.messages()
        rc, out, err, _ = run(self.aio_args("--json", "ok@example.org", "reject-me@example.org"),
                              self.MSG)
        self.assertEqual(rc, 69, err)
        self.assertIn("recipient reject-me@example.org refused: 550", err)
        self.assertIn("sent to the other 1 recipient", err)
        j = json.loads(out)
        self.assertEqual(j["status"], "sent")
        self.assertEqual(j["error"], "SMTPUV_ENORCPT")
        self.assertEqual(j["exit"], 69)
        self.assertEqual([(r["address"], r["accepted"], r["code"]) for r in j["recipients"]],
                         [("ok@example.org", True, 250), ("reject-me@example.org", False, 550)])
        (m,) = self.new_messages(before, 1)
        self.assertEqual(m["rcpt_tos"], ["ok@example.org"])

    def test_tempfail_recipient(self):
        before = self.messages()
        rc, _, err, _ = run(self.aio_args("ok@example.org", "tempfail1@example.org"), self.MSG)
        self.assertEqual(rc, 75, err)
        self.assertIn("tempfail1@example.org refused: 451", err)
        self.assertEqual(len(self.new_messages(before, 1)), 1)
        before = self.messages()
        rc, _, err, _ = run(self.aio_args("tempfail2@example.org"), self.MSG)
        self.assertEqual(rc, 75, err)
        self.assertIn("nothing was sent", err)
        self.new_messages(before, 0, wait=0.3)

    def test_all_refused(self):
        rc, out, err, _ = run(self.aio_args("--json", "reject1@example.org", "reject2@example.org"),
                              self.MSG)
        self.assertEqual(rc, 69, err)
        j = json.loads(out)
        self.assertEqual(j["status"], "failed")
        self.assertFalse(any(r["accepted"] for r in j["recipients"]))

    def test_final_reply_classes(self):
        for reply, code in ((b"554 5.6.0 content rejected", 69), (b"451 4.3.0 try later", 75)):
            msg = b"From: a@example.com\nX-Test-Reply: " + reply + b"\n\nbody\n"
            rc, out, err, _ = run(self.aio_args("--json", "r@example.org"), msg)
            self.assertEqual(rc, code, err)
            self.assertOneLine(err, reply.decode()[:3])
            j = json.loads(out)
            self.assertEqual(j["status"], "failed")
            self.assertEqual(j["reply"]["code"], int(reply[:3]))

    def test_sender_refused(self):
        rc, _, err, _ = run(self.aio_args("-f", "reject@example.com", "r@example.org"), self.MSG)
        self.assertEqual(rc, 69, err)
        self.assertOneLine(err, "550")

    def test_auth_mechanisms(self):
        for mech in ("plain", "login", "cram-md5", "scram-sha-1", "scram-sha-256"):
            before = self.messages()
            rc, _, err, _ = run(self.aio_args("--auth=" + mech, "r@example.org"), self.MSG)
            self.assertEqual(rc, 0, mech + ": " + err)
            (m,) = self.new_messages(before, 1)
            self.assertEqual(m["auth_mech"], mech.upper())
        for mech in ("xoauth2", "oauthbearer"):
            before = self.messages()
            a = self.aio_args("--auth=" + mech, "r@example.org", auth=False)
            rc, _, err, _ = run(a + ["--user=" + USER, "--passwordeval=printf '%s\\n'" % TOKEN], self.MSG)
            self.assertEqual(rc, 0, mech + ": " + err)
            (m,) = self.new_messages(before, 1)
            self.assertEqual(m["auth_mech"], mech.upper())

    def test_auth_failure(self):
        a = self.aio_args("r@example.org", auth=False) + ["--user=" + USER, "--passwordeval=echo wrong",
                                                         "--auth=plain"]
        before = self.messages()
        rc, out, err, _ = run(a + ["--json"], self.MSG)
        self.assertEqual(rc, 77, err)
        self.assertOneLine(err, "535")
        self.assertNotIn("wrong", err)
        self.assertEqual(json.loads(out)["error"], "SMTPUV_EAUTH")
        self.new_messages(before, 0, wait=0.3)

    def test_passwordeval_failures(self):
        for cmd, needle in (("exit 2", "exit status 2"), ("true", "printed nothing")):
            a = self.aio_args("r@example.org", auth=False) + ["--user=" + USER, "--passwordeval=" + cmd]
            rc, _, err, _ = run(a, self.MSG)
            self.assertEqual(rc, 78, err)
            self.assertOneLine(err, needle)
        rc, _, err, _ = run(self.aio_args("r@example.org", auth=False) + ["--user=" + USER], self.MSG)
        self.assertEqual(rc, 64, err)
        self.assertOneLine(err, "--passwordeval")

    def test_implicit_tls(self):
        before = self.messages()
        rc, out, err, _ = run(self.aio_args("--tls-starttls=off", "--json", "r@example.org",
                                            port=AIO["tls_port"]), self.MSG)
        self.assertEqual(rc, 0, err)
        self.assertIn("TLSv1", json.loads(out)["tls"])
        (m,) = self.new_messages(before, 1)
        self.assertTrue(m["tls"])

    def test_certificate_rejected(self):
        # the system trust store does not know the test CA
        a = [x for x in self.aio_args("r@example.org") if not x.startswith("--tls-trust-file")]
        rc, out, err, _ = run(a + ["--json"], self.MSG)
        self.assertEqual(rc, 78, err)
        self.assertOneLine(err, "--tls-trust-file")
        self.assertEqual(json.loads(out)["error"], "SMTPUV_ECERT")
        # right CA, wrong name
        rc, _, err, _ = run(self.aio_args("--tls-host-override=wrong.example", "r@example.org"), self.MSG)
        self.assertEqual(rc, 78, err)
        # a trust file that does not exist: said before connecting
        rc, _, err, _ = run(self.aio_args("--tls-trust-file=/nonexistent/ca.pem", "r@example.org"), self.MSG)
        self.assertEqual(rc, 78, err)
        self.assertOneLine(err, "/nonexistent/ca.pem")

    def test_certcheck_off(self):
        a = [x for x in self.aio_args("--tls-certcheck=off", "r@example.org")
             if not x.startswith("--tls-trust-file")]
        rc, _, err, _ = run(a, self.MSG)
        self.assertEqual(rc, 0, err)
        self.assertIn("warning: --tls-certcheck=off", err)

    def test_plaintext_auth_refused(self):
        # TLS off with credentials: refused before any credential is written
        rc, _, err, _ = run(self.aio_args("--tls=off", "--debug", "r@example.org"), self.MSG)
        self.assertEqual(rc, 78, err)
        self.assertIn("smtpuv-send: refusing to send the password unencrypted to 127.0.0.1:%d "
                      "(use TLS, or --allow-plaintext-auth to send it anyway)" % AIO["port"], err)
        self.assertNotIn("AUTH ", "\n".join(l for l in err.splitlines() if l.startswith("-->")))
        self.assertNotIn(PASSWORD, err)

    def test_serverinfo(self):
        rc, out, err, _ = run(self.aio_args("-S", auth=False))
        self.assertEqual(rc, 0, err)
        self.assertIn("Greeting:\n    220 localhost", out)
        self.assertIn("subject CN=localhost", out)
        self.assertIn("SIZE 10485760", out)
        self.assertIn("Authentication mechanisms: CRAM-MD5 LOGIN OAUTHBEARER PLAIN", out)
        self.assertIn("Before STARTTLS: ", out)
        rc, out, err, _ = run(self.aio_args("--serverinfo", "--json", auth=False))
        self.assertEqual(rc, 0, err)
        j = json.loads(out)
        self.assertEqual(j["status"], "ok")
        self.assertEqual(j["greeting"]["code"], 220)
        self.assertEqual(j["size"], 10485760)
        self.assertIn("SCRAM-SHA-256", j["auth"])
        self.assertTrue(j["starttls_before"])
        self.assertIn("TLSv1", j["tls"])
        # implicit TLS port
        rc, out, err, _ = run(self.aio_args("-S", "--tls-starttls=off", port=AIO["tls_port"], auth=False))
        self.assertEqual(rc, 0, err)
        self.assertIn("TLS session", out)
        self.assertNotIn("Before STARTTLS", out)

    def test_debug_redacts_auth(self):
        for mech in ("plain", "login"):
            rc, _, err, _ = run(self.aio_args("-d", "--auth=" + mech, "r@example.org"), self.MSG)
            self.assertEqual(rc, 0, err)
            self.assertIn("<-- 220 ", err)
            self.assertIn("--> EHLO ", err)
            self.assertIn("--> STARTTLS", err)
            self.assertIn("<redacted>", err)
            self.assertIn("<-- 235", err)
            self.assertNotIn(PASSWORD, err)
            import base64
            self.assertNotIn(base64.b64encode(PASSWORD.encode()).decode(), err)
            self.assertNotIn(base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD.encode()).decode(), err)

    def test_crlf_in_addresses(self):
        before = self.messages()
        for args in (["a@example.org\r\nRCPT TO:<evil@example.net>"],
                     ["a@example.org\nDATA"],
                     ["-f", "me@example.com\r\nRCPT TO:<evil@example.net>", "a@example.org"],
                     ["bad>@example.org"]):
            rc, out, err, _ = run(self.aio_args("--json", *args), self.MSG)
            self.assertEqual(rc, 65, (args, err))
            self.assertEqual(len(err.splitlines()), 1, err)
            self.assertEqual(json.loads(out)["exit"], 65)
        # a CR/LF smuggled through a header address with -t
        msg = b"From: a@example.com\nTo: \"x\r\" <bad@example.org\n\nbody\n"
        rc, _, err, _ = run(self.aio_args("-t"), msg)
        self.assertEqual(rc, 65, err)
        self.new_messages(before, 0, wait=0.3)

    def test_smtputf8(self):
        before = self.messages()
        rc, _, err, _ = run(self.aio_args("j\u00fcrgen@example.org".encode().decode()),
                            "From: a@example.com\nSubject: caf\u00e9\n\nna\u00efve\n".encode())
        self.assertEqual(rc, 0, err)
        (m,) = self.new_messages(before, 1)
        self.assertTrue(m["smtputf8"])
        self.assertEqual(m["rcpt_tos"], ["j\u00fcrgen@example.org"])
        self.assertIn("na\u00efve".encode(), m["eml"])

    def test_big_message_exact(self):
        body = b"".join(b"line %06d %s\n" % (i, b"." * (i % 90)) for i in range(20000))
        body += b".\n..\n.x\n\rlone CR\rand LF\n"
        msg = b"From: a@example.com\nTo: r@example.org\nSubject: big\n\n" + body
        before = self.messages()
        rc, _, err, _ = run(self.aio_args("-t"), msg)
        self.assertEqual(rc, 0, err)
        (m,) = self.new_messages(before, 1)
        self.assertEqual(m["eml"], crlf(msg))

    def test_empty_message(self):
        before = self.messages()
        rc, _, err, _ = run(self.aio_args("-f", "a@example.com", "r@example.org"), b"")
        self.assertEqual(rc, 0, err)
        (m,) = self.new_messages(before, 1)
        self.assertEqual(m["eml"], b"")


# ---------------------------------------------------------------------------
class Usage(Base):
    def test_usage_errors(self):
        cases = [
            ([], "no server given"),
            (["--host=127.0.0.1"], "no recipients given"),
            (["--host=127.0.0.1", "-t", "--bogus"], "unknown option '--bogus'"),
            (["--host=127.0.0.1", "--port=x", "a@b"], "--port takes"),
            (["--host=127.0.0.1", "--auth=gssapi", "a@b"], "--auth takes"),
            (["--host=127.0.0.1", "--auth", "a@b"], "--auth needs --user"),
            (["--host=127.0.0.1", "-bp"], "-bp is not supported"),
            (["--host=127.0.0.1", "-C", "/etc/msmtprc", "a@b"], "not supported"),
            (["--host"], "needs a value"),
        ]
        for args, needle in cases:
            rc, out, err, _ = run(args, b"From: a@example.com\n\nx\n")
            self.assertEqual(rc, 64, (args, err))
            self.assertEqual(len(err.splitlines()), 1, (args, err))
            self.assertOneLine(err, needle)
        rc, out, err, _ = run(["--json", "--port=x"])
        self.assertEqual(rc, 64, err)
        self.assertEqual(json.loads(out)["exit"], 64)
        # no From header and no -f
        rc, _, err, _ = run(["--host=127.0.0.1", "a@example.org"], b"Subject: x\n\nbody\n")
        self.assertEqual(rc, 64, err)
        self.assertOneLine(err, "no envelope sender")
        rc, _, err, _ = run(["--host=127.0.0.1", "--read-envelope-from", "a@example.org"], b"Subject: x\n\nbody\n")
        self.assertEqual(rc, 65, err)
        # -t with no recipient anywhere
        rc, _, err, _ = run(["--host=127.0.0.1", "-t"], b"From: a@example.com\n\nbody\n")
        self.assertEqual(rc, 64, err)

    def test_help_version(self):
        rc, out, err, _ = run(["--help"])
        self.assertEqual(rc, 0)
        self.assertIn("Exit status (sysexits.h)", out)
        self.assertIn("--tls-starttls", out)
        rc, out, err, _ = run(["--version"])
        self.assertEqual(rc, 0)
        self.assertTrue(out.startswith("smtpuv-send "), out)

    def test_pretend(self):
        rc, out, err, _ = run(["--host=mx.example", "-P", "--user=u", "--passwordeval=echo secret", "a@b"])
        self.assertEqual(rc, 0, err)
        self.assertIn("tls                  = on (STARTTLS required)", out)
        self.assertIn("port                 = 587", out)
        self.assertIn("auth                 = on (strongest mechanism offered)", out)

    def test_unknown_host(self):
        # no bound on the time: it is the resolver's (DNS timeouts and retries)
        rc, out, err, _ = run(["--host=no-such-host.invalid", "--json", "a@example.org"],
                              b"From: a@example.com\n\nx\n", timeout=300)
        self.assertEqual(rc, 68, err)
        self.assertOneLine(err, "no-such-host.invalid")
        self.assertEqual(json.loads(out)["error"], "SMTPUV_ERESOLVE")

    def test_unconvertible_host_name(self):
        # invalid UTF-8 in a host name: libuv refuses it before resolving
        for mode in (["-S"], ["a@example.org"]):
            p = subprocess.run([BIN, b"--host=\xff\xfe.invalid"] + mode, input=b"From: a@example.com\n\nx\n",
                               capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 64, p.stderr)  # refused by the options already
            self.assertEqual(p.stderr, b"smtpuv-send: invalid --host '\xff\xfe.invalid'\n")

    def test_garbage_input_never_crashes(self):
        import random
        rnd = random.Random(5)
        for i in range(30):
            data = bytes(rnd.randrange(256) for _ in range(rnd.randrange(2000)))
            rc, _, err, _ = run(["--host=127.0.0.1", "--port=1", "-t", "--timeout=2"], data)
            self.assertIn(rc, (64, 65, 74), err)  # never a signal (negative) or 0
            self.assertGreaterEqual(len(err.splitlines()), 1)


# ---------------------------------------------------------------------------
class SmtpSink(Base):
    """smtp-sink: no STARTTLS; DSN parameters visible in its dump files."""

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0 or not (shutil.which("smtp-sink") or os.path.exists("/usr/sbin/smtp-sink")):
            raise unittest.SkipTest("smtp-sink needs root and postfix")
        cls.dir = os.path.join(WORK, "sink")
        cls.port = free_port()
        subprocess.run(["bash", os.path.join(SERVERS, "smtp_sink.sh"), "start", cls.dir, str(cls.port)],
                       check=True, stdout=subprocess.DEVNULL, timeout=20)

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["bash", os.path.join(SERVERS, "smtp_sink.sh"), "stop", cls.dir], timeout=20)

    def test_tls_required_not_offered(self):
        rc, out, err, _ = run(["--host=127.0.0.1", "--port=%d" % self.port, "--json", "a@example.org"],
                              b"From: a@example.com\n\nx\n")
        self.assertEqual(rc, 78, err)
        self.assertEqual(err.strip(), "smtpuv-send: TLS required but 127.0.0.1:%d does not offer "
                                      "STARTTLS (use --tls=off to send in plaintext)" % self.port)
        self.assertEqual(json.loads(out)["error"], "SMTPUV_ENOTLS")
        rc, out, err, _ = run(["--host=127.0.0.1", "--port=%d" % self.port, "-S"])
        self.assertEqual(rc, 78, err)
        self.assertIn("Capabilities:", out)
        self.assertIn("DSN", out)

    def test_plaintext_with_dsn(self):
        msgs = os.path.join(self.dir, "msgs")
        before = set(os.listdir(msgs))
        rc, out, err, _ = run(["--host=127.0.0.1", "--port=%d" % self.port, "--tls=off",
                               "-N", "success,failure", "-R", "hdrs", "-f", "s@example.com",
                               "a@example.org", "b@example.org"],
                              b"From: s@example.com\nSubject: dsn\n\nbody\n")
        self.assertEqual(rc, 0, err)
        deadline = time.time() + 5
        while time.time() < deadline and len(set(os.listdir(msgs)) - before) < 1:
            time.sleep(0.05)
        (f,) = set(os.listdir(msgs)) - before
        with open(os.path.join(msgs, f), "rb") as fh:
            dump = fh.read()
        self.assertIn(b"X-Mail-Args: <s@example.com> RET=HDRS", dump)
        self.assertIn(b"X-Rcpt-Args: <a@example.org> NOTIFY=SUCCESS,FAILURE", dump)
        self.assertIn(b"X-Rcpt-Args: <b@example.org> NOTIFY=SUCCESS,FAILURE", dump)

    def test_dsn_unsupported_elsewhere(self):
        # aiosmtpd does not offer DSN: a missing required extension is 69
        rc, _, err, _ = run(self.aio_args("-N", "failure", "r@example.org"),
                            b"From: a@example.com\n\nx\n")
        self.assertEqual(rc, 69, err)
        self.assertOneLine(err)


# ---------------------------------------------------------------------------
class Faults(Base):
    """fault_server.py scenarios -> exit statuses."""

    def fault(self, scenario, *extra, implicit=False, timeout=5):
        log = os.path.join(WORK, "fault-%s.log" % scenario)
        cmd = [PY, os.path.join(SERVERS, "fault_server.py"), "--port", "0", "--scenario", scenario,
               "--pki", PKI, "--lifetime", "60"]
        if implicit:
            cmd.append("--implicit")
        proc, (port,) = start_reading(cmd, log)
        try:
            args = ["--host=127.0.0.1", "--port=" + port, "--tls-trust-file=" + os.path.join(PKI, "ca.crt"),
                    "--timeout=%d" % timeout, "--json", "-f", "a@example.com", "r@example.org"]
            return run(args + list(extra), b"From: a@example.com\nSubject: fault\n\nbody\n", timeout=60)
        finally:
            stop(proc)

    def check(self, scenario, status, error=None, *extra, json_status=None, **kw):
        rc, out, err, took = self.fault(scenario, *extra, **kw)
        self.assertEqual(rc, status, "%s: %s" % (scenario, err))
        if status != 0:
            self.assertOneLine(err)
            self.assertEqual(len(err.splitlines()), 1, err)
        else:
            self.assertEqual(err, "")
        j = json.loads(out)
        if error:
            self.assertEqual(j["error"], error, scenario)
        if json_status:
            self.assertEqual(j["status"], json_status, scenario)
        return took

    def test_normal(self):
        self.check("normal", 0)

    def test_refused(self):
        self.check("refuse", 74, "SMTPUV_ECONNECT")

    def test_greeting_421(self):
        self.check("greeting_421", 75)

    def test_connection_lost_before_the_message(self):
        self.check("close_after_ehlo", 74, "SMTPUV_ECONNLOST")
        self.check("close_in_auth", 74, "SMTPUV_ECONNLOST", "--user=u", "--passwordeval=echo p",
                   "--auth=plain")

    def test_close_after_mail_pipelined(self):
        # MAIL, RCPT and BDAT LAST went out together (PIPELINING): when the
        # server hangs up after reading MAIL the body was already written
        self.check("close_after_mail", 75, json_status="unknown")

    def test_close_after_dot_unknown(self):
        self.check("close_after_dot", 75, json_status="unknown")

    def test_silent_timeouts(self):
        took = self.check("silent_after_ehlo", 75, "SMTPUV_ETIMEDOUT", timeout=1)
        self.assertLess(took, 10)
        self.check("silent_after_dot", 75, json_status="unknown", timeout=1)

    def test_protocol_violations(self):
        self.check("garbage_reply", 76, "SMTPUV_EPROTO")
        self.check("starttls_injection", 76, "SMTPUV_EINJECT")

    def test_tls_faults(self):
        self.check("wrong_host", 78, "SMTPUV_ECERT")
        self.check("untrusted_cert", 78, "SMTPUV_ECERT")
        self.check("starttls_refused", 78)
        self.check("tls_abort", 78)

    def probe(self, scenario, status, error, *extra, implicit=False):
        log = os.path.join(WORK, "probe-%s.log" % scenario)
        cmd = [PY, os.path.join(SERVERS, "fault_server.py"), "--port", "0", "--scenario", scenario,
               "--pki", PKI, "--lifetime", "60"]
        if implicit:
            cmd.append("--implicit")
        proc, (port,) = start_reading(cmd, log)
        try:
            rc, out, err, took = run(["--host=127.0.0.1", "--port=" + port, "--timeout=1", "-S", "--json",
                                      "--tls-trust-file=" + os.path.join(PKI, "ca.crt")] + list(extra))
        finally:
            stop(proc)
        self.assertEqual(rc, status, "%s: %s" % (scenario, err))
        self.assertLess(took, 10)
        j = json.loads(out)
        self.assertEqual(j["error"], error, scenario)
        self.assertEqual(j["exit"], status)
        if status:
            self.assertEqual(len(err.splitlines()), 1, err)
        return j

    def test_serverinfo_faults(self):
        j = self.probe("normal", 0, None)
        self.assertEqual(j["auth"], ["PLAIN", "LOGIN"])
        self.assertIn("TLSv1", j["tls"])
        j = self.probe("normal", 0, None, "--tls-starttls=off", implicit=True)
        self.assertFalse(j["starttls_before"])
        self.probe("refuse", 74, "SMTPUV_ECONNECT")
        self.probe("greeting_421", 75, "SMTPUV_ESHUTDOWN")
        self.probe("close_after_ehlo", 74, "SMTPUV_ECONNLOST")
        self.probe("silent_after_ehlo", 75, "SMTPUV_ETIMEDOUT")
        self.probe("no_greeting", 75, "SMTPUV_ETIMEDOUT")
        self.probe("garbage_reply", 76, "SMTPUV_EPROTO")
        self.probe("starttls_injection", 76, "SMTPUV_EINJECT")
        self.probe("starttls_refused", 78, "SMTPUV_ENOTLS")
        self.probe("tls_abort", 78, "SMTPUV_ETLS")
        self.probe("wrong_host", 78, "SMTPUV_ECERT")
        self.probe("untrusted_cert", 78, "SMTPUV_ECERT")
        j = self.probe("untrusted_cert", 0, None, "--tls-certcheck=off")
        self.assertIn("issuer CN=smtpuv-untrusted-CA", j["tls"])

    def test_implicit_tls_ok(self):
        self.check("normal", 0, None, "--tls-starttls=off", implicit=True)


# ---------------------------------------------------------------------------
def example(name):
    p = os.path.join(EXAMPLES, name)
    if not EXAMPLES or not os.access(p, os.X_OK):
        raise unittest.SkipTest("example %s not built (SMTPUV_EXAMPLES)" % name)
    return p


class Examples(Base):
    def test_minimal(self):
        before = self.messages()
        p = subprocess.run([example("minimal"), "127.0.0.1", str(AIO["port"]), USER, PASSWORD,
                            "me@example.com", "you@example.org", os.path.join(PKI, "ca.crt")],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith(b"sent: 250"), p.stdout)
        (m,) = self.new_messages(before, 1)
        self.assertEqual(m["rcpt_tos"], ["you@example.org"])
        self.assertTrue(m["tls"])
        self.assertEqual(m["auth"], USER)
        with open(os.path.join(SRC, "examples", "minimal.c")) as f:
            self.assertLess(len(f.read().splitlines()), 61)

    def test_sync(self):
        before = self.messages()
        msg = b"From: a@example.com\nTo: b@example.org, reject1@example.org\nBcc: c@example.org\n\nhi\n"
        p = subprocess.run([example("sync"), "127.0.0.1", str(AIO["port"]), os.path.join(PKI, "ca.crt"),
                            USER, PASSWORD], input=msg, capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr)  # one recipient refused
        self.assertIn(b"reject1@example.org", p.stdout)
        self.assertIn(b"refused  550", p.stdout)
        (m,) = self.new_messages(before, 1)
        self.assertEqual(m["rcpt_tos"], ["b@example.org", "c@example.org"])
        self.assertNotIn(b"Bcc", m["eml"])

    def test_oauth2_refresh(self):
        before = self.messages()
        cmd = 'if [ "$1" = refresh ]; then echo %s; else echo expired-token; fi' % TOKEN
        p = subprocess.run([example("oauth2"), "127.0.0.1", str(AIO["port"]), os.path.join(PKI, "ca.crt"),
                            USER, cmd, "me@example.com", "you@example.org"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"token requested (initial)\ntoken requested (refresh)\nsent after 2", p.stdout)
        (m,) = self.new_messages(before, 1)
        self.assertEqual(m["auth_mech"], "XOAUTH2")
        # a token that is never accepted: AUTH fails after one refresh
        p = subprocess.run([example("oauth2"), "127.0.0.1", str(AIO["port"]), os.path.join(PKI, "ca.crt"),
                            USER, "echo bad", "me@example.com", "you@example.org"],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 77, p.stderr)

    def test_notify_server(self):
        log = os.path.join(WORK, "notify.log")
        proc = subprocess.Popen([example("notify_server"), "0", "127.0.0.1", str(AIO["port"]),
                                 os.path.join(PKI, "ca.crt"), USER, PASSWORD, "notify@example.com"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            line = proc.stdout.readline().decode()
            self.assertTrue(line.startswith("listening on 127.0.0.1:"), line)
            port = int(line.rsplit(":", 1)[1])
            before = self.messages()
            results = {}

            def post(i, to, subject="alert"):
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                c.request("POST", "/send?to=%s&subject=%s" % (to, subject), body=b"event %d\n" % i)
                r = c.getresponse()
                results[i] = (r.status, json.loads(r.read()))

            threads = [threading.Thread(target=post, args=(i, "ops%d@example.org" % i)) for i in range(5)]
            threads.append(threading.Thread(target=post, args=(5, "ok@example.org,reject5@example.org")))
            [t.start() for t in threads]
            [t.join(30) for t in threads]
            for i in range(5):
                self.assertEqual(results[i][0], 200, results[i])
                self.assertEqual(results[i][1]["status"], "sent")
            st, body = results[5]
            self.assertEqual(st, 200)
            self.assertEqual([(r["address"], r["accepted"]) for r in body["recipients"]],
                             [("ok@example.org", True), ("reject5@example.org", False)])
            msgs = self.new_messages(before, 6)
            self.assertEqual(sorted(m["rcpt_tos"][0] for m in msgs),
                             sorted(["ops%d@example.org" % i for i in range(5)] + ["ok@example.org"]))
            # composed (smtpuv/compose.h): Date, Message-ID, MIME, the body
            import email.parser, email.policy
            for m in msgs:
                e = email.parser.BytesParser(policy=email.policy.strict).parsebytes(m["eml"])
                self.assertIsNotNone(e["Date"].datetime)
                self.assertTrue(str(e["Message-ID"]).endswith("@example.com>"))
                self.assertEqual(str(e["Subject"]), "alert")
                self.assertRegex(e.get_content(), r"^event \d\r?\n$")
            # header injection through the subject is refused
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("POST", "/send?to=a@example.org&subject=x%0D%0ABcc:%20evil@example.net", body=b"x")
            self.assertEqual(c.getresponse().status, 400)
            # graceful shutdown: a request in flight is still answered
            t = threading.Thread(target=post, args=(9, "late@example.org"))
            t.start()
            queued, deadline = 0, time.time() + 20
            while queued < 7 and time.time() < deadline:  # 6 above + this one
                line = proc.stdout.readline().decode()
                if not line:
                    break
                queued += " queued for " in line
            self.assertEqual(queued, 7)
            proc.send_signal(signal.SIGTERM)
            t.join(30)
            self.assertEqual(results[9][0], 200, results.get(9))
            self.assertEqual(proc.wait(20), 0)
            out = proc.stdout.read().decode()
            self.assertIn("no new requests", out)
            self.assertIn("stopped", out)
        finally:
            stop(proc)


def ci():
    return os.environ.get("CI", "").lower() in ("true", "1")


def main():
    prog = unittest.main(verbosity=2, exit=False)
    r = prog.result
    for test, why in r.skipped:
        print("SKIPPED %s: %s" % (test, why), file=sys.stderr)
    if not r.wasSuccessful():
        sys.exit(1)
    if r.skipped and ci():
        # CI installs every server (scripts/install-deps.sh, root): a skip
        # there means something is broken, not that a server is missing.
        print("CI=true: %d skipped test(s) count as failures" % len(r.skipped), file=sys.stderr)
        sys.exit(1)
    if r.skipped and r.testsRun <= len(r.skipped):
        sys.exit(77)  # nothing ran: CTest reports the test as skipped
    sys.exit(0)


if __name__ == "__main__":
    main()
