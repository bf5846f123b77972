#!/bin/sh
# SPDX-License-Identifier: MIT
# usage: wait_port.sh PORT [TIMEOUT_SECONDS=10] [HOST=127.0.0.1]
# Waits until HOST:PORT accepts TCP and sends an SMTP "220" greeting.
# Exit 0 when ready, 1 on timeout. Uses bash's /dev/tcp (no nc needed).
PORT=${1:?usage: wait_port.sh PORT [TIMEOUT] [HOST]}; T=${2:-10}; H=${3:-127.0.0.1}
end=$(( $(date +%s) + T ))
while [ "$(date +%s)" -le "$end" ]; do
  if bash -c "exec 3<>/dev/tcp/$H/$PORT && timeout 2 head -c 4 <&3 | grep -q '^220'" 2>/dev/null; then
    exit 0
  fi
  sleep 0.05
done
echo "wait_port: $H:$PORT not ready after ${T}s" >&2
exit 1
