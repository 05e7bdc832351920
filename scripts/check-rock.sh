#!/bin/sh
# check-rock.sh: the rock installs like one. Installs the source rock from `make rock` and,
# separately, the checkout through `luarocks make`, each into a private tree, then loads
# the library from an unrelated folder with only that tree on the paths.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rock=$(sh "$root/scripts/make-rock.sh")
cat > "$tmp/load.lua" <<'LUA'
local tree = arg[1]
local oe = require "oneencoder"
local so = package.searchpath("oneencoder.core", package.cpath)
assert(so and so:find(tree, 1, true), "oneencoder.core not loaded from the private tree: " .. tostring(so))
local lua = package.searchpath("oneencoder", package.path)
assert(lua and lua:find(tree, 1, true), "oneencoder not loaded from the private tree: " .. tostring(lua))
local y = oe.matmul(oe.ones({ 2, 3 }), oe.ones({ 3, 4 }))
assert(y:get(2, 4) == 3)
local i = oe.info()
print(string.format("rock loads from %s: blas_core %s, simd %s", tree, i.blas_core, i.simd))
LUA
check() { # $1: tree; run from an unrelated folder with only the tree's paths
  (cd "$tmp" && eval "$(luarocks --lua-version=5.4 --tree="$1" path)" && lua5.4 "$tmp/load.lua" "$1")
}
luarocks --lua-version=5.4 install --tree="$tmp/src-rock" "$rock" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; exit 1; }
check "$tmp/src-rock"
(cd "$root" && luarocks --lua-version=5.4 make --tree="$tmp/checkout" rockspec/oneencoder-scm-1.rockspec) >"$tmp/make.log" 2>&1 || { cat "$tmp/make.log"; exit 1; }
check "$tmp/checkout"
