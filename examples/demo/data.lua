-- demo/data.lua: real data for the main job, fetched once from Debian's packages and verified.
--
--   package.path = "examples/?.lua;" .. package.path
--   local data = require "demo.data"
--   local S = data.prepare({ root = "./data", n_train = 2000, n_test = 10000, progress = true })
--   -- S.fashion.train.images uint8 (N, 28, 28), S.fashion.train.labels int64 (N), .index (0-based)
--   -- S.digits.train / S.digits.test: uint8 (N, 8, 8) scaled to 0..255, int64 labels
--   -- S.captions.train / .test: { {text, label, source, class}, ... } (disjoint templates)
--   -- S.speech.train / .test: { {path, text, voice, label, source}, ... } (disjoint voices)
--   -- S.clips.train / .test: { {path, label, source, index, motion, caption}, ... } (H.264 .mp4)
--   -- S.asterisk: 568 real recordings { {id, path, transcript, text, digit}, ... }
--   -- S.asterisk_digits: the ten recordings digits/0..9 with label = the digit
--   -- S.timings: seconds for fetch (0 when cached), load, speech, clips, total
--   data.status()                                  -- what is cached, and is it intact
--   local fm = data.fashion_mnist("test")          -- {images, labels, classes, nouns, n, files}
--   local dg = data.digits()                       -- {images, labels, classes, nouns, n}
--   local rec = data.asterisk()                    -- list of {id, path, transcript, text, digit}
--   local wav = data.speak("a photo of a bag", "espeak:en-us+f2:160:50")  -- cached 16 kHz WAV
--   local v = data.voices()                        -- {train = {ids}, test = {ids}}, disjoint
--   data.make_clip(img_u8_HW, "zoom_in", "clip.mp4")  -- 16 frames, 64x64, 8 fps, libx264
--
-- The cache folder is opts.root, else $OE_DATA_DIR, else ./data. Layout:
--   debs/<pkg>_<version>_all.deb   checked against apt-cache's SHA256 each run
--   pkgs/<pkg>/...                 dpkg -x of the .deb;  pkgs/<pkg>.stamp lists the sha256 of the
--                                  .deb and the size of every file used (a truncated file is seen)
--   speech/<voice>/<text>-<hash>.wav, clips/<format>/<name>.mp4
-- Data errors raise with a message naming the file; fetch errors say what to run.

local oe = require "oneencoder"
local core = oe.core
local audio = require "oneencoder.audio"
local video = require "oneencoder.video"

local D = {}
-- counters of real work done (the specs use them to see what the cache saved)
D.stats = { synthesised = 0, encoded = 0, downloaded = 0, extracted = 0 }

D.FASHION_CLASSES = { "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
  "Sneaker", "Bag", "Ankle boot" }
D.FASHION_NOUNS = { "a t-shirt", "a pair of trousers", "a pullover", "a dress", "a coat",
  "a sandal", "a shirt", "a sneaker", "a bag", "an ankle boot" }
D.DIGIT_CLASSES = { "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine" }
D.DIGIT_NOUNS = {}
for i, c in ipairs(D.DIGIT_CLASSES) do D.DIGIT_NOUNS[i] = "the digit " .. c end

-- Caption templates: "{}" is the noun with its article. Train and test sets are disjoint and
-- no test template can produce a training caption (spec checks it for every class).
D.TEMPLATES = {
  train = { "a photo of {}", "a picture of {}", "this is {}", "{}", "an image of {}",
    "a close-up photo of {}", "a small photo of {}", "here is {}" },
  test = { "a black and white photo of {}", "a low resolution picture of {}", "there is {}",
    "a blurry image of {}" },
}
D.VIDEO_TEMPLATES = {
  train = { "a video of {}", "a clip of {}", "a moving picture of {}", "a short video showing {}" },
  test = { "a short film of {}", "an animation of {}" },
}

-- Debian packages and the files used from each (Lua patterns on dpkg-deb -c paths).
D.PACKAGES = {
  { name = "dataset-fashion-mnist", min_files = 5,
    want = { "^%./usr/share/datasets/fashion%-mnist/[^/]+%-ubyte%.gz$", "/copyright$" } },
  { name = "python3-sklearn", min_files = 3, prune = true,
    want = { "/sklearn/datasets/data/digits%.csv%.gz$", "/sklearn/datasets/descr/digits%.rst$",
      "/copyright$" } },
  { name = "asterisk-core-sounds-en-wav", min_files = 500,
    want = { "^%./usr/share/asterisk/sounds/en_US_f_Allison/.+%.wav$", "/copyright$" } },
  { name = "asterisk-core-sounds-en", min_files = 2,
    want = { "/core%-sounds%-en%.txt%.gz$", "/copyright$" } },
  -- the pretrained pipeline's drawings (demo/openclipart.lua); prepare() of the built-in one skips it
  { name = "openclipart-svg", min_files = 7000, rich = true,
    want = { "^%./usr/share/openclipart/svg/.+%.svg$", "/copyright$" } },
}

local FASHION_DIR = "pkgs/dataset-fashion-mnist/usr/share/datasets/fashion-mnist"
local DIGITS_CSV = "pkgs/python3-sklearn/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"
local AST_TXT = "pkgs/asterisk-core-sounds-en/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
local AST_WAV = "pkgs/asterisk-core-sounds-en-wav/usr/share/asterisk/sounds/en_US_f_Allison"

-- ---------------------------------------------------------------- helpers
local function fail(fmt, ...) error(string.format(fmt, ...), 0) end
local function q(s) return "'" .. (tostring(s):gsub("'", "'\\''")) .. "'" end
D.shell_quote = q

-- External tools (gzip, apt, dpkg, espeak-ng, ffmpeg) run without a sanitizer runtime that
-- `make sanitize` preloads for the C core: they are not ours, and espeak-ng hangs under it.
local PRE = (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true) and "unset LD_PRELOAD; " or ""
local function popen(cmd, mode) return io.popen(PRE .. cmd, mode) end

-- run(cmd) -> ok, output (stdout and stderr), exit code
local function run(cmd)
  local p = popen("(" .. cmd .. ") 2>&1", "r")
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok == true, out, code
end
D.run = run

local function file_size(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local n = f:seek("end")
  f:close()
  return n
end
D.file_size = file_size

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- crash-safe: a temporary file next to path, fsync, rename (the library's one writer)
local function write_file(path, s)
  local ok, err = core.write_file_atomic(path, s)
  if not ok then fail("cannot write %s", err) end
end

local made = {}   -- folders this process created or saw (saves a process per file)
local function mkdir(dir)
  if made[dir] then return end
  local ok, out = run("mkdir -p " .. q(dir))
  if not ok then fail("cannot create the folder %s: %s", dir, out) end
  made[dir] = true
end

local function is_dir(path)
  local ok = run("test -d " .. q(path))
  return ok
end

local function rm_rf(path)
  assert(path ~= "" and path ~= "/" and not path:match("^%.?/?$"), "refusing to remove " .. path)
  run("rm -rf " .. q(path))
  for d in pairs(made) do
    if d == path or d:sub(1, #path + 1) == path .. "/" then made[d] = nil end
  end
end

local function tmpdir()
  local name = os.tmpname()
  os.remove(name)
  mkdir(name)
  return name
end

local now = core.now

-- FNV-1a 64-bit, as 16 hex digits (cache keys)
local function fnv(s)
  local h = 0xcbf29ce484222325
  for i = 1, #s do h = (h ~ s:byte(i)) * 0x100000001b3 end
  return string.format("%016x", h)
end
D.hash = fnv

-- splitmix64: deterministic, independent of math.random
local function rng(seed)
  local s = seed
  return function(n)
    s = s + 0x9e3779b97f4a7c15
    local z = s
    z = (z ~ (z >> 30)) * 0xbf58476d1ce4e5b9
    z = (z ~ (z >> 27)) * 0x94d049bb133111eb
    z = z ~ (z >> 31)
    return (z >> 11) % n + 1
  end
end
D.rng = rng

local function shuffle(t, r)
  for i = #t, 2, -1 do
    local j = r(i)
    t[i], t[j] = t[j], t[i]
  end
  return t
end

local function slug(s, n)
  local x = s:lower():gsub("[^%w]+", "_"):gsub("^_+", ""):gsub("_+$", "")
  return x:sub(1, n or 48)
end

function D.root(r)
  r = r or os.getenv("OE_DATA_DIR") or "./data"
  if r:sub(1, 1) ~= "/" then
    local pwd = os.getenv("PWD")
    if pwd then r = pwd .. "/" .. r:gsub("^%./", "") end
  end
  return (r:gsub("/+$", ""))
end

local function say(opts, fmt, ...)
  if opts and opts.progress then
    io.stderr:write(string.format(fmt, ...), "\n")
    io.stderr:flush()
  end
end

local function counter(opts, what, total)
  local last, t0 = -1, now()
  return function(i)
    if not (opts and opts.progress) or total == 0 then return end
    local pct = math.floor(100 * i / total)
    if pct >= last + 10 or i == total then
      last = pct
      io.stderr:write(string.format("  %s %d/%d (%.1f s)\n", what, i, total, now() - t0))
      io.stderr:flush()
    end
  end
end

-- ---------------------------------------------------------------- apt, checksums, extraction
D.apt = {}

local function parse_stanza(text)
  local info = {}
  for line in text:gmatch("[^\n]+") do
    local k, v = line:match("^([%w%-]+):%s*(.-)%s*$")
    if k and info[k] == nil then info[k] = v end
  end
  if not (info.Package and info.Version and info.SHA256 and info.Filename) then return nil end
  return { package = info.Package, version = info.Version, sha256 = info.SHA256:lower(),
           size = tonumber(info.Size), filename = info.Filename:match("[^/]+$"),
           arch = info.Architecture }
end

-- show_many(pkgs) -> {pkg = info} (one apt-cache call; packages apt does not know are absent), output
function D.apt.show_many(pkgs)
  local names = {}
  for i, p in ipairs(pkgs) do names[i] = q(p) end
  local _, out = run("apt-cache show --no-all-versions " .. table.concat(names, " "))
  local map = {}
  for stanza in (out .. "\n\n"):gmatch("(.-)\n%s*\n") do
    local info = parse_stanza(stanza)
    if info and not map[info.package] then map[info.package] = info end
  end
  return map, out
end

-- show(pkg) -> {package, version, sha256, size, filename, arch} | nil, apt-cache's output
function D.apt.show(pkg)
  local map, out = D.apt.show_many({ pkg })
  if map[pkg] then return map[pkg] end
  return nil, out
end

-- download(info, dir) -> ok, output
function D.apt.download(info, dir)
  return run("cd " .. q(dir) .. " && apt-get download " .. q(info.package .. "=" .. info.version))
end

function D.sha256(path)
  local ok, out = run("sha256sum " .. q(path))
  if not ok then fail("sha256sum %s failed: %s", path, out) end
  return out:match("^(%x+)")
end

-- the file name apt-get download gives the package (':' of an epoch becomes %3a)
local function deb_name(info)
  return string.format("%s_%s_%s.deb", info.package, (info.version:gsub(":", "%%3a")),
                       info.arch or "all")
end

local function pkg_spec(name)
  for _, p in ipairs(D.PACKAGES) do if p.name == name then return p end end
  fail("unknown package %s (not in data.PACKAGES)", name)
end

-- regular files of a .deb wanted by spec: { {size, path}, ... } (path as "./usr/...")
local function deb_listing(deb, spec)
  local ok, out = run("dpkg-deb -c " .. q(deb))
  if not ok then fail("cannot list %s with dpkg-deb -c: %s", deb, out) end
  local files = {}
  for line in out:gmatch("[^\n]+") do
    local perm, size, path = line:match("^(%S+)%s+%S+%s+(%d+)%s+%S+%s+%S+%s+(.+)$")
    if perm and perm:sub(1, 1) == "-" then
      for _, pat in ipairs(spec.want) do
        if path:match(pat) then files[#files + 1] = { tonumber(size), path }; break end
      end
    end
  end
  if #files < (spec.min_files or 1) then
    fail("%s holds %d of the files this demo uses (expected at least %d): the package's layout changed",
         deb, #files, spec.min_files or 1)
  end
  return files
end

local function read_stamp(path)
  local s = read_file(path)
  if not s then return nil end
  local st = { files = {} }
  for line in s:gmatch("[^\n]+") do
    local size, p = line:match("^(%d+) (%./.+)$")
    local k, v = line:match("^(%a[%w]*) (.+)$")
    if size then st.files[#st.files + 1] = { tonumber(size), p }
    elseif k then st[k] = v end
  end
  if not st.sha256 or #st.files == 0 then return nil end
  return st
end

-- every file of the stamp exists with its size under dir; -> true | false, reason
local function files_ok(dir, st)
  for _, f in ipairs(st.files) do
    local p = dir .. "/" .. f[2]:gsub("^%./", "")
    local n = file_size(p)
    if n == nil then return false, p .. " is missing" end
    if n ~= f[1] then return false, string.format("%s has %d bytes, the package has %d", p, n, f[1]) end
  end
  return true
end

-- ensure(pkg, opts) -> {dir, state = "cached" | "fetched" | "extracted", version, seconds}
-- Downloads (when the .deb is missing or fails its checksum), verifies and extracts a package.
function D.ensure(pkg, opts)
  opts = opts or {}
  local root = D.root(opts.root)
  local spec = pkg_spec(pkg)
  local debdir, pkgdir = root .. "/debs", root .. "/pkgs/" .. pkg
  local stampf = root .. "/pkgs/" .. pkg .. ".stamp"
  local t0 = now()
  local st = read_stamp(stampf)
  local info, why
  if opts.apt_info then info, why = opts.apt_info[pkg], "no such package in apt-cache show's answer"
  else info, why = D.apt.show(pkg) end
  if not info then
    if st and files_ok(pkgdir, st) then
      say(opts, "  %s: apt does not know it now; using the copy verified when it was extracted", pkg)
      return { dir = pkgdir, state = "cached", version = st.version, seconds = now() - t0 }
    end
    fail("package %s is not known to apt on this machine (its package lists are missing or stale).\n" ..
         "Run as root: apt-get update   (then run this again)\napt-cache said: %s", pkg,
         (why or ""):gsub("%s+$", ""))
  end
  mkdir(debdir)
  local deb = debdir .. "/" .. deb_name(info)
  if not file_size(deb) and file_size(debdir .. "/" .. info.filename) then deb = debdir .. "/" .. info.filename end
  local deb_state = "missing"
  if file_size(deb) then
    deb_state = D.sha256(deb) == info.sha256 and "ok" or "bad"
    if deb_state == "bad" then
      say(opts, "  %s: the cached %s fails its SHA256 check: fetching it again", pkg, deb)
      os.remove(deb)
    end
  end
  local ext_ok, ext_why = false, "not extracted yet"
  if st then
    if st.sha256 ~= info.sha256 then ext_why = "extracted from another version"
    else ext_ok, ext_why = files_ok(pkgdir, st) end
  end
  if ext_ok and deb_state ~= "bad" then
    return { dir = pkgdir, state = "cached", version = info.version, seconds = now() - t0 }
  end
  local state = "extracted"
  if deb_state ~= "ok" then
    say(opts, "  %s %s: apt-get download (%.1f MB)", pkg, info.version, (info.size or 0) / 1e6)
    local ok, out = D.apt.download(info, debdir)
    if not file_size(deb) and file_size(debdir .. "/" .. info.filename) then deb = debdir .. "/" .. info.filename end
    if not ok or not file_size(deb) then
      local hint = "Check network access to the Debian mirror, then run this again."
      if out:find("Unable to locate") or out:find("Can't find a source") or out:find("404") then
        hint = "Run as root: apt-get update   (the package lists are stale), then run this again."
      end
      local errs = {}
      for line in out:gmatch("[^\n]+") do
        if line:match("^E:") or line:match("^Err:") then errs[#errs + 1] = line end
      end
      if #errs == 0 then errs[1] = (out:gsub("%s+$", "")) end
      fail("apt-get download %s=%s failed in %s:\n%s\n%s", pkg, info.version, debdir,
           table.concat(errs, "\n"), hint)
    end
    local got = D.sha256(deb)
    if got ~= info.sha256 then
      os.remove(deb)
      fail("checksum mismatch for %s: SHA256 %s, apt expects %s (the file was removed).\n" ..
           "Run as root: apt-get update   (then run this again; if it persists, the mirror or a proxy " ..
           "serves a different file)", deb, got, info.sha256)
    end
    state = "fetched"
    D.stats.downloaded = D.stats.downloaded + 1
  end
  if not ext_ok then
    if st then say(opts, "  %s: cached extraction is not intact (%s): extracting again", pkg, ext_why) end
    local files = deb_listing(deb, spec)
    os.remove(stampf)
    local tmp = pkgdir .. ".tmp"
    mkdir(root .. "/pkgs")
    rm_rf(tmp)
    local ok, out = run("dpkg -x " .. q(deb) .. " " .. q(tmp))
    if not ok then rm_rf(tmp); fail("dpkg -x %s failed: %s", deb, out) end
    local lines = { "sha256 " .. info.sha256, "version " .. info.version, "deb " .. deb:match("[^/]+$") }
    for _, f in ipairs(files) do lines[#lines + 1] = f[1] .. " " .. f[2] end
    local good, bad = files_ok(tmp, { files = files })
    if not good then rm_rf(tmp); fail("after dpkg -x %s: %s", deb, bad) end
    if spec.prune then   -- keep only the files used (python3-sklearn: 3 of its ~2,000 files)
      local kept = tmp .. ".keep"
      rm_rf(kept)
      for _, f in ipairs(files) do
        local rel = f[2]:gsub("^%./", "")
        mkdir((kept .. "/" .. rel):match("^(.*)/[^/]+$"))
        local rok, rerr = os.rename(tmp .. "/" .. rel, kept .. "/" .. rel)
        if not rok then rm_rf(tmp); rm_rf(kept); fail("cannot move %s: %s", rel, rerr) end
      end
      rm_rf(tmp)
      local rok, rerr = os.rename(kept, tmp)
      if not rok then fail("cannot rename %s to %s: %s", kept, tmp, rerr) end
    end
    rm_rf(pkgdir)
    local rok, rerr = os.rename(tmp, pkgdir)
    if not rok then fail("cannot rename %s to %s: %s", tmp, pkgdir, rerr) end
    write_file(stampf, table.concat(lines, "\n") .. "\n")
    D.stats.extracted = D.stats.extracted + 1
  end
  return { dir = pkgdir, state = state, version = info.version, seconds = now() - t0 }
end

-- ---------------------------------------------------------------- parsers
-- gunzip(path) -> the decompressed bytes (through gzip -dc)
function D.gunzip(path)
  local f, err = io.open(path, "rb")
  if not f then fail("cannot open %s: %s", path, err) end
  f:close()
  local errf = os.tmpname()
  local p = popen("gzip -dc " .. q(path) .. " 2>" .. q(errf), "r")
  local s = p:read("a")
  local ok = p:close()
  local msg = read_file(errf) or ""
  os.remove(errf)
  if not ok then fail("%s: gzip -dc failed (truncated or corrupted file): %s", path, (msg:gsub("%s+$", ""))) end
  return s
end

-- parse_idx(bytes, name, want) -> uint8 tensor, dims
-- want.ndim: number of dimensions; want.dims[i]: required size of dimension i (nil: any)
function D.parse_idx(bytes, name, want)
  want = want or {}
  if #bytes < 4 then fail("%s: %d bytes, too short for an IDX header", name, #bytes) end
  local z, dt, nd = string.unpack(">I2BB", bytes)
  if z ~= 0 or dt ~= 0x08 or nd < 1 or nd > 4 then
    fail("%s: not an unsigned-byte IDX file (magic %02x %02x %02x %02x; expected 00 00 08 0%d)", name,
         bytes:byte(1), bytes:byte(2), bytes:byte(3), bytes:byte(4), want.ndim or 1)
  end
  if want.ndim and nd ~= want.ndim then
    fail("%s: IDX file with %d dimensions, expected %d (magic 0x%08x, expected 0x%08x)", name, nd,
         want.ndim, 0x800 + nd, 0x800 + want.ndim)
  end
  local header = 4 + 4 * nd
  if #bytes < header then fail("%s: %d bytes, the IDX header needs %d", name, #bytes, header) end
  local dims, n = {}, 1
  for i = 1, nd do
    local d = string.unpack(">I4", bytes, 4 * i + 1)
    if want.dims and want.dims[i] and d ~= want.dims[i] then
      fail("%s: dimension %d is %d, expected %d", name, i, d, want.dims[i])
    end
    if d == 0 or d > 100000000 then fail("%s: dimension %d is %d", name, i, d) end
    dims[i] = d
    n = n * d
  end
  if n > 2 ^ 34 then fail("%s: %d values announced", name, n) end
  if #bytes - header ~= n then
    fail("%s: %d data bytes, the header announces %d (truncated or corrupted file)", name, #bytes - header, n)
  end
  return core.from_bytes(header == 0 and bytes or bytes:sub(header + 1), "uint8", dims), dims
end

function D.read_idx(path, want) return D.parse_idx(D.gunzip(path), path, want) end

-- fashion_mnist(split, opts) -> {images uint8 (N, 28, 28), labels int64 (N), classes, nouns, n, files}
-- opts.root; opts.check_count (default true: 60000 train, 10000 test)
function D.fashion_mnist(split, opts)
  opts = opts or {}
  local prefix = ({ train = "train", test = "t10k" })[split]
  if not prefix then error("fashion_mnist: split must be \"train\" or \"test\", got " .. tostring(split), 2) end
  local dir = D.root(opts.root) .. "/" .. FASHION_DIR
  local fi, fl = dir .. "/" .. prefix .. "-images-idx3-ubyte.gz", dir .. "/" .. prefix .. "-labels-idx1-ubyte.gz"
  local images, dims = D.read_idx(fi, { ndim = 3, dims = { nil, 28, 28 } })
  local lbytes = D.gunzip(fl)
  local labels, ldims = D.parse_idx(lbytes, fl, { ndim = 1 })
  if ldims[1] ~= dims[1] then fail("%s holds %d labels but %s holds %d images", fl, ldims[1], fi, dims[1]) end
  local expect = ({ train = 60000, test = 10000 })[split]
  if opts.check_count ~= false and dims[1] ~= expect then
    fail("%s holds %d images, Fashion-MNIST's %s split has %d", fi, dims[1], split, expect)
  end
  local bad = lbytes:find("[\10-\255]", 9)
  if bad then fail("%s: label %d at item %d is outside 0..9", fl, lbytes:byte(bad), bad - 9) end
  return { images = images, labels = core.to(labels, "int64"), classes = D.FASHION_CLASSES,
           nouns = D.FASHION_NOUNS, n = dims[1], files = { fi, fl } }
end

-- parse_digits(text, name, check_count) -> images uint8 (N, 8, 8) (round(v * 255 / 16)), labels int64
function D.parse_digits(text, name, check_count)
  local rows, labels, lineno = {}, {}, 0
  local px = {}
  for line in text:gmatch("[^\n]+") do
    lineno = lineno + 1
    line = line:gsub("\r$", "")
    if line:match("%S") then
      local k = 0
      for v in line:gmatch("[^,]+") do
        k = k + 1
        local x = tonumber(v)
        if not x or x ~= math.floor(x) then fail("%s line %d: value %d (%q) is not an integer", name, lineno, k, v) end
        if k <= 64 then
          if x < 0 or x > 16 then fail("%s line %d: pixel %d is %s, outside 0..16", name, lineno, k, v) end
          px[k] = (math.tointeger(x) * 255 + 8) // 16
        elseif k == 65 then
          if x < 0 or x > 9 then fail("%s line %d: label %s outside 0..9", name, lineno, v) end
          labels[#labels + 1] = math.tointeger(x)
        end
      end
      if k ~= 65 then fail("%s line %d: %d values, expected 65 (64 pixels and a label)", name, lineno, k) end
      rows[#rows + 1] = string.char(table.unpack(px, 1, 64))
    end
  end
  if #rows == 0 then fail("%s holds no digits", name) end
  if check_count ~= false and #rows ~= 1797 then fail("%s holds %d digits, expected 1797", name, #rows) end
  return core.from_bytes(table.concat(rows), "uint8", { #rows, 8, 8 }), core.from_table(labels, "int64")
end

-- digits(opts) -> {images uint8 (1797, 8, 8) 0..255, labels int64, classes, nouns, n, file}
function D.digits(opts)
  opts = opts or {}
  local path = D.root(opts.root) .. "/" .. DIGITS_CSV
  local images, labels = D.parse_digits(D.gunzip(path), path, opts.check_count)
  return { images = images, labels = labels, classes = D.DIGIT_CLASSES, nouns = D.DIGIT_NOUNS,
           n = core.shape(images)[1], file = path }
end

-- parse_transcripts(text, name) -> {id = transcript}, ids in file order
function D.parse_transcripts(text, name)
  local map, ids = {}, {}
  local lineno = 0
  for line in text:gmatch("[^\n]*") do
    lineno = lineno + 1
    line = line:gsub("\r$", "")
    if line:match("%S") and not line:match("^%s*;") then
      local id, tr = line:match("^([^:%s][^:]*):%s*(.-)%s*$")
      if not id then fail("%s line %d: expected \"id: transcript\", got %q", name, lineno, line:sub(1, 60)) end
      if not map[id] then ids[#ids + 1] = id end
      map[id] = tr
    end
  end
  if #ids == 0 then fail("%s holds no transcripts", name) end
  return map, ids
end

-- asterisk(opts) -> list of {id, path, transcript, text, digit}, sorted by id. text is the
-- transcript without bracketed notes ("[ascending tones]"); "" for non-speech prompts;
-- digit is 0..9 for digits/0 .. digits/9. opts.check_count (default true: 568 recordings).
function D.asterisk(opts)
  opts = opts or {}
  local root = D.root(opts.root)
  local txt, wavdir = root .. "/" .. AST_TXT, root .. "/" .. AST_WAV
  local map = D.parse_transcripts(D.gunzip(txt), txt)
  local ok, out = run("cd " .. q(wavdir) .. " && find . -name '*.wav' -type f")
  if not ok then fail("cannot list the recordings in %s: %s", wavdir, out) end
  local list, untranscribed = {}, 0
  for rel in out:gmatch("[^\n]+") do
    local id = rel:gsub("^%./", ""):gsub("%.wav$", "")
    local tr = map[id]
    if tr then
      local text = tr:gsub("%b[]", ""):gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
      list[#list + 1] = { id = id, path = wavdir .. "/" .. id .. ".wav", transcript = tr, text = text,
                          digit = tonumber(id:match("^digits/(%d)$")) }
    else
      untranscribed = untranscribed + 1
    end
  end
  table.sort(list, function(a, b) return a.id < b.id end)
  if opts.check_count ~= false and #list ~= 568 then
    fail("%s: %d transcribed recordings (%d without a transcript in %s), expected 568", wavdir, #list,
         untranscribed, txt)
  end
  local seen = {}
  for _, e in ipairs(list) do if e.digit then seen[e.digit] = true end end
  for d = 0, 9 do
    if not seen[d] then fail("%s/digits/%d.wav is missing or has no transcript in %s", wavdir, d, txt) end
  end
  return list
end

-- ---------------------------------------------------------------- captions
local function fill(tpl, noun) return (tpl:gsub("{}", function() return noun end)) end
D.fill = fill

-- captions(nouns, split, templates) -> { {text, label (0-based), template}, ... }
function D.captions(nouns, split, templates)
  templates = (templates or D.TEMPLATES)[split]
  if not templates then error("captions: split must be \"train\" or \"test\", got " .. tostring(split), 2) end
  local out = {}
  for label, noun in ipairs(nouns) do
    for _, t in ipairs(templates) do out[#out + 1] = { text = fill(t, noun), label = label - 1, template = t } end
  end
  return out
end

-- ---------------------------------------------------------------- speech
-- Voice ids: "espeak:<voice>+<variant>:<words per minute>:<pitch 0..99>" or "flite:<voice>".
-- Train and test share no espeak language, no variant and no engine voice.
function D.voices()
  local langs = { "en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-gb-x-gbclan" }
  local variants = { "m1", "f1", "m2", "f2", "m3", "f3", "m4", "f4", "m5", "m6" }
  local speeds, pitches = { 150, 165, 180, 195 }, { 35, 50, 65 }
  local train = {}
  for i, l in ipairs(langs) do
    for j = 1, 4 do
      local k = (i - 1) * 4 + j
      train[#train + 1] = string.format("espeak:%s+%s:%d:%d", l, variants[(k - 1) % #variants + 1],
                                        speeds[(k - 1) % #speeds + 1], pitches[(i + j) % #pitches + 1])
    end
  end
  local test = { "espeak:en-029+f5:170:55", "espeak:en-us-nyc+m7:160:45",
                 "flite:slt", "flite:rms", "flite:awb", "flite:kal16" }
  return { train = train, test = test }
end

function D.parse_voice(id)
  local engine, rest = tostring(id):match("^(%a+):(.+)$")
  if engine == "espeak" then
    local v, s, p = rest:match("^([%w%-]+%+?[%w]*):(%d+):(%d+)$")
    if not v then v, s, p = rest:match("^([%w%-]+%+?[%w]*)$"), "175", "50" end
    if v then return { engine = "espeak", voice = v, speed = tonumber(s), pitch = tonumber(p), id = id } end
  elseif engine == "flite" then
    local v = rest:match("^(%w+)$")
    if v then return { engine = "flite", voice = v, id = id } end
  end
  error("bad voice id " .. tostring(id) .. " (expected \"espeak:en-us+m3:170:50\" or \"flite:slt\")", 2)
end

-- a WAV whose RIFF size matches the file (catches truncation without decoding)
local function wav_ok(path)
  local f = io.open(path, "rb")
  if not f then return false end
  local head = f:read(12)
  local n = f:seek("end")
  f:close()
  if not head or #head < 12 or head:sub(1, 4) ~= "RIFF" or head:sub(9, 12) ~= "WAVE" then return false end
  return string.unpack("<I4", head, 5) == n - 8 and n > 44
end
D.wav_ok = wav_ok

function D.speech_path(text, voice, opts)
  local v = D.parse_voice(voice)
  return string.format("%s/speech/%s/%s-%s.wav", D.root(opts and opts.root), slug(v.id, 60),
                       slug(text, 48), fnv(v.id .. "\0" .. text):sub(1, 10))
end


-- speak_batch(items, opts) -> paths. items: { {text, voice[, path]}, ... }. Synthesises only what
-- is not cached (espeak-ng, or FFmpeg's flite), opts.workers synthesiser processes at a time
-- (default 4: espeak-ng waits on its own thread, so more processes than cores pay), and
-- resamples each result to 16 kHz mono 16-bit WAV in this process while the others run.
-- opts.root, opts.progress.
function D.speak_batch(items, opts)
  opts = opts or {}
  local workers = opts.workers or 4
  local paths, todo = {}, {}
  local n_espeak, n_flite = 0, 0
  for i, it in ipairs(items) do
    if type(it.text) ~= "string" or not it.text:match("%S") then error("speak: empty text for item " .. i, 2) end
    local v = D.parse_voice(it.voice)
    local p = it.path or D.speech_path(it.text, it.voice, opts)
    paths[i] = p
    if not wav_ok(p) then
      todo[#todo + 1] = { text = it.text, v = v, path = p }
      if v.engine == "espeak" then n_espeak = n_espeak + 1 else n_flite = n_flite + 1 end
    end
  end
  local n = #todo
  if n == 0 then return paths end
  local tmp = tmpdir()
  for k, it in ipairs(todo) do
    it.tmp = string.format("%s/%d.wav", tmp, k)
    it.txt = string.format("%s/%d.txt", tmp, k)
    write_file(it.txt, it.text)
  end
  -- one script per worker; each line reports "<exit status> <item numbers>" when done
  local scripts = {}
  for w = 1, workers do scripts[w] = {} end
  local w = 0
  local function add(line)
    w = w % workers + 1
    table.insert(scripts[w], line)
  end
  local flite = {}
  for k, it in ipairs(todo) do
    local v = it.v
    if v.engine == "espeak" then
      add(string.format("espeak-ng -v %s -s %d -p %d -w %s -f %s 2>>%s/err%d; echo \"$? %d\"",
        q(v.voice), v.speed, v.pitch, q(it.tmp), q(it.txt), q(tmp), k, k))
    else
      flite[#flite + 1] = k
    end
  end
  local chunk = 12
  for s0 = 1, #flite, chunk do
    local ins, outs, ks = {}, {}, {}
    for j = s0, math.min(#flite, s0 + chunk - 1) do
      local it = todo[flite[j]]
      ins[#ins + 1] = "-f lavfi -i " .. q(string.format("flite=textfile=%s:voice=%s", it.txt, it.v.voice))
      outs[#outs + 1] = string.format("-map %d:a -ar 16000 -ac 1 -c:a pcm_s16le %s", j - s0, q(it.tmp))
      ks[#ks + 1] = flite[j]
    end
    add(string.format("ffmpeg -nostdin -hide_banner -loglevel error -y %s %s 2>>%s/err%d; echo \"$? %s\"",
      table.concat(ins, " "), table.concat(outs, " "), q(tmp), ks[1], table.concat(ks, " ")))
  end
  local cmds = {}
  for i = 1, workers do
    if #scripts[i] > 0 then
      local sf = string.format("%s/w%d.sh", tmp, i)
      write_file(sf, table.concat(scripts[i], "\n") .. "\n")
      cmds[#cmds + 1] = "sh " .. q(sf) .. " &"
    end
  end
  say(opts, "  synthesising %d utterances (%d espeak-ng, %d flite) with %d processes", n, n_espeak, n_flite, #cmds)
  local t0 = now()
  local p = popen("(" .. table.concat(cmds, " ") .. " wait) 2>&1", "r")
  local tick = counter(opts, "speech", n)
  local done, failed = 0, nil
  for line in p:lines() do
    local rc, ks = line:match("^(%d+) ([%d ]+)$")
    if rc and not failed then
      for k in ks:gmatch("%d+") do
        local it = todo[tonumber(k)]
        local wav, rate = nil, nil
        if rc == "0" then wav, rate = audio.load(it.tmp, { rate = 16000, mono = true }) end
        if not wav or core.numel(wav) == 0 then
          local said = (read_file(string.format("%s/err%s", tmp, ks:match("%d+"))) or ""):gsub("%s+$", "")
          failed = string.format("speech synthesis failed for voice %s, text %q (%s)%s", it.v.id, it.text,
            rc ~= "0" and ("exit status " .. rc) or tostring(rate or "empty audio"),
            said ~= "" and ("\nsynthesiser said: " .. said) or "")
          break
        end
        mkdir(it.path:match("^(.*)/[^/]+$"))
        local ok, err = audio.save_wav(wav, 16000, it.path)
        if not ok then failed = string.format("cannot write %s: %s", it.path, err); break end
        D.stats.synthesised = D.stats.synthesised + 1
        done = done + 1
        tick(done)
      end
    end
  end
  p:close()
  rm_rf(tmp)
  if failed then fail("%s", failed) end
  if done ~= n then fail("speech synthesis: %d of %d utterances came back (a synthesiser process died)", done, n) end
  say(opts, "  speech: %d utterances in %.1f s", n, now() - t0)
  return paths
end

-- speak(text, voice, out_wav, opts) -> path of a 16 kHz mono WAV (cached per (text, voice))
function D.speak(text, voice, out_wav, opts)
  return D.speak_batch({ { text = text, voice = voice, path = out_wav } }, opts)[1]
end

-- ---------------------------------------------------------------- video clips
D.MOTIONS = { "left", "right", "up", "down", "zoom_in", "zoom_out", "rotate_cw", "rotate_ccw" }
local MOTION = {
  -- dx, dy: offset of the image centre in half-widths; s: scale; a: angle (degrees, clockwise)
  left = { dx = { 0.3, -0.3 } }, right = { dx = { -0.3, 0.3 } },
  up = { dy = { 0.3, -0.3 } }, down = { dy = { -0.3, 0.3 } },
  zoom_in = { s = { 0.6, 1.2 } }, zoom_out = { s = { 1.2, 0.6 } },
  rotate_cw = { a = { -40, 40 } }, rotate_ccw = { a = { 40, -40 } },
  still = {},
}

function D.motion_params(m)
  local p = type(m) == "table" and m or MOTION[m]
  if not p then error("unknown motion " .. tostring(m) .. " (one of " .. table.concat(D.MOTIONS, ", ") .. ", still)", 2) end
  return { dx = p.dx or { 0, 0 }, dy = p.dy or { 0, 0 }, s = p.s or { 1, 1 }, a = p.a or { 0, 0 } }
end

-- render_clip(img, motion, opts) -> raw rgb24 frames (string), frames, size
-- img: uint8 (H, W) or (H, W, 3). Each output frame maps the image onto size x size (scale 1
-- fills the frame), moved/zoomed/rotated about the centre, bilinear, black outside.
function D.render_clip(img, motion, opts)
  opts = opts or {}
  local F, S = opts.frames or 16, opts.size or 64
  local shape = core.shape(img)
  if core.dtype(img) ~= "uint8" or not (#shape == 2 or #shape == 3 and shape[3] == 3) then
    error("render_clip: expected a uint8 (H, W) or (H, W, 3) image", 2)
  end
  local H, W, C = shape[1], shape[2], shape[3] or 1
  local m = D.motion_params(motion)
  local bytes = core.to_bytes(img)
  -- padded planes with a zero border: pl[c][(y + 1) * (W + 2) + x + 2] for y in -1..H, x in -1..W
  local planes = {}
  for c = 1, C do
    local pl = {}
    for i = 1, (H + 2) * (W + 2) do pl[i] = 0 end
    for y = 0, H - 1 do
      for x = 0, W - 1 do pl[(y + 1) * (W + 2) + x + 2] = bytes:byte((y * W + x) * C + c) end
    end
    planes[c] = pl
  end
  local chars = {}
  for v = 0, 255 do chars[v] = C == 1 and string.char(v, v, v) or string.char(v) end
  local frames = {}
  local W2 = W + 2
  local pl1 = planes[1]
  local black = C == 1 and chars[0] or string.rep(chars[0], 3)
  local floor = math.floor
  for f = 0, F - 1 do
    local t = F > 1 and f / (F - 1) or 0
    local dx = m.dx[1] + (m.dx[2] - m.dx[1]) * t
    local dy = m.dy[1] + (m.dy[2] - m.dy[1]) * t
    local sc = m.s[1] + (m.s[2] - m.s[1]) * t
    local an = math.rad(m.a[1] + (m.a[2] - m.a[1]) * t)
    local ca, sa = math.cos(an) / sc, math.sin(an) / sc
    -- output (x, y) -> u = (x + 0.5) * 2 / S - 1 - d; p = R(-a) u / s; source = (p + 1) * W / 2 - 0.5
    local kx, ky = W / 2, H / 2
    local out = {}
    local o = 0
    for y = 0, S - 1 do
      local uy = (y + 0.5) * 2 / S - 1 - dy
      for x = 0, S - 1 do
        local ux = (x + 0.5) * 2 / S - 1 - dx
        local sx = (ca * ux + sa * uy + 1) * kx - 0.5
        local sy = (-sa * ux + ca * uy + 1) * ky - 0.5
        local x0, y0 = floor(sx), floor(sy)
        o = o + 1
        if x0 < -1 or y0 < -1 or x0 >= W or y0 >= H then
          out[o] = black
        else
          local fx, fy = sx - x0, sy - y0
          local i = (y0 + 1) * W2 + x0 + 2
          if C == 1 then
            local a, b, c, d = pl1[i], pl1[i + 1], pl1[i + W2], pl1[i + W2 + 1]
            local top = a + (b - a) * fx
            out[o] = chars[floor(top + (c + (d - c) * fx - top) * fy + 0.5)]
          else
            local rgb = {}
            for ch = 1, 3 do
              local pl = planes[ch]
              local top = pl[i] + (pl[i + 1] - pl[i]) * fx
              local bot = pl[i + W2] + (pl[i + W2 + 1] - pl[i + W2]) * fx
              rgb[ch] = chars[floor(top + (bot - top) * fy + 0.5)]
            end
            out[o] = rgb[1] .. rgb[2] .. rgb[3]
          end
        end
      end
    end
    frames[f + 1] = table.concat(out)
  end
  return table.concat(frames), F, S
end

local function clip_ok(path, F, S)
  if not file_size(path) then return false end
  local info = video.info(path)
  return info ~= nil and info.frames == F and not info.frames_estimated and info.width == S and info.height == S
end
D.clip_ok = clip_ok

local function codec_args(opts, F)
  local codec = opts.codec or "libx264"
  if codec == "libx264" then
    return string.format("-c:v libx264 -preset veryfast -crf 18 -pix_fmt yuv420p -g %d -keyint_min %d -sc_threshold 0", F, F)
  elseif codec == "mpeg4" then
    return string.format("-c:v mpeg4 -q:v 3 -pix_fmt yuv420p -g %d", F)
  end
  error("codec must be \"libx264\" or \"mpeg4\", got " .. tostring(codec), 3)
end

-- make_clips(list, opts) -> paths. list: { {image, motion, path}, ... }. Clips already cached
-- (and decodable with the right frame count) are kept; the others are rendered and encoded in
-- one ffmpeg run (segment muxer: one .mp4 per clip). opts: frames (16), size (64), fps (8),
-- codec ("libx264" | "mpeg4"), root, progress.
function D.make_clips(list, opts)
  opts = opts or {}
  local F, S, fps = opts.frames or 16, opts.size or 64, opts.fps or 8
  local todo, paths = {}, {}
  for i, it in ipairs(list) do
    local p = it.path
    if not p then
      p = string.format("%s/clips/%s.mp4", D.root(opts.root),
        fnv(core.to_bytes(it.image) .. table.concat(core.shape(it.image), "x") .. "|" ..
            tostring(it.motion) .. "|" .. F .. "|" .. S .. "|" .. fps .. "|" .. (opts.codec or "libx264")))
    end
    paths[i] = p
    if not clip_ok(p, F, S) then todo[#todo + 1] = { image = it.image, motion = it.motion, path = p } end
  end
  if #todo == 0 then return paths end
  local t0 = now()
  local tick = counter(opts, "clips", #todo)
  local chunk = opts.chunk or 64   -- clips per ffmpeg run: an interrupted run keeps finished chunks
  local cleaned = {}
  for c0 = 1, #todo, chunk do
    local part = {}
    for k = c0, math.min(#todo, c0 + chunk - 1) do part[#part + 1] = todo[k] end
    local dir = part[1].path:match("^(.*)/[^/]+$") or "."
    mkdir(dir)
    if not cleaned[dir] then   -- temporary folders left by an interrupted run (older than 10 min)
      run("find " .. q(dir) .. " -maxdepth 1 -name '.tmp-clips-*' -mmin +10 -exec rm -rf {} +")
      cleaned[dir] = true
    end
    local tmp = string.format("%s/.tmp-clips-%s", dir, fnv(tostring(now()) .. part[1].path):sub(1, 8))
    rm_rf(tmp)
    mkdir(tmp)
    local errf = tmp .. "/err"
    local pattern = tmp:gsub("%%", "%%%%") .. "/%05d.mp4"   -- a literal % is %% for ffmpeg
    local out_args = q(pattern:gsub("%%05d", "00000"):gsub("%%%%", "%%"))
    if #part > 1 then
      local seg = {}
      for k = 1, #part - 1 do seg[k] = tostring(k * F) end
      out_args = string.format("-f segment -segment_format mp4 -segment_frames %s -reset_timestamps 1 %s",
                               table.concat(seg, ","), q(pattern))
    end
    local cmd = string.format("ffmpeg -nostdin -hide_banner -loglevel error -y -f rawvideo -pix_fmt rgb24 -s %dx%d -r %d -i - %s -force_key_frames %s %s 2>%s",
      S, S, fps, codec_args(opts, F), q(string.format("expr:eq(mod(n,%d),0)", F)), out_args, q(errf))
    local p = popen(cmd, "w")
    for k, it in ipairs(part) do
      p:write(D.render_clip(it.image, it.motion, { frames = F, size = S }))
      tick(c0 + k - 1)
    end
    local ok = p:close()
    local msg = (read_file(errf) or ""):gsub("%s+$", "")
    if not ok then rm_rf(tmp); fail("ffmpeg failed to encode %d clips: %s", #part, msg) end
    for k, it in ipairs(part) do
      local src = string.format("%s/%05d.mp4", tmp, k - 1)
      mkdir(it.path:match("^(.*)/[^/]+$") or ".")
      local rok, err = os.rename(src, it.path)
      if not rok then rm_rf(tmp); fail("cannot move %s to %s: %s", src, it.path, err) end
      if not clip_ok(it.path, F, S) then
        os.remove(it.path)
        rm_rf(tmp)
        fail("%s: the encoded clip does not decode to %d frames of %dx%d (ffmpeg said: %s)", it.path, F, S, S, msg)
      end
      D.stats.encoded = D.stats.encoded + 1
    end
    rm_rf(tmp)
  end
  say(opts, "  clips: %d encoded in %.1f s", #todo, now() - t0)
  return paths
end

-- make_clip(img, motion, out_path, opts) -> path (cached: a valid clip at out_path is kept)
function D.make_clip(img, motion, out_path, opts)
  return D.make_clips({ { image = img, motion = motion, path = out_path } }, opts)[1]
end

-- ---------------------------------------------------------------- prepare / status
-- balanced(labels_tensor, n, r, exclude) -> sorted 0-based indices, about n / classes per class
local function balanced(labels, n, r, classes)
  local lab = core.totable(labels)
  local total = #lab
  if n >= total then
    local all = {}
    for i = 1, total do all[i] = i - 1 end
    return all
  end
  local perm = {}
  for i = 1, total do perm[i] = i end
  shuffle(perm, r)
  local quota, count, pick = math.ceil(n / classes), {}, {}
  for _, i in ipairs(perm) do
    local c = lab[i]
    if (count[c] or 0) < quota and #pick < n then
      count[c] = (count[c] or 0) + 1
      pick[#pick + 1] = i - 1
    end
  end
  table.sort(pick)
  return pick
end

local function subset(set, idx)
  local t = core.from_table(idx, "int64")
  return { images = core.index_select(set.images, t), labels = core.index_select(set.labels, t), index = idx }
end

local function complement(total, idx)
  local used, out = {}, {}
  for _, i in ipairs(idx) do used[i] = true end
  for i = 0, total - 1 do if not used[i] then out[#out + 1] = i end end
  return out
end

-- prepare(opts) -> S (see the top of this file). opts (defaults):
--   root (OE_DATA_DIR or ./data), progress (false), seed (1234),
--   n_train (2000 Fashion-MNIST training images, class-balanced), n_test (10000),
--   digits_test (500 of the 1797 digits held out; the rest train),
--   n_speech_train (800), n_speech_test (200) spoken captions, voices (D.voices(): {train, test}),
--   n_clips_train (200), n_clips_test (100) clips; frames (16), size (64), fps (8), codec,
--   workers (2) synthesis processes.
function D.prepare(opts)
  opts = opts or {}
  local root = D.root(opts.root)
  local o = setmetatable({ root = root }, { __index = opts })
  local t_all = now()
  local S = { root = root, timings = {}, packages = {}, classes = {
    fashion = D.FASHION_CLASSES, digits = D.DIGIT_CLASSES } }
  mkdir(root)
  say(o, "data: cache %s", root)
  -- 1. packages
  local t0 = now()
  local fetched = false
  local names = {}
  for i, p in ipairs(D.PACKAGES) do names[i] = p.name end
  o.apt_info = D.apt.show_many(names)
  for _, p in ipairs(D.PACKAGES) do
    if p.rich and not opts.rich then goto next_package end
    local r = D.ensure(p.name, o)
    S.packages[p.name] = r
    if r.state ~= "cached" then fetched = true end
    say(o, "  %-28s %-10s %s (%.1f s)", p.name, r.state, r.version or "", r.seconds)
    ::next_package::
  end
  S.timings.fetch = fetched and now() - t0 or 0
  S.timings.verify = not fetched and now() - t0 or 0
  S.first_fetch = fetched
  -- 2. images
  t0 = now()
  local r = rng(opts.seed or 1234)
  local ftrain, ftest = D.fashion_mnist("train", o), D.fashion_mnist("test", o)
  local dg = D.digits(o)
  local ntr, nte = opts.n_train or 2000, opts.n_test or 10000
  S.fashion = { classes = D.FASHION_CLASSES, nouns = D.FASHION_NOUNS,
                train = subset(ftrain, balanced(ftrain.labels, ntr, r, 10)),
                test = subset(ftest, balanced(ftest.labels, nte, r, 10)) }
  local dtest_idx = balanced(dg.labels, opts.digits_test or 500, r, 10)
  S.digits = { classes = D.DIGIT_CLASSES, nouns = D.DIGIT_NOUNS,
               train = subset(dg, complement(dg.n, dtest_idx)), test = subset(dg, dtest_idx) }
  ftrain, ftest = nil, nil
  S.asterisk = D.asterisk(o)
  S.asterisk_digits = {}
  for _, e in ipairs(S.asterisk) do
    if e.digit then S.asterisk_digits[#S.asterisk_digits + 1] = { path = e.path, text = e.text, label = e.digit, id = e.id } end
  end
  table.sort(S.asterisk_digits, function(a, b) return a.label < b.label end)
  S.timings.load = now() - t0
  say(o, "  images: Fashion-MNIST %d train / %d test, digits %d train / %d test; %d recordings (%.1f s)",
      #S.fashion.train.index, #S.fashion.test.index, #S.digits.train.index, #S.digits.test.index,
      #S.asterisk, S.timings.load)
  -- 3. captions
  S.captions = {}
  for _, split in ipairs({ "train", "test" }) do
    local list = {}
    for _, src in ipairs({ { "fashion", D.FASHION_NOUNS, D.FASHION_CLASSES }, { "digits", D.DIGIT_NOUNS, D.DIGIT_CLASSES } }) do
      for _, c in ipairs(D.captions(src[2], split)) do
        list[#list + 1] = { text = c.text, label = c.label, source = src[1], class = src[3][c.label + 1], template = c.template }
      end
    end
    S.captions[split] = list
  end
  -- 4. spoken captions: (caption, voice) pairs drawn without replacement, classes cycled
  t0 = now()
  local voices = opts.voices or D.voices()
  S.voices = voices
  S.speech = {}
  for _, split in ipairs({ "train", "test" }) do
    local n = split == "train" and (opts.n_speech_train or 800) or (opts.n_speech_test or 200)
    local pairs_ = {}
    for _, c in ipairs(S.captions[split]) do
      for _, v in ipairs(voices[split]) do pairs_[#pairs_ + 1] = { c, v } end
    end
    shuffle(pairs_, r)
    -- round-robin over (source, label) so every class gets its share
    local by = {}
    local keys = {}
    for _, pv in ipairs(pairs_) do
      local k = pv[1].source .. pv[1].label
      if not by[k] then by[k] = {}; keys[#keys + 1] = k end
      table.insert(by[k], pv)
    end
    table.sort(keys)
    local items, pos = {}, 1
    while #items < math.min(n, #pairs_) do
      for _, k in ipairs(keys) do
        local pv = by[k][pos]
        if pv and #items < n then
          items[#items + 1] = { text = pv[1].text, voice = pv[2], label = pv[1].label, source = pv[1].source, class = pv[1].class }
        end
      end
      pos = pos + 1
    end
    local paths = D.speak_batch(items, o)
    for i, it in ipairs(items) do it.path = paths[i] end
    S.speech[split] = items
  end
  S.timings.speech = now() - t0
  -- 5. clips from real images of each split
  t0 = now()
  local F, Sz, fps = opts.frames or 16, opts.size or 64, opts.fps or 8
  local fmt = string.format("f%d_s%d_r%d_%s", F, Sz, fps, opts.codec or "libx264")
  S.clips = {}
  local jobs = {}
  for _, split in ipairs({ "train", "test" }) do
    local n = split == "train" and (opts.n_clips_train or 200) or (opts.n_clips_test or 100)
    local srcs = {}
    for _, name in ipairs({ "fashion", "digits" }) do
      local set = S[name][split]
      local order = {}
      for i = 1, #set.index do order[i] = i end
      shuffle(order, r)
      srcs[#srcs + 1] = { name = name, set = set, order = order, nouns = S[name].nouns }
    end
    local vt = D.VIDEO_TEMPLATES[split]
    local items = {}
    local k = 0
    while #items < n do
      k = k + 1
      local src = srcs[(k - 1) % #srcs + 1]
      local j = src.order[(k - 1) // #srcs + 1]
      if not j then break end
      local idx = src.set.index[j]
      local img = core.select(src.set.images, 1, j)
      local label = math.tointeger(core.get(src.set.labels, j))
      local motion = D.MOTIONS[r(#D.MOTIONS)]
      items[#items + 1] = {
        path = string.format("%s/clips/%s/%s-%s-%05d-%s.mp4", root, fmt, src.name, split, idx, motion),
        label = label, source = src.name, index = idx, motion = motion, split = split,
        caption = fill(vt[r(#vt)], src.nouns[label + 1]), image = img }
    end
    S.clips[split] = items
    for _, it in ipairs(items) do jobs[#jobs + 1] = it end
  end
  D.make_clips(jobs, o)
  for _, it in ipairs(jobs) do it.image = nil end
  S.timings.clips = now() - t0
  S.timings.total = now() - t_all
  say(o, "data ready in %.1f s (fetch %.1f, load %.1f, speech %.1f, clips %.1f)", S.timings.total,
      S.timings.fetch, S.timings.load, S.timings.speech, S.timings.clips)
  return S
end

-- status(opts) -> table; prints what is cached and whether it is intact (unless opts.quiet)
function D.status(opts)
  opts = opts or {}
  local root = D.root(opts.root)
  local out = { root = root, packages = {} }
  local lines = { "data cache: " .. root }
  for _, p in ipairs(D.PACKAGES) do
    local st = read_stamp(root .. "/pkgs/" .. p.name .. ".stamp")
    local e = { name = p.name }
    if not st then
      e.state = "missing"
    else
      local ok, why = files_ok(root .. "/pkgs/" .. p.name, st)
      e.version, e.files = st.version, #st.files
      local deb = root .. "/debs/" .. (st.deb or "")
      e.deb = file_size(deb) and (D.sha256(deb) == st.sha256 and "ok" or "BAD CHECKSUM") or "absent"
      e.state = ok and "ok" or ("damaged: " .. why)
    end
    out.packages[p.name] = e
    lines[#lines + 1] = string.format("  %-28s %-8s %s (%s files; .deb %s)", p.name, e.state,
      e.version or "", tostring(e.files or 0), e.deb or "absent")
  end
  local function count(dir, pat)
    local ok, o = run("find " .. q(dir) .. " -name " .. q(pat) .. " -type f 2>/dev/null | wc -l")
    return ok and tonumber(o:match("%d+")) or 0
  end
  out.speech = count(root .. "/speech", "*.wav")
  out.clips = count(root .. "/clips", "*.mp4")
  local ok, du = run("du -sh " .. q(root) .. " 2>/dev/null")
  out.size = ok and du:match("^(%S+)") or "?"
  lines[#lines + 1] = string.format("  speech: %d cached WAV files; clips: %d cached .mp4 files; total %s",
                                    out.speech, out.clips, out.size)
  if not opts.quiet then print(table.concat(lines, "\n")) end
  return out
end

-- ---------------------------------------------------------------- shared by both pipelines
-- features(kind, cache_dir, enc, items, key_fn, input_fn, batch) -> feature set through the
-- on-disk feature cache: items with equal keys are encoded once; input_fn(item) -> the
-- encoder's input; one progress line names the kind
function D.features(kind, cache_dir, enc, items, key_fn, input_fn, batch)
  local oe = require "oneencoder"
  local cache = oe.cache.open(cache_dir, { encoder_id = enc.id, dtype = "float32" })
  local keys, unique, seen = {}, {}, {}
  for i, it in ipairs(items) do
    keys[i] = key_fn(it)
    if not seen[keys[i]] then seen[keys[i]] = true; unique[#unique + 1] = { key = keys[i], src = it } end
  end
  local t0 = now()
  local st = cache:build(unique, function(part)
    local inputs = {}
    for i, b in ipairs(part) do inputs[i] = assert(input_fn(b.src)) end
    return enc:encode(inputs)
  end, { batch = batch, progress = false })
  print(string.format("features %-6s %6d items: %d computed, %d cached (%.1f s)", kind, #unique, st.computed, st.hits,
    now() - t0))
  io.stdout:flush()
  return cache:feature_set(keys)
end

-- tensor_key(name, index, t) -> the feature-cache key of a dataset image held as a tensor:
-- its set, its index and the XXH3-64 of its bytes, so that images prepared differently by
-- another version of the data code never reuse features cached for the old ones
function D.tensor_key(name, index, t)
  local core = require("oneencoder").core
  return string.format("%s-%d-%s", name, index, core.xxh3(core.to_bytes(t)))
end

-- prompts(nouns) -> { {the nouns in held-out template 1}, ... }: class prompts per template
function D.prompts(nouns)
  local per = {}
  for k, tpl in ipairs(D.TEMPLATES.test) do
    local texts = {}
    for c, noun in ipairs(nouns) do texts[c] = fill(tpl, noun) end
    per[k] = texts
  end
  return per
end

-- build_model(cfg, enc, seed) -> OneEncoder with image and text modalities (step 1)
function D.build_model(cfg, enc, seed)
  local oe = require "oneencoder"
  oe.manual_seed(seed or 2024)
  local m = oe.OneEncoder(cfg)
  m:add_modality("image", { input_dim = enc.image.dim })
  m:add_modality("text", { input_dim = enc.text.dim })
  return m
end

-- add_step2(m, enc) -> m frozen, with the audio and video modalities added (step 2)
function D.add_step2(m, enc)
  m:freeze()
  m:add_modality("audio", { input_dim = enc.audio.dim })
  m:add_modality("video", { input_dim = enc.video.dim })
  return m
end

return D
