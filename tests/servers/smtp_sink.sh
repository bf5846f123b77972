#!/bin/bash
# SPDX-License-Identifier: MIT
# Postfix's smtp-sink as a throwaway capture/fault-injection server (loopback only).
#
# usage: smtp_sink.sh start DIR PORT [extra smtp-sink options...]
#        smtp_sink.sh stop  DIR
# start: runs `smtp-sink -u nobody -c -h localhost -d DIR/msgs/%H%M%S. [extra] 127.0.0.1:PORT 64`
#        in the background, records its PID in DIR/pid, waits for the 220 and prints
#        "READY smtp-sink PORT pid=N". Each message is dumped as a file in DIR/msgs/
#        (LF line endings, dot-unstuffed, after X-Client-Addr/X-Helo-Args/X-Mail-Args/
#        X-Rcpt-Args/Received headers). Output of smtp-sink goes to DIR/sink.log.
#        Useful extras: -r CMD,... / -f CMD,... (4xx / 5xx for commands), -q / -Q CMD
#        (disconnect / 421), -A N (abort DATA), -w N / -W CMD:N (delays),
#        -M N / -n N (exit after N messages / sessions), -p -8 -e -E (hide extensions).
#        smtp-sink has no STARTTLS, no SIZE/SMTPUTF8 advertised, no BDAT, and a fake AUTH
#        (it answers "250 2.0.0 Ok", not 235).
# stop:  kills the recorded PID (bounded wait).
# A watchdog kills the sink after LIFETIME seconds (default 600) if nobody did.
# Needs root (smtp-sink insists on -u when run as root) and the postfix package.
set -euo pipefail
CMD=${1:?usage: smtp_sink.sh start DIR PORT [opts] | stop DIR}
D=$(realpath -m "${2:?DIR}")
HERE=$(cd "$(dirname "$0")" && pwd)
SINK=$(command -v smtp-sink || echo /usr/sbin/smtp-sink)

# alive PID: the process exists and is not a zombie waiting to be reaped
alive() { [[ -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }

if [[ $CMD == stop ]]; then
  if [[ -f $D/watchdog.pid ]]; then
    kill "$(cat "$D/watchdog.pid")" 2>/dev/null || true
    rm -f "$D/watchdog.pid"
  fi
  if [[ -f $D/pid ]]; then
    pid=$(cat "$D/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 40); do alive "$pid" || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$D/pid"
  fi
  exit 0
fi
[[ $CMD == start ]] || { echo "smtp_sink.sh: unknown command $CMD" >&2; exit 2; }
PORT=${3:?PORT}
shift 3
mkdir -p "$D/msgs"
chmod 755 "$D"
chown nobody "$D/msgs"
"$SINK" -u nobody -c -h localhost -d "$D/msgs/%H%M%S." "$@" "127.0.0.1:$PORT" 64 \
  >>"$D/sink.log" 2>&1 </dev/null &
echo $! > "$D/pid"
if ! "$HERE/wait_port.sh" "$PORT" 10; then
  cat "$D/sink.log" >&2
  "$0" stop "$D"
  exit 1
fi
# Safety net: kill the sink after LIFETIME seconds (the watchdog is killed by "stop").
setsid bash -c 'trap "kill \$s 2>/dev/null; exit 0" TERM; sleep "$1" & s=$!; wait $s
                kill -9 "$2" 2>/dev/null' _ "${LIFETIME:-600}" "$(cat "$D/pid")" </dev/null >/dev/null 2>&1 &
echo $! > "$D/watchdog.pid"
echo "READY smtp-sink $PORT pid=$(cat "$D/pid")"
