#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""examples/compose.c: run it on UTF-8 files and an attachment, parse its
output with email.policy.strict and compare with the inputs.
usage: check_example_compose.py COMPOSE"""
import os
import subprocess
import sys
import tempfile
from email.parser import BytesParser
import email.policy

exe = sys.argv[1]
with tempfile.TemporaryDirectory() as d:
    text = "Bonjour à tous,\r\nle café est prêt.\r\n"
    html = "<p>Le café est prêt.</p>\r\n"
    blob = bytes(range(256)) * 40
    open(os.path.join(d, "t.txt"), "w", encoding="utf-8", newline="").write(text)
    open(os.path.join(d, "h.html"), "w", encoding="utf-8", newline="").write(html)
    att = os.path.join(d, "données.bin")
    open(att, "wb").write(blob)
    out = subprocess.run([exe, "--from", "zoe@example.org", "--to", "a@example.net",
                          "--to", "b@example.net", "--subject", "Café ☕ prêt",
                          "--text", os.path.join(d, "t.txt"), "--html", os.path.join(d, "h.html"),
                          "--attach", att], stdout=subprocess.PIPE, check=True).stdout
m = BytesParser(policy=email.policy.strict).parsebytes(out)
assert str(m["Subject"]) == "Café ☕ prêt", m["Subject"]
assert [a.addr_spec for a in m["To"].addresses] == ["a@example.net", "b@example.net"]
parts = [p for p in m.walk() if not p.is_multipart()]
assert parts[0].get_payload(decode=True) == text.encode(), parts[0].get_payload(decode=True)
assert parts[1].get_payload(decode=True) == html.encode()
assert parts[2].get_payload(decode=True) == blob
assert parts[2].get_filename() == "données.bin", parts[2].get_filename()
r = subprocess.run([exe, "--from", "bad address", "--to", "a@example.net"], stderr=subprocess.PIPE)
assert r.returncode != 0 and b"--from" in r.stderr
print("compose example: output parsed back and equal")
