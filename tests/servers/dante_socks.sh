#!/bin/sh
# SPDX-License-Identifier: MIT
# A private Dante SOCKS5 proxy (Debian dante-server, danted 1.4) for the proxy
# integration tests: a generated configuration in DIR, one process in the foreground
# (its PID in DIR/danted.pid), listening on 127.0.0.1:PORT and forwarding ONLY to
# 127.0.0.1 (CONNECT elsewhere is refused with reply 2, "not allowed by ruleset").
# Destinations given as names (ATYP 3) are resolved by the proxy ("localhost" works).
# Needs root. Never touches /etc/danted.conf or a system instance.
#
# usage: dante_socks.sh start DIR PORT [AUTH=none|userpass]
#        dante_socks.sh stop  DIR
#
# AUTH=none      socksmethod none: no authentication (RFC 1928 method X'00')
# AUTH=userpass  socksmethod username (RFC 1929): Dante checks system accounts, so
#                the script creates (idempotently) the dedicated system user
#                smtpuvsocks (no home, no shell, locked for login) and sets its
#                password to smtpuv-socks-pass on every start. A client offering only
#                "no authentication" gets X'FF'.
# Afterwards: DIR/danted.log (one line per connection: pass/block, addresses).
# A watchdog stops the proxy after LIFETIME seconds (default 600) if nobody did.
set -eu
CMD=${1:?start|stop}; D=$(realpath -m "${2:?DIR}")
PORT=${3:-}; AUTH=${4:-none}
LIFETIME=${LIFETIME:-600}
SOCKS_USER=smtpuvsocks
SOCKS_PASS=smtpuv-socks-pass

alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

stop() {
  if [ -f "$D/watchdog.pid" ]; then
    kill "$(cat "$D/watchdog.pid")" 2>/dev/null || true
    rm -f "$D/watchdog.pid"
  fi
  if [ -f "$D/danted.pid" ]; then
    pid=$(cat "$D/danted.pid")
    kids=$(ps -o pid= --ppid "$pid" 2>/dev/null || true)   # its worker processes
    kill "$pid" 2>/dev/null || true
    for p in $pid $kids; do
      for _ in $(seq 100); do alive "$p" || break; sleep 0.05; done
    done
    rm -f "$D/danted.pid"
  fi
}
if [ "$CMD" = stop ]; then stop; exit 0; fi
[ "$CMD" = start ] && [ -n "$PORT" ] || { echo "usage: $0 start DIR PORT [none|userpass]" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "dante_socks.sh: needs root" >&2; exit 1; }
command -v danted >/dev/null || { echo "danted not installed (dante-server)" >&2; exit 1; }

case $AUTH in
none) METHOD=none ;;
userpass)
  METHOD=username
  if ! id "$SOCKS_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
      --comment "smtpuv SOCKS5 tests" "$SOCKS_USER"
  fi
  echo "$SOCKS_USER:$SOCKS_PASS" | chpasswd
  ;;
*) echo "dante_socks.sh: AUTH is none or userpass" >&2; exit 2 ;;
esac

stop
mkdir -p "$D"
cat > "$D/danted.conf" <<EOF
logoutput: $D/danted.log
errorlog: $D/danted.log
internal: 127.0.0.1 port = $PORT
external: 127.0.0.1
clientmethod: none
socksmethod: $METHOD
user.privileged: root
user.unprivileged: nobody
timeout.negotiate: 10
timeout.io: 60

client pass {
  from: 127.0.0.0/8 to: 0.0.0.0/0
  log: error
}
client block {
  from: 0.0.0.0/0 to: 0.0.0.0/0
  log: connect error
}
socks pass {
  from: 127.0.0.0/8 to: 127.0.0.1/32
  command: connect
  log: connect disconnect error
}
socks block {
  from: 0.0.0.0/0 to: 0.0.0.0/0
  log: connect error
}
EOF
: > "$D/danted.log"
danted -f "$D/danted.conf" -p "$D/danted.pid.tmp" -N 1 >>"$D/stdout.log" 2>&1 &
echo $! > "$D/danted.pid"
# ready when the port accepts a connection (a SOCKS5 method request gets 2 bytes)
for _ in $(seq 200); do
  if python3 - "$PORT" <<'PY' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"\x05\x01\x00")
sys.exit(0 if len(s.recv(2)) == 2 else 1)
PY
  then break; fi
  alive "$(cat "$D/danted.pid")" || { echo "danted exited" >&2; cat "$D"/*.log >&2; exit 1; }
  sleep 0.05
done
python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)' "$PORT" \
  2>/dev/null || { echo "danted: port $PORT not listening" >&2; cat "$D"/*.log >&2; stop; exit 1; }
( sleep "$LIFETIME"; kill "$(cat "$D/danted.pid" 2>/dev/null)" 2>/dev/null ) >/dev/null 2>&1 &
echo $! > "$D/watchdog.pid"
