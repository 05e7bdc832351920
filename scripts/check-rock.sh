#!/bin/sh
# check-rock.sh: the rock installs like one. Installs the source rock from `make rock` and,
# separately, the checkout through `luarocks make`, each into a private tree, then loads
# the library from an unrelated folder with only that tree on the paths.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rock=$(sh "$root/scripts/make-rock.sh")
check() { # $1: tree
  (cd "$tmp" && eval "$(luarocks --lua-version=5.4 --tree="$1" path)" && \
    LUA_PATH="$LUA_PATH" LUA_CPATH="$LUA_CPATH" lua5.4 -e '
      local oe = require "oneencoder"
      local so = package.searchpath("oneencoder.core", package.cpath)
      assert(so and so:find(arg[1], 1, true), "oneencoder.core not loaded from the private tree: " .. tostring(so))
      local i = oe.core.info()
      local y = oe.matmul(oe.ones({2, 3}), oe.ones({3, 4}))
      assert(y:get(2, 4) == 3)
      print(string.format("rock loads from %s: blas_core %s, simd %s", arg[1], i.blas_core, i.simd))' "$1")
}
luarocks --lua-version=5.4 install --tree="$tmp/src-rock" "$rock" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; exit 1; }
check "$tmp/src-rock"
(cd "$root" && luarocks --lua-version=5.4 make --tree="$tmp/checkout" rockspec/oneencoder-scm-1.rockspec) >"$tmp/make.log" 2>&1 || { cat "$tmp/make.log"; exit 1; }
check "$tmp/checkout"
