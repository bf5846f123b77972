#!/bin/sh
# SPDX-License-Identifier: MIT
# Build the addon from a clean checkout, offline apart from the npm registry
# for the locked dev dependencies:
#   npm ci   (node-gyp and nodemailer at the versions of package-lock.json,
#             integrity-checked; --prefer-offline reuses the npm cache)
#   node-gyp rebuild --nodedir=/usr   (Node's own headers: no header download)
#   check-links.sh                    (no libuv/libssl of its own)
# usage: bindings/node/scripts/build.sh [--no-ci]
set -eu
cd "$(dirname "$0")/.."
if [ "${1:-}" != --no-ci ] || [ ! -d node_modules/node-gyp ]; then
  npm ci --no-audit --no-fund --prefer-offline --loglevel=error
fi
NODEDIR=${SMTPUV_NODEDIR:-/usr}
[ -f "$NODEDIR/include/node/node_api.h" ] || {
  echo "build.sh: $NODEDIR/include/node/node_api.h missing (Node's headers)" >&2; exit 1; }
./node_modules/.bin/node-gyp rebuild --nodedir="$NODEDIR" --jobs=2 --loglevel=warn
sh scripts/check-links.sh build/Release/smtpuv.node
