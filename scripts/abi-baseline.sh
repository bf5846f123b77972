#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Regenerate the ABI baseline abi/libsmtpuv_core.abi and abi/libsmtpuv.abi
# from a fresh shared build in build-abi/ (one command; see scripts/abi-check.sh
# and CHANGELOG.md). Run it in the release that changes the ABI, after every
# branch of that release is merged, and commit abi/ with it.
#
#   scripts/abi-baseline.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rm -rf "$ROOT/build-abi"
exec "$ROOT/scripts/abi-check.sh" --update "$ROOT/build-abi"
