-- oneencoder: Lua 5.4 front of the C core. local oe = require "oneencoder"
local core = require "oneencoder.core"
local A = require "oneencoder.autograd"
local T = require "oneencoder.tensor"

local oe = {
  core = core,
  Tensor = T,
  _VERSION = "oneencoder scm",
}

-- ---- creation ----
local function shape_arg(s, ...)
  if type(s) == "table" then return s end
  return { s, ... }
end
local function last_string(...)
  local n = select("#", ...)
  local v = n > 0 and select(n, ...) or nil
  if type(v) == "string" then return v end
end

-- oe.tensor(nested_table_or_number, dtype)
function oe.tensor(data, dtype) return core.from_table(data, dtype) end
-- oe.zeros({2, 3}) or oe.zeros(2, 3); dtype as a last string argument
function oe.zeros(s, ...)
  local dt = last_string(s, ...)
  if type(s) == "table" then return core.zeros(s, dt or ...) end
  local dims = { s, ... }
  if dt then dims[#dims] = nil end
  return core.zeros(dims, dt)
end
function oe.ones(s, ...) return core.fill_(oe.zeros(s, ...), 1) end
function oe.full(s, value, dtype) return core.fill_(core.zeros(s, dtype), value) end
function oe.zeros_like(t) return core.zeros(core.shape(t), core.dtype(t)) end
function oe.ones_like(t) return core.fill_(core.zeros(core.shape(t), core.dtype(t)), 1) end
-- arange(stop) / arange(start, stop, step, dtype)
function oe.arange(a, b, step, dtype)
  if b == nil then return core.arange(0, a, 1, dtype) end
  return core.arange(a, b, step or 1, dtype)
end
function oe.randn(s, ...) return core.randn(shape_arg(s, ...)) end
function oe.rand(s, ...) return core.rand(shape_arg(s, ...)) end
-- randint(lo, hi, shape, dtype): integers in [lo, hi)
function oe.randint(lo, hi, shape, dtype) return core.randint(lo, hi, shape, dtype) end
-- normal(shape, mean, std) / uniform(shape, lo, hi)
function oe.normal(shape, mean, std) return core.randn(shape, mean or 0, std or 1) end
function oe.uniform(shape, lo, hi) return core.rand(shape, lo or 0, hi or 1) end
function oe.from_bytes(str, dtype, shape) return core.from_bytes(str, dtype, shape) end
function oe.manual_seed(seed) core.manual_seed(seed) end
-- RNG state (for checkpoints): a table {seed, counter}
function oe.get_rng_state() local s, c = core.rng_state(); return { s, c } end
function oe.set_rng_state(st) core.set_rng_state(st[1], st[2]) end
-- oe.Generator(seed): an independent random stream (no seed: one draw of the global stream);
-- oe.default_generator is the global stream itself (csrc/bind/generator.c)
oe.Generator, oe.is_generator, oe.default_generator = core.generator, core.is_generator, core.default_generator()
oe.is_tensor = core.is_tensor

-- cat({t...}, dim) / stack({t...}, dim), differentiable
function oe.cat(list, dim)
  dim = dim or 1
  local n0 = core.dim(list[1])
  local d = dim < 0 and dim + n0 + 1 or dim
  local out = core.cat(list, d)
  local sizes = {}
  for i, t in ipairs(list) do sizes[i] = core.shape(t)[d] end
  return A.record(out, function(g, needs)
    local grads, pos = {}, 1
    for i = 1, #list do
      if needs[i] then grads[i] = core.narrow(g, d, pos, sizes[i]) end
      pos = pos + sizes[i]
    end
    return table.unpack(grads, 1, #list)
  end, table.unpack(list))
end
function oe.stack(list, dim)
  dim = dim or 1
  local s = core.shape(list[1])
  local d = dim < 0 and dim + #s + 2 or dim
  local parts = {}
  for i, t in ipairs(list) do parts[i] = T.unsqueeze(t, d) end
  return oe.cat(parts, d)
end

-- every tensor method is also a function: oe.matmul(a, b), oe.exp(x), ...
for k, f in pairs(T) do
  if oe[k] == nil then oe[k] = f end
end

-- ---- autograd ----
oe.no_grad = A.no_grad
oe.is_grad_enabled = A.is_grad_enabled
oe.set_grad_enabled = A.set_grad_enabled

-- ---- threads ----
oe.set_num_threads = core.set_num_threads
-- info() -> {cpu, simd, blas, blas_core, blas_core_source, blas_library_core, threads, build,
--   omp_wait_policy, omp_wait_policy_source}:
-- what the products and kernels run on (README, "Machines and reproducibility")
function oe.info()
  local t = core.info()
  t.omp_wait_policy, t.omp_wait_policy_source = core.omp_env.wait_policy, core.omp_env.source
  return t
end
-- set_blas_core(name): switch OpenBLAS's kernels now ("SkylakeX", "Haswell", "Zen", ...)
oe.set_blas_core = core.set_blas_core
oe.get_num_threads = core.get_num_threads

oe.F = require "oneencoder.functional"
oe.nn = require "oneencoder.nn"
oe.optim = require "oneencoder.optim"
oe.data = require "oneencoder.data"
oe.model = require "oneencoder.model"
oe.OneEncoder = oe.model.OneEncoder
oe.train = require "oneencoder.train"
oe.report = require "oneencoder.report"
local S = require "oneencoder.serialize"; oe.save, oe.load, oe.load_header = S.save, S.load, S.header
oe.eval = require "oneencoder.eval"
oe.image = require "oneencoder.image"
oe.audio = require "oneencoder.audio"
oe.video = require "oneencoder.video"
oe.cache = require "oneencoder.cache"
oe.checkpoint = require "oneencoder.checkpoint"
oe.encoders = require "oneencoder.encoders"
oe.text = require "oneencoder.text"
oe.onnx = require "oneencoder.onnx"
oe.tfjs = require "oneencoder.tfjs"
oe.pretrained = require "oneencoder.pretrained"
oe.dist = require "oneencoder.dist"
return oe
