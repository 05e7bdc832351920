-- VideoMAE (csrc/frozen/videomae.c, encoders/videomae.lua) and the step-2 video file
-- (oe.pretrained.load, m:embed_videos) against the PyTorch composition of
-- tools/videomae_fixtures.py: random weights, hidden 32, 2 layers, 4 heads, intermediate 64,
-- 4 frames of 32x32, tubelet 2, patch 8 (32 tokens); the spec itself needs no Python.
--
-- Tolerance 1e-4 (absolute) on outputs of magnitude up to ~3 (they leave LayerNorms with random
-- gains 1 +- 0.2 and biases +- 0.2). Both sides compute float32 in another order; the longest dot
-- product is the tubelet projection, K = 384 terms with sum|a b| about 20 (pixels in [-2, 2.6]
-- after the ImageNet normalisation, weights N(0, 1/384)): rounding of random sign gives about
-- sqrt(K) u 20 = 2.5e-5, and each LayerNorm rescales by its 1/std (~1). Measured: 2e-6 to 3e-6.
-- A wrong tubelet order, position table, bias, eps or head split moves outputs by 0.01 to 1.
-- Preprocessed pixels are compared within 1e-5 (PIL's bilinear rounding to uint8 is exact on
-- both sides, then one multiply-add in float32). The MP4s are lossless RGB (libx264rgb -qp 0),
-- so the decoded frames are exactly the frames the tool wrote.
local oe = require "oneencoder"
local core = oe.core
local H = require "helpers"

local DIR = "spec/fixtures/videomae/"
local A = DIR .. "model_a"
local B = DIR .. "model_b"
local CLIP, SHORT = DIR .. "clip.mp4", DIR .. "short.mp4"
local STEP2 = DIR .. "step2_video.safetensors"
local TOL = 1e-4
local ref = assert(oe.load(DIR .. "expected.safetensors"))

local function pixels(n, salt)
  local t = {}
  for i = 0, n - 1 do
    local v = ((i + salt) * 2654435761) % 4294967296
    t[i + 1] = ((v >> 8) % 1000) / 500.0 - 1.0
  end
  return oe.tensor(t)
end
local X = core.reshape(pixels(3 * 4 * 3 * 32 * 32, 7), { 3, 4, 3, 32, 32 })

local function create(opts)
  local enc, err = oe.encoders.create("videomae", opts)
  assert(enc, err)
  return enc
end

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p '" .. d .. "'"))
  return d
end

local function copy_file(src, dst)
  local f = assert(io.open(src, "rb"))
  local s = f:read("a")
  f:close()
  local g = assert(io.open(dst, "wb"))
  g:write(s)
  g:close()
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function has(msg, part)
  assert(type(msg) == "string" and msg:find(part, 1, true), "expected '" .. part .. "' in: " .. tostring(msg))
end

local function err_of(f, ...)
  local ok, e = pcall(f, ...)
  assert(not ok, "expected an error")
  return tostring(e)
end

local function row(t, i) return core.narrow(t, 1, i, 1) end

describe("videomae: the runtime against the PyTorch composition", function()
  it("gives last_hidden_state after the final LayerNorm, config.json read (eps 0.01)", function()
    local enc = create({ path = A })
    local c = enc.config
    assert.same({ 32, 2, 4, 64, 8, 2, 3, 4, 32, 32 },
      { c.dim, c.depth, c.heads, c.mlp, c.patch, c.tubelet, c.channels, c.frames, c.image_size, c.tokens })
    assert.same({ true, false, false }, { c.qkv_bias, c.mean_pooling, c.fc_norm })
    H.near(c.eps, 0.01, 1e-15, "eps from config.json")
    assert.equal(32, enc.dim)
    -- 3 videos on 2 threads: one video per thread, then one alone with split products
    local f, lengths = enc:encode(X)
    assert.same({ 32, 32, 32 }, lengths)
    H.allclose(f, ref.pixels_out_a, TOL, "model_a, batch of 3")
    H.allclose(enc:forward(row(X, 2)), row(ref.pixels_out_a, 2), TOL, "batch of 1")
    local n = oe.get_num_threads()
    oe.set_num_threads(1)
    H.allclose(enc:forward(X), ref.pixels_out_a, TOL, "one thread")
    oe.set_num_threads(n)
  end)

  it("computes the sinusoid position table (not loaded)", function()
    local enc = create({ path = A })
    H.allclose(core.videomae_positions(enc.model), core.reshape(ref.positions, { 32, 32 }), 1e-6, "positions")
  end)

  it("uses the config's eps: without config.json (eps 1e-12) the outputs differ", function()
    local enc = create({ path = A, config = false, heads = 4, frames = 4, image_size = 32 })
    H.near(enc.config.eps, 1e-12, 1e-20, "default eps")
    local d = (enc:forward(X) - ref.pixels_out_a):abs():max():item()
    assert(d > 1e-2, "eps has no effect: " .. d)
  end)

  it("reads a classification file: videomae. prefix, no qkv bias, mean pooling with fc_norm", function()
    local enc = create({ path = B })
    assert.equal("videomae.", enc.settings.prefix)
    assert.same({ false, true, true }, { enc.config.qkv_bias, enc.config.mean_pooling, enc.config.fc_norm })
    H.near(enc.config.fc_norm_eps, 1e-5, 1e-15, "fc_norm eps (nn.LayerNorm default)")
    H.allclose(enc:forward(X), ref.pixels_out_b, TOL, "model_b hidden (no final norm)")
    H.allclose(enc:pooled(X), ref.pixels_pooled_b, TOL, "model_b pooled")
    local plain = create({ path = B, fc_norm = false })
    assert.is_false(plain.config.fc_norm)
    has(err_of(plain.pooled, plain, X), "no fc_norm")
  end)

  it("uses float32 weights in place", function()
    local w = assert(core.frozen_open(A .. "/model.safetensors"))
    create({ weights = w, config = A .. "/config.json", preprocessor = false })
    local info = core.frozen_info(w)
    assert.same({ info.tensors, 0 }, { info.inplace, info.converted })
  end)
end)

describe("videomae: frames from video files", function()
  it("decodes the lossless MP4 exactly and preprocesses as VideoMAEImageProcessor", function()
    local enc = create({ path = A, sampling = "uniform" })
    local clip, info = assert(enc:load(CLIP))
    assert.same({ 0, 2, 4, 6 }, info.indices)
    assert.same({ 4, 40, 48, 3 }, core.shape(clip))
    local all = assert(oe.video.sample(CLIP, { indices = { 0, 1, 2, 3, 4, 5, 6 }, format = "uint8" }))
    local sum = 0
    for _, v in ipairs(core.totable(core.reshape(all, { -1 }))) do sum = sum + v end
    assert.equal(ref.frames_sum:item(), sum)
    H.allclose(enc:preprocess_clip(clip), core.reshape(ref.uniform_pixels, { 1, 4, 3, 32, 32 }), 1e-5, "pixel values")
    H.allclose(enc:encode({ clip }), ref.uniform_out_a, TOL, "uniform clip")
  end)

  it("samples as the original: a random window of consecutive frames per access", function()
    local enc = create({ path = A, seed = 5 })
    local starts, seen = {}, {}
    for i = 1, 12 do
      local clip, info = assert(enc:load(CLIP))
      local s = info.indices[1]
      assert.same({ s, s + 1, s + 2, s + 3 }, info.indices)
      assert(s >= 0 and s <= 2, "start " .. s .. " outside 0..N-T-1 = 0..2")
      starts[i], seen[s] = s, true
      if i <= 3 then H.allclose(enc:encode({ clip }), row(ref.window_out_a, s + 1), TOL, "window at " .. s) end
    end
    local distinct = 0
    for _ in pairs(seen) do distinct = distinct + 1 end
    assert(distinct >= 2, "every access drew the same window")
    local again = create({ path = A, seed = 5 })
    for i = 1, 12 do assert.equal(starts[i], select(2, again:load(CLIP)).indices[1]) end
  end)

  it("center sampling takes the middle window", function()
    local enc = create({ path = A, sampling = "center" })
    local clip, info = assert(enc:load(CLIP))
    assert.same({ 1, 2, 3, 4 }, info.indices)
    H.allclose(enc:encode({ clip }), row(ref.window_out_a, 2), TOL, "center window")
  end)

  it("states the original's rule for short videos; uniform sampling takes them", function()
    local enc = create({ path = A })
    local clip, msg = enc:load(SHORT)
    assert.is_nil(clip)
    has(msg, SHORT .. ": 4 frames")
    has(msg, "needs at least 5")
    local c2, m2 = create({ path = A, sampling = "center" }):load(SHORT)
    assert(c2, m2)
    local u, info = create({ path = A, sampling = "uniform" }):load(SHORT)
    assert(u)
    assert.same({ 0, 1, 2, 3 }, info.indices)
  end)

  it("encode_files and extract: bad files named or skipped, features cached", function()
    local enc = create({ path = A, sampling = "uniform" })
    local d = tmpdir()
    write(d .. "/not_a_video.mp4", "hello")
    local paths = { CLIP, d .. "/missing.mp4", d .. "/not_a_video.mp4", CLIP }
    local f, l, kept, bad = oe.encoders.encode_files(enc, paths, { on_error = "skip" })
    assert.same({ 1, 4 }, kept)
    assert.same({ 2, 3 }, { bad[1].index, bad[2].index })
    H.allclose(row(f, 1), ref.uniform_out_a, TOL, "encode_files")
    assert.same({ 32, 32 }, l)
    local set, info = assert(oe.pretrained.extract(enc, paths, { cache = d .. "/cache", on_error = "skip" }))
    assert.same({ 1, 4 }, info.kept)
    assert.same({ 2, 3 }, { info.bad[1].index, info.bad[2].index })
    has(info.bad[1].reason, "no such file")
    assert.equal(1, info.stats.computed)
    H.allclose(set:batch({ 2 }), ref.uniform_out_a, TOL, "extracted")
    local _, info2 = assert(oe.pretrained.extract(enc, { CLIP }, { cache = d .. "/cache" }))
    assert.same({ 0, 1 }, { info2.stats.computed, info2.stats.hits })
    local none, msg = oe.pretrained.extract(enc, { d .. "/not_a_video.mp4" })
    assert.is_nil(none)
    has(msg, "not_a_video.mp4")
    os.execute("rm -rf '" .. d .. "'")
  end)
end)

describe("videomae: bad input", function()
  local w_a = assert(oe.load(A .. "/model.safetensors"))

  local function variant(d, edit)
    local t = {}
    for k, v in pairs(w_a) do t[k] = v end
    edit(t)
    assert(oe.save(d .. "/model.safetensors", t))
    copy_file(A .. "/config.json", d .. "/config.json")
    return d
  end

  it("refuses folders, files and configs that do not hold a VideoMAE", function()
    local d = tmpdir()
    local enc, msg = oe.encoders.create("videomae", { path = d .. "/nope" })
    assert.is_nil(enc); has(msg, "no such folder")
    enc, msg = oe.encoders.create("videomae", { path = d })
    assert.is_nil(enc); has(msg, "no model.safetensors")
    enc, msg = oe.encoders.create("videomae", { path = A .. "/model.safetensors" })
    assert.is_nil(enc); has(msg, "names a file")
    -- a ViT file is not a VideoMAE
    enc, msg = oe.encoders.create("videomae", { weights = "spec/fixtures/frozen/vit_timm.safetensors", config = false })
    assert.is_nil(enc); has(msg, "no VideoMAE under the prefix")
    -- config.json disagreeing with the weights, or another model
    copy_file(A .. "/model.safetensors", d .. "/model.safetensors")
    -- refused(file, content, text): with that file written into d, the folder is refused, the
    -- message containing text
    local function refused(file, content, text)
      write(d .. "/" .. file, content)
      local e, m = oe.encoders.create("videomae", { path = d })
      assert.is_nil(e); has(m, text)
    end
    refused("config.json", '{"model_type": "videomae", "hidden_size": 64}', "\"hidden_size\" = 64 disagrees with the weights")
    refused("config.json", '{"model_type": "vit"}', "model_type is \"vit\"")
    refused("config.json", '{"use_mean_pooling": true, "num_attention_heads": 4}', "use_mean_pooling")
    refused("config.json", '{"num_attention_heads": 5}', "not divisible by 5 heads")
    refused("config.json", "{not json", d .. "/config.json")
    -- preprocessor_config.json: malformed, or a crop the model does not take
    copy_file(A .. "/config.json", d .. "/config.json")
    refused("preprocessor_config.json", '{"size": {"shortest_edge": 32}, "crop_size": ', "preprocessor_config.json")
    refused("preprocessor_config.json", '{"crop_size": {"height": 64, "width": 64}}', "crop_size 64x64, the model takes 32x32")
    refused("preprocessor_config.json", '{"resample": 0}', "\"resample\" = 0 is not supported")
    refused("preprocessor_config.json", string.rep("[", 200) .. string.rep("]", 200), "nesting too deep")
    refused("preprocessor_config.json", "[1, 2]", "not a JSON object")
    refused("preprocessor_config.json", '{"image_std": [0.2, 0, 0.2]}', "\"image_std\" must be a positive number")
    -- the legacy form (videomae-base's own file: "size": 224, no crop_size) reads as
    -- shortest_edge and a square crop of the model's size
    write(d .. "/preprocessor_config.json", '{"size": 32, "resample": 2, "feature_extractor_type": "VideoMAEFeatureExtractor"}')
    enc = assert(oe.encoders.create("videomae", { path = d, sampling = "uniform" }))
    assert.same({ 32, { 32, 32 } }, { enc.pre.shortest_edge, enc.pre.crop })
    H.allclose(enc:encode({ (enc:load(CLIP)) }), ref.uniform_out_a, TOL, "legacy preprocessor_config.json")
    -- a fixed resize smaller than the crop fails when the frames come, naming both sizes
    write(d .. "/preprocessor_config.json", '{"size": {"height": 16, "width": 16}, "crop_size": 32}')
    enc = assert(oe.encoders.create("videomae", { path = d, sampling = "uniform" }))
    has(err_of(enc.encode, enc, { (enc:load(CLIP)) }), "frame resized to 16x16 is smaller than the 32x32 crop")
    os.execute("rm -rf '" .. d .. "'")
  end)

  it("names missing, mis-shaped and unexpected keys", function()
    local d = tmpdir()
    variant(d, function(t) t["encoder.layer.1.attention.attention.v_bias"] = nil end)
    local enc, msg = oe.encoders.create("videomae", { path = d })
    assert.is_nil(enc); has(msg, "encoder.layer.1.attention.attention.v_bias")
    variant(d, function(t) t["encoder.layer.0.output.dense.weight"] = oe.zeros({ 32, 63 }) end)
    enc, msg = oe.encoders.create("videomae", { path = d })
    assert.is_nil(enc); has(msg, "encoder.layer.0.output.dense.weight' has shape (32, 63), expected (32, 64)")
    variant(d, function(t) t["encoder.layer.0.attention.attention.k_bias"] = oe.zeros({ 32 }) end)
    enc, msg = oe.encoders.create("videomae", { path = d })
    assert.is_nil(enc); has(msg, "encoder.layer.0.attention.attention.k_bias")
    variant(d, function(t) t["embeddings.patch_embeddings.projection.weight"] = oe.zeros({ 32, 3, 2, 8, 7 }) end)
    enc, msg = oe.encoders.create("videomae", { path = d })
    assert.is_nil(enc); has(msg, "expected (D, C, t, P, P)")
    os.execute("rm -rf '" .. d .. "'")
  end)

  it("refuses inputs of the wrong shape or type, and bad options", function()
    local enc = create({ path = A })
    has(err_of(enc.forward, enc, core.narrow(X, 2, 1, 2)), "videos of 2 frames, the model takes 4")
    has(err_of(enc.forward, enc, oe.zeros({ 1, 4, 3, 16, 16 })), "frames of 16x16, the model takes 32x32")
    has(err_of(enc.forward, enc, oe.zeros({ 1, 4, 1, 32, 32 })), "1 channels")
    has(err_of(enc.forward, enc, oe.zeros({ 4, 3, 32, 32 })), "must be (B, T, C, H, W)")
    has(err_of(enc.forward, enc, oe.zeros({ 0, 4, 3, 32, 32 })), "empty batch")
    has(err_of(enc.encode, enc, {}), "empty batch")
    has(err_of(enc.encode, enc, { oe.zeros({ 3, 40, 48, 3 }, "uint8") }), "item 1: uint8 clips must be (4, H, W, 3)")
    has(err_of(enc.encode, enc, { "a.mp4" }), "expected a video clip tensor")
    has(err_of(enc.encode, enc, { oe.zeros({ 4, 3, 32, 32 }, "int32") }), "clips must be uint8")
    has(err_of(oe.encoders.create, "videomae", { path = A, sampling = "random" }), "option 'sampling'")
    has(err_of(oe.encoders.create, "videomae", { path = A, weights = "x" }), "give one of 'path'")
    has(err_of(oe.encoders.create, "videomae", { path = A, seed = 1, generator = oe.Generator(1) }), "not both")
    has(err_of(oe.encoders.create, "videomae", { path = A, frames = 0 }), "option 'frames'")
    has(err_of(enc.load, enc, 5), "path must be a string")
  end)

  it("reports a weights file truncated after opening instead of faulting", function()
    local d = tmpdir()
    copy_file(A .. "/model.safetensors", d .. "/model.safetensors")
    copy_file(A .. "/config.json", d .. "/config.json")
    local enc = create({ path = d })
    local f = assert(io.open(d .. "/model.safetensors", "r+b"))
    local size = f:seek("end")
    f:close()
    assert(os.execute(string.format("truncate -s %d '%s'", size // 2, d .. "/model.safetensors")))
    local ok, e = pcall(enc.forward, enc, X)
    assert.is_false(ok)
    has(tostring(e), "model.safetensors")
    os.execute("rm -rf '" .. d .. "'")
  end)
end)

describe("videomae: the released step-2 video file layout end to end", function()
  -- the fixture's frozen encoders are tiny (ViT and BERT with 2 heads, VideoMAE with 4 heads,
  -- 4 frames of 32 and model_a's eps 0.01): the released file needs none of these options
  local OPTS = { vit = { heads = 2 }, bert = { heads = 2 }, video = { heads = 4, frames = 4, image_size = 32, eps = 0.01 } }

  local function load(video)
    local o = { vit = OPTS.vit, bert = OPTS.bert, video = {} }
    for k, v in pairs(OPTS.video) do o.video[k] = v end
    for k, v in pairs(video or {}) do o.video[k] = v end
    local m, rep = oe.pretrained.load(STEP2, o)
    assert(m, rep)
    return m, rep
  end

  it("loads VideoMAE from video_encoder.pretrained_encoder.* and embeds as the original", function()
    local m, rep = load({ sampling = "uniform" })
    assert(rep.encoders.video and rep.encoders.video:find("^videomae:"), tostring(rep.encoders.video))
    assert.is_nil(rep.unattached.video)
    assert.equal("videomae", m:encoder("video").name)
    local e = assert(m:embed_videos({ CLIP, CLIP }))
    assert.same({ 2, 16 }, core.shape(e))
    H.allclose(e, core.cat({ ref.step2_uniform, ref.step2_uniform }, 1), TOL, "step-2 uniform")
  end)

  it("the original's random window, reproduced for the window drawn", function()
    local m = load({ seed = 11 })
    for _ = 1, 3 do
      local enc = m:encoder("video")
      local clip, info = assert(enc:load(CLIP))
      local s = info.indices[1]
      local e = assert(m:embed_videos({ clip }))
      H.allclose(e, row(ref.step2_windows, s + 1), TOL, "step-2 window " .. s)
    end
  end)

  it("names short and unreadable videos, or skips them", function()
    local m = load()
    local e, msg = m:embed_videos({ CLIP, SHORT })
    assert.is_nil(e)
    has(msg, "embed_videos: item 2")
    has(msg, "needs at least 5")
    local e2, kept, bad = m:embed_videos({ SHORT, CLIP, DIR .. "missing.mp4" }, { on_error = "skip" })
    assert.same({ 1, 16 }, core.shape(e2))
    assert.same({ 2 }, kept)
    assert.same({ 1, 3 }, { bad[1].index, bad[2].index })
  end)

  it("refuses a step-2 file whose VideoMAE does not fit the options", function()
    local m, msg = oe.pretrained.load(STEP2, { vit = OPTS.vit, bert = OPTS.bert })
    assert.is_nil(m)
    has(msg, "not divisible by 12 heads")
    has(msg, "the videomae encoder of modality 'video'")
  end)
end)
