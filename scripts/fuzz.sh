#!/bin/sh
# Builds the libFuzzer harnesses in fuzz/ (clang, -fsanitize=fuzzer,address,undefined) into
# build/fuzz/ and runs each target for FUZZ_SECONDS, one after another, one process each.
#   sh scripts/fuzz.sh                         every target, 60 s each
#   FUZZ_SECONDS=10 sh scripts/fuzz.sh         a short run (CI)
#   FUZZ_TARGETS="json image" sh scripts/fuzz.sh
#   FUZZ_BUILD_ONLY=1 sh scripts/fuzz.sh       build, do not run
# Prints per target: executions, inputs in the working corpus, crashes. A crash, a leak, an
# ASan/UBSan report, a timeout (FUZZ_TIMEOUT s per input, default 30) or running out of
# memory (2 GB) stops that target and keeps the input in build/fuzz/crashes/<target>/
# (replay: build/fuzz/<target>_fuzz <file>); the script then exits 1.
# The working corpus grows in build/fuzz/corpus/<target>/ from the committed seeds in
# fuzz/corpus/<target>/ (never written to). Needs clang-14, libfuzzer-14-dev and
# libclang-rt-14-dev (sh scripts/install-deps.sh fuzz).
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECS=${FUZZ_SECONDS:-60}
TIMEOUT=${FUZZ_TIMEOUT:-30}
OUT=build/fuzz
ALL="safetensors json featmap cache_manifest image audio video words wordpiece wordpiece_vocab wordpiece_json glove onnx webp_anim tfjs"
TARGETS=${FUZZ_TARGETS:-$ALL}
CC=clang-14
command -v $CC >/dev/null 2>&1 || CC=clang
command -v $CC >/dev/null 2>&1 || { echo "fuzz.sh: clang not found (sh scripts/install-deps.sh fuzz)" >&2; exit 2; }
CFLAGS="-g -O1 -std=c11 -D_GNU_SOURCE -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Wall -Wextra -Wno-unused-parameter"
CORE="csrc/core/util.c csrc/core/tensor.c"

# target -> SRC (project C files besides the harness), PKGS (pkg-config), MAXLEN, DICT
describe() {
  SRC="" PKGS="" DICT="" XFLAGS="" GCC_SRC=""
  case "$1" in
    safetensors) SRC="csrc/io/safetensors.c csrc/io/json.c csrc/core/atomic_write.c" MAXLEN=4096 DICT=fuzz/safetensors.dict ;;
    json) SRC="csrc/io/json.c" MAXLEN=4096 DICT=fuzz/json.dict ;;
    featmap) SRC="csrc/io/mmap_features.c csrc/io/safetensors.c csrc/io/json.c csrc/core/atomic_write.c" PKGS="libavutil" MAXLEN=2048 DICT=fuzz/safetensors.dict ;;
    cache_manifest) PKGS="lua5.4" MAXLEN=1024 ;; # finds lua/, fuzz/ and the module by OE_FUZZ_ROOT, OE_FUZZ_CPATH
    image) SRC="csrc/io/image_decode.c" PKGS="libturbojpeg libpng" MAXLEN=4096 ;;
    audio) SRC="csrc/io/audio.c csrc/io/audio_container.c csrc/io/video_ffmpeg.c csrc/core/atomic_write.c"
      PKGS="sndfile libavformat libavcodec libavutil libswresample" MAXLEN=16384 ;;
    video) SRC="csrc/io/video.c csrc/io/video_ffmpeg.c csrc/core/rng.c" PKGS="libavformat libavcodec libavutil libswscale" MAXLEN=32768 ;;
    words) SRC="csrc/ops/encoders.c csrc/core/rng.c" MAXLEN=4096 ;;
    wordpiece) SRC="$(ls csrc/text/*.c | grep -v /glove_ | tr '\n' ' ') csrc/io/json.c" PKGS="libutf8proc" MAXLEN=4096 ;;
    wordpiece_vocab) SRC="$(ls csrc/text/*.c | grep -v /glove_ | tr '\n' ' ') csrc/io/json.c" PKGS="libutf8proc" MAXLEN=8192 ;;
    wordpiece_json) SRC="$(ls csrc/text/*.c | grep -v /glove_ | tr '\n' ' ') csrc/io/json.c" PKGS="libutf8proc" MAXLEN=16384 DICT=fuzz/wordpiece_json.dict ;;
    glove) SRC="csrc/text/glove_table.c csrc/text/glove_tokenize.c csrc/io/safetensors.c csrc/io/json.c csrc/core/atomic_write.c" PKGS="libutf8proc" MAXLEN=4096 DICT=fuzz/glove.dict ;;
    # the kernels use GCC-only vector builtins: compiled by gcc (ASan/UBSan, no coverage), linked in
    onnx) SRC="$(ls csrc/onnx/*.c | tr '\n' ' ')" GCC_SRC="$(ls csrc/ops/*.c | tr '\n' ' ') csrc/core/blas.c csrc/core/cpu.c csrc/core/threads.c csrc/core/rng.c"
      PKGS="openblas libprotobuf-c" XFLAGS="-fopenmp" MAXLEN=16384 ;;
    webp_anim) SRC="csrc/io/webp_anim.c" PKGS="libwebpdemux" MAXLEN=16384 ;;
    tfjs) SRC="$(ls csrc/tfjs/*.c | tr '\n' ' ') csrc/io/json.c" GCC_SRC="$(ls csrc/ops/*.c | tr '\n' ' ') csrc/core/blas.c csrc/core/cpu.c csrc/core/threads.c csrc/core/rng.c"
      PKGS="openblas" XFLAGS="-fopenmp" MAXLEN=24576 DICT=fuzz/json.dict ;;
    *) echo "fuzz.sh: unknown target '$1' (targets: $ALL)" >&2; exit 2 ;;
  esac
}

mkdir -p "$OUT"
for t in $TARGETS; do
  describe "$t"
  bin="$OUT/${t}_fuzz"
  if [ "$t" = cache_manifest ]; then
    # the Lua module the driver requires: the project's normal build, in its own folder
    make --no-print-directory -s -j2 BUILD="$OUT/lua" all >"$OUT/lua-build.log" 2>&1 \
      || { echo "fuzz.sh: building oneencoder.core for $t failed (see $OUT/lua-build.log)" >&2; exit 2; }
  fi
  # rebuild when the harness, a listed source or any header is newer than the binary
  if [ ! -x "$bin" ] || [ -n "$(find fuzz/${t}_fuzz.c fuzz/*.h $SRC $GCC_SRC $CORE csrc/*/*.h -newer "$bin" 2>/dev/null | head -1)" ] \
     || { [ "$t" = wordpiece_json ] && [ fuzz/wordpiece_vocab_fuzz.c -nt "$bin" ]; }; then
    objs=""
    mkdir -p "$OUT/gcc-obj"
    for s in $GCC_SRC; do
      o="$OUT/gcc-obj/$(echo "$s" | tr / _).o"
      # shellcheck disable=SC2086
      gcc -g -O1 -std=c11 -D_GNU_SOURCE -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
        -Wno-psabi $XFLAGS $(pkg-config --cflags $PKGS) -c "$s" -o "$o" 2>>"$OUT/${t}-build.log" \
        || { cat "$OUT/${t}-build.log" >&2; echo "fuzz.sh: building $t failed ($s)" >&2; exit 2; }
      objs="$objs $o"
    done
    # shellcheck disable=SC2086
    if ! $CC $CFLAGS $XFLAGS fuzz/${t}_fuzz.c $SRC $objs $CORE $( [ -n "$PKGS" ] && pkg-config --cflags --libs $PKGS) -lm -o "$bin" \
         >"$OUT/${t}-build.log" 2>&1; then
      cat "$OUT/${t}-build.log" >&2
      echo "fuzz.sh: building $t failed" >&2
      exit 2
    fi
  fi
done
[ "${FUZZ_BUILD_ONLY:-0}" = 1 ] && { echo "fuzz: built $(echo $TARGETS | wc -w) targets in $OUT"; exit 0; }

# third-party leaks (fuzz/lsan.supp) are not reported; anything else leaked is a crash
export LSAN_OPTIONS="suppressions=$ROOT/fuzz/lsan.supp:print_suppressions=0"
export OE_FUZZ_ROOT="$ROOT" OE_FUZZ_CPATH="$ROOT/$OUT/lua/?.so"
failed=0
mkdir -p "$OUT/logs"
for t in $TARGETS; do
  describe "$t"
  mkdir -p "$OUT/corpus/$t" "$OUT/crashes/$t"
  before=$(ls "$OUT/crashes/$t" | wc -l)
  set -- "$OUT/corpus/$t" "fuzz/corpus/$t" -max_total_time="$SECS" -max_len="$MAXLEN" -timeout="$TIMEOUT" \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$OUT/crashes/$t/"
  [ -n "$DICT" ] && set -- "$@" -dict="$DICT"
  log="$OUT/logs/$t.log"
  "$OUT/${t}_fuzz" "$@" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  [ -z "$execs" ] && execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -1)
  corpus=$(ls "$OUT/corpus/$t" | wc -l)
  crashes=$(( $(ls "$OUT/crashes/$t" | wc -l) - before ))
  if [ "$rc" != 0 ] || [ "$crashes" -gt 0 ]; then
    failed=$((failed + 1))
    what=$(grep -m1 -E '^==[0-9]+==ERROR|^SUMMARY|fuzz check failed|Lua error|ALARM|out-of-memory' "$log" | cut -c1-200)
    echo "fuzz $t: CRASH after ${execs:-0} executions (exit $rc): $what"
    for f in $(ls -t "$OUT/crashes/$t" | head -"${crashes:-1}"); do echo "  input: $OUT/crashes/$t/$f (replay: $OUT/${t}_fuzz $OUT/crashes/$t/$f)"; done
    echo "  log: $log"
  else
    echo "fuzz $t: ${execs:-0} executions in ${SECS} s, corpus $corpus inputs, 0 crashes"
  fi
done
n=$(echo $TARGETS | wc -w)
echo "fuzz: $n targets, $failed crashed"
[ "$failed" = 0 ]
