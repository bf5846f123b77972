#!/bin/bash
# SPDX-License-Identifier: MIT
# smtpuv-bench against Postfix's smtp-source, A B A B ..., on the same
# workload against one smtp-sink on a free loopback port.
#
#   bench/compare.sh [--quick] [--bench PATH] [W1 W2 W3 W4 ...]
#
# Workloads (default: all):
#   W1  10,000 messages of 2 KiB (-l 2048) over one connection (-d -s 1)
#   W2  20,000 messages of 2 KiB over 8 and over 64 connections: N clients
#       (-d -s N), and one client with a pool of N (-d -s 1 --connections=N),
#       each beside smtp-source -d -s N
#   W3  one 50 MiB message streamed from a file: 76-character lines, every
#       7th starting with '.' (smtp-source -F FILE, smtpuv-bench -F FILE)
#   W4  1,000 concurrent connections on one loop (smtpuv-bench only:
#       -d -s 1000 -m 1000 --hold --heap): all messages accounted for, RSS
#       per connection
#
# For W1-W3, PAIRS (default 5) pairs are run, smtpuv-bench first in each.
# Both programs are timed the same way, from outside (bash `time`, ms
# resolution, process start to exit); client CPU is the process's user+sys
# from the same `time`, peak RSS from /usr/bin/time -f %M when installed.
# The ratio of a pair is smtpuv-bench's rate over smtp-source's rate, and
# the median of the ratios is printed with the issue's target.
#
# smtpuv-bench: --bench PATH (or SMTPUV_BENCH=PATH), else built from this
# tree into build-bench/ (RelWithDebInfo, configured and rebuilt by each run;
# the build log is build-bench/compare-build.log).
# Printed with the results: the exact command line, the machine (CPUs,
# kernel, load average at start) and the commit smtpuv-bench was built from.
#
# Environment: PAIRS=N, SMTPUV_BENCH=path (as --bench),
# PIN=none|same|split (taskset: sink and client on one CPU, or on two;
# on a small VM a cross-CPU wakeup per round trip dominates, and the
# scheduler's unpinned placement makes runs bimodal),
# SMTP_SOURCE=path, BENCH_TMP=dir (default /tmp), KEEP=1 keeps the logs.
# --quick: 1 pair, workloads scaled down ~10x (a smoke run, not a measure).
# Exit status: 0 when every run delivered everything (targets are reported,
# not enforced), 1 when a run failed.
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
while (($#)); do
  case $1 in
    --quick) QUICK=1 ;;
    --bench) BENCH=$2; shift ;;
    --bench=*) BENCH=${1#--bench=} ;;
    W1|W2|W3|W4) WORKLOADS+=("$1") ;;
    -h|--help) sed -n '2,/^set -uo/{/^set -uo/!p}' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
((${#WORKLOADS[@]})) || WORKLOADS=(W1 W2 W3 W4)

BENCH_FROM="given: --bench or SMTPUV_BENCH"
if [[ -z $BENCH ]]; then
  # our own build of this tree: never someone else's build directory
  BUILD_DIR=$REPO/build-bench
  BENCH=$BUILD_DIR/bench/smtpuv-bench
  BENCH_FROM="built in $BUILD_DIR (RelWithDebInfo)"
  mkdir -p "$BUILD_DIR"
  if ! { cmake -S "$REPO" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
           -DSMTPUV_BUILD_TESTS=OFF -DSMTPUV_BUILD_EXAMPLES=OFF -DSMTPUV_BUILD_BENCH=ON &&
         cmake --build "$BUILD_DIR" --target smtpuv-bench -j2; } \
       >"$BUILD_DIR/compare-build.log" 2>&1; then
    echo "compare.sh: building smtpuv-bench failed; last lines of $BUILD_DIR/compare-build.log:" >&2
    tail -n 30 "$BUILD_DIR/compare-build.log" >&2
    exit 2
  fi
fi
[[ -n $BENCH && -x $BENCH ]] || { echo "compare.sh: smtpuv-bench not found: $BENCH (--bench PATH)" >&2; exit 2; }
SOURCE=${SMTP_SOURCE:-$(command -v smtp-source 2>/dev/null || echo /usr/sbin/smtp-source)}
[[ -x $SOURCE ]] || { echo "compare.sh: smtp-source not found (apt-get install postfix)" >&2; exit 2; }
[[ -x $SINK_BIN ]] || { echo "compare.sh: smtp-sink not found (apt-get install postfix)" >&2; exit 2; }
GNUTIME=/usr/bin/time
[[ -x $GNUTIME ]] || GNUTIME=

if ((QUICK)); then
  PAIRS=${PAIRS:-1}
  N1=1000 N2=2000 W3_MIB=5 N4=100
else
  PAIRS=${PAIRS:-5}
  N1=10000 N2=20000 W3_MIB=50 N4=1000
fi

TMP=$(mktemp -d "${BENCH_TMP:-/tmp}/smtpuv-compare.XXXXXX")
chmod 755 "$TMP"
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  sink_stop
  if [[ ${KEEP:-0} == 1 ]]; then echo "logs kept in $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# W1-W3: the sink as the issue runs it (backlog 1000; it serves at most
# 256 sessions at once, its -m default). W4: a sink with -m 1100 so that all
# 1000 connections are served at once (excess ones would wait in the
# listen queue and time out waiting for the greeting).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
SINK_KIND=
# PIN=same: sink and client on CPU 0; PIN=split: sink on 0, client on 1.
SINK_CPU=''
RUN_PIN=()
case ${PIN:-none} in
  none) ;;
  same) SINK_CPU=0 RUN_PIN=(taskset -c 0) ;;
  split) SINK_CPU=0 RUN_PIN=(taskset -c 1) ;;
  *) echo "compare.sh: PIN=none|same|split" >&2; exit 2 ;;
esac
use_sink() {
  [[ $SINK_KIND == "$1" ]] && return 0
  sink_stop
  case $1 in
    main) sink_start "$TMP" 1000 || exit 1 ;;
    wide) sink_start "$TMP" 1100 -m 1100 || exit 1 ;;
  esac
  SINK_KIND=$1
  TARGET="127.0.0.1:$SINK_PORT"
  [[ -n $SINK_CPU ]] && taskset -pc "$SINK_CPU" "$SINK_PID" >/dev/null
  echo "smtp-sink ($1) pid $SINK_PID on $TARGET"
}
echo "smtpuv-bench: $BENCH; smtp-source: $SOURCE"
echo "machine: $(nproc) CPUs, $(uname -r); pairs: $PAIRS$( ((QUICK)) && echo ' (quick)'); PIN=${PIN:-none}"
REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')
if [[ $REV != '?' && -n $(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
  REV="$REV+local changes"
fi
RUNINFO=(
  "command: $CMDLINE"
  "machine: $(nproc) CPUs, $(uname -r), load average at start $LOAD_START"
  "smtpuv-bench: $BENCH ($BENCH_FROM; tree $REV)"
)
printf '%s\n' "${RUNINFO[@]}"

FAILED=0

# timed OUTFILE cmd... : runs cmd, prints "wall user sys maxrss_kib rc".
timed() {
  local out=$1; shift
  local tf="$out.time" rf="$out.rss" rc
  local TIMEFORMAT='%3R %3U %3S'
  if [[ -n $GNUTIME ]]; then
    { time "${RUN_PIN[@]}" "$GNUTIME" -o "$rf" -f '%M' "$@" >"$out" 2>&1; } 2>"$tf"
    rc=$?
  else
    { time "${RUN_PIN[@]}" "$@" >"$out" 2>&1; } 2>"$tf"
    rc=$?
    echo "-" >"$rf"
  fi
  # /usr/bin/time writes "Command exited with non-zero status N" first.
  echo "$(tail -n1 "$tf") $(tail -n1 "$rf") $rc"
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "nan"; exit} if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }

# pairs NAME MSGS TARGET_RATIO "common smtp-source/smtpuv-bench options..."
# (with A_OPTS set: smtpuv-bench gets those options instead)
A_OPTS=()
pairs() {
  local name=$1 msgs=$2 target=$3; shift 3
  local opts=("$@")
  local aopts=("$@")
  ((${#A_OPTS[@]})) && aopts=("${A_OPTS[@]}")
  local ratios=() cpus=() rss=()
  echo
  if ((${#A_OPTS[@]})); then
    echo "== $name: smtpuv-bench ${aopts[*]} / smtp-source ${opts[*]}  ($msgs messages, $PAIRS pairs)"
  else
    echo "== $name: ${opts[*]}  ($msgs messages, $PAIRS pairs)"
  fi
  printf '%-4s | %9s %10s %9s %9s | %9s %10s %9s %9s | %7s\n' pair \
    "smtpuv s" "msg/s" "cpu us/m" "rss KiB" "source s" "msg/s" "cpu us/m" "rss KiB" ratio
  for ((p = 1; p <= PAIRS; p++)); do
    local a b
    read -r -a a < <(timed "$TMP/$name.a.$p" "$BENCH" -q "${aopts[@]}" "$TARGET")
    read -r -a b < <(timed "$TMP/$name.b.$p" "$SOURCE" "${opts[@]}" "$TARGET")
    if [[ ${a[4]} != 0 ]]; then
      echo "   smtpuv-bench failed (exit ${a[4]}):"; sed 's/^/     /' "$TMP/$name.a.$p"; FAILED=1
    fi
    if [[ ${b[4]} != 0 ]]; then
      echo "   smtp-source failed (exit ${b[4]}):"; sed 's/^/     /' "$TMP/$name.b.$p"; FAILED=1
    fi
    local line
    line=$(awk -v m="$msgs" -v p="$p" \
      -v aw="${a[0]}" -v au="${a[1]}" -v as="${a[2]}" -v ar="${a[3]}" \
      -v bw="${b[0]}" -v bu="${b[1]}" -v bs="${b[2]}" -v br="${b[3]}" 'BEGIN {
        ra = m / aw; rb = m / bw
        printf "%-4s | %9.3f %10.1f %9.2f %9s | %9.3f %10.1f %9.2f %9s | %7.3f\n",
          p, aw, ra, (au + as) / m * 1e6, ar, bw, rb, (bu + bs) / m * 1e6, br, ra / rb }')
    echo "$line"
    ratios+=("$(awk '{print $NF}' <<<"$line")")
    cpus+=("$(awk -v m="$msgs" -v u="${a[1]}" -v s="${a[2]}" 'BEGIN {printf "%.3f", (u+s)/m*1e6}')")
    rss+=("${a[3]}")
    grep -h '^RESULT' "$TMP/$name.a.$p" | sed 's/^/     smtpuv-bench /' >>"$TMP/$name.results"
  done
  local mr mc mx
  mr=$(printf '%s\n' "${ratios[@]}" | median)
  mc=$(printf '%s\n' "${cpus[@]}" | median)
  mx=$(printf "%s\n" "${rss[@]}" | median | awk "{printf \"%.0f\", \$1}")
  printf 'median ratio %s (target >= %s); smtpuv-bench median CPU %s us/msg, peak RSS %s KiB\n' \
    "$mr" "$target" "$mc" "$mx"
  SUMMARY+=("$(printf '%-24s median ratio %7s  target >= %-4s  cpu %7s us/msg  rss %6s KiB' \
    "$name" "$mr" "$target" "$mc" "$mx")")
}

SUMMARY=()
for w in "${WORKLOADS[@]}"; do
  case $w in
    W1|W2|W3) use_sink main ;;&
    W4) use_sink wide ;;&
    W1) pairs "W1-1conn" "$N1" 3.3 -d -s 1 -m "$N1" -l 2048 ;;
    W2)
      # N separate clients (as smtp-source's N sessions), then ONE client
      # with a pool of N connections, each beside smtp-source -s N
      for n in 8 64; do
        pairs "W2-${n}conn" "$N2" 2.3 -d -s "$n" -m "$N2" -l 2048
        A_OPTS=(-d -s 1 --connections="$n" -m "$N2" -l 2048)
        pairs "W2-${n}pool" "$N2" 2.5 -d -s "$n" -m "$N2" -l 2048
        A_OPTS=()
      done
      ;;
    W3)
      f="$TMP/w3.eml"
      python3 - "$f" "$W3_MIB" <<'EOF'
import sys
path, mib = sys.argv[1], int(sys.argv[2])
size = mib << 20
head = b"From: <foo@example.com>\nTo: <bar@example.com>\nSubject: W3 large message\n\n"
lines = []
for i in range(7):
    c = b"." if i == 0 else b"abcdefghijklmnopqrstuvwxyz0123456789"[i:i + 1]
    lines.append(c + (b"%075d" % i)[:75] + b"\n")     # 76 characters + LF
block = b"".join(lines) * 1024
with open(path, "wb") as out:
    out.write(head)
    n = len(head)
    while n < size:
        piece = block[:size - n]
        out.write(piece)
        n += len(piece)
EOF
      echo
      echo "W3 file: $(stat -c %s "$f") bytes, $(grep -c '' "$f") lines"
      pairs "W3-${W3_MIB}MiB-stream" 1 1.0 -d -s 1 -m 1 -F "$f"
      echo "   (W3 rates are messages/s of one ${W3_MIB} MiB message; target also: smtpuv peak RSS < 16384 KiB)"
      ;;
    W4)
      echo
      echo "== W4: $N4 concurrent connections on one loop (smtpuv-bench -d -s $N4 -m $N4 --hold --heap -l 2048)"
      read -r -a r < <(timed "$TMP/W4.out" "$BENCH" -d -s "$N4" -m "$N4" --hold --heap -l 2048 "$TARGET")
      sed 's/^/   /' "$TMP/W4.out"
      if [[ ${r[4]} != 0 ]]; then echo "   W4 FAILED (exit ${r[4]})"; FAILED=1; fi
      per=$(grep -o 'rss_per_conn_kib=[0-9.-]*' "$TMP/W4.out" | cut -d= -f2)
      heap=$(grep -o 'heap_per_conn=[0-9.-]*' "$TMP/W4.out" | cut -d= -f2)
      SUMMARY+=("$(printf '%-24s RSS per connection %s KiB (target <= 32), library heap %s B/conn, exit %s' \
        "W4-${N4}conn" "${per:-?}" "${heap:-?}" "${r[4]}")")
      ;;
  esac
done

echo
printf '%s\n' "${RUNINFO[@]}"
echo "load average at end $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
echo "== summary"
printf '%s\n' "${SUMMARY[@]}"
if [[ -s $TMP/W1-1conn.results || -s $TMP/W2-8conn.results ]]; then
  echo "(smtpuv-bench's own RESULT lines, timed inside the process:)"
  cat "$TMP"/*.results 2>/dev/null
fi
exit "$FAILED"
