-- model_spec.lua: the OneEncoder model against the PyTorch mirror of the
-- original code (tools/oneencoder_mirror.py, fixtures in spec/fixtures/oneencoder,
-- tolerances from its README: embeddings, loss and step-0 gradients 1e-4
-- per-tensor relative; the 20-step loss trajectory 1e-3 relative per entry).
local oe = require "oneencoder"
local core = oe.core
local H = require "helpers"

local FIX = "spec/fixtures/oneencoder/"

local function load(name)
  local t, meta = oe.load(FIX .. name)
  assert(t, meta)
  return t, meta
end

-- max |a - b| / max |b| over the tensor
local function rel_err(a, b)
  local diff = core.reduce("max", core.unary("abs", core.binary("sub", a, b)))
  local scale = core.reduce("max", core.unary("abs", b))
  return core.item(diff) / math.max(core.item(scale), 1e-30)
end

local function small_model(meta)
  local m = oe.OneEncoder({ d = tonumber(meta.d), heads = tonumber(meta.heads), ff = tonumber(meta.ff),
    dropout = 0, pooling = "original" })
  return m
end

local function step1_model()
  local init, meta = load("small_step1_init.safetensors")
  local m = small_model(meta)
  local din = tonumber(meta.input_dim)
  m:add_modality("image", { input_dim = din })
  m:add_modality("text", { input_dim = din })
  local rep = m:load_state_dict(init, { strict = false })
  -- only the unused duplicate block may be left over
  for _, k in ipairs(rep.unexpected) do assert.truthy(k:match("^universal_projection_encoder%.transformer_encoder_block%.")) end
  assert.are.equal(0, #rep.missing)
  return m, init, meta
end

local feats = load("small_features.safetensors")

describe("OneEncoder against the PyTorch mirror (small config)", function()
  it("step 1: embeddings, loss and every step-0 gradient", function()
    local m = step1_model()
    local exp = load("small_step1_expected.safetensors")
    local ei = m:embed("image", feats["image.0"])
    local et = m:embed("text", feats["text.0"])
    assert.is_true(rel_err(ei, exp.image_embeddings) < 1e-4)
    assert.is_true(rel_err(et, exp.text_embeddings) < 1e-4)
    local loss = oe.train.clip_loss(ei, et, m:logit_scale())
    assert.is_true(math.abs(loss:item() - exp.loss:item()) / exp.loss:item() < 1e-4)
    loss:backward()
    local n = 0
    for _, p in ipairs(m:named_parameters()) do
      local ref = exp["grad." .. p[1]]
      if ref then
        n = n + 1
        assert(p[2].grad, "no gradient for " .. p[1])
        local e = rel_err(p[2].grad, ref)
        assert(e < 1e-4, string.format("gradient of %s off by %.3g", p[1], e))
      else
        assert.is_nil(p[2].grad)
      end
    end
    assert.are.equal(36, n)
  end)

  it("step 1: 20 AdamW steps follow the loss trajectory and final weights", function()
    local m, init = step1_model()
    local exp, meta = load("small_step1_expected.safetensors")
    local opt = oe.optim.AdamW(m:parameters(true), { lr = 1e-3, weight_decay = 1e-3 })
    local losses = exp.losses:totable()
    local nb = tonumber(meta.n_batches)
    for s = 0, 20 do
      local j = s % nb
      local loss = oe.train.clip_loss(m:embed("image", feats["image." .. j]), m:embed("text", feats["text." .. j]), m:logit_scale())
      local e = math.abs(loss:item() - losses[s + 1]) / losses[s + 1]
      assert(e < 1e-3, string.format("loss %d: %.6f vs %.6f", s, loss:item(), losses[s + 1]))
      if s < 20 then
        opt:zero_grad()
        loss:backward()
        opt:step()
      end
    end
    local d = tonumber(meta.d)
    for _, p in ipairs(m:named_parameters()) do
      local ref = exp["final." .. p[1]]
      if ref then
        if p[1]:match("in_proj_bias$") then -- the key slice has a zero true gradient: compare Q and V parts
          assert.is_true(rel_err(p[2]:narrow(1, 1, d), ref:narrow(1, 1, d)) < 1e-3)
          assert.is_true(rel_err(p[2]:narrow(1, 2 * d + 1, d), ref:narrow(1, 2 * d + 1, d)) < 1e-3)
          assert.is_true(core.item(core.reduce("max", core.unary("abs", core.binary("sub", p[2], ref)))) < 0.02)
        else
          local e = rel_err(p[2], ref)
          assert(e < 1e-3, string.format("final %s off by %.3g", p[1], e))
        end
      elseif init[p[1]] then -- no gradient: bit-identical
        assert.are.equal(init[p[1]]:to_bytes(), p[2]:to_bytes())
      end
    end
  end)

  it("step 2: frozen UP, new alignment layer and token; gradients only reach the new parts", function()
    local m = step1_model()
    local new = load("small_step2_init.safetensors")
    local exp, meta = load("small_step2_expected.safetensors")
    local et_before = m:embed("text", feats["text.0"]):to_bytes()
    m:freeze()
    m:add_modality("audio", { input_dim = tonumber(meta.input_dim) })
    local sd = {}
    for k, t in pairs(new) do
      local rest = k:match("^modality_token_encoder%.(.+)$")
      if rest then sd["audio_token_encoder." .. rest] = t
      elseif k ~= "temperature" then sd[k] = t end
    end
    local rep = m:load_state_dict(sd, { strict = false })
    assert.are.equal(0, #rep.unexpected)
    local opt = oe.optim.AdamW(m:parameters(true), { lr = 1e-3, weight_decay = 1e-3 })
    assert.are.equal(15, #m:parameters(true))
    local losses = exp.losses:totable()
    local nb = tonumber(meta.n_batches)
    for s = 0, 20 do
      local j = s % nb
      local et = m:embed("text", feats["text." .. j])
      local ea = m:embed("audio", feats["audio." .. j])
      if s == 0 then
        assert.is_true(rel_err(et, exp.text_embeddings) < 1e-4)
        assert.is_true(rel_err(ea, exp.audio_embeddings) < 1e-4)
      end
      local loss = oe.train.clip_loss(et, ea, m:logit_scale())
      local e = math.abs(loss:item() - losses[s + 1]) / losses[s + 1]
      assert(e < 1e-3, string.format("loss %d: %.6f vs %.6f", s, loss:item(), losses[s + 1]))
      if s < 20 then
        opt:zero_grad()
        loss:backward()
        if s == 0 then
          for _, p in ipairs(m:named_parameters()) do
            local ref = exp["grad." .. p[1]:gsub("^audio_token_encoder%.", "modality_token_encoder.")]
            if p[2].requires_grad then
              assert(ref, "no reference gradient for " .. p[1])
              assert(rel_err(p[2].grad, ref) < 1e-4, "step-2 gradient of " .. p[1])
            else
              assert.is_nil(p[2].grad)
            end
          end
        end
        opt:step()
      end
    end
    -- the earlier modalities are bit-identical after step 2
    assert.are.equal(et_before, m:embed("text", feats["text.0"]):to_bytes())
  end)
end)

describe("OneEncoder model", function()
  it("has the original parameter counts with 768-d inputs", function()
    oe.manual_seed(0)
    local m = oe.OneEncoder()
    m:add_modality("image", { input_dim = 768 })
    m:add_modality("text", { input_dim = 768 })
    assert.are.equal(1884038, m:num_parameters(true))
    m:freeze()
    m:add_modality("audio", { input_dim = 768 })
    assert.are.equal(305283, m:num_parameters(true))
    local text = m:summary()
    assert.truthy(text:match("audio_encoder%s+263168%s+0"))
  end)

  it("masked pooling is batch-invariant, original pooling is not", function()
    oe.manual_seed(1)
    for _, pooling in ipairs { "masked", "original" } do
      local m = oe.OneEncoder({ d = 16, ff = 32, pooling = pooling })
      m:add_modality("text", { input_dim = 8 })
      m:eval()
      local x = oe.randn({ 1, 3, 8 })
      local alone = m:embed("text", x, { 3 })
      local padded = oe.cat({ oe.cat({ x, oe.zeros({ 1, 4, 8 }) }, 2), oe.randn({ 1, 7, 8 }) }, 1)
      local together = m:embed("text", padded, { 3, 7 }):narrow(1, 1, 1)
      local e = rel_err(together, alone)
      if pooling == "masked" then assert.is_true(e < 1e-5) else assert.is_true(e > 1e-3) end
    end
  end)

  it("every fusion runs forward and backward; concatenation drops its tokens before pooling", function()
    for _, f in ipairs { "addition", "multiplication", "concatenation", "scaled_dot_product" } do
      oe.manual_seed(2)
      local m = oe.OneEncoder({ d = 16, ff = 32, fusion = f })
      m:add_modality("a", { input_dim = 8 })
      local r, _, lead = m:embed_sequence("a", oe.randn({ 2, 5, 8 }), { 5, 3 })
      assert.are.equal(f == "concatenation" and 15 or 0, lead)
      assert.are.equal(5 + lead, r:shape()[2])
      local e = m:embed("a", oe.randn({ 2, 5, 8 }), { 5, 3 })
      e:sum():backward()
      assert.truthy(m.a_encoder.projection_head.linear_layer1.weight.grad)
      assert.truthy(m.modality_token_encoder.a_token.grad)
    end
  end)

  it("embed_set embeds a whole feature set in eval mode and restores the mode", function()
    oe.manual_seed(4)
    local m = oe.OneEncoder({ d = 16, ff = 32 })
    m:add_modality("text", { input_dim = 8 })
    local set = oe.data.FeatureSet(oe.randn({ 5, 3, 8 }), { 3, 1, 2, 3, 2 })
    m:train()
    local all = m:embed_set("text", set, 2)  -- three batches of at most 2
    assert.is_true(m.training)
    m:eval()
    local x, l = set:batch({ 1, 2, 3, 4, 5 })
    local direct = oe.no_grad(function() return m:embed("text", x, l) end)
    -- batches of 2 against one of 5: other GEMM shapes, other summation orders. The forward chains
    -- sums of 8 (head), 16 (head, QKV, attention, out proj, ff), 32 (ff) products: relative
    -- error bound about (8 + 5 * 16 + 32) * u, normalisation keeping it relative
    assert.is_true(rel_err(all, direct) < H.sum_tol(8 + 5 * 16 + 32))
    assert.is_false(all.requires_grad == true)
  end)

  it("embed_set takes items in order of length and returns them in the set's order", function()
    oe.manual_seed(6)
    local m = oe.OneEncoder({ d = 16, ff = 32 })
    m:add_modality("text", { input_dim = 8 })
    local lens = { 7, 1, 4, 7, 2, 6, 3, 5, 1, 4 }
    local set = oe.data.FeatureSet(oe.randn({ 10, 7, 8 }), lens)
    local seen = {}
    local orig = set.batch
    set.batch = function(self, ids)
      for _, id in ipairs(ids) do seen[#seen + 1] = lens[id] end
      return orig(self, ids)
    end
    local all = m:embed_set("text", set, 3)
    set.batch = nil
    for i = 2, #seen do assert.is_true(seen[i - 1] <= seen[i]) end
    assert.are.equal(10, #seen)
    -- row i is item i: each against the item embedded alone (other shapes: the bound above)
    m:eval()
    for i = 1, 10 do
      local x, l = set:batch({ i })
      local one = oe.no_grad(function() return m:embed("text", x, l) end)
      assert.is_true(rel_err(all:narrow(1, i, 1), one) < H.sum_tol(8 + 5 * 16 + 32))
    end
    -- the original pooling (padding counted) keeps the set's order
    local m2 = oe.OneEncoder({ d = 16, ff = 32, pooling = "original" })
    m2:add_modality("text", { input_dim = 8 })
    seen = {}
    set.batch = function(self, ids)
      for _, id in ipairs(ids) do seen[#seen + 1] = id end
      return orig(self, ids)
    end
    m2:embed_set("text", set, 3)
    set.batch = nil
    assert.are.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, seen)
  end)

  it("rejects bad input with clear messages", function()
    local m = oe.OneEncoder({ d = 16, ff = 32 })
    m:add_modality("text", { input_dim = 8 })
    assert.has_error(function() m:embed("audio", oe.randn({ 1, 2, 8 })) end, nil)
    local ok, err = pcall(m.embed, m, "audio", oe.randn({ 1, 2, 8 }))
    assert.truthy(err:match("unknown modality 'audio'"))
    ok, err = pcall(m.embed, m, "text", oe.randn({ 1, 2, 9 }))
    assert.truthy(err:match("dim 9, the modality expects 8"))
    ok, err = pcall(m.embed, m, "text", oe.randn({ 2, 2, 8 }), { 1, 3 })
    assert.truthy(err:match("length 3 of item 2 is outside 1%.%.2"))
    ok, err = pcall(m.add_modality, m, "text", { input_dim = 8 })
    assert.truthy(err:match("already exists"))
    ok, err = pcall(oe.OneEncoder, { fusion = "sum" })
    assert.truthy(err:match("unknown fusion 'sum'"))
  end)

  it("refuses modality names that would replace or shadow a part of the model", function()
    local m = oe.OneEncoder({ d = 16, ff = 32 })
    local up = m.universal_projection_encoder
    local function refused(model, name, why)
      local ok, err = pcall(model.add_modality, model, name, { input_dim = 8 })
      assert.is_false(ok, name .. " was accepted")
      assert.truthy(tostring(err):find("add_modality: the name '" .. name .. "' is not allowed: " .. why, 1, true), tostring(err))
      assert.is_nil(model.modalities[name])
    end
    -- the Universal Projection and the step-1 token group, before and after they exist
    refused(m, "universal_projection", "its encoder would replace the model's 'universal_projection_encoder'")
    refused(m, "modality_token", "its encoder would replace the model's 'modality_token_encoder'")
    assert.are.equal(up, m.universal_projection_encoder)
    m:add_modality("image", { input_dim = 8 })
    local group = m.modality_token_encoder
    refused(m, "modality_token", "its encoder would replace the model's 'modality_token_encoder'")
    assert.are.equal(group, m.modality_token_encoder)
    -- a token named like a method of the token encoder (add_token)
    refused(m, "add", "its token 'add_token' would replace a field of the token encoder")
    m:add_modality("text_token", { input_dim = 8 })  -- fine in step 1: text_token_encoder
    m:freeze()
    -- step 2 "text" would need text_token_encoder for its own token group
    refused(m, "text", "it would replace the model's field or part 'text_token_encoder'")
    m:add_modality("audio", { input_dim = 8 })
    refused(m, "audio_token", "it would replace the model's field or part 'audio_token_encoder'")
    refused(m, "add", "its token 'add_token' would replace a field of the token encoder")
    -- nothing was replaced: the state dict has exactly the parts of image, text_token and audio
    local prefixes = {}
    for _, name in ipairs(m:state_dict_names()) do prefixes[name:match("^[^.]+")] = true end
    assert.are.same({ universal_projection_encoder = true, temperature = true, image_encoder = true,
      modality_token_encoder = true, text_token_encoder = true, audio_encoder = true, audio_token_encoder = true }, prefixes)
    assert.are.equal(up, m.universal_projection_encoder)
    assert.are.same({ "image", "text_token", "audio" }, m.order)
  end)

  it("rebuilds itself from its checkpoint metadata", function()
    oe.manual_seed(3)
    local m = oe.OneEncoder({ d = 16, ff = 32, fusion = "multiplication" })
    m:add_modality("image", { input_dim = 8 }); m:add_modality("text", { input_dim = 6 })
    m:freeze(); m:add_modality("audio", { input_dim = 5 })
    local m2 = assert(oe.model.from_metadata(m:config_metadata()))
    m2:load_state_dict(m:state_dict())
    m:eval(); m2:eval()
    local x = oe.randn({ 2, 3, 5 })
    assert.are.equal(m:embed("audio", x):to_bytes(), m2:embed("audio", x):to_bytes())
    assert.are.equal("multiplication", m2.cfg.fusion)
    -- after freeze, only the audio alignment layer (5->16, 16->16, LayerNorm) and its token + MLP train
    local al = 5 * 16 + 16 + 16 * 16 + 16 + 2 * 16
    local tok = 3 + (3 * 64 + 64) + (64 * 128 + 128) + (128 * 16 + 16) + 2 * 16
    assert.are.equal(al + tok, m2:num_parameters(true))
    assert.are.equal(m:num_parameters(true), m2:num_parameters(true))
  end)

  it("the layout of a config, computed without building, is the built model's state dict; read() recovers the config", function()
    local layout = require "oneencoder.model.layout"
    local cases = {
      { cfg = { d = 8, heads = 2, ff = 12 }, mods = { { "image", 5, 1 }, { "text", 4, 1 } } },
      { cfg = { d = 8, heads = 2, ff = 12, layers = 3, fusion = "multiplication", temperature = "learnable" },
        mods = { { "image", 5, 1 } } },
      { cfg = { d = 8, heads = 4, ff = 6, fusion = "concatenation" }, mods = { { "image", 5, 1 }, { "text", 4, 1 } } },
      { cfg = { d = 8, heads = 2, ff = 12, layers = 2, fusion = "scaled_dot_product" },
        mods = { { "image", 5, 1 }, { "text", 4, 1 }, { "audio", 7, 2 }, { "video", 3, 2 } } },
      -- a step-1 modality whose encoder reads like a step-2 token group
      { cfg = { d = 8, heads = 2, ff = 12 }, mods = { { "image", 5, 1 }, { "text_token", 4, 1 } } },
    }
    for n, c in ipairs(cases) do
      local mods = {}
      for i, e in ipairs(c.mods) do mods[i] = { name = e[1], input_dim = e[2], stage = e[3] } end
      local m = oe.model.build(c.cfg, mods)
      local want = {}
      for name, t in pairs(m:state_dict()) do want[name] = t:shape() end
      local got, total = layout.state_shapes(m.cfg, mods)
      assert.are.same(want, got, "case " .. n)
      assert.are.equal(m:num_parameters(), total, "case " .. n)
      local info = {}
      for name, s in pairs(got) do info[name] = { shape = s } end
      local facts = assert(layout.read(info))
      assert.are.equal(m.cfg.d, facts.d)
      assert.are.equal(m.cfg.ff, facts.ff)
      assert.are.equal(m.cfg.layers, facts.layers)
      assert.are.equal(m.cfg.token_size, facts.token_size)
      assert.are.equal(m.cfg.fusion == "scaled_dot_product", facts.sdp)
      assert.are.same(mods, facts.mods, "case " .. n)
    end
  end)

  it("the scaled-dot-product attention has the original's names; the old ones are read by load_state_dict", function()
    oe.manual_seed(5)
    local m = oe.OneEncoder({ d = 8, heads = 2, ff = 8, fusion = "scaled_dot_product" })
    m:add_modality("image", { input_dim = 4 })
    local names = {}
    for _, n in ipairs(m:state_dict_names()) do
      if n:find("query", 1, true) or n:find("key", 1, true) or n:find("value", 1, true) then names[#names + 1] = n end
    end
    table.sort(names)
    assert.are.same({
      "universal_projection_encoder.scaled_dot_product.key.bias", "universal_projection_encoder.scaled_dot_product.key.weight",
      "universal_projection_encoder.scaled_dot_product.query.bias", "universal_projection_encoder.scaled_dot_product.query.weight",
      "universal_projection_encoder.scaled_dot_product.value.bias", "universal_projection_encoder.scaled_dot_product.value.weight",
    }, names)
    local old = {}
    for k, t in pairs(m:state_dict()) do old[(k:gsub("scaled_dot_product%.", ""))] = t:clone() end
    oe.manual_seed(6)
    local m2 = oe.OneEncoder({ d = 8, heads = 2, ff = 8, fusion = "scaled_dot_product" })
    m2:add_modality("image", { input_dim = 4 })
    local rep = m2:load_state_dict(old)
    assert.are.same({}, rep.missing)
    assert.are.same({}, rep.unexpected)
    m:eval(); m2:eval()
    local x = oe.randn({ 2, 3, 4 })
    assert.are.equal(m:embed("image", x):to_bytes(), m2:embed("image", x):to_bytes())
  end)

  it("from_metadata refuses a malformed modalities list with nil, message", function()
    local cases = {
      { "image:8:1,image:8:1", "metadata modalities: modality 'image' is listed twice" },
      { "audio:8:2,image:8:1", "metadata modalities: step-1 modality 'image' is listed after a step-2 one" },
      { "image:0:1", 'metadata modalities: entry "image:0:1" is not name:input_dim:stage' },
      { "image:99999999999:1", 'metadata modalities: entry "image:99999999999:1" is not name:input_dim:stage' },
      { "1mage:8:1", 'metadata modalities: entry "1mage:8:1" is not name:input_dim:stage' },
    }
    for _, c in ipairs(cases) do
      local m, err = oe.model.from_metadata({ format = "oneencoder-1", ["config.d"] = "8", ["config.heads"] = "2", modalities = c[1] })
      assert.is_nil(m)
      assert.truthy(err:find(c[2], 1, true), err)
    end
  end)
end)
