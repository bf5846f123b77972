#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Property test of the composer (smtpuv/compose.h).

Runs tests/property/compose_gen.c's program for thousands of random
messages and parses each back with Python's email package
(policy=email.policy.strict: any defect raises), then compares field by
field and byte for byte with the generator's inputs: decoded headers,
display names and addresses, Bcc absent, the envelope, decoded text, html
and attachment contents, file names, content types and ids, the MIME tree.
Also checks well-formedness: CRLF line ends only, no line over 998 octets,
7-bit headers.

usage: check_compose.py COMPOSE_GEN [SEED [COUNT]]
"""
import email
import email.policy
import email.utils
import subprocess
import sys
from email.parser import BytesParser

FIELD = {"from": "From", "sender": "Sender", "reply": "Reply-To", "to": "To", "cc": "Cc"}


def fail(n, what, got=None, want=None):
    msg = "message %d: %s" % (n, what)
    if got is not None or want is not None:
        msg += "\n  got:  %r\n  want: %r" % (got, want)
    raise SystemExit(msg)


def norm_text(b):
    out, i = bytearray(), 0
    while i < len(b):
        c = b[i:i + 1]
        if c == b"\r":
            out += b"\r\n"
            i += 2 if b[i + 1:i + 2] == b"\n" else 1
        elif c == b"\n":
            out += b"\r\n"
            i += 1
        else:
            out += c
            i += 1
    if out and not out.endswith(b"\r\n"):
        out += b"\r\n"
    return bytes(out)


def parse_desc(raw):
    items = []
    for line in raw.decode("ascii").splitlines():
        k, _, v = line.partition(" ")
        items.append((k, bytes.fromhex(v)))
    return items


def check_wellformed(n, data):
    if b"\n" in data.replace(b"\r\n", b"") or b"\r" in data.replace(b"\r\n", b""):
        fail(n, "a bare CR or LF")
    lines = data.split(b"\r\n")
    for ln in lines:
        if len(ln) > 998:
            fail(n, "a line of %d octets" % len(ln))
    head = data.split(b"\r\n\r\n", 1)[0]
    if any(b >= 0x80 for b in head):
        fail(n, "8-bit header")


def check(n, desc, data):
    check_wellformed(n, data)
    msg = BytesParser(policy=email.policy.strict).parsebytes(data)
    mailboxes = {f: [] for f in FIELD}
    bcc, rcpts, atts, cids, xh = [], [], [], [], []
    text = html = None
    eight = False
    envfrom = None
    last = None
    pend = {}
    for k, v in desc:
        if k in FIELD or k == "bcc":
            last = (k, v.decode())
        elif k == "name":
            # a display name is a phrase: its blanks are not significant
            # (RFC 5322 3.2.5): the composer makes runs one space, drops
            # them at the ends
            name = " ".join(x for x in v.decode("utf-8").replace("\t", " ").split(" ") if x)
            (mailboxes[last[0]] if last[0] != "bcc" else bcc).append((name, last[1]))
        elif k == "subject":
            subject = v.decode("utf-8")
        elif k == "xname":
            xname = v.decode()
        elif k == "xvalue":
            xh.append((xname, v.decode("utf-8")))
        elif k == "text":
            text = norm_text(v)
        elif k == "html":
            html = norm_text(v)
        elif k == "8bit":
            eight = True
        elif k == "cid":
            pend["cid"] = v.decode()
        elif k == "att":
            pend["data"] = v
        elif k == "ctype":
            pend["ctype"] = v.decode()
        elif k == "filename":
            pend["filename"] = v.decode("utf-8").strip(" ")
        elif k == "hasfn":
            if v == b"0":
                pend["filename"] = None
            atts.append(pend)
            pend = {}
        elif k == "rcpt":
            rcpts.append(v.decode())
        elif k == "envfrom":
            envfrom = v.decode()
    # headers
    for f, name in FIELD.items():
        want = mailboxes[f]
        h = msg[name]
        if not want:
            if h is not None:
                fail(n, "unexpected " + name)
            continue
        got = [(a.display_name, a.addr_spec) for a in h.addresses]
        if got != want:
            fail(n, name, got, want)
    if msg["Bcc"] is not None or b"\r\nBcc:" in data:
        fail(n, "Bcc transmitted")
    if str(msg["Subject"]) != subject:
        fail(n, "Subject", str(msg["Subject"]), subject)
    for name, value in xh:
        got = [str(v) for v in msg.get_all(name)]
        if value not in got:
            fail(n, name, got, value)
    if msg["Date"].datetime is None or msg["Message-ID"] is None:
        fail(n, "Date or Message-ID")
    if str(msg["MIME-Version"]) != "1.0":
        fail(n, "MIME-Version")
    # envelope: sender, then To, Bcc, Cc without duplicates
    want_from = (mailboxes["sender"] or mailboxes["from"])[0][1]
    if envfrom != want_from:
        fail(n, "envelope sender", envfrom, want_from)
    want_rcpt = []
    for a in [a for _, a in mailboxes["to"]] + [a for _, a in bcc] + [a for _, a in mailboxes["cc"]]:
        if a not in want_rcpt:
            want_rcpt.append(a)
    if rcpts != want_rcpt:
        fail(n, "envelope recipients", rcpts, want_rcpt)
    # the body: leaves in order
    leaves = [p for p in msg.walk() if not p.is_multipart()]
    want_leaves = []
    if text is not None:
        want_leaves.append(("text/plain", text))
    if html is not None:
        want_leaves.append(("text/html", html))
        want_leaves += [("att", a) for a in atts if "cid" in a]
        want_leaves += [("att", a) for a in atts if "cid" not in a]
    else:
        want_leaves += [("att", a) for a in atts]
    if not want_leaves:
        want_leaves.append(("text/plain", b""))
    if len(leaves) != len(want_leaves):
        fail(n, "number of parts", len(leaves), len(want_leaves))
    for part, (kind, want) in zip(leaves, want_leaves):
        cte = part.get("Content-Transfer-Encoding", "7bit").lower()
        if cte == "8bit" and not eight:
            fail(n, "8bit without 8BITMIME")
        if kind != "att":
            if part.get_content_type() != kind or part.get_content_charset() != "utf-8":
                fail(n, "text part type", part.get_content_type(), kind)
            got = part.get_payload(decode=True)
            if got != want:
                fail(n, kind + " content", got, want)
            if part.get_content() != want.decode("utf-8"):
                fail(n, kind + " get_content")
            continue
        a = want
        if part.get_content_type() != a["ctype"]:
            fail(n, "content type", part.get_content_type(), a["ctype"])
        got = part.get_payload(decode=True)
        if got != a["data"]:
            fail(n, "attachment content (%s, %d bytes)" % (cte, len(a["data"])), got[:80], a["data"][:80])
        if part.get_filename() != a["filename"]:
            fail(n, "filename", part.get_filename(), a["filename"])
        if "cid" in a and part["Content-ID"] != "<%s>" % a["cid"]:
            fail(n, "Content-ID", part["Content-ID"], a["cid"])
        disp = part.get_content_disposition()
        if disp != ("inline" if "cid" in a else "attachment"):
            fail(n, "disposition", disp)


def main():
    gen = sys.argv[1]
    seed = sys.argv[2] if len(sys.argv) > 2 else "1"
    count = sys.argv[3] if len(sys.argv) > 3 else "3000"
    out = subprocess.run([gen, seed, count], stdout=subprocess.PIPE, check=True).stdout
    pos, n = 0, 0
    while pos < len(out):
        nl = out.index(b"\n", pos)
        tag, dl, ml = out[pos:nl].split()
        if tag != b"MSG":
            raise SystemExit("bad generator output")
        dl, ml = int(dl), int(ml)
        desc = parse_desc(out[nl + 1:nl + 1 + dl])
        data = out[nl + 1 + dl:nl + 1 + dl + ml]
        pos = nl + 1 + dl + ml
        try:
            check(n, desc, data)
        except SystemExit:
            sys.stderr.write(data.decode("ascii", "replace")[:2500] + "\n")
            raise
        except Exception as e:
            sys.stderr.write(data.decode("ascii", "replace")[:2500] + "\n")
            raise SystemExit("message %d: %s: %s" % (n, type(e).__name__, e))
        n += 1
    if n != int(count):
        raise SystemExit("%d messages checked, %s expected" % (n, count))
    print("%d random messages (seed %s) parsed back and equal" % (n, seed))


if __name__ == "__main__":
    main()
