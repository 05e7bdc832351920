-- core.webp_read / webp_info / webp_read_bytes (csrc/io/webp_anim.c, libwebp's WebPAnimDecoder)
-- against the frames Pillow decodes (tools/webp_anim_fixtures.py -> spec/fixtures/webp/), and
-- hostile input: every truncation, byte flips, corrupt frame data, caps, non-files.
local oe = require "oneencoder"
local core = oe.core
local H = require "helpers"

local DIR = "spec/fixtures/webp/"
local M = dofile(DIR .. "manifest.lua")
local NAMES = {}
for k in pairs(M) do NAMES[#NAMES + 1] = k end
table.sort(NAMES)

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- frame i (1-based) of a T*H*W*C byte string
local function frame(s, i, h, w, c) return s:sub((i - 1) * h * w * c + 1, i * h * w * c) end

-- first differing byte as "frame f, pixel (y, x), channel k" for a useful failure message
local function first_diff(a, b, h, w, c)
  for i = 1, math.min(#a, #b) do
    if a:byte(i) ~= b:byte(i) then
      local j = i - 1
      local f, r = j // (h * w * c), j % (h * w * c)
      return string.format("frame %d, pixel (%d, %d), channel %d: %d vs %d", f + 1, r // (w * c), (r // c) % w,
        r % c + 1, a:byte(i), b:byte(i))
    end
  end
  return #a == #b and "equal" or string.format("lengths %d and %d", #a, #b)
end

describe("webp_read against Pillow's frames", function()
  for _, name in ipairs(NAMES) do
    local m = M[name]
    it(name .. ": RGBA frames, composited RGB, size, timestamps", function()
      local t, info = core.webp_read(DIR .. name .. ".webp", { channels = 4 })
      assert.is_not_nil(t, info)
      assert.same({ m.frames, m.height, m.width, 4 }, core.shape(t))
      assert.equals("uint8", core.dtype(t))
      local want = read(DIR .. name .. ".rgba")
      local got = core.to_bytes(t)
      assert(got == want, "RGBA differs from Pillow at " .. first_diff(got, want, m.height, m.width, 4))
      assert.equals(m.frames, info.frames)
      assert.equals(m.frames, info.out_frames)
      assert.equals(m.width, info.width)
      assert.equals(m.height, info.height)
      assert.equals(m.frames > 1, info.animated)
      if m.frames > 1 then
        assert.equals(m.loop, info.loop_count)
        -- libwebp reports each frame's end time: the running sum of Pillow's durations
        local acc, ends = 0, {}
        for i, d in ipairs(m.durations) do acc = acc + d; ends[i] = acc end
        assert.same(ends, info.timestamps)
      end
      -- default: RGB on white, (c a + 255 (255 - a) + 127) // 255 as numpy computed it
      local rgb = core.webp_read(DIR .. name .. ".webp")
      assert.same({ m.frames, m.height, m.width, 3 }, core.shape(rgb))
      local want3 = read(DIR .. name .. ".rgb")
      assert(core.to_bytes(rgb) == want3, "RGB differs at " .. first_diff(core.to_bytes(rgb), want3, m.height, m.width, 3))
      -- the same from a string
      local tb = core.webp_read_bytes(read(DIR .. name .. ".webp"), { channels = 4 })
      assert(core.to_bytes(tb) == want)
    end)
  end

  it("composites on a given background: a half-transparent pixel worked by hand", function()
    -- anim_lossless_alpha row 1 (0-based) has alpha 128 everywhere (tools/webp_anim_fixtures.py)
    local m = M.anim_lossless_alpha
    local rgba = core.to_bytes((core.webp_read(DIR .. "anim_lossless_alpha.webp", { channels = 4 })))
    local rgb = core.to_bytes((core.webp_read(DIR .. "anim_lossless_alpha.webp", { bg = { 0, 100, 255 } })))
    local px = 1 * m.width + 5   -- row 1, column 5 of frame 1
    local r, g, b, a = rgba:byte(px * 4 + 1, px * 4 + 4)
    assert.equals(128, a)
    assert.equals((r * 128 + 0 * 127 + 127) // 255, rgb:byte(px * 3 + 1))
    assert.equals((g * 128 + 100 * 127 + 127) // 255, rgb:byte(px * 3 + 2))
    assert.equals((b * 128 + 255 * 127 + 127) // 255, rgb:byte(px * 3 + 3))
    -- a transparent pixel (row 0) is the background itself
    assert.same({ 0, 100, 255 }, { rgb:byte(6 * 3 + 1, 6 * 3 + 3) })
  end)

  it("frames = K keeps the middle frame of K equal segments (hand-worked indices)", function()
    local m = M.anim_lossless_alpha   -- 5 frames
    local all = core.to_bytes((core.webp_read(DIR .. "anim_lossless_alpha.webp", { channels = 4 })))
    local cases = { [1] = { 2 }, [2] = { 1, 3 }, [3] = { 0, 2, 4 }, [4] = { 0, 1, 3, 4 } }
    for k, idx in pairs(cases) do
      -- floor((2i + 1) n / (2K)): K = 2 -> floor(5/4) = 1, floor(15/4) = 3; K = 4 -> 0, 1, 3, 4
      local t, info = core.webp_read(DIR .. "anim_lossless_alpha.webp", { channels = 4, frames = k })
      assert.same({ k, m.height, m.width, 4 }, core.shape(t))
      assert.equals(k, info.out_frames)
      local s = core.to_bytes(t)
      for i, j in ipairs(idx) do
        assert(frame(s, i, m.height, m.width, 4) == frame(all, j + 1, m.height, m.width, 4),
          string.format("K = %d: output %d is not frame %d", k, i, j))
        local acc = 0
        for d = 1, j + 1 do acc = acc + m.durations[d] end
        assert.equals(acc, info.timestamps[i])
      end
    end
    -- K >= n: every frame
    for _, k in ipairs({ 5, 9 }) do
      local t = core.webp_read(DIR .. "anim_lossless_alpha.webp", { channels = 4, frames = k })
      assert.equals(5, core.shape(t)[1])
    end
  end)

  it("webp_info reads the header only, with the caps applied", function()
    local info = assert(core.webp_info(DIR .. "anim_lossy.webp", { frames = 3 }))
    assert.same({ 20, 16, 4, true, 2, 3 }, { info.width, info.height, info.frames, info.animated, info.loop_count, info.out_frames })
    assert.is_nil(info.timestamps)
  end)
end)

describe("webp_read on bad input", function()
  local good = read(DIR .. "anim_lossless_alpha.webp")

  local function refused(s, ...)
    local t, msg = core.webp_read_bytes(s, { channels = 4 })
    assert.is_nil(t)
    assert.is_string(msg)
    for _, frag in ipairs({ ... }) do
      assert(msg:find(frag, 1, true), string.format("message %q does not mention %q", msg, frag))
    end
    return msg
  end

  it("refuses every truncation with a reason", function()
    local counts = {}
    for n = 0, #good - 1 do
      local msg = refused(good:sub(1, n), "<bytes>: ")
      local kind = msg:match("<bytes>: (%a+)")
      counts[kind] = (counts[kind] or 0) + 1
    end
    -- short prefixes are not WebP at all; the rest are incomplete containers
    assert.equals(12, counts["not"])
    assert.equals(#good - 12, counts["truncated"])
  end)

  it("names a frame whose compressed data is corrupt (the header still parses)", function()
    -- the last ANMF frame's VP8L payload: keep its header (signature and size), overwrite the
    -- entropy-coded body with 0xff bytes; the demuxer accepts the container, the decoder fails
    local last = 0
    local pos = 1
    while true do
      local p = good:find("VP8L", pos, true)
      if not p then break end
      last, pos = p, p + 1
    end
    assert(last > 0)
    local size = string.unpack("<I4", good, last + 4)
    local body0 = last + 8 + 5            -- after the 5-byte VP8L header (signature, size, flags)
    local bad = good:sub(1, body0 - 1) .. string.rep("\255", size - 5) .. good:sub(body0 + size - 5)
    assert.equals(#good, #bad)
    refused(bad, "<bytes>: frame 5 of 5 cannot be decoded")
    -- a frame asked for before the corrupt one still decodes: K = 2 stops after frame 4 (index 3)
    local t = core.webp_read_bytes(bad, { channels = 4, frames = 2 })
    assert.same({ 2, 12, 16, 4 }, core.shape(t))
  end)

  it("survives byte flips: a result of the announced shape, or a reason", function()
    local seed = 12345
    local function nextint(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n end
    local ok_count, bad_count = 0, 0
    for _ = 1, 400 do
      local p = 13 + nextint(#good - 12)
      local v = nextint(256)
      local s = good:sub(1, p - 1) .. string.char(v) .. good:sub(p + 1)
      local t, info = core.webp_read_bytes(s, { channels = 4, max_pixels = 1 << 20 })
      if t then
        ok_count = ok_count + 1
        local sh = core.shape(t)
        assert.same({ info.out_frames, info.height, info.width, 4 }, sh)
      else
        bad_count = bad_count + 1
        assert(info:match("^<bytes>: %S"), info)
      end
    end
    assert.equals(400, ok_count + bad_count)
    assert(bad_count > 0, "no flip was refused")
  end)

  it("applies the caps before allocating, naming them", function()
    local s = good  -- 16 x 12 canvas, 5 frames
    local _, m1 = core.webp_read_bytes(s, { max_pixels = 191 })
    assert.equals("<bytes>: canvas 16 x 12 = 192 pixels is above the cap of 191", m1)
    local _, m2 = core.webp_read_bytes(s, { max_frames = 4 })
    assert.equals("<bytes>: 5 frames, above the cap of 4", m2)
    local _, m3 = core.webp_read_bytes(s, { max_out_bytes = 5 * 192 * 3 - 1 })
    assert.equals("<bytes>: 5 frames of 16 x 12 x 3 = 2880 bytes, above the cap of 2879", m3)
    assert.is_not_nil((core.webp_read_bytes(s, { max_out_bytes = 2880 })))
    local _, m4 = core.webp_read_bytes(s, { max_work = 5 * 192 - 1 })
    assert.equals("<bytes>: decoding 5 frames of 192 pixels is above the work cap of 959 pixel-frames", m4)
    -- with K = 2 only frames 0..3 are decoded (4 * 192 = 768 pixel-frames)
    assert.is_not_nil((core.webp_read_bytes(s, { frames = 2, max_work = 768 })))
    -- a canvas that VP8X announces as 16384 x 16384 (stored as size - 1 in 24 bits) is refused by
    -- the default cap (16 Mi pixels) before libwebp allocates its two canvases (2 GiB)
    local vp8x = good:find("VP8X", 1, true)
    local huge = good:sub(1, vp8x + 11) .. string.pack("<I3I3", 16383, 16383) .. good:sub(vp8x + 18)
    assert.equals(#good, #huge)
    local _, m5 = core.webp_read_bytes(huge)
    assert.equals("<bytes>: canvas 16384 x 16384 = 268435456 pixels is above the cap of 16777216", m5)
  end)

  it("refuses files that are not WebP, missing files and folders, naming them", function()
    local _, m = core.webp_read("spec/fixtures/webp/manifest.lua")
    assert.equals("spec/fixtures/webp/manifest.lua: not a WebP file (no RIFF....WEBP header)", m)
    _, m = core.webp_read("spec/fixtures/webp/nope.webp")
    assert.equals("spec/fixtures/webp/nope.webp: cannot open: No such file or directory", m)
    _, m = core.webp_read("spec/fixtures/webp")
    assert(m:find("^spec/fixtures/webp: .*not a regular file") or m:find("folder", 1, true), m)
    _, m = core.webp_read(DIR .. "anim_lossy.webp", { max_file_bytes = 100 })
    assert(m:find("anim_lossy.webp", 1, true), m)
    refused("RIFF\0\0\0\0WAVEfmt ", "not a WebP file")
    refused("", "not a WebP file")
  end)

  it("raises on wrong arguments, naming the function and option", function()
    H.fails_with(function() core.webp_read(DIR .. "anim_lossy.webp", { channels = 1 }) end, "webp_read", "channels")
    H.fails_with(function() core.webp_read(DIR .. "anim_lossy.webp", { frames = -1 }) end, "webp_read", "frames")
    H.fails_with(function() core.webp_read(DIR .. "anim_lossy.webp", { bg = { 1, 2 } }) end, "webp_read", "bg")
    H.fails_with(function() core.webp_read(DIR .. "anim_lossy.webp", { bg = { 1, 2, 300 } }) end, "webp_read", "bg")
    H.fails_with(function() core.webp_read_bytes(DIR, { frames = "x" }) end, "webp_read_bytes", "frames")
    H.fails_with(function() core.webp_read(DIR .. "anim_lossy.webp", 5) end)
  end)
end)

describe("webp_read_list: many files, decoded side by side", function()
  it("gives webp_read's frames for each file, at 1 and 2 threads, and false with the message for a bad one", function()
    local paths = {}
    for _, name in ipairs(NAMES) do paths[#paths + 1] = DIR .. name .. ".webp" end
    local bad = { DIR .. "nope.webp", DIR .. "manifest.lua" }
    local all = { bad[1] }
    for _, p in ipairs(paths) do all[#all + 1] = p end
    all[#all + 1] = bad[2]
    local before = oe.get_num_threads()
    finally(function() oe.set_num_threads(before) end)
    for _, threads in ipairs({ 1, 2 }) do
      oe.set_num_threads(threads)
      for _, opts in ipairs({ { frames = 3 }, { channels = 4 } }) do
        local got, msgs = core.webp_read_list(all, opts)
        assert.equals(#all, #got)
        assert.is_false(got[1])
        assert.equals(select(2, core.webp_read(bad[1], opts)), msgs[1])
        assert.is_false(got[#all])
        assert.equals(select(2, core.webp_read(bad[2], opts)), msgs[#all])
        for i, p in ipairs(paths) do
          local want = assert(core.webp_read(p, opts))
          assert.is_false(msgs[i + 1])
          assert.same(core.shape(want), core.shape(got[i + 1]), p)
          assert.equals(core.to_bytes(want), core.to_bytes(got[i + 1]), p .. ": not the same bytes")
        end
      end
    end
    local got, msgs = core.webp_read_list({})
    assert.same({}, got)
    assert.same({}, msgs)
  end)

  it("raises on wrong arguments, naming the function", function()
    H.fails_with(function() core.webp_read_list(DIR .. "anim_lossy.webp") end)
    H.fails_with(function() core.webp_read_list({ DIR .. "anim_lossy.webp", 5 }) end, "webp_read_list", "path 2 must be a string")
    H.fails_with(function() core.webp_read_list({}, { frames = -1 }) end, "webp_read_list", "frames")
  end)
end)
