-- model/init.lua: the OneEncoder model, a registry of modalities around one
-- Universal Projection.
--   local m = oe.OneEncoder({d = 256})            -- defaults equal the original code
--   m:add_modality("image", {input_dim = 768})    -- step-1 modalities share one token MLP
--   m:add_modality("text",  {input_dim = 768})
--   ... train step 1 (oe.train.align) ...
--   m:freeze()                                    -- UP, heads, tokens frozen
--   m:add_modality("audio", {input_dim = 768})    -- step 2: new alignment layer, token and MLP
--   local e = m:embed("audio", feats, lengths)    -- (B, d), L2-normalised
local core = require "oneencoder.core"
local T = require "oneencoder.tensor"
local F = require "oneencoder.functional"
local nn = require "oneencoder.nn"
local P = require "oneencoder.model.parts"
local layout = require "oneencoder.model.layout"

local M = {}

M.defaults = {
  d = 256, heads = 4, layers = 1, ff = 2048, dropout = 0.1,
  fusion = "addition",       -- addition | multiplication | concatenation | scaled_dot_product
  pooling = "masked",        -- masked | original (mean over every position, padding included)
  temperature = "fixed",     -- fixed: logit scale exp(2.5) | learnable: CLIP-style clamped log-scale
  token_size = nil,          -- 1, or 15 for concatenation
  use_token = true,          -- ablation: false drops the modality token (m = 0)
  checkpoint_ff = true,      -- recompute the UP's feed-forward hidden layer in backward (memory)
  logit_scale_min = 2.5, logit_scale_max = 3.0,
}

local OneEncoder = nn.class("OneEncoder")
M.OneEncoder = OneEncoder

local function check_cfg(cfg)
  if not P.FUSIONS[cfg.fusion] then error("OneEncoder: unknown fusion '" .. tostring(cfg.fusion) .. "' (addition, multiplication, concatenation, scaled_dot_product)", 4) end
  if not P.POOLINGS[cfg.pooling] then error("OneEncoder: unknown pooling '" .. tostring(cfg.pooling) .. "' (masked, original)", 4) end
  if cfg.temperature ~= "fixed" and cfg.temperature ~= "learnable" then error("OneEncoder: temperature must be 'fixed' or 'learnable'", 4) end
  if cfg.d % cfg.heads ~= 0 then error(string.format("OneEncoder: d = %d is not divisible by heads = %d", cfg.d, cfg.heads), 4) end
end

function OneEncoder:init(cfg)
  local c = {}
  for k, v in pairs(M.defaults) do c[k] = v end
  for k, v in pairs(cfg or {}) do c[k] = v end
  c.token_size = c.token_size or (c.fusion == "concatenation" and 15 or 1)
  check_cfg(c)
  self.cfg = c
  self.modalities = {}   -- name -> {input_dim, stage, token_group}
  self.order = {}
  self:add_module("universal_projection_encoder", P.UniversalProjection(c))
  -- the original keeps a parameter t = 0.07 clamped to [2.5, 3.0] on a detached copy: the scale is exp(2.5)
  self:register_parameter("temperature", core.fill_(core.zeros({}), c.temperature == "learnable" and c.logit_scale_min or 0.07))
  if c.temperature == "fixed" then T.requires_grad_(self.temperature, false) end
end

-- stage: 1 while nothing is frozen (modalities share the step-1 token MLP), 2 after freeze()
function OneEncoder:stage() return self.frozen_stage and 2 or 1 end

-- name_clash(model, name) -> nil, or why a modality called name would replace or shadow
-- something: its parts are model fields <name>_encoder (and <name>_token_encoder after
-- freeze()), its raw token a field <name>_token of a token encoder; none may exist yet,
-- and the model's own part names stay theirs even before they are created.
local RESERVED = { universal_projection = "universal_projection_encoder", modality_token = "modality_token_encoder" }
local function name_clash(model, name)
  if RESERVED[name] then return "its encoder would replace the model's '" .. RESERVED[name] .. "'" end
  local fields = { name .. "_encoder" }
  if model:stage() == 2 then fields[2] = name .. "_token_encoder" end
  for _, f in ipairs(fields) do
    if model[f] ~= nil then return "it would replace the model's field or part '" .. f .. "'" end
  end
  local group = model:stage() == 1 and model.modality_token_encoder or P.TokenEncoder
  if group[name .. "_token"] ~= nil then return "its token '" .. name .. "_token' would replace a field of the token encoder" end
  return nil
end

-- add_modality(name, {input_dim = 768, generator = nil}): a projection head (step 1) or an
-- alignment layer + new token + new token MLP (after freeze(): step 2); initial weights
-- drawn from opts.generator (an oe.Generator) or the global stream
function OneEncoder:add_modality(name, opts)
  opts = opts or {}
  if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then error("add_modality: name must be an identifier, got " .. tostring(name), 2) end
  if self.modalities[name] then error("add_modality: modality '" .. name .. "' already exists", 2) end
  local clash = name_clash(self, name)
  if clash then error(string.format("add_modality: the name '%s' is not allowed: %s", name, clash), 2) end
  local din = opts.input_dim or 768
  if math.type(din) ~= "integer" or din < 1 then error("add_modality: input_dim must be a positive integer", 2) end
  local gen = opts.generator
  if gen ~= nil and not core.is_generator(gen) then error("add_modality: opts.generator must be an oe.Generator", 2) end
  local c = self.cfg
  local info = { name = name, input_dim = din, stage = self:stage() }
  if info.stage == 1 then
    self:add_module(name .. "_encoder", P.ModalityEncoder("projection_head", P.ProjectionHead(din, c.d, c.dropout, gen)))
    if not self.modality_token_encoder then
      self:add_module("modality_token_encoder", P.TokenEncoder(c.d, {}, c.token_size, gen))
    end
    self.modality_token_encoder:add_token(name, gen)
    info.token_group = "modality_token_encoder"
  else
    self:add_module(name .. "_encoder", P.ModalityEncoder("alignment_layer", P.ProjectionHead(din, c.d, c.dropout, gen)))
    local group = name .. "_token_encoder"
    self:add_module(group, P.TokenEncoder(c.d, { name }, c.token_size, gen))
    info.token_group = group
  end
  if not self.training then self:eval() end
  self.modalities[name] = info
  self.order[#self.order + 1] = name
  return self
end

function OneEncoder:modality(name)
  local info = self.modalities[name]
  if not info then
    local known = table.concat(self.order, ", ")
    error(string.format("OneEncoder: unknown modality '%s' (known: %s)", tostring(name), known), 3)
  end
  return info
end

-- freeze(): everything trained so far stops training; later modalities are step 2
function OneEncoder:freeze()
  nn.Module.freeze(self)
  self.frozen_stage = true
  return self
end

local function lengths_table(lengths, B, L)
  if lengths == nil then return nil end
  local t = lengths
  if core.is_tensor(lengths) then t = core.totable(lengths) end
  if #t ~= B then error(string.format("embed: %d lengths for a batch of %d", #t, B), 3) end
  local all_full = true
  for b = 1, B do
    local n = t[b]
    if math.type(n) ~= "integer" then n = math.tointeger(n) end
    if not n or n < 1 or n > L then
      error(string.format("embed: length %s of item %d is outside 1..%d (the sequence length)", tostring(t[b]), b, L), 3)
    end
    if n ~= L then all_full = false end
  end
  if all_full then return nil end
  return t
end

-- token(name) -> (token_size, d) modality vector m (zeros when use_token is false)
function OneEncoder:token(name)
  local info = self:modality(name)
  local m = self[info.token_group](name)
  if not self.cfg.use_token then m = m * 0 end
  return m
end

-- embed_sequence(name, features (B, L, D), lengths) -> R (B, L', d), lengths table, lead
function OneEncoder:embed_sequence(name, x, lengths)
  local info = self:modality(name)
  local s = core.shape(x)
  if #s ~= 3 then error(string.format("embed: features for '%s' must be (B, L, D), got %s", name, T.shape_str(x)), 2) end
  if s[3] ~= info.input_dim then
    error(string.format("embed: features for '%s' have dim %d, the modality expects %d", name, s[3], info.input_dim), 2)
  end
  local lt = lengths_table(lengths, s[1], s[2])
  local h = self[name .. "_encoder"](x)
  local up = self.universal_projection_encoder
  local r, _, lead = up:forward(h, self:token(name), lt)
  return r, lt, lead
end

-- embed(name, features (B, L, D), lengths) -> (B, d) L2-normalised
function OneEncoder:embed(name, x, lengths)
  local r, lt, lead = self:embed_sequence(name, x, lengths)
  local pooled = self.universal_projection_encoder:pool(r, lt, lead)
  return F.normalize(pooled, 2, -1)
end

-- embed_set(name, set, batch = 256) -> (N, d): every item of a feature set (size, batch),
-- in eval mode and without gradients; the model's train/eval mode is restored. With masked
-- pooling an item's embedding does not depend on its batch (up to rounding), so items are embedded
-- in order of length when the set has lengths (far less padding for sequences of mixed lengths)
-- and their rows put back in the set's order; with the original pooling, in the set's order.
function OneEncoder:embed_set(name, set, batch)
  batch = batch or 256
  local A = require "oneencoder.autograd"
  local n = set:size()
  local order = {}
  for i = 1, n do order[i] = i end
  local lengths = set.lengths
  local by_length = self.cfg.pooling == "masked" and type(lengths) == "table"
  if by_length then
    table.sort(order, function(a, b)
      if lengths[a] ~= lengths[b] then return lengths[a] < lengths[b] end
      return a < b
    end)
  end
  return A.no_grad(function()
    local was = self.training
    self:eval()
    local rows = {}
    for s = 1, n, batch do
      local x, l = set:batch(table.move(order, s, math.min(n, s + batch - 1), 1, {}))
      rows[#rows + 1] = self:embed(name, x, l)
    end
    self:train(was)
    local out = #rows == 1 and rows[1] or core.cat(rows, 1)
    if by_length then
      local row_of = {} -- 0-based row of item i in out
      for pos, i in ipairs(order) do row_of[i] = pos - 1 end
      out = core.index_select(out, core.from_table(row_of, "int64"))
    end
    return out
  end)
end

-- set_encoder(name, enc): the frozen encoder (oe.encoders.create) whose features feed modality
-- name; kept beside the model, never in its state dict; nil detaches it. Its dim must be the
-- modality's input_dim. Then m:embed_images / m:embed_texts (oneencoder.pretrained) take raw inputs.
function OneEncoder:set_encoder(name, enc)
  local info = self:modality(name)
  if enc ~= nil then
    if type(enc) ~= "table" or type(enc.encode) ~= "function" or type(enc.check) ~= "function" then
      error("set_encoder: expected an encoder (oe.encoders.create), got " .. type(enc), 2)
    end
    if enc.dim ~= info.input_dim then
      error(string.format("set_encoder: the encoder gives %s-d features, modality '%s' takes %d", tostring(enc.dim), name, info.input_dim), 2)
    end
  end
  self._encoders = self._encoders or {}
  self._encoders[name] = enc
  return self
end

-- encoder(name) -> the attached encoder or nil
function OneEncoder:encoder(name)
  self:modality(name)
  return self._encoders and self._encoders[name]
end

-- embed_images(paths or images, opts) / embed_texts(strings, opts) -> (B, d): see oneencoder.pretrained
function OneEncoder:embed_images(inputs, opts) return require("oneencoder.pretrained").embed(self, "image", inputs, opts) end
function OneEncoder:embed_texts(texts, opts) return require("oneencoder.pretrained").embed(self, "text", texts, opts) end
-- embed_videos(paths or clips, opts) -> (B, d): the video encoder's sampling and preprocessing (oneencoder.pretrained)
function OneEncoder:embed_videos(inputs, opts) return require("oneencoder.pretrained").embed(self, "video", inputs, opts) end
-- embed_audio(paths or 16 kHz waveforms, opts) -> (B, d): the audio encoder's preprocessing (oneencoder.pretrained)
function OneEncoder:embed_audio(inputs, opts) return require("oneencoder.pretrained").embed(self, "audio", inputs, opts) end

-- logit scale: exp(clamp(t, 2.5, 3.0)); constant exp(2.5) unless learnable
function OneEncoder:logit_scale()
  local c = self.cfg
  if c.temperature == "fixed" then return math.exp(c.logit_scale_min) end
  return T.exp(T.clamp(self.temperature, c.logit_scale_min, c.logit_scale_max))
end

-- summary(): parameters per part, trainable vs frozen; returns the text
function OneEncoder:summary()
  local lines, total_t, total_f = {}, 0, 0
  lines[#lines + 1] = string.format("%-40s %12s %12s", "part", "trainable", "frozen")
  for _, child in ipairs(self:children()) do
    local t, f = 0, 0
    for _, p in ipairs(child[2]:parameters()) do
      if p.requires_grad then t = t + core.numel(p) else f = f + core.numel(p) end
    end
    lines[#lines + 1] = string.format("%-40s %12d %12d", child[1], t, f)
    total_t, total_f = total_t + t, total_f + f
  end
  lines[#lines + 1] = string.format("%-40s %12d %12d", "total", total_t, total_f)
  return table.concat(lines, "\n"), total_t, total_f
end

-- load_state_dict(sd, opts): as nn.Module's; names written before the scaled-dot-product
-- rename (universal_projection_encoder.{query,key,value}.*) are read as today's
-- (universal_projection_encoder.scaled_dot_product.*)
function OneEncoder:load_state_dict(sd, opts)
  local renamed
  for name in pairs(sd) do
    local new = layout.upgrade_name(name)
    if new ~= name and sd[new] == nil then renamed = renamed or {}; renamed[name] = new end
  end
  if renamed then
    local copy = {}
    for k, v in pairs(sd) do copy[renamed[k] or k] = v end
    sd = copy
  end
  return nn.Module.load_state_dict(self, sd, opts)
end

-- config as strings (checkpoint metadata)
function OneEncoder:config_metadata()
  local meta = {}
  for k, v in pairs(self.cfg) do meta["config." .. k] = tostring(v) end
  local mods = {}
  for _, n in ipairs(self.order) do
    local info = self.modalities[n]
    mods[#mods + 1] = string.format("%s:%d:%d", n, info.input_dim, info.stage)
  end
  meta.modalities = table.concat(mods, ",")
  meta.format = "oneencoder-1"
  return meta
end

-- from_metadata(meta) -> a new model with the same config and modalities (weights not loaded),
-- or nil, message for a bad modalities list. The sizes are taken as given: to read a file, use
-- oe.checkpoint.load, which checks them against the tensors before building anything.
function M.from_metadata(meta)
  if meta.format ~= "oneencoder-1" then return nil, "not a oneencoder checkpoint (metadata 'format' is " .. tostring(meta.format) .. ")" end
  local mods, why = layout.parse_modalities(meta.modalities or "")
  if not mods then return nil, "metadata modalities: " .. why end
  return M.build(layout.parse_config(meta), mods)
end

-- build(cfg, mods) -> OneEncoder(cfg) with mods ({name, input_dim, stage}, step 1 first) added
-- in order, frozen before the first step-2 one
function M.build(cfg, mods)
  local m = OneEncoder(cfg)
  for _, e in ipairs(mods) do
    if e.stage == 2 and not m.frozen_stage then m:freeze() end
    m:add_modality(e.name, { input_dim = e.input_dim })
  end
  return m
end

return M
