-- Finite-difference gradient checks of every differentiable op and layer, and
-- the autograd semantics (shared modules, frozen modules, no_grad, detach,
-- accumulation). Tolerance (see spec/gradcheck.lua for the reasoning): per
-- element |analytic - numeric| <= 2e-3 + 2e-2 * |numeric|, central
-- differences with h = 1e-2 accumulated in double; non-smooth ops get inputs
-- kept further than h from their kinks.
local oe = require "oneencoder"
local gc = require "gradcheck"
local F, nn = oe.F, oe.nn

local U = gc.uniform
local function check(f, inputs, opts)
  local ok, msg = gc.check(f, inputs, opts)
  assert(ok, msg)
end
local function ids(t) return oe.tensor(t, "int64") end

describe("gradcheck helper", function()
  it("accepts a correct backward", function()
    local ok = gc.check(function(x) return x:tanh() end, { U({ 3, 4 }, -2, 2, 1) })
    assert.is_true(ok)
  end)
  it("rejects a wrong backward (factor 2) and names the element", function()
    local A = require "oneencoder.autograd"
    local function bad_square(x)
      local y = oe.core.unary("square", x)
      return A.record(y, function(g) return oe.core.unary("muls", oe.core.binary("mul", g, x), 4) end, x)
    end
    local ok, msg = gc.check(bad_square, { U({ 2, 3 }, 0.5, 1.5, 2) })
    assert.is_false(ok)
    assert.truthy(msg:find("input 1 element", 1, true))
  end)
  it("rejects a missing gradient", function()
    local ok, msg = gc.check(function(x, y) return x * y:detach() end, { U({ 3 }, 0.5, 1, 3), U({ 3 }, 0.5, 1, 4) })
    assert.is_false(ok)
    assert.truthy(msg:find("input 2", 1, true))
  end)
end)

describe("gradcheck: elementwise binary ops with broadcasting", function()
  local B, L, D = 2, 3, 4
  local cases = {
    { "same shape", { B, L, D }, { B, L, D } },
    { "row vector (D) vs (B,L,D)", { B, L, D }, { D } },
    { "(B,1) vs (B,D)", { B, 1 }, { B, D } },
    { "(B,D) vs (B,1)", { B, D }, { B, 1 } },
    { "0-dim scalar tensor vs (B,D)", { B, D }, {} },
    { "(1,L,1) vs (B,1,D)", { 1, L, 1 }, { B, 1, D } },
  }
  for _, c in ipairs(cases) do
    local name, sa, sb = c[1], c[2], c[3]
    it("add " .. name, function() check(function(a, b) return a + b end, { U(sa, -1, 1, 11), U(sb, -1, 1, 12) }) end)
    it("sub " .. name, function() check(function(a, b) return a - b end, { U(sa, -1, 1, 13), U(sb, -1, 1, 14) }) end)
    it("mul " .. name, function() check(function(a, b) return a * b end, { U(sa, -1, 1, 15), U(sb, -1, 1, 16) }) end)
    it("div " .. name, function()
      check(function(a, b) return a / b end, { U(sa, -1, 1, 17), gc.away_from_zero(sb, 0.5, 1.5, 18) })
    end)
  end
  it("maximum of tensors (distinct values)", function()
    local a = gc.distinct({ 2, 6 }, 0.1, 1)
    local b = gc.distinct({ 2, 6 }, 0.1, 2) + 0.05
    check(function(x, y) return oe.maximum(x, y) end, { a, b })
  end)
  it("maximum with a broadcast row", function()
    local a = gc.distinct({ 3, 4 }, 0.1, 3)
    local b = gc.distinct({ 4 }, 0.2, 4) + 0.05
    check(function(x, y) return oe.maximum(x, y) end, { a, b })
  end)
end)

describe("gradcheck: tensor-number ops", function()
  local x = function() return gc.away_from_zero({ 3, 4 }, 0.3, 2, 21) end
  it("x + 2", function() check(function(a) return a + 2 end, { x() }) end)
  it("2 + x", function() check(function(a) return 2 + a end, { x() }) end)
  it("x - 2", function() check(function(a) return a - 2 end, { x() }) end)
  it("2 - x", function() check(function(a) return 2 - a end, { x() }) end)
  it("x * 3", function() check(function(a) return a * 3 end, { x() }) end)
  it("3 * x", function() check(function(a) return 3 * a end, { x() }) end)
  it("x / 4", function() check(function(a) return a / 4 end, { x() }) end)
  it("4 / x", function() check(function(a) return 4 / a end, { x() }, { h = 2e-3 }) end)
  it("add with alpha", function() check(function(a, b) return oe.add(a, b, 0.5) end, { x(), U({ 3, 4 }, -1, 1, 22) }) end)
  it("neg (unary minus and :neg())", function()
    check(function(a) return -a end, { x() })
    check(function(a) return a:neg() end, { x() })
  end)
end)

describe("gradcheck: unary ops", function()
  local pos = function() return U({ 3, 5 }, 0.5, 2, 31) end
  local any = function() return U({ 3, 5 }, -2, 2, 32) end
  local nz = function() return gc.away_from_zero({ 3, 5 }, 0.05, 2, 33) end
  it("exp", function() check(function(a) return a:exp() end, { any() }) end)
  it("log", function() check(function(a) return a:log() end, { pos() }) end)
  it("sqrt", function() check(function(a) return a:sqrt() end, { pos() }) end)
  it("rsqrt", function() check(function(a) return a:rsqrt() end, { pos() }) end)
  it("pow 2, 3, 0.5, -1.5", function()
    check(function(a) return a:pow(2) end, { any() })
    check(function(a) return a:pow(3) end, { any() })
    check(function(a) return a:pow(0.5) end, { pos() })
    check(function(a) return a:pow(-1.5) end, { pos() })
    check(function(a) return a ^ 3 end, { any() })
  end)
  it("clamp (both bounds, lower only, upper only)", function()
    local x = gc.distinct({ 4, 6 }, 0.07, 34) -- values (k - 12) * 0.07: 0.035 from the bounds below
    check(function(a) return a:clamp(-0.455, 0.665) end, { x })
    check(function(a) return a:clamp(-0.455) end, { x })
    check(function(a) return a:clamp(nil, 0.665) end, { x })
  end)
  it("abs", function() check(function(a) return a:abs() end, { nz() }) end)
  it("tanh", function() check(function(a) return a:tanh() end, { any() }) end)
  it("sigmoid", function() check(function(a) return a:sigmoid() end, { any() }) end)
  it("relu", function() check(function(a) return a:relu() end, { nz() }) end)
  it("gelu (erf)", function() check(function(a) return a:gelu() end, { U({ 3, 5 }, -3, 3, 35) }) end)
  it("gelu (tanh approximation)", function() check(function(a) return a:gelu("tanh") end, { U({ 3, 5 }, -3, 3, 36) }) end)
  it("square", function() check(function(a) return a:square() end, { any() }) end)
end)

describe("gradcheck: reductions", function()
  local x = function() return U({ 2, 3, 4 }, -1, 1, 41) end
  it("sum over all", function() check(function(a) return a:sum() end, { x() }) end)
  it("sum along dims 1, 2, -1", function()
    check(function(a) return a:sum(1) end, { x() })
    check(function(a) return a:sum(2) end, { x() })
    check(function(a) return a:sum(-1) end, { x() })
  end)
  it("sum keepdim", function() check(function(a) return a:sum(2, true) end, { x() }) end)
  it("mean over all", function() check(function(a) return a:mean() end, { x() }) end)
  it("mean along dims, keepdim", function()
    check(function(a) return a:mean(1) end, { x() })
    check(function(a) return a:mean(-1, true) end, { x() })
    check(function(a) return a:mean(2, false) end, { x() })
  end)
  local d = function() return gc.distinct({ 2, 3, 4 }, 0.05, 42) end
  it("max along a dim (1, 2, 3, keepdim)", function()
    check(function(a) return (a:max(1)) end, { d() })
    check(function(a) return (a:max(2)) end, { d() })
    check(function(a) return (a:max(3, true)) end, { d() })
  end)
  it("min along a dim", function()
    check(function(a) return (a:min(2)) end, { d() })
    check(function(a) return (a:min(-1, true)) end, { d() })
  end)
  it("max and min over all", function()
    check(function(a) return (a:max()) end, { d() })
    check(function(a) return (a:min()) end, { d() })
  end)
end)

describe("gradcheck: matmul", function()
  it("2D (3,4) x (4,5)", function()
    check(function(a, b) return oe.matmul(a, b) end, { U({ 3, 4 }, -1, 1, 51), U({ 4, 5 }, -1, 1, 52) })
  end)
  it("batched 3D (2,3,4) x (2,4,5)", function()
    check(function(a, b) return oe.matmul(a, b) end, { U({ 2, 3, 4 }, -1, 1, 53), U({ 2, 4, 5 }, -1, 1, 54) })
  end)
  it("ND x 2D (2,3,4) x (4,5) and (2,2,3,4) x (4,5)", function()
    check(function(a, b) return oe.matmul(a, b) end, { U({ 2, 3, 4 }, -1, 1, 55), U({ 4, 5 }, -1, 1, 56) })
    check(function(a, b) return oe.matmul(a, b) end, { U({ 2, 2, 3, 4 }, -1, 1, 57), U({ 4, 5 }, -1, 1, 58) })
  end)
end)

describe("gradcheck: views and copies", function()
  local x = function() return U({ 2, 3, 4 }, -1, 1, 61) end
  it("reshape, view, flatten, unsqueeze, squeeze", function()
    check(function(a) return a:reshape(4, 6) * a:reshape({ 4, 6 }) end, { x() })
    check(function(a) return a:view({ 6, -1 }) end, { x() })
    check(function(a) return a:flatten() end, { x() })
    check(function(a) return a:unsqueeze(2):squeeze(2) * a end, { x() })
    check(function(a) return a:reshape(2, 1, 12):squeeze() end, { x() })
  end)
  it("clone", function() check(function(a) return a:clone() * a end, { x() }) end)
  it("narrow along dim 1 (view) and inner dims (copy)", function()
    check(function(a) return a:narrow(1, 2, 1) end, { x() })
    check(function(a) return a:narrow(2, 2, 2) end, { x() })
    check(function(a) return a:narrow(-1, 1, 3) end, { x() })
  end)
  it("select along dims 1, 2, 3 and a negative index", function()
    check(function(a) return a:select(1, 2) end, { x() })
    check(function(a) return a:select(2, 3) end, { x() })
    check(function(a) return a:select(3, -1) end, { x() })
  end)
  it("index_select with repeated ids (1-D and 2-D id tensors)", function()
    local w = U({ 5, 3 }, -1, 1, 62)
    check(function(t) return t:index_select(ids({ 0, 2, 2, 4, 0 })) end, { w })
    check(function(t) return t:index_select(ids({ { 0, 2, 2 }, { 4, 0, 2 } })) end, { w })
  end)
  it("embedding (F.embedding and nn.Embedding) with repeated ids", function()
    local w = U({ 6, 4 }, -1, 1, 63)
    check(function(t) return F.embedding(ids({ { 1, 1, 5 }, { 0, 1, 3 } }), t) end, { w })
    local emb = nn.Embedding(6, 4)
    check(function() return emb(ids({ 3, 3, 3, 0 })) end, { emb.weight })
  end)
  it("permute and transpose, t()", function()
    check(function(a) return a:permute(3, 1, 2) end, { x() })
    check(function(a) return a:permute({ 2, 3, 1 }) end, { x() })
    check(function(a) return a:transpose(1, 3) end, { x() })
    check(function(a) return a:transpose() end, { x() })
    check(function(a) return a:t() end, { U({ 3, 5 }, -1, 1, 64) })
  end)
  it("cat along dims 1, 2, -1", function()
    local a, b = U({ 2, 3, 4 }, -1, 1, 65), U({ 2, 3, 4 }, -1, 1, 66)
    check(function(p, q) return oe.cat({ p, q }, 1) end, { a, b })
    check(function(p, q) return oe.cat({ p, q:narrow(2, 1, 2), p }, 2) end, { a, b })
    check(function(p, q) return oe.cat({ q, p }, -1) end, { a, b })
  end)
  it("stack along dims 1 and -1", function()
    local a, b = U({ 3, 4 }, -1, 1, 67), U({ 3, 4 }, -1, 1, 68)
    check(function(p, q) return oe.stack({ p, q, p }, 1) end, { a, b })
    check(function(p, q) return oe.stack({ p, q }, -1) end, { a, b })
  end)
end)

describe("gradcheck: softmax, normalize, masked_fill", function()
  local x = function() return U({ 2, 3, 5 }, -2, 2, 71) end
  it("softmax over the last dim and over dim 2", function()
    check(function(a) return a:softmax(-1) end, { x() })
    check(function(a) return a:softmax(2) end, { x() })
    check(function(a) return F.softmax(a, 1) end, { x() })
  end)
  it("log_softmax over the last dim and over dim 1", function()
    check(function(a) return a:log_softmax() end, { x() })
    check(function(a) return F.log_softmax(a, 1) end, { x() })
  end)
  it("normalize over the last dim and over dim 1", function()
    check(function(a) return a:normalize() end, { x() })
    check(function(a) return F.normalize(a, 2, 1) end, { x() })
  end)
  it("masked_fill with a broadcast mask", function()
    local mask = oe.tensor({ { { 1, 0, 0, 1, 0 } }, { { 0, 0, 1, 0, 0 } } }, "uint8") -- (2,1,5)
    check(function(a) return oe.masked_fill(a, mask, -3) * a end, { x() })
  end)
end)

describe("gradcheck: layers (functional)", function()
  it("layer_norm: input, weight and bias", function()
    local x, w, b = U({ 2, 3, 8 }, -2, 2, 81), U({ 8 }, 0.5, 1.5, 82), U({ 8 }, -0.5, 0.5, 83)
    check(function(a, ww, bb) return F.layer_norm(a, ww, bb) end, { x, w, b })
  end)
  it("layer_norm without affine parameters", function()
    check(function(a) return F.layer_norm(a) end, { U({ 4, 6 }, -2, 2, 84) })
  end)
  it("linear with and without bias, 2-D and 3-D input", function()
    local w, b = U({ 5, 4 }, -1, 1, 85), U({ 5 }, -1, 1, 86)
    check(function(a, ww, bb) return F.linear(a, ww, bb) end, { U({ 2, 3, 4 }, -1, 1, 87), w, b })
    check(function(a, ww) return F.linear(a, ww) end, { U({ 3, 4 }, -1, 1, 88), w })
  end)
  it("dropout p = 0.3 in training, mask fixed by re-seeding", function()
    check(function(a) return F.dropout(a, 0.3, true) end, { U({ 4, 6 }, -1, 1, 89) }, { seed = 7 })
    local d = nn.Dropout(0.5)
    check(function(a) return d(a) * a end, { U({ 3, 5 }, -1, 1, 90) }, { seed = 8 })
  end)
  it("relu_dropout (fused) with p = 0, p = 0.3 in training (re-seeded) and not training", function()
    local x = gc.away_from_zero({ 4, 6 }, 0.05, 2, 94)
    check(function(a) return F.relu_dropout(a, 0, true) end, { x })
    check(function(a) return F.relu_dropout(a, 0.3, true) end, { x }, { seed = 11 })
    check(function(a) return F.relu_dropout(a, 0.3, false) end, { x })
  end)
  it("relu_dropout equals dropout(relu(x)) with the same seed", function()
    local x = U({ 50, 20 }, -1, 1, 95)
    oe.manual_seed(12)
    local a = F.relu_dropout(x, 0.4, true)
    oe.manual_seed(12)
    local b = F.dropout(F.relu(x), 0.4, true)
    local fa, fb = gc.floats(a), gc.floats(b)
    for i = 1, #fa do assert.is_true(math.abs(fa[i] - fb[i]) <= 1e-6) end
  end)
  it("cross_entropy plain, with ignore_index, with label smoothing, with both", function()
    local logits = U({ 6, 5 }, -2, 2, 91)
    local t = ids({ 0, 4, 2, 2, 1, 3 })
    check(function(z) return F.cross_entropy(z, t) end, { logits })
    local ti = ids({ 0, 7, 2, 7, 1, 3 })
    check(function(z) return F.cross_entropy(z, ti, { ignore_index = 7 }) end, { logits })
    check(function(z) return F.cross_entropy(z, t, { label_smoothing = 0.1 }) end, { logits })
    local tj = ids({ 0, -100, 2, 2, -100, 3 })
    check(function(z) return F.cross_entropy(z, tj, { label_smoothing = 0.2 }) end, { logits })
  end)
  it("cross_entropy composed with a linear layer", function()
    local x, w = U({ 4, 3 }, -1, 1, 92), U({ 5, 3 }, -1, 1, 93)
    check(function(a, ww) return F.cross_entropy(F.linear(a, ww), ids({ 1, 0, 4, 4 })) end, { x, w })
  end)
end)

describe("gradcheck: attention", function()
  local B, L, S, D, H = 2, 3, 4, 8, 2
  local mask_L = oe.tensor({ { 0, 0, 1 }, { 0, 0, 0 } }, "uint8")
  local mask_S = oe.tensor({ { 0, 0, 1, 1 }, { 0, 0, 0, 1 } }, "uint8")
  local first = function(f) return function(...) return (f(...)) end end
  it("F.attention packed qkv", function()
    check(first(function(qkv) return F.attention(qkv, nil, nil, H) end), { U({ B, L, 3 * D }, -1, 1, 101) })
  end)
  it("F.attention packed qkv with key padding mask", function()
    check(first(function(qkv) return F.attention(qkv, nil, nil, H, mask_L) end), { U({ B, L, 3 * D }, -1, 1, 102) })
  end)
  it("F.attention separate q, k, v (L ~= S)", function()
    check(first(function(q, k, v) return F.attention(q, k, v, H) end),
      { U({ B, L, D }, -1, 1, 103), U({ B, S, D }, -1, 1, 104), U({ B, S, D }, -1, 1, 105) })
  end)
  it("F.attention separate q, k, v with key padding mask", function()
    check(first(function(q, k, v) return F.attention(q, k, v, H, mask_S) end),
      { U({ B, L, D }, -1, 1, 106), U({ B, S, D }, -1, 1, 107), U({ B, S, D }, -1, 1, 108) })
  end)
  it("F.attention with dropout on the weights (re-seeded)", function()
    check(first(function(qkv) return F.attention(qkv, nil, nil, H, nil, 0.25, true) end),
      { U({ B, L, 3 * D }, -1, 1, 109) }, { seed = 3 })
  end)
  it("nn.MultiheadAttention self-attention: input and all parameters", function()
    oe.manual_seed(1)
    local m = nn.MultiheadAttention(D, H)
    local x = U({ B, L, D }, -1, 1, 110)
    local inputs = { x }
    for _, p in ipairs(m:parameters()) do inputs[#inputs + 1] = p end
    check(first(function(a) return m(a) end), inputs)
    check(first(function(a) return m(a, a, a, { key_padding_mask = mask_L }) end), inputs)
  end)
  it("nn.MultiheadAttention cross-attention with separate key and value", function()
    oe.manual_seed(2)
    local m = nn.MultiheadAttention(D, H)
    local q, k, v = U({ B, L, D }, -1, 1, 111), U({ B, S, D }, -1, 1, 112), U({ B, S, D }, -1, 1, 113)
    local inputs = { q, k, v }
    for _, p in ipairs(m:parameters()) do inputs[#inputs + 1] = p end
    check(first(function(a, b, c) return m(a, b, c, { key_padding_mask = mask_S }) end), inputs)
  end)
end)

describe("gradcheck: TransformerEncoderLayer", function()
  local B, L, D, H, FF = 2, 3, 8, 2, 16
  local mask = oe.tensor({ { 0, 0, 1 }, { 0, 0, 0 } }, "uint8")
  -- ReLU is not differentiable at 0: shift each hidden unit's linear1 bias so
  -- that none of its pre-activations on this input lies within 0.05 of 0
  -- (a perturbation of h = 1e-2 moves them by about 1e-2). The shift is
  -- chosen from the function's values only, never from a gradient.
  local function keep_relu_off_kink(layer, x, opts)
    local captured
    local lin = layer.linear1
    lin.forward = function(self, a) captured = a; return F.linear(a, self.weight, self.bias) end
    oe.no_grad(function() layer(x, opts) end)
    lin.forward = nil
    oe.no_grad(function()
      local pre = F.linear(captured, lin.weight, lin.bias):reshape(-1, FF):totable()
      local bias = lin.bias:totable()
      for j = 1, FF do
        local best_c, best_m = 0, -1
        for k = -60, 60 do
          local c = k * 0.01
          local m = math.huge
          for r = 1, #pre do m = math.min(m, math.abs(pre[r][j] + c)) end
          if m > best_m + 1e-9 then best_c, best_m = c, m end
        end
        assert(best_m >= 0.05, "could not move unit " .. j .. " off the ReLU kink")
        bias[j] = bias[j] + best_c
      end
      lin.bias:copy_(oe.tensor(bias))
    end)
  end
  local variants = {
    { "post-norm relu", { norm_first = false, activation = "relu" } },
    { "post-norm gelu", { norm_first = false, activation = "gelu" } },
    { "pre-norm relu", { norm_first = true, activation = "relu" } },
    { "pre-norm gelu", { norm_first = true, activation = "gelu" } },
  }
  for vi, v in ipairs(variants) do
    it(v[1] .. ", dropout 0, with key padding mask: input and all parameters", function()
      oe.manual_seed(10 + vi)
      local opts = { dim_feedforward = FF, dropout = 0 }
      for k, val in pairs(v[2]) do opts[k] = val end
      local layer = nn.TransformerEncoderLayer(D, H, opts)
      -- spread the LayerNorm parameters away from 1/0 so their gradients are exercised
      oe.no_grad(function()
        layer.norm1.weight:copy_(U({ D }, 0.5, 1.5, 120 + vi))
        layer.norm2.bias:copy_(U({ D }, -0.3, 0.3, 130 + vi))
      end)
      local x = U({ B, L, D }, -1, 1, 140 + vi)
      if opts.activation == "relu" then keep_relu_off_kink(layer, x, { key_padding_mask = mask }) end
      local inputs = { x }
      for _, p in ipairs(layer:parameters()) do inputs[#inputs + 1] = p end
      check(function(a) return layer(a, { key_padding_mask = mask }) end, inputs)
    end)
  end
  it("post-norm gelu with dropout 0.1 in training (re-seeded before each evaluation)", function()
    oe.manual_seed(20)
    local layer = nn.TransformerEncoderLayer(D, H, { dim_feedforward = FF, dropout = 0.1, activation = "gelu" })
    local x = U({ B, L, D }, -1, 1, 150)
    local inputs = { x }
    for _, p in ipairs(layer:parameters()) do inputs[#inputs + 1] = p end
    check(function(a) return layer(a) end, inputs, { seed = 99 })
  end)
  it("post-norm relu with dropout 0.1 in training (fused relu + dropout, re-seeded)", function()
    oe.manual_seed(22)
    local layer = nn.TransformerEncoderLayer(D, H, { dim_feedforward = FF, dropout = 0.1, activation = "relu" })
    local x = U({ B, L, D }, -1, 1, 152)
    oe.manual_seed(99)
    keep_relu_off_kink(layer, x, { key_padding_mask = mask })
    local inputs = { x }
    for _, p in ipairs(layer:parameters()) do inputs[#inputs + 1] = p end
    check(function(a) return layer(a, { key_padding_mask = mask }) end, inputs, { seed = 99 })
  end)
  it("pre-norm relu in eval mode with dropout 0.1 (dropout off)", function()
    oe.manual_seed(21)
    local layer = nn.TransformerEncoderLayer(D, H, { dim_feedforward = FF, dropout = 0.1, norm_first = true }):eval()
    local x = U({ B, L, D }, -1, 1, 151)
    keep_relu_off_kink(layer, x, { key_padding_mask = mask })
    local inputs = { x }
    for _, p in ipairs(layer:parameters()) do inputs[#inputs + 1] = p end
    check(function(a) return layer(a, { key_padding_mask = mask }) end, inputs)
  end)
end)

describe("autograd semantics", function()
  local function vals(t) return gc.floats(t) end
  local function close(a, b, tol)
    assert.are.equal(#a, #b)
    for i = 1, #a do
      assert(math.abs(a[i] - b[i]) <= tol, string.format("element %d: %.7g vs %.7g", i, a[i], b[i]))
    end
  end

  it("a module applied twice in one step receives the sum of both gradients", function()
    oe.manual_seed(1)
    local lin = nn.Linear(3, 2)
    local x1, x2 = U({ 4, 3 }, -1, 1, 201), U({ 4, 3 }, -1, 1, 202)
    -- separately
    lin:zero_grad()
    lin(x1):tanh():sum():backward()
    local g1w, g1b = vals(lin.weight.grad), vals(lin.bias.grad)
    lin:zero_grad()
    lin(x2):tanh():sum():backward()
    local g2w, g2b = vals(lin.weight.grad), vals(lin.bias.grad)
    -- together
    lin:zero_grad()
    local both = lin(x1):tanh():sum() + lin(x2):tanh():sum()
    both:backward()
    local gw, gb = vals(lin.weight.grad), vals(lin.bias.grad)
    for i = 1, #gw do assert.is_true(math.abs(gw[i] - (g1w[i] + g2w[i])) < 1e-5) end
    for i = 1, #gb do assert.is_true(math.abs(gb[i] - (g1b[i] + g2b[i])) < 1e-5) end
    -- and finite differences agree with the shared module's gradient
    check(function(a, b) return lin(a) * lin(b) end, { x1, x2, lin.weight, lin.bias })
  end)

  it("a frozen module passes gradients to its input but gets no .grad", function()
    oe.manual_seed(2)
    local lin = nn.Linear(3, 2)
    lin:freeze()
    assert.is_false(lin.weight.requires_grad)
    assert.is_true(lin:is_frozen())
    assert.are.equal(0, lin:num_parameters(true))
    local x = U({ 4, 3 }, -1, 1, 203)
    x.requires_grad = true
    lin(x):sum():backward()
    assert.is_nil(lin.weight.grad)
    assert.is_nil(lin.bias.grad)
    assert.is_not_nil(x.grad)
    -- d sum(x W^T + b) / dx[i][j] = sum_o W[o][j]
    local W = lin.weight:totable()
    local g = x.grad:totable()
    for i = 1, 4 do
      for j = 1, 3 do assert.is_true(math.abs(g[i][j] - (W[1][j] + W[2][j])) < 1e-6) end
    end
    -- finite differences through a frozen module, input only
    x.requires_grad = false
    x:zero_grad()
    check(function(a) return lin(a):tanh() end, { x })
    lin:unfreeze()
    assert.is_true(lin.weight.requires_grad)
  end)

  it("a frozen module between trainable ones: the trainable ones still get gradients", function()
    oe.manual_seed(3)
    local a, f, b = nn.Linear(3, 4), nn.Linear(4, 4):freeze(), nn.Linear(4, 2)
    local x = U({ 5, 3 }, -1, 1, 204)
    b(f(a(x)):tanh()):sum():backward()
    assert.is_not_nil(a.weight.grad)
    assert.is_not_nil(b.weight.grad)
    assert.is_nil(f.weight.grad)
    check(function(xx) return b(f(a(xx)):tanh()) end, { x, a.weight, a.bias, b.weight, b.bias })
  end)

  it("oe.no_grad records nothing", function()
    local x = U({ 3 }, -1, 1, 205)
    x.requires_grad = true
    local y = oe.no_grad(function() return (x * 2):exp() end)
    assert.is_not_true(y.requires_grad)
    assert.is_true(y:is_leaf())
    assert.has_error(function() y:sum():backward() end)
    assert.is_true(oe.is_grad_enabled())
    -- grad mode is restored even when the function fails
    assert.has_error(function() oe.no_grad(function() error("boom") end) end)
    assert.is_true(oe.is_grad_enabled())
  end)

  it("detach cuts the graph", function()
    local x = oe.tensor({ 1, 2, 3 })
    x.requires_grad = true
    local d = (x * 2):detach()
    assert.is_not_true(d.requires_grad)
    local y = (d * x):sum() -- d treated as a constant: dy/dx = d = 2x
    y:backward()
    assert.are.same({ 2, 4, 6 }, x.grad:totable())
  end)

  it(".grad accumulates across two backward calls", function()
    local x = oe.tensor({ 1, -2, 3 })
    x.requires_grad = true
    local function loss() return (x * x):sum() end
    loss():backward()
    assert.are.same({ 2, -4, 6 }, x.grad:totable())
    loss():backward()
    assert.are.same({ 4, -8, 12 }, x.grad:totable())
    x:zero_grad()
    assert.is_nil(x.grad)
  end)

  it("a non-leaf used by consumers at different depths gets its full gradient", function()
    -- h = tanh(x); y = sum(h + exp(2 h)) -> dy/dx = (1 + 2 exp(2h)) (1 - h^2)
    local x = oe.tensor({ 0.3, -0.7 })
    x.requires_grad = true
    local h = x:tanh()
    local y = (h + (h * 2):exp()):sum()
    y:backward()
    local g = x.grad:totable()
    for i, v in ipairs({ 0.3, -0.7 }) do
      local th = math.tanh(v)
      assert.is_true(math.abs(g[i] - (1 + 2 * math.exp(2 * th)) * (1 - th * th)) < 1e-5)
    end
  end)

  it("a tensor used twice in one graph gets the sum of both paths", function()
    local x = oe.tensor({ 0.5, -1 })
    x.requires_grad = true
    local y = (x * x + x:exp()):sum() -- d/dx = 2x + e^x
    y:backward()
    local g = x.grad:totable()
    assert.is_true(math.abs(g[1] - (1 + math.exp(0.5))) < 1e-6)
    assert.is_true(math.abs(g[2] - (-2 + math.exp(-1))) < 1e-6)
  end)

  it("backward on a non-scalar without a grad argument errors, with an explicit grad it works", function()
    local x = oe.tensor({ 1, 2, 3 })
    x.requires_grad = true
    local y = x * 3
    assert.has_error(function() y:backward() end,
      "backward: grad can be implicitly created only for scalar outputs, got shape (3,)")
    y:backward(oe.tensor({ 1, 0, 2 }))
    assert.are.same({ 3, 0, 6 }, x.grad:totable())
  end)

  it("backward through a graph twice needs retain_graph", function()
    local x = oe.tensor({ 1, 2 })
    x.requires_grad = true
    local y = (x * x):sum()
    y:backward(nil, true)
    y:backward()
    assert.are.same({ 4, 8 }, x.grad:totable())
    assert.has_error(function() y:backward() end)
  end)

  it("in-place change of a tensor that requires grad is refused", function()
    local x = oe.tensor({ 1, 2 })
    x.requires_grad = true
    assert.has_error(function() x:fill_(0) end)
    oe.no_grad(function() x:fill_(0) end)
    assert.are.same({ 0, 0 }, x:totable())
  end)
end)
