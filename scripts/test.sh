#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs what is missing, builds Parley twice (warnings as errors; then
# with AddressSanitizer + UndefinedBehaviorSanitizer) and runs the whole
# test suite against each build. Exits non-zero if anything fails.
set -eu
cd "$(dirname "$0")/.."
./scripts/deps.sh

echo "== format: clang-format --dry-run -Werror"
git ls-files '*.c' '*.h' 2>/dev/null | xargs -r clang-format --dry-run -Werror

jobs=$(nproc 2>/dev/null || echo 2)
for preset in ci asan; do
    echo "== build: $preset"
    cmake --preset "$preset" >/dev/null
    cmake --build "build/$preset" -j "$jobs" >"build/$preset.build.log" 2>&1 || {
        cat "build/$preset.build.log"
        exit 1
    }
    echo "== test: $preset"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=99 \
        ctest --test-dir "build/$preset" --output-on-failure -j "$jobs" --timeout 600
done
