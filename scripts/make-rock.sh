#!/bin/sh
# make-rock.sh: a source rock from the committed tree (HEAD), in build/rock/.
# git archive gives oneencoder-scm-1.tar.gz (top folder oneencoder/), which the rockspec's
# relative source.url names; luarocks pack then bundles both into oneencoder-scm-1.src.rock.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/build/rock"
rm -rf "$out"
mkdir -p "$out"
cd "$root"
git archive --format=tar.gz --prefix=oneencoder/ -o "$out/oneencoder-scm-1.tar.gz" HEAD
cp rockspec/oneencoder-scm-1.rockspec "$out/"
cd "$out"
luarocks --lua-version=5.4 pack oneencoder-scm-1.rockspec >/dev/null
[ -f oneencoder-scm-1.src.rock ] || { echo "make-rock: luarocks pack left no oneencoder-scm-1.src.rock" >&2; exit 1; }
echo "$out/oneencoder-scm-1.src.rock"
