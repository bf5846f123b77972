#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpora of fuzz_reply (tests/fuzz/reply/), fuzz_session
(tests/fuzz/session/) and fuzz_conv (tests/fuzz/conv/): realistic server
replies, whole sessions and whole conversations, in the input formats
described at the top of fuzz_reply.c, fuzz_session.c and fuzz_conv.c.

Usage: python3 tests/fuzz/make_seeds.py   (rewrites the three directories)
"""
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))

# ---- fuzz_reply: <setup byte> then chunks <len><bytes> -----------------------

SETUP_EHLO, SETUP_STARTTLS, SETUP_POP = 1, 2, 4


def setup(rsets=0, ehlo=True, starttls=False, pop=True):
    b = (rsets << 3) | (SETUP_POP if pop else 0)
    if ehlo or rsets or starttls:
        b |= SETUP_EHLO
    if starttls:
        b |= SETUP_STARTTLS
    return b


def chunks(data, size):
    out = bytearray()
    for i in range(0, len(data), size):
        part = data[i:i + size]
        out += bytes([len(part)]) + part
    return bytes(out)


def reply_seed(flags, stream, size=255):
    return bytes([flags]) + chunks(stream, size)


POSTFIX_EHLO = (b"250-localhost\r\n250-PIPELINING\r\n250-SIZE 10485760\r\n"
                b"250-VRFY\r\n250-ETRN\r\n250-STARTTLS\r\n"
                b"250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n"
                b"250-SMTPUTF8\r\n250 CHUNKING\r\n")
EXIM_EHLO = (b"250-localhost Hello client.test [127.0.0.1]\r\n"
             b"250-SIZE 10485760\r\n250-8BITMIME\r\n250-PIPELINING\r\n"
             b"250-PIPECONNECT\r\n250-CHUNKING\r\n250-STARTTLS\r\n"
             b"250-SMTPUTF8\r\n250 HELP\r\n")
SINK_EHLO = (b"250-smtp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
             b"250-AUTH PLAIN LOGIN\r\n250-XCLIENT NAME HELO\r\n"
             b"250-XFORWARD NAME ADDR PROTO HELO\r\n"
             b"250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 \r\n")
GMAIL_EHLO = (b"250-smtp.gmail.com at your service, [203.0.113.9]\r\n"
              b"250-SIZE 35882577\r\n250-8BITMIME\r\n"
              b"250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER "
              b"XOAUTH\r\n250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n"
              b"250-CHUNKING\r\n250 SMTPUTF8\r\n")
OUTLOOK_EHLO = (b"250-AM0PR01CA0001.outlook.office365.com Hello "
                b"[198.51.100.4]\r\n250-SIZE 157286400\r\n250-PIPELINING\r\n"
                b"250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n"
                b"250-AUTH=LOGIN\r\n250-AUTH LOGIN XOAUTH2\r\n"
                b"250-8BITMIME\r\n250-BINARYMIME\r\n250-CHUNKING\r\n"
                b"250 SMTPUTF8\r\n")

TRANSACTION = (b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
               b"550 5.1.1 <b@example.org>: Recipient address rejected\r\n"
               b"354 End data with <CR><LF>.<CR><LF>\r\n"
               b"250 2.0.0 Ok: queued as 4F1\r\n"
               b"250-1506 byte chunk, total 1606\r\n250 OK id=1qX-000\r\n"
               b"221 2.0.0 Bye\r\n")


def reply_seeds():
    s = {}
    s["greeting"] = reply_seed(0, b"220 localhost ESMTP Postfix (Debian/GNU)\r\n")
    s["greeting_multi"] = reply_seed(
        0, b"220-mx.example ESMTP\r\n220-no UCE\r\n220 ready\r\n", 7)
    s["greeting_bare_lf"] = reply_seed(0, b"220-old SMTP\n220 ready\n", 1)
    s["greeting_554"] = reply_seed(0, b"554 5.7.1 no SMTP service here\r\n")
    s["greeting_421"] = reply_seed(0, b"421 4.3.2 too busy\r\n", 3)
    s["greeting_code_only"] = reply_seed(0, b"220\r\n")
    for name, ehlo in (("postfix", POSTFIX_EHLO), ("exim", EXIM_EHLO),
                       ("sink", SINK_EHLO), ("gmail", GMAIL_EHLO),
                       ("outlook", OUTLOOK_EHLO)):
        # the EHLO reply arrives as the answer to a pending RSET
        s["ehlo_" + name] = reply_seed(setup(rsets=1), ehlo, 64)
        s["ehlo_%s_bytes" % name] = reply_seed(setup(rsets=1), ehlo, 1)
    s["transaction"] = reply_seed(setup(rsets=8), TRANSACTION, 29)
    s["transaction_piled"] = reply_seed(setup(rsets=8, pop=False), TRANSACTION)
    s["enhanced"] = reply_seed(
        setup(rsets=6),
        b"250 2.1.0 Ok\r\n550 4.1.1 class differs\r\n550 5.1 short\r\n"
        b"550 5.123.456 wide\r\n451 4.3.0 later\r\n250 Ok 2.0.0\r\n", 13)
    s["unsolicited_421"] = reply_seed(setup(), b"421 4.4.2 idle timeout\r\n")
    s["unsolicited_250"] = reply_seed(setup(), b"250 hello?\r\n")
    s["starttls_ok"] = reply_seed(setup(starttls=True),
                                  b"220 2.0.0 Ready to start TLS\r\n")
    s["starttls_inject"] = reply_seed(
        setup(starttls=True), b"220 go ahead\r\n250-injected\r\n250 x\r\n")
    s["starttls_inject_later"] = reply_seed(setup(starttls=True),
                                            b"220 go ahead\r\n2", 14)
    s["mismatch"] = reply_seed(setup(rsets=1), b"250-a\r\n251 b\r\n")
    s["code_150"] = reply_seed(0, b"150 opening\r\n")
    s["code_600"] = reply_seed(0, b"600 x\r\n")
    s["short"] = reply_seed(0, b"25\r\n")
    s["bad_sep"] = reply_seed(0, b"250x\r\n")
    s["nul"] = reply_seed(0, b"220 a\x00b\r\n")
    s["cr_inside"] = reply_seed(0, b"220 a\rb\r\n")
    s["long_line"] = reply_seed(0, b"220 " + b"x" * 1200 + b"\r\n")
    s["many_lines"] = reply_seed(setup(rsets=1),
                                 b"250-line\r\n" * 60 + b"250 end\r\n")
    s["auth_334"] = reply_seed(setup(rsets=3),
                               b"334 VXNlcm5hbWU6\r\n334 \r\n"
                               b"535-5.7.8 Username and Password not "
                               b"accepted.\r\n535 5.7.8 https://x\r\n", 5)
    return s


# ---- fuzz_session: a program of letters -------------------------------------

DOM_OK, DOM_LITERAL, DOM_INJECT = 0, 1, 2
ADDR_OK, ADDR_NULL, ADDR_UTF8, ADDR_INJECT, ADDR_BRACKETS, ADDR_BAD_UTF8, \
    ADDR_POSTMASTER, ADDR_NONE = range(8)
MECH_PLAIN, MECH_LOGIN, MECH_XOAUTH2, MECH_LOWER, MECH_INJECT, MECH_SCRAM = \
    range(6)
B64_NONE, B64_EMPTY, B64_A, B64_B, B64_INJECT, B64_SPACE = range(6)


def feed(data, pop=True):
    out = bytearray()
    parts = [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]
    for i, part in enumerate(parts):
        op = b"F" if pop and i == len(parts) - 1 else b"G"
        out += op + bytes([len(part)]) + part
    return bytes(out)


def ehlo(d=DOM_OK):
    return b"E" + bytes([d])


def helo(d=DOM_OK):
    return b"H" + bytes([d])


def auth(m, i=B64_NONE):
    return b"A" + bytes([m, i])


def resp(i):
    return b"R" + bytes([i])


def mail(a=ADDR_OK, size=0, body=0, utf8=0, ret=0, requiretls=0, envid=0):
    f1 = size | (body << 2) | (utf8 << 5) | (ret << 6)
    f2 = requiretls | (envid << 1)
    return b"M" + bytes([a, f1, f2])


def rcpt(a=ADDR_OK, notify=0, orcpt=ADDR_NONE):
    return b"r" + bytes([a, notify, orcpt])


def write(data):
    out = bytearray()
    for i in range(0, len(data), 255):
        part = data[i:i + 255]
        out += b"W" + bytes([len(part)]) + part
    return bytes(out)


def bdat(data, last):
    return b"B" + bytes([1 if last else 0, len(data)]) + data


def consume(n=0):
    return b"c" + bytes([n])


GREET = feed(b"220 localhost ESMTP Postfix\r\n")
POSTFIX_TLS_EHLO = POSTFIX_EHLO.replace(
    b"250-STARTTLS\r\n", b"250-AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2\r\n")
FULL_EHLO = (b"250-mx\r\n250-PIPELINING\r\n250-SIZE 10485760\r\n"
             b"250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"
             b"250-DSN\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250-BINARYMIME\r\n"
             b"250-REQUIRETLS\r\n250 AUTH PLAIN LOGIN\r\n")
BODY = (b"Subject: hi\r\nFrom: a@example.org\r\n\r\n.leading dot\n"
        b"bare lf\rbare cr\r\n.\r\nend")


def start(ehlo_reply=FULL_EHLO):
    return GREET + ehlo() + consume() + feed(ehlo_reply)


def session_seeds():
    s = {}
    s["postfix_full"] = (
        GREET + ehlo() + feed(POSTFIX_EHLO) + b"S" + consume() +
        feed(b"220 2.0.0 Ready to start TLS\r\n") + b"T" + ehlo() +
        feed(POSTFIX_TLS_EHLO) + auth(MECH_LOGIN) +
        feed(b"334 VXNlcm5hbWU6\r\n") + resp(B64_A) +
        feed(b"334 UGFzc3dvcmQ6\r\n") + resp(B64_B) +
        feed(b"235 2.7.0 Authentication successful\r\n") +
        mail(size=1, body=2) + rcpt() + rcpt(ADDR_POSTMASTER) +
        rcpt(ADDR_OK) + b"D" + consume() +
        feed(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 no\r\n"
             b"250 2.1.5 Ok\r\n354 End data\r\n") +
        write(BODY) + b"e" + consume(3) + consume() +
        feed(b"250 2.0.0 Ok: queued as 4F1\r\n") + b"Q" +
        feed(b"221 2.0.0 Bye\r\n") + consume())
    s["helo_fallback"] = (
        GREET + ehlo(DOM_LITERAL) + feed(b"502 5.5.1 not implemented\r\n") +
        helo(DOM_LITERAL) + feed(b"250 old.example\r\n") + mail() +
        rcpt() + feed(b"250 ok\r\n") + rcpt() + feed(b"250 ok\r\n") + b"D" +
        feed(b"354 go\r\n") + write(b"no newline") + b"e" + mail() +
        feed(b"250 queued\r\n") + b"Q" + feed(b"221 bye\r\n") + consume())
    s["bdat"] = (
        start() + mail(size=2) + rcpt() + bdat(b"line one\nline", False) +
        bdat(b" two\r", False) + bdat(b"\n.x", True) + consume() +
        feed(b"250 ok\r\n250 ok\r\n250 2.0.0 Ok: 14 bytes\r\n250 ok\r\n"
             b"250-1506 byte chunk\r\n250 OK id=1\r\n") + b"Q" + consume())
    s["bdat_binary"] = (
        start() + mail(body=3) + rcpt() + bdat(b"\x00\n\r.\xff", False) +
        bdat(b"z", True) + b"D" + consume() +
        feed(b"250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n"))
    s["no_recipient"] = (
        start() + mail() + rcpt() + rcpt(ADDR_POSTMASTER) + b"D" + consume() +
        feed(b"250 ok\r\n550 no\r\n550 no\r\n354 go\r\n") + mail() +
        consume() + feed(b"554 no valid recipients\r\n250 ok\r\n") + b"X" +
        feed(b"250 ok\r\n"))
    s["no_recipient_then_data"] = (
        start() + mail() + rcpt() + feed(b"250 ok\r\n550 no\r\n") + b"D" +
        bdat(b"x", True) + b"X" + feed(b"250 ok\r\n"))
    s["mail_refused"] = (
        start() + mail() + rcpt() + rcpt() + b"D" + consume() +
        feed(b"550 5.7.1 refused\r\n503 5.5.1 need MAIL\r\n"
             b"503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n") + mail() +
        feed(b"250 ok\r\n"))
    s["mail_refused_early"] = (
        start() + mail() + rcpt() + feed(b"451 4.3.0 later\r\n") + mail() +
        rcpt() + b"D" + feed(b"503 x\r\n250 ok\r\n250 ok\r\n354 go\r\n") +
        write(b"hello\r\n") + b"e" + feed(b"250 ok\r\n"))
    s["unsolicited_421"] = start() + feed(b"421 4.4.2 idle timeout\r\n") + b"N"
    s["unsolicited_250"] = start() + feed(b"250 hello?\r\n") + b"N"
    s["starttls_inject"] = (
        start() + b"S" + feed(b"220 go ahead\r\n250-injected\r\n250 x\r\n") +
        b"T")
    s["starttls_inject_later"] = (
        start() + b"S" + feed(b"220 go ahead\r\n") + feed(b"250 x\r\n") + b"T")
    s["starttls_refused"] = (
        start() + b"S" + feed(b"454 4.7.0 TLS not available\r\n") + b"T" +
        mail() + feed(b"250 ok\r\n"))
    s["dsn"] = (
        start() + mail(ret=1, envid=2) + rcpt(notify=3, orcpt=ADDR_UTF8) +
        rcpt(notify=8) + rcpt(notify=9) + mail(ret=2, envid=1, requiretls=1) +
        consume() + feed(b"250 ok\r\n250 ok\r\n250 ok\r\n"))
    s["smtputf8"] = (
        start() + mail(ADDR_UTF8) + rcpt(ADDR_UTF8) + b"X" + mail(utf8=1) +
        rcpt(ADDR_UTF8) + b"V" + bytes([ADDR_UTF8]) + consume() +
        feed(b"250 ok\r\n250 ok\r\n250 ok\r\n"))
    s["injection"] = (
        GREET + ehlo(DOM_INJECT) + ehlo(4) + ehlo() + feed(FULL_EHLO) +
        mail(ADDR_INJECT) + mail(ADDR_BRACKETS) + mail(ADDR_BAD_UTF8) +
        auth(MECH_INJECT) + auth(MECH_LOWER) + auth(MECH_PLAIN, B64_INJECT) +
        b"V" + bytes([ADDR_INJECT]) + mail() + rcpt(ADDR_INJECT) +
        rcpt(ADDR_NULL) + rcpt(ADDR_OK, 0, ADDR_INJECT) + consume())
    s["auth_cancel"] = (
        start() + auth(MECH_PLAIN, B64_EMPTY) + feed(b"334 \r\n") + b"C" +
        feed(b"501 5.7.0 aborted\r\n") + auth(MECH_XOAUTH2, B64_A) +
        feed(b"334 eyJzdGF0dXMiOiI0MDEifQ==\r\n") + resp(B64_EMPTY) +
        feed(b"535-5.7.8 not accepted.\r\n535 5.7.8 https://x\r\n") +
        auth(MECH_SCRAM, B64_B) + feed(b"334 cj1meWtv\r\n") + resp(B64_A) +
        feed(b"235 2.7.0 ok\r\n"))
    s["no_pipelining"] = (
        start() + b"p\x00" + mail() + rcpt() + b"X" + b"Q" +
        feed(b"250 ok\r\n") + rcpt() + b"p\x01" + bdat(b"x", False) +
        bdat(b"y", True) + consume())
    s["group_enders"] = (
        start() + b"X" + b"N" + mail() + b"V\x06" + b"Q" +
        feed(b"250 ok\r\n250 ok\r\n") + b"V\x06" +
        feed(b"252 maybe\r\n") + b"Q" + feed(b"221 bye\r\n"))
    s["size_limit"] = (
        start() + mail(size=2) + mail(size=3) + b"X" + consume() +
        feed(b"250 ok\r\n250 ok\r\n"))
    s["data_8bit"] = (
        start() + mail() + rcpt() + b"D" +
        feed(b"250 ok\r\n250 ok\r\n354 go\r\n") + write(b"caf\xc3\xa9\n") +
        write(b"plain\n") + b"e" + consume())
    s["greeting_554"] = feed(b"554 5.7.1 go away\r\n") + ehlo() + b"Q"
    s["pipelined_two"] = (
        start() + mail() + rcpt() + b"D" +
        feed(b"250 ok\r\n250 ok\r\n354 go\r\n") + write(BODY) + b"e" +
        mail(ADDR_NULL) + rcpt() + bdat(b"abc\n", True) + consume(5) +
        consume() + feed(b"250 q1\r\n250 ok\r\n250 ok\r\n250 q2\r\n") +
        b"Q" + feed(b"221 bye\r\n"))
    s["bytewise_feed"] = GREET + ehlo() + b"".join(
        b"G\x01" + bytes([c]) for c in FULL_EHLO) + b"P" + mail()
    s["unpopped"] = (
        start() + b"X" * 20 + feed(b"250 ok\r\n" * 20, pop=False) + b"X" +
        b"P" + b"N")
    s["big_body"] = (
        start() + mail() + rcpt() + b"D" +
        feed(b"250 ok\r\n250 ok\r\n354 go\r\n") +
        write((b"line of text\r\n.dot\n" * 40)) + b"e" + consume(1))
    # LMTP (RFC 2033): LHLO, one verdict per accepted recipient
    lgreet = feed(b"220 lmtp.example.org Dovecot (Debian) ready.\r\n")
    lhlo = (b"250-lmtp.example.org\r\n250-8BITMIME\r\n250-CHUNKING\r\n"
            b"250-ENHANCEDSTATUSCODES\r\n250 PIPELINING\r\n")
    lstart = lgreet + b"L" + bytes([DOM_OK]) + consume() + feed(lhlo)
    s["lmtp_data"] = (
        lstart + mail() + rcpt() + rcpt(ADDR_POSTMASTER) + rcpt() + b"D" +
        consume() +
        feed(b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n550 5.1.1 no\r\n"
             b"250 2.1.5 OK\r\n354 OK\r\n") +
        write(BODY) + b"e" + mail() + consume() +
        feed(b"250 2.0.0 saved\r\n552 5.2.2 Quota exceeded\r\n"
             b"250 2.1.0 OK\r\n") + b"X" + b"Q" +
        feed(b"250 ok\r\n221 bye\r\n"))
    s["lmtp_bdat"] = (
        b"l" + lstart + mail() + rcpt() + rcpt() + rcpt() +
        bdat(b"Subject: x\n\n", False) + bdat(b"body", True) + mail() +
        rcpt() + bdat(b"x", True) + consume() +
        feed(b"250 ok\r\n250 ok\r\n452 full\r\n250 ok\r\n250 ok\r\n"
             b"250 2.0.0 a\r\n451 4.3.0 c\r\n250 ok\r\n550 no\r\n"
             b"503 5.5.1 No valid recipients\r\n"))
    s["lmtp_421"] = (
        lstart + mail() + rcpt() + rcpt() + rcpt() + bdat(b"m", True) +
        b"Q" + consume() +
        feed(b"250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n250 saved\r\n"
             b"421 4.3.2 shutting down\r\n"))
    s["lmtp_no_rcpt"] = (
        lstart + mail() + rcpt() + b"D" + consume() +
        feed(b"250 ok\r\n550 no\r\n354 go\r\n") + consume() +
        feed(b"503 5.5.1 No valid recipients\r\n") + ehlo() + helo() +
        b"X" + feed(b"250 ok\r\n"))
    s["lmtp_extra"] = (
        lstart + mail() + rcpt() + rcpt() + bdat(b"", True) +
        feed(b"250 ok\r\n250 ok\r\n550 no\r\n250 ok\r\n250 extra\r\n"))
    return s


def write_dir(name, seeds):
    d = os.path.join(HERE, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    for k, v in sorted(seeds.items()):
        with open(os.path.join(d, k), "wb") as f:
            f.write(v)
    print("%s: %d seeds" % (d, len(seeds)))


# ---- fuzz_conv: 3 settings bytes, then events ---------------------------------

# settings: b0 = mode + 3 * tls (+ 0x80: no EHLO name)
SEND, PROBE, PROBE_AUTH = 0, 1, 2
T_REQUIRED, T_OPPORTUNISTIC, T_IMPLICIT, T_NONE = 0, 1, 2, 3
# b1 bits
ALLOW_PLAIN, PIPE, CHUNK, REQUIRE_ALL = 1, 2, 4, 8
A_PLAIN, A_XOAUTH2, A_LOGIN = 1 << 4, 2 << 4, 3 << 4
# canned replies (the table in fuzz_conv.c)
(R_GREET, R_EHLO_FULL, R_EHLO_AUTH, R_EHLO_TLS, R_250_NAME, R_OK, R_ENV,
 R_354, R_QUEUED, R_235, R_334, R_334_JSON, R_535, R_220_TLS, R_454, R_421,
 R_550, R_451, R_554, R_502, R_221, R_MULTI, R_JUNK, R_CHUNK) = range(24)


def conf(mode=SEND, tls=T_NONE, b1=PIPE | CHUNK, b2=1):
    return bytes([mode + 3 * tls, b1, b2])


def rep(i, cut=0):
    return bytes([0, i, cut])


def raw(data):
    return bytes([1, len(data)]) + data


def adv(t):
    return bytes([2, t])


def msg(k=0, k2=0):
    return bytes([4, k, k2])


CLOSE, ABORT, TLS_UP, BODY_READY, TOKEN, TIMER = (bytes([5]), bytes([6]),
                                                  bytes([7]), bytes([11]),
                                                  bytes([12]), bytes([3]))


def fail(e=0):
    return bytes([8, e])


def hand(held=False, chunk=None):
    m = (2 if held else 0) | (1 if chunk is not None else 0)
    return bytes([9, m] + ([chunk] if chunk is not None else []))


def write_n(n=0):
    return bytes([10, n])


def conv_seeds():
    s = {}
    s["plain"] = (conf() + msg() + rep(R_GREET) + rep(R_EHLO_AUTH) +
                  rep(R_ENV) + rep(R_QUEUED) + CLOSE + rep(R_221))
    s["two_messages"] = (conf() + msg() + msg(8) + rep(R_GREET) +
                         rep(R_EHLO_AUTH) + rep(R_ENV) + rep(R_QUEUED) +
                         rep(R_OK) + rep(R_OK) + rep(R_OK) + rep(R_354) +
                         rep(R_QUEUED))
    s["bdat"] = (conf() + msg() + msg(1) + rep(R_GREET) + rep(R_EHLO_FULL) +
                 rep(R_OK) + rep(R_OK) + rep(R_QUEUED) + rep(R_OK) +
                 rep(R_OK) + rep(R_OK) + rep(R_QUEUED))
    s["starttls_plain_auth"] = (
        conf(tls=T_REQUIRED, b1=PIPE | CHUNK | A_PLAIN) + msg() +
        rep(R_GREET) + rep(R_EHLO_TLS) + rep(R_220_TLS) + TLS_UP +
        rep(R_EHLO_FULL) + rep(R_235) + rep(R_OK) + rep(R_OK) +
        rep(R_QUEUED) + CLOSE + rep(R_221))
    s["starttls_injection"] = (conf(tls=T_REQUIRED) + msg() + rep(R_GREET) +
                               rep(R_EHLO_TLS) +
                               raw(b"220 go\r\n250 injected\r\n"))
    s["tls_required_not_offered"] = (conf(tls=T_REQUIRED) + msg() +
                                     rep(R_GREET) + rep(R_EHLO_AUTH) +
                                     rep(R_221))
    s["implicit"] = (conf(tls=T_IMPLICIT) + msg() + TLS_UP + rep(R_GREET) +
                     rep(R_EHLO_AUTH) + rep(R_ENV) + rep(R_QUEUED))
    s["probe"] = conf(mode=PROBE) + rep(R_GREET) + rep(R_EHLO_AUTH) + rep(R_221)
    s["probe_auth"] = (conf(mode=PROBE_AUTH, b1=ALLOW_PLAIN | A_PLAIN) +
                       rep(R_GREET) + rep(R_EHLO_AUTH) + rep(R_235) +
                       rep(R_221))
    s["probe_auth_refused"] = (conf(mode=PROBE_AUTH, b1=ALLOW_PLAIN | A_PLAIN)
                               + rep(R_GREET) + rep(R_EHLO_AUTH) +
                               rep(R_535) + rep(R_221))
    s["xoauth2_async"] = (conf(b1=ALLOW_PLAIN | PIPE | A_XOAUTH2) + msg() +
                          rep(R_GREET) + rep(R_EHLO_AUTH) + adv(5) + TOKEN +
                          rep(R_334_JSON) + rep(R_535) + TOKEN + rep(R_235) +
                          rep(R_ENV) + rep(R_QUEUED))
    s["login"] = (conf(b1=ALLOW_PLAIN | PIPE | A_LOGIN) + msg() +
                  rep(R_GREET) + rep(R_EHLO_AUTH) + rep(R_334) + rep(R_334) +
                  rep(R_235) + rep(R_ENV) + rep(R_QUEUED))
    s["auth_refused"] = (conf(b1=ALLOW_PLAIN | PIPE | A_PLAIN) + msg() +
                         msg(8) + rep(R_GREET) + rep(R_EHLO_AUTH) +
                         rep(R_535) + rep(R_221))
    s["greeting_trickle"] = (conf() + msg() + b"".join(
        raw(bytes([c])) + adv(5) for c in b"220 mx.test slow\r\n"))
    s["stream_blocks"] = (conf() + msg(0, 1 | (3 << 1)) + rep(R_GREET) +
                          rep(R_EHLO_AUTH) + rep(R_ENV) + adv(20) +
                          BODY_READY + rep(R_QUEUED))
    s["held_output"] = (conf() + hand(True, 2) + msg() + rep(R_GREET) +
                        write_n() + rep(R_EHLO_AUTH) + write_n(1) +
                        rep(R_ENV) + write_n() + write_n() + fail(0))
    s["lost_after_dot"] = (conf() + msg() + rep(R_GREET) + rep(R_EHLO_AUTH) +
                           hand(True) + rep(R_ENV) + fail(0))
    s["abort_mid_data"] = (conf() + msg(0, 1 | (2 << 1)) + rep(R_GREET) +
                           rep(R_EHLO_AUTH) + rep(R_ENV) + ABORT)
    s["rset_refusals"] = (conf(b1=PIPE | REQUIRE_ALL) + msg(3 << 3) + msg() +
                          rep(R_GREET) + rep(R_EHLO_AUTH) + rep(R_OK) +
                          rep(R_550) + rep(R_554) + rep(R_OK) + rep(R_OK) +
                          rep(R_OK) + rep(R_354) + rep(R_QUEUED))
    s["421"] = (conf() + msg() + msg() + rep(R_GREET) + rep(R_EHLO_AUTH) +
                rep(R_ENV) + rep(R_421))
    s["helo_fallback"] = (conf(b1=0) + msg() + rep(R_GREET) + rep(R_502) +
                          rep(R_250_NAME) + rep(R_OK) + rep(R_OK) +
                          rep(R_354) + rep(R_QUEUED))
    s["idle_quit"] = (conf() + msg() + rep(R_GREET) + rep(R_EHLO_AUTH) +
                      rep(R_ENV) + rep(R_QUEUED) + adv(200) + rep(R_221))
    s["junk"] = (conf() + msg() + rep(R_GREET) + rep(R_EHLO_AUTH) +
                 rep(R_ENV) + rep(R_QUEUED, 5) + rep(R_JUNK))
    return s


if __name__ == "__main__":
    write_dir("reply", reply_seeds())
    write_dir("session", session_seeds())
    write_dir("conv", conv_seeds())
