#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Recover the envelope and the message bytes from a Maildir file written by the private
Postfix instance (postfix_instance.sh) or Exim (exim_instance.sh: Return-path,
Envelope-to).

usage: maildir_extract.py FILE [--raw-out PATH]     prints the envelope as JSON
The MTA puts a trace block first (Return-Path, X-Original-To, Delivered-To, Envelope-To,
Received and their folded continuation lines); everything after it is the client's
message, stored with LF line endings. The block is removed and LF turned back into CRLF,
so for a client that sent pure-CRLF data the result is byte-identical to what it sent
(before dot-stuffing). A bare CR or LF in the original cannot be recovered this way: use
aiosmtpd_server.py for such checks.
"""
import json, sys, re
TRACE = re.compile(rb"^(Return-Path|X-Original-To|Delivered-To|Envelope-To|Received|X-Test-Envelope-From|X-Test-Envelope-To):", re.I)
data = open(sys.argv[1], "rb").read()
lines = data.split(b"\n")
env = {"return_path": None, "original_to": None, "delivered_to": None}
i = 0
while i < len(lines) and TRACE.match(lines[i]):
    name, _, val = lines[i].partition(b":")
    key = name.decode().lower().replace("-", "_")
    i += 1
    while i < len(lines) and lines[i][:1] in (b" ", b"\t"):   # folded continuation
        val += b"\n" + lines[i]; i += 1
    v = val.strip().decode("utf-8", "replace")
    if key == "return_path": env["return_path"] = v.strip("<>")
    elif key == "x_original_to": env["original_to"] = v
    elif key == "delivered_to": env["delivered_to"] = v
    elif key == "envelope_to": env["envelope_to"] = v
    elif key == "received": env.setdefault("received", []).append(v)
body = b"\n".join(lines[i:]).replace(b"\n", b"\r\n")
env["size"] = len(body)
if "--raw-out" in sys.argv:
    open(sys.argv[sys.argv.index("--raw-out") + 1], "wb").write(body)
print(json.dumps(env, ensure_ascii=False, indent=1))
