-- nn/layers.lua: Linear, LayerNorm, Dropout, GELU, ReLU, Identity, Sequential,
-- Embedding, with PyTorch's default initialisations.
local core = require "oneencoder.core"
local F = require "oneencoder.functional"
local Module = require "oneencoder.nn.module"

local nn = {}

-- Linear(in, out, {bias = true, generator = nil}): y = x W^T + b, W (out, in).
-- Init as torch.nn.Linear: W, b ~ U(-1/sqrt(in), 1/sqrt(in)), drawn from opts.generator
-- (an oe.Generator) or the global stream.
nn.Linear = Module.class("Linear")
function nn.Linear:init(in_features, out_features, opts)
  opts = opts or {}
  assert(math.type(in_features) == "integer" and in_features > 0, "Linear: in_features must be a positive integer")
  assert(math.type(out_features) == "integer" and out_features > 0, "Linear: out_features must be a positive integer")
  self.in_features, self.out_features = in_features, out_features
  local bound = 1 / math.sqrt(in_features)
  local gen = opts.generator
  local function rand(shape) return gen and gen:rand(shape, -bound, bound) or core.rand(shape, -bound, bound) end
  self:register_parameter("weight", rand({ out_features, in_features }))
  if opts.bias ~= false then
    self:register_parameter("bias", rand({ out_features }))
  end
end
function nn.Linear:forward(x) return F.linear(x, self.weight, self.bias) end
function nn.Linear:extra_repr() return string.format("%d -> %d%s", self.in_features, self.out_features, self.bias and "" or ", no bias") end

-- LayerNorm(n, {eps = 1e-5, elementwise_affine = true}) over the last dim
nn.LayerNorm = Module.class("LayerNorm")
function nn.LayerNorm:init(n, opts)
  opts = opts or {}
  self.normalized_shape, self.eps = n, opts.eps or 1e-5
  if opts.elementwise_affine ~= false then
    self:register_parameter("weight", core.fill_(core.zeros({ n }), 1))
    self:register_parameter("bias", core.zeros({ n }))
  end
end
function nn.LayerNorm:forward(x) return F.layer_norm(x, self.weight, self.bias, self.eps) end
function nn.LayerNorm:extra_repr() return string.format("%d, eps=%g", self.normalized_shape, self.eps) end

-- Dropout(p = 0.5, {generator = nil}): draws from self.generator (see Module:set_generator)
-- or the global stream
nn.Dropout = Module.class("Dropout")
function nn.Dropout:init(p, opts)
  self.p = p or 0.5
  if not (self.p >= 0 and self.p < 1) then error("Dropout: p must be in [0, 1), got " .. tostring(p), 3) end
  self.generator = opts and opts.generator
end
function nn.Dropout:forward(x) return F.dropout(x, self.p, self.training, self.generator) end
function nn.Dropout:extra_repr() return "p=" .. self.p end

-- GELU({approximate = "none" | "tanh"})
nn.GELU = Module.class("GELU")
function nn.GELU:init(opts) self.approximate = (opts and opts.approximate) or "none" end
function nn.GELU:forward(x) return F.gelu(x, self.approximate) end

nn.ReLU = Module.class("ReLU")
function nn.ReLU:forward(x) return F.relu(x) end

nn.Identity = Module.class("Identity")
function nn.Identity:forward(x) return x end

-- Sequential(m1, m2, ...): children named "0", "1", ... like PyTorch
nn.Sequential = Module.class("Sequential")
function nn.Sequential:init(...)
  local mods = { ... }
  if #mods == 1 and type(mods[1]) == "table" and getmetatable(mods[1]) == nil then mods = mods[1] end
  self.n = 0
  for _, m in ipairs(mods) do self:append(m) end
end
function nn.Sequential:append(m)
  self:add_module(tostring(self.n), m)
  self.n = self.n + 1
  return self
end
function nn.Sequential:get(i) return self[tostring(i - 1)] end
function nn.Sequential:forward(x)
  for i = 0, self.n - 1 do x = self[tostring(i)](x) end
  return x
end

-- Embedding(num, dim): weight ~ N(0, 1), ids 0-based
nn.Embedding = Module.class("Embedding")
function nn.Embedding:init(num, dim)
  self.num_embeddings, self.embedding_dim = num, dim
  self:register_parameter("weight", core.randn({ num, dim }))
end
function nn.Embedding:forward(ids) return F.embedding(ids, self.weight) end
function nn.Embedding:extra_repr() return self.num_embeddings .. ", " .. self.embedding_dim end

return nn
