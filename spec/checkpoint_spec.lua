-- checkpoint_spec.lua: our checkpoint format, and import/export of the original code's layout
-- (checked against the PyTorch mirror's fixtures in spec/fixtures/oneencoder/).
local oe = require "oneencoder"
local core = require "oneencoder.core"
local S = require "oneencoder.serialize"
local ckpt = oe.checkpoint

local FIX = "spec/fixtures/oneencoder/"

local function tmp() return os.tmpname() end
local function read_bytes(p) local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s end

local function rel_err(got, want)
  local a, b = core.totable(core.reshape(got, { core.numel(got) })), core.totable(core.reshape(want, { core.numel(want) }))
  assert.are.equal(#b, #a)
  local num, den = 0, 0
  for i = 1, #a do
    num = math.max(num, math.abs(a[i] - b[i]))
    den = math.max(den, math.abs(b[i]))
  end
  return num / den
end

local function bits_equal(a, b)
  assert.are.same(core.shape(a), core.shape(b))
  assert.are.equal(core.to_bytes(a), core.to_bytes(b))
end

-- a small model with a non-default config, trained for nothing but with random weights
local function small_model(cfg, step2)
  oe.manual_seed(7)
  local m = oe.OneEncoder(cfg or { d = 16, heads = 2, ff = 24, layers = 2, fusion = "concatenation" })
  m:add_modality("image", { input_dim = 12 })
  m:add_modality("text", { input_dim = 10 })
  if step2 then
    m:freeze()
    m:add_modality("audio", { input_dim = 14 })
  end
  m:eval()
  return m
end

local function feats(B, L, D, seed)
  oe.manual_seed(seed)
  return oe.randn(B, L, D)
end

describe("checkpoint (our format)", function()
  it("save -> load rebuilds the model from the metadata alone, embeddings bit for bit", function()
    local m = small_model(nil, true)
    local path = tmp()
    assert.is_true(ckpt.save(m, path, { note = "hello", epoch = 3 }))
    local m2, meta = ckpt.load(path)
    assert.truthy(m2, meta)
    m2:eval()
    assert.are.equal("hello", meta.note)
    assert.are.equal("3", meta.epoch)
    assert.are.equal(16, m2.cfg.d)
    assert.are.equal(2, m2.cfg.heads)
    assert.are.equal(2, m2.cfg.layers)
    assert.are.equal("concatenation", m2.cfg.fusion)
    assert.are.equal(2, m2.modalities.audio.stage)
    local x, lx = feats(3, 5, 12, 1), { 5, 2, 4 }
    local a, la = feats(2, 7, 14, 2), { 7, 3 }
    bits_equal(m:embed("image", x, lx), m2:embed("image", x, lx))
    bits_equal(m:embed("audio", a, la), m2:embed("audio", a, la))
    bits_equal(m:embed("text", feats(2, 3, 10, 3)), m2:embed("text", feats(2, 3, 10, 3)))
    -- every tensor equal
    local sd1, sd2 = m:state_dict(), m2:state_dict()
    for k, t in pairs(sd1) do bits_equal(t, sd2[k]) end
    -- load_into a freshly built model of the same config
    local m3 = small_model(nil, true)
    oe.manual_seed(99)
    for _, p in ipairs(m3:parameters()) do core.copy_(p, oe.randn(core.shape(p))) end
    local _, diffs = ckpt.load_into(m3, path)
    assert.are.same({}, diffs)
    m3:eval()
    bits_equal(m:embed("audio", a, la), m3:embed("audio", a, la))
    os.remove(path)
  end)

  it("loads a trainer checkpoint (optim.* tensors are skipped)", function()
    local m = small_model({ d = 8, heads = 2, ff = 8 })
    local path = tmp()
    local t = {}
    for k, v in pairs(m:state_dict()) do t[k] = v end
    t["optim.m.0"] = oe.zeros(3)
    assert.is_true(S.save(path, t, m:config_metadata()))
    local m2 = assert(ckpt.load(path))
    m2:eval()
    local x = feats(2, 3, 12, 5)
    bits_equal(m:embed("image", x), m2:embed("image", x))
    os.remove(path)
  end)

  it("load_into a model of another config names the mismatching keys and shapes", function()
    local m = small_model({ d = 8, heads = 2, ff = 8 })
    local path = tmp()
    assert(ckpt.save(m, path))
    oe.manual_seed(1)
    local other = oe.OneEncoder({ d = 4, heads = 2, ff = 8 })
    other:add_modality("image", { input_dim = 12 })
    other:add_modality("audio", { input_dim = 12 })
    local before = core.to_bytes(other.universal_projection_encoder.layer_normalization.weight)
    local ok, err = pcall(ckpt.load_into, other, path)
    assert.is_false(ok)
    err = tostring(err)
    assert.truthy(err:find(path .. " does not match the model", 1, true), err)
    assert.truthy(err:find("missing keys: audio_encoder.projection_head.linear_layer1.bias (4,)", 1, true), err)
    assert.truthy(err:find("modality_token_encoder.audio_token (1, 3)", 1, true), err)
    assert.truthy(err:find("unexpected keys: modality_token_encoder.text_token (1, 3)", 1, true), err)
    assert.truthy(err:find("universal_projection_encoder.layer_normalization.weight: model (4,), file (8,)", 1, true), err)
    assert.truthy(err:find("image_encoder.projection_head.linear_layer1.weight: model (4, 12), file (8, 12)", 1, true), err)
    -- nothing was copied
    assert.are.equal(before, core.to_bytes(other.universal_projection_encoder.layer_normalization.weight))
    -- same shapes, other config: loads, and the difference is reported
    local m2 = oe.OneEncoder({ d = 8, heads = 2, ff = 8, pooling = "original" })
    m2:add_modality("image", { input_dim = 12 })
    m2:add_modality("text", { input_dim = 10 })
    local _, diffs = ckpt.load_into(m2, path)
    assert.are.same({ "config.pooling: model original, file masked" }, diffs)
    os.remove(path)
  end)

  it("refuses to save a model with NaN or Inf and keeps the old file", function()
    local m = small_model({ d = 8, heads = 2, ff = 8 })
    local path = tmp()
    assert(ckpt.save(m, path))
    local good = read_bytes(path)
    core.set(m.text_encoder.projection_head.linear_layer2.weight, 0 / 0, 2, 3)
    local ok, err = ckpt.save(m, path)
    assert.is_nil(ok)
    assert.are.equal("checkpoint.save: " .. path ..
      ": parameter 'text_encoder.projection_head.linear_layer2.weight' contains NaN or Inf; nothing was written (the file already there is kept)", err)
    assert.are.equal(good, read_bytes(path))
    core.set(m.text_encoder.projection_head.linear_layer2.weight, 1, 2, 3)
    core.set(m.universal_projection_encoder.layer_normalization.bias, math.huge, 1)
    ok, err = ckpt.export_original(m, path)
    assert.is_nil(ok)
    assert.truthy(err:find("universal_projection_encoder.layer_normalization.bias", 1, true))
    assert.are.equal(good, read_bytes(path))
    os.remove(path)
  end)

  it("bad files give nil and a message", function()
    local path = tmp()
    local f = io.open(path, "wb"); f:write("garbage!"); f:close()
    local m, err = ckpt.load(path)
    assert.is_nil(m)
    assert.truthy(err:find(path, 1, true))
    assert.are.same({ nil, FIX .. "small_step1_init.safetensors: a checkpoint in the original code's layout; use checkpoint.import_original" },
      { ckpt.load(FIX .. "small_step1_init.safetensors") })
    os.remove(path)
  end)
end)

describe("checkpoint (original layout, PyTorch mirror fixtures)", function()
  local feats_fix = assert(S.load(FIX .. "small_features.safetensors"))
  local exp1 = assert(S.load(FIX .. "small_step1_expected.safetensors"))
  local exp2 = assert(S.load(FIX .. "small_step2_expected.safetensors"))
  local init1 = assert(S.load(FIX .. "small_step1_init.safetensors"))
  local init2 = assert(S.load(FIX .. "small_step2_init.safetensors"))

  it("imports step-1 initial weights and reproduces the mirror's embeddings", function()
    local m, report = ckpt.import_original(FIX .. "small_step1_init.safetensors", { modalities = { image = 48, text = 48 } })
    assert.truthy(m, report)
    m:eval()
    assert.are.equal(32, m.cfg.d)
    assert.are.equal(64, m.cfg.ff)
    assert.are.equal(1, m.cfg.layers)
    assert.are.equal("original", m.cfg.pooling)
    local ei = m:embed("image", feats_fix["image.0"])
    local et = m:embed("text", feats_fix["text.0"])
    assert.is_true(rel_err(ei, exp1.image_embeddings) < 1e-4, rel_err(ei, exp1.image_embeddings))
    assert.is_true(rel_err(et, exp1.text_embeddings) < 1e-4, rel_err(et, exp1.text_embeddings))
    assert.are.equal(37, #report.loaded)     -- 49 minus the 12 unused block tensors
    assert.are.equal(12, #report.ignored)
    for _, n in ipairs(report.ignored) do assert.truthy(n:find("transformer_encoder_block", 1, true)) end
    assert.are.same({}, report.encoder_keys)
    assert.are.same({}, report.unknown)
  end)

  it("imports the original step-2 layout (nested text_image_encoder.) and reports encoder weights", function()
    local sd = {}
    for k, t in pairs(init1) do sd["text_image_encoder." .. k] = t end
    for k, t in pairs(init2) do sd[k] = t end
    -- stand-ins for the frozen encoders' weights in a released file: reported, never loaded
    sd["text_image_encoder.image_encoder.pretrained_vit.cls_token"] = oe.zeros(1, 1, 4)
    sd["text_image_encoder.text_encoder.pretrained_bert.embeddings.word_embeddings.weight"] = oe.zeros(5, 4)
    sd["audio_encoder.pretrained_encoder.feature_projection.projection.weight"] = oe.zeros(4, 4)
    local m, report = ckpt.import_original(sd, { modalities = { audio = 48 } })
    assert.truthy(m, report)
    m:eval()
    assert.are.equal(2, m.modalities.audio.stage)
    local ea = m:embed("audio", feats_fix["audio.0"])
    local et = m:embed("text", feats_fix["text.0"])
    assert.is_true(rel_err(ea, exp2.audio_embeddings) < 1e-4, rel_err(ea, exp2.audio_embeddings))
    assert.is_true(rel_err(et, exp2.text_embeddings) < 1e-4, rel_err(et, exp2.text_embeddings))
    assert.are.same({ "audio_encoder.pretrained_encoder.feature_projection.projection.weight",
      "text_image_encoder.image_encoder.pretrained_vit.cls_token",
      "text_image_encoder.text_encoder.pretrained_bert.embeddings.word_embeddings.weight" }, report.encoder_keys)
    assert.are.same({ "audio_encoder.pretrained_encoder." }, report.encoders.audio)
    assert.are.same({ "text_image_encoder.image_encoder.pretrained_vit." }, report.encoders.image)
    assert.are.same({ "text_image_encoder.text_encoder.pretrained_bert." }, report.encoders.text)
    assert.are.equal(13, #report.ignored)   -- 12 block tensors + the nested temperature
    assert.are.same({}, report.unknown)
  end)

  it("imports from a file reading only the tensors it needs", function()
    -- a file whose encoder tensor is F8_E5M2, a dtype the loader refuses: reading the whole
    -- file fails, so the import succeeds only if it reads just the heads, tokens, MLP and UP
    local names = {}
    for k in pairs(init1) do names[#names + 1] = k end
    table.sort(names)
    local parts, blobs, off = {}, {}, 0
    for _, k in ipairs(names) do
      local bytes = core.to_bytes(init1[k])
      local shape = core.shape(init1[k])
      parts[#parts + 1] = string.format('"%s":{"dtype":"F32","shape":[%s],"data_offsets":[%d,%d]}', k,
        table.concat(shape, ","), off, off + #bytes)
      blobs[#blobs + 1] = bytes
      off = off + #bytes
    end
    parts[#parts + 1] = string.format('"image_encoder.pretrained_vit.pos_embed":{"dtype":"F8_E5M2","shape":[2,4],"data_offsets":[%d,%d]}', off, off + 8)
    blobs[#blobs + 1] = string.rep("\0", 8)
    local header = "{" .. table.concat(parts, ",") .. "}"
    header = header .. string.rep(" ", (8 - #header % 8) % 8)
    local path = tmp()
    local f = assert(io.open(path, "wb"))
    f:write(string.pack("<I8", #header), header, table.concat(blobs))
    f:close()
    local all, err = S.load(path)
    assert.is_nil(all)
    assert.truthy(err:find("F8_E5M2", 1, true), err)
    local m, report = ckpt.import_original(path, { modalities = { image = 48, text = 48 } })
    assert.truthy(m, report)
    m:eval()
    assert.are.same({ "image_encoder.pretrained_vit.pos_embed" }, report.encoder_keys)
    assert.are.same({ "image_encoder.pretrained_vit." }, report.encoders.image)
    assert.is_true(rel_err(m:embed("image", feats_fix["image.0"]), exp1.image_embeddings) < 1e-4)
    os.remove(path)
  end)

  it("exports back to the original layout: names and values equal the mirror's file; round trip bit for bit", function()
    local m = assert(ckpt.import_original(FIX .. "small_step1_init.safetensors"))
    m:eval()
    local path = tmp()
    assert(ckpt.export_original(m, path))
    local back = assert(S.load(path))
    local n = 0
    for k, t in pairs(init1) do
      n = n + 1
      assert.truthy(back[k], k)
      bits_equal(t, back[k])
    end
    for k in pairs(back) do assert.truthy(init1[k], "extra " .. k) end
    assert.are.equal(49, n)
    local m2 = assert(ckpt.import_original(path))
    m2:eval()
    bits_equal(m:embed("image", feats_fix["image.1"]), m2:embed("image", feats_fix["image.1"]))
    bits_equal(m:embed("text", feats_fix["text.2"]), m2:embed("text", feats_fix["text.2"]))
    os.remove(path)
  end)

  it("exports a step-2 model as the original step-2 file", function()
    local sd = {}
    for k, t in pairs(init1) do sd["text_image_encoder." .. k] = t end
    for k, t in pairs(init2) do sd[k] = t end
    local m = assert(ckpt.import_original(sd))
    m:eval()
    local path = tmp()
    assert(ckpt.export_original(m, path))
    local back = assert(S.load(path))
    for k, t in pairs(sd) do
      assert.truthy(back[k], k)
      assert.are.equal(core.to_bytes(t), core.to_bytes(back[k]), k)
    end
    for k in pairs(back) do assert.truthy(sd[k], "extra " .. k) end
    local m2 = assert(ckpt.import_original(path))
    m2:eval()
    bits_equal(m:embed("audio", feats_fix["audio.3"]), m2:embed("audio", feats_fix["audio.3"]))
    -- our own model with two step-2 modalities: one per file, chosen by name
    local own = small_model({ d = 8, heads = 2, ff = 8 }, true)
    own:add_modality("video", { input_dim = 6 })
    assert.has_error(function() ckpt.export_original(own, path) end,
      "checkpoint.export_original: the original layout holds one step-2 modality per file; choose one with opts.modality (audio, video)")
    assert(ckpt.export_original(own, path, { modality = "video" }))
    local m3, rep = assert(ckpt.import_original(path))
    m3:eval()
    assert.is_nil(m3.modalities.audio)
    local v = feats(2, 4, 6, 11)
    bits_equal(own:embed("video", v), m3:embed("video", v))
    assert.are.same({}, rep.unknown)
    os.remove(path)
  end)

  it("import errors name what is wrong", function()
    local m, err = ckpt.import_original(FIX .. "small_step1_init.safetensors", { modalities = { image = 768 } })
    assert.is_nil(m)
    assert.are.equal(FIX .. "small_step1_init.safetensors: modality 'image' has input dim 48 in the file, 768 expected", err)
    m, err = ckpt.import_original(FIX .. "small_step1_init.safetensors", { modalities = { audio = 48 } })
    assert.are.equal(FIX .. "small_step1_init.safetensors: modality 'audio' is not in the file (it has image, text)", err)
    local sd = {}
    for k, t in pairs(init1) do sd[k] = t end
    sd["universal_projection_encoder.transformer_encoder.layers.0.norm2.weight"] = oe.zeros(31)
    m, err = ckpt.import_original(sd)
    assert.are.equal("state dict: cannot import: universal_projection_encoder.transformer_encoder.layers.0.norm2.weight: file (31,), model (32,)", err)
    sd["universal_projection_encoder.transformer_encoder.layers.0.norm2.weight"] = nil
    m, err = ckpt.import_original(sd)
    assert.are.equal("state dict: cannot import: missing universal_projection_encoder.transformer_encoder.layers.0.norm2.weight (32,)", err)
    m, err = ckpt.import_original(FIX .. "small_features.safetensors")
    assert.truthy(err:find("not a OneEncoder state dict", 1, true))
  end)
end)
