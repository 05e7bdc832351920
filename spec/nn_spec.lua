-- Module API: names, state dicts, train/eval, freeze, zero_grad, parameter
-- counts and PyTorch's default initialisations.
local oe = require "oneencoder"
local H = require "helpers"
local fails_with = H.fails_with
local nn = oe.nn


local function names(m)
  local out = {}
  for _, p in ipairs(m:named_parameters()) do out[#out + 1] = p[1] end
  return out
end

describe("named_parameters", function()
  it("TransformerEncoderLayer lists PyTorch's dotted names in PyTorch's order", function()
    local layer = nn.TransformerEncoderLayer(16, 4, { dim_feedforward = 32 })
    assert.are.same({
      "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight", "self_attn.out_proj.bias",
      "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias",
      "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias",
    }, names(layer))
    local shapes = {}
    for _, p in ipairs(layer:named_parameters()) do shapes[p[1]] = p[2]:shape() end
    assert.are.same({ 48, 16 }, shapes["self_attn.in_proj_weight"])
    assert.are.same({ 48 }, shapes["self_attn.in_proj_bias"])
    assert.are.same({ 32, 16 }, shapes["linear1.weight"])
    assert.are.same({ 16, 32 }, shapes["linear2.weight"])
  end)

  it("Sequential children are named 0, 1, 2 ... (modules without parameters keep their number)", function()
    local s = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2, { bias = false }))
    assert.are.same({ "0.weight", "0.bias", "2.weight" }, names(s))
    assert.are.equal(s:get(3), s["2"])
  end)

  it("a tensor shared by two modules is listed once, under its first name", function()
    local a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    local s = nn.Sequential(a, b)
    b:register_parameter("weight", a.weight)
    assert.are.same({ "0.weight", "0.bias", "1.bias" }, names(s))
  end)
end)

describe("num_parameters", function()
  it("TransformerEncoderLayer(256, 4, ff 2048) has 1,315,072 parameters like PyTorch", function()
    local layer = nn.TransformerEncoderLayer(256, 4, { dim_feedforward = 2048 })
    -- in_proj 3*256*256 + 768, out_proj 256*256 + 256, linear1 256*2048 + 2048,
    -- linear2 2048*256 + 256, two LayerNorms 4*256
    assert.are.equal(1315072, layer:num_parameters())
  end)
  it("counts only trainable parameters when asked", function()
    local s = nn.Sequential(nn.Linear(10, 5), nn.Linear(5, 2))
    assert.are.equal(55 + 12, s:num_parameters())
    s:get(1):freeze()
    assert.are.equal(12, s:num_parameters(true))
    assert.are.equal(67, s:num_parameters())
    assert.are.equal(2, #s:parameters(true))
  end)
end)

describe("state_dict and load_state_dict", function()
  it("state_dict maps names to the module's own tensors", function()
    local m = nn.Linear(3, 2)
    local sd = m:state_dict()
    assert.are.equal(m.weight, sd.weight)
    assert.are.equal(m.bias, sd.bias)
  end)

  it("loads values by name into another module of the same shape", function()
    local a, b = nn.Sequential(nn.Linear(3, 2), nn.LayerNorm(2)), nn.Sequential(nn.Linear(3, 2), nn.LayerNorm(2))
    oe.no_grad(function() a:get(2).bias:fill_(0.25) end)
    local r = b:load_state_dict(a:state_dict())
    assert.are.same({}, r.missing)
    assert.are.same({}, r.unexpected)
    assert.are.same({}, r.mismatched)
    assert.are.equal(a:get(1).weight:to_bytes(), b:get(1).weight:to_bytes())
    assert.are.same({ 0.25, 0.25 }, b:get(2).bias:totable())
    -- a copy, not an alias
    assert.is_false(oe.core.same_storage(a:get(1).weight, b:get(1).weight))
  end)

  it("strict loading names missing and unexpected keys and copies nothing", function()
    local m = nn.Sequential(nn.Linear(3, 2), nn.LayerNorm(2))
    local before = m:get(1).weight:to_bytes()
    local sd = { ["0.weight"] = oe.zeros(2, 3), ["1.weight"] = oe.ones(2), ["1.bias"] = oe.zeros(2), ["2.weight"] = oe.zeros(1) }
    fails_with(function() m:load_state_dict(sd) end, "load_state_dict", "missing keys: 0.bias", "unexpected keys: 2.weight")
    assert.are.equal(before, m:get(1).weight:to_bytes())
  end)

  it("non-strict loading reports missing and unexpected keys and loads the rest", function()
    local m = nn.Sequential(nn.Linear(3, 2), nn.LayerNorm(2))
    local sd = { ["0.weight"] = oe.zeros(2, 3), ["1.weight"] = oe.full({ 2 }, 3), ["extra.x"] = oe.zeros(1) }
    local r = m:load_state_dict(sd, { strict = false })
    assert.are.same({ "0.bias", "1.bias" }, r.missing)
    assert.are.same({ "extra.x" }, r.unexpected)
    assert.are.same({}, r.mismatched)
    assert.are.same({ { 0, 0, 0 }, { 0, 0, 0 } }, m:get(1).weight:totable())
    assert.are.same({ 3, 3 }, m:get(2).weight:totable())
  end)

  it("mis-shaped keys are an error even when not strict, naming key and both shapes", function()
    local m = nn.Linear(3, 2)
    fails_with(function() m:load_state_dict({ weight = oe.zeros(3, 2), bias = oe.zeros(2) }) end,
      "mismatched shapes", "weight: expected (2, 3), got (3, 2)")
    fails_with(function() m:load_state_dict({ weight = oe.zeros(6), bias = oe.zeros(2) }, { strict = false }) end,
      "weight: expected (2, 3), got (6,)")
  end)
end)

describe("train and eval", function()
  it("eval turns dropout off in every submodule; train turns it back on", function()
    local layer = nn.TransformerEncoderLayer(8, 2, { dim_feedforward = 16, dropout = 0.5 })
    assert.is_true(layer.training)
    layer:eval()
    for _, m in ipairs(layer:modules()) do assert.is_false(m.training) end
    local x = oe.randn(2, 3, 8)
    local a, b = layer(x), layer(x)
    assert.are.equal(a:to_bytes(), b:to_bytes())
    layer:train()
    assert.is_true(layer.dropout.training)
    oe.manual_seed(1)
    local c = layer(x)
    oe.manual_seed(2)
    local d = layer(x)
    assert.are_not.equal(c:to_bytes(), d:to_bytes())
    oe.manual_seed(1)
    assert.are.equal(c:to_bytes(), layer(x):to_bytes())
  end)

  it("nn.Dropout zeroes in training and is the identity in eval", function()
    local d = nn.Dropout(0.5)
    local x = oe.ones(1000)
    oe.manual_seed(3)
    local y = d(x)
    local zeros = y:eq(0):sum():item()
    assert.is_true(zeros > 400 and zeros < 600)
    d:eval()
    assert.are.equal(x:to_bytes(), d(x):to_bytes())
    fails_with(function() nn.Dropout(1) end, "Dropout", "p must be in [0, 1)")
  end)
end)

describe("freeze, unfreeze, zero_grad", function()
  it("freeze stops gradients reaching parameters; unfreeze restores them", function()
    local m = nn.Linear(3, 2)
    m:freeze()
    for _, p in ipairs(m:parameters()) do assert.is_false(p.requires_grad) end
    local x = oe.randn(4, 3)
    x.requires_grad = true
    m(x):sum():backward()
    assert.is_nil(m.weight.grad)
    assert.is_not_nil(x.grad)
    m:unfreeze()
    m(x):sum():backward()
    assert.is_not_nil(m.weight.grad)
  end)

  it("zero_grad clears every parameter's gradient", function()
    local m = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    m(oe.randn(4, 3)):sum():backward()
    for _, p in ipairs(m:parameters()) do assert.is_not_nil(p.grad) end
    m:zero_grad()
    for _, p in ipairs(m:parameters()) do assert.is_nil(p.grad) end
  end)
end)

describe("default initialisations (PyTorch)", function()
  it("Linear: weight and bias uniform in +-1/sqrt(in)", function()
    oe.manual_seed(0)
    local m = nn.Linear(400, 300)
    local bound = 1 / 20
    assert.is_true(m.weight:abs():max():item() <= bound)
    assert.is_true(m.weight:abs():max():item() > 0.99 * bound)
    assert.is_true(math.abs(m.weight:mean():item()) < 0.001)
    -- variance of U(-b, b) is b^2 / 3
    local var = m.weight:square():mean():item()
    assert.is_true(math.abs(var - bound * bound / 3) < 0.02 * bound * bound)
    assert.is_true(m.bias:abs():max():item() <= bound)
  end)

  it("MultiheadAttention: xavier-uniform in_proj over (3d, d), zero biases", function()
    oe.manual_seed(0)
    local m = nn.MultiheadAttention(64, 4)
    local bound = math.sqrt(6 / (64 + 192))
    assert.is_true(m.in_proj_weight:abs():max():item() <= bound)
    assert.is_true(m.in_proj_weight:abs():max():item() > 0.98 * bound)
    assert.are.equal(0, m.in_proj_bias:abs():max():item())
    assert.are.equal(0, m.out_proj.bias:abs():max():item())
    fails_with(function() nn.MultiheadAttention(10, 4) end, "MultiheadAttention", "not divisible")
  end)

  it("LayerNorm: weight 1, bias 0; Embedding: N(0, 1)", function()
    local ln = nn.LayerNorm(5)
    assert.are.same({ 1, 1, 1, 1, 1 }, ln.weight:totable())
    assert.are.same({ 0, 0, 0, 0, 0 }, ln.bias:totable())
    oe.manual_seed(0)
    local e = nn.Embedding(1000, 50)
    assert.is_true(math.abs(e.weight:mean():item()) < 0.01)
    assert.is_true(math.abs(e.weight:square():mean():item() - 1) < 0.02)
  end)
end)

describe("layers", function()
  it("Linear with a wrong input size names linear and both shapes", function()
    local m = nn.Linear(5, 4)
    fails_with(function() m(oe.zeros(2, 3)) end, "linear", "(2, 3)", "(4, 5)")
  end)

  it("Embedding looks rows up by 0-based ids and rejects out-of-range ids", function()
    local e = nn.Embedding(3, 2)
    oe.no_grad(function() e.weight:copy_(oe.tensor({ { 1, 2 }, { 3, 4 }, { 5, 6 } })) end)
    assert.are.same({ { { 5, 6 }, { 1, 2 } } }, e(oe.tensor({ { 2, 0 } }, "int64")):totable())
    fails_with(function() e(oe.tensor({ 3 }, "int64")) end, "index_select", "id 3", "0..2")
  end)

  it("GELU module picks the erf or tanh form", function()
    local x = oe.tensor({ 1 })
    assert.is_true(math.abs(nn.GELU()(x):item() - 0.8413447461) < 1e-6)
    local k = math.sqrt(2 / math.pi)
    assert.is_true(math.abs(nn.GELU({ approximate = "tanh" })(x):item() - 0.5 * (1 + math.tanh(k * 1.044715))) < 1e-6)
  end)

  it("MultiheadAttention returns (B, L, D) outputs and (B, H, L, S) weights that sum to 1", function()
    local m = nn.MultiheadAttention(8, 2)
    local out, w = m(oe.randn(2, 3, 8), oe.randn(2, 4, 8), oe.randn(2, 4, 8))
    assert.are.same({ 2, 3, 8 }, out:shape())
    assert.are.same({ 2, 2, 3, 4 }, w:shape())
    for _, s in ipairs(w:sum(-1):reshape(-1):totable()) do assert.is_true(math.abs(s - 1) < 1e-6) end
  end)

  it("TransformerEncoderLayer keeps (B, L, D) and a padded key changes nothing for the others", function()
    oe.manual_seed(4)
    local layer = nn.TransformerEncoderLayer(8, 2, { dim_feedforward = 16, dropout = 0 })
    local x = oe.randn(1, 3, 8)
    local mask = oe.tensor({ { 0, 0, 1 } }, "uint8")
    local y1 = layer(x, { key_padding_mask = mask })
    -- change the padded token: the outputs at the real positions must not move
    local x2 = x:clone()
    x2:set_slice(2, 3, oe.randn(1, 1, 8))
    local y2 = layer(x2, { key_padding_mask = mask })
    assert.are.same({ 1, 3, 8 }, y1:shape())
    assert.are.equal(y1:narrow(2, 1, 2):to_bytes(), y2:narrow(2, 1, 2):to_bytes())
  end)

  it("tostring describes the module tree", function()
    local s = tostring(nn.Sequential(nn.Linear(3, 2), nn.ReLU()))
    assert.truthy(s:find("Sequential", 1, true))
    assert.truthy(s:find("Linear(3 -> 2)", 1, true))
  end)
end)
