#!/bin/sh
# Runs every spec under Lua 5.4 with busted's TAP output and ends with
# "N passed, N failed". Exit status is non-zero when anything failed.
# $1: build folder holding oneencoder/core.so. SANITIZE=1 preloads ASan.
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;$root/spec/?.lua;;"
export LUA_CPATH="$root/$build/?.so;;"
log=$(mktemp)
if [ -n "$SANITIZE" ]; then
  export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=23"
  export LSAN_OPTIONS="suppressions=$root/scripts/lsan.supp:print_suppressions=0"
  export OE_SANITIZE=1
fi
cd "$root"
# --cpath: .busted's cpath (build/?.so) is searched before LUA_CPATH and would shadow $build
lua5.4 /usr/bin/busted --cpath="$root/$build/?.so" -o TAP spec 2>&1 | tee "$log"
status=$?
# busted's exit code is lost in the pipe: recompute from the TAP lines
passed=$(grep -c '^ok ' "$log")
failed=$(grep -c '^not ok ' "$log")
if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log"; then failed=$((failed + 1)); echo "sanitizer report above"; fi
if ! grep -q '^1\.\.[0-9]' "$log"; then failed=$((failed + 1)); echo "busted did not finish"; fi
rm -f "$log"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
