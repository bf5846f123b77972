#!/bin/sh
# SPDX-License-Identifier: MIT
# usage: wait_tls_port.sh PORT [TIMEOUT_SECONDS=10]
# Like wait_port.sh for implicit-TLS listeners: waits for a 220 through openssl s_client.
PORT=${1:?usage: wait_tls_port.sh PORT [TIMEOUT]}; T=${2:-10}
end=$(( $(date +%s) + T ))
while [ "$(date +%s)" -le "$end" ]; do
  if echo QUIT | timeout 3 openssl s_client -connect "127.0.0.1:$PORT" -quiet 2>/dev/null | grep -q '^220'; then
    exit 0
  fi
  sleep 0.1
done
echo "wait_tls_port: 127.0.0.1:$PORT not ready after ${T}s" >&2
exit 1
