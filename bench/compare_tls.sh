#!/bin/bash
# SPDX-License-Identifier: MIT
# TLS benchmarks, compared in one run: smtpuv-bench beside libcurl smtps://
# through one TLS front-end (Debian stunnel4) in front of Postfix's
# smtp-sink, both on free loopback ports and stopped by their PIDs.
#
#   bench/compare_tls.sh [--quick] [--bench PATH] [--curl PATH] [W5 W4TLS ...]
#
# Workloads (default: both):
#   W5     W1 over implicit TLS: 10,000 messages of 2 KiB over one
#          connection. smtpuv-bench -d -s 1 --tls=implicit beside
#          curl-smtps-bench (bench/curl_smtps_bench.c: one libcurl easy
#          handle, one curl_easy_perform per message on the connection it
#          keeps; libcurl's SMTP does not pipeline, so its multi interface
#          would run the same sequence). Both verify the server certificate
#          against the same test CA, both pay the same stunnel. PAIRS pairs,
#          smtpuv first in each; rate ratio and CPU per message (from
#          outside: bash `time`, user+sys).
#   W4TLS  1,000 concurrent TLS connections on one loop (smtpuv-bench -d -s
#          1000 -m 1000 --hold): RSS per idle connection (a run without and
#          one with --heap: the library's and OpenSSL's heap per connection),
#          then the same 1,000 connections as ONE client's pool
#          (--connections=1000 --depth=1 --pool-hold against a second sink
#          that delays its DATA reply, so the pool needs a connection per
#          message): RSS per idle connection with the default
#          smtpuv_options_set_max_connecting() (16 set up at once) and with
#          no cap (--connecting=1000, all handshakes at once, as 1,000
#          separate clients do), then 200 reconnects of ONE client
#          (--reconnect: every message on a new connection) with TLS session
#          resumption and without (--no-resume): CPU per reconnect and the
#          resumed handshakes.
#
# smtpuv-bench and curl-smtps-bench: --bench/--curl PATH (or SMTPUV_BENCH /
# CURL_BENCH), else built from this tree into build-bench/ (RelWithDebInfo).
# Environment: PAIRS=N (default 5), KEEP=1 keeps the logs, BENCH_TMP=dir.
# --quick: 1 pair, workloads scaled down ~10x (a smoke run, not a measure).
# Exit status: 0 when every run delivered everything (targets are reported,
# not enforced), 1 when a run failed, 2 on setup errors.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/sink_lib.sh
. "$HERE/sink_lib.sh"
REPO=$(cd "$HERE/.." && pwd)
CMDLINE=$(printf '%q ' "$0" "$@")
CMDLINE=${CMDLINE% }
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')

QUICK=0
WORKLOADS=()
BENCH=${SMTPUV_BENCH:-}
CURLB=${CURL_BENCH:-}
while (($#)); do
  case $1 in
    --quick) QUICK=1 ;;
    --bench) BENCH=$2; shift ;;
    --bench=*) BENCH=${1#--bench=} ;;
    --curl) CURLB=$2; shift ;;
    --curl=*) CURLB=${1#--curl=} ;;
    W5|W4TLS) WORKLOADS+=("$1") ;;
    -h|--help) sed -n '2,/^set -uo/{/^set -uo/!p}' "$0"; exit 0 ;;
    *) echo "compare_tls.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
((${#WORKLOADS[@]})) || WORKLOADS=(W5 W4TLS)

BENCH_FROM="given"
if [[ -z $BENCH || -z $CURLB ]]; then
  BUILD_DIR=$REPO/build-bench
  mkdir -p "$BUILD_DIR"
  if ! { cmake -S "$REPO" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
           -DSMTPUV_BUILD_TESTS=OFF -DSMTPUV_BUILD_EXAMPLES=OFF -DSMTPUV_BUILD_BENCH=ON &&
         cmake --build "$BUILD_DIR" --target smtpuv-bench curl-smtps-bench -j2; } \
       >"$BUILD_DIR/compare-tls-build.log" 2>&1; then
    echo "compare_tls.sh: build failed; last lines of $BUILD_DIR/compare-tls-build.log:" >&2
    tail -n 30 "$BUILD_DIR/compare-tls-build.log" >&2
    exit 2
  fi
  [[ -n $BENCH ]] || { BENCH=$BUILD_DIR/bench/smtpuv-bench; BENCH_FROM="built in $BUILD_DIR (RelWithDebInfo)"; }
  [[ -n $CURLB ]] || CURLB=$BUILD_DIR/bench/curl-smtps-bench
fi
[[ -x $BENCH ]] || { echo "compare_tls.sh: smtpuv-bench not found: $BENCH" >&2; exit 2; }
[[ -x $CURLB ]] || { echo "compare_tls.sh: curl-smtps-bench not found: $CURLB (libcurl4-openssl-dev)" >&2; exit 2; }
[[ -x $SINK_BIN ]] || { echo "compare_tls.sh: smtp-sink not found (apt-get install postfix)" >&2; exit 2; }
STUNNEL=$(command -v stunnel4 2>/dev/null || command -v stunnel 2>/dev/null || true)
[[ -n $STUNNEL ]] || { echo "compare_tls.sh: stunnel4 not found (apt-get install stunnel4)" >&2; exit 2; }
GNUTIME=/usr/bin/time
[[ -x $GNUTIME ]] || GNUTIME=

if ((QUICK)); then
  PAIRS=${PAIRS:-1}; N5=1000 N4=100 NR=20 DELAY4=3
else
  PAIRS=${PAIRS:-5}; N5=10000 N4=1000 NR=200 DELAY4=12
fi

TMP=$(mktemp -d "${BENCH_TMP:-/tmp}/smtpuv-compare-tls.XXXXXX")
chmod 755 "$TMP"
ST_PID=
SLOW_PID=
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  if [[ -n $ST_PID ]]; then
    kill "$ST_PID" 2>/dev/null || true
    wait "$ST_PID" 2>/dev/null || true
  fi
  sink_stop
  if [[ -n $SLOW_PID ]]; then
    kill "$SLOW_PID" 2>/dev/null || true
    wait "$SLOW_PID" 2>/dev/null || true
  fi
  if [[ ${KEEP:-0} == 1 ]]; then echo "logs kept in $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The sink serves 1100 sessions at once (W4TLS holds 1000), stunnel in
# front of it with the test PKI's server certificate.
sh "$REPO/tests/servers/gen_certs.sh" "$TMP/pki" >/dev/null || exit 2
CA=$TMP/pki/ca.crt
# A second sink for the pool's W4TLS: it waits DELAY4 seconds before its
# DATA reply, longer than the pool takes to open every connection.
sink_start "$TMP" 1100 -m 1100 -w "$DELAY4" || exit 2
SLOW_PID=$SINK_PID SLOW_PORT=$SINK_PORT SINK_PID=
sink_start "$TMP" 1100 -m 1100 || exit 2
TLS_PORT=$(sink_free_port)
SLOW_TLS_PORT=$(sink_free_port)
cat >"$TMP/stunnel.conf" <<CONF
foreground = yes
pid =
output = $TMP/stunnel.log
[smtps]
accept = 127.0.0.1:$TLS_PORT
connect = 127.0.0.1:$SINK_PORT
cert = $TMP/pki/server.crt
key = $TMP/pki/server.key
[smtps-slow]
accept = 127.0.0.1:$SLOW_TLS_PORT
connect = 127.0.0.1:$SLOW_PORT
cert = $TMP/pki/server.crt
key = $TMP/pki/server.key
CONF
"$STUNNEL" "$TMP/stunnel.conf" >>"$TMP/stunnel.out" 2>&1 </dev/null &
ST_PID=$!
if ! sh "$REPO/tests/servers/wait_tls_port.sh" "$TLS_PORT" 15; then
  echo "compare_tls.sh: stunnel did not come up; log:" >&2
  cat "$TMP/stunnel.out" "$TMP/stunnel.log" >&2 2>/dev/null
  exit 2
fi
TARGET=127.0.0.1:$TLS_PORT
TLSOPTS=(--tls=implicit "--ca=$CA" --tls-name=localhost)

REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')
if [[ $REV != '?' && -n $(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
  REV="$REV+local changes"
fi
RUNINFO=(
  "command: $CMDLINE"
  "machine: $(nproc) CPUs, $(uname -r), load average at start $LOAD_START"
  "smtpuv-bench: $BENCH ($BENCH_FROM; tree $REV); curl-smtps-bench: $CURLB ($(curl-config --version 2>/dev/null || echo libcurl))"
  "servers: smtp-sink pid $SINK_PID on 127.0.0.1:$SINK_PORT (and pid $SLOW_PID on 127.0.0.1:$SLOW_PORT with -w $DELAY4), stunnel4 $(dpkg-query -W -f '${Version}' stunnel4 2>/dev/null || echo '?') pid $ST_PID on $TARGET"
)
printf '%s\n' "${RUNINFO[@]}"
FAILED=0
SUMMARY=()

# timed OUTFILE cmd... : runs cmd, prints "wall user sys maxrss_kib rc".
timed() {
  local out=$1; shift
  local tf="$out.time" rf="$out.rss" rc
  local TIMEFORMAT='%3R %3U %3S'
  if [[ -n $GNUTIME ]]; then
    { time "$GNUTIME" -o "$rf" -f '%M' "$@" >"$out" 2>&1; } 2>"$tf"
    rc=$?
  else
    { time "$@" >"$out" 2>&1; } 2>"$tf"
    rc=$?
    echo "-" >"$rf"
  fi
  echo "$(tail -n1 "$tf") $(tail -n1 "$rf") $rc"
}
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "nan"; exit} if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
field() { grep -o " $1=[0-9.-]*" "$2" | tail -n1 | cut -d= -f2; }

w5() {
  local ratios=() cpus=() ccpus=() rss=()
  echo
  echo "== W5: $N5 x 2 KiB over one implicit-TLS connection, smtpuv-bench vs libcurl ($PAIRS pairs)"
  printf '%-4s | %9s %10s %9s %9s | %9s %10s %9s %9s | %7s\n' pair \
    "smtpuv s" "msg/s" "cpu us/m" "rss KiB" "curl s" "msg/s" "cpu us/m" "rss KiB" ratio
  for ((p = 1; p <= PAIRS; p++)); do
    local a b
    read -r -a a < <(timed "$TMP/W5.a.$p" "$BENCH" -q "${TLSOPTS[@]}" -d -s 1 -m "$N5" -l 2048 "$TARGET")
    read -r -a b < <(timed "$TMP/W5.b.$p" "$CURLB" -m "$N5" -l 2048 --ca "$CA" "smtps://$TARGET")
    if [[ ${a[4]} != 0 ]]; then echo "   smtpuv-bench failed (exit ${a[4]}):"; sed 's/^/     /' "$TMP/W5.a.$p"; FAILED=1; fi
    if [[ ${b[4]} != 0 ]]; then echo "   curl-smtps-bench failed (exit ${b[4]}):"; sed 's/^/     /' "$TMP/W5.b.$p"; FAILED=1; fi
    local conns; conns=$(field connects "$TMP/W5.b.$p")
    [[ ${conns:-0} == 1 ]] || echo "   note: libcurl used ${conns:-?} connections"
    local line
    line=$(awk -v m="$N5" -v p="$p" \
      -v aw="${a[0]}" -v au="${a[1]}" -v as="${a[2]}" -v ar="${a[3]}" \
      -v bw="${b[0]}" -v bu="${b[1]}" -v bs="${b[2]}" -v br="${b[3]}" 'BEGIN {
        ra = m / aw; rb = m / bw
        printf "%-4s | %9.3f %10.1f %9.2f %9s | %9.3f %10.1f %9.2f %9s | %7.3f\n",
          p, aw, ra, (au + as) / m * 1e6, ar, bw, rb, (bu + bs) / m * 1e6, br, ra / rb }')
    echo "$line"
    ratios+=("$(awk '{print $NF}' <<<"$line")")
    cpus+=("$(awk -v m="$N5" -v u="${a[1]}" -v s="${a[2]}" 'BEGIN {printf "%.3f", (u+s)/m*1e6}')")
    ccpus+=("$(awk -v m="$N5" -v u="${b[1]}" -v s="${b[2]}" 'BEGIN {printf "%.3f", (u+s)/m*1e6}')")
    rss+=("${a[3]}")
  done
  local mr mc mcc mx
  mr=$(printf '%s\n' "${ratios[@]}" | median)
  mc=$(printf '%s\n' "${cpus[@]}" | median)
  mcc=$(printf '%s\n' "${ccpus[@]}" | median)
  mx=$(printf '%s\n' "${rss[@]}" | median | awk '{printf "%.0f", $1}')
  printf 'median ratio %s (smtpuv/libcurl msg/s); CPU per message: smtpuv %s us, libcurl %s us; smtpuv peak RSS %s KiB\n' \
    "$mr" "$mc" "$mcc" "$mx"
  SUMMARY+=("$(printf 'W5-tls-1conn   ratio %s  cpu us/msg smtpuv %s libcurl %s  smtpuv rss %s KiB' "$mr" "$mc" "$mcc" "$mx")")
}

w4tls() {
  echo
  echo "== W4TLS: $N4 concurrent TLS connections on one loop (smtpuv-bench -d -s $N4 -m $N4 --hold -l 2048 ${TLSOPTS[*]})"
  local r per heap ossl
  read -r -a r < <(timed "$TMP/W4.out" "$BENCH" "${TLSOPTS[@]}" -d -s "$N4" -m "$N4" --hold -l 2048 "$TARGET")
  sed 's/^/   /' "$TMP/W4.out" | grep -E 'hold|RESULT|FAILED'
  [[ ${r[4]} == 0 ]] || { echo "   W4TLS FAILED (exit ${r[4]})"; FAILED=1; }
  per=$(field rss_per_conn_kib "$TMP/W4.out")
  read -r -a r < <(timed "$TMP/W4h.out" "$BENCH" "${TLSOPTS[@]}" -d -s "$N4" -m "$N4" --hold --heap -l 2048 "$TARGET")
  sed 's/^/   /' "$TMP/W4h.out" | grep -E 'RESULT|FAILED'
  [[ ${r[4]} == 0 ]] || { echo "   W4TLS --heap FAILED (exit ${r[4]})"; FAILED=1; }
  heap=$(field heap_per_conn "$TMP/W4h.out")
  ossl=$(field openssl_heap_per_conn "$TMP/W4h.out")
  SUMMARY+=("$(printf 'W4TLS-%sclients RSS per idle connection %s KiB (target <= 48); heap per connection: library %s B, OpenSSL %s B' \
    "$N4" "${per:-?}" "${heap:-?}" "${ossl:-?}")")

  echo
  echo "== W4TLS pool: ONE client, $N4 connections (--connections=$N4 --depth=1 --pool-hold; the sink delays DATA ${DELAY4} s)"
  local cap cpu pool=()
  for cap in default 1000; do
    local extra=()
    [[ $cap == default ]] || extra=(--connecting=$cap)
    read -r -a r < <(timed "$TMP/P.$cap" "$BENCH" "${TLSOPTS[@]}" -d -s 1 --connections="$N4" --depth=1 --pool-hold "${extra[@]}" -m "$N4" -l 2048 "127.0.0.1:$SLOW_TLS_PORT")
    sed 's/^/   /' "$TMP/P.$cap" | grep -E 'pool-hold|RESULT|FAILED'
    [[ ${r[4]} == 0 ]] || { echo "   W4TLS pool ($cap) FAILED (exit ${r[4]})"; FAILED=1; }
    cpu=$(awk -v u="${r[1]}" -v s="${r[2]}" 'BEGIN {printf "%.2f", u+s}')
    pool+=("$(printf 'max_connecting %s: %s KiB per idle connection, %s connections, %s s CPU' \
      "$cap" "$(field rss_per_conn_kib "$TMP/P.$cap")" "$(field connects "$TMP/P.$cap")" "$cpu")")
  done
  printf '   %s\n' "${pool[@]}"
  SUMMARY+=("W4TLS-pool-${N4}conn ${pool[0]} (target <= 48); ${pool[1]}")

  echo
  echo "== W4TLS reconnects: $NR messages, each on a new connection of ONE client (--reconnect), with and without resumption"
  local mode cpu res con line=()
  for mode in resume no-resume; do
    local extra=()
    [[ $mode == no-resume ]] && extra=(--no-resume)
    read -r -a r < <(timed "$TMP/R.$mode" "$BENCH" "${TLSOPTS[@]}" -d -s 1 -m "$NR" --reconnect "${extra[@]}" -l 2048 "$TARGET")
    sed 's/^/   /' "$TMP/R.$mode" | grep -E 'RESULT|FAILED'
    [[ ${r[4]} == 0 ]] || { echo "   reconnect ($mode) FAILED (exit ${r[4]})"; FAILED=1; }
    cpu=$(awk -v m="$NR" -v u="${r[1]}" -v s="${r[2]}" 'BEGIN {printf "%.0f", (u+s)/m*1e6}')
    res=$(field resumed "$TMP/R.$mode"); con=$(field connects "$TMP/R.$mode")
    line+=("$mode: $cpu us CPU per reconnect+message, $res of $con handshakes resumed")
  done
  printf '   %s\n' "${line[@]}"
  SUMMARY+=("W4TLS-reconnect ${line[0]}; ${line[1]}")
}

for w in "${WORKLOADS[@]}"; do
  case $w in
    W5) w5 ;;
    W4TLS) w4tls ;;
  esac
done

echo
printf '%s\n' "${RUNINFO[@]}"
echo "load average at end $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
echo "== summary"
printf '%s\n' "${SUMMARY[@]}"
exit "$FAILED"
