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

-- dropout(x, p, training): inverted dropout from the seeded generator
function F.dropout(x, p, training)
  if not training or p == 0 then return x end
  local y, mask = core.dropout(x, p)
  local scale = 1 / (1 - p)
  return record(y, function(g) return core.masked_scale(g, mask, scale) end, x)
end

-- relu_dropout(x, p, training): dropout(relu(x)) fused; keeps only the output
-- for backward (the input can be freed), as the feed-forward block needs
function F.relu_dropout(x, p, training)
  if not training then p = 0 end
  local y = core.relu_dropout(x, p)
  return record(y, function(g, _, g_owned) return core.relu_dropout_backward(y, g, p, g_owned) end, x)
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

-- attention(q (B,L,D), k (B,S,D), v (B,S,D), heads, key_padding_mask (B,S) uint8 1=pad, p, training)
-- q may be the packed (B, L, 3D) projection with k = v = nil (self-attention).
-- Returns the attended values (B, L, D) and the attention weights (B, H, L, S).
function F.attention(q, k, v, heads, key_padding_mask, p, training)
  p = (training and p) or 0
  local out, probs, mask = core.attention(q, k, v, heads, key_padding_mask, p)
  out = record(out, function(g, needs)
    return core.attention_backward(q, k, v, heads, probs, mask, p, g)
  end, q, k, v)
  return out, probs
end

return F
