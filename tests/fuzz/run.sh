#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds the libFuzzer targets with clang and runs each for SECONDS (default 20) on its seed
# corpus in tests/fuzz/corpus/TARGET/. New inputs go to a scratch copy, never into the tree.
# Usage: tests/fuzz/run.sh [SECONDS [BUILD_DIR]]
set -eu
cd "$(dirname "$0")/../.."
seconds=${1:-20}
build=${2:-build-fuzz}
if [ ! -f "$build/build.ninja" ]; then
        CC=clang meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
                -Dman=disabled >/dev/null
fi
ninja -C "$build" >/dev/null
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
for exe in "$build"/tests/fuzz/fuzz-*; do
        [ -f "$exe" ] && [ -x "$exe" ] || continue
        name=$(basename "$exe")
        mkdir -p "$scratch/$name"
        seeds="tests/fuzz/corpus/$name"
        [ -d "$seeds" ] || seeds=""
        if "$exe" -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 \
                -artifact_prefix="$scratch/$name-" "$scratch/$name" $seeds \
                >"$scratch/$name.log" 2>&1; then
                execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$scratch/$name.log" | grep -o '[0-9]*$')
                cov=$(grep -o 'cov: [0-9]*' "$scratch/$name.log" | tail -n 1)
                echo "fuzz $name: ok, ${execs:-?} executions, ${cov:-cov: ?}"
        else
                echo "fuzz $name: FAILED"
                tail -n 40 "$scratch/$name.log"
                for a in "$scratch/$name"-*; do
                        [ -f "$a" ] && { echo "reproducer:"; od -c "$a" | head -n 20; }
                done
                status=1
        fi
done
exit $status
