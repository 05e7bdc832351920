-- spec/tfjs_spec.lua: TF.js layers-model import (csrc/tfjs, oe.tfjs) against TensorFlow.js itself,
-- the mobilenet_v2 encoder, and bad input.
-- Fixtures (tools/tfjs_fixtures.js, TF.js 4.22.0 pure-JavaScript CPU backend in node):
--   spec/fixtures/tfjs/{convnet,seqnet}_{f32,f16,u8}/, seqnet_u16/: two small models with seeded random weights
--   covering every supported layer class (convnet: functional, 4 outputs, 31 layers; seqnet:
--   Sequential without an InputLayer), saved by tf.io.withSaveHandler with their weights encoded
--   as float32, float16, uint8 or uint16 (w = min + scale * q), each loaded back and run by TF.js (which
--   decodes the manifest itself) on a fixed input: ref.safetensors holds x, the outputs
--   ("out:<layer>") and named inner layers ("layer:<layer>").
--   mobilenet_v2_ref.safetensors: nsfwjs's MobileNetV2 (scripts/fetch-nsfwjs.sh) on raccoon.jpg,
--   ascent.png (SciPy's photographs, tools/tfjs_images.py) and spec/fixtures/frozen/photo.jpg with
--   nsfwjs's preprocessing done by TF.js: pooled features (flatten_1) and class probabilities.
--
-- Tolerance (small models): both runtimes round sums of products in different orders (TF.js's
-- CPU kernels accumulate in double and store float32; ours go through OpenBLAS, folded
-- BatchNormalization adds one rounding per weight). A value after a chain of sums of k products
-- in all moves by at most about k u S (H.sum_tol), S bounding sum |a_i b_i| of one sum. The longest
-- chain of convnet holds k = 27 + 9 + 16 + 4 + 72 + 9 + 6 + 5 = 148 products (conv_a, dw_b,
-- proj_b, avgpool, conv_dil, gap, fc1, probs) plus elementwise steps; with k = 200 and S = 8
-- (activations below 2.7, weights below 1.5 sqrt(3 / fan_in)) the bound is 9.5e-5; the largest
-- deviation seen is 7e-7. MobileNetV2: within 1e-4 absolute (pooled features 0..6, probabilities);
-- largest seen 9e-6.
local oe = require "oneencoder"
local H = require "helpers"
local core = oe.core

local FIX = "spec/fixtures/tfjs/"
local MODEL_DIR = "data/nsfwjs/mobilenet_v2"
local TOL = H.sum_tol(200, 8)

local function read_all(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a")
  f:close()
  return s
end
local function write(p, s)
  local f = assert(io.open(p, "wb"))
  f:write(s)
  f:close()
end
local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p '" .. d .. "'"))
  return d
end
local function has(s, ...)
  for _, frag in ipairs({ ... }) do assert(tostring(s):find(frag, 1, true), string.format("%q does not mention %q", tostring(s), frag)) end
end
local function same_bits(a, b, what)
  assert.are.same(core.shape(b), core.shape(a), what .. ": shape")
  assert.equal(0, (a - b):abs():max():item(), what .. ": not bit-identical")
end

-- references of a fixture: {x = ..., outs = {name = t}, layers = {name = t}}
local function refs_of(dir)
  local t = assert(oe.load(dir .. "/ref.safetensors"))
  local r = { x = t.x, outs = {}, layers = {} }
  for k, v in pairs(t) do
    local kind, name = k:match("^(%a+):(.+)$")
    if kind == "out" then r.outs[name] = v elseif kind == "layer" then r.layers[name] = v end
  end
  return r
end

describe("tfjs: small models against TensorFlow.js", function()
  for _, model in ipairs({ "convnet", "seqnet" }) do
    for _, enc in ipairs(model == "seqnet" and { "f32", "f16", "u8", "u16" } or { "f32", "f16", "u8" }) do
      local dir = FIX .. model .. "_" .. enc
      it(model .. " with " .. enc .. " weights: every output and named layer (fold = false)", function()
        local m = assert(oe.tfjs.load(dir .. "/model.json", { fold = false }))
        local r = refs_of(dir)
        local n = 0
        for name, want in pairs(r.outs) do
          H.allclose(m:output(r.x, name), want, TOL, dir .. " output " .. name)
          n = n + 1
        end
        for name, want in pairs(r.layers) do
          H.allclose(m:output(r.x, name), want, TOL, dir .. " layer " .. name)
          n = n + 1
        end
        assert.equal(model == "convnet" and 16 or 6, n)
      end)
      it(model .. " with " .. enc .. " weights: folded, the same within the bound; folded layers refused by name", function()
        local m = assert(oe.tfjs.load(dir .. "/model.json"))
        local r = refs_of(dir)
        local names = {}
        for name in pairs(r.outs) do names[#names + 1] = name end
        table.sort(names)
        local outs = m:forward(r.x, { outputs = names })
        if #names == 1 then outs = { [names[1]] = outs } end
        for _, name in ipairs(names) do H.allclose(outs[name], r.outs[name], TOL, dir .. " output " .. name) end
        local folded = {}
        for _, l in ipairs(m:layers()) do if l.folded_into then folded[l.name] = l.folded_into end end
        for name, want in pairs(r.layers) do
          local ok, res = pcall(m.output, m, r.x, name)
          if ok then
            H.allclose(res, want, TOL, dir .. " layer " .. name)
          else
            has(res, dir .. "/model.json", "layer '" .. name .. "'", "fold = false")
          end
        end
        if model == "convnet" then
          -- tanh stays: conv_dil has an activation of its own (sigmoid)
          assert.same({ bn_a = "conv_a", relu_a = "conv_a", bn_b = "dw_b", act_b = "dw_b", bn_proj_b = "proj_b" }, folded)
          H.fails_with(function() m:output(r.x, "conv_a") end, "layer 'conv_a' (Conv2D) was folded at load with 'relu_a'")
        else
          assert.same({ s_fc_bn = "s_fc", s_sig = "s_fc" }, folded)
        end
      end)
    end
  end

  it("uint8 and float16 weights decode as TF.js decodes them (the three encodings give three answers)", function()
    local r32, r16, r8 = refs_of(FIX .. "convnet_f32"), refs_of(FIX .. "convnet_f16"), refs_of(FIX .. "convnet_u8")
    local m16 = assert(oe.tfjs.load(FIX .. "convnet_f16/model.json"))
    local m8 = assert(oe.tfjs.load(FIX .. "convnet_u8/model.json"))
    local y16, y8 = m16:output(r32.x, "probs"), m8:output(r32.x, "probs")
    H.allclose(y16, r16.outs.probs, TOL, "f16")
    H.allclose(y8, r8.outs.probs, TOL, "u8")
    -- quantisation moves the answer far more than the bound: a model decoded the wrong way fails
    assert.is_true((y8 - r32.outs.probs):abs():max():item() > 10 * TOL)
    local i8 = m8:info()
    assert.equal(i8.weights, i8.quantized)
    assert.equal(0, assert(oe.tfjs.load(FIX .. "convnet_f32/model.json")):info().quantized)
  end)

  it("a ZeroPadding2D read only by a convolution becomes its pads: the same bits as padding first", function()
    local r = refs_of(FIX .. "convnet_f32")
    local m = assert(oe.tfjs.load(FIX .. "convnet_f32/model.json"))
    local fused = m:output(r.x, "relu_a")
    local both = m:forward(r.x, { outputs = { "pad", "relu_a" } })  -- the padding asked for: run on its own
    same_bits(fused, both.relu_a, "relu_a")
    H.allclose(fused, r.layers.relu_a, TOL, "relu_a")
  end)

  it("NCHW input gives the NHWC input's bits", function()
    local r = refs_of(FIX .. "convnet_f32")
    local m = assert(oe.tfjs.load(FIX .. "convnet_f32/model.json"))
    local a = m:forward(r.x, { outputs = { "probs", "maxpool" } })
    local b = m:forward(core.permute(r.x, { 1, 4, 2, 3 }), { outputs = { "probs", "maxpool" }, layout = "nchw" })
    same_bits(b.probs, a.probs, "probs")
    same_bits(b.maxpool, a.maxpool, "maxpool")
  end)

  it("describes the model: layers in order, outputs, input shape; a Sequential without InputLayer gets one", function()
    local m = assert(oe.tfjs.load(FIX .. "convnet_f32/model.json"))
    local ls = m:layers()
    assert.equal(31, #ls)
    assert.same({ name = "image", class = "InputLayer" }, ls[1])
    assert.same({ "probs", "flat_fc", "token_softmax", "map_softmax" }, m.outputs)
    assert.same({ 9, 11, 3 }, m.input_shape)
    local s = assert(oe.tfjs.load(FIX .. "seqnet_f32/model.json"))
    assert.same({ name = "s_conv_input", class = "InputLayer" }, s:layers()[1])
    assert.same({ "s_out" }, s.outputs)
    local y = s:forward(refs_of(FIX .. "seqnet_f32").x)
    assert.same({ 3, 3 }, core.shape(y))
  end)

  it("reuses its buffers across calls and replans for another batch size", function()
    local r = refs_of(FIX .. "convnet_f32")
    local m = assert(oe.tfjs.load(FIX .. "convnet_f32/model.json"))
    local a = m:output(r.x, "probs")
    local bytes = m:arena_bytes()
    assert.is_true(bytes > 0)
    same_bits(m:output(r.x, "probs"), a, "second call")
    assert.equal(bytes, m:arena_bytes())
    local one = m:output(core.narrow(r.x, 1, 2, 1), "probs")
    H.allclose(one, core.narrow(a, 1, 2, 1), TOL, "batch of one")
    same_bits(m:output(r.x, "probs"), a, "back to the first shape")
    -- another thread count: replanned (scratch per thread), the same within the bound
    local before = core.get_num_threads()
    oe.set_num_threads(before == 1 and 2 or 1)
    H.allclose(m:output(r.x, "probs"), a, TOL, "other thread count")
    oe.set_num_threads(before)
  end)

  it("raises on wrong inputs, naming the model file and the layer", function()
    local m = assert(oe.tfjs.load(FIX .. "convnet_f32/model.json"))
    local p = FIX .. "convnet_f32/model.json"
    H.fails_with(function() m:forward(core.zeros({ 1, 9, 12, 3 })) end, p, "layer 'image' (InputLayer)", "(batch, 9, 12, 3)")
    H.fails_with(function() m:forward(core.zeros({ 1, 9, 11, 4 })) end, p, "(batch, 9, 11, 4)")
    H.fails_with(function() m:forward(core.zeros({ 9, 11 })) end, p, "layer 'image'")
    H.fails_with(function() m:output(core.zeros({ 1, 9, 11, 3 }), "nope") end, "no layer named 'nope'")
    H.fails_with(function() m:forward(core.zeros({ 1, 9, 11, 3 }), { layout = "chw" }) end, "layout must be")
    H.fails_with(function() m:forward(core.zeros({ 1, 9, 11, 3 }, "int32")) end, "float32")
    H.fails_with(function() oe.tfjs.load(42) end, "tfjs.load: path must be a string")
  end)
end)

describe("tfjs_images: nsfwjs's preprocessing of a batch in C", function()
  -- the step-by-step chain mobilenet_v2 used before, in tensor ops (the reference): gray
  -- repeated, float32 / 255, TF.js's align-corners resize unless already size x size
  local function chain(img, size)
    local s = core.shape(img)
    if s[3] == 1 then img = core.cat({ img, img, img }, 3) end
    local x = core.binary("div", core.to(img, "float32"), core.from_table({ 255 }))
    if s[1] ~= size or s[2] ~= size then x = core.tfjs_resize_bilinear_ac(x, size, size) end
    return core.reshape(x, { 1, size, size, 3 })
  end

  it("gives the chain's bits image by image: colour, gray, other sizes, already the size, 1 x 1", function()
    -- bits, legitimately: no sum is reordered (uint8 -> float is exact, x / 255 is one correctly
    -- rounded division on every CPU, and both sides call the same resize per image)
    local g = oe.Generator(3)
    local imgs = {}
    for i, s in ipairs({ { 224, 224, 3 }, { 256, 256, 3 }, { 28, 28, 1 }, { 300, 120, 3 }, { 1, 1, 3 }, { 224, 224, 1 } }) do
      imgs[i] = core.to(core.unary("muls", g:rand(s), 255.99), "uint8")
    end
    local before = oe.get_num_threads()
    finally(function() oe.set_num_threads(before) end)
    for _, threads in ipairs({ 1, 2 }) do
      oe.set_num_threads(threads)
      local got = core.tfjs_images(imgs, 224)
      assert.same({ #imgs, 224, 224, 3 }, core.shape(got))
      for i, img in ipairs(imgs) do
        same_bits(core.narrow(got, 1, i, 1), chain(img, 224), "image " .. i .. ", threads " .. threads)
      end
    end
    same_bits(core.tfjs_images({ imgs[3] }, 7), chain(imgs[3], 7), "size 7")
  end)

  it("refuses what is not a list of uint8 (H, W, 3) or (H, W, 1) images, naming the item", function()
    local ok = core.zeros({ 4, 4, 3 }, "uint8")
    H.fails_with(function() core.tfjs_images({}, 224) end, "tfjs_images", "expected 1..2^20 images")
    H.fails_with(function() core.tfjs_images({ ok, "x" }, 224) end, "image 2 is not a tensor")
    H.fails_with(function() core.tfjs_images({ core.zeros({ 4, 4, 3 }) }, 224) end, "image 1 must be uint8")
    H.fails_with(function() core.tfjs_images({ ok, core.zeros({ 4, 4, 2 }, "uint8") }, 224) end, "image 2 must be uint8")
    H.fails_with(function() core.tfjs_images({ core.zeros({ 4, 4 }, "uint8") }, 224) end, "image 1 must be uint8")
    H.fails_with(function() core.tfjs_images({ ok }, 0) end, "size must be in 1..16384")
  end)
end)

describe("tfjs: bad files give nil, message naming the file and the problem", function()
  local SRC = FIX .. "seqnet_u8/"
  local JSON = read_all(SRC .. "model.json")
  local BIN = read_all(SRC .. "group1-shard1of1.bin")

  -- a copy of seqnet_u8 with model.json (and optionally the shard) replaced
  local function variant(json, bin)
    local d = tmpdir()
    write(d .. "/model.json", json)
    if bin ~= false then write(d .. "/group1-shard1of1.bin", bin or BIN) end
    return d .. "/model.json", d
  end
  local function refused(json, bin, ...)
    local p, d = variant(json, bin)
    local m, err = oe.tfjs.load(p)
    assert.is_nil(m)
    has(err, p .. ": ", ...)
    os.execute("rm -rf '" .. d .. "'")
    return err
  end
  local function sub(s, from, to)
    local i, j = s:find(from, 1, true)
    assert(i, "fixture text not found: " .. from)
    return s:sub(1, i - 1) .. to .. s:sub(j + 1)
  end

  it("the unchanged copy loads (the cases below fail for their own reason)", function()
    local p, d = variant(JSON)
    assert.truthy(oe.tfjs.load(p))
    os.execute("rm -rf '" .. d .. "'")
  end)

  it("missing, empty, a folder, not JSON, not a layers model", function()
    local m, err = oe.tfjs.load("/nonexistent/model.json")
    assert.is_nil(m)
    has(err, "/nonexistent/model.json")
    refused("", nil, "invalid JSON at byte 0")
    local d = tmpdir()
    m, err = oe.tfjs.load(d)
    assert.is_nil(m)
    has(err, d, "not a regular file")
    refused("[1, 2]", nil, "not a JSON object")
    refused('{"format": "graph-model", "modelTopology": {}}', nil, "format 'graph-model' is not a layers model")
    refused('{"modelTopology": 3}', nil, "no modelTopology object")
  end)

  it("truncated at every byte: refused, naming the file", function()
    local p, d = variant(JSON)
    for n = 0, #JSON - 1, 7 do
      write(p, JSON:sub(1, n))
      local m, err = oe.tfjs.load(p)
      assert.is_nil(m)
      has(err, p .. ": ")
    end
    os.execute("rm -rf '" .. d .. "'")
  end)

  it("with flipped bytes: refused or loaded, never a crash; a loaded model runs or refuses its input", function()
    local p, d = variant(JSON)
    local rng = oe.Generator(5)
    local pos = core.totable(rng:randint(1, #JSON + 1, { 300 }))
    local val = core.totable(rng:randint(0, 256, { 300 }))
    local x = refs_of(FIX .. "seqnet_u8").x
    local loaded = 0
    for k = 1, 300 do
      write(p, JSON:sub(1, pos[k] - 1) .. string.char(val[k]) .. JSON:sub(pos[k] + 1))
      local m, err = oe.tfjs.load(p)
      if m then
        loaded = loaded + 1
        local ok, e2 = pcall(m.forward, m, x)
        if not ok then has(e2, p) end
      else
        has(err, p .. ": ")
      end
    end
    os.execute("rm -rf '" .. d .. "'")
    assert.is_true(loaded < 300)
  end)

  it("shards: missing, shorter or longer than the manifest, a path leaving the folder", function()
    refused(JSON, false, "weight file 'group1-shard1of1.bin' (group 1)", "cannot open")
    refused(JSON, BIN:sub(1, -2), "the manifest's weights take " .. #BIN .. " bytes, its 1 shard file(s) hold " .. (#BIN - 1))
    refused(JSON, BIN .. "x", "its 1 shard file(s) hold " .. (#BIN + 1))
    refused(sub(JSON, '"paths":["group1-shard1of1.bin"]', '"paths":["../group1-shard1of1.bin"]'), nil,
      "a path must be a relative file name inside the model's folder")
    refused(sub(JSON, '"paths":["group1-shard1of1.bin"]', '"paths":["/etc/passwd"]'), nil, "relative file name")
  end)

  it("an unknown layer class, bad options, activations and wiring", function()
    refused(sub(JSON, '"class_name":"MaxPooling2D"', '"class_name":"LSTM"'), nil, "layer 's_pool' (LSTM): unsupported layer class")
    refused(sub(JSON, '"activation":"relu6"', '"activation":"elu"'), nil, "layer 's_dw' (DepthwiseConv2D): activation 'elu' is not supported")
    refused(sub(JSON, '"padding":"valid"', '"padding":"full"'), nil, "layer 's_pool' (MaxPooling2D): padding must be 'same' or 'valid'")
    refused(sub(JSON, '"data_format":"channels_last"', '"data_format":"channels_first"'), nil, "data_format 'channels_first' is not supported")
    refused(sub(JSON, '"kernel_size":[3,2]', '"kernel_size":[3,-2]'), nil, "layer 's_conv' (Conv2D): 'kernel_size' must hold integers")
    refused(sub(JSON, '"name":"s_pool"', '"name":"s_dw"'), nil, "a second layer has this name")
    local cv = read_all(FIX .. "convnet_f32/model.json")
    local cbin = read_all(FIX .. "convnet_f32/group1-shard1of1.bin")
    refused(sub(cv, '[[["tanh",0,0,{}]]]', '[[["nothere",0,0,{}]]]'), cbin, "layer 'gap' (GlobalAveragePooling2D): inbound node names layer 'nothere'")
    -- a cycle: the first convolution reads the last layer of its branch
    refused(sub(cv, '"inbound_nodes":[[["pad",0,0,{}]]]', '"inbound_nodes":[[["bn_a",0,0,{}]]]'), cbin, "form a cycle")
    refused(sub(cv, '[[["tanh",0,0,{}]]]', '[[["tanh",1,0,{}]]]'), cbin, "shared layers, multi-output layers")
  end)

  it("the manifest: weights missing, mis-shaped, unused, repeated, of unknown dtypes, overflowing", function()
    refused(sub(JSON, '"name":"s_conv/bias"', '"name":"s_conv/biass"'), nil, "weight 's_conv/bias' is not in the manifest")
    refused(sub(JSON, '"name":"s_conv/kernel","shape":[3,2,2,4]', '"name":"s_conv/kernel","shape":[3,2,4,2]'), nil,
      "weight 's_conv/kernel' has shape (3, 2, 4, 2), expected (3, 2, ?0, 4)")
    refused(sub(JSON, '"dtype":"float32"', '"dtype":"int32"'), nil, "dtype must be float32")
    refused(sub(JSON, '"quantization":{"dtype":"uint8"', '"quantization":{"dtype":"int4"'), nil, "quantization dtype must be uint8, uint16 or float16")
    refused(sub(JSON, '"name":"s_conv/kernel","shape":[3,2,2,4]', '"name":"s_conv/kernel","shape":[4294967296,4294967296,2,4]'), nil,
      "weight 's_conv/kernel': more than 2^34 elements")
    refused(sub(JSON, '"name":"s_conv/kernel","shape":[3,2,2,4]', '"name":"s_conv/kernel","shape":[3,2,2,4,1,1,1]'), nil,
      "shape must be a list of at most 6 sizes")
    -- an extra weight nobody takes (the bytes added too, so that only the name is wrong)
    local extra = sub(JSON, '"weights":[', '"weights":[{"name":"ghost/kernel","shape":[1],"dtype":"float32"},')
    refused(extra, "\0\0\0\0" .. BIN, "weight 'ghost/kernel' belongs to no layer")
    local twice = sub(JSON, '"weights":[', '"weights":[{"name":"s_conv/bias","shape":[4],"dtype":"float32"},')
    refused(twice, string.rep("\0", 16) .. BIN, "weight 's_conv/bias' appears twice")
  end)

  it("dims that overflow at planning: an error naming the layer, nothing allocated", function()
    local cv = read_all(FIX .. "convnet_f32/model.json")
    local cbin = read_all(FIX .. "convnet_f32/group1-shard1of1.bin")
    local p, d = variant(sub(cv, '"padding":[[1,2],[0,1]]', '"padding":[[1048576,1048576],[1048576,1048576]]'), cbin)
    local m = assert(oe.tfjs.load(p))
    H.fails_with(function() m:output(core.zeros({ 1, 9, 11, 3 }), "pad") end, p, "layer 'pad' (ZeroPadding2D)", "more than 2^40 elements")
    -- through the convolution that takes the padding as its own pads
    H.fails_with(function() m:forward(core.zeros({ 1, 9, 11, 3 })) end, p, "layer 'conv_a' (Conv2D)", "too large")
    os.execute("rm -rf '" .. d .. "'")
    -- a reshape that does not fit
    p, d = variant(sub(cv, '"target_shape":[2,2,2]', '"target_shape":[3,3,3]'), cbin)
    m = assert(oe.tfjs.load(p))
    H.fails_with(function() m:output(core.zeros({ 1, 9, 11, 3 }), "reshape_map") end, "layer 'reshape_map' (Reshape): target_shape holds 27 elements")
    os.execute("rm -rf '" .. d .. "'")
  end)

  it("50,000 layers: loaded and run in linear time (no recursion along the chain)", function()
    local parts = { '{"class_name":"InputLayer","config":{"name":"in","batch_input_shape":[null,3],"dtype":"float32"}}' }
    for i = 1, 50000 do parts[#parts + 1] = string.format('{"class_name":"Dropout","config":{"name":"d%d","rate":0.5}}', i) end
    local json = '{"modelTopology":{"class_name":"Sequential","config":{"name":"s","layers":[' .. table.concat(parts, ",")
      .. ']}},"weightsManifest":[]}'
    local p, d = variant(json, false)
    local t0 = os.clock()
    local m = assert(oe.tfjs.load(p))
    local y = m:forward(oe.tensor({ { 1, 2, 3 } }))
    assert.same({ { 1, 2, 3 } }, core.totable(y))
    assert.is_true(os.clock() - t0 < 5, "took " .. (os.clock() - t0) .. " s")
    os.execute("rm -rf '" .. d .. "'")
  end)

  it("check_json: the model.json checks alone, on a string", function()
    assert.is_true(oe.tfjs.check_json(JSON))
    local ok, err = oe.tfjs.check_json(JSON:sub(1, 100))
    assert.is_nil(ok)
    has(err, "invalid JSON")
    H.fails_with(function() oe.tfjs.check_json(nil) end, "tfjs.check_json: text must be a string")
  end)
end)

describe("mobilenet_v2: nsfwjs's MobileNetV2 against TensorFlow.js (scripts/fetch-nsfwjs.sh)", function()
  local IMAGES = { raccoon = FIX .. "raccoon.jpg", ascent = FIX .. "ascent.png", photo = "spec/fixtures/frozen/photo.jpg" }
  local NAMES = { "raccoon", "ascent", "photo" }

  local function have_model()
    local f = io.open(MODEL_DIR .. "/model.json", "rb")
    if f then f:close() end
    assert(f, MODEL_DIR .. "/model.json is missing: run `sh scripts/fetch-nsfwjs.sh` first (make deps does; it fetches "
      .. "nsfwjs@4.3.0 from npm, SHA-256 checked, and converts its MobileNetV2 with node)")
  end
  local R = assert(oe.load(FIX .. "mobilenet_v2_ref.safetensors"))

  it("pooled features and class probabilities within 1e-4 of TF.js on three real images", function()
    have_model()
    local enc = assert(oe.encoders.create("mobilenet_v2", { dir = MODEL_DIR }))
    for _, name in ipairs(NAMES) do
      local img = assert(enc:load(IMAGES[name]))
      local x = enc:preprocess_image(img)
      -- the preprocessing itself: TF.js's values at rows/cols 100..103
      H.allclose(core.narrow(core.narrow(x, 2, 101, 4), 3, 101, 4), R["input:" .. name], 1e-7, name .. " input")
      local out = enc.model:forward(x, { outputs = { "flatten_1", "dense_3" } })
      H.allclose(out.flatten_1, R["pooled:" .. name], 1e-4, name .. " pooled")
      H.allclose(out.dense_3, R["probs:" .. name], 1e-4, name .. " probabilities")
    end
  end)

  it("the encoder: 49 tokens of 1280 (their mean is the pooled vector), or the pooled vector; batches", function()
    have_model()
    local map = assert(oe.encoders.create("mobilenet_v2", { dir = MODEL_DIR }))
    local pooled = assert(oe.encoders.create("mobilenet_v2", { dir = MODEL_DIR, output = "pooled" }))
    assert.equal(1280, map.dim)
    local imgs = {}
    for i, name in ipairs(NAMES) do imgs[i] = assert(map:load(IMAGES[name])) end
    local f, lengths = map:encode(imgs)
    assert.same({ 3, 49, 1280 }, core.shape(f))
    assert.same({ 49, 49, 49 }, lengths)
    local p, pl = pooled:encode(imgs)
    assert.same({ 3, 1, 1280 }, core.shape(p))
    assert.same({ 1, 1, 1 }, pl)
    for i, name in ipairs(NAMES) do
      local want = core.reshape(R["pooled:" .. name], { 1, 1, 1280 })
      H.allclose(core.narrow(p, 1, i, 1), want, 1e-4, name .. " pooled in a batch of 3")
      -- mean of 49 values in 0..6: rounding of the sum moves it by at most 49 u 6
      H.allclose(core.reshape(core.narrow(f, 1, i, 1):mean(2), { 1, 1, 1280 }), core.narrow(p, 1, i, 1),
        H.sum_tol(49, 6), name .. " mean of the tokens")
    end
    assert.is_true(map.id ~= pooled.id)
    assert.is_nil(map:check(core.zeros({ 3, 4, 4 })))
  end)

  it("an image's features have the same bits alone, in a batch, at 1 and 2 threads", function()
    -- bits, legitimately: a convolution's jobs follow one image's shape, never the batch or the
    -- thread count, so each image's products have the same shapes here as alone (same path, same
    -- shapes); spec/machine_spec.lua reruns this case on the Haswell and Prescott kernels
    have_model()
    local enc = assert(oe.encoders.create("mobilenet_v2", { dir = MODEL_DIR, output = "pooled" }))
    local imgs = {}
    for i, name in ipairs(NAMES) do imgs[i] = assert(enc:load(IMAGES[name])) end
    local before = oe.get_num_threads()
    finally(function() oe.set_num_threads(before) end)
    oe.set_num_threads(2)
    local batch = enc:encode(imgs)
    for _, threads in ipairs({ 1, 2 }) do
      oe.set_num_threads(threads)
      for i = 1, #imgs do
        same_bits(enc:encode({ imgs[i] }), core.narrow(batch, 1, i, 1), NAMES[i] .. " alone, threads " .. threads)
      end
      same_bits(enc:encode({ imgs[3], imgs[1] }), core.cat({ core.narrow(batch, 1, 3, 1), core.narrow(batch, 1, 1, 1) }, 1),
        "two of them, threads " .. threads)
    end
  end)

  it("a missing model: nil, message naming the file and the set-up command", function()
    local enc, err = oe.encoders.create("mobilenet_v2", { dir = "/nonexistent" })
    assert.is_nil(enc)
    has(err, "/nonexistent/model.json", "scripts/fetch-nsfwjs.sh")
    H.fails_with(function() oe.encoders.create("mobilenet_v2", { output = "logits" }) end, "option 'output' must be")
  end)
end)
