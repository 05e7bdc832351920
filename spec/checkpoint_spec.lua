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

-- ---------------------------------------------------------------- untrusted files
-- Every bad file gives nil and a message naming the file, is refused from its header before
-- anything is built, and costs memory of the order of the file's size. The memory-hungry
-- recipes run in a child lua5.4 under `ulimit -v` (1 GB: the process itself maps about 650 MB
-- of thread stacks and libraries, so a few hundred MB are left) and a timeout, so a regression
-- fails the spec instead of taking the machine; the child also reports its peak RSS growth.
-- Under SANITIZE=1 the address space is ASan's, so only the timeout and the RSS check apply.

local H = require "helpers"

-- a tiny model in the original layout as a state dict (d 4 so the default 4 heads fit)
local function tiny_original(cfg)
  oe.manual_seed(3)
  local m = oe.OneEncoder(cfg or { d = 4, heads = 4, ff = 4 })
  m:add_modality("image", { input_dim = 3 })
  m:add_modality("text", { input_dim = 2 })
  local path = tmp()
  assert(ckpt.export_original(m, path))
  local sd = assert(S.load(path))
  os.remove(path)
  return sd, m
end

local function copy(t) local o = {} for k, v in pairs(t) do o[k] = v end return o end

-- a tiny model in our format: its state dict and metadata
local function tiny_ours(cfg)
  oe.manual_seed(4)
  local m = oe.OneEncoder(cfg or { d = 4, heads = 2, ff = 4 })
  m:add_modality("image", { input_dim = 3 })
  m:add_modality("text", { input_dim = 2 })
  return copy(m:state_dict()), m:config_metadata(), m
end

-- runs fn_name(path) of oe.checkpoint in a child process with bounded memory and time;
-- returns ok (pcall), the message (or "model"), the peak RSS growth in kB, and the exit status
local CHILD_KB = 1024 * 1024
-- peak RSS growth allowed in a child: these files are at most 1.5 MB (the loops grow by about
-- 1-2 MB); under ASan, freed blocks wait in its 256 MB quarantine before they are reused
local RSS_GROWTH_KB = os.getenv("OE_SANITIZE") and 512 * 1024 or 64 * 1024
-- the shell command running script in a child lua5.4 under the memory limit and a timeout
local function child_cmd(script, seconds)
  local limit = os.getenv("OE_SANITIZE") and "" or ("ulimit -v " .. CHILD_KB .. "; ")
  return limit .. H.lua_cmd():gsub("lua5%.4$", "timeout " .. seconds .. " lua5.4") .. " " .. script .. " 2>&1"
end
local function run_limited(fn_name, path)
  local script = tmp()
  local f = assert(io.open(script, "w"))
  f:write(string.format([[
local oe = require "oneencoder"
local function hwm()
  for l in io.lines("/proc/self/status") do
    local v = l:match("^VmHWM:%%s*(%%d+)")
    if v then return tonumber(v) end
  end
end
local before = hwm()
local ok, a, b = pcall(oe.checkpoint[%q], %q)
local msg = ok and (a and "model" or tostring(b)) or tostring(a)
io.write(tostring(ok), "\t", (msg:gsub("[\t\n]", " ")), "\t", hwm() - before, "\n")
]], fn_name, path))
  f:close()
  local p = assert(io.popen(child_cmd(script, 60)))
  local out = p:read("a")
  local _, _, status = p:close()
  os.remove(script)
  local ok, msg, grew = out:match("^(%a+)\t(.-)\t(%-?%d+)\n$")
  return ok == "true", msg or out, tonumber(grew), status
end

-- the child returned nil, a message holding every fragment, and stayed small
local function refused_in_child(fn_name, path, ...)
  local ok, msg, grew, status = run_limited(fn_name, path)
  assert.are.equal(0, status, "child process failed: " .. tostring(msg))
  assert.is_true(ok, "raised: " .. tostring(msg))
  for _, frag in ipairs({ ... }) do
    assert(msg:find(frag, 1, true), string.format("message %q does not mention %q", msg, frag))
  end
  assert(grew < RSS_GROWTH_KB, string.format("peak RSS grew by %d kB", grew))
  return msg
end

describe("checkpoint.import_original on untrusted files", function()
  it("a zero-size layer 999999999 beside a valid state dict is refused from the header (issue 10 item 1)", function()
    local sd = tiny_original()
    sd["universal_projection_encoder.transformer_encoder.layers.999999999.x"] = oe.zeros(0)
    local path = tmp()
    assert(S.save(path, sd))
    refused_in_child("import_original", path, path .. ": ",
      "tensor universal_projection_encoder.transformer_encoder.layers.999999999.x has zero size (0,)")
    -- with one element, the index still names 10^9 layers that the file does not hold
    sd["universal_projection_encoder.transformer_encoder.layers.999999999.x"] = oe.zeros(1)
    assert(S.save(path, sd))
    refused_in_child("import_original", path, path .. ": layer 1 is missing: the tensors name 2 layers, with indices up to 999999999")
    os.remove(path)
  end)

  it("a 622-byte file (the issue's 684-byte recipe): only the tensors a layout is read from, plus a layer 999999999", function()
    local path = tmp()
    local f = assert(io.open(path, "wb"))
    local names = {
      { "image_encoder.projection_head.linear_layer1.weight", { 4, 1 } },
      { "modality_token_encoder.image_token", { 1, 3 } },
      { "universal_projection_encoder.layer_normalization.weight", { 4 } },
      { "universal_projection_encoder.transformer_encoder.layers.0.linear1.weight", { 1, 4 } },
      { "universal_projection_encoder.transformer_encoder.layers.999999999.x", { 0 } },
    }
    local parts, off = {}, 0
    for _, e in ipairs(names) do
      local n = 1
      for _, x in ipairs(e[2]) do n = n * x end
      parts[#parts + 1] = string.format('"%s":{"dtype":"F32","shape":[%s],"data_offsets":[%d,%d]}', e[1],
        table.concat(e[2], ","), off, off + 4 * n)
      off = off + 4 * n
    end
    local header = "{" .. table.concat(parts, ",") .. "}"
    f:write(string.pack("<I8", #header), header, string.rep("\0", off))
    f:close()
    assert.are.equal(622, 8 + #header + off)
    refused_in_child("import_original", path, path .. ": tensor universal_projection_encoder.transformer_encoder.layers.999999999.x has zero size")
    os.remove(path)
  end)

  it("a (10000000, 0) linear1.weight is refused before 1.3 GB are allocated (issue 10 item 1)", function()
    local sd = tiny_original({ d = 32, heads = 4, ff = 4 })   -- d 32: linear1 and linear2 of ff 10^7 are 1.3 GB
    sd["universal_projection_encoder.transformer_encoder.layers.0.linear1.weight"] = oe.zeros(10000000, 0)
    local path = tmp()
    assert(S.save(path, sd))
    refused_in_child("import_original", path,
      path .. ": tensor universal_projection_encoder.transformer_encoder.layers.0.linear1.weight has zero size (10000000, 0)")
    os.remove(path)
  end)

  it("a (16, 0) head weight and a (10^12, 0) token give nil, message instead of raising (issue 10 item 3)", function()
    local sd = tiny_original()
    sd["text_encoder.projection_head.linear_layer1.weight"] = oe.zeros(16, 0)
    local path = tmp()
    assert(S.save(path, sd))
    refused_in_child("import_original", path, path .. ": tensor text_encoder.projection_head.linear_layer1.weight has zero size (16, 0)")
    sd = tiny_original()
    sd["modality_token_encoder.image_token"] = oe.zeros(1000000000000, 0)
    assert(S.save(path, sd))
    refused_in_child("import_original", path, path .. ": tensor modality_token_encoder.image_token has zero size (1000000000000, 0)")
    -- the same in memory
    local m, err = ckpt.import_original(sd)
    assert.is_nil(m)
    assert.are.equal("state dict: tensor modality_token_encoder.image_token has zero size (1000000000000, 0)", err)
    os.remove(path)
  end)

  it("sizes that disagree between tensors are refused with both shapes, before building", function()
    local base = tiny_original()
    local cases = {
      -- a gap in the layer indices
      { "universal_projection_encoder.transformer_encoder.layers.2.linear1.weight", oe.zeros(4, 4),
        "layer 1 is missing: the tensors name 2 layers, with indices up to 2" },
      { "universal_projection_encoder.transformer_encoder.layers.01.linear1.weight", oe.zeros(4, 4),
        "tensor universal_projection_encoder.transformer_encoder.layers.01.linear1.weight: layer index '01' is not a decimal number below 10^9" },
      { "universal_projection_encoder.transformer_encoder.layers.1.linear1.weight", oe.zeros(4, 4),
        "cannot import: missing universal_projection_encoder.transformer_encoder.layers.1.linear1.bias (4,)" },
      -- ff read from layer 0 must hold for every layer and for linear2
      { "universal_projection_encoder.transformer_encoder.layers.0.linear1.weight", oe.zeros(100000, 4),
        "cannot import: universal_projection_encoder.transformer_encoder.layers.0.linear1.bias: file (4,), model (100000,)" },
      { "universal_projection_encoder.layer_normalization.weight", oe.zeros(4, 1),
        "universal_projection_encoder.layer_normalization.weight has shape (4, 1), expected (d,)" },
      { "modality_token_encoder.image_token", oe.zeros(1, 5), "modality_token_encoder.image_token has shape (1, 5), expected (token_size, 3)" },
      { "image_encoder.projection_head.linear_layer1.weight", oe.zeros(4), "image_encoder.projection_head.linear_layer1.weight has shape (4,), expected (d, input_dim)" },
      { "image_encoder.projection_head.linear_layer1.weight", oe.zeros(4, 3, "int64"),
        "cannot import: image_encoder.projection_head.linear_layer1.weight: dtype int64 cannot be loaded into a float32 parameter" },
    }
    for _, c in ipairs(cases) do
      local sd = copy(base)
      sd[c[1]] = c[2]
      local ok, m, err = pcall(ckpt.import_original, sd)
      assert.is_true(ok, tostring(m))
      assert.is_nil(m)
      assert(err:find("state dict: " .. c[3], 1, true) == 1, err)
    end
  end)

  it("options and recorded config that disagree with the file give nil, message; options of the wrong type raise", function()
    local sd = tiny_original()
    local m, err = ckpt.import_original(sd, { heads = 3 })
    assert.is_nil(m)
    assert.are.equal("state dict: option heads: must divide d = 4", err)
    sd = tiny_original({ d = 6, heads = 2, ff = 4 })
    m, err = ckpt.import_original(sd)
    assert.are.equal("state dict: heads (default): must divide d = 6 (give it as an option)", err)
    assert.truthy(ckpt.import_original(sd, { heads = 3 }))
    m, err = ckpt.import_original(tiny_original(), { fusion = "scaled_dot_product" })
    assert.are.equal("state dict: option fusion needs universal_projection_encoder.scaled_dot_product.{query,key,value}.*, which the file does not hold", err)
    m, err = ckpt.import_original(tiny_original(), { fusion = "mean" })
    assert.are.equal("state dict: option fusion: must be addition, multiplication, concatenation or scaled_dot_product", err)
    m, err = ckpt.import_original(tiny_original(), { dropout = 1.5 })
    assert.are.equal("state dict: option dropout: must be a number in [0, 1)", err)
    H.fails_with(function() ckpt.import_original(tiny_original(), { heads = "4" }) end, "checkpoint.import_original: opts.heads must be an integer, got string")
    H.fails_with(function() ckpt.import_original(tiny_original(), 4) end, "checkpoint.import_original: opts must be a table")
    -- a file written by export_original records its config: absurd records are refused by key
    local _, own = tiny_original()
    local path = tmp()
    assert(ckpt.export_original(own, path))
    local t, meta = S.load(path)
    local records = {
      { "config.heads", "0", 'metadata config.heads = "0": must be a positive integer below 2^31' },
      { "config.heads", "nonsense", 'metadata config.heads = "nonsense": must be a positive integer below 2^31' },
      { "config.layers", "100000", 'metadata config.layers = "100000" disagrees with the tensors: universal_projection_encoder.transformer_encoder.layers.N.* gives layers = 1' },
      { "config.d", "1e400", 'metadata config.d = "1e400" disagrees with the tensors' },
      { "config.fusion", "scaled_dot_product", 'metadata config.fusion = "scaled_dot_product" needs universal_projection_encoder.scaled_dot_product.' },
      { "config.dropout", "nan", 'metadata config.dropout = "nan": must be a number in [0, 1)' },
    }
    for _, r in ipairs(records) do
      local mm = copy(meta)
      mm[r[1]] = r[2]
      assert(S.save(path, t, mm))
      local ok, model, e = pcall(ckpt.import_original, path)
      assert.is_true(ok, tostring(model))
      assert.is_nil(model)
      assert(e:find(path .. ": " .. r[3], 1, true), e)
    end
    os.remove(path)
  end)

  it("never raises and stays small on a few hundred damaged state dicts (run in a bounded child)", function()
    -- the damage: drop, reshape (zero sizes included), rename to odd layer indices, add parts, change dtype
    local script = tmp()
    local f = assert(io.open(script, "w"))
    f:write([==[
local oe = require "oneencoder"
local S = require "oneencoder.serialize"
oe.manual_seed(3)
local m = oe.OneEncoder({ d = 4, heads = 4, ff = 4, fusion = "scaled_dot_product" })
m:add_modality("image", { input_dim = 3 }); m:add_modality("text", { input_dim = 2 })
m:freeze(); m:add_modality("audio", { input_dim = 5 })
local path = os.tmpname()
assert(oe.checkpoint.export_original(m, path))
local base = assert(S.load(path))
local names = {}
for k in pairs(base) do names[#names + 1] = k end
table.sort(names)
local shapes = { {}, { 0 }, { 1 }, { 4 }, { 5 }, { 0, 4 }, { 4, 0 }, { 4, 4 }, { 12, 4 }, { 1, 3 }, { 15, 3 }, { 2, 3, 4 }, { 1000000, 0 } }
local extra = { "text_image_encoder.universal_projection_encoder.transformer_encoder.layers.1.linear1.weight",
  "text_image_encoder.universal_projection_encoder.transformer_encoder.layers.4000000000.norm1.bias",
  "text_image_encoder.universal_projection_encoder.transformer_encoder.layers.-1.norm1.bias",
  "text_image_encoder.universal_projection_encoder.query.weight", "video_encoder.alignment_layer.linear_layer1.weight",
  "text_image_encoder.modality_token_encoder.video_token", "temperature", "text_image_encoder.audio_encoder.projection_head.linear_layer1.weight" }
local state = 12345
local function rnd(n) state = (state * 1103515245 + 12345) % 2147483648; return state % n + 1 end
local seen, worst = 0, 0
local function hwm() for l in io.lines("/proc/self/status") do local v = l:match("^VmHWM:%s*(%d+)") if v then return tonumber(v) end end end
local before = hwm()
for i = 1, 400 do
  local sd = {}
  for k, v in pairs(base) do sd[k] = v end
  for _ = 1, rnd(3) do
    local kind, victim = rnd(5), names[rnd(#names)]
    if kind == 1 then sd[victim] = nil
    elseif kind == 2 then sd[victim] = oe.zeros(shapes[rnd(#shapes)])
    elseif kind == 3 then sd[victim] = nil; sd[victim:gsub("layers%.0%.", "layers." .. ({ "1", "01", "999999999", "x" })[rnd(4)] .. ".")] = base[victim]
    elseif kind == 4 then sd[extra[rnd(#extra)]] = oe.zeros(shapes[rnd(#shapes)])
    else sd[victim] = oe.zeros(oe.core.shape(base[victim]), "int64") end
  end
  local ok, model, err = pcall(oe.checkpoint.import_original, sd)
  if not ok then io.write("RAISED ", tostring(model), "\n") os.exit(1) end
  if not model and (type(err) ~= "string" or err:sub(1, 12) ~= "state dict: ") then io.write("BAD ", tostring(err), "\n") os.exit(1) end
  if model then seen = seen + 1 end
end
os.remove(path)
io.write("done ", seen, " ", hwm() - before, "\n")
]==])
    f:close()
    local p = assert(io.popen(child_cmd(script, 120)))
    local out = p:read("a")
    local _, _, status = p:close()
    os.remove(script)
    assert.are.equal(0, status, out)
    local accepted, grew = out:match("^done (%d+) (%-?%d+)\n$")
    assert(accepted, out)
    assert(tonumber(grew) < RSS_GROWTH_KB, "peak RSS grew by " .. grew .. " kB")
  end)
end)

describe("checkpoint.load on untrusted files", function()
  it("config.layers = 100000 in a 112-byte file costs nothing (issue 10 item 2)", function()
    local path = tmp()
    assert(S.save(path, {}, { format = "oneencoder-1", ["config.layers"] = "100000" }))
    refused_in_child("load", path, path .. ": no universal_projection_encoder.layer_normalization.weight")
    os.remove(path)
  end)

  it("config.layers = 100000 beside valid weights is refused by key", function()
    local sd, meta = tiny_ours()
    meta["config.layers"] = "100000"
    local path = tmp()
    assert(S.save(path, sd, meta))
    refused_in_child("load", path,
      path .. ': metadata config.layers = "100000" disagrees with the tensors: universal_projection_encoder.transformer_encoder.layers.N.* gives layers = 1')
    os.remove(path)
  end)

  it('modalities = "image:10000000:1" is refused before a 10 GB tensor is asked for (issue 10 item 2)', function()
    local sd, meta = tiny_ours({ d = 256, heads = 4, ff = 8 })   -- d 256: Linear(10^7 -> 256) would be 10 GB
    meta.modalities = "image:10000000:1"
    local path = tmp()
    assert(S.save(path, sd, meta))
    refused_in_child("load", path,
      path .. ": metadata modalities lists 'image:10000000:1', but the file's image_encoder.projection_head.linear_layer1.weight is (256, 3)")
    os.remove(path)
  end)

  it("absurd or inconsistent metadata is refused naming the file and the key", function()
    local sd, meta = tiny_ours()
    local path = tmp()
    local cases = {
      { "config.heads", "0", 'metadata config.heads = "0": must be a positive integer below 2^31' },
      { "config.heads", "3", 'metadata config.heads = "3": must divide d = 4' },
      { "config.heads", "-4", 'metadata config.heads = "-4": must be a positive integer below 2^31' },
      { "config.d", "8", 'metadata config.d = "8" disagrees with the tensors: universal_projection_encoder.layer_normalization.weight gives d = 4' },
      { "config.ff", "99999999999", 'metadata config.ff = "99999999999" disagrees with the tensors' },
      { "config.token_size", "15", 'metadata config.token_size = "15" disagrees with the tensors: modality_token_encoder.image_token gives token_size = 1' },
      { "config.dropout", "2", 'metadata config.dropout = "2": must be a number in [0, 1)' },
      { "config.fusion", "bahdanau", 'metadata config.fusion = "bahdanau": must be addition, multiplication, concatenation or scaled_dot_product' },
      { "config.pooling", string.rep("x", 100), 'metadata config.pooling = "' .. string.rep("x", 40) .. '...": must be masked or original' },
      { "config.temperature", "hot", 'metadata config.temperature = "hot": must be fixed or learnable' },
      { "config.use_token", "yes", 'metadata config.use_token = "yes": must be true or false' },
      { "config.logit_scale_min", "9", 'metadata config.logit_scale_min = "9": must not exceed logit_scale_max' },
      { "modalities", "image:3:1,text:2:1,audio:7:1", "metadata modalities lists 'audio:7:1', but the file has no audio_encoder.projection_head.linear_layer1.weight" },
      { "modalities", "image:3:1", "metadata modalities does not list text, whose weights the file holds" },
      { "modalities", "image:3:1,image:3:1", 'metadata modalities = "image:3:1,image:3:1": modality \'image\' is listed twice' },
      { "modalities", "text:2:2,image:3:1", 'metadata modalities = "text:2:2,image:3:1": step-1 modality \'image\' is listed after a step-2 one' },
      { "modalities", "image:3:1,text:0:1", 'metadata modalities = "image:3:1,text:0:1": entry "text:0:1" is not name:input_dim:stage' },
      { "modalities", "image:3:1,text:2:2", "metadata modalities lists 'text:2:2', but the file has no text_encoder.alignment_layer.linear_layer1.weight" },
      { "format", "oneencoder-2", 'not a oneencoder checkpoint (metadata \'format\' is "oneencoder-2")' },
    }
    for _, c in ipairs(cases) do
      local mm = copy(meta)
      mm[c[1]] = c[2]
      assert(S.save(path, sd, mm))
      local ok, model, err = pcall(ckpt.load, path)
      assert.is_true(ok, tostring(model))
      assert.is_nil(model)
      assert(err:find(path .. ": " .. c[3], 1, true), string.format("%s = %s: %s", c[1], c[2], err))
    end
    os.remove(path)
  end)

  it("tensors that disagree with the metadata are refused before building", function()
    local base, meta = tiny_ours()
    local path = tmp()
    local cases = {
      { "universal_projection_encoder.transformer_encoder.layers.0.linear2.weight", oe.zeros(4, 0),
        "tensor universal_projection_encoder.transformer_encoder.layers.0.linear2.weight has zero size (4, 0)" },
      { "universal_projection_encoder.transformer_encoder.layers.7.norm1.bias", oe.zeros(4),
        "layer 1 is missing: the tensors name 2 layers, with indices up to 7" },
      { "universal_projection_encoder.scaled_dot_product.query.weight", oe.zeros(4, 4),
        'metadata config.fusion = "addition", but the file holds the scaled-dot-product attention' },
      { "text_encoder.projection_head.linear_layer2.weight", oe.zeros(4, 5),
        "the weights do not match the config in its metadata: mismatched shapes: text_encoder.projection_head.linear_layer2.weight: file (4, 5), model (4, 4)" },
      { "modality_token_encoder.text_token", oe.zeros(1, 3, "int64"),
        "mismatched shapes: modality_token_encoder.text_token: dtype I64 cannot be loaded into a float32 parameter" },
      { "surprise", oe.zeros(2), "unexpected keys: surprise (2,)" },
    }
    for _, c in ipairs(cases) do
      local sd = copy(base)
      sd[c[1]] = c[2]
      assert(S.save(path, sd, meta))
      local ok, model, err = pcall(ckpt.load, path)
      assert.is_true(ok, tostring(model))
      assert.is_nil(model)
      assert(err:find(path .. ": ", 1, true) == 1 and err:find(c[3], 1, true), err)
    end
    -- a missing tensor
    local sd = copy(base)
    sd["universal_projection_encoder.transformer_encoder.layers.0.norm2.bias"] = nil
    assert(S.save(path, sd, meta))
    local model, err = ckpt.load(path)
    assert.is_nil(model)
    assert.are.equal(path .. ": the weights do not match the config in its metadata: missing keys: universal_projection_encoder.transformer_encoder.layers.0.norm2.bias (4,)", err)
    os.remove(path)
  end)

  it("never raises and stays small on a few hundred damaged files (run in a bounded child)", function()
    local script = tmp()
    local f = assert(io.open(script, "w"))
    f:write([==[
local oe = require "oneencoder"
local S = require "oneencoder.serialize"
oe.manual_seed(4)
local m = oe.OneEncoder({ d = 4, heads = 2, ff = 4, layers = 2, fusion = "scaled_dot_product" })
m:add_modality("image", { input_dim = 3 }); m:add_modality("text", { input_dim = 2 })
m:freeze(); m:add_modality("audio", { input_dim = 5 })
local base, meta0 = m:state_dict(), m:config_metadata()
local names, keys = {}, {}
for k in pairs(base) do names[#names + 1] = k end
for k in pairs(meta0) do keys[#keys + 1] = k end
table.sort(names); table.sort(keys)
local values = { "0", "-1", "1", "2", "3", "4", "7", "15", "100000", "1e400", "nan", "0.5", "true", "x", "",
  "scaled_dot_product", "concatenation", "image:10000000:1", "image:3:1,text:2:1,audio:5:2", "audio:5:2,image:3:1",
  "image:3:1,text:2:1,audio:5:1", string.rep("a:1:1,", 1000) }
local shapes = { {}, { 0 }, { 4 }, { 0, 4 }, { 4, 0 }, { 4, 4 }, { 12, 4 }, { 1, 3 }, { 1000000, 0 } }
local state = 777
local function rnd(n) state = (state * 1103515245 + 12345) % 2147483648; return state % n + 1 end
local function hwm() for l in io.lines("/proc/self/status") do local v = l:match("^VmHWM:%s*(%d+)") if v then return tonumber(v) end end end
local path = os.tmpname()
local before, loaded = hwm(), 0
for i = 1, 300 do
  local sd, meta = {}, {}
  for k, v in pairs(base) do sd[k] = v end
  for k, v in pairs(meta0) do meta[k] = v end
  for _ = 1, rnd(3) do
    local kind = rnd(4)
    if kind == 1 then meta[keys[rnd(#keys)]] = values[rnd(#values)]
    elseif kind == 2 then sd[names[rnd(#names)]] = oe.zeros(shapes[rnd(#shapes)])
    elseif kind == 3 then sd[names[rnd(#names)]] = nil
    else local v = names[rnd(#names)]; sd[v:gsub("scaled_dot_product%.", "")] = sd[v]; if rnd(2) == 1 then sd[v] = nil end end
  end
  assert(S.save(path, sd, meta))
  local ok, model, err = pcall(oe.checkpoint.load, path)
  if not ok then io.write("RAISED ", tostring(model), "\n") os.exit(1) end
  if not model and (type(err) ~= "string" or err:sub(1, #path) ~= path) then io.write("BAD ", tostring(err), "\n") os.exit(1) end
  if model then loaded = loaded + 1 end
end
os.remove(path)
io.write("done ", loaded, " ", hwm() - before, "\n")
]==])
    f:close()
    local p = assert(io.popen(child_cmd(script, 120)))
    local out = p:read("a")
    local _, _, status = p:close()
    os.remove(script)
    assert.are.equal(0, status, out)
    local loaded, grew = out:match("^done (%d+) (%-?%d+)\n$")
    assert(loaded, out)
    assert(tonumber(loaded) > 0, "no damaged file was still loadable: the mutations are too coarse")
    assert(tonumber(grew) < RSS_GROWTH_KB, "peak RSS grew by " .. grew .. " kB")
  end)
end)

describe("every fusion against the PyTorch mirror (import and embeddings)", function()
  -- fixtures: tools/gen_oneencoder_fixtures.py --only=fusions (d 16, 4 heads, ff 40, input dims
  -- image 24, text 20, audio 12; float64 references); tolerance 1e-4 relative as for the other
  -- mirror fixtures (float32 PyTorch was within 2e-7 of them)
  local FUSIONS = {
    { "addition", layers = 1, tokens = 1 },
    { "multiplication", layers = 2, tokens = 1, opts = { fusion = "multiplication" } },  -- shapes cannot tell it from addition
    { "concatenation", layers = 1, tokens = 15 },
    { "scaled_dot_product", layers = 2, tokens = 1 },
  }
  for _, f in ipairs(FUSIONS) do
    local name = f[1]
    it(name .. ": step 1 and step 2 files import, the config is read from the shapes, embeddings match", function()
      local base = FIX .. "fusion_" .. name .. "_"
      local exp = assert(S.load(base .. "expected.safetensors"))
      local m, report = ckpt.import_original(base .. "step1.safetensors", f.opts)
      assert.truthy(m, report)
      m:eval()
      assert.are.equal(name, m.cfg.fusion)
      assert.are.equal(f.layers, m.cfg.layers)
      assert.are.equal(f.tokens, m.cfg.token_size)
      assert.are.equal(16, m.cfg.d)
      assert.are.equal(40, m.cfg.ff)
      assert.are.equal(24, m.modalities.image.input_dim)
      assert.are.equal(20, m.modalities.text.input_dim)
      assert.are.same({}, report.unknown)
      assert.are.equal(12, #report.ignored)   -- the unused transformer_encoder_block.*
      local ei = m:embed("image", exp["features.image"])
      local et = m:embed("text", exp["features.text"])
      assert(rel_err(ei, exp.image_embeddings) < 1e-4, rel_err(ei, exp.image_embeddings))
      assert(rel_err(et, exp.text_embeddings) < 1e-4, rel_err(et, exp.text_embeddings))
      -- step 2: the step-1 model nested under text_image_encoder., the new parts at the top
      local sd = {}
      for k, t in pairs(assert(S.load(base .. "step1.safetensors"))) do sd["text_image_encoder." .. k] = t end
      for k, t in pairs(assert(S.load(base .. "step2_new.safetensors"))) do sd[k] = t end
      local m2, r2 = ckpt.import_original(sd, f.opts)
      assert.truthy(m2, r2)
      m2:eval()
      assert.are.equal(2, m2.modalities.audio.stage)
      assert.are.equal(12, m2.modalities.audio.input_dim)
      local ea = m2:embed("audio", exp["features.audio"])
      assert(rel_err(ea, exp.audio_embeddings) < 1e-4, rel_err(ea, exp.audio_embeddings))
      bits_equal(et, m2:embed("text", exp["features.text"]))
      -- and back: export_original writes the mirror's names and values
      local path = tmp()
      assert(ckpt.export_original(m2, path))
      local back = assert(S.load(path))
      for k, t in pairs(sd) do
        assert.truthy(back[k], k)
        bits_equal(t, back[k])
      end
      for k in pairs(back) do assert.truthy(sd[k], "extra " .. k) end
      os.remove(path)
    end)
  end

  it("scaled_dot_product: the attention is named as in the original, in files and in our module tree", function()
    local info = assert(S.header(FIX .. "fusion_scaled_dot_product_step1.safetensors"))
    local m = assert(ckpt.import_original(FIX .. "fusion_scaled_dot_product_step1.safetensors"))
    local own = m:state_dict()
    for _, p in ipairs { "query", "key", "value" } do
      for _, w in ipairs { "weight", "bias" } do
        local n = "universal_projection_encoder.scaled_dot_product." .. p .. "." .. w
        assert.truthy(info[n], n)
        assert.truthy(own[n], n)
        assert.is_nil(own["universal_projection_encoder." .. p .. "." .. w])
      end
    end
  end)
end)

describe("checkpoints written before the scaled-dot-product rename", function()
  -- our files used universal_projection_encoder.{query,key,value}.*: they still load
  local function old_names(sd)
    local out = {}
    for k, t in pairs(sd) do out[(k:gsub("scaled_dot_product%.", ""))] = t end
    return out
  end
  local function sdp_model()
    oe.manual_seed(21)
    local m = oe.OneEncoder({ d = 8, heads = 2, ff = 8, fusion = "scaled_dot_product" })
    m:add_modality("image", { input_dim = 6 })
    m:add_modality("text", { input_dim = 5 })
    m:eval()
    return m
  end

  it("load, load_into, load_state_dict and import_original read the old names", function()
    local m = sdp_model()
    local x = feats(2, 4, 6, 9)
    local want = m:embed("image", x)
    local path = tmp()
    local old = old_names(m:state_dict())
    assert.truthy(old["universal_projection_encoder.query.weight"])
    assert(S.save(path, old, m:config_metadata()))
    local m2 = assert(ckpt.load(path))
    m2:eval()
    bits_equal(want, m2:embed("image", x))
    local m3 = sdp_model()
    for _, p in ipairs(m3:parameters()) do core.fill_(p, 0.5) end
    ckpt.load_into(m3, path)
    bits_equal(want, m3:embed("image", x))
    local m4 = sdp_model()
    for _, p in ipairs(m4:parameters()) do core.fill_(p, 0.25) end
    m4:load_state_dict(old)
    bits_equal(want, m4:embed("image", x))
    -- an original-layout file from export_original before the rename
    assert(ckpt.export_original(m, path))
    local exported, meta = assert(S.load(path))
    assert(S.save(path, old_names(exported), meta))
    local m5 = assert(ckpt.import_original(path))
    m5:eval()
    bits_equal(want, m5:embed("image", x))
    -- both spellings in one file: refused, naming both
    local both = m:state_dict()
    both = copy(both)
    both["universal_projection_encoder.query.weight"] = both["universal_projection_encoder.scaled_dot_product.query.weight"]
    assert(S.save(path, both, m:config_metadata()))
    local none, err = ckpt.load(path)
    assert.is_nil(none)
    assert.are.equal(path .. ": tensors universal_projection_encoder.query.weight and universal_projection_encoder.scaled_dot_product.query.weight both stand for universal_projection_encoder.scaled_dot_product.query.weight", err)
    os.remove(path)
  end)
end)
