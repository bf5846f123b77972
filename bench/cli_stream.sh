#!/bin/bash
# SPDX-License-Identifier: MIT
# smtpuv-send beside msmtp on one big message: a 200 MB mail with -t and a
# Bcc header (so the header block is rewritten and the body streamed), sent
# to one smtp-sink on a free loopback port, plaintext, no AUTH. Peak RSS
# (/usr/bin/time -f %M) and wall time of each program, RUNS times each
# (A B A B ...), then the medians and the ratio. Not a test: nothing fails
# on timing; the exit status is non-zero only when a send fails or the
# target RSS (16 MiB) is exceeded by smtpuv-send.
#
#   bench/cli_stream.sh [--send PATH] [--size MB] [--runs N]
#
# smtpuv-send: --send PATH (or SMTPUV_SEND), else build/examples/smtpuv-send.
# Needs postfix (smtp-sink), msmtp and GNU time (scripts/install-deps.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SEND=${SMTPUV_SEND:-$ROOT/build/examples/smtpuv-send}
SIZE_MB=200
RUNS=3
while [[ $# -gt 0 ]]; do
  case $1 in
  --send) SEND=$2; shift 2 ;;
  --size) SIZE_MB=$2; shift 2 ;;
  --runs) RUNS=$2; shift 2 ;;
  *) echo "usage: $0 [--send PATH] [--size MB] [--runs N]" >&2; exit 64 ;;
  esac
done
[[ -x $SEND ]] || { echo "no smtpuv-send at $SEND (build it first)" >&2; exit 1; }
MSMTP=$(command -v msmtp || true)
[[ -n $MSMTP ]] || { echo "msmtp is not installed" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "GNU time (/usr/bin/time) is not installed" >&2; exit 1; }
# shellcheck source=bench/sink_lib.sh
. "$HERE/sink_lib.sh"

TMP=$(mktemp -d /tmp/smtpuv-cli-bench.XXXXXX)
cleanup() { sink_stop; rm -rf "$TMP"; }
trap cleanup EXIT

# the message: header block with To, Cc and a Bcc, then SIZE_MB MB of
# 76-character lines (every 7th starting with a dot: dot-stuffing on the way)
python3 - "$TMP/msg" "$SIZE_MB" <<'EOF'
import sys
path, mb = sys.argv[1], int(sys.argv[2])
head = (b"From: Bench <bench@example.com>\n"
        b"To: r1@example.org, r2@example.org\n"
        b"Cc: r3@example.org\n"
        b"Bcc: hidden1@example.org,\n hidden2@example.org\n"
        b"Subject: 200 MB streamed\n"
        b"Message-ID: <bench@example.com>\n"
        b"Date: Tue, 01 Dec 2026 10:00:00 +0000\n\n")
line = b"x" * 75 + b"\n"
dot = b"." + b"y" * 74 + b"\n"
block = b"".join(dot if i % 7 == 0 else line for i in range(7 * 1024))
with open(path, "wb") as f:
    f.write(head)
    left = mb * 1000 * 1000
    while left > 0:
        chunk = block[:left]
        f.write(chunk)
        left -= len(chunk)
    f.write(b"\n")
EOF
BYTES=$(stat -c %s "$TMP/msg")

sink_start "$TMP" 64
echo "message: $BYTES bytes, -t, To/Cc/Bcc; smtp-sink 127.0.0.1:$SINK_PORT"
echo "machine: $(nproc) CPUs, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "smtpuv-send: $SEND ($("$SEND" --version | head -1))"
echo "msmtp: $MSMTP ($("$MSMTP" --version | head -1))"

# run NAME CMD...: one timed run; appends "rss_kib seconds" to $TMP/NAME
run() {
  local name=$1
  shift
  /usr/bin/time -o "$TMP/time.out" -f "%M %e" timeout 600 "$@" -t <"$TMP/msg" \
    >"$TMP/$name.stdout" 2>"$TMP/$name.stderr" || {
    echo "$name failed:" >&2
    cat "$TMP/$name.stderr" "$TMP/time.out" >&2
    return 1
  }
  tail -1 "$TMP/time.out" >>"$TMP/$name"
}

for ((i = 1; i <= RUNS; i++)); do
  run smtpuv "$SEND" --host=127.0.0.1 --port="$SINK_PORT" --tls=off --read-envelope-from
  run msmtp "$MSMTP" --host=127.0.0.1 --port="$SINK_PORT" --tls=off --auth=off --read-envelope-from
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
printf '\n%-12s %12s %12s %10s   (median of %d runs; every run: rss_kib seconds)\n' \
  program "peak RSS MiB" "seconds" "MB/s" "$RUNS"
for p in smtpuv msmtp; do
  rss=$(cut -d' ' -f1 "$TMP/$p" | median)
  sec=$(cut -d' ' -f2 "$TMP/$p" | median)
  printf '%-12s %12.1f %12.2f %10.1f   %s\n' "$p" "$(echo "$rss / 1024" | bc -l)" "$sec" \
    "$(echo "$BYTES / 1000000 / $sec" | bc -l)" "$(tr '\n' ';' <"$TMP/$p")"
done
s_rss=$(cut -d' ' -f1 "$TMP/smtpuv" | median)
s_sec=$(cut -d' ' -f2 "$TMP/smtpuv" | median)
m_sec=$(cut -d' ' -f2 "$TMP/msmtp" | median)
printf 'time ratio smtpuv-send / msmtp: %.2f (<= 1 is at least as fast)\n' "$(echo "$s_sec / $m_sec" | bc -l)"
printf 'target: peak RSS <= 16 MiB: %s\n' "$( ((s_rss <= 16384)) && echo met || echo MISSED)"
((s_rss <= 16384))
