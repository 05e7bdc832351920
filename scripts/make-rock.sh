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
# luarocks pack resolves a relative url from a temporary folder: pack from a copy that
# names the archive by its absolute path, then put the committed rockspec (relative url,
# which installing from the .src.rock resolves inside the rock) back into the rock
mkdir -p "$out/pack"
sed "s|url = \"oneencoder-scm-1.tar.gz\"|url = \"file://$out/oneencoder-scm-1.tar.gz\"|" \
  rockspec/oneencoder-scm-1.rockspec > "$out/pack/oneencoder-scm-1.rockspec"
grep -q "file://" "$out/pack/oneencoder-scm-1.rockspec" || { echo "make-rock: source.url not found in the rockspec" >&2; exit 1; }
cd "$out"
luarocks --lua-version=5.4 pack pack/oneencoder-scm-1.rockspec >/dev/null
[ -f oneencoder-scm-1.src.rock ] || { echo "make-rock: luarocks pack left no oneencoder-scm-1.src.rock" >&2; exit 1; }
cp "$root/rockspec/oneencoder-scm-1.rockspec" "$out/oneencoder-scm-1.rockspec"
zip -q -j oneencoder-scm-1.src.rock oneencoder-scm-1.rockspec
rm -rf pack
echo "$out/oneencoder-scm-1.src.rock"
