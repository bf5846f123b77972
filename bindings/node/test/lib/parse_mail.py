#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Parse a stored message with Python's email package under policy.strict
(any defect raises) and print what it decoded as JSON, for the Node
binding's sendMail tests: header values decoded, mailboxes as
[display name, addr-spec], the MIME tree, each leaf part's decoded content
(base64 of its bytes), file name, Content-ID and disposition.

usage: parse_mail.py FILE.eml
"""
import base64
import email.policy
import json
import sys
from email.parser import BytesParser


def mailboxes(msg, name):
    h = msg[name]
    if h is None:
        return None
    return [[a.display_name, a.addr_spec] for a in h.addresses]


def tree(part):
    if part.is_multipart():
        return [part.get_content_type(), [tree(p) for p in part.iter_parts()]]
    return part.get_content_type()


def main():
    data = open(sys.argv[1], "rb").read()
    msg = BytesParser(policy=email.policy.strict).parsebytes(data)
    leaves = []
    for p in msg.walk():
        if p.is_multipart():
            continue
        content = p.get_content()
        if isinstance(content, str):
            content = content.encode("utf-8")
        leaves.append({
            "type": p.get_content_type(),
            "charset": p.get_content_charset(),
            "cte": p["Content-Transfer-Encoding"] and str(p["Content-Transfer-Encoding"]),
            "filename": p.get_filename(),
            "cid": p["Content-ID"] and str(p["Content-ID"]),
            "disposition": p.get_content_disposition(),
            "content": base64.b64encode(content).decode("ascii"),
        })
    out = {
        "from": mailboxes(msg, "From"),
        "to": mailboxes(msg, "To"),
        "cc": mailboxes(msg, "Cc"),
        "replyTo": mailboxes(msg, "Reply-To"),
        "bcc": msg["Bcc"] is not None,
        "subject": msg["Subject"] and str(msg["Subject"]),
        "date": msg["Date"] and str(msg["Date"]),
        "messageId": msg["Message-ID"] and str(msg["Message-ID"]),
        "headers": [[k, str(v)] for k, v in msg.items()],
        "tree": tree(msg),
        "leaves": leaves,
        "defects": [str(d) for p in msg.walk() for d in p.defects],
        "ascii": all(b < 128 for b in data.split(b"\r\n\r\n", 1)[0]),
        "crlf": b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b""),
        "longest": max(len(l) for l in data.split(b"\r\n")),
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
