#!/bin/bash
# SPDX-License-Identifier: MIT
# Smoke run of smtpuv-bench against smtp-sink (ctest: bench_smoke, label
# integration). Correctness only: every message must be reported sent.
# No timing is asserted.
#
#   bench/smoke.sh PATH/TO/smtpuv-bench
#
# Exit 0 on success, 1 on failure, 77 (skipped) when smtp-sink is missing.
set -euo pipefail
BENCH=${1:?usage: smoke.sh PATH/TO/smtpuv-bench}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/sink_lib.sh"

if [[ ! -x $SINK_BIN ]] || ! command -v python3 >/dev/null; then
  echo "SKIP: smtp-sink (postfix) or python3 not installed"
  exit 77
fi

DIR=$(mktemp -d /tmp/smtpuv-smoke.XXXXXX)
trap 'sink_stop; rm -rf "$DIR"' EXIT
chmod 755 "$DIR"
sink_start "$DIR" 64
echo "smtp-sink pid $SINK_PID on 127.0.0.1:$SINK_PORT"

# A small streamed file: lines starting with '.', LF endings.
printf 'From: <a@example.com>\nTo: <b@example.com>\nSubject: smoke\n\n' >"$DIR/msg"
for i in $(seq 300); do
  if ((i % 7 == 0)); then echo ".line $i"; else echo "line $i"; fi
done >>"$DIR/msg"

run() {
  echo "+ smtpuv-bench $*"
  "$BENCH" --timeout=60 "$@" "127.0.0.1:$SINK_PORT"
}
run -d -s 2 -m 200 -l 2048
run -s 2 -m 10 -l 100
run -d -s 1 -m 3 -F "$DIR/msg"
run -d -s 1 -m 20 -l 512 --no-pipelining
echo "bench_smoke: OK"
