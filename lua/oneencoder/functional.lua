-- functional.lua: differentiable layer functions over fused C kernels
-- (oe.F). Shapes: B batch, L sequence, D features, H heads.
local core = require "oneencoder.core"
local A = require "oneencoder.autograd"
local T = require "oneencoder.tensor"

local record = A.record
local F = {}

-- linear(x (..., in), w (out, in), b (out) or nil) -> (..., out)
function F.linear(x, w, b)
  return record(core.linear(x, w, b), function(g, needs)
    return core.linear_backward(x, w, g, needs[1], needs[2], needs[3])
  end, x, w, b)
end

-- layer_norm(x (..., n), w (n), b (n), eps) over the last dim
function F.layer_norm(x, w, b, eps)
  local y, mean, rstd = core.layer_norm(x, w, b, eps or 1e-5)
  return record(y, function(g, needs)
    return core.layer_norm_backward(x, w, mean, rstd, g, needs[1], needs[2], needs[3])
  end, x, w, b)
end

-- Every function that drops units takes an optional last argument `generator` (an
-- oe.Generator): the draws come from it, or from the global stream when it is nil.

-- dropout(x, p, training, generator): inverted dropout
function F.dropout(x, p, training, generator)
  if not training or p == 0 then return x end
  local y, mask = core.dropout(x, p, generator)
  local scale = 1 / (1 - p)
  return record(y, function(g) return core.masked_scale(g, mask, scale) end, x)
end

-- relu_dropout(x, p, training): dropout(relu(x)) fused; keeps only the output
-- for backward (the input can be freed), as the feed-forward block needs
function F.relu_dropout(x, p, training, generator)
  if not training then p = 0 end
  local y = core.relu_dropout(x, p, generator)
  return record(y, function(g, _, g_owned) return core.relu_dropout_backward(y, g, p, g_owned) end, x)
end

-- feed_forward(x (..., d), w1 (ff, d), b1, w2 (d, ff), b2, p, training, chunk, generator):
-- linear2(dropout(relu(linear1(x)))) as one node that never holds the whole
-- (..., ff) hidden layer: it runs over blocks of `chunk` rows, and backward
-- recomputes each block, replaying the same dropout draws from the saved
-- generator position (activation checkpointing: one extra linear1 in backward).
function F.feed_forward(x, w1, b1, w2, b2, p, training, chunk, generator)
  if not training then p = 0 end
  local rng_state, set_rng_state = core.rng_state, core.set_rng_state
  if generator then
    rng_state = function() local st = generator:state(); return st[1], st[2] end
    set_rng_state = function(s, c) generator:set_state(s, c) end
  end
  chunk = chunk or 2048
  local shape = core.shape(x)
  local d, ff, dout = shape[#shape], core.shape(w1)[1], core.shape(w2)[1]
  local x2 = core.reshape(x, { -1, d })
  local N = core.shape(x2)[1]
  local seed, counter = rng_state()
  set_rng_state(seed, counter + (p > 0 and N * ff or 0)) -- the draws this node uses
  local function hidden(r0, n) -- rows r0+1 .. r0+n of relu_dropout(linear1(x))
    local s2, c2 = rng_state()
    set_rng_state(seed, counter + (p > 0 and r0 * ff or 0))
    local h = core.linear(core.narrow(x2, 1, r0 + 1, n), w1, b1)
    local y = core.relu_dropout(h, p, generator)
    set_rng_state(s2, c2)
    core.release(h)
    return y
  end
  local out_shape = { table.unpack(shape) }
  out_shape[#out_shape] = dout
  local out = core.zeros({ N, dout })
  for r0 = 0, N - 1, chunk do
    local n = math.min(chunk, N - r0)
    local y = hidden(r0, n)
    core.set_slice(out, 1, r0 + 1, core.linear(y, w2, b2))
    core.release(y)
  end
  out = core.reshape(out, out_shape)
  return record(out, function(g, needs)
    local g2 = core.reshape(g, { -1, dout })
    local gx = needs[1] and core.zeros({ N, d }) or nil
    local gw1, gb1, gw2, gb2
    local function acc(total, part) if part == nil then return total end; if total == nil then return part end; return core.axpy_(total, part) end
    for r0 = 0, N - 1, chunk do
      local n = math.min(chunk, N - r0)
      local y = hidden(r0, n)
      local gc = core.narrow(g2, 1, r0 + 1, n)
      local gy, gw2c, gb2c = core.linear_backward(y, w2, gc, true, needs[4], needs[5])
      gw2, gb2 = acc(gw2, gw2c), acc(gb2, gb2c)
      local gh = core.relu_dropout_backward(y, gy, p, true) -- in place into gy
      core.release(y)
      local gxc, gw1c, gb1c = core.linear_backward(core.narrow(x2, 1, r0 + 1, n), w1, gh, needs[1], needs[2], needs[3])
      core.release(gh)
      gw1, gb1 = acc(gw1, gw1c), acc(gb1, gb1c)
      if gxc then core.set_slice(gx, 1, r0 + 1, gxc) end
    end
    return gx and core.reshape(gx, shape) or nil, gw1, gb1, gw2, gb2
  end, x, w1, b1, w2, b2)
end

F.relu = T.relu
F.gelu = T.gelu
F.softmax = T.softmax
F.log_softmax = T.log_softmax
F.normalize = T.normalize

-- cross_entropy(logits (N, C), target (N) int64 0-based, opts {ignore_index, label_smoothing}) -> scalar mean
function F.cross_entropy(logits, target, opts)
  opts = opts or {}
  if type(target) == "table" then target = core.from_table(target, "int64") end
  if core.dtype(target) ~= "int64" then target = core.to(target, "int64") end
  local ignore, smooth = opts.ignore_index or -100, opts.label_smoothing or 0
  local loss, probs, count = core.cross_entropy(logits, target, ignore, smooth)
  local out = core.fill_(core.zeros({}), loss)
  return record(out, function(g)
    local gs = core.item(g) / math.max(count, 1)
    return core.cross_entropy_backward(probs, target, ignore, smooth, gs)
  end, logits)
end

-- embedding(ids (any shape) 0-based, weight (V, D)) -> ids.shape .. (D)
function F.embedding(ids, weight)
  return T.index_select(weight, ids)
end

-- attention(q (B,L,D), k (B,S,D), v (B,S,D), heads, key_padding_mask (B,S) uint8 1=pad, p, training, generator)
-- q may be the packed (B, L, 3D) projection with k = v = nil (self-attention).
-- Returns the attended values (B, L, D) and the attention weights (B, H, L, S).
function F.attention(q, k, v, heads, key_padding_mask, p, training, generator)
  p = (training and p) or 0
  local out, probs, mask = core.attention(q, k, v, heads, key_padding_mask, p, generator)
  out = record(out, function(g, needs)
    return core.attention_backward(q, k, v, heads, probs, mask, p, g)
  end, q, k, v)
  return out, probs
end

return F
