-- optim.lua: optimisers (fused C updates, PyTorch semantics), gradient
-- clipping and learning-rate schedulers.
--   local opt = oe.optim.AdamW(model:parameters(true), {lr = 1e-3, weight_decay = 1e-3})
--   opt:zero_grad(); loss:backward(); opt:step()
local core = require "oneencoder.core"

local optim = {}

local function make_groups(params, defaults)
  if type(params) ~= "table" or #params == 0 then error("optimizer: needs a non-empty list of parameters or groups", 3) end
  local groups = {}
  if core.is_tensor(params[1]) then params = { { params = params } } end
  for gi, g in ipairs(params) do
    local group = {}
    for k, v in pairs(defaults) do group[k] = v end
    for k, v in pairs(g) do group[k] = v end
    for i, p in ipairs(group.params) do
      if not core.is_tensor(p) or core.dtype(p) ~= "float32" then
        error(string.format("optimizer: group %d entry %d is not a float32 tensor", gi, i), 3)
      end
    end
    group.initial_lr = group.initial_lr or group.lr
    groups[#groups + 1] = group
  end
  return groups
end

local Optimizer = {}
Optimizer.__index = Optimizer

function Optimizer:zero_grad()
  for _, g in ipairs(self.param_groups) do
    for _, p in ipairs(g.params) do p.grad = nil end
  end
end

-- the parameters in a fixed order (state is saved by this index)
function Optimizer:all_params()
  local out = {}
  for _, g in ipairs(self.param_groups) do
    for _, p in ipairs(g.params) do out[#out + 1] = p end
  end
  return out
end

-- state_dict(): { tensors = {["state.<i>.<name>"] = tensor}, meta = {...} } for checkpoints
function Optimizer:state_dict()
  local tensors, meta = {}, { steps = {}, lrs = {} }
  for i, p in ipairs(self:all_params()) do
    local st = self.state[p]
    if st then
      for k, v in pairs(st) do
        if core.is_tensor(v) then tensors[string.format("state.%d.%s", i, k)] = v end
      end
      meta.steps[i] = st.step or 0
    end
  end
  for gi, g in ipairs(self.param_groups) do meta.lrs[gi] = g.lr end
  return { tensors = tensors, meta = meta }
end

function Optimizer:load_state_dict(sd)
  local params = self:all_params()
  for key, t in pairs(sd.tensors) do
    local i, name = key:match("^state%.(%d+)%.(.+)$")
    i = tonumber(i)
    local p = params[i]
    if not p then error("optimizer.load_state_dict: state for parameter " .. tostring(i) .. " but only " .. #params .. " parameters", 2) end
    if core.numel(t) ~= core.numel(p) then error("optimizer.load_state_dict: " .. key .. " has the wrong size", 2) end
    self.state[p] = self.state[p] or {}
    self.state[p][name] = core.clone(t)
  end
  for i, step in pairs(sd.meta.steps or {}) do
    local p = params[tonumber(i)]
    if p then self.state[p] = self.state[p] or {}; self.state[p].step = step end
  end
  for gi, lr in pairs(sd.meta.lrs or {}) do
    if self.param_groups[tonumber(gi)] then self.param_groups[tonumber(gi)].lr = lr end
  end
end

-- step(): every parameter that has a gradient gets the optimiser's update; its
-- state is created on first use (self:new_state) and counts the steps
function Optimizer:step()
  for _, g in ipairs(self.param_groups) do
    for _, p in ipairs(g.params) do
      local grad = p.grad
      if grad then
        local st = self.state[p]
        local first = st == nil
        if first then
          st = self:new_state(p, g)
          st.step = 0
          self.state[p] = st
        end
        st.step = st.step + 1
        self:update(p, grad, st, g, first)
      end
    end
  end
end

-- AdamW(params, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 1e-2})
function optim.AdamW(params, opts)
  opts = opts or {}
  local defaults = { lr = opts.lr or 1e-3, betas = opts.betas or { 0.9, 0.999 }, eps = opts.eps or 1e-8,
    weight_decay = opts.weight_decay or 1e-2 }
  local self = setmetatable({ param_groups = make_groups(params, defaults), state = {}, kind = "AdamW" }, Optimizer)
  function self:new_state(p)
    return { exp_avg = core.zeros(core.shape(p)), exp_avg_sq = core.zeros(core.shape(p)) }
  end
  function self:update(p, grad, st, g)
    core.adamw_step(p, grad, st.exp_avg, st.exp_avg_sq, g.lr, g.betas[1], g.betas[2], g.eps, g.weight_decay, st.step)
  end
  return self
end

-- SGD(params, {lr, momentum = 0, dampening = 0, weight_decay = 0, nesterov = false})
function optim.SGD(params, opts)
  opts = opts or {}
  if not opts.lr then error("SGD: lr is required", 2) end
  local defaults = { lr = opts.lr, momentum = opts.momentum or 0, dampening = opts.dampening or 0,
    weight_decay = opts.weight_decay or 0, nesterov = opts.nesterov or false }
  local self = setmetatable({ param_groups = make_groups(params, defaults), state = {}, kind = "SGD" }, Optimizer)
  function self:new_state(p, g)
    return { momentum_buffer = g.momentum ~= 0 and core.zeros(core.shape(p)) or nil }
  end
  function self:update(p, grad, st, g, first)
    core.sgd_step(p, grad, st.momentum_buffer, g.lr, g.momentum, g.dampening, g.weight_decay, g.nesterov, first)
  end
  return self
end

-- clip_grad_norm(params, max_norm): scales gradients so their global L2 norm is at most max_norm.
-- Returns the norm before clipping (torch.nn.utils.clip_grad_norm_).
function optim.clip_grad_norm(params, max_norm)
  local total = 0
  for _, p in ipairs(params) do
    if p.grad then total = total + core.sumsq(p.grad) end
  end
  total = math.sqrt(total)
  local coef = max_norm / (total + 1e-6)
  if coef < 1 then
    for _, p in ipairs(params) do
      if p.grad then core.mul_(p.grad, coef) end
    end
  end
  return total
end

-- ---------- schedulers ----------
local function set_lrs(opt, f)
  for _, g in ipairs(opt.param_groups) do g.lr = f(g) end
end

-- ReduceLROnPlateau(opt, {mode = "min", factor = 0.1, patience = 10, threshold = 1e-4,
--   threshold_mode = "rel", cooldown = 0, min_lr = 0, eps = 1e-8}); sched:step(metric)
function optim.ReduceLROnPlateau(opt, o)
  o = o or {}
  local s = { opt = opt, mode = o.mode or "min", factor = o.factor or 0.1, patience = o.patience or 10,
    threshold = o.threshold or 1e-4, threshold_mode = o.threshold_mode or "rel", cooldown = o.cooldown or 0,
    min_lr = o.min_lr or 0, eps = o.eps or 1e-8, num_bad_epochs = 0, cooldown_counter = 0, last_epoch = 0 }
  if s.factor >= 1 then error("ReduceLROnPlateau: factor should be < 1.0", 2) end
  s.best = s.mode == "min" and math.huge or -math.huge
  local function is_better(a, best)
    if s.mode == "min" and s.threshold_mode == "rel" then return a < best * (1 - s.threshold) end
    if s.mode == "min" then return a < best - s.threshold end
    if s.threshold_mode == "rel" then return a > best * (1 + s.threshold) end
    return a > best + s.threshold
  end
  function s:step(metric)
    self.last_epoch = self.last_epoch + 1
    if is_better(metric, self.best) then
      self.best = metric
      self.num_bad_epochs = 0
    else
      self.num_bad_epochs = self.num_bad_epochs + 1
    end
    if self.cooldown_counter > 0 then
      self.cooldown_counter = self.cooldown_counter - 1
      self.num_bad_epochs = 0
    end
    if self.num_bad_epochs > self.patience then
      set_lrs(self.opt, function(g)
        local new = math.max(g.lr * self.factor, self.min_lr)
        if g.lr - new > self.eps then return new end
        return g.lr
      end)
      self.cooldown_counter = self.cooldown
      self.num_bad_epochs = 0
    end
  end
  function s:state() return { best = self.best, num_bad_epochs = self.num_bad_epochs, cooldown_counter = self.cooldown_counter, last_epoch = self.last_epoch } end
  function s:load_state(st) for k, v in pairs(st) do self[k] = v end end
  return s
end

-- StepLR(opt, {step_size, gamma = 0.1}): lr = initial * gamma^floor(epoch / step_size)
function optim.StepLR(opt, o)
  local s = { opt = opt, step_size = assert(o.step_size, "StepLR: step_size is required"), gamma = o.gamma or 0.1, last_epoch = 0 }
  function s:step()
    self.last_epoch = self.last_epoch + 1
    set_lrs(self.opt, function(g) return g.initial_lr * self.gamma ^ (self.last_epoch // self.step_size) end)
  end
  function s:state() return { last_epoch = self.last_epoch } end
  function s:load_state(st) self.last_epoch = st.last_epoch end
  return s
end

-- CosineWarmup(opt, {warmup = steps, total = steps, min_lr = 0}): linear warmup then cosine decay, per step
function optim.CosineWarmup(opt, o)
  local s = { opt = opt, warmup = o.warmup or 0, total = assert(o.total, "CosineWarmup: total is required"),
    min_lr = o.min_lr or 0, last_step = 0 }
  local function lr_at(base, t)
    if t < s.warmup then return base * (t + 1) / s.warmup end
    local progress = math.min(1, (t - s.warmup) / math.max(1, s.total - s.warmup))
    return s.min_lr + (base - s.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
  end
  function s:step()
    self.last_step = self.last_step + 1
    set_lrs(self.opt, function(g) return lr_at(g.initial_lr, self.last_step) end)
  end
  set_lrs(opt, function(g) return lr_at(g.initial_lr, 0) end)
  function s:state() return { last_step = self.last_step } end
  function s:load_state(st) self.last_step = st.last_step end
  return s
end

return optim
