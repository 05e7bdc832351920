#!/bin/sh
# Installs the Debian packages oneencoder needs, when they are missing.
# As root it runs apt-get itself; otherwise it prints the exact command.
PKGS="lua5.4 liblua5.4-dev luarocks lua-busted libopenblas-dev pkg-config gcc make \
libsndfile1-dev libturbojpeg0-dev libpng-dev libavformat-dev libavcodec-dev libavutil-dev \
libswscale-dev libswresample-dev ffmpeg espeak-ng libfftw3-dev libutf8proc-dev"
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
