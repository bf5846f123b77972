#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpus of fuzz_headers (tests/fuzz/headers/): message
headers and address lists, in the input format of fuzz_headers.c (one setup
byte: the failing allocation, 0 for none; then the message).

Usage: python3 tests/fuzz/make_header_seeds.py   (rewrites the directory)
"""
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "headers")

SEEDS = {
    "simple": b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nbody\r\n",
    "bare_lf": b"From: a@example.com\nTo: b@example.com, c@example.com\n\nbody\n",
    "display_names": b'To: "A, Person" <a@example.com> (work), Bob <b@example.org>\r\n\r\n',
    "group": b"To: Team: a@example.com, b@example.com;, undisclosed-recipients:;\r\n\r\n",
    "quoted_local": b'Cc: "odd local"@example.com, "x\\"y"@example.net\r\n\r\n',
    "folded": b"To: a@example.com,\r\n\tb@example.com,\r\n  c@example.com\r\nSubject: x\r\n\r\n",
    "source_route": b"To: <@relay.example:a@example.com>\r\n\r\n",
    "comments": b"From: (c (nested) c) a@example.com (trailing)\r\n\r\n",
    "utf8": "To: Jörg <jörg@exämple.de>, 用户@例子.广告\r\n\r\n".encode(),
    "bcc_resent": b"From: a@x.example\r\nBcc: hidden@x.example\r\nResent-To: r@x.example\r\n"
                  b"Resent-Bcc: rb@x.example\r\nSender: s@x.example\r\n\r\nb",
    "blank_before_colon": b"To : a@example.com\r\nSubject\t: x\r\n\r\n",
    "no_header": b"not a header line\r\nTo: a@example.com\r\n\r\n",
    "no_end": b"To: a@example.com\r\nCc: b@example.com",
    "unterminated_angle": b"To: <a@example.com\r\n\r\n",
    "unterminated_quote": b'To: "abc <a@example.com>\r\n\r\n',
    "unterminated_comment": b"To: a@example.com (oops\r\n\r\n",
    "words_only": b"To: John Doe\r\n\r\n",
    "injection": b"To: <a@example.com>\r\n\r\nTo: <b@example.com\r\nRCPT TO:<c@example.com>>\r\n",
    "empty_values": b"To:\r\nCc: ,,\r\nBcc: ;\r\n\r\n",
    "cr_only": b"To: a@example.com\rCc: b@example.com\r\r\n\r\n",
    "long_address": b"To: " + b"a" * 1100 + b"@example.com\r\n\r\n",
    "many": b"To: " + b", ".join(b"u%d@example.com" % i for i in range(60)) + b"\r\n\r\n",
}

# The same inputs again with a failing allocation (1st, 2nd, 5th).
FAILING = {"group": 1, "display_names": 2, "many": 5, "folded": 3}


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    for name, msg in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(b"\0" + msg)
    for name, n in FAILING.items():
        with open(os.path.join(OUT, "%s_fail%d" % (name, n)), "wb") as f:
            f.write(bytes([n]) + SEEDS[name])


if __name__ == "__main__":
    main()
