-- model/layout.lua: the state-dict layout of a OneEncoder config, as pure functions on names,
-- shapes and strings (no tensor is allocated). A checkpoint reader plans with these before it
-- builds anything:
--   local L = require "oneencoder.model.layout"
--   local facts, err = L.read(info)           -- d, ff, layers, token size, modalities from the names and shapes
--   local ok, err = L.check_config(cfg)       -- every config value in range
--   local shapes, numel = L.state_shapes(cfg, mods)  -- name -> shape of OneEncoder(cfg) + add_modality(mods)
--   L.upgrade_name(name)                      -- our names before the scaled-dot-product rename -> today's
-- info is a table name -> {shape = {...}} (a safetensors header, or shapes of tensors in memory).
-- mods is a list of {name =, input_dim =, stage = 1 | 2}, step 1 first.
-- spec/model_spec.lua checks that state_shapes equals the state dict of the built model.
local L = {}

local UP = "universal_projection_encoder."
L.UP = UP
L.TOKEN_DIM = 3                  -- raw modality tokens are (token_size, 3)
L.TOKEN_HIDDEN = { 64, 128 }     -- token MLP 3 -> 64 -> 128 -> d
L.MAX_DIM = 2 ^ 31 - 1           -- any size above this is refused (int32 BLAS products)
L.FUSIONS = { addition = true, multiplication = true, concatenation = true, scaled_dot_product = true }
L.POOLINGS = { masked = true, original = true }
L.TEMPERATURES = { fixed = true, learnable = true }

-- the fusion attention's names: the original's (universal_projection_encoder.scaled_dot_product.*);
-- checkpoints written here before the rename used universal_projection_encoder.{query,key,value}.*
L.SDP = UP .. "scaled_dot_product."
local OLD_SDP = { query = true, key = true, value = true }

-- upgrade_name(name) -> name with universal_projection_encoder.{query,key,value}. (anywhere, e.g.
-- under text_image_encoder.) renamed to universal_projection_encoder.scaled_dot_product.*
function L.upgrade_name(name)
  local head, part, rest = name:match("^(.-universal_projection_encoder%.)([%a]+)(%..*)$")
  if head and OLD_SDP[part] then return head .. "scaled_dot_product." .. part .. rest end
  return name
end

local function layer_shapes(d, ff)
  return {
    ["self_attn.in_proj_weight"] = { 3 * d, d }, ["self_attn.in_proj_bias"] = { 3 * d },
    ["self_attn.out_proj.weight"] = { d, d }, ["self_attn.out_proj.bias"] = { d },
    ["linear1.weight"] = { ff, d }, ["linear1.bias"] = { ff },
    ["linear2.weight"] = { d, ff }, ["linear2.bias"] = { d },
    ["norm1.weight"] = { d }, ["norm1.bias"] = { d }, ["norm2.weight"] = { d }, ["norm2.bias"] = { d },
  }
end
L.layer_shapes = layer_shapes

local function linear(out, prefix, n_out, n_in)
  out[prefix .. ".weight"] = { n_out, n_in }
  out[prefix .. ".bias"] = { n_out }
end

local function head(out, prefix, din, d)
  linear(out, prefix .. ".linear_layer1", d, din)
  linear(out, prefix .. ".linear_layer2", d, d)
  out[prefix .. ".normalization_layer.weight"] = { d }
  out[prefix .. ".normalization_layer.bias"] = { d }
end

local function token_mlp(out, group, d)
  local h1, h2 = L.TOKEN_HIDDEN[1], L.TOKEN_HIDDEN[2]
  linear(out, group .. ".token_projection.0", h1, L.TOKEN_DIM)
  linear(out, group .. ".token_projection.2", h2, h1)
  linear(out, group .. ".token_projection.4", d, h2)
  out[group .. ".token_projection.5.weight"] = { d }
  out[group .. ".token_projection.5.bias"] = { d }
end

-- state_shapes(cfg, mods) -> {name = shape}, total element count
-- cfg needs d, ff, layers, fusion, token_size (integers already checked by check_config)
function L.state_shapes(cfg, mods)
  local d, ts = cfg.d, cfg.token_size
  local out = { temperature = {} }
  out[UP .. "layer_normalization.weight"] = { d }
  out[UP .. "layer_normalization.bias"] = { d }
  for i = 0, cfg.layers - 1 do
    for rest, s in pairs(layer_shapes(d, cfg.ff)) do
      out[UP .. "transformer_encoder.layers." .. i .. "." .. rest] = s
    end
  end
  if cfg.fusion == "scaled_dot_product" then
    for _, p in ipairs { "query", "key", "value" } do linear(out, L.SDP .. p, d, d) end
  end
  local shared = false
  for _, m in ipairs(mods) do
    if m.stage == 1 then
      head(out, m.name .. "_encoder.projection_head", m.input_dim, d)
      out["modality_token_encoder." .. m.name .. "_token"] = { ts, L.TOKEN_DIM }
      if not shared then token_mlp(out, "modality_token_encoder", d); shared = true end
    else
      head(out, m.name .. "_encoder.alignment_layer", m.input_dim, d)
      out[m.name .. "_token_encoder." .. m.name .. "_token"] = { ts, L.TOKEN_DIM }
      token_mlp(out, m.name .. "_token_encoder", d)
    end
  end
  local total = 0
  for _, s in pairs(out) do
    local n = 1
    for _, x in ipairs(s) do n = n * x end
    total = total + n
  end
  return out, total
end

-- ---------------------------------------------------------------- reading a layout

local function dims(s) return "(" .. table.concat(s, ", ") .. (#s == 1 and ",)" or ")") end
L.dims = dims

local function is_zero_size(s)
  for _, x in ipairs(s) do if x == 0 then return true end end
  return false
end

-- a size read from a shape: a positive integer no larger than MAX_DIM
local function size_ok(x) return math.type(x) == "integer" and x >= 1 and x <= L.MAX_DIM end

-- what a name says about the structure: kind, modality / layer index
local function classify(name)
  local li, rest = name:match("^universal_projection_encoder%.transformer_encoder%.layers%.([^.]*)%.(.+)$")
  if li then return "layer", li, rest end
  local m = name:match("^([%a_][%w_]*)_encoder%.projection_head%.linear_layer1%.weight$")
  if m then return "head1", m end
  m = name:match("^([%a_][%w_]*)_encoder%.alignment_layer%.linear_layer1%.weight$")
  if m then return "head2", m end
  if name:match("^universal_projection_encoder%.") or name:match("^modality_token_encoder%.")
    or name:match("^[%a_][%w_]*_token_encoder%.") or name:match("^[%a_][%w_]*_encoder%.projection_head%.")
    or name:match("^[%a_][%w_]*_encoder%.alignment_layer%.") or name == "temperature" then
    return "part"
  end
end

-- read(info) -> facts | nil, msg. Names are ours (see upgrade_name). facts:
--   d, ff, layers, token_size (and token_name, the tensor it is read from), sdp (the fusion
--   attention is present),
--   mods = {{name, input_dim, stage}} (step 1 first, each group sorted by L.modality_order)
-- Every size comes from a tensor whose shape is checked here: no zero-size tensor among the
-- model's parts, layer indices 0..n-1 each present (so n is at most the number of tensors).
function L.read(info)
  for name, i in pairs(info) do
    if classify(name) and is_zero_size(i.shape) then
      return nil, string.format("tensor %s has zero size %s", name, dims(i.shape))
    end
  end
  local ln = info[UP .. "layer_normalization.weight"]
  if not ln then return nil, "no universal_projection_encoder.layer_normalization.weight: not a OneEncoder state dict" end
  if #ln.shape ~= 1 or not size_ok(ln.shape[1]) then
    return nil, "universal_projection_encoder.layer_normalization.weight has shape " .. dims(ln.shape) .. ", expected (d,)"
  end
  local facts = { d = ln.shape[1], mods = {} }
  -- layers: indices must be decimal, without leading zeros, and run 0..n-1 with no gap
  local seen, n, max = {}, 0, -1
  for name in pairs(info) do
    local kind, idx = classify(name)
    if kind == "layer" then
      if not idx:match("^%d+$") or #idx > 9 or (#idx > 1 and idx:sub(1, 1) == "0") then
        return nil, "tensor " .. name .. ": layer index '" .. idx .. "' is not a decimal number below 10^9"
      end
      local k = math.tointeger(tonumber(idx))
      if not seen[k] then seen[k] = true; n = n + 1 end
      if k > max then max = k end
    end
  end
  if n == 0 then return nil, "no universal_projection_encoder.transformer_encoder.layers.0.*" end
  if max ~= n - 1 then
    local gap = 0
    while seen[gap] do gap = gap + 1 end
    return nil, string.format("layer %d is missing: the tensors name %d layers, with indices up to %d", gap, n, max)
  end
  facts.layers = n
  local l1 = info[UP .. "transformer_encoder.layers.0.linear1.weight"]
  if not l1 then return nil, "no universal_projection_encoder.transformer_encoder.layers.0.linear1.weight" end
  if #l1.shape ~= 2 or not size_ok(l1.shape[1]) then
    return nil, "universal_projection_encoder.transformer_encoder.layers.0.linear1.weight has shape " .. dims(l1.shape) .. ", expected (ff, d)"
  end
  facts.ff = l1.shape[1]
  facts.sdp = info[L.SDP .. "query.weight"] ~= nil
  -- modalities
  local s1, s2 = {}, {}
  for name, i in pairs(info) do
    local kind, m = classify(name)
    if kind == "head1" or kind == "head2" then
      if #i.shape ~= 2 or not size_ok(i.shape[2]) then
        return nil, name .. " has shape " .. dims(i.shape) .. ", expected (d, input_dim)"
      end
      local list = kind == "head1" and s1 or s2
      list[#list + 1] = { name = m, input_dim = i.shape[2], stage = kind == "head1" and 1 or 2 }
    end
  end
  if #s1 == 0 then return nil, "no <modality>_encoder.projection_head.* weights" end
  local order = function(a, b) return L.modality_order(a.name, b.name) end
  table.sort(s1, order); table.sort(s2, order)
  for _, m in ipairs(s1) do facts.mods[#facts.mods + 1] = m end
  for _, m in ipairs(s2) do facts.mods[#facts.mods + 1] = m end
  for _, m in ipairs(s1) do
    for _, m2 in ipairs(s2) do
      if m.name == m2.name then return nil, "modality '" .. m.name .. "' has both a projection head and an alignment layer" end
    end
  end
  local tname = "modality_token_encoder." .. s1[1].name .. "_token"
  local tok = info[tname]
  if not tok then return nil, "no " .. tname end
  if #tok.shape ~= 2 or not size_ok(tok.shape[1]) or tok.shape[2] ~= L.TOKEN_DIM then
    return nil, tname .. " has shape " .. dims(tok.shape) .. ", expected (token_size, 3)"
  end
  facts.token_size, facts.token_name = tok.shape[1], tname
  return facts
end

-- image first, then text, then the others by name (the original's step-1 order)
local STEP1_FIRST = { image = 1, text = 2 }
function L.modality_order(a, b)
  local ra, rb = STEP1_FIRST[a] or 3, STEP1_FIRST[b] or 3
  if ra ~= rb then return ra < rb end
  return a < b
end

-- ---------------------------------------------------------------- config values

local function finite(x) return type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge end

-- check_config(cfg) -> true | nil, key, reason: every value OneEncoder(cfg) reads, in range
function L.check_config(cfg)
  for _, k in ipairs { "d", "ff", "layers", "token_size", "heads" } do
    if not size_ok(cfg[k]) then return nil, k, "must be a positive integer below 2^31" end
  end
  if cfg.d % cfg.heads ~= 0 then return nil, "heads", string.format("must divide d = %d", cfg.d) end
  if not finite(cfg.dropout) or cfg.dropout < 0 or cfg.dropout >= 1 then return nil, "dropout", "must be a number in [0, 1)" end
  if not L.FUSIONS[cfg.fusion] then return nil, "fusion", "must be addition, multiplication, concatenation or scaled_dot_product" end
  if not L.POOLINGS[cfg.pooling] then return nil, "pooling", "must be masked or original" end
  if not L.TEMPERATURES[cfg.temperature] then return nil, "temperature", "must be fixed or learnable" end
  for _, k in ipairs { "use_token", "checkpoint_ff" } do
    if cfg[k] ~= nil and type(cfg[k]) ~= "boolean" then return nil, k, "must be true or false" end
  end
  for _, k in ipairs { "logit_scale_min", "logit_scale_max" } do
    if cfg[k] ~= nil and not finite(cfg[k]) then return nil, k, "must be a finite number" end
  end
  if cfg.logit_scale_min and cfg.logit_scale_max and cfg.logit_scale_min > cfg.logit_scale_max then
    return nil, "logit_scale_min", "must not exceed logit_scale_max"
  end
  return true
end

-- ---------------------------------------------------------------- metadata strings

-- shown(v): a metadata value as quoted in messages (at most 40 bytes, control bytes escaped)
function L.shown(v)
  v = tostring(v)
  local cut = #v > 40
  if cut then v = v:sub(1, 40) end
  v = v:gsub("[%c\"\\\128-\255]", function(c) return string.format("\\x%02x", c:byte()) end)
  return '"' .. v .. (cut and '..."' or '"')
end

-- parse_config(meta) -> cfg: the config.* entries typed as OneEncoder:config_metadata wrote them
-- ("true"/"false" -> booleans, numbers -> numbers, integral ones as integers, else strings);
-- nothing is checked here (see check_config)
function L.parse_config(meta)
  local cfg = {}
  for k, v in pairs(meta or {}) do
    local key = type(k) == "string" and k:match("^config%.(.+)$")
    if key and type(v) == "string" then
      if v == "true" then v = true elseif v == "false" then v = false
      elseif tonumber(v) then v = math.tointeger(tonumber(v)) or tonumber(v) end
      cfg[key] = v
    end
  end
  return cfg
end

-- parse_modalities(s) -> mods | nil, reason: "name:input_dim:stage,..." in the order written,
-- names unique identifiers, input_dim a positive integer below 2^31, stage 1 or 2, step 1 first
function L.parse_modalities(s)
  local mods, seen = {}, {}
  for entry in s:gmatch("[^,]+") do
    local name, din, stage = entry:match("^([%a_][%w_]*):(%d+):([12])$")
    local n = din and #din <= 10 and math.tointeger(tonumber(din))
    if not name or not size_ok(n) then
      return nil, "entry " .. L.shown(entry) .. " is not name:input_dim:stage (an identifier, a positive integer below 2^31, 1 or 2)"
    end
    if seen[name] then return nil, "modality '" .. name .. "' is listed twice" end
    stage = tonumber(stage)
    if stage == 1 and #mods > 0 and mods[#mods].stage == 2 then
      return nil, "step-1 modality '" .. name .. "' is listed after a step-2 one"
    end
    seen[name] = true
    mods[#mods + 1] = { name = name, input_dim = n, stage = stage }
  end
  return mods
end

return L
