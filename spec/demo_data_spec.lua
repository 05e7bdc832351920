-- demo/data.lua on tiny synthetic inputs made here: runs offline, without the fetched data.
-- Needs gzip, dpkg-deb, espeak-ng and the ffmpeg CLI (scripts/install-deps.sh installs them).
package.path = "examples/?.lua;" .. package.path
local oe = require "oneencoder"
local core = oe.core
local audio = require "oneencoder.audio"
local video = require "oneencoder.video"
local data = require "demo.data"

local F = require "demo_files"
local q, sh, tmpdir, rmdir, write, read = F.q, F.sh, F.tmpdir, F.rmdir, F.write, F.read

local function gzip_to(path, s)
  write(path .. ".raw", s)
  assert(sh("gzip -c " .. q(path .. ".raw") .. " > " .. q(path)))
  os.remove(path .. ".raw")
end
local function errmsg(f, ...)
  local ok, e = pcall(f, ...)
  assert(not ok, "expected an error")
  return tostring(e)
end
local function idx_images(n, h, w, fillf)
  local px = {}
  for i = 0, n * h * w - 1 do px[#px + 1] = string.char(fillf(i)) end
  return string.pack(">I4I4I4I4", 0x803, n, h, w) .. table.concat(px)
end
local function idx_labels(list)
  local s = {}
  for i, v in ipairs(list) do s[i] = string.char(v) end
  return string.pack(">I4I4", 0x801, #list) .. table.concat(s)
end

describe("IDX parser", function()
  it("reads an unsigned-byte IDX file into a uint8 tensor", function()
    local t, dims = data.parse_idx(idx_images(3, 2, 2, function(i) return i * 10 end), "x.idx",
                                   { ndim = 3, dims = { nil, 2, 2 } })
    assert.same({ 3, 2, 2 }, dims)
    assert.same({ 3, 2, 2 }, core.shape(t))
    assert.equals("uint8", core.dtype(t))
    assert.equals(0, core.get(t, 1, 1, 1))
    assert.equals(30, core.get(t, 1, 2, 2))
    assert.equals(110, core.get(t, 3, 2, 2))
  end)
  it("rejects bad magic, wrong dimensions and truncated data, naming the file", function()
    local good = idx_images(2, 2, 2, function() return 1 end)
    local e = errmsg(data.parse_idx, "\0\0\9\3" .. good:sub(5), "bad.idx", { ndim = 3 })
    assert.truthy(e:find("bad.idx", 1, true) and e:find("not an unsigned-byte IDX", 1, true))
    e = errmsg(data.parse_idx, good, "lab.idx", { ndim = 1 })
    assert.truthy(e:find("lab.idx: IDX file with 3 dimensions, expected 1", 1, true))
    e = errmsg(data.parse_idx, good, "f.idx", { ndim = 3, dims = { nil, 28, 28 } })
    assert.truthy(e:find("f.idx: dimension 2 is 2, expected 28", 1, true))
    e = errmsg(data.parse_idx, good:sub(1, -2), "short.idx", { ndim = 3 })
    assert.truthy(e:find("short.idx: 7 data bytes, the header announces 8 (truncated", 1, true))
    e = errmsg(data.parse_idx, "\0\0", "tiny.idx")
    assert.truthy(e:find("tiny.idx: 2 bytes, too short", 1, true))
  end)
  it("reads Fashion-MNIST's layout from a cache folder, checking counts and labels", function()
    local root = tmpdir()
    local dir = root .. "/pkgs/dataset-fashion-mnist/usr/share/datasets/fashion-mnist/"
    gzip_to(dir .. "train-images-idx3-ubyte.gz", idx_images(3, 28, 28, function(i) return i % 251 end))
    gzip_to(dir .. "train-labels-idx1-ubyte.gz", idx_labels({ 9, 0, 5 }))
    local fm = data.fashion_mnist("train", { root = root, check_count = false })
    assert.same({ 3, 28, 28 }, core.shape(fm.images))
    assert.equals("int64", core.dtype(fm.labels))
    assert.same({ 9, 0, 5 }, core.totable(fm.labels))
    assert.equals(784 % 251, core.get(fm.images, 2, 1, 1))
    assert.equals("Ankle boot", fm.classes[10])
    -- the real split sizes are checked by default
    local e = errmsg(data.fashion_mnist, "train", { root = root })
    assert.truthy(e:find("holds 3 images, Fashion-MNIST's train split has 60000", 1, true))
    -- a label outside 0..9
    gzip_to(dir .. "train-labels-idx1-ubyte.gz", idx_labels({ 9, 10, 5 }))
    e = errmsg(data.fashion_mnist, "train", { root = root, check_count = false })
    assert.truthy(e:find("train-labels-idx1-ubyte.gz: label 10 at item 1 is outside 0..9", 1, true))
    -- labels and images disagree
    gzip_to(dir .. "train-labels-idx1-ubyte.gz", idx_labels({ 9, 0 }))
    e = errmsg(data.fashion_mnist, "train", { root = root, check_count = false })
    assert.truthy(e:find("holds 2 labels but", 1, true))
    -- a truncated gzip stream
    local gz = read(dir .. "train-images-idx3-ubyte.gz")
    write(dir .. "train-images-idx3-ubyte.gz", gz:sub(1, #gz // 2))
    e = errmsg(data.fashion_mnist, "train", { root = root, check_count = false })
    assert.truthy(e:find("train-images-idx3-ubyte.gz: gzip -dc failed", 1, true))
    -- a missing file
    e = errmsg(data.fashion_mnist, "test", { root = root })
    assert.truthy(e:find("t10k-images-idx3-ubyte.gz", 1, true))
    rmdir(root)
  end)
end)

describe("digits parser", function()
  local function row(vals, label)
    local t = {}
    for i = 1, 64 do t[i] = tostring(vals(i)) end
    t[65] = tostring(label)
    return table.concat(t, ",")
  end
  it("scales 0..16 to 0..255 (round half up) and reads labels", function()
    local text = row(function(i) return (i - 1) % 17 end, 3) .. "\n" ..
                 row(function() return 16 end, 0) .. "\r\n" .. row(function() return 8 end, 9) .. "\n"
    local images, labels = data.parse_digits(text, "d.csv", false)
    assert.same({ 3, 8, 8 }, core.shape(images))
    assert.same({ 3, 0, 9 }, core.totable(labels))
    assert.equals(0, core.get(images, 1, 1, 1))     -- 0
    assert.equals(16, core.get(images, 1, 1, 2))    -- 1 * 255 / 16 = 15.94
    assert.equals(128, core.get(images, 1, 2, 1))   -- 8 -> 127.5 -> 128
    assert.equals(255, core.get(images, 1, 3, 1))   -- 16 (index 16 of 0..16 cycle)
    assert.equals(255, core.get(images, 2, 8, 8))
    assert.equals(128, core.get(images, 3, 4, 5))
  end)
  it("rejects values outside 0..16, bad labels and short rows, naming file and line", function()
    local ok_row = row(function() return 1 end, 1)
    local e = errmsg(data.parse_digits, ok_row .. "\n" .. row(function(i) return i == 5 and 17 or 0 end, 2), "d.csv", false)
    assert.truthy(e:find("d.csv line 2: pixel 5 is 17, outside 0..16", 1, true))
    e = errmsg(data.parse_digits, row(function() return 0 end, 12), "d.csv", false)
    assert.truthy(e:find("d.csv line 1: label 12 outside 0..9", 1, true))
    e = errmsg(data.parse_digits, "1,2,3\n", "d.csv", false)
    assert.truthy(e:find("d.csv line 1: 3 values, expected 65", 1, true))
    e = errmsg(data.parse_digits, row(function() return 0.5 end, 1), "d.csv", false)
    assert.truthy(e:find("d.csv line 1: value 1 (\"0.5\") is not an integer", 1, true))
    e = errmsg(data.parse_digits, ok_row, "d.csv")
    assert.truthy(e:find("d.csv holds 1 digits, expected 1797", 1, true))
  end)
  it("reads sklearn's digits.csv.gz from a cache folder", function()
    local root = tmpdir()
    gzip_to(root .. "/pkgs/python3-sklearn/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz",
            row(function() return 4 end, 7) .. "\n" .. row(function() return 12 end, 1) .. "\n")
    local d = data.digits({ root = root, check_count = false })
    assert.equals(2, d.n)
    assert.same({ 7, 1 }, core.totable(d.labels))
    assert.equals(64, core.get(d.images, 1, 1, 1))  -- 4 * 255 / 16 = 63.75
    assert.equals(191, core.get(d.images, 2, 8, 8)) -- 12 * 255 / 16 = 191.25
    assert.equals("the digit seven", d.nouns[8])
    rmdir(root)
  end)
end)

describe("Asterisk recordings", function()
  local function make_root(skip)
    local root = tmpdir()
    local txt = { "; Core Asterisk Sounds in English", "", "beep: [this is a simple beep tone]",
                  "letters/at: at [@]", "vm-goodbye: Goodbye." }
    for d = 0, 9 do txt[#txt + 1] = string.format("digits/%d: %s", d, data.DIGIT_CLASSES[d + 1]) end
    txt[#txt + 1] = "pls-try-call-later: Please try your call later."   -- listed, no recording
    gzip_to(root .. "/pkgs/asterisk-core-sounds-en/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz",
            table.concat(txt, "\n") .. "\n")
    local wd = root .. "/pkgs/asterisk-core-sounds-en-wav/usr/share/asterisk/sounds/en_US_f_Allison/"
    sh("mkdir -p " .. q(wd .. "digits") .. " " .. q(wd .. "letters"))
    local w = oe.zeros({ 800 })
    local ids = { "beep", "letters/at", "vm-goodbye", "no-transcript" }
    for d = 0, 9 do ids[#ids + 1] = "digits/" .. d end
    for _, id in ipairs(ids) do
      if id ~= skip then assert(audio.save_wav(w, 8000, wd .. id .. ".wav")) end
    end
    return root, wd
  end
  it("pairs every recording with its transcript, sorted, with digits marked", function()
    local root, wd = make_root()
    local list = data.asterisk({ root = root, check_count = false })
    assert.equals(13, #list)   -- "no-transcript" has no transcript; pls-try-call-later no recording
    assert.equals("beep", list[1].id)
    assert.equals("[this is a simple beep tone]", list[1].transcript)
    assert.equals("", list[1].text)
    assert.equals("digits/0", list[2].id)
    assert.equals(0, list[2].digit)
    assert.equals(wd .. "digits/0.wav", list[2].path)
    assert.equals("digits/7", list[9].id)
    assert.equals(7, list[9].digit)
    assert.equals("seven", list[9].text)
    assert.equals("letters/at", list[12].id)
    assert.equals("at", list[12].text)
    assert.is_nil(list[12].digit)
    assert.equals("Goodbye.", list[13].text)
    local e = errmsg(data.asterisk, { root = root })
    assert.truthy(e:find("13 transcribed recordings (1 without a transcript", 1, true))
    rmdir(root)
  end)
  it("stops when a digit recording is missing, naming it", function()
    local root = make_root("digits/3")
    local e = errmsg(data.asterisk, { root = root, check_count = false })
    assert.truthy(e:find("digits/3.wav is missing", 1, true))
    rmdir(root)
  end)
  it("rejects a transcript line without an id", function()
    local e = errmsg(data.parse_transcripts, "digits/1: one\nno colon here\n", "t.txt")
    assert.truthy(e:find("t.txt line 2: expected \"id: transcript\"", 1, true))
  end)
end)

describe("package cache (apt-get download + dpkg -x, SHA256 against apt)", function()
  local root, deb, info, saved_apt, downloads, served
  local PKG = "oe-test-pkg"
  setup(function()
    root = tmpdir()
    local src = root .. "/src"
    write(src .. "/DEBIAN/control", "Package: " .. PKG .. "\nVersion: 1.0-1\nArchitecture: all\n" ..
          "Maintainer: spec <spec@example.org>\nDescription: demo data spec package\n")
    write(src .. "/usr/share/oe-test/a.txt", string.rep("abcdefgh", 100))
    write(src .. "/usr/share/oe-test/b.txt", "second file\n")
    write(src .. "/usr/share/oe-test/ignored.bin", "not wanted\n")
    write(src .. "/usr/share/doc/" .. PKG .. "/copyright", "Files: *\nLicense: MIT\n")
    deb = root .. "/built.deb"
    local ok = sh("dpkg-deb --root-owner-group --build " .. q(src) .. " " .. q(deb) .. " >/dev/null 2>&1")
    assert(ok, "dpkg-deb --build failed")
    info = { package = PKG, version = "1.0-1", arch = "all", sha256 = data.sha256(deb),
             size = data.file_size(deb), filename = PKG .. "_1.0-1_all.deb" }
    table.insert(data.PACKAGES, { name = PKG, min_files = 3, prune = true, want = { "/oe%-test/.+%.txt$", "/copyright$" } })
    saved_apt = { show = data.apt.show, download = data.apt.download }
    downloads, served = 0, deb
    data.apt.show = function(pkg) if pkg == PKG then return info end return nil, "E: No packages found" end
    data.apt.download = function(i, dir)
      downloads = downloads + 1
      if served == false then return false, "E: Failed to fetch http://deb.debian.org/... Could not resolve host" end
      local ok2 = sh("cp " .. q(served) .. " " .. q(dir .. "/" .. i.filename))
      return ok2, ""
    end
  end)
  teardown(function()
    table.remove(data.PACKAGES)
    data.apt.show, data.apt.download = saved_apt.show, saved_apt.download
    rmdir(root)
  end)
  local cache
  before_each(function() cache = root .. "/cache" end)

  it("computes SHA256 like sha256sum", function()
    write(root .. "/abc", "abc")
    assert.equals("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", data.sha256(root .. "/abc"))
  end)
  it("fetches, verifies and extracts once, then uses the cache", function()
    local r = data.ensure(PKG, { root = cache })
    assert.equals("fetched", r.state)
    assert.equals(1, downloads)
    assert.equals(string.rep("abcdefgh", 100), read(cache .. "/pkgs/" .. PKG .. "/usr/share/oe-test/a.txt"))
    local stamp = read(cache .. "/pkgs/" .. PKG .. ".stamp")
    assert.truthy(stamp:find("sha256 " .. info.sha256, 1, true))
    assert.truthy(stamp:find("800 ./usr/share/oe-test/a.txt", 1, true))
    assert.falsy(stamp:find("ignored.bin", 1, true))
    -- prune: only the wanted files are kept
    assert.is_nil(data.file_size(cache .. "/pkgs/" .. PKG .. "/usr/share/oe-test/ignored.bin"))
    assert.equals(12, data.file_size(cache .. "/pkgs/" .. PKG .. "/usr/share/oe-test/b.txt"))
    r = data.ensure(PKG, { root = cache })
    assert.equals("cached", r.state)
    assert.equals(1, downloads)
    local st = data.status({ root = cache, quiet = true })
    assert.equals("ok", st.packages[PKG].state)
    assert.equals("ok", st.packages[PKG].deb)
    assert.equals(3, st.packages[PKG].files)
  end)
  it("re-extracts a truncated file without downloading again", function()
    local f = cache .. "/pkgs/" .. PKG .. "/usr/share/oe-test/a.txt"
    write(f, "abcd")
    assert.truthy(data.status({ root = cache, quiet = true }).packages[PKG].state:find("damaged", 1, true))
    local n0 = data.stats.extracted
    local r = data.ensure(PKG, { root = cache })
    assert.equals("extracted", r.state)
    assert.equals(1, downloads)
    assert.equals(n0 + 1, data.stats.extracted)
    assert.equals(800, data.file_size(f))
  end)
  it("downloads again a cached .deb that fails its checksum", function()
    local p = cache .. "/debs/" .. info.filename
    write(p, read(p) .. "x")
    assert.equals("BAD CHECKSUM", data.status({ root = cache, quiet = true }).packages[PKG].deb)
    local r = data.ensure(PKG, { root = cache })
    assert.equals("fetched", r.state)
    assert.equals(2, downloads)
    assert.equals(info.sha256, data.sha256(p))
  end)
  it("stops on a checksum mismatch of a fresh download, saying what to run", function()
    os.remove(cache .. "/debs/" .. info.filename)
    os.remove(cache .. "/pkgs/" .. PKG .. ".stamp")
    write(root .. "/evil.deb", read(deb) .. "tampered")
    served = root .. "/evil.deb"
    local e = errmsg(data.ensure, PKG, { root = cache })
    served = deb
    assert.truthy(e:find("checksum mismatch for " .. cache .. "/debs/" .. info.filename, 1, true))
    assert.truthy(e:find("apt expects " .. info.sha256, 1, true))
    assert.truthy(e:find("apt-get update", 1, true))
    assert.is_nil(data.file_size(cache .. "/debs/" .. info.filename))
  end)
  it("stops on a failed download, with apt's message and what to run", function()
    served = false
    local e = errmsg(data.ensure, PKG, { root = cache })
    served = deb
    assert.truthy(e:find("apt-get download " .. PKG .. "=1.0-1 failed", 1, true))
    assert.truthy(e:find("Could not resolve host", 1, true))
    assert.truthy(e:find("then run this again", 1, true))
  end)
  it("stops when apt does not know the package, telling to run apt-get update", function()
    local saved = info
    info = nil
    local e = errmsg(data.ensure, PKG, { root = cache })
    info = saved
    assert.truthy(e:find("package " .. PKG .. " is not known to apt", 1, true))
    assert.truthy(e:find("Run as root: apt-get update", 1, true))
  end)
  it("uses a verified extraction when apt no longer knows the package", function()
    assert.equals("fetched", data.ensure(PKG, { root = cache }).state)
    local saved = info
    info = nil
    local r = data.ensure(PKG, { root = cache })
    info = saved
    assert.equals("cached", r.state)
  end)
end)

describe("captions and voices", function()
  it("uses disjoint templates: no test caption is a training caption", function()
    for _, T in ipairs({ data.TEMPLATES, data.VIDEO_TEMPLATES }) do
      for _, nouns in ipairs({ data.FASHION_NOUNS, data.DIGIT_NOUNS }) do
        local train = {}
        for _, c in ipairs(data.captions(nouns, "train", T)) do train[c.text] = true end
        local test = data.captions(nouns, "test", T)
        assert.equals(10 * #T.test, #test)
        for _, c in ipairs(test) do assert.is_nil(train[c.text], c.text) end
      end
    end
    local cs = data.captions(data.FASHION_NOUNS, "train")
    assert.equals(80, #cs)
    assert.equals("a photo of a t-shirt", cs[1].text)
    assert.equals(0, cs[1].label)
    assert.equals("a photo of an ankle boot", cs[73].text)
    assert.equals(9, cs[73].label)
    assert.equals("there is the digit four", data.captions(data.DIGIT_NOUNS, "test")[4 * 4 + 3].text)
  end)
  it("keeps training and test voices apart (engine voice, language and variant)", function()
    local v = data.voices()
    assert.is_true(#v.train >= 20)
    assert.is_true(#v.test >= 4)
    local lang, variant, ids = {}, {}, {}
    for _, id in ipairs(v.train) do
      local p = data.parse_voice(id)
      assert.equals("espeak", p.engine)
      local l, var = p.voice:match("^(.-)%+(.+)$")
      lang[l], variant[var], ids[id] = true, true, true
    end
    local flite = 0
    for _, id in ipairs(v.test) do
      assert.is_nil(ids[id])
      local p = data.parse_voice(id)
      if p.engine == "espeak" then
        local l, var = p.voice:match("^(.-)%+(.+)$")
        assert.is_nil(lang[l], id)
        assert.is_nil(variant[var], id)
      else
        flite = flite + 1
      end
    end
    assert.equals(4, flite)
    local p = data.parse_voice("espeak:en-us+m3:170:40")
    assert.same({ "en-us+m3", 170, 40 }, { p.voice, p.speed, p.pitch })
    assert.has_error(function() data.parse_voice("festival:kal") end)
  end)
end)

describe("speech synthesis", function()
  local root
  setup(function() root = tmpdir() end)
  teardown(function() rmdir(root) end)
  it("writes 16 kHz mono WAV with espeak-ng and synthesises each (text, voice) once", function()
    local n0 = data.stats.synthesised
    local p = data.speak("seven", "espeak:en-us+m3:160:50", nil, { root = root })
    assert.equals(n0 + 1, data.stats.synthesised)
    assert.truthy(p:find(root .. "/speech/", 1, true) == 1)
    local info = audio.info(p)
    assert.equals(16000, info.rate)
    assert.equals(1, info.channels)
    assert.is_true(info.duration > 0.2 and info.duration < 2, tostring(info.duration))
    local peak = 0
    for _, v in ipairs(core.totable(audio.load(p))) do peak = math.max(peak, math.abs(v)) end
    assert.is_true(peak > 0.05, tostring(peak))
    assert.equals(p, data.speak("seven", "espeak:en-us+m3:160:50", nil, { root = root }))
    assert.equals(n0 + 1, data.stats.synthesised)
    -- another voice is another file
    local p2 = data.speak("seven", "espeak:en-gb-x-rp+f2:180:65", nil, { root = root })
    assert.are_not.equal(p, p2)
    assert.equals(n0 + 2, data.stats.synthesised)
    -- a truncated cache entry is synthesised again
    write(p, read(p):sub(1, 100))
    assert.is_false(data.wav_ok(p))
    data.speak("seven", "espeak:en-us+m3:160:50", nil, { root = root })
    assert.equals(n0 + 3, data.stats.synthesised)
    assert.is_true(data.wav_ok(p))
  end)
  it("writes 16 kHz mono WAV with FFmpeg's flite voices, to a given path too", function()
    local out = root .. "/given/slt.wav"
    local p = data.speak("a photo of a bag", "flite:slt", out, { root = root })
    assert.equals(out, p)
    local info = audio.info(p)
    assert.equals(16000, info.rate)
    assert.equals(1, info.channels)
    assert.is_true(info.duration > 0.4 and info.duration < 4, tostring(info.duration))
  end)
  it("reports a voice the synthesiser does not have, naming it", function()
    local e = errmsg(data.speak, "seven", "espeak:xx-nosuch:160:50", nil, { root = root })
    assert.truthy(e:find("speech synthesis failed for voice espeak:xx-nosuch:160:50", 1, true))
  end)
end)

describe("video clips", function()
  local root
  setup(function() root = tmpdir() end)
  teardown(function() rmdir(root) end)
  local function frame_centroid(raw, f, S)
    local sx, sy, m = 0, 0, 0
    local base = f * S * S * 3
    for y = 0, S - 1 do
      for x = 0, S - 1 do
        local v = raw:byte(base + (y * S + x) * 3 + 1)
        sx, sy, m = sx + v * x, sy + v * y, m + v
      end
    end
    return sx / m, sy / m, m
  end
  -- an 8x8 image with a bright 4x4 square in the middle (rows/cols 2..5, 0-based)
  local function square()
    local s = {}
    for y = 0, 7 do for x = 0, 7 do s[#s + 1] = string.char((x >= 2 and x <= 5 and y >= 2 and y <= 5) and 240 or 0) end end
    return core.from_bytes(table.concat(s), "uint8", { 8, 8 })
  end
  it("renders frames by bilinear mapping (hand-worked border values)", function()
    local flat = oe.full({ 8, 8 }, 200, "uint8")
    local raw, F, S = data.render_clip(flat, "still", { frames = 2, size = 64 })
    assert.equals(2, F)
    assert.equals(64 * 64 * 3 * 2, #raw)
    -- centre: 200; corner: source (-0.4375, -0.4375) -> 200 * 0.5625^2 = 63.28 -> 63
    assert.equals(200, raw:byte((32 * 64 + 32) * 3 + 1))
    assert.equals(63, raw:byte(1))
    assert.equals(63, raw:byte(3))   -- grey: R = G = B
    -- edge middle: one axis blended: 200 * 0.5625 = 112.5 -> 113
    assert.equals(113, raw:byte((32 * 64) * 3 + 1))
    -- colour (H, W, 3): 2x2 of (10, 20, 30) on 8x8; corner source (-0.375, -0.375): weight 0.625^2
    local rgb = core.from_bytes(string.rep("\10\20\30", 4), "uint8", { 2, 2, 3 })
    raw = data.render_clip(rgb, "still", { frames = 1, size = 8 })
    assert.equals(8 * 8 * 3, #raw)
    assert.same({ 10, 20, 30 }, { raw:byte((4 * 8 + 4) * 3 + 1, (4 * 8 + 4) * 3 + 3) })
    assert.same({ 4, 8, 12 }, { raw:byte(1, 3) })   -- 3.91, 7.81, 11.72
  end)
  it("moves, zooms and rotates as named", function()
    local img = square()
    local raw = data.render_clip(img, "left", { frames = 16, size = 64 })
    -- dx from +0.3 to -0.3 half-widths: centre 31.5 + 9.6 -> 31.5 - 9.6
    local x1, y1 = frame_centroid(raw, 0, 64)
    local x16, y16 = frame_centroid(raw, 15, 64)
    assert.is_true(math.abs(x1 - 41.1) < 0.05, tostring(x1))
    assert.is_true(math.abs(x16 - 21.9) < 0.05, tostring(x16))
    assert.is_true(math.abs(y1 - 31.5) < 0.05 and math.abs(y16 - 31.5) < 0.05)
    raw = data.render_clip(img, "zoom_in", { frames = 16, size = 64 })
    local _, _, m1 = frame_centroid(raw, 0, 64)
    local _, _, m16 = frame_centroid(raw, 15, 64)
    -- mass grows with the area: (1.2 / 0.6)^2 = 4
    assert.is_true(math.abs(m16 / m1 - 4) < 0.1, tostring(m16 / m1))
    -- rotation: a bar at the top (row 1, cols 2..5) turns clockwise from -40 to +40 degrees,
    -- its centroid going from left of the centre to right of it (y points down)
    local s = {}
    for y = 0, 7 do for x = 0, 7 do s[#s + 1] = string.char((y == 1 and x >= 2 and x <= 5) and 240 or 0) end end
    local bar = core.from_bytes(table.concat(s), "uint8", { 8, 8 })
    raw = data.render_clip(bar, "rotate_cw", { frames = 3, size = 64 })
    local bx1, by1 = frame_centroid(raw, 0, 64)
    local bx2, by2 = frame_centroid(raw, 1, 64)
    local bx3, by3 = frame_centroid(raw, 2, 64)
    -- unrotated: source row 1 -> output y = (1 + 0.5) * 8 - 0.5 = 11.5, 20 px above the centre
    assert.is_true(math.abs(bx2 - 31.5) < 0.05 and math.abs(by2 - 11.5) < 0.3, bx2 .. " " .. by2)
    -- +-40 degrees about the centre: x = 31.5 +- 20 sin 40 = 31.5 +- 12.86, y = 31.5 - 20 cos 40
    assert.is_true(math.abs(bx1 - (31.5 - 12.86)) < 0.3, tostring(bx1))
    assert.is_true(math.abs(bx3 - (31.5 + 12.86)) < 0.3, tostring(bx3))
    assert.is_true(math.abs(by1 - (31.5 - 15.32)) < 0.3 and math.abs(by3 - by1) < 0.05, by1 .. " " .. by3)
    raw = data.render_clip(bar, "rotate_ccw", { frames = 3, size = 64 })
    assert.is_true(math.abs(frame_centroid(raw, 0, 64) - (31.5 + 12.86)) < 0.3)
    assert.has_error(function() data.render_clip(img, "spin") end)
  end)
  it("encodes H.264 clips that decode through oe.video close to the rendered frames", function()
    local img = square()
    local n0 = data.stats.encoded
    local p = data.make_clip(img, "right", root .. "/c/right.mp4", { root = root })
    assert.equals(n0 + 1, data.stats.encoded)
    local info = video.info(p)
    assert.equals(16, info.frames)
    assert.equals(64, info.width)
    assert.equals(64, info.height)
    assert.equals("h264", info.codec)
    assert.equals(8, info.fps)
    local x = video.sample(p, { frames = 16, format = "uint8" })
    assert.same({ 16, 64, 64, 3 }, core.shape(x))
    local raw = data.render_clip(img, "right")
    local got = core.to_bytes(x)
    local sum = 0
    for i = 1, #raw do sum = sum + math.abs(raw:byte(i) - got:byte(i)) end
    assert.is_true(sum / #raw < 3, tostring(sum / #raw))
    local gx1 = frame_centroid(got, 0, 64)
    local gx16 = frame_centroid(got, 15, 64)
    assert.is_true(math.abs(gx1 - 21.9) < 0.5 and math.abs(gx16 - 41.1) < 0.5)
    -- cached: not encoded again; a truncated file is
    data.make_clip(img, "right", p, { root = root })
    assert.equals(n0 + 1, data.stats.encoded)
    write(p, read(p):sub(1, 200))
    data.make_clip(img, "right", p, { root = root })
    assert.equals(n0 + 2, data.stats.encoded)
    assert.is_true(data.clip_ok(p, 16, 64))
  end)
  it("encodes a batch in one ffmpeg run, one file per clip, mpeg4 too", function()
    local img = square()
    local list = {}
    for i, m in ipairs({ "up", "down", "zoom_out" }) do list[i] = { image = img, motion = m } end
    local paths = data.make_clips(list, { root = root, codec = "mpeg4", frames = 8, chunk = 2 })
    assert.equals(3, #paths)
    for i, p in ipairs(paths) do
      local info = video.info(p)
      assert.equals(8, info.frames)
      assert.equals("mpeg4", info.codec)
      local x = core.to_bytes(video.sample(p, { frames = 8, format = "uint8" }))
      local _, y1 = frame_centroid(x, 0, 64)
      local _, y8 = frame_centroid(x, 7, 64)
      if i == 1 then assert.is_true(y1 - y8 > 15, y1 .. " " .. y8)         -- up
      elseif i == 2 then assert.is_true(y8 - y1 > 15, y1 .. " " .. y8)     -- down
      else assert.is_true(math.abs(y8 - y1) < 1) end                       -- zoom about the centre
    end
    assert.are_not.equal(paths[1], paths[2])
    -- same inputs: same cached paths, nothing encoded
    local n0 = data.stats.encoded
    local again = data.make_clips(list, { root = root, codec = "mpeg4", frames = 8 })
    assert.same(paths, again)
    assert.equals(n0, data.stats.encoded)
  end)
end)
