-- model/parts.lua: the trainable parts of OneEncoder (names as in the
-- original PyTorch code, so checkpoints map across by name).
--   ProjectionHead / AlignmentLayer: token-wise Linear(in->d), GELU (erf),
--     Linear(d->d), Dropout(0.1), LayerNorm(d, eps 1e-5).
--   TokenEncoder: raw modality tokens (token_size, 3) ~ N(0, s^2), s ~ U(0.1, 0.6)
--     drawn once per token, and the MLP 3->64->128->d + LayerNorm(d)
--     (token_projection.{0,2,4,5}).
--   UniversalProjection: fusion of features X (B, L, d) and token m, LayerNorm,
--     TransformerEncoderLayer(s) (post-norm, ReLU, ff 2048), outer residual
--     from the fused input, pooling; the scaled-dot-product fusion's attention is
--     universal_projection_encoder.scaled_dot_product.{query,key,value}, as in the original.
local core = require "oneencoder.core"
local T = require "oneencoder.tensor"
local F = require "oneencoder.functional"
local nn = require "oneencoder.nn"

local P = {}

P.ProjectionHead = nn.class("ProjectionHead")
function P.ProjectionHead:init(input_dim, d, dropout, gen) -- gen: oe.Generator for the init, or nil
  self:add_module("linear_layer1", nn.Linear(input_dim, d, { generator = gen }))
  self:add_module("gelu", nn.GELU())
  self:add_module("linear_layer2", nn.Linear(d, d, { generator = gen }))
  self:add_module("dropout", nn.Dropout(dropout or 0.1))
  self:add_module("normalization_layer", nn.LayerNorm(d))
end
-- x (B, L, input_dim) -> (B, L, d)
function P.ProjectionHead:forward(x)
  x = self.gelu(self.linear_layer1(x))
  return self.normalization_layer(self.dropout(self.linear_layer2(x)))
end

-- TokenEncoder(d, names, token_size, gen): one raw token per modality name + one MLP;
-- initial values drawn from gen (an oe.Generator) or the global stream
P.TokenEncoder = nn.class("TokenEncoder")
function P.TokenEncoder:init(d, names, token_size, gen)
  self.token_size = token_size or 1
  self.names = {}
  for _, n in ipairs(names) do self:add_token(n, gen) end
  local o = { generator = gen }
  self:add_module("token_projection", nn.Sequential(nn.Linear(3, 64, o), nn.ReLU(), nn.Linear(64, 128, o), nn.ReLU(),
    nn.Linear(128, d, o), nn.LayerNorm(d)))
end
function P.TokenEncoder:add_token(name, gen)
  local s = (gen and gen:rand({ 1 }, 0.1, 0.6) or core.rand({ 1 }, 0.1, 0.6)):item()
  self:register_parameter(name .. "_token", gen and gen:randn({ self.token_size, 3 }, 0, s) or core.randn({ self.token_size, 3 }, 0, s))
  self.names[#self.names + 1] = name
end
function P.TokenEncoder:has(name) return self[name .. "_token"] ~= nil end
-- forward(name) -> (token_size, d)
function P.TokenEncoder:forward(name)
  return self.token_projection(self[name .. "_token"])
end

-- container modules for the original names: <m>_encoder.projection_head / .alignment_layer
P.ModalityEncoder = nn.class("ModalityEncoder")
function P.ModalityEncoder:init(kind, head)
  self.kind = kind
  self:add_module(kind, head)
end
function P.ModalityEncoder:forward(x) return self[self.kind](x) end

P.LayerStack = nn.class("LayerStack")
function P.LayerStack:init(layers)
  self:add_module("layers", nn.Sequential(layers))
end

-- ScaledDotProduct(d): the original's fusion attention (universal_projection_encoder.
-- scaled_dot_product.{query,key,value}): c = softmax(q k^T / sqrt(d)) v, q from the first
-- token row, k and v from the features.
P.ScaledDotProduct = nn.class("ScaledDotProduct")
function P.ScaledDotProduct:init(d)
  self.d = d
  self:add_module("query", nn.Linear(d, d))
  self:add_module("key", nn.Linear(d, d))
  self:add_module("value", nn.Linear(d, d))
end
-- forward(x (B, L, d), m (token_size, d), mask (B, L) uint8 or nil) -> c (B, 1, d)
function P.ScaledDotProduct:forward(x, m, mask)
  local s = core.shape(x)
  local B, L, d = s[1], s[2], s[3]
  local q = self.query(T.reshape(T.narrow(m, 1, 1, 1), { 1, d }))   -- (1, d)
  local k = self.key(x)                                              -- (B, L, d)
  local v = self.value(x)                                            -- (B, L, d)
  local scores = T.reshape(T.matmul(k, T.t(q)), { B, 1, L }) * (1 / math.sqrt(d))
  if mask then scores = T.masked_fill(scores, T.reshape(mask, { B, 1, L }), -math.huge) end
  return T.matmul(T.softmax(scores, -1), v)                          -- (B, 1, d)
end

local FUSIONS = { addition = true, multiplication = true, concatenation = true, scaled_dot_product = true }
local POOLINGS = { original = true, masked = true }
P.FUSIONS, P.POOLINGS = FUSIONS, POOLINGS

-- UniversalProjection(cfg): cfg.d, heads, layers, ff, dropout, fusion, pooling
P.UniversalProjection = nn.class("UniversalProjection")
function P.UniversalProjection:init(cfg)
  self.cfg = cfg
  self:add_module("layer_normalization", nn.LayerNorm(cfg.d))
  local layers = {}
  for i = 1, cfg.layers do
    layers[i] = nn.TransformerEncoderLayer(cfg.d, cfg.heads,
      { dim_feedforward = cfg.ff, dropout = cfg.dropout, checkpoint_ff = cfg.checkpoint_ff })
  end
  self:add_module("transformer_encoder", P.LayerStack(layers))
  if cfg.fusion == "scaled_dot_product" then
    self:add_module("scaled_dot_product", P.ScaledDotProduct(cfg.d))
  end
end

-- padding mask (B, L) uint8, 1 = padding, from lengths (B) (a Lua table or int tensor)
local function pad_mask(B, L, lengths, lead)
  lead = lead or 0
  local m = core.zeros({ B, L + lead }, "uint8")
  for b = 1, B do
    local n = lengths[b]
    for l = n + 1, L do core.set(m, 1, b, l + lead) end
  end
  return m
end

-- fuse(X (B, L, d), m (token_size, d), mask) -> H0 (B, L', d), mask', lead (positions to drop before pooling)
function P.UniversalProjection:fuse(x, m, mask)
  local f = self.cfg.fusion
  local s = core.shape(x)
  local B, d = s[1], s[3]
  if f == "addition" then
    return x + m, mask, 0
  elseif f == "multiplication" then
    return x * m, mask, 0
  elseif f == "concatenation" then
    local ts = core.shape(m)[1]
    local mm = T.add(T.reshape(m, { 1, ts, d }), core.zeros({ B, ts, d })) -- (B, ts, d)
    local lead_mask
    if mask then
      lead_mask = core.cat({ core.zeros({ B, ts }, "uint8"), mask }, 2)
    end
    local ex = require("oneencoder").cat({ mm, x }, 2)
    return ex, lead_mask, ts
  else -- scaled dot product: H0 = X + c
    return x + self.scaled_dot_product(x, m, mask), mask, 0
  end
end

-- forward(x (B, L, d), m (token_size, d), lengths or nil) -> R (B, L', d), mask', lead
function P.UniversalProjection:forward(x, m, lengths)
  local s = core.shape(x)
  local masked = self.cfg.pooling == "masked" and lengths ~= nil
  local mask = masked and pad_mask(s[1], s[2], lengths) or nil
  local h0, fmask, lead = self:fuse(x, m, mask)
  local z = self.layer_normalization(h0)
  local layers = self.transformer_encoder.layers
  for i = 1, layers.n do
    z = layers:get(i)(z, { key_padding_mask = fmask })
  end
  return z + h0, fmask, lead
end

-- pool(R (B, L', d), lengths, lead) -> (B, d)
function P.UniversalProjection:pool(r, lengths, lead)
  if lead > 0 then
    local L2 = core.shape(r)[2]
    r = T.narrow(r, 2, lead + 1, L2 - lead)
  end
  if self.cfg.pooling == "original" or lengths == nil then
    return T.mean(r, 2)
  end
  local s = core.shape(r)
  local B, L = s[1], s[2]
  local w = core.zeros({ B, L, 1 })
  for b = 1, B do
    local n = lengths[b]
    for l = 1, n do core.set(w, 1 / n, b, l, 1) end
  end
  return T.sum(r * w, 2)
end

P.pad_mask = pad_mask
return P
