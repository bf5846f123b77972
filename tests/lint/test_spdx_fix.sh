#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ctest spdx_fix: scripts/spdx.sh on a scratch tree. The check lists exactly
# the files that count and lack the line (not seed corpora, data or docs);
# --fix puts the line in each file type's comment syntax at the right place
# (after a shebang, after a Python coding line), byte for byte; a second
# --fix changes nothing and the check then passes.
set -euo pipefail
SPDX=${1:?usage: test_spdx_fix.sh <repo>/scripts/spdx.sh}
T=$(mktemp -d /tmp/smtpuv-spdx.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

mkdir -p "$T/src" "$T/tests/fuzz/reply" "$T/docs/man" "$T/bindings" "$T/build"
printf 'int x;\n' > "$T/src/a.c"
printf '#!/bin/sh\necho hi\n' > "$T/run.sh"
printf '#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\nprint(1)\n' > "$T/tool.py"
printf 'project(x C)\n' > "$T/CMakeLists.txt"
printf '.TH X 1\n' > "$T/docs/man/x.1"
printf '#!/usr/bin/env node\nconsole.log(1);\n' > "$T/bindings/index.js"
printf '#!/bin/bash\nexit 0\n' > "$T/runner"
printf 'Requires: x\n' > "$T/x.pc.in"
printf '/* SPDX-License-Identifier: MIT */\nint y;\n' > "$T/src/done.h"
# never counted
printf '250 ok\r\n' > "$T/tests/fuzz/reply/seed"
printf '# doc\n' > "$T/README.md"
printf '{}\n' > "$T/package.json"
printf 'int z;\n' > "$T/build/gen.c"
chmod +x "$T/run.sh" "$T/runner"

rc=0
out=$("$SPDX" "$T") || rc=$?
[[ $rc -eq 1 ]] || fail "check exit $rc, expected 1"
got=$(sed -n 's/^  //p' <<<"$out" | sort | paste -sd' ')
want="CMakeLists.txt bindings/index.js docs/man/x.1 run.sh runner src/a.c tool.py x.pc.in"
[[ $got == "$want" ]] || fail "listed [$got], expected [$want]"

"$SPDX" --fix "$T" > /dev/null
expect() { # expect FILE CONTENT(printf format)
  local w; w=$(printf "$2"; echo x)
  local g; g=$(cat "$T/$1"; echo x)
  [[ $g == "$w" ]] || fail "$1 is [$(cat "$T/$1")]"
}
expect src/a.c '/* SPDX-License-Identifier: MIT */\nint x;\n'
expect run.sh '#!/bin/sh\n# SPDX-License-Identifier: MIT\necho hi\n'
expect tool.py '#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\n# SPDX-License-Identifier: MIT\nprint(1)\n'
expect CMakeLists.txt '# SPDX-License-Identifier: MIT\nproject(x C)\n'
expect docs/man/x.1 '.\\" SPDX-License-Identifier: MIT\n.TH X 1\n'
expect bindings/index.js '#!/usr/bin/env node\n// SPDX-License-Identifier: MIT\nconsole.log(1);\n'
expect runner '#!/bin/bash\n# SPDX-License-Identifier: MIT\nexit 0\n'
expect x.pc.in '# SPDX-License-Identifier: MIT\nRequires: x\n'
expect src/done.h '/* SPDX-License-Identifier: MIT */\nint y;\n'
expect tests/fuzz/reply/seed '250 ok\r\n'
expect build/gen.c 'int z;\n'
[[ -x $T/run.sh && -x $T/runner ]] || fail "--fix lost the executable bit"

before=$(cd "$T" && find . -type f -exec md5sum {} + | sort)
"$SPDX" --fix "$T" > /dev/null
after=$(cd "$T" && find . -type f -exec md5sum {} + | sort)
[[ $before == "$after" ]] || fail "a second --fix changed files"
"$SPDX" "$T" > /dev/null || fail "check fails after --fix"
echo "spdx_fix: check lists the 8 files, --fix writes each comment style, idempotent"
