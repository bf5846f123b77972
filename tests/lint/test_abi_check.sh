#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ctest abi_check_logic: scripts/abi-check.sh decides right, on a tiny
# library built here in versions: a baseline, then
#   same ABI / an added function / an internal (private) struct changed:  pass
#   a public struct's field inserted / a function removed, same soname:    fail
#   the same insertion with a new soname:                                   pass
set -euo pipefail
CHECK=${1:?usage: test_abi_check.sh <repo>/scripts/abi-check.sh}
T=$(mktemp -d /tmp/smtpuv-abitest.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
mkdir -p "$T/include" "$T/abi" "$T/build"

# build VARIANT SONAME: libdemo.so from the variant's header and source
build() {
  local v=$1 soname=$2
  local pub="int a; int b;" extra="" priv="int p;"
  case $v in
    insert) pub="int a; int inserted; int b;" ;;
    added) extra="int demo_new(void) { return 2; }" ;;
    private) priv="int p; long more[4];" ;;
  esac
  cat > "$T/include/demo.h" <<EOF
struct demo_pub { $pub };
typedef struct demo_priv demo_priv;
int demo_use(struct demo_pub *p);
int demo_priv_get(demo_priv *q);
EOF
  [[ $v == removed ]] || echo "int demo_old(void);" >> "$T/include/demo.h"
  [[ $v == added ]] && echo "int demo_new(void);" >> "$T/include/demo.h"
  cat > "$T/demo.c" <<EOF
#include "demo.h"
struct demo_priv { $priv };
int demo_use(struct demo_pub *p) { return p->a + p->b; }
int demo_priv_get(demo_priv *q) { return q->p; }
$extra
EOF
  [[ $v == removed ]] || echo "int demo_old(void) { return 1; }" >> "$T/demo.c"
  rm -f "$T/build/"libdemo.so*
  gcc -g -O1 -shared -fPIC -I"$T/include" -Wl,-soname,"$soname" -o "$T/build/$soname" "$T/demo.c"
  ln -sf "$soname" "$T/build/libdemo.so"
}
run() { SMTPUV_ABI_DIR=$T/abi SMTPUV_ABI_HEADERS=$T/include SMTPUV_ABI_LIBS=libdemo \
          "$CHECK" "$@" "$T/build"; }
expect() { # expect pass|fail VARIANT SONAME
  build "$2" "$3"
  local rc=0
  run > "$T/out" 2>&1 || rc=$?
  if [[ $1 == pass && $rc -ne 0 ]] || [[ $1 == fail && $rc -eq 0 ]]; then
    cat "$T/out"; fail "$2 with soname $3: expected $1, exit $rc"
  fi
  echo "$1: $2 ($3): $(head -1 "$T/out")"
}

build base libdemo.so.0.1
run --update > /dev/null
[[ -s $T/abi/libdemo.abi ]] || fail "no baseline written"
expect pass base libdemo.so.0.1
expect pass added libdemo.so.0.1
expect pass private libdemo.so.0.1
expect fail insert libdemo.so.0.1
expect fail removed libdemo.so.0.1
expect pass insert libdemo.so.0.2
rm "$T/abi/libdemo.abi"
expect fail base libdemo.so.0.1
echo "abi_check_logic: all decisions right"
