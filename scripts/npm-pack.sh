# npm-pack.sh: shell functions shared by the fetch-*.sh scripts (sourced, not run).
# Before sourcing, set NAME (the script's name for messages).
#   sha_ok FILE SHA256              true when FILE exists with that SHA-256
#   fail MESSAGE...                 prints "NAME: MESSAGE" on stderr and exits 1
#   npm_pack_checked PKG DIR TGZ SHA256
#                                   leaves DIR/TGZ, the tarball of npm package PKG (name@version),
#                                   checked against SHA256; a checked tarball already there is kept
sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

fail() { echo "$NAME: $*" >&2; exit 1; }

npm_pack_checked() {
  _pkg=$1 _dir=$2 _tgz="$2/$3" _sha=$4
  sha_ok "$_tgz" "$_sha" && return 0
  command -v npm >/dev/null 2>&1 || fail "npm not found (as root: apt-get install -y npm)"
  mkdir -p "$_dir"
  rm -f "$_tgz"
  (cd "$_dir" && npm pack --silent "$_pkg" >/dev/null) || fail "npm pack $_pkg failed"
  [ -f "$_tgz" ] || fail "npm pack $_pkg did not leave $_tgz"
  sha_ok "$_tgz" "$_sha" || fail "$_tgz: SHA-256 $(sha256sum "$_tgz" | cut -d' ' -f1), expected $_sha"
}
