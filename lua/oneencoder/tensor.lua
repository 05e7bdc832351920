-- tensor.lua: the Tensor methods seen from Lua. Each differentiable method
-- runs a C kernel and records its backward (see autograd.lua).
-- Conventions: dims and positions given as Lua numbers are 1-based (negative
-- counts from the end, -1 = last); ids stored in tensors are 0-based, as in
-- PyTorch, because they are data (token ids, labels, argmax results).
local core = require "oneencoder.core"
local A = require "oneencoder.autograd"

local record, requires_grad = A.record, A.requires_grad
local is_tensor, rawattrs, attrs = core.is_tensor, core.rawattrs, core.attrs
local shape_of, numel = core.shape, core.numel

local T = {} -- methods

local function scalar_tensor(v) return core.fill_(core.zeros({}), v) end

-- shapes as Lua tables: equality and "(2, 3)" / "(5,)" / "()" text
local function same_dims(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end
local function shape_str(s) return "(" .. table.concat(s, ", ") .. (#s == 1 and ",)" or ")") end
local function same_shape(a, b) return same_dims(shape_of(a), shape_of(b)) end
T.same_dims, T.dims_str = same_dims, shape_str
T.shape_str = function(t) return shape_str(shape_of(t)) end

local function norm_dim(t, d, fn)
  local n = core.dim(t)
  d = d or -1
  local d0 = d < 0 and d + n + 1 or d
  if d0 < 1 or d0 > n then
    error(string.format("%s: dimension %d out of range for a %d-dimensional tensor", fn, d, n), 3)
  end
  return d0
end

-- ---------- inspection ----------
T.shape = core.shape
T.size = core.shape
T.dim = core.dim
T.numel = core.numel
T.dtype = core.dtype
T.item = core.item
T.totable = core.totable
T.get = core.get
T.set = core.set
T.to_bytes = core.to_bytes
T.nbytes = core.nbytes
T.tostring = core.tostring

-- ---------- autograd attributes ----------
function T.requires_grad_(t, on)
  if on == nil then on = true end
  if on and core.dtype(t) ~= "float32" then error("requires_grad_: only float32 tensors can require grad", 2) end
  local a = attrs(t)
  if a.node and not on then error("requires_grad_: cannot turn off grad on a non-leaf tensor; use detach()", 2) end
  a.requires_grad = on and true or false
  return t
end
function T.is_leaf(t) local a = rawattrs(t); return not (a and a.node) end
function T.backward(t, grad, retain_graph) return A.backward(t, grad, retain_graph) end
function T.detach(t) return core.alias(t) end
function T.zero_grad(t) local a = rawattrs(t); if a then a.grad = nil end; return t end

-- ---------- in-place (no grad recorded) ----------
local function check_inplace(t, fn)
  local a = rawattrs(t)
  if A.is_grad_enabled() and a and a.requires_grad then
    error(fn .. ": in-place change of a tensor that requires grad; wrap it in oe.no_grad or use detach()", 3)
  end
end
function T.fill_(t, v) check_inplace(t, "fill_"); return core.fill_(t, v) end
function T.zero_(t) check_inplace(t, "zero_"); return core.fill_(t, 0) end
function T.copy_(t, src) check_inplace(t, "copy_"); return core.copy_(t, src) end
function T.add_(t, other, alpha)
  check_inplace(t, "add_")
  if type(other) == "number" then return core.copy_(t, core.unary("adds", t, other)) end
  if not same_shape(t, other) then other = core.expand(other, shape_of(t)) end
  return core.axpy_(t, other, alpha or 1)
end
function T.mul_(t, s) check_inplace(t, "mul_"); return core.mul_(t, s) end
-- set_slice(t, dim, start, src): t[..., start .. start+len-1, ...] = src
function T.set_slice(t, dim, start, src) check_inplace(t, "set_slice"); return core.set_slice(t, dim, start, src) end

-- ---------- views and copies ----------
function T.clone(t)
  return record(core.clone(t), function(g) return g end, t)
end
function T.to(t, dtype) return core.to(t, dtype) end
function T.float(t) return core.to(t, "float32") end
function T.long(t) return core.to(t, "int64") end
function T.contiguous(t) return t end

function T.reshape(t, shape, ...)
  if type(shape) ~= "table" then shape = { shape, ... } end
  local in_shape = shape_of(t)
  return record(core.reshape(t, shape), function(g) return core.reshape(g, in_shape) end, t)
end
T.view = T.reshape
function T.flatten(t) return T.reshape(t, { -1 }) end
function T.unsqueeze(t, d)
  local s = shape_of(t)
  d = d < 0 and d + #s + 2 or d
  table.insert(s, d, 1)
  return T.reshape(t, s)
end
function T.squeeze(t, d)
  local s = shape_of(t)
  if d then
    d = norm_dim(t, d, "squeeze")
    if s[d] == 1 then table.remove(s, d) end
  else
    local o = {}
    for i = 1, #s do if s[i] ~= 1 then o[#o + 1] = s[i] end end
    s = o
  end
  return T.reshape(t, s)
end

function T.narrow(t, dim, start, len)
  local in_shape = shape_of(t)
  local d = norm_dim(t, dim, "narrow")
  return record(core.narrow(t, d, start, len), function(g)
    local gx = core.zeros(in_shape)
    return core.set_slice(gx, d, start, g)
  end, t)
end

function T.select(t, dim, i)
  local in_shape = shape_of(t)
  local d = norm_dim(t, dim, "select")
  local idx = i < 0 and i + in_shape[d] + 1 or i
  return record(core.select(t, d, i), function(g)
    local gs = shape_of(g)
    table.insert(gs, d, 1)
    return core.set_slice(core.zeros(in_shape), d, idx, core.reshape(g, gs))
  end, t)
end

-- index_select(t, ids): rows of t (first dim) by 0-based int ids of any shape
function T.index_select(t, ids)
  if type(ids) == "table" then ids = core.from_table(ids, "int64") end
  local in_shape = shape_of(t)
  return record(core.index_select(t, ids), function(g)
    return core.index_add_(core.zeros(in_shape), ids, g)
  end, t)
end

-- permute(t, {dims}) (1-based), contiguous copy
function T.permute(t, dims, ...)
  if type(dims) ~= "table" then dims = { dims, ... } end
  local nd = #dims
  local inv = {}
  for i = 1, nd do
    local p = dims[i] < 0 and dims[i] + nd + 1 or dims[i]
    inv[p] = i
  end
  return record(core.permute(t, dims), function(g) return core.permute(g, inv) end, t)
end

function T.transpose(t, d1, d2)
  local n = core.dim(t)
  d1, d2 = norm_dim(t, d1 or n - 1, "transpose"), norm_dim(t, d2 or n, "transpose")
  local perm = {}
  for i = 1, n do perm[i] = i end
  perm[d1], perm[d2] = perm[d2], perm[d1]
  return T.permute(t, perm)
end
function T.t(t)
  if core.dim(t) ~= 2 then error("t: expects a 2-D tensor, got shape " .. T.shape_str(t), 2) end
  return T.transpose(t, 1, 2)
end

-- ---------- elementwise ----------
local function binary(op, a, b, backward)
  if type(a) == "number" then a = scalar_tensor(a) end
  if type(b) == "number" then b = scalar_tensor(b) end
  return record(core.binary(op, a, b), backward, a, b), a, b
end

local function reduce_to(g, t) -- undo broadcasting
  local s = shape_of(t)
  local gs = shape_of(g)
  if #s == #gs then
    local same = true
    for i = 1, #s do if s[i] ~= gs[i] then same = false break end end
    if same then return g end
  end
  return core.sum_to(g, s)
end

function T.add(a, b, alpha)
  if alpha and alpha ~= 1 then b = T.mul(b, alpha) end
  if type(b) == "number" then
    return record(core.unary("adds", a, b), function(g) return g end, a)
  end
  if type(a) == "number" then return T.add(b, a) end
  local out
  out = record(core.binary("add", a, b), function(g, needs)
    return needs[1] and reduce_to(g, a) or nil, needs[2] and reduce_to(g, b) or nil
  end, a, b)
  return out
end

function T.sub(a, b)
  if type(b) == "number" then return T.add(a, -b) end
  if type(a) == "number" then
    return record(core.unary("rsubs", b, a), function(g) return core.unary("neg", g) end, b)
  end
  return record(core.binary("sub", a, b), function(g, needs)
    return needs[1] and reduce_to(g, a) or nil, needs[2] and reduce_to(core.unary("neg", g), b) or nil
  end, a, b)
end

function T.mul(a, b)
  if type(a) == "number" then a, b = b, a end
  if type(b) == "number" then
    return record(core.unary("muls", a, b), function(g) return core.unary("muls", g, b) end, a)
  end
  return record(core.binary("mul", a, b), function(g, needs)
    return needs[1] and reduce_to(core.binary("mul", g, b), a) or nil,
      needs[2] and reduce_to(core.binary("mul", g, a), b) or nil
  end, a, b)
end

function T.div(a, b)
  if type(b) == "number" then return T.mul(a, 1 / b) end
  if type(a) == "number" then
    return record(core.unary("rdivs", b, a), function(g) return core.unary_backward("rdivs", b, nil, g, a) end, b)
  end
  return record(core.binary("div", a, b), function(g, needs)
    local ga = needs[1] and reduce_to(core.binary("div", g, b), a) or nil
    local gb
    if needs[2] then -- -g * a / b^2
      gb = reduce_to(core.unary("neg", core.binary("div", core.binary("mul", g, a), core.unary("square", b))), b)
    end
    return ga, gb
  end, a, b)
end

function T.neg(a) return T.mul(a, -1) end

-- unary ops whose backward needs the input (x) or the output (y)
local function unary(op, uses_y)
  return function(x, p1, p2)
    local y = core.unary(op, x, p1, p2)
    return record(y, function(g)
      return core.unary_backward(op, uses_y and nil or x, uses_y and y or nil, g, p1, p2)
    end, x)
  end
end
T.exp = unary("exp", true)
T.log = unary("log")
T.sqrt = unary("sqrt", true)
T.rsqrt = unary("rsqrt", true)
T.abs = unary("abs")
T.tanh = unary("tanh", true)
T.sigmoid = unary("sigmoid", true)
T.relu = unary("relu")
T.square = unary("square")
local gelu_erf, gelu_tanh = unary("gelu"), unary("gelu_tanh")
-- gelu(x, approximate): approximate = "tanh" for the tanh form, exact erf otherwise
function T.gelu(x, approximate)
  if approximate == "tanh" then return gelu_tanh(x) end
  return gelu_erf(x)
end
local pows = unary("pows")
function T.pow(x, p)
  if type(p) == "number" then return pows(x, p) end
  error("pow: exponent must be a number", 2)
end
local clamp = unary("clamp")
function T.clamp(x, lo, hi)
  return clamp(x, lo or -math.huge, hi or math.huge)
end

-- comparisons give float 0/1 tensors (no grad)
for _, op in ipairs { "eq", "ne", "lt", "le", "gt", "ge" } do
  T[op] = function(a, b)
    if type(b) == "number" then b = scalar_tensor(b) end
    return core.binary(op, a, b)
  end
end
function T.maximum(a, b)
  return record(core.binary("maximum", a, b), function(g, needs)
    local m = core.binary("ge", a, b)
    return needs[1] and reduce_to(core.binary("mul", g, m), a) or nil,
      needs[2] and reduce_to(core.binary("mul", g, core.unary("rsubs", m, 1)), b) or nil
  end, a, b)
end

-- masked_fill(x, mask, value): mask uint8 (or 0/1 float) broadcastable to x
function T.masked_fill(x, mask, value)
  if core.dtype(mask) ~= "uint8" then mask = core.to(mask, "uint8") end
  return record(core.masked_fill(x, mask, value), function(g) return core.masked_fill(g, mask, 0) end, x)
end

-- ---------- reductions ----------
local function keep_shape(t, d)
  local s = shape_of(t)
  s[d] = 1
  return s
end

function T.sum(x, dim, keepdim)
  local in_shape = shape_of(x)
  if dim == nil then
    return record(core.reduce("sum", x), function(g) return core.expand(g, in_shape) end, x)
  end
  local d = norm_dim(x, dim, "sum")
  local ks = keep_shape(x, d)
  return record(core.reduce("sum", x, d, keepdim), function(g)
    return core.expand(core.reshape(g, ks), in_shape)
  end, x)
end

function T.mean(x, dim, keepdim)
  local in_shape = shape_of(x)
  if dim == nil then
    local n = numel(x)
    return record(core.reduce("mean", x), function(g) return core.expand(core.unary("muls", g, 1 / n), in_shape) end, x)
  end
  local d = norm_dim(x, dim, "mean")
  local ks, n = keep_shape(x, d), in_shape[d]
  return record(core.reduce("mean", x, d, keepdim), function(g)
    return core.expand(core.reshape(core.unary("muls", g, 1 / n), ks), in_shape)
  end, x)
end

local function minmax(op)
  return function(x, dim, keepdim)
    local in_shape = shape_of(x)
    if dim == nil then
      local v, idx = core.reduce(op, x)
      return record(v, function(g)
        local gx = core.zeros({ numel(x) })
        core.index_add_(gx, core.reshape(idx, { 1 }), core.reshape(g, { 1 }))
        return core.reshape(gx, in_shape)
      end, x), idx
    end
    local d = norm_dim(x, dim, op)
    local v, idx = core.reduce(op, x, d, keepdim)
    return record(v, function(g)
      -- scatter g to the arg positions: build a one-hot along d through comparison with arange
      local n = in_shape[d]
      local ks = keep_shape(x, d)
      local ar_shape = {}
      for i = 1, #in_shape do ar_shape[i] = 1 end
      ar_shape[d] = n
      local ar = core.reshape(core.arange(0, n), ar_shape)
      local onehot = core.binary("eq", ar, core.reshape(core.to(idx, "float32"), ks))
      return core.binary("mul", onehot, core.reshape(g, ks))
    end, x), idx
  end
end
T.max = minmax("max")
T.min = minmax("min")
function T.argmax(x, dim, keepdim)
  local _, idx = core.reduce("max", x, dim and norm_dim(x, dim, "argmax"), keepdim)
  return idx
end
function T.argmin(x, dim, keepdim)
  local _, idx = core.reduce("min", x, dim and norm_dim(x, dim, "argmin"), keepdim)
  return idx
end
-- topk(x, k, largest=true) along the last dim -> values, 0-based indices (ties: lower index first)
function T.topk(x, k, largest)
  return core.topk(x, k, largest ~= false)
end

-- ---------- linear algebra ----------
-- matmul(a, b): (M,K)x(K,N), (B,M,K)x(B,K,N), (...,M,K)x(K,N)
function T.matmul(a, b)
  local sa, sb = shape_of(a), shape_of(b)
  local out = core.matmul(a, b)
  return record(out, function(g, needs)
    local ga, gb
    if needs[1] then ga = core.matmul(g, b, false, true) end
    if needs[2] then
      if #sb == 3 then
        gb = core.matmul(a, g, true, false)
      else -- flatten leading dims of a and g
        local K, N = sb[1], sb[2]
        gb = core.matmul(core.reshape(a, { -1, K }), core.reshape(g, { -1, N }), true, false)
      end
    end
    return ga, gb
  end, a, b)
end

-- ---------- activations over the last dim ----------
local function move_last(x, d)
  local n = core.dim(x)
  if d == n then return x, nil end
  local perm = {}
  for i = 1, n do perm[i] = i end
  perm[d], perm[n] = perm[n], perm[d]
  return T.permute(x, perm), perm
end

local function softmax_impl(x, dim, log)
  local d = norm_dim(x, dim, log and "log_softmax" or "softmax")
  local xt, perm = move_last(x, d)
  local y = core.softmax(xt, log)
  -- the backward closure keeps y (the softmax of xt); the permuted result is a new local
  local out = record(y, function(g) return core.softmax_backward(y, g, log) end, xt)
  if perm then out = T.permute(out, perm) end
  return out
end
function T.softmax(x, dim) return softmax_impl(x, dim, false) end
function T.log_softmax(x, dim) return softmax_impl(x, dim, true) end

-- normalize(x, p=2, dim=-1, eps=1e-12): x / max(||x||, eps) (F.normalize)
function T.normalize(x, p, dim, eps)
  if p and p ~= 2 then error("normalize: only p = 2 is supported", 2) end
  local d = norm_dim(x, dim, "normalize")
  eps = eps or 1e-12
  local xt, perm = move_last(x, d)
  local y, nr = core.l2norm(xt, eps)
  local out = record(y, function(g) return core.l2norm_backward(xt, y, nr, g, eps) end, xt)
  if perm then out = T.permute(out, perm) end
  return out
end

-- ---------- operators ----------
local mt = core.Tensor_mt
mt.__index = function(t, k)
  local m = T[k]
  if m ~= nil then return m end
  local a = rawattrs(t)
  if a then return a[k] end
  return nil
end
mt.__newindex = function(t, k, v)
  if k == "requires_grad" then T.requires_grad_(t, v); return end
  attrs(t)[k] = v
end
mt.__add = function(a, b) return T.add(a, b) end
mt.__sub = function(a, b) return T.sub(a, b) end
mt.__mul = function(a, b) return T.mul(a, b) end
mt.__div = function(a, b) return T.div(a, b) end
mt.__unm = function(a) return T.mul(a, -1) end
mt.__pow = function(a, b) return T.pow(a, b) end
mt.__len = function(t) local s = shape_of(t); return s[1] or 0 end
mt.__name = "oe.Tensor"

T.same_shape = same_shape
T.scalar_tensor = scalar_tensor
return T
