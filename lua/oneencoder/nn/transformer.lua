-- nn/transformer.lua: MultiheadAttention and TransformerEncoderLayer with
-- PyTorch's parameter names, packing and initialisation.
local core = require "oneencoder.core"
local F = require "oneencoder.functional"
local Module = require "oneencoder.nn.module"
local layers = require "oneencoder.nn.layers"

local nn = {}

-- MultiheadAttention(d, heads, {dropout = 0, bias = true}), batch_first.
-- in_proj_weight (3d, d) stacks Q, K, V; xavier-uniform init, zero biases,
-- out_proj as nn.Linear with a zero bias (torch.nn.MultiheadAttention).
nn.MultiheadAttention = Module.class("MultiheadAttention")
function nn.MultiheadAttention:init(d, heads, opts)
  opts = opts or {}
  if d % heads ~= 0 then error(string.format("MultiheadAttention: embed dim %d is not divisible by %d heads", d, heads), 3) end
  self.embed_dim, self.num_heads, self.dropout = d, heads, opts.dropout or 0
  local bound = math.sqrt(6 / (d + 3 * d))
  self:register_parameter("in_proj_weight", core.rand({ 3 * d, d }, -bound, bound))
  self:register_parameter("in_proj_bias", core.zeros({ 3 * d }))
  self:add_module("out_proj", layers.Linear(d, d))
  core.fill_(self.out_proj.bias, 0)
end

-- forward(query, key, value, {key_padding_mask = (B, S) uint8 1 = pad}) -> out (B, L, d), weights (B, H, L, S)
-- Self-attention (key and value nil or the same tensor as query) uses one packed projection.
function nn.MultiheadAttention:forward(q, k, v, opts)
  opts = opts or {}
  local mask = opts.key_padding_mask
  if mask and core.dtype(mask) ~= "uint8" then mask = core.to(mask, "uint8") end
  local out, w
  if (k == nil or k == q) and (v == nil or v == q) then
    local qkv = F.linear(q, self.in_proj_weight, self.in_proj_bias)
    out, w = F.attention(qkv, nil, nil, self.num_heads, mask, self.dropout, self.training, self.generator)
  else
    local d = self.embed_dim
    local W, b = self.in_proj_weight, self.in_proj_bias
    local qp = F.linear(q, W:narrow(1, 1, d), b:narrow(1, 1, d))
    local kp = F.linear(k, W:narrow(1, d + 1, d), b:narrow(1, d + 1, d))
    local vp = F.linear(v, W:narrow(1, 2 * d + 1, d), b:narrow(1, 2 * d + 1, d))
    out, w = F.attention(qp, kp, vp, self.num_heads, mask, self.dropout, self.training, self.generator)
  end
  return self.out_proj(out), w
end

-- TransformerEncoderLayer(d, heads, {dim_feedforward = 2048, dropout = 0.1,
--   activation = "relu" | "gelu", norm_first = false, eps = 1e-5, checkpoint_ff = false}), batch_first.
nn.TransformerEncoderLayer = Module.class("TransformerEncoderLayer")
function nn.TransformerEncoderLayer:init(d, heads, opts)
  opts = opts or {}
  local ff, p = opts.dim_feedforward or 2048, opts.dropout or 0.1
  self.norm_first = opts.norm_first or false
  -- checkpoint_ff: recompute the feed-forward hidden layer in backward instead of
  -- keeping it (saves (B, L, ff) floats per layer for one extra matmul)
  self.checkpoint_ff = opts.checkpoint_ff or false
  self.activation = opts.activation or "relu"
  self.p = p
  self:add_module("self_attn", nn.MultiheadAttention(d, heads, { dropout = p }))
  self:add_module("linear1", layers.Linear(d, ff))
  self:add_module("dropout", layers.Dropout(p))
  self:add_module("linear2", layers.Linear(ff, d))
  self:add_module("norm1", layers.LayerNorm(d, { eps = opts.eps }))
  self:add_module("norm2", layers.LayerNorm(d, { eps = opts.eps }))
  self:add_module("dropout1", layers.Dropout(p))
  self:add_module("dropout2", layers.Dropout(p))
end

function nn.TransformerEncoderLayer:_sa(x, mask)
  local y = self.self_attn(x, nil, nil, { key_padding_mask = mask })
  return self.dropout1(y)
end
function nn.TransformerEncoderLayer:_ff(x)
  if self.activation == "gelu" then
    return self.dropout2(self.linear2(self.dropout(F.gelu(self.linear1(x)))))
  end
  if self.checkpoint_ff then -- nothing of the (B, L, ff) hidden layer is kept
    local l1, l2 = self.linear1, self.linear2
    return self.dropout2(F.feed_forward(x, l1.weight, l1.bias, l2.weight, l2.bias, self.dropout.p, self.dropout.training,
      nil, self.dropout.generator))
  end
  -- relu and dropout fused: only the (B, L, ff) output is kept
  local pre = self.linear1(x)
  local h = F.relu_dropout(pre, self.dropout.p, self.dropout.training, self.dropout.generator)
  core.release(pre) -- nothing reads the pre-activation again
  return self.dropout2(self.linear2(h))
end

-- forward(x (B, L, d), {key_padding_mask = (B, L) uint8 1 = pad}) -> (B, L, d)
function nn.TransformerEncoderLayer:forward(x, opts)
  local mask = opts and opts.key_padding_mask
  if self.norm_first then
    x = x + self:_sa(self.norm1(x), mask)
    x = x + self:_ff(self.norm2(x))
  else
    x = self.norm1(x + self:_sa(x, mask))
    x = self.norm2(x + self:_ff(x))
  end
  return x
end

return nn
