#!/usr/bin/env bash
# The native addon under AddressSanitizer and UndefinedBehaviorSanitizer (issue 11).
#
# Builds offload/native/*.c with -fsanitize=address,undefined into .sanitize/ (the
# normal build in offload/native/build is left alone), then runs the native and play
# tests with that build (OFFCAST_NATIVE_ADDON points the loader at it) and libasan
# preloaded into node (node itself is not instrumented). Any ASan report or UBSan
# error aborts the process that hit it, which fails its test.
#
# Leaks: LeakSanitizer runs at every node exit, but node and V8 keep memory on
# purpose until exit, so a leak does not fail the process (exitcode=0). Instead
# the reports are written to .sanitize/log/ and this script fails when a leaked
# block was allocated from the addon itself (a stack frame in engine.c or sendbatch.c; the
# addon is preloaded so that it stays mapped, and symbolized, until the report):
# the engine's own allocations must all be freed by its cleanup hook.
#
#   npm run test:sanitize                       # engine, batch, play, race (scaled down)
#   npm run test:sanitize -- test/x.test.ts     # other test files instead
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/.sanitize
rm -rf "$out"
mkdir -p "$out/src" "$out/log"
cp offload/native/*.c "$out/src/"
cat >"$out/src/binding.gyp" <<'GYP'
{
  "targets": [
    {
      "target_name": "offcast_native",
      "sources": ["sendbatch.c", "engine.c"],
      "cflags": ["-O1", "-g", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-pthread",
                 "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"],
      "ldflags": ["-pthread", "-fsanitize=address,undefined"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
GYP
echo "sanitize: building the addon with -fsanitize=address,undefined"
npx node-gyp rebuild -C "$out/src" >"$out/build.log" 2>&1 || {
  cat "$out/build.log"
  exit 1
}
addon=$out/src/build/Release/offcast_native.node
libasan=$(gcc -print-file-name=libasan.so)
if [ ! -e "$libasan" ]; then
  echo "sanitize: libasan not found (apt-get install gcc)" >&2
  exit 1
fi

files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  # (video.test.ts has tight timing bounds that the sanitizers' slowdown of node itself can miss: run it by name)
  files=(test/offload/engine.test.ts test/offload/batch.test.ts test/integration/play.test.ts test/integration/engineRace.test.ts)
fi

export OFFCAST_NATIVE_ADDON=$addon
# The addon is preloaded too: node unloads an addon when the last environment using it
# is torn down, and a leak report would then name its frames "<unknown module>".
export LD_PRELOAD="$libasan $addon"
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=1:log_path=$out/log/asan:fast_unwind_on_malloc=0:malloc_context_size=30"
export LSAN_OPTIONS="exitcode=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$out/log/ubsan"
# The race test at a scale that fits the sanitizers' slowdown.
export OFFCAST_RACE_PLAYING=${OFFCAST_RACE_PLAYING:-500}
export OFFCAST_RACE_CYCLES=${OFFCAST_RACE_CYCLES:-2000}
echo "sanitize: running ${files[*]}"
status=0
npx tap --jobs 1 "${files[@]}" || status=$?
echo "sanitize: the engine tests again with a sendmmsg per track instead of io_uring"
OFFCAST_ENGINE_URING=0 npx tap --jobs 1 test/offload/engine.test.ts || status=$?
echo "sanitize: leak probe (workers that use the engine and exit)"
node scripts/sanitize-leaks.mjs || status=$?
unset LD_PRELOAD

# Every sanitizer error (not leaks) is a failure; leaks only when the addon allocated them.
errors=$(grep -l -E "ERROR: AddressSanitizer|runtime error:" "$out"/log/* 2>/dev/null || true)
if [ -n "$errors" ]; then
  echo "sanitize: sanitizer errors in: $errors" >&2
  for f in $errors; do sed -n '1,60p' "$f"; done
  status=1
fi
ours=0
for f in "$out"/log/asan.*; do
  [ -e "$f" ] || continue
  # Leak reports are blocks separated by blank lines; keep those with a frame in the addon.
  n=$(awk -v RS= '/(Direct|Indirect) leak/ && /offcast_native\.node|(engine|sendbatch)\.c:[0-9]/' "$f" | tee -a "$out/addon-leaks.txt" | grep -c -E "(Direct|Indirect) leak" || true)
  ours=$((ours + n))
done
if [ "$ours" -gt 0 ]; then
  echo "sanitize: $ours leaked block(s) allocated by the addon:" >&2
  sed -n '1,80p' "$out/addon-leaks.txt"
  status=1
fi
reports=$(ls "$out"/log | wc -l)
echo "sanitize: $reports sanitizer log(s) read; addon leaks: $ours; tests exit status: $status"
exit $status
