#!/bin/bash
# SPDX-License-Identifier: MIT
# Smoke test of the integration-test servers in this directory (~10 s, needs root for
# smtp-sink, Postfix, Dovecot LMTP and Dante). Every server is started on 127.0.0.1, checked with an
# independent client (swaks, openssl, smtp_check.py) and stopped by its PID.
#
# usage: selftest.sh [WORKDIR]      (default: a fresh mktemp -d, removed on success)
# Ends with "selftest: N passed, N failed"; exit 1 when a check failed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
if [[ $# -ge 1 ]]; then W=$(realpath -m "$1"); mkdir -p "$W"; KEEP=1; else W=$(mktemp -d); KEEP=0; fi
chmod 755 "$W"
PASS=0 FAIL=0
AIO_PIDS=()

cleanup() {
  local p
  for p in "${AIO_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  "$HERE/smtp_sink.sh" stop "$W/sink" >/dev/null 2>&1 || true
  "$HERE/postfix_instance.sh" stop "$W/postfix" >/dev/null 2>&1 || true
  "$HERE/dovecot_lmtp.sh" stop "$W/dovecot-lmtp" >/dev/null 2>&1 || true
  "$HERE/dante_socks.sh" stop "$W/dante-none" >/dev/null 2>&1 || true
  "$HERE/dante_socks.sh" stop "$W/dante-userpass" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# check NAME CMD...: run CMD with its output in $W/NAME.log; count and report.
check() {
  local name=$1; shift
  local t0=$SECONDS
  if "$@" >"$W/$name.log" 2>&1; then
    PASS=$((PASS + 1)); printf '  ok    %-40s (%ss)\n' "$name" $((SECONDS - t0))
  else
    FAIL=$((FAIL + 1)); printf '  FAIL  %-40s see %s\n' "$name" "$W/$name.log"
    tail -n 15 "$W/$name.log" | sed 's/^/        | /'
  fi
}

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_aiosmtpd NAME ARGS...: start aiosmtpd_server.py, wait for READY; sets PORT TLSPORT
start_aiosmtpd() {
  local name=$1; shift
  mkdir -p "$W/$name"
  $PY "$HERE/aiosmtpd_server.py" --port 0 --tls-port 0 --cert "$W/pki/server.crt" \
    --key "$W/pki/server.key" --outdir "$W/$name/msgs" --lifetime 60 "$@" \
    >"$W/$name/stdout" 2>"$W/$name/stderr" &
  AIO_PIDS+=($!)
  local _i
  for _i in $(seq 100); do grep -q '^READY' "$W/$name/stdout" && break; sleep 0.05; done
  read -r _ PORT TLSPORT < "$W/$name/stdout" || return 1
}

# wait_file GLOB COUNT: wait (max 10 s) until GLOB matches COUNT files
wait_files() {
  local _i
  for _i in $(seq 200); do
    [[ $(compgen -G "$1" | wc -l) -ge $2 ]] && return 0
    sleep 0.05
  done
  return 1
}

json_is() { # json_is FILE PYTHON-EXPRESSION-ON-d
  $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2" \
    || { echo "json check failed: $2"; cat "$1"; return 1; }
}

echo "selftest of tests/servers in $W"
BODY=$W/body.eml
printf 'From: <sender@example.com>\r\nTo: <rcpt@example.com>\r\nSubject: selftest\r\n\r\n.leading dot\r\n.\r\n..two\r\n8bit \xc3\xa9\r\nend\r\n' > "$BODY"
CHECK=("$PY" "$HERE/smtp_check.py")

check gen_certs "$HERE/gen_certs.sh" "$W/pki"
CA=$W/pki/ca.crt
check scram_rfc_vectors "${CHECK[@]}" --vectors

# ---------------------------------------------------------------- aiosmtpd
aio_start() { start_aiosmtpd aio; }
check aiosmtpd_start aio_start
AIO_PORT=$PORT AIO_TLS=$TLSPORT

aio_swaks() {
  swaks </dev/null --server "127.0.0.1:$AIO_PORT" --tls --tls-verify --tls-ca-path "$CA" \
    --auth PLAIN --auth-user testuser@example.com --auth-password testpass \
    --from a@example.com --to b@example.com --body $'line1\r\n.dot line\r\nend' &&
  wait_files "$W/aio/msgs/000001.json" 1 &&
  grep -q $'\r\n\\.dot line\r\nend\r\n' "$W/aio/msgs/000001.eml" &&
  json_is "$W/aio/msgs/000001.json" 'd["via"]=="DATA" and d["tls"] and d["auth"]=="testuser@example.com" and d["auth_mech"]=="PLAIN" and d["rcpt_tos"]==["b@example.com"]'
}
check aiosmtpd_swaks_starttls_plain_data aio_swaks

aio_mechs() {
  local m
  for m in PLAIN LOGIN CRAM-MD5 XOAUTH2 OAUTHBEARER SCRAM-SHA-1 SCRAM-SHA-256; do
    "${CHECK[@]}" --port "$AIO_PORT" --starttls --ca "$CA" --auth "$m" --via none || { echo "good $m failed"; return 1; }
    "${CHECK[@]}" --port "$AIO_PORT" --starttls --ca "$CA" --auth "$m" --password wrong \
      --token wrong --via none --expect-auth 535 || { echo "bad $m not refused"; return 1; }
  done
}
check aiosmtpd_auth_all_mechanisms aio_mechs

aio_bdat() {
  "${CHECK[@]}" --port "$AIO_TLS" --implicit --ca "$CA" --auth SCRAM-SHA-256 --via BDAT \
    --body-file "$BODY" --to a@example.com --to reject1@example.com --to tempfail@example.com &&
  wait_files "$W/aio/msgs/000002.json" 1 &&
  cmp "$BODY" "$W/aio/msgs/000002.eml" &&
  json_is "$W/aio/msgs/000002.json" 'd["via"]=="BDAT" and d["tls"] and d["auth_mech"]=="SCRAM-SHA-256" and d["rcpt_tos"]==["a@example.com"]'
}
check aiosmtpd_implicit_scram_bdat_exact aio_bdat

aio_data_exact() {
  "${CHECK[@]}" --port "$AIO_PORT" --starttls --ca "$CA" --auth CRAM-MD5 --via DATA --body-file "$BODY" &&
  wait_files "$W/aio/msgs/000003.json" 1 && cmp "$BODY" "$W/aio/msgs/000003.eml"
}
check aiosmtpd_data_dotstuffing_exact aio_data_exact

aio_plain_refused() {  # AUTH before STARTTLS must be refused (538), and AUTH not advertised
  "${CHECK[@]}" --port "$AIO_PORT" --ca "$CA" --auth PLAIN --via none --expect-auth 538 \
    >"$W/noauth.out" || { cat "$W/noauth.out"; return 1; }
  cat "$W/noauth.out"
  ! grep -q '^S: 250-AUTH' "$W/noauth.out"
}
check aiosmtpd_no_auth_before_tls aio_plain_refused

aio_scram_faults() {
  local f
  for f in bad-signature bad-nonce; do
    start_aiosmtpd "aio-$f" --scram-fault "$f" || return 1
    "${CHECK[@]}" --port "$TLSPORT" --implicit --ca "$CA" --auth SCRAM-SHA-256 --via none \
      --expect-scram-error || { echo "scram fault $f not detected"; return 1; }
  done
}
check aiosmtpd_scram_faults_detected aio_scram_faults

aio_wrong_ca() {  # a client trusting the untrusted CA must fail to verify
  ! echo QUIT | timeout 5 openssl s_client -connect "127.0.0.1:$AIO_TLS" -verify_return_error \
      -CAfile "$W/pki/untrusted-ca.crt" -verify_hostname localhost -quiet
}
check aiosmtpd_cert_not_trusted_by_other_ca aio_wrong_ca

# ---------------------------------------------------------------- fault server
check fault_server_scenarios "$PY" "$HERE/selftest_faults.py" "$W/pki" "$W/faults"

# ---------------------------------------------------------------- smtp-sink
sink() {
  local port; port=$(free_port)
  "$HERE/smtp_sink.sh" start "$W/sink" "$port" &&
  swaks </dev/null --server "127.0.0.1:$port" --from a@example.com --to b@example.com --body $'hello\n.dot\n' &&
  wait_files "$W/sink/msgs/*" 1 &&
  grep -q '^X-Rcpt-Args: <b@example.com>' "$W"/sink/msgs/* &&
  grep -qx '.dot' "$W"/sink/msgs/* || return 1
  local pid; pid=$(cat "$W/sink/pid")
  "$HERE/smtp_sink.sh" stop "$W/sink" || return 1
  [[ ! -r /proc/$pid/stat || $(awk '{print $3}' "/proc/$pid/stat") == Z ]]
}
check smtp_sink sink

# ---------------------------------------------------------------- Postfix + Dovecot
pf() {
  local port tport; port=$(free_port); tport=$(free_port)
  local P=$W/postfix
  "$HERE/postfix_instance.sh" start "$P" "$port" "$tport" || return 1
  swaks </dev/null --server "127.0.0.1:$port" --tls --tls-verify --tls-ca-path "$P/pki/ca.crt" \
    --auth PLAIN --auth-user testuser@example.com --auth-password testpass \
    --from a@example.com --to swaks@example.com --body 'via swaks' || return 1
  "${CHECK[@]}" --port "$port" --starttls --ca "$P/pki/ca.crt" --auth PLAIN --via BDAT \
    --body-file "$BODY" --to bdat@example.com || return 1
  "${CHECK[@]}" --port "$tport" --implicit --ca "$P/pki/ca.crt" --auth SCRAM-SHA-256 --via none || return 1
  "${CHECK[@]}" --port "$tport" --implicit --ca "$P/pki/ca.crt" --auth PLAIN --password wrong \
    --via none --expect-auth 535 || return 1
  wait_files "$P/mail/capture/new/*" 2 || { echo "maildir: $(ls "$P/mail/capture/new")"; return 1; }
  local f; f=$(grep -l '^X-Original-To: bdat@example.com' "$P"/mail/capture/new/*)
  "$PY" "$HERE/maildir_extract.py" "$f" --raw-out "$W/pf-bdat.eml" &&
  cmp "$BODY" "$W/pf-bdat.eml" &&
  grep -q 'sasl_method=PLAIN, sasl_username=testuser@example.com' "$P/maillog" &&
  grep -l '^X-Original-To: swaks@example.com' "$P"/mail/capture/new/* >/dev/null &&
  "$HERE/postfix_instance.sh" stop "$P"
}
check postfix_starttls_auth_bdat_maildir pf

# ---------------------------------------------------------------- LMTP
# a body over 1 KiB (the over-quota mailbox holds 1 byte), CRLF, a leading dot
LMTP_BODY=$W/lmtp-body.eml
{ printf 'From: <sender@example.org>\r\nSubject: lmtp selftest\r\n\r\n.leading dot\r\n'
  for i in $(seq 40); do printf 'line %02d of the LMTP self-test body\r\n' "$i"; done
  printf 'end\r\n'; } > "$LMTP_BODY"
LMTP=("$PY" "$HERE/lmtp_check.py")

# Dovecot LMTP: Unix socket and TCP; one recipient delivered, one over quota (552
# after the dot), one unknown (550 at RCPT); the delivered bytes read back.
dovecot_lmtp() {
  local port; port=$(free_port)
  local L=$W/dovecot-lmtp
  "$HERE/dovecot_lmtp.sh" start "$L" "$port" || return 1
  "${LMTP[@]}" --unix "$L/lmtp.sock" --body-file "$LMTP_BODY" --via DATA \
    --rcpt alice@example.org=250 --rcpt nobody@example.org=550 --rcpt full@example.org=552 || return 1
  "${LMTP[@]}" --port "$port" --body-file "$LMTP_BODY" --via BDAT \
    --rcpt full@example.org=552 --rcpt bob@example.org=250 || return 1
  wait_files "$L/mail/alice/Maildir/new/*" 1 && wait_files "$L/mail/bob/Maildir/new/*" 1 || return 1
  [[ $(compgen -G "$L/mail/full/Maildir/new/*" | wc -l) -eq 0 ]] || { echo "over-quota mailbox got mail"; return 1; }
  local f
  for f in "$L"/mail/alice/Maildir/new/* "$L"/mail/bob/Maildir/new/*; do
    # Dovecot prepends Return-Path, Delivered-To and Received; the rest is our bytes
    "$PY" -c 'import sys; d=open(sys.argv[1],"rb").read(); b=open(sys.argv[2],"rb").read()
sys.exit(0 if d.startswith(b"Return-Path: <sender@example.org>\r\n") and d.endswith(b"\r\n"+b) else 1)' \
      "$f" "$LMTP_BODY" || { echo "delivered bytes differ: $f"; head -c 400 "$f"; return 1; }
  done
  grep -q 'full@example.org.*Quota exceeded' "$L/dovecot.log" || return 1
  local pid; pid=$(cat "$L/dovecot.pid")
  "$HERE/dovecot_lmtp.sh" stop "$L" || return 1
  [[ ! -r /proc/$pid/stat || $(awk '{print $3}' "/proc/$pid/stat") == Z ]]
}
check dovecot_lmtp_unix_tcp_quota_maildir dovecot_lmtp

# aiosmtpd's LMTP class: per-recipient verdicts chosen by the local part, exact bytes
aio_lmtp() {
  start_aiosmtpd aio-lmtp --lmtp --unix "$W/aio-lmtp/lmtp.sock" || return 1
  local M=$W/aio-lmtp/msgs
  "${LMTP[@]}" --port "$PORT" --body-file "$LMTP_BODY" --via DATA --rcpt a@example.org=250 \
    --rcpt fail@example.org=550 --rcpt reject@example.org=550 --rcpt failtemp@example.org=452 || return 1
  "${LMTP[@]}" --unix "$W/aio-lmtp/lmtp.sock" --body-file "$LMTP_BODY" --via BDAT \
    --rcpt failtemp@example.org=452 --rcpt b@example.org=250 || return 1
  wait_files "$M/000002.json" 1 && cmp "$LMTP_BODY" "$M/000001.eml" && cmp "$LMTP_BODY" "$M/000002.eml" &&
  json_is "$M/000001.json" 'd["via"]=="DATA" and [r[0] for r in d["lmtp"]]==["a@example.org","fail@example.org","failtemp@example.org"] and [r[1][:3] for r in d["lmtp"]]==["250","550","452"]' &&
  json_is "$M/000002.json" 'd["via"]=="BDAT" and d["peer"] is None and [r[1][:3] for r in d["lmtp"]]==["452","250"]'
}
check aiosmtpd_lmtp_tcp_unix_per_recipient aio_lmtp

# ---------------------------------------------------------------- SOCKS5 (Dante)
# curl through the proxy (the name resolved by the proxy) into aiosmtpd; raw
# handshakes for the failure replies; no-auth and username/password variants.
S5=("$PY" "$HERE/socks5_check.py")
dante() {
  local pn pu; pn=$(free_port); pu=$(free_port)
  "$HERE/dante_socks.sh" start "$W/dante-none" "$pn" none || return 1
  "$HERE/dante_socks.sh" start "$W/dante-userpass" "$pu" userpass || return 1
  start_aiosmtpd aio-socks || return 1
  local M=$W/aio-socks/msgs
  curl -sS --socks5-hostname "127.0.0.1:$pn" "smtp://localhost:$PORT" \
    --mail-from a@example.com --mail-rcpt noauth@example.com -T "$BODY" || return 1
  curl -sS --socks5-hostname "127.0.0.1:$pu" --proxy-user smtpuvsocks:smtpuv-socks-pass \
    "smtp://localhost:$PORT" --mail-from a@example.com --mail-rcpt userpass@example.com -T "$BODY" || return 1
  wait_files "$M/000002.json" 1 || return 1
  json_is "$M/000001.json" 'd["rcpt_tos"]==["noauth@example.com"] and d["peer"][0]=="127.0.0.1"' &&
  json_is "$M/000002.json" 'd["rcpt_tos"]==["userpass@example.com"]' || return 1
  # without credentials, with wrong ones, to a forbidden destination: refused
  ! curl -sS --socks5-hostname "127.0.0.1:$pu" "smtp://localhost:$PORT" \
    --mail-from a@example.com --mail-rcpt x@example.com -T "$BODY" || { echo "no-auth passed"; return 1; }
  [[ $(compgen -G "$M/*.json" | wc -l) -eq 2 ]] || return 1
  "${S5[@]}" --port "$pn" --dst-name localhost --dst-port "$PORT" --expect-greeting &&
  "${S5[@]}" --port "$pn" --dst-ip 127.0.0.1 --dst-port "$PORT" --expect-greeting &&
  "${S5[@]}" --port "$pn" --dst-ip 127.0.0.2 --dst-port "$PORT" --expect-rep 2 &&
  "${S5[@]}" --port "$pn" --dst-ip 127.0.0.1 --dst-port "$(free_port)" --expect-rep 5 &&
  "${S5[@]}" --port "$pu" --dst-name localhost --dst-port "$PORT" --expect-method ff &&
  "${S5[@]}" --port "$pu" --user smtpuvsocks --password wrong --dst-name localhost \
    --dst-port "$PORT" --expect-method 02 --expect-auth 01 &&
  "${S5[@]}" --port "$pu" --user smtpuvsocks --password smtpuv-socks-pass --no-offer-none \
    --dst-name localhost --dst-port "$PORT" --expect-method 02 --expect-greeting || return 1
  local p1 p2; p1=$(cat "$W/dante-none/danted.pid"); p2=$(cat "$W/dante-userpass/danted.pid")
  "$HERE/dante_socks.sh" stop "$W/dante-none" && "$HERE/dante_socks.sh" stop "$W/dante-userpass" || return 1
  local p
  for p in $p1 $p2; do [[ ! -r /proc/$p/stat || $(awk '{print $3}' "/proc/$p/stat") == Z ]] || return 1; done
}
check dante_socks5_noauth_userpass_curl dante

echo "selftest: $PASS passed, $FAIL failed"
if [[ $FAIL -eq 0 && $KEEP -eq 0 ]]; then rm -rf "$W"; fi
[[ $FAIL -eq 0 ]]
