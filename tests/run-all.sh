#!/bin/sh
# SPDX-License-Identifier: MIT
# Quick start, second command: install dependencies, build, and run every test.
# Usage: tests/run-all.sh [BUILD_DIR [MESON_SETUP_OPTIONS...]]
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
[ $# -gt 0 ] && shift
sh tests/deps.sh
if [ ! -f "$build/build.ninja" ]; then
        meson setup "$build" -Dwerror=true "$@"
fi
ninja -C "$build"
set +e
meson test -C "$build" --print-errorlogs --num-processes 2 ${MTA_TEST_ARGS:-}
rc=$?
set -e
# One closing line that any CI reads: "N passed, N failed".
python3 - "$build/meson-logs/testlog.json" <<'PY'
import json, sys
ok = fail = skip = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"):
        ok += 1
    elif r == "SKIP":
        skip += 1
    else:
        fail += 1
print(f"{ok} passed, {fail} failed, {skip} skipped")
PY
exit $rc
