#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Compare the ABI of the shared libraries with the baseline kept in abi/.
#
#   scripts/abi-check.sh [BUILD_DIR]      check (the install stage of scripts/test.sh)
#   scripts/abi-check.sh --update         rewrite the baseline (= scripts/abi-baseline.sh)
#
# BUILD_DIR is a shared build (-DBUILD_SHARED_LIBS=ON, with debug info); it
# defaults to build-abi/, configured and built here when it has no libraries.
# The baseline is abi/libsmtpuv_core.abi and abi/libsmtpuv.abi: `abidw` dumps
# (abigail-tools) of the public ABI only (types of include/, no paths), made
# by the same compiler family (gcc, RelWithDebInfo).
#
# The check, per library, with abidiff:
#   - same soname as the baseline: fails on any incompatible change: a
#     function or variable removed or changed (including the layout of a
#     public type it reaches), a symbol removed. Added functions pass (and
#     are listed: the baseline should be refreshed at the next release).
#   - another soname (the minor version was bumped below 1.0, the major
#     from 1.0): passes, the differences are listed; run --update as part of
#     that release so the next changes are checked against it.
# Exit status 1 when a library fails or the baseline is missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=check
if [[ ${1:-} == --update ]]; then MODE=update; shift; fi
BUILD=${1:-$ROOT/build-abi}
# (the ctest abi_check_logic points these at libraries of its own)
ABI=${SMTPUV_ABI_DIR:-$ROOT/abi}
HEADERS=${SMTPUV_ABI_HEADERS:-$ROOT/include}
LIBS=${SMTPUV_ABI_LIBS:-libsmtpuv_core libsmtpuv}
JOBS=${SMTPUV_JOBS:-2}

for t in abidw abidiff readelf; do
  command -v "$t" >/dev/null || { echo "abi: $t not found (scripts/install-deps.sh installs abigail-tools, binutils)" >&2; exit 1; }
done

lib_path() { # lib_path NAME: the real file of BUILD/NAME.so
  local f=$BUILD/$1.so
  [[ -e $f ]] || return 1
  readlink -f "$f"
}

have_libs=1
for l in $LIBS; do lib_path "$l" >/dev/null || have_libs=0; done
if [[ $have_libs == 0 ]]; then
  echo "abi: building shared libraries in $BUILD"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc \
    -DBUILD_SHARED_LIBS=ON -DSMTPUV_BUILD_TESTS=OFF -DSMTPUV_BUILD_EXAMPLES=OFF \
    -DSMTPUV_BUILD_BENCH=OFF >/dev/null
  cmake --build "$BUILD" -j"$JOBS" --target smtpuv_core smtpuv >/dev/null
fi

# dump SO OUT: the public ABI of SO, reproducible (no paths, hashed type ids)
dump() {
  abidw --headers-dir "$HEADERS" --drop-private-types --no-corpus-path \
    --no-comp-dir-path --short-locs --type-id-style hash --out-file "$2" "$1"
}
soname_of_so() { readelf -d "$1" | sed -nE 's/.*\(SONAME\).*\[(.*)\].*/\1/p'; }
soname_of_abi() { sed -nE "s/.*<abi-corpus [^>]*soname='([^']*)'.*/\1/p" "$1" | head -1; }

if [[ $MODE == update ]]; then
  mkdir -p "$ABI"
  for l in $LIBS; do
    so=$(lib_path "$l")
    dump "$so" "$ABI/$l.abi"
    echo "abi: wrote $ABI/$l.abi ($(soname_of_so "$so"), $(grep -c '<elf-symbol ' "$ABI/$l.abi") symbols)"
  done
  echo "abi: commit abi/*.abi with the release that changed the ABI (CHANGELOG.md, ABI)"
  exit 0
fi

TMP=$(mktemp -d /tmp/smtpuv-abi.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fail=0
for l in $LIBS; do
  base=$ABI/$l.abi
  if [[ ! -f $base ]]; then
    echo "FAILED $l: no baseline $base (scripts/abi-baseline.sh writes it)"
    fail=1; continue
  fi
  so=$(lib_path "$l")
  dump "$so" "$TMP/$l.abi"
  old=$(soname_of_abi "$base") new=$(soname_of_so "$so")
  rc=0
  abidiff --no-show-locs "$base" "$TMP/$l.abi" > "$TMP/$l.diff" 2>&1 || rc=$?
  if (( rc & 1 )) || (( rc & 2 )); then
    echo "FAILED $l: abidiff could not compare (exit $rc):"; cat "$TMP/$l.diff"
    fail=1; continue
  fi
  if (( rc == 0 )); then
    echo "ok     $l ($new): ABI identical to the baseline"
    continue
  fi
  # removed or changed functions, variables or symbols: incompatible
  incompatible=0
  if (( rc & 8 )) || grep -qE '(^|[^0-9])[1-9][0-9]* (Removed|Changed)' "$TMP/$l.diff"; then
    incompatible=1
  fi
  summary=$(grep -E 'changes summary' "$TMP/$l.diff" | sed 's/^ */  /')
  if [[ $old != "$new" ]]; then
    echo "ok     $l: soname $old -> $new, the ABI may change; refresh the baseline in this release (scripts/abi-baseline.sh):"
    echo "$summary"
  elif (( incompatible )); then
    echo "FAILED $l ($new): incompatible ABI change without a soname bump:"
    cat "$TMP/$l.diff"
    echo "  (an intended change: bump the version's minor below 1.0 / major from 1.0, add it to CHANGELOG.md, run scripts/abi-baseline.sh)"
    fail=1
  else
    echo "ok     $l ($new): compatible additions only:"
    echo "$summary"
  fi
done
exit "$fail"
