-- Optimisers and schedulers against steps worked out by hand (PyTorch semantics).
local oe = require "oneencoder"
local H = require "helpers"
local near = H.near
local optim = oe.optim


local function param(values)
  local p = oe.tensor(values)
  p.requires_grad = true
  return p
end
local function set_grad(p, g) p.grad = oe.tensor(g) end

describe("AdamW", function()
  -- p0 = {1, -2}, lr 0.1, betas (0.9, 0.999), eps 1e-8, weight decay 0.01
  -- step 1, g = {0.5, -1}:
  --   decay: p = p * (1 - 0.1 * 0.01) = {0.999, -1.998}
  --   m = 0.1 g = {0.05, -0.1};  v = 0.001 g^2 = {0.00025, 0.001}
  --   m_hat = m / (1 - 0.9) = {0.5, -1};  v_hat = v / (1 - 0.999) = {0.25, 1}
  --   p -= 0.1 * m_hat / (sqrt(v_hat) + 1e-8) = {0.1, -0.1} (to 1e-8) -> {0.899, -1.898}
  -- step 2, g = {-0.25, 0.5}:
  --   decay: p = {0.898101, -1.896102}
  --   m = 0.9 m + 0.1 g = {0.02, -0.04};  v = 0.999 v + 0.001 g^2 = {0.00031225, 0.001249}
  --   m_hat = m / 0.19 = {0.105263158, -0.210526316}
  --   v_hat = v / 0.001999 = {0.156203102, 0.624812406}; sqrt = {0.395225382, 0.790450762}
  --   step = 0.1 * m_hat / sqrt(v_hat) = {0.0266336, -0.0266336}
  --   p = {0.871467299, -1.869468297}
  -- (PyTorch 1.13 gives 0.87146735, -1.8694683 in float32.)
  it("one and two steps on a tiny tensor match the hand-worked values", function()
    local p = param({ 1, -2 })
    local opt = optim.AdamW({ p }, { lr = 0.1, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = 0.01 })
    set_grad(p, { 0.5, -1 })
    opt:step()
    near(p:totable(), { 0.899, -1.898 }, 1e-6, "after step 1")
    near(opt.state[p].exp_avg:totable(), { 0.05, -0.1 }, 1e-7, "m") -- float32: (1 - 0.9f) = 0.100000024
    -- v to 2e-5 relative (of 0.001): the kernel forms 1 - beta2 from float32 0.999 (= 0.99900001),
    -- giving 0.00099998713 instead of 0.001 (PyTorch rounds 1 - beta2 from double)
    near(opt.state[p].exp_avg_sq:totable(), { 0.00025, 0.001 }, 2e-8, "v")
    set_grad(p, { -0.25, 0.5 })
    opt:step()
    near(p:totable(), { 0.871467299, -1.869468297 }, 1e-6, "after step 2")
    assert.are.equal(2, opt.state[p].step)
  end)

  it("a parameter without a gradient is left alone; zero_grad clears gradients", function()
    local a, b = param({ 1 }), param({ 2 })
    local opt = optim.AdamW({ a, b }, { lr = 0.1, weight_decay = 0 })
    set_grad(a, { 1 })
    opt:step()
    near(a:item(), 0.9, 1e-6, "a")
    assert.are.equal(2, b:item())
    assert.is_nil(opt.state[b])
    opt:zero_grad()
    assert.is_nil(a.grad)
  end)

  it("parameter groups keep their own lr and weight decay", function()
    local a, b = param({ 1 }), param({ 1 })
    local opt = optim.AdamW({ { params = { a } }, { params = { b }, lr = 0.01, weight_decay = 0.5 } },
      { lr = 0.1, weight_decay = 0 })
    set_grad(a, { 2 })
    set_grad(b, { 2 })
    opt:step()
    near(a:item(), 1 - 0.1, 1e-6, "group 1") -- first Adam step moves by lr * sign(g)
    near(b:item(), 1 * (1 - 0.01 * 0.5) - 0.01, 1e-6, "group 2")
  end)
end)

describe("SGD", function()
  -- lr 0.1, momentum 0.9, p0 = {1, -1}; g1 = {1, 2}, g2 = {0.5, -1}
  --   step 1: buf = g1 = {1, 2}; p = {0.9, -1.2}
  --   step 2: buf = 0.9 {1, 2} + {0.5, -1} = {1.4, 0.8}; p = {0.76, -1.28}
  it("momentum: two steps", function()
    local p = param({ 1, -1 })
    local opt = optim.SGD({ p }, { lr = 0.1, momentum = 0.9 })
    set_grad(p, { 1, 2 })
    opt:step()
    near(p:totable(), { 0.9, -1.2 }, 1e-6, "step 1")
    set_grad(p, { 0.5, -1 })
    opt:step()
    near(p:totable(), { 0.76, -1.28 }, 1e-6, "step 2")
    near(opt.state[p].momentum_buffer:totable(), { 1.4, 0.8 }, 1e-6, "buffer")
  end)

  -- nesterov: step 1 d = g + 0.9 buf = {1.9, 3.8}; p = {0.81, -1.38}
  it("nesterov momentum: first step", function()
    local p = param({ 1, -1 })
    local opt = optim.SGD({ p }, { lr = 0.1, momentum = 0.9, nesterov = true })
    set_grad(p, { 1, 2 })
    opt:step()
    near(p:totable(), { 0.81, -1.38 }, 1e-6)
  end)

  -- weight decay 0.5 without momentum: d = g + 0.5 p = {1 + 0.5, 2 - 0.5}; p = {0.85, -1.15}
  it("weight decay folded into the gradient; plain SGD", function()
    local p = param({ 1, -1 })
    local opt = optim.SGD({ p }, { lr = 0.1, weight_decay = 0.5 })
    set_grad(p, { 1, 2 })
    opt:step()
    near(p:totable(), { 0.85, -1.15 }, 1e-6)
  end)

  it("requires lr", function()
    assert.has_error(function() optim.SGD({ param({ 1 }) }, {}) end)
  end)
end)

describe("clip_grad_norm", function()
  it("scales all gradients by max_norm / total_norm and returns the norm before clipping", function()
    local a, b = param({ 0, 0 }), param({ 0 })
    set_grad(a, { 3, 4 })
    set_grad(b, { 12 })
    local n = optim.clip_grad_norm({ a, b }, 6.5) -- total sqrt(9 + 16 + 144) = 13
    near(n, 13, 1e-6, "norm")
    local c = 6.5 / (13 + 1e-6)
    near(a.grad:totable(), { 3 * c, 4 * c }, 1e-6, "a")
    near(b.grad:totable(), { 12 * c }, 1e-6, "b")
  end)
  it("leaves gradients alone under the limit and skips parameters without gradients", function()
    local a, b = param({ 0, 0 }), param({ 0 })
    set_grad(a, { 3, 4 })
    near(optim.clip_grad_norm({ a, b }, 10), 5, 1e-6)
    assert.are.same({ 3, 4 }, a.grad:totable())
    assert.is_nil(b.grad)
  end)
end)

describe("ReduceLROnPlateau (PyTorch semantics)", function()
  local function run(metrics, o)
    local p = param({ 0 })
    local opt = optim.SGD({ p }, { lr = 1 })
    local s = optim.ReduceLROnPlateau(opt, o)
    local lrs = {}
    for i, m in ipairs(metrics) do
      s:step(m)
      lrs[i] = opt.param_groups[1].lr
    end
    return lrs
  end

  -- min, rel threshold 0.1: better means < best * 0.9. patience 2, cooldown 1, factor 0.5.
  --  10 best | 9 bad1 (not < 9) | 8.5 best | 8.4 bad1 | 8.3 bad2 | 8.2 bad3 > 2 -> lr 0.5, cooldown 1
  --  8.1 bad1 -> cooldown resets it to 0 | 5 best | 5 bad1 | 5 bad2 | 5 bad3 -> 0.25, cooldown 1
  --  5 (cooldown) | 5 bad1 | 5 bad2 | 5 bad3 -> 0.125 | 5 (cooldown)
  it("min mode, relative threshold, patience and cooldown", function()
    local lrs = run({ 10, 9, 8.5, 8.4, 8.3, 8.2, 8.1, 5, 5, 5, 5, 5, 5, 5, 5, 5 },
      { mode = "min", factor = 0.5, patience = 2, threshold = 0.1, cooldown = 1, min_lr = 0.1 })
    near(lrs, { 1, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.125, 0.125 }, 1e-12)
  end)

  -- max, abs threshold 0.2: better means > best + 0.2. patience 1, factor 0.1, min_lr 0.001.
  --  1 best | 2 best | 2.05 bad1 | 2.1 bad2 -> 0.1 | 2.5 best | 2.5 bad1 | 2.5 bad2 -> 0.01
  --  2.5 bad1 | 2.5 bad2 -> 0.001 (min_lr) | then stays at 0.001
  it("max mode, absolute threshold, min_lr floor", function()
    local lrs = run({ 1, 2, 2.05, 2.1, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5 },
      { mode = "max", factor = 0.1, patience = 1, threshold = 0.2, threshold_mode = "abs", min_lr = 0.001 })
    near(lrs, { 1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 0.001 }, 1e-12)
  end)

  -- patience 0, cooldown 2: a reduction at every bad step outside the cooldown, floor 0.2
  it("patience 0 with cooldown 2 and a min_lr that is not a power of the factor", function()
    local lrs = run({ 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 }, { factor = 0.5, patience = 0, cooldown = 2, min_lr = 0.2 })
    near(lrs, { 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2, 0.2, 0.2, 0.2, 0.2 }, 1e-12)
  end)

  it("rejects factor >= 1", function()
    assert.has_error(function() optim.ReduceLROnPlateau(optim.SGD({ param({ 0 }) }, { lr = 1 }), { factor = 1 }) end)
  end)
end)

describe("StepLR and CosineWarmup", function()
  it("StepLR: lr = initial * gamma^floor(epoch / step_size)", function()
    local opt = optim.SGD({ param({ 0 }) }, { lr = 1 })
    local s = optim.StepLR(opt, { step_size = 2, gamma = 0.5 })
    local lrs = {}
    for i = 1, 6 do s:step(); lrs[i] = opt.param_groups[1].lr end
    near(lrs, { 1, 0.5, 0.5, 0.25, 0.25, 0.125 }, 1e-12)
  end)

  -- warmup 2, total 6, base 1: t=0 0.5, t=1 1, then 0.5 (1 + cos(pi (t - 2) / 4)) for t = 2..6, 0 after
  it("CosineWarmup: linear warmup then cosine to min_lr", function()
    local opt = optim.SGD({ param({ 0 }) }, { lr = 1 })
    local s = optim.CosineWarmup(opt, { warmup = 2, total = 6 })
    local lrs = { opt.param_groups[1].lr }
    for i = 1, 7 do s:step(); lrs[i + 1] = opt.param_groups[1].lr end
    local c = 0.5 * (1 + math.cos(math.pi / 4))
    near(lrs, { 0.5, 1, 1, c, 0.5, 1 - c, 0, 0 }, 1e-12)
  end)

  it("CosineWarmup decays towards min_lr and scales every group from its own initial lr", function()
    local opt = optim.SGD({ { params = { param({ 0 }) } }, { params = { param({ 0 }) }, lr = 0.1 } }, { lr = 1 })
    local s = optim.CosineWarmup(opt, { warmup = 0, total = 2, min_lr = 0.05 })
    near(opt.param_groups[1].lr, 1, 1e-12)
    near(opt.param_groups[2].lr, 0.1, 1e-12)
    s:step()
    near(opt.param_groups[1].lr, 0.05 + 0.95 * 0.5, 1e-12)
    near(opt.param_groups[2].lr, 0.05 + 0.05 * 0.5, 1e-12)
    s:step()
    near(opt.param_groups[1].lr, 0.05, 1e-12)
  end)
end)

describe("training end to end", function()
  it("a small MLP learns XOR with AdamW without any backward code", function()
    oe.manual_seed(0)
    local nn = oe.nn
    local model = nn.Sequential(nn.Linear(2, 16), nn.GELU(), nn.Linear(16, 2))
    local x = oe.tensor({ { 0, 0 }, { 0, 1 }, { 1, 0 }, { 1, 1 } })
    local y = oe.tensor({ 0, 1, 1, 0 }, "int64")
    local opt = optim.AdamW(model:parameters(), { lr = 0.05, weight_decay = 0 })
    local first, last
    for i = 1, 300 do
      opt:zero_grad()
      local loss = oe.F.cross_entropy(model(x), y)
      if i == 1 then first = loss:item() end
      last = loss:item()
      loss:backward()
      opt:step()
    end
    assert.is_true(first > 0.5)
    assert.is_true(last < 0.05, "final loss " .. last)
    assert.are.same({ 0, 1, 1, 0 }, model(x):argmax(2):totable())
  end)
end)
