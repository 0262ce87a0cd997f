#!/bin/sh
# Build Cairn with AddressSanitizer and UBSan in build-asan/ and run every
# test suite. Extra arguments go to `meson test` (for example
# `sh tools/run-tests.sh --suite unit`). Exits with meson test's status.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

sh tools/install-deps.sh

builddir=build-asan
# -Db_lundef=false: needed with clang and shared libraries (meson #764);
# harmless with gcc.
opts='-Db_sanitize=address,undefined -Db_lundef=false'

# meson 1.0.1 reconfigures only a directory that holds a complete build tree;
# a first setup that failed leaves a directory without one.
if [ -f "$builddir/meson-private/coredata.dat" ]; then
    # shellcheck disable=SC2086 # word splitting is wanted
    meson setup --reconfigure $opts "$builddir"
else
    # shellcheck disable=SC2086
    meson setup $opts "$builddir"
fi
ninja -C "$builddir"

# Any sanitizer report fails the test that triggered it. UBSan only reports
# and continues unless told otherwise. Options already in the environment
# come last, so they win.
ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_summary=1:detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:print_summary=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export ASAN_OPTIONS UBSAN_OPTIONS

status=0
meson test -C "$builddir" --print-errorlogs "$@" || status=$?

# Formatting is part of the tests (STYLE.md 2.8): `ninja -C build-asan
# clang-format` fixes what this reports.
if command -v clang-format >/dev/null 2>&1; then
    if ! ninja -C "$builddir" clang-format-check >/dev/null 2>&1; then
        echo "error: files need formatting: run ninja -C $builddir clang-format" >&2
        status=1
    fi
else
    echo "note: clang-format not installed; formatting not checked" >&2
fi

exit "$status"
