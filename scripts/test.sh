#!/usr/bin/env bash
# The whole test suite (README command 2; .ci/run calls exactly this).
#
#   scripts/test.sh
#
# Stages, in order (logs in build/logs/<stage>.log; a failing stage prints its tail):
#   deps      scripts/install-deps.sh (apt only when something is missing)
#   build     gcc RelWithDebInfo build in build/
#   ctest     ctest in build/: unit + integration tests (real servers on loopback)
#   servers   tests/servers/selftest.sh: every test server against independent clients
#   demo      scripts/demo.sh (README command 1)
#   install   cmake --install into a temporary prefix, then a consumer program built
#             with pkg-config and another with find_package(smtpuv)
#   asan      clang + ASan/UBSan build in build-asan/, ctest
#   valgrind  every unit test of build/ under valgrind --leak-check=full
#   fuzz      clang libFuzzer build in build-fuzz/, each fuzz_* for a bounded time on
#             a copy of its seed corpus tests/fuzz/<name>/
#   bench     bench_core once (information only, never fails the run)
#
# Environment:
#   SMTPUV_STAGES="build ctest ..."  run only these stages (default: all, in the order above)
#   SMTPUV_FUZZ_SECONDS=30           time per fuzz target
#   SMTPUV_SKIP_VALGRIND=1           skip the valgrind stage
#   SMTPUV_JOBS=2                    build and ctest parallelism
#
# Ends with a summary table and the line "N passed, N failed": a stage counts once,
# except ctest stages (their test totals), valgrind (one per test) and fuzz (one per
# target). Exit status 1 when anything failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
JOBS=${SMTPUV_JOBS:-2}
FUZZ_SECONDS=${SMTPUV_FUZZ_SECONDS:-30}
ALL_STAGES="deps build ctest servers demo install asan valgrind fuzz bench"
STAGES=${SMTPUV_STAGES:-$ALL_STAGES}
LOGS=$ROOT/build/logs
mkdir -p "$LOGS"
TMP=$(mktemp -d /tmp/smtpuv-test.XXXXXX)
chmod 755 "$TMP"
trap 'rm -rf "$TMP"' EXIT

PASSED=0 FAILED=0 SKIPPED=0
SUMMARY=()
BROKEN=()   # stages whose failure makes later stages pointless

# Counts reported by a stage through files in $TMP (a stage runs in a subshell).
count() { echo "$1 $2" > "$TMP/count.$CURRENT"; }   # count PASSED FAILED
note() { echo "$*" >> "$TMP/note.$CURRENT"; }

want() { [[ " $STAGES " == *" $1 "* ]]; }

# stage NAME NEEDS FUNCTION: run FUNCTION with its output in build/logs/NAME.log.
stage() {
  local name=$1 needs=$2 fn=$3 dep
  want "$name" || return 0
  for dep in $needs; do
    if [[ " ${BROKEN[*]:-} " == *" $dep "* ]]; then
      SKIPPED=$((SKIPPED + 1))
      SUMMARY+=("$(printf '%-9s %-7s %5s  %s' "$name" SKIPPED - "needs $dep")")
      echo "== $name: skipped ($dep failed)"
      return 0
    fi
  done
  CURRENT=$name
  rm -f "$TMP/count.$name" "$TMP/note.$name"
  echo "== $name ..."
  local t0=$SECONDS rc=0
  # In the background so that set -e holds inside (bash ignores it in a subshell
  # that is part of an || list).
  ( set -euo pipefail; "$fn" ) < /dev/null > "$LOGS/$name.log" 2>&1 &
  wait $! || rc=$?
  local dt=$((SECONDS - t0)) p=0 f=0 detail=""
  if [[ -f $TMP/count.$name ]]; then
    read -r p f < "$TMP/count.$name"
    [[ $((p + f)) -gt 0 ]] && detail="$p passed, $f failed"
  elif [[ $rc -eq 0 ]]; then
    p=1
  else
    f=1
  fi
  # a stage that failed without counting a failure still counts one
  if [[ $rc -ne 0 && $f -eq 0 ]]; then f=1; fi
  [[ -f $TMP/note.$name ]] && detail="${detail:+$detail; }$(paste -sd';' "$TMP/note.$name")"
  PASSED=$((PASSED + p)) FAILED=$((FAILED + f))
  if [[ $rc -eq 0 ]]; then
    SUMMARY+=("$(printf '%-9s %-7s %4ss  %s' "$name" ok "$dt" "$detail")")
    echo "   ok (${dt}s) $detail"
  else
    BROKEN+=("$name")
    SUMMARY+=("$(printf '%-9s %-7s %4ss  %s' "$name" FAILED "$dt" "$detail")")
    echo "   FAILED (${dt}s) $detail — last lines of build/logs/$name.log:"
    tail -n 40 "$LOGS/$name.log" | sed 's/^/   | /'
  fi
}

# ctest_counts LOG: record "passed failed" from ctest's closing line
ctest_counts() {
  local line total failed
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$1" | tail -1 || true)
  if [[ -z $line ]]; then count 0 1; return; fi
  failed=$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$line")
  total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
  count $((total - failed)) "$failed"
}

run_ctest() { # run_ctest BUILD_DIR
  local rc=0
  ctest --test-dir "$1" --output-on-failure -j"$JOBS" --timeout 900 2>&1 | tee "$TMP/ctest.out" || rc=$?
  ctest_counts "$TMP/ctest.out"
  if grep -q 'No tests were found' "$TMP/ctest.out"; then echo "no tests found"; return 1; fi
  return "$rc"
}

# ------------------------------------------------------------------------ stages

s_deps() { "$ROOT/scripts/install-deps.sh"; }

s_build() {
  cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
  cmake --build "$ROOT/build" -j"$JOBS"
}

s_ctest() { run_ctest "$ROOT/build"; }

s_servers() { "$ROOT/tests/servers/selftest.sh"; }

s_demo() { "$ROOT/scripts/demo.sh"; }

s_install() {
  local prefix=$TMP/prefix has_client=0
  cmake --install "$ROOT/build" --prefix "$prefix"
  [[ -f $prefix/lib/libsmtpuv.a || -f $prefix/lib/libsmtpuv.so ]] && has_client=1
  mkdir -p "$TMP/consumer"
  cat > "$TMP/consumer/core.c" <<'EOF'
#include <smtpuv.h>
#include <stdio.h>
int main(void) {
  smtpuv_proto *p = NULL;
  const smtpuv_info *v = smtpuv_version(0);
  if (v == NULL || smtpuv_proto_new(NULL, &p) != 0) return 1;
  if (smtpuv_proto_feed(p, "220 hi\r\n", 8) != 0) return 1;
  smtpuv_reply r;
  if (smtpuv_proto_next_reply(p, &r) != 1 || r.code != 220) return 1;
  smtpuv_proto_free(p);
  printf("consumer: smtpuv %s, core ok\n", v->version_str);
  return 0;
}
EOF
  cat > "$TMP/consumer/client.c" <<'EOF'
#include <smtpuv.h>
#include <smtpuv/client.h>
#include <stdio.h>
int main(void) {
  smtpuv_options *o = NULL;
  if (smtpuv_options_new(NULL, &o) != 0) return 1;
  if (smtpuv_options_set_host(o, "127.0.0.1") != 0) return 1;
  smtpuv_options_free(o);
  printf("consumer: client ok\n");
  return 0;
}
EOF
  # 1. pkg-config
  export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
  echo "pkg-config --cflags --libs smtpuv: $(pkg-config --cflags --libs smtpuv)"
  # shellcheck disable=SC2046
  cc -Wall -Wextra -Werror -o "$TMP/consumer/core-pc" "$TMP/consumer/core.c" \
    $(pkg-config --cflags --libs smtpuv-core)
  "$TMP/consumer/core-pc"
  if [[ $has_client == 1 ]]; then
    # shellcheck disable=SC2046
    cc -Wall -Wextra -Werror -o "$TMP/consumer/client-pc" "$TMP/consumer/client.c" \
      $(pkg-config --cflags --libs smtpuv)
    "$TMP/consumer/client-pc"
  fi
  # 2. CMake find_package
  cat > "$TMP/consumer/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.16)
project(consumer C)
find_package(smtpuv REQUIRED)
add_executable(core core.c)
target_link_libraries(core smtpuv::smtpuv_core)
if(TARGET smtpuv::smtpuv)
  add_executable(client client.c)
  target_link_libraries(client smtpuv::smtpuv)
endif()
EOF
  cmake -S "$TMP/consumer" -B "$TMP/consumer/build" -DCMAKE_PREFIX_PATH="$prefix"
  cmake --build "$TMP/consumer/build"
  "$TMP/consumer/build/core"
  if [[ $has_client == 1 ]]; then
    [[ -x $TMP/consumer/build/client ]] || { echo "smtpuv::smtpuv missing from the CMake package"; return 1; }
    "$TMP/consumer/build/client"
    note "core + client via pkg-config and find_package"
  else
    note "core only (no client library installed)"
  fi
}

s_asan() {
  cmake -S "$ROOT" -B "$ROOT/build-asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSMTPUV_SANITIZE=ON -DCMAKE_C_COMPILER=clang -DSMTPUV_BUILD_BENCH=OFF
  cmake --build "$ROOT/build-asan" -j"$JOBS"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_ctest "$ROOT/build-asan"
}

s_valgrind() {
  # The unit tests of build/ (label "unit"), each run as ctest would run it.
  ctest --test-dir "$ROOT/build" -L unit --show-only=json-v1 > "$TMP/tests.json"
  /usr/bin/python3 - "$TMP/tests.json" > "$TMP/vg.list" <<'EOF'
import json, sys
for t in json.load(open(sys.argv[1]))["tests"]:
    env = []
    wd = ""
    for p in t.get("properties", []):
        if p["name"] == "ENVIRONMENT":
            env = p["value"]
        if p["name"] == "WORKING_DIRECTORY":
            wd = p["value"]
    print("\t".join([t["name"], wd, " ".join(env), "\x1f".join(t["command"])]))
EOF
  # $JOBS tests at a time, each with its own log and exit status.
  local name wd env cmd p=0 f=0 running=0
  local -a names=()
  while IFS=$'\t' read -r name wd env cmd; do
    names+=("$name")
    (
      IFS=$'\x1f' read -r -a argv <<<"$cmd"
      t0=$SECONDS
      cd "${wd:-$ROOT/build}"
      rc=0
      # shellcheck disable=SC2086
      env $env timeout 900 valgrind -q --leak-check=full --error-exitcode=1 "${argv[@]}" \
        > "$TMP/vg.$name.out" 2>&1 || rc=$?
      echo "$rc $((SECONDS - t0))" > "$TMP/vg.$name.rc"
    ) &
    running=$((running + 1))
    if [[ $running -ge $JOBS ]]; then wait -n || true; running=$((running - 1)); fi
  done < "$TMP/vg.list"
  wait || true
  local rc dt
  for name in "${names[@]}"; do
    read -r rc dt < "$TMP/vg.$name.rc" || { rc=99; dt=0; }
    if [[ $rc -eq 0 ]]; then
      p=$((p + 1)); echo "ok     $name (${dt}s)"
    else
      f=$((f + 1)); echo "FAILED $name (exit $rc, ${dt}s)"; tail -n 60 "$TMP/vg.$name.out"
    fi
  done
  count "$p" "$f"
  [[ $((p + f)) -gt 0 ]] || { echo "no unit tests found"; return 1; }
  [[ $f -eq 0 ]]
}

s_fuzz() {
  CC=clang cmake -S "$ROOT" -B "$ROOT/build-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang -DSMTPUV_FUZZ=ON
  cmake --build "$ROOT/build-fuzz" -j"$JOBS"
  local -a fuzzers=()
  local f
  for f in "$ROOT"/tests/fuzz/fuzz_*.c; do
    [[ -e $f ]] || continue
    f=$(basename "$f" .c)
    [[ -x $ROOT/build-fuzz/tests/fuzz/$f ]] || { echo "missing executable $f"; return 1; }
    fuzzers+=("$f")
  done
  if [[ ${#fuzzers[@]} -eq 0 ]]; then note "no fuzz targets yet"; return 0; fi
  mkdir -p "$ROOT/build-fuzz/artifacts"
  # Run $JOBS fuzzers at a time, each on a copy of its seed corpus.
  local running=0
  for f in "${fuzzers[@]}"; do
    local seeds=$ROOT/tests/fuzz/${f#fuzz_} corpus=$TMP/corpus/$f
    mkdir -p "$corpus"
    [[ -d $seeds ]] && cp -r "$seeds/." "$corpus/"
    ( "$ROOT/build-fuzz/tests/fuzz/$f" -max_total_time="$FUZZ_SECONDS" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$ROOT/build-fuzz/artifacts/$f-" "$corpus" \
        > "$TMP/$f.fuzz.log" 2>&1; echo $? > "$TMP/$f.fuzz.rc" ) &
    running=$((running + 1))
    if [[ $running -ge $JOBS ]]; then wait -n || true; running=$((running - 1)); fi
  done
  wait || true
  local p=0 fl=0
  for f in "${fuzzers[@]}"; do
    local rc; rc=$(cat "$TMP/$f.fuzz.rc" 2>/dev/null || echo 99)
    echo "--- $f (exit $rc): $(grep -E '^(#[0-9]+|stat::number_of_executed_units)' "$TMP/$f.fuzz.log" | tail -1)"
    if [[ $rc -eq 0 ]]; then
      p=$((p + 1))
    else
      fl=$((fl + 1)); tail -n 60 "$TMP/$f.fuzz.log"
    fi
  done
  count "$p" "$fl"
  note "${FUZZ_SECONDS}s each"
  [[ $fl -eq 0 ]]
}

s_bench() {  # not a test: counts neither as passed nor as failed
  count 0 0
  if [[ ! -x $ROOT/build/bench/bench_core ]]; then note "no bench_core"; return 0; fi
  note "information only: see build/logs/bench.log"
  timeout 120 "$ROOT/build/bench/bench_core" || echo "(bench_core exited $?; information only)"
  return 0
}

# ------------------------------------------------------------------------ run
T0=$SECONDS
stage deps     ""      s_deps
stage build    "deps"  s_build
stage ctest    "build" s_ctest
stage servers  "deps"  s_servers
stage demo     "deps"  s_demo
stage install  "build" s_install
stage asan     "deps"  s_asan
if [[ ${SMTPUV_SKIP_VALGRIND:-0} == 1 ]]; then
  want valgrind && { SUMMARY+=("$(printf '%-9s %-7s %5s  %s' valgrind SKIPPED - "SMTPUV_SKIP_VALGRIND=1")"); SKIPPED=$((SKIPPED + 1)); }
else
  stage valgrind "build" s_valgrind
fi
stage fuzz     "deps"  s_fuzz
stage bench    "build" s_bench

echo
echo "== summary ($((SECONDS - T0))s; logs in build/logs/)"
printf '%s\n' "${SUMMARY[@]}"
echo
if [[ $SKIPPED -gt 0 ]]; then
  echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
else
  echo "$PASSED passed, $FAILED failed"
fi
[[ $FAILED -eq 0 && ${#BROKEN[@]} -eq 0 ]]
