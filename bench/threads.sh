#!/bin/bash
# SPDX-License-Identifier: MIT
# Submitting from threads (issue 10): smtpuv-bench on ONE client and one
# connection, fed from the loop thread and from T threads
# (smtpuv_client_send_threadsafe), against Postfix's smtp-sink on loopback.
# Information only: prints msgs/s and CPU per message (all threads) per run.
#
#   bench/threads.sh PATH/TO/smtpuv-bench [MESSAGES] [ROUNDS]
#
# Defaults: 20000 messages of 2 KiB, 3 rounds of: loop thread (-w 16),
# --threads=1, --threads=4, --threads=8 (each thread -w 16).
set -euo pipefail
BENCH=${1:?usage: threads.sh PATH/TO/smtpuv-bench [MESSAGES] [ROUNDS]}
MSGS=${2:-20000}
ROUNDS=${3:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/sink_lib.sh"
DIR=$(mktemp -d /tmp/smtpuv-threads.XXXXXX)
chmod 755 "$DIR"
trap 'sink_stop; rm -rf "$DIR"' EXIT
sink_start "$DIR" 256
for ((r = 1; r <= ROUNDS; r++)); do
  for args in "" --threads=1 --threads=4 --threads=8; do
    line=$("$BENCH" -q -d -s 1 -w 16 -m "$MSGS" -l 2048 $args "127.0.0.1:$SINK_PORT" |
      sed -n 's/^RESULT //p')
    printf '%-12s %s\n' "${args:-loop}" \
      "$(tr ' ' '\n' <<<"$line" | grep -E '^(sent|msgs_per_s|cpu_us_per_msg|maxrss_kib)=' | paste -sd' ')"
  done
done
