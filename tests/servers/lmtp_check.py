#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Independent LMTP client (Python's smtplib.LMTP) for checking the LMTP test servers.

Sends one message and checks every recipient's verdict: the RCPT reply, and for the
accepted ones the per-recipient reply after the end of data (RFC 2033 4.2: one reply
per accepted recipient, in RCPT order; smtplib reads only the first, the others are
read with getreply()).

  lmtp_check.py (--unix PATH | --port N) --body-file F --from A
                --rcpt ADDR=CODE [--rcpt ADDR=CODE ...] [--via DATA|BDAT]

CODE is the code expected for that recipient: the RCPT reply when it is not 2xx,
else the post-dot verdict. Prints the conversation's verdicts; exit 1 on a mismatch.
"""
import argparse
import smtplib
import sys


def main():
    p = argparse.ArgumentParser()
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--unix")
    g.add_argument("--port", type=int)
    p.add_argument("--body-file", required=True)
    p.add_argument("--from", dest="sender", default="sender@example.org")
    p.add_argument("--rcpt", action="append", required=True, help="ADDR=CODE")
    p.add_argument("--via", choices=["DATA", "BDAT"], default="DATA")
    a = p.parse_args()
    body = open(a.body_file, "rb").read()
    want = [(r.rsplit("=", 1)[0], int(r.rsplit("=", 1)[1])) for r in a.rcpt]

    c = smtplib.LMTP(a.unix) if a.unix else smtplib.LMTP("127.0.0.1", a.port)
    code, text = c.ehlo("lmtp-check.example")
    print("LHLO", code, text.decode(errors="replace").replace("\n", " | "))
    if code != 250:
        return 1
    if c.helo("x")[0] == 250:  # smtplib sends HELO: LMTP must refuse it
        print("HELO accepted by an LMTP server")
        return 1
    code, text = c.mail(a.sender)
    if code != 250:
        print("MAIL", code, text)
        return 1
    got, accepted = {}, []
    for addr, _ in want:
        code, text = c.rcpt(addr)
        print("RCPT", addr, code, text.decode(errors="replace"))
        if code // 100 == 2:
            accepted.append(addr)
        else:
            got[addr] = code
    if a.via == "DATA":
        first = c.data(body)
    else:
        c.send(b"BDAT %d LAST\r\n" % len(body) + body)
        first = c.getreply()
    replies = [first] + [c.getreply() for _ in accepted[1:]]
    for addr, (code, text) in zip(accepted, replies):
        print("VERDICT", addr, code, text.decode(errors="replace"))
        got[addr] = code
    c.quit()
    bad = [(addr, w, got.get(addr)) for addr, w in want if got.get(addr) != w]
    for addr, w, g2 in bad:
        print("MISMATCH %s: expected %d, got %s" % (addr, w, g2))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
