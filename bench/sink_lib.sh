# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Sourced by bench/compare.sh and bench/smoke.sh: start and stop Postfix's
# smtp-sink on a free loopback port. Loopback only; the sink is stopped by
# the PID recorded here (never by name).
#
#   sink_start DIR BACKLOG [smtp-sink options...]   sets SINK_PID, SINK_PORT
#   sink_stop                                       idempotent
#
# smtp-sink insists on -u USER when run as root; "nobody" is used then.

SINK_BIN=${SINK_BIN:-$(command -v smtp-sink 2>/dev/null || echo /usr/sbin/smtp-sink)}
SINK_PID=
SINK_PORT=

sink_free_port() {
  python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Wait (bounded) until 127.0.0.1:$1 sends a 220 greeting.
sink_wait() {
  local port=$1 tries=${2:-100} line
  for ((i = 0; i < tries; i++)); do
    if { exec 9<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
      line=
      read -r -t 2 line <&9 || true
      printf 'QUIT\r\n' >&9 2>/dev/null || true
      exec 9>&- 9<&-
      [[ $line == 220* ]] && return 0
    fi
    sleep 0.05
  done
  return 1
}

sink_start() {
  local dir=$1 backlog=$2
  shift 2
  local user=()
  [[ $(id -u) == 0 ]] && user=(-u nobody)
  for _ in 1 2 3 4 5; do
    SINK_PORT=$(sink_free_port)
    "$SINK_BIN" "${user[@]}" "$@" "127.0.0.1:$SINK_PORT" "$backlog" \
      >>"$dir/sink.log" 2>&1 </dev/null &
    SINK_PID=$!
    if sink_wait "$SINK_PORT" 60 && kill -0 "$SINK_PID" 2>/dev/null; then
      return 0
    fi
    sink_stop
  done
  echo "sink_lib: smtp-sink did not start; log:" >&2
  cat "$dir/sink.log" >&2
  return 1
}

sink_stop() {
  [[ -n $SINK_PID ]] || return 0
  kill "$SINK_PID" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$SINK_PID" 2>/dev/null || break
    sleep 0.05
  done
  kill -9 "$SINK_PID" 2>/dev/null || true
  wait "$SINK_PID" 2>/dev/null || true
  SINK_PID=
}
