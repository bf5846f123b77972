#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# README command 1: install what is missing, build, and show smtpuv working.
#
#   scripts/demo.sh
#
# The demo generates a throwaway CA, starts a local aiosmtpd (a real SMTP
# server from Debian's python3-aiosmtpd) on a free loopback port with
# STARTTLS and AUTH, sends one message with smtpuv-send over STARTTLS + AUTH
# (the conversation is printed, AUTH redacted), prints what the server
# received and stops the server by its PID. SMTPUV_DEMO=core instead drives
# the sans-io core alone through a scripted conversation
# (examples/core_conversation.c).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
LOGS=$ROOT/build/logs
mkdir -p "$LOGS"

run_logged() {
  local log=$LOGS/$1.log; shift
  if ! "$@" > "$log" 2>&1; then
    echo "demo: '$*' failed; last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
}

echo "== installing dependencies (only what is missing)"
"$ROOT/scripts/install-deps.sh"

echo "== building in build/"
run_logged demo-configure cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo

demo_core() {
  run_logged demo-build cmake --build "$ROOT/build" -j2 --target core_conversation
  echo "== the sans-io core through one ESMTP conversation (C: client, S: server)"
  echo
  "$ROOT/build/examples/core_conversation"
}

# The client demo: aiosmtpd on free loopback ports with STARTTLS and AUTH
# (tests/servers/aiosmtpd_server.py), a throwaway CA, one message through the
# client, then what the server stored. send_message is the only piece that
# depends on smtpuv-send's command line.
DEMO_SRV_PID="" DEMO_DIR=""
demo_cleanup() {
  if [[ -n $DEMO_SRV_PID ]]; then kill "$DEMO_SRV_PID" 2>/dev/null || true; fi
  if [[ -n $DEMO_DIR ]]; then rm -rf "$DEMO_DIR"; fi
}
demo_client() {
  local w; w=$(mktemp -d /tmp/smtpuv-demo.XXXXXX)
  DEMO_DIR=$w
  trap demo_cleanup EXIT
  run_logged demo-build cmake --build "$ROOT/build" -j2 --target smtpuv-send
  "$ROOT/tests/servers/gen_certs.sh" "$w/pki"
  /usr/bin/python3 "$ROOT/tests/servers/aiosmtpd_server.py" --port 0 --cert "$w/pki/server.crt" \
    --key "$w/pki/server.key" --outdir "$w/msgs" --lifetime 60 > "$w/ready" 2> "$w/server.log" &
  DEMO_SRV_PID=$!
  for _ in $(seq 100); do grep -q '^READY' "$w/ready" && break; sleep 0.05; done
  local port; read -r _ port _ < "$w/ready"
  echo "== aiosmtpd on 127.0.0.1:$port (STARTTLS, AUTH after TLS; user testuser@example.com)"
  send_message "$port" "$w"
  for _ in $(seq 100); do [[ -f $w/msgs/000001.json ]] && break; sleep 0.05; done
  echo "== what the server received (envelope, then the exact message bytes)"
  cat "$w/msgs/000001.json"; echo
  cat "$w/msgs/000001.eml"
}

send_message() { # send_message PORT WORKDIR
  local rc=0
  printf 'From: Alice <testuser@example.com>\r\nTo: Bob <bob@example.net>\r\nSubject: smtpuv demo\r\n\r\nHello from smtpuv-send.\r\n.a line starting with a dot\r\n' > "$2/msg.eml"
  echo "== smtpuv-send -d --host=127.0.0.1 --port=$1 --tls-trust-file=ca.crt --user=testuser@example.com --passwordeval='echo testpass' -t < msg.eml"
  "$ROOT/build/examples/smtpuv-send" -d --host=127.0.0.1 --port="$1" \
    --tls-trust-file="$2/pki/ca.crt" --user=testuser@example.com \
    --passwordeval='echo testpass' -t < "$2/msg.eml" 2>&1 || rc=$?
  echo "== smtpuv-send exit status: $rc"
  return "$rc"
}

case ${SMTPUV_DEMO:-client} in
  core) demo_core ;;
  client) demo_client ;;
  *) echo "SMTPUV_DEMO must be core or client" >&2; exit 2 ;;
esac
