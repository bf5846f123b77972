#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every source, header, script and build file of smtpuv carries the line
# "SPDX-License-Identifier: MIT" (LICENSE) in its first 5 lines.
#
#   scripts/spdx.sh [ROOT]          check: list the files without it, exit 1 if any
#   scripts/spdx.sh --fix [ROOT]    add the line where it is missing, then check
#   scripts/spdx.sh --list [ROOT]   print the files that must carry it
#
# ROOT defaults to the repository of this script. The ctest `spdx` (label
# lint) runs the check; after a merge, run --fix and commit the result.
#
# Which files count (paths relative to ROOT; the files git knows, tracked or
# untracked but not ignored, or every file outside build*/ and .git/ without git):
#   *.c *.h                    C         /* SPDX-License-Identifier: MIT */
#   *.js *.mjs *.cjs *.ts      JS/TS     // SPDX-License-Identifier: MIT
#   *.map *.map.in *.ld        linker version scripts: the C comment
#   *.py *.sh *.bash *.cmake *.cmake.in CMakeLists.txt *.pc.in Doxyfile*
#   *.in (any other) *.mk Makefile *.yml *.yaml *.toml *.conf *.supp
#                              hash      # SPDX-License-Identifier: MIT
#   *.1 .. *.8 (man pages)     roff      .\" SPDX-License-Identifier: MIT
#   any other file whose first line starts with "#!" (an extension-less script
#   such as .ci/run): hash
# The line goes first, or after a "#!" line (and after a Python coding line
# that follows it, which must stay within the first two lines).
# Never counted: fuzz seed corpora (tests/fuzz/<name>/, where <name> is a
# directory), the ABI baselines (abi/), documentation (*.md, LICENSE), data
# (*.json, *.txt other than CMakeLists.txt, *.pem, *.eml, *.abi...), .gitignore,
# node_modules/ and package-lock.json.
set -euo pipefail

MODE=check
case ${1:-} in
  --fix) MODE=fix; shift ;;
  --list) MODE=list; shift ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac
ROOT=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
cd "$ROOT"
TAG="SPDX-License-Identifier: MIT"

all_files() {
  if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files --cached --others --exclude-standard -z | tr '\0' '\n'
  else
    find . \( -name .git -o -name 'build' -o -name 'build-*' -o -name node_modules \) -prune \
      -o -type f -print | sed 's|^\./||'
  fi
}

# style FILE: c, slash, hash, roff, or nothing when the file does not count
style() {
  local f=$1 base=${1##*/}
  case $f in
    tests/fuzz/*/*|abi/*|*/node_modules/*|node_modules/*) return 0 ;;
  esac
  case $base in
    *.c|*.h|*.map|*.map.in|*.ld) echo c ;;
    *.js|*.mjs|*.cjs|*.ts) echo slash ;;
    CMakeLists.txt|*.py|*.sh|*.bash|*.cmake|*.cmake.in|*.pc.in|Doxyfile*|*.in|*.mk|Makefile|\
    *.yml|*.yaml|*.toml|*.conf|*.supp) echo hash ;;
    *.[1-8]) echo roff ;;
    *.md|LICENSE*|*.json|*.txt|*.pem|*.eml|*.abi|.gitignore|*.xml|*.html|*.css) return 0 ;;
    *)
      if [[ -f $f ]] && head -c 2 "$f" | grep -q '^#!'; then echo hash; fi ;;
  esac
}

has_tag() { head -n 5 "$1" | grep -qF "$TAG"; }

# fix FILE STYLE: insert the line at the right place
fix() {
  local f=$1 line tmp
  case $2 in
    c) line="/* $TAG */" ;;
    slash) line="// $TAG" ;;
    hash) line="# $TAG" ;;
    roff) line=".\\\" $TAG" ;;
  esac
  tmp=$(mktemp "$f.spdx.XXXXXX")
  # the line goes through the environment: awk -v would eat its backslashes
  SPDX_LINE=$line awk '
    BEGIN { line = ENVIRON["SPDX_LINE"] }
    NR == 1 && /^#!/ { print; shebang = 1; next }
    NR == 2 && shebang && /^#.*coding[:=]/ { print; next }
    !done { print line; done = 1 }
    { print }
    END { if (!done) print line }
  ' "$f" > "$tmp"
  chmod --reference="$f" "$tmp"
  mv "$tmp" "$f"
}

missing=() n=0
while IFS= read -r f; do
  [[ -f $f ]] || continue
  s=$(style "$f")
  [[ -n $s ]] || continue
  n=$((n + 1))
  if [[ $MODE == list ]]; then echo "$f"; continue; fi
  has_tag "$f" && continue
  if [[ $MODE == fix ]]; then
    fix "$f" "$s"
    echo "spdx: added to $f"
  else
    missing+=("$f")
  fi
done < <(all_files | LC_ALL=C sort -u)

[[ $MODE == list ]] && exit 0
if [[ $n -eq 0 ]]; then echo "spdx: no files found under $ROOT" >&2; exit 1; fi
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "spdx: ${#missing[@]} of $n files lack \"$TAG\" in their first 5 lines" \
       "(scripts/spdx.sh --fix adds it):"
  printf '  %s\n' "${missing[@]}"
  exit 1
fi
echo "spdx: all $n files carry \"$TAG\""
