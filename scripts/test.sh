#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The whole test suite (README command 2; .ci/run calls exactly this).
#
#   scripts/test.sh
#
# Stages, in order (logs in build/logs/<stage>.log; a failing stage prints its tail):
#   deps      scripts/install-deps.sh (apt only when something is missing)
#   build     gcc RelWithDebInfo build in build/
#   ctest     ctest in build/: unit + integration tests (real servers on loopback);
#             a skipped test (exit 77) counts as skipped, not passed
#   servers   tests/servers/selftest.sh: every test server against independent clients
#   demo      scripts/demo.sh (README command 1)
#   install   cmake --install of build/ (static) and of build-shared/ (BUILD_SHARED_LIBS=ON)
#             into temporary prefixes; each: the installed files (headers, libraries,
#             .pc, CMake package, LICENSE), bin/smtpuv-send --version, consumer
#             programs built with pkg-config and with find_package(smtpuv); shared:
#             only smtpuv_ symbols exported, in the version node SMTPUV_0.MINOR,
#             consumers load the installed .so, ABI against abi/ (scripts/abi-check.sh);
#             then a consumer with add_subdirectory() (no tests, no cmocka)
#   asan      clang + ASan/UBSan build in build-asan/, ctest
#   tsan      clang + ThreadSanitizer build in build-tsan/ (the threaded tests only),
#             ctest -L threads with SMTPUV_THREADS_MESSAGES=500
#   valgrind  every unit test of build/ and the client integration programs
#             test_client_faults, test_client_aiosmtpd under valgrind --leak-check=full
#             (SMTPUV_TEST_TIME_SCALE=10), $SMTPUV_JOBS at a time
#   fuzz      clang libFuzzer build in build-fuzz/, each fuzz_* for a bounded time on
#             a copy of its seed corpus tests/fuzz/<name>/
#   bench     bench_core once (information only, never fails the run)
#
# Environment:
#   SMTPUV_STAGES="build ctest ..."  run only these stages (default: all, in the order above)
#   SMTPUV_FUZZ_SECONDS=30           time per fuzz target
#   SMTPUV_SKIP_VALGRIND=1           skip the valgrind stage
#   SMTPUV_JOBS=2                    build, ctest and valgrind parallelism
#   CI=true                          a skipped integration test fails the run
#                                    (CI installs every server it needs)
#
# Ends with a summary table and the line "N passed, N failed[, N skipped]": a stage counts once,
# except ctest stages (their test totals), valgrind (one per test) and fuzz (one per
# target). Exit status 1 when anything failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
JOBS=${SMTPUV_JOBS:-2}
FUZZ_SECONDS=${SMTPUV_FUZZ_SECONDS:-30}
ALL_STAGES="deps build ctest servers demo install asan tsan valgrind fuzz bench"
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
count() { echo "$1 $2 ${3:-0}" > "$TMP/count.$CURRENT"; }   # count PASSED FAILED [SKIPPED]
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
  local dt=$((SECONDS - t0)) p=0 f=0 s=0 detail=""
  if [[ -f $TMP/count.$name ]]; then
    read -r p f s < "$TMP/count.$name"
    [[ $((p + f + s)) -gt 0 ]] && detail="$p passed, $f failed"
    [[ $s -gt 0 ]] && detail+=", $s skipped"
  elif [[ $rc -eq 0 ]]; then
    p=1
  else
    f=1
  fi
  # a stage that failed without counting a failure still counts one
  if [[ $rc -ne 0 && $f -eq 0 ]]; then f=1; fi
  [[ -f $TMP/note.$name ]] && detail="${detail:+$detail; }$(paste -sd';' "$TMP/note.$name")"
  PASSED=$((PASSED + p)) FAILED=$((FAILED + f)) SKIPPED=$((SKIPPED + s))
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

is_ci() { [[ ${CI:-} == [Tt]rue || ${CI:-} == 1 ]]; }

# ctest_counts LOG: record "passed failed skipped" from ctest's closing line and
# its list of tests that did not run. ctest counts a skipped test (exit
# SKIP_RETURN_CODE, e.g. 77) as passed; here it is not.
ctest_counts() {
  local line total failed skipped
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$1" | tail -1 || true)
  if [[ -z $line ]]; then count 0 1; return; fi
  failed=$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$line")
  total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
  skipped_tests "$1" > "$TMP/skipped.$CURRENT"
  skipped=$(grep -c . "$TMP/skipped.$CURRENT" || true)
  count $((total - failed - skipped)) "$failed" "$skipped"
  if [[ $skipped -gt 0 ]]; then
    note "skipped: $(paste -sd' ' "$TMP/skipped.$CURRENT")"
  fi
}

# skipped_tests LOG: names of the tests ctest reports as "(Skipped)"/"(Disabled)"
skipped_tests() {
  sed -n '/^The following tests did not run:/,/^[^[:space:]]/p' "$1" |
    sed -nE 's/^[[:space:]]+[0-9]+ - (.+) \((Skipped|Disabled)\)$/\1/p'
}

run_ctest() { # run_ctest BUILD_DIR [CTEST_ARGS...]
  local rc=0 t
  ctest --test-dir "$1" --output-on-failure -j"$JOBS" --timeout 900 "${@:2}" 2>&1 | tee "$TMP/ctest.out" || rc=$?
  ctest_counts "$TMP/ctest.out"
  if grep -q 'No tests were found' "$TMP/ctest.out"; then echo "no tests found"; return 1; fi
  if [[ -s $TMP/skipped.$CURRENT ]]; then
    echo "SKIPPED: $(paste -sd' ' "$TMP/skipped.$CURRENT")"
    # In CI the servers are installed: a skipped integration test means
    # something is broken, so it fails the run.
    if is_ci; then
      ctest --test-dir "$1" -N -L integration | sed -nE 's/^ *Test +#[0-9]+: (.+)$/\1/p' > "$TMP/integration.list"
      local n=0 p f s
      while read -r t; do
        if grep -qxF "$t" "$TMP/integration.list"; then
          echo "CI=true: integration test $t was skipped: counted as failed"
          note "CI: skipped integration test $t fails the run"
          n=$((n + 1))
        fi
      done < "$TMP/skipped.$CURRENT"
      if [[ $n -gt 0 ]]; then
        read -r p f s < "$TMP/count.$CURRENT"
        count "$p" $((f + n)) $((s - n))
        rc=1
      fi
    fi
  fi
  return "$rc"
}

# ------------------------------------------------------------------------ stages

s_deps() { "$ROOT/scripts/install-deps.sh"; }

s_build() {
  cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSMTPUV_WERROR=ON
  cmake --build "$ROOT/build" -j"$JOBS"
}

s_ctest() { run_ctest "$ROOT/build"; }

s_servers() { "$ROOT/tests/servers/selftest.sh"; }

s_demo() { "$ROOT/scripts/demo.sh"; }

# install_check BUILD_DIR PREFIX static|shared: cmake --install, then
# bin/smtpuv-send --version and consumer programs built with pkg-config and
# with find_package(smtpuv), run without LD_LIBRARY_PATH.
install_check() {
  local build=$1 prefix=$2 kind=$3 has_client=0 c=$TMP/consumer-$3 lib=a
  [[ $kind == shared ]] && lib=so
  cmake --install "$build" --prefix "$prefix"
  echo "--- $kind install in $prefix:"
  (cd "$prefix" && find . \( -path ./include -o -path ./share/doc/smtpuv/html \) -prune -o \( -type f -o -type l \) -print | sort)
  [[ -f $prefix/lib/libsmtpuv_core.$lib ]] || { echo "libsmtpuv_core.$lib not installed"; return 1; }
  [[ -f $prefix/lib/libsmtpuv.$lib ]] && has_client=1
  if [[ $kind == shared ]]; then
    # Exported: the smtpuv_ API only (smtpuv__ internals stay hidden), and
    # each library stands alone: no undefined smtpuv symbol.
    local so bad
    for so in "$prefix"/lib/libsmtpuv*.so; do
      bad=$(nm -D --defined-only "$so" | awk '$2 != "A" {print $3}' | grep -v -E '^smtpuv_[a-z0-9]' || true)
      [[ -z $bad ]] || { echo "$so exports non-API symbols:"; echo "$bad"; return 1; }
      bad=$(nm -D --undefined-only "$so" | grep -i smtpuv || true)
      [[ -z $bad ]] || { echo "$so leaves smtpuv symbols undefined:"; echo "$bad"; return 1; }
      echo "$(basename "$so"): $(nm -D --defined-only "$so" | wc -l) symbols exported, all smtpuv_*"
    done
  fi
  installed_files_check "$prefix" "$kind" "$has_client"
  if [[ $has_client == 1 ]]; then
    [[ -x $prefix/bin/smtpuv-send ]] || { echo "bin/smtpuv-send not installed"; return 1; }
    "$prefix/bin/smtpuv-send" --version
    # the man page, and the sendmail link when the build asked for it
    [[ -f $prefix/share/man/man1/smtpuv-send.1 ]] || { echo "share/man/man1/smtpuv-send.1 not installed"; return 1; }
    if command -v man >/dev/null; then
      man -l "$prefix/share/man/man1/smtpuv-send.1" 2>/dev/null | grep -q "EXIT STATUS" \
        || { echo "smtpuv-send.1 does not render"; return 1; }
    fi
    if grep -q '^SMTPUV_INSTALL_SENDMAIL_LINK:BOOL=ON' "$build/CMakeCache.txt"; then
      [[ -L $prefix/bin/sendmail && $(readlink "$prefix/bin/sendmail") == smtpuv-send ]] \
        || { echo "bin/sendmail -> smtpuv-send not installed"; return 1; }
      "$prefix/bin/sendmail" --version | grep -q '^smtpuv-send ' || { echo "bin/sendmail does not run smtpuv-send"; return 1; }
    elif [[ -e $prefix/bin/sendmail ]]; then
      echo "bin/sendmail installed without SMTPUV_INSTALL_SENDMAIL_LINK"; return 1
    fi
  fi
  mkdir -p "$c"
  cat > "$c/core.c" <<'EOF'
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
  cat > "$c/client.c" <<'EOF'
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
  # run_consumer PROGRAM: runs it; a shared one must load the installed library
  run_consumer() {
    "$1"
    [[ $kind == shared ]] || return 0
    local l
    l=$(ldd "$1" | grep -o "$prefix/lib/libsmtpuv[_a-z]*\.so[.0-9]*" | sort -u | tr '\n' ' ')
    echo "  $(basename "$1") loads: ${l:-nothing from $prefix}"
    [[ -n $l ]]
  }
  local rpath=()
  [[ $kind == shared ]] && rpath=("-Wl,-rpath,$prefix/lib")
  # 1. pkg-config
  echo "pkg-config --cflags --libs smtpuv: $(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs smtpuv)"
  # shellcheck disable=SC2046
  cc -Wall -Wextra -Werror -o "$c/core-pc" "$c/core.c" \
    $(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs smtpuv-core) "${rpath[@]}"
  run_consumer "$c/core-pc"
  if [[ $has_client == 1 ]]; then
    # shellcheck disable=SC2046
    cc -Wall -Wextra -Werror -o "$c/client-pc" "$c/client.c" \
      $(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs smtpuv) "${rpath[@]}"
    run_consumer "$c/client-pc"
  fi
  # 2. CMake find_package
  cat > "$c/CMakeLists.txt" <<'EOF'
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
  cmake -S "$c" -B "$c/build" -DCMAKE_PREFIX_PATH="$prefix"
  cmake --build "$c/build"
  run_consumer "$c/build/core"
  if [[ $has_client == 1 ]]; then
    [[ -x $c/build/client ]] || { echo "smtpuv::smtpuv missing from the CMake package"; return 1; }
    run_consumer "$c/build/client"
    note "$kind: core + client via pkg-config and find_package, smtpuv-send"
  else
    note "$kind: core only (no client library installed)"
  fi
}

# installed_files_check PREFIX static|shared HAS_CLIENT (issue 15): every public
# header of include/, both libraries (shared: the soname libX.so.0.MINOR and
# every smtpuv_ symbol in the version node SMTPUV_0.MINOR), the pkg-config
# and CMake package files, the licence and changelog in share/doc/smtpuv.
installed_files_check() {
  local prefix=$1 kind=$2 has_client=$3 f h sover node so bad
  local -a missing=() want=(lib/pkgconfig/smtpuv.pc lib/pkgconfig/smtpuv-core.pc
    lib/cmake/smtpuv/smtpuvConfig.cmake lib/cmake/smtpuv/smtpuvConfigVersion.cmake
    lib/cmake/smtpuv/smtpuvTargets.cmake share/doc/smtpuv/LICENSE share/doc/smtpuv/CHANGELOG.md)
  while IFS= read -r h; do want+=("include/$h"); done < <(cd "$ROOT/include" && find . -name '*.h' | sed 's|^\./||' | sort)
  sover=$(sed -nE 's/^#define SMTPUV_VERSION_(MAJOR|MINOR) ([0-9]+).*/\2/p' "$ROOT/include/smtpuv/version.h" | paste -sd.)
  [[ $sover == 0.* ]] || sover=${sover%%.*}
  for f in libsmtpuv_core libsmtpuv; do
    [[ $f == libsmtpuv && $has_client == 0 ]] && continue
    if [[ $kind == shared ]]; then want+=("lib/$f.so" "lib/$f.so.$sover"); else want+=("lib/$f.a"); fi
  done
  for f in "${want[@]}"; do [[ -e $prefix/$f ]] || missing+=("$f"); done
  if [[ ${#missing[@]} -gt 0 ]]; then echo "not installed: ${missing[*]}"; return 1; fi
  cmp -s "$ROOT/LICENSE" "$prefix/share/doc/smtpuv/LICENSE" || { echo "share/doc/smtpuv/LICENSE differs from LICENSE"; return 1; }
  if [[ $kind == shared ]]; then
    node=SMTPUV_$sover
    for so in "$prefix"/lib/libsmtpuv*.so; do
      [[ $(readelf -d "$so" | sed -nE 's/.*\(SONAME\).*\[(.*)\].*/\1/p') == "$(basename "$so").$sover" ]] ||
        { echo "$so: soname is not $(basename "$so").$sover"; readelf -d "$so" | grep SONAME; return 1; }
      bad=$(nm -D --defined-only "$so" | awk '$2 != "A" {print $3}' | grep -v -E "^smtpuv_[a-z0-9_]*@@$node\$" || true)
      [[ -z $bad ]] || { echo "$so: symbols outside the version node $node:"; echo "$bad"; return 1; }
    done
    echo "shared: soname .so.$sover, every smtpuv_ symbol in version node $node"
  fi
  echo "installed: ${#want[@]} expected files present (headers, libraries, .pc, CMake package, LICENSE, CHANGELOG.md)"
}

# subproject_check (issue 15): a consumer that add_subdirectory()s the source
# tree builds and links both libraries, and configures no test (no cmocka
# looked for), no example, no benchmark.
subproject_check() {
  local c=$TMP/subproject t
  mkdir -p "$c"
  cp "$TMP/consumer-static/core.c" "$TMP/consumer-static/client.c" "$c/"
  cat > "$c/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.16)
project(subproject_consumer C)
include(CTest)
add_subdirectory("$ROOT" smtpuv)
add_executable(core core.c)
target_link_libraries(core smtpuv::smtpuv_core)
if(TARGET smtpuv::smtpuv)
  add_executable(client client.c)
  target_link_libraries(client smtpuv::smtpuv)
endif()
EOF
  cmake -S "$c" -B "$c/build" -DSMTPUV_WERROR=ON
  if grep -q '^CMOCKA' "$c/build/CMakeCache.txt"; then echo "subproject: cmocka was looked for"; return 1; fi
  cmake --build "$c/build" --target help > "$TMP/subproject.targets"
  for t in test_proto_reply smtpuv-send bench_core core_conversation; do
    if grep -qw -- "$t" "$TMP/subproject.targets"; then echo "subproject: target $t configured"; return 1; fi
  done
  cmake --build "$c/build" -j"$JOBS"
  "$c/build/core"
  if [[ -x $c/build/client ]]; then "$c/build/client"; fi
  note "add_subdirectory: libraries only, no cmocka"
}

s_install() {
  install_check "$ROOT/build" "$TMP/prefix" static
  # The same sources as shared libraries, in build-shared/ (no tests, no bench).
  # (and the opt-in sendmail link, checked by install_check)
  cmake -S "$ROOT" -B "$ROOT/build-shared" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DBUILD_SHARED_LIBS=ON -DSMTPUV_BUILD_TESTS=OFF -DSMTPUV_BUILD_BENCH=OFF -DSMTPUV_WERROR=ON \
    -DSMTPUV_INSTALL_SENDMAIL_LINK=ON
  cmake --build "$ROOT/build-shared" -j"$JOBS"
  install_check "$ROOT/build-shared" "$TMP/prefix-shared" shared
  # the shared libraries against the ABI baseline abi/*.abi (scripts/abi-check.sh)
  "$ROOT/scripts/abi-check.sh" "$ROOT/build-shared"
  note "ABI: abidiff against abi/ ok"
  subproject_check
}

s_asan() {
  cmake -S "$ROOT" -B "$ROOT/build-asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSMTPUV_SANITIZE=ON -DCMAKE_C_COMPILER=clang -DSMTPUV_BUILD_BENCH=OFF -DSMTPUV_WERROR=ON
  cmake --build "$ROOT/build-asan" -j"$JOBS"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_ctest "$ROOT/build-asan"
}

# ThreadSanitizer over the tests labelled "threads" (issue 10): only their
# targets are built; fewer messages per thread keep the stage short.
TSAN_TARGETS="test_uv_client_threads test_client_threads"

s_tsan() {
  cmake -S "$ROOT" -B "$ROOT/build-tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSMTPUV_SANITIZE=thread -DCMAKE_C_COMPILER=clang -DSMTPUV_BUILD_BENCH=OFF \
    -DSMTPUV_BUILD_EXAMPLES=OFF
  # shellcheck disable=SC2086
  cmake --build "$ROOT/build-tsan" -j"$JOBS" --target $TSAN_TARGETS
  SMTPUV_THREADS_MESSAGES=500 TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    run_ctest "$ROOT/build-tsan" -L threads
}

# Under valgrind: every unit test of build/ (label "unit"), and these
# integration programs of the client (real servers on loopback). All with
# SMTPUV_TEST_TIME_SCALE=10, which stretches the time bounds the tests check.
VALGRIND_INTEGRATION="test_client_faults test_client_aiosmtpd"

s_valgrind() {
  # each program as ctest would run it (command, environment, directory)
  ctest --test-dir "$ROOT/build" -L unit --show-only=json-v1 > "$TMP/unit.json"
  ctest --test-dir "$ROOT/build" -R "^(${VALGRIND_INTEGRATION// /|})\$" \
    --show-only=json-v1 > "$TMP/integration.json"
  /usr/bin/python3 - "$TMP/unit.json" "$TMP/integration.json" "$VALGRIND_INTEGRATION" \
    > "$TMP/vg.list" <<'EOF'
import json, sys
unit = json.load(open(sys.argv[1]))["tests"]
integ = {t["name"]: t for t in json.load(open(sys.argv[2]))["tests"]}
def line(t, kinds):
    env, wd = [], ""
    for p in t.get("properties", []):
        if p["name"] == "ENVIRONMENT":
            env = p["value"]
        if p["name"] == "WORKING_DIRECTORY":
            wd = p["value"]
    # fields separated by \x1e: empty ones survive `read` (a tab would not)
    return "\x1e".join([t["name"], wd, " ".join(env), kinds, "\x1f".join(t["command"])])
# the slow integration programs first (they set the stage's length), then the
# client's unit tests, then the others
for name in sys.argv[3].split():
    if name not in integ:
        sys.exit("valgrind: integration test %s not found" % name)
    # definite leaks only: libuv and OpenSSL keep some reachable state at exit
    print(line(integ[name], "definite"))
unit.sort(key=lambda t: not t["name"].startswith("test_uv_client"))
for t in unit:
    print(line(t, "definite,possible"))
EOF
  # $JOBS programs at a time, each with its own log and exit status.
  local name wd env kinds cmd p=0 f=0 running=0
  local -a names=()
  while IFS=$'\x1e' read -r name wd env kinds cmd; do
    names+=("$name")
    (
      IFS=$'\x1f' read -r -a argv <<<"$cmd"
      t0=$SECONDS
      cd "${wd:-$ROOT/build}"
      rc=0
      # shellcheck disable=SC2086
      env $env SMTPUV_TEST_TIME_SCALE=10 timeout 600 valgrind -q --leak-check=full \
        --errors-for-leak-kinds="$kinds" --error-exitcode=1 "${argv[@]}" \
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
  [[ $((p + f)) -gt 0 ]] || { echo "no tests found"; return 1; }
  [[ $f -eq 0 ]]
}

s_fuzz() {
  CC=clang cmake -S "$ROOT" -B "$ROOT/build-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang -DSMTPUV_FUZZ=ON -DSMTPUV_WERROR=ON
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
stage tsan     "deps"  s_tsan
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
