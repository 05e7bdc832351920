-- image_spec.lua: decoding, resizing, normalisation, encoding and bad input.
-- References in spec/fixtures/image come from tools/gen_image_fixtures.py
-- (Pillow 9.4 and OpenCV 4.6 from Debian): PIL's own decode of each JPEG,
-- cv2.resize INTER_LINEAR and PIL resize (BICUBIC, BILINEAR) outputs.
-- Measured when written: every uint8 resize fixture and every JPEG decode
-- matches exactly (max abs diff 0). The specs assert the contract (<= 1 level
-- on uint8 resizes, 0 on decodes) plus that at least 99% of resized pixels are
-- exact, so a kernel that drifts shows up.
local oe = require "oneencoder"
local image = require "oneencoder.image"
local core = require "oneencoder.core"

local F = "spec/fixtures/image/"

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function spit(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- "OERAW <dtype> <d1> <d2> ...\n" + raw bytes
local function raw(name)
  local s = slurp(F .. name)
  local nl = s:find("\n", 1, true)
  local parts = {}
  for w in s:sub(1, nl - 1):gmatch("%S+") do parts[#parts + 1] = w end
  assert(parts[1] == "OERAW", name .. " is not a raw fixture")
  local shape = {}
  for i = 3, #parts do shape[#shape + 1] = tonumber(parts[i]) end
  return { dtype = parts[2], shape = shape, data = s:sub(nl + 1) }
end

local function shape_eq(t, shape)
  local s = core.shape(t)
  assert.are.same(shape, s)
end

-- compare a uint8 tensor with raw bytes: max abs diff, fraction exact
local function cmp_u8(t, data)
  local b = core.to_bytes(t)
  assert.are.equal(#data, #b)
  local m, exact = 0, 0
  for i = 1, #b do
    local d = math.abs(b:byte(i) - data:byte(i))
    if d > m then m = d end
    if d == 0 then exact = exact + 1 end
  end
  return m, exact / #b
end

local function cmp_f32(t, data)
  local b = core.to_bytes(t)
  assert.are.equal(#data, #b)
  local m = 0
  for i = 1, #b, 4 do
    local d = math.abs(string.unpack("<f", b, i) - string.unpack("<f", data, i))
    if d > m then m = d end
  end
  return m
end

local function u8_tensor(bytes, shape) return core.from_bytes(bytes, "uint8", shape) end

local function tmpdir()
  local p = io.popen("mktemp -d")
  local d = p:read("l")
  p:close()
  return d
end

local function listdir(d)
  local p = io.popen("ls -A '" .. d .. "'")
  local out = {}
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

describe("image decoding", function()
  it("decodes JPEGs exactly as PIL does (baseline 4:2:0 and 4:4:4, progressive, grayscale, CMYK)", function()
    for _, n in ipairs { "baseline", "baseline444", "progressive", "gray", "cmyk" } do
      local ref = raw(n .. ".raw")
      local t = assert(image.load(F .. n .. ".jpg"))
      assert.are.equal("uint8", core.dtype(t))
      shape_eq(t, ref.shape)
      local m = cmp_u8(t, ref.data)
      assert.are.equal(0, m, n)
    end
  end)

  it("applies EXIF orientation 1..8 (little and big endian) as PIL's exif_transpose", function()
    for o = 1, 8 do
      local ref = raw("orient" .. o .. ".raw")
      local t = assert(image.load(F .. "orient" .. o .. ".jpg"))
      shape_eq(t, ref.shape)
      assert.are.equal(0, (cmp_u8(t, ref.data)), "orientation " .. o)
      -- the red corner block of the source lands where the transform puts it
      local s = core.shape(t)
      if o >= 5 then assert.are.same({ 21, 13, 3 }, s) else assert.are.same({ 13, 21, 3 }, s) end
    end
    local ref = raw("orient6_be.raw")
    assert.are.equal(0, (cmp_u8(assert(image.load(F .. "orient6_be.jpg")), ref.data)))
    -- exif = false keeps the stored orientation
    local t = image.load(F .. "orient6.jpg", { exif = false })
    assert.are.equal(0, (cmp_u8(t, raw("orient1.raw").data)))
  end)

  it("decodes PNG 8-bit RGB, palette and 16-bit exactly", function()
    for _, n in ipairs { "rgb8", "palette", "rgb16" } do
      local ref = raw(n .. ".raw")
      local t = assert(image.load(F .. n .. ".png"))
      shape_eq(t, ref.shape)
      assert.are.equal(0, (cmp_u8(t, ref.data)), n)
    end
  end)

  it("expands gray and 16-bit gray PNGs to three equal channels (16-bit keeps the high byte)", function()
    for _, n in ipairs { "gray8", "gray16" } do
      local ref = raw(n .. ".raw")
      local t = assert(image.load(F .. n .. ".png"))
      local h, w = ref.shape[1], ref.shape[2]
      shape_eq(t, { h, w, 3 })
      local b = core.to_bytes(t)
      for i = 1, h * w do
        local g = ref.data:byte(i)
        assert.are.equal(g, b:byte(3 * i - 2))
        assert.are.equal(g, b:byte(3 * i - 1))
        assert.are.equal(g, b:byte(3 * i))
      end
    end
  end)

  it("composites alpha on white, on a chosen background, or keeps 4 channels", function()
    local ref = raw("rgba8.raw")
    local h, w = ref.shape[1], ref.shape[2]
    local keep = assert(image.load(F .. "rgba8.png", { keep_alpha = true }))
    shape_eq(keep, { h, w, 4 })
    assert.are.equal(0, (cmp_u8(keep, ref.data)))
    for _, bg in ipairs { { 255, 255, 255 }, { 10, 200, 30 } } do
      local t = assert(image.load(F .. "rgba8.png", bg[1] ~= 255 and { background = bg } or nil))
      shape_eq(t, { h, w, 3 })
      local b = core.to_bytes(t)
      for i = 0, h * w - 1 do
        local a = ref.data:byte(4 * i + 4)
        for k = 1, 3 do
          local want = (ref.data:byte(4 * i + k) * a + bg[k] * (255 - a) + 127) // 255
          assert.are.equal(want, b:byte(3 * i + k))
        end
      end
    end
    -- first row is fully transparent, second fully opaque
    local t = image.load(F .. "rgba8.png", { background = { 1, 2, 3 } })
    local b = core.to_bytes(t)
    assert.are.same({ 1, 2, 3 }, { b:byte(1, 3) })
    assert.are.same({ ref.data:byte(4 * w + 1, 4 * w + 3) }, { b:byte(3 * w + 1, 3 * w + 3) })
    -- gray + alpha kept: (g, g, g, a)
    local la = raw("gray_alpha8.raw")
    local ga = assert(image.load(F .. "gray_alpha8.png", { keep_alpha = true }))
    local gb = core.to_bytes(ga)
    for i = 0, h * w - 1 do
      local g, a = la.data:byte(2 * i + 1), la.data:byte(2 * i + 2)
      assert.are.same({ g, g, g, a }, { gb:byte(4 * i + 1, 4 * i + 4) })
    end
    -- an opaque JPEG asked for 4 channels gets alpha 255
    local j4 = assert(image.load(F .. "baseline.jpg", { keep_alpha = true }))
    shape_eq(j4, { 27, 45, 4 })
    assert.are.equal(255, core.to_bytes(j4):byte(4))
  end)

  it("decodes from a byte string the same as from the path, by magic bytes not extension", function()
    for _, n in ipairs { "baseline.jpg", "rgba8.png", "png_named.jpg" } do
      local a = assert(image.load(F .. n))
      local b = assert(image.load(slurp(F .. n)))
      local c = assert(image.decode(slurp(F .. n)))
      assert.are.equal(core.to_bytes(a), core.to_bytes(b))
      assert.are.equal(core.to_bytes(a), core.to_bytes(c))
    end
    -- a PNG named .jpg is a PNG
    assert.are.equal(0, (cmp_u8(assert(image.load(F .. "png_named.jpg")), raw("rgb8.raw").data)))
    assert.are.equal("png", image.info(F .. "png_named.jpg").format)
    -- a JPEG named .png is a JPEG
    local d = tmpdir()
    spit(d .. "/photo.png", slurp(F .. "baseline.jpg"))
    assert.are.equal(0, (cmp_u8(assert(image.load(d .. "/photo.png")), raw("baseline.raw").data)))
    os.execute("rm -rf '" .. d .. "'")
  end)

  it("reports the header with image.info", function()
    local i = assert(image.info(F .. "orient6.jpg"))
    assert.are.same({ 13, 21, 21, 13, 3, "jpeg", 6 },
      { i.width, i.height, i.raw_width, i.raw_height, i.channels, i.format, i.orientation })
    local c = assert(image.info(F .. "cmyk.jpg"))
    assert.are.equal(4, c.channels)
    assert.is_true(c.cmyk)
    assert.are.equal(1, image.info(F .. "gray.jpg").channels)
    local p = assert(image.info(F .. "rgb16.png"))
    assert.are.same({ 14, 9, 3, 16, "png" }, { p.width, p.height, p.channels, p.bit_depth, p.format })
    assert.are.equal(4, image.info(F .. "rgba8.png").channels)
    assert.are.equal(2, image.info(F .. "gray_alpha8.png").channels)
    -- info reads only the header: a bomb is reported, not decoded
    assert.is_nil((image.info(F .. "bomb.png")))
    assert.are.equal(50000, image.info(F .. "bomb.png", { max_pixels = 3e9 }).width)
  end)

  it("decodes JPEGs at 1/2, 1/4, 1/8 scale with TurboJPEG", function()
    for _, d in ipairs { 1, 2, 4, 8 } do
      local t = assert(image.load(F .. "baseline.jpg", { scale = d }))
      shape_eq(t, { (27 + d - 1) // d, (45 + d - 1) // d, 3 })
    end
    -- orientation still applies on a scaled decode
    shape_eq(assert(image.load(F .. "orient6.jpg", { scale = 2 })), { 11, 7, 3 })
    assert.has_error(function() image.load(F .. "baseline.jpg", { scale = 3 }) end)
  end)
end)

describe("image resize", function()
  local src = assert(image.load(F .. "src_37x23.png"))
  local sizes = { { 17, 11 }, { 9, 6 }, { 61, 50 }, { 50, 13 }, { 37, 23 } }
  local methods = { { "bilinear_cv", "cv_linear" }, { "bicubic_pil", "pil_bicubic" }, { "bilinear_pil", "pil_bilinear" } }

  it("has the source fixture right", function()
    assert.are.equal(0, (cmp_u8(src, raw("src_37x23.raw").data)))
  end)

  for _, m in ipairs(methods) do
    it(m[1] .. " on uint8 matches the reference within 1 (down, up, non-integer, mixed)", function()
      for _, sz in ipairs(sizes) do
        local w, h = sz[1], sz[2]
        local ref = raw(("%s_%dx%d.raw"):format(m[2], w, h))
        local t = image.resize(src, h, w, { method = m[1] })
        shape_eq(t, { h, w, 3 })
        local mx, exact = cmp_u8(t, ref.data)
        assert.is_true(mx <= 1, ("%s %dx%d: max diff %d"):format(m[1], w, h, mx))
        assert.is_true(exact >= 0.99, ("%s %dx%d: only %.3f exact"):format(m[1], w, h, exact))
      end
    end)
  end

  it("bilinear_cv: exact 2x downscale (OpenCV's area path) and 40x30 -> 13x10", function()
    local s40 = assert(image.load(F .. "src_40x30.png"))
    for _, c in ipairs { { 15, 20, "cv_linear_40x30_to_20x15.raw" }, { 10, 13, "cv_linear_40x30_to_13x10.raw" } } do
      local mx = cmp_u8(image.resize(s40, c[1], c[2], "bilinear_cv"), raw(c[3]).data)
      assert.is_true(mx <= 1)
    end
  end)

  it("resizes float32 images like cv2 and PIL mode F within 1e-5", function()
    local srcf = oe.no_grad(function() return core.to(src, "float32") * (1 / 255) end)
    if srcf == nil then srcf = core.to(src, "float32") * (1 / 255) end
    for _, m in ipairs(methods) do
      for _, sz in ipairs { { 17, 11 }, { 45, 30 } } do
        local w, h = sz[1], sz[2]
        local ref = raw(("%s_f32_%dx%d.raw"):format(m[2], w, h))
        local t = image.resize(srcf, h, w, m[1])
        assert.are.equal("float32", core.dtype(t))
        local mx = cmp_f32(t, ref.data)
        assert.is_true(mx <= 1e-5, ("%s f32 %dx%d: %g"):format(m[1], w, h, mx))
      end
    end
  end)

  it("treats channels independently: an (H, W) image resizes like one channel", function()
    local b = core.to_bytes(src)
    local r = {}
    for i = 1, 23 * 37 do r[i] = string.char(b:byte(3 * i - 2)) end
    local gray = u8_tensor(table.concat(r), { 23, 37 })
    for _, m in ipairs(methods) do
      local g = image.resize(gray, 11, 17, m[1])
      shape_eq(g, { 11, 17 })
      local full = core.to_bytes(image.resize(src, 11, 17, m[1]))
      local gb = core.to_bytes(g)
      for i = 1, 11 * 17 do assert.are.equal(full:byte(3 * i - 2), gb:byte(i)) end
    end
  end)

  it("rejects bad sizes and methods", function()
    assert.has_error(function() image.resize(src, 0, 5) end)
    assert.has_error(function() image.resize(src, 5, 5, "lanczos") end)
    assert.has_error(function() image.resize(oe.zeros({ 2, 2, 2, 2 }), 5, 5) end)
  end)
end)

describe("image crop and normalisation", function()
  local src = assert(image.load(F .. "src_37x23.png"))

  it("center_crop takes the floor-centred window", function()
    local c = image.center_crop(src, 10, 20)
    shape_eq(c, { 10, 20, 3 })
    local sb, cb = core.to_bytes(src), core.to_bytes(c)
    local top, left = (23 - 10) // 2, (37 - 20) // 2
    for y = 0, 9 do
      for x = 0, 19 do
        for k = 1, 3 do
          assert.are.equal(sb:byte(((y + top) * 37 + x + left) * 3 + k), cb:byte((y * 20 + x) * 3 + k))
        end
      end
    end
    assert.has_error(function() image.center_crop(src, 24, 10) end)
  end)

  it("to_float with the imagenet preset matches numpy within 1e-5", function()
    local t = image.to_float(src, { normalize = "imagenet" })
    shape_eq(t, { 3, 23, 37 })
    assert.is_true(cmp_f32(t, raw("norm_imagenet.raw").data) <= 1e-5)
  end)

  it("to_float: half preset, custom mean/std, none, and float input", function()
    local px = u8_tensor(string.char(0, 255, 51, 102, 153, 204), { 1, 2, 3 })
    local h = image.to_float(px, { normalize = "half" })
    shape_eq(h, { 3, 1, 2 })
    local v = h:totable()
    assert.are.equal(-1, v[1][1][1])
    assert.is_true(math.abs(v[1][1][2] - (102 / 255 - 0.5) / 0.5) < 1e-6)
    assert.is_true(math.abs(v[2][1][1] - 1) < 1e-6)
    assert.is_true(math.abs(v[3][1][2] - (204 / 255 - 0.5) / 0.5) < 1e-6)
    local c = image.to_float(px, { normalize = { mean = { 0.1, 0.2, 0.3 }, std = { 2, 4, 0.5 } } }):totable()
    assert.is_true(math.abs(c[3][1][1] - (51 / 255 - 0.3) / 0.5) < 1e-6)
    local n = image.to_float(px):totable()
    assert.is_true(math.abs(n[2][1][1] - 1) < 1e-6)
    local f = image.to_float(core.to(px, "float32"), { normalize = "half", rescale = 1 / 255 }):totable()
    assert.is_true(math.abs(f[1][1][2] - v[1][1][2]) < 1e-6)
    assert.has_error(function() image.to_float(px, { normalize = "nope" }) end)
  end)
end)

describe("image.load_batch", function()
  local good = { F .. "baseline.jpg", F .. "rgba8.png", F .. "progressive.jpg", F .. "orient6.jpg", F .. "gray.jpg" }

  it("equals the per-image pipeline for every method and stacks (B, 3, H, W)", function()
    for _, m in ipairs(image.methods) do
      local opts = { size = { 12, 16 }, method = m, normalize = "imagenet" }
      local batch, bad = image.load_batch(good, opts)
      assert.are.equal(0, #bad)
      shape_eq(batch, { #good, 3, 12, 16 })
      local bb = core.to_bytes(batch)
      local per = 3 * 12 * 16 * 4
      for i, p in ipairs(good) do
        local one = image.preprocess(assert(image.load(p)), opts)
        assert.are.equal(core.to_bytes(one), bb:sub((i - 1) * per + 1, i * per), m .. " " .. p)
      end
    end
  end)

  it("supports shortest_edge + center crop (the HF/torchvision pipeline)", function()
    local opts = { size = { 8, 8 }, shortest_edge = 10, method = "bicubic_pil", normalize = "half" }
    local batch = image.load_batch({ F .. "baseline.jpg" }, opts)
    local img = image.load(F .. "baseline.jpg")                -- 27 x 45
    local r = image.resize(img, 10, 16, "bicubic_pil")         -- short side 10, long int(10 * 45 / 27) = 16
    local want = image.to_float(image.center_crop(r, 8, 8), { normalize = "half" })
    assert.are.equal(core.to_bytes(want), core.to_bytes(batch))
    assert.are.equal(core.to_bytes(want), core.to_bytes(image.preprocess(img, opts)))
  end)

  it("skip policy leaves bad items out and reports path and reason", function()
    local d = tmpdir()
    spit(d .. "/trunc.jpg", slurp(F .. "baseline.jpg"):sub(1, 700))
    local paths = { F .. "baseline.jpg", d .. "/missing.png", F .. "small.gif", F .. "rgb8.png", d .. "/trunc.jpg",
      F .. "bomb.png" }
    local batch, bad = image.load_batch(paths, { size = { 8, 8 }, on_error = "skip" })
    shape_eq(batch, { 2, 3, 8, 8 })
    assert.are.equal(4, #bad)
    assert.are.same({ 2, 3, 5, 6 }, { bad[1].index, bad[2].index, bad[3].index, bad[4].index })
    assert.are.equal(d .. "/missing.png", bad[1].path)
    assert.matches("cannot open", bad[1].reason)
    assert.matches("unsupported image format %(GIF%)", bad[2].reason)
    assert.matches("truncated", bad[3].reason)
    assert.matches("decompression bomb", bad[4].reason)
    -- the good ones are the right ones, in order
    local second = image.preprocess(image.load(F .. "rgb8.png"), { size = { 8, 8 } })
    assert.are.equal(core.to_bytes(second), core.to_bytes(batch):sub(3 * 8 * 8 * 4 + 1))
    -- all bad: an empty batch
    local none, bad2 = image.load_batch({ F .. "small.gif" }, { size = { 8, 8 }, on_error = "skip" })
    shape_eq(none, { 0, 3, 8, 8 })
    assert.are.equal(1, #bad2)
    os.execute("rm -rf '" .. d .. "'")
  end)

  it("fail policy raises on the first bad item, naming it", function()
    local ok, err = pcall(image.load_batch, { F .. "baseline.jpg", F .. "small.bmp", F .. "bomb.jpg" }, { size = { 8, 8 } })
    assert.is_false(ok)
    assert.matches("item 2", err)
    assert.matches("small%.bmp", err)
    assert.matches("BMP", err)
    assert.has_error(function() image.load_batch(good, { on_error = "ignore" }) end)
  end)

  it("fast mode decodes JPEGs at a DCT scale and stays close to the faithful result", function()
    local big = image.resize(assert(image.load(F .. "src_40x30.png")), 120, 160, "bicubic_pil")
    local d = tmpdir()
    assert(image.save(big, d .. "/big.jpg", { quality = 95 }))
    local opts = { size = { 16, 16 }, method = "bilinear_pil", normalize = "none" }
    local faithful = image.load_batch({ d .. "/big.jpg" }, opts)
    opts.fast = true
    local fast = image.load_batch({ d .. "/big.jpg" }, opts)
    shape_eq(fast, { 1, 3, 16, 16 })
    local a, b = core.to_bytes(faithful), core.to_bytes(fast)
    local sum, n, differ = 0, #a // 4, false
    for i = 1, #a, 4 do
      local x, y = string.unpack("<f", a, i), string.unpack("<f", b, i)
      sum = sum + math.abs(x - y)
      if x ~= y then differ = true end
    end
    assert.is_true(differ)             -- it did take the scaled path
    assert.is_true(sum / n < 0.03, "mean abs diff " .. sum / n)
    os.execute("rm -rf '" .. d .. "'")
  end)
end)

describe("image encoding", function()
  local src = assert(image.load(F .. "src_37x23.png"))

  it("PNG round-trips exactly (3 channels, 4 channels, 1 channel)", function()
    local s = image.encode(src, "png")
    assert.are.equal("\x89PNG", s:sub(1, 4))
    assert.are.equal(core.to_bytes(src), core.to_bytes(image.decode(s)))
    local rgba = assert(image.load(F .. "rgba8.png", { keep_alpha = true }))
    assert.are.equal(core.to_bytes(rgba), core.to_bytes(image.decode(image.encode(rgba, "png", { level = 9 }), { keep_alpha = true })))
    local g = u8_tensor(string.char(0, 50, 100, 150, 200, 250), { 2, 3 })
    local back = core.to_bytes(image.decode(image.encode(g, "png")))
    assert.are.equal(string.char(0, 0, 0, 50, 50, 50, 100, 100, 100, 150, 150, 150, 200, 200, 200, 250, 250, 250), back)
  end)

  it("JPEG encodes close to the source and quality changes the size", function()
    local hi = image.encode(src, "jpeg", { quality = 98, subsampling = "444" })
    local lo = image.encode(src, "jpeg", { quality = 20 })
    assert.are.equal("\xFF\xD8\xFF", hi:sub(1, 3))
    assert.is_true(#lo < #hi)
    local a, b = core.to_bytes(src), core.to_bytes(image.decode(hi))
    local sum = 0
    for i = 1, #a do sum = sum + math.abs(a:byte(i) - b:byte(i)) end
    assert.is_true(sum / #a < 3, "mean abs error " .. sum / #a)
    assert.has_error(function() image.encode(src, "jpeg", { quality = 0 }) end)
    assert.has_error(function() image.encode(core.to(src, "float32"), "png") end)
    assert.has_error(function() image.encode(src, "gif") end)
  end)

  it("save writes through a temporary file and leaves nothing else behind", function()
    local d = tmpdir()
    assert.is_true(image.save(src, d .. "/a.png"))
    assert.is_true(image.save(src, d .. "/b.JPG", { quality = 90 }))
    assert.is_true(image.save(src, d .. "/c.bin", { format = "png" }))
    assert.is_true(image.save(src, d .. "/a.png")) -- overwrite in place
    local files = listdir(d)
    table.sort(files)
    assert.are.same({ "a.png", "b.JPG", "c.bin" }, files)
    assert.are.equal(core.to_bytes(src), core.to_bytes(image.load(d .. "/a.png")))
    assert.are.equal("jpeg", image.info(d .. "/b.JPG").format)
    assert.has_error(function() image.save(src, d .. "/x.tiff") end)
    local ok, msg = image.save(src, d .. "/no/such/dir/x.png")
    assert.is_nil(ok)
    assert.matches("no/such/dir/x%.png", msg)
    assert.matches("No such file", msg)
    os.execute("rm -rf '" .. d .. "'")
  end)
end)

describe("image bad input", function()
  local d
  setup(function() d = tmpdir() end)
  teardown(function() os.execute("rm -rf '" .. d .. "'") end)

  -- load must give nil, msg with the path and the reason; strict must raise the same
  local function bad(path, reason, opts)
    local t, msg = image.load(path, opts)
    assert.is_nil(t)
    assert.is_string(msg)
    assert.is_truthy(msg:find(path, 1, true), "message does not name the path: " .. msg)
    assert.matches(reason, msg)
    local o = {}
    for k, v in pairs(opts or {}) do o[k] = v end
    o.strict = true
    local ok, err = pcall(image.load, path, o)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find(path, 1, true))
    assert.matches(reason, tostring(err))
    return msg
  end

  it("truncated JPEG and PNG", function()
    local j, p = slurp(F .. "baseline.jpg"), slurp(F .. "rgb8.png")
    spit(d .. "/tj.jpg", j:sub(1, #j // 2))
    spit(d .. "/tp.png", p:sub(1, #p - 40))
    spit(d .. "/th.png", p:sub(1, 20))
    spit(d .. "/tjh.jpg", j:sub(1, 100))
    bad(d .. "/tj.jpg", "truncated JPEG data")
    bad(d .. "/tp.png", "truncated PNG data")
    bad(d .. "/th.png", "truncated PNG")
    bad(d .. "/tjh.jpg", "truncated or corrupt JPEG header")
  end)

  it("corrupt JPEG header and corrupt PNG data", function()
    spit(d .. "/cj.jpg", "\xFF\xD8\xFF\xE0" .. string.rep("\x13\x37", 200))
    bad(d .. "/cj.jpg", "corrupt JPEG header")
    local p = slurp(F .. "rgb8.png")
    local i = p:find("IDAT", 1, true)
    local broken = p:sub(1, i + 9) .. string.char((p:byte(i + 10) + 1) % 256) .. p:sub(i + 11)
    spit(d .. "/cp.png", broken)
    bad(d .. "/cp.png", "corrupt PNG data")
    local bh = p:sub(1, 12) .. "IHDX" .. p:sub(17)
    spit(d .. "/ch.png", bh)
    bad(d .. "/ch.png", "corrupt PNG")
  end)

  it("empty and zero-size files", function()
    spit(d .. "/empty.jpg", "")
    bad(d .. "/empty.jpg", "empty file")
    bad(F .. "zero.png", "zero%-size image %(0 x 7%)")
  end)

  it("unsupported formats, whatever the extension", function()
    bad(F .. "small.gif", "unsupported image format %(GIF%)")
    bad(F .. "small.bmp", "unsupported image format %(BMP%)")
    spit(d .. "/text.png", "hello, not an image")
    bad(d .. "/text.png", "unrecognised image format")
    spit(d .. "/gif.jpg", slurp(F .. "small.gif"))
    bad(d .. "/gif.jpg", "GIF")
  end)

  it("decompression bombs are refused from the header, with a configurable cap", function()
    bad(F .. "bomb.png", "2500%.0 megapixels is above the cap of 100%.0 megapixels")
    bad(F .. "bomb.jpg", "decompression bomb")
    bad(F .. "baseline.jpg", "above the cap", { max_pixels = 27 * 45 - 1 })
    assert.is_not_nil(image.load(F .. "baseline.jpg", { max_pixels = 27 * 45 }))
  end)

  it("missing files and directories", function()
    bad(d .. "/nope.jpg", "cannot open: No such file")
    bad(d, "is a directory")
  end)

  it("byte strings are named <bytes> or by opts.name", function()
    local t, msg = image.decode("GIF89a\0\0\0\0")
    assert.is_nil(t)
    assert.matches("<bytes>: unsupported image format %(GIF%)", msg)
    local j = slurp(F .. "baseline.jpg")
    t, msg = image.load(j:sub(1, #j // 2), { name = "upload #7" })
    assert.is_nil(t)
    assert.matches("upload #7: truncated JPEG data", msg)
    assert.has_error(function() image.decode("", { strict = true }) end, "image.load: <bytes>: empty file (0 bytes)")
  end)

  it("survives random corruption of every fixture format (no crash; image or nil, msg)", function()
    local seed = 12345
    local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n end
    local files = { "baseline.jpg", "progressive.jpg", "cmyk.jpg", "orient6.jpg", "rgba8.png", "palette.png", "rgb16.png" }
    local decoded, refused = 0, 0
    for _, f in ipairs(files) do
      local s = slurp(F .. f)
      for _ = 1, 40 do
        local b = { s:byte(1, -1) }
        for _ = 1, 1 + rnd(6) do
          local pos = 1 + rnd(#b)
          b[pos] = rnd(256)
        end
        local cut = rnd(4) == 0 and rnd(#b) + 1 or #b
        local bytes = string.char(table.unpack(b, 1, cut))
        local t, msg = image.decode(bytes)
        if t then decoded = decoded + 1 else
          refused = refused + 1
          assert.matches("^image%.load: <bytes>: ", msg)
        end
        image.info(bytes, { bytes = true })
      end
    end
    assert.are.equal(280, decoded + refused)
    assert.is_true(refused > 0)
  end)
end)
