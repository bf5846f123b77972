#!/bin/sh
# SPDX-License-Identifier: MIT
# The Node binding's test (ctest "node_binding", label integration): build
# the addon (scripts/build.sh: npm ci from package-lock.json, node-gyp
# against Node's own headers, the link check), then node --test against the
# repository's real servers. One build at a time (flock): build/ and
# build-asan/ both register this test.
set -eu
HERE=$(cd "$(dirname "$0")/.." && pwd)
cd "$HERE"
exec 9>"$HERE/.build.lock"
flock 9
sh scripts/build.sh --no-ci
exec node --test --test-reporter=spec test/client.test.js test/sendmail.test.js
