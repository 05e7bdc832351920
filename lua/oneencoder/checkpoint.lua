-- checkpoint.lua: OneEncoder checkpoints, in our format and in the original code's layout.
--
--   local ckpt = oe.checkpoint
--   assert(ckpt.save(model, "run/model.safetensors", {note = "step 1, COCO"}))
--   local model, meta = ckpt.load("run/model.safetensors")         -- config read from the file
--   ckpt.load_into(model, "run/model.safetensors")                  -- error names keys and shapes
--   local m, report = ckpt.import_original("text_image.safetensors", {modalities = {image = 768, text = 768}})
--       report.encoder_keys  -- e.g. image_encoder.pretrained_vit.*, text_encoder.pretrained_bert.* (not loaded)
--       report.encoders      -- modality -> list of prefixes of those keys
--       report.ignored       -- transformer_encoder_block.* (unused in the original) and duplicate temperatures
--   ckpt.export_original(model, "out.safetensors", {modality = "audio"})
--
-- Our format: safetensors, the model's state-dict names (PyTorch style), model:config_metadata()
-- and the caller's extra metadata in __metadata__; written crash-safe (temporary file + rename).
-- A model with a NaN or Inf anywhere is not saved: save returns nil and a message naming the
-- parameter, and the file already at path stays as it was.
--
-- The original layout (b-faye/OneEncoder state dicts):
--   step 1: <m>_encoder.projection_head.*, modality_token_encoder.{<m>_token, token_projection.*},
--           universal_projection_encoder.{layer_normalization, transformer_encoder.layers.N}.*,
--           universal_projection_encoder.transformer_encoder_block.* (unused copy), temperature,
--           and the frozen encoders (<m>_encoder.pretrained_vit.*, ...).
--   step 2: the whole step-1 model under text_image_encoder., plus <new>_encoder.alignment_layer.*,
--           a new top-level modality_token_encoder.{<new>_token, token_projection.*}, temperature.
-- Our names differ only for step 2: the new token encoder is <new>_token_encoder.* and the
-- step-1 parts are not nested.
local core = require "oneencoder.core"
local S = require "oneencoder.serialize"
local T = require "oneencoder.tensor"
local model_mod = require "oneencoder.model"

local M = {}

local same_shape, shape_str = T.same_dims, T.dims_str
local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- first state-dict entry (sorted by name) holding NaN or Inf, or nil
local function non_finite(sd)
  for _, name in ipairs(sorted_keys(sd)) do
    local t = sd[name]
    if core.dtype(t) == "float32" and not core.all_finite(t) then return name end
  end
end

local function metadata_strings(meta, fn)
  local out = {}
  for k, v in pairs(meta or {}) do
    if type(k) ~= "string" then error(fn .. ": metadata keys must be strings", 3) end
    if type(v) == "number" or type(v) == "boolean" then v = tostring(v) end
    if type(v) ~= "string" then error(fn .. ": metadata value for '" .. k .. "' must be a string, got " .. type(v), 3) end
    out[k] = v
  end
  return out
end

local function check_model(model, fn)
  if type(model) ~= "table" or type(model.state_dict) ~= "function" or type(model.config_metadata) ~= "function" then
    error(fn .. ": expected a OneEncoder model", 3)
  end
end

-- save(model, path, extra_metadata, {dtype = "float16"}) -> true | nil, msg
function M.save(model, path, extra, opts)
  check_model(model, "checkpoint.save")
  if type(path) ~= "string" then error("checkpoint.save: path must be a string", 2) end
  local sd = model:state_dict()
  local bad = non_finite(sd)
  if bad then
    return nil, string.format("checkpoint.save: %s: parameter '%s' contains NaN or Inf; nothing was written (the file already there is kept)", path, bad)
  end
  local meta = metadata_strings(extra, "checkpoint.save")
  for k, v in pairs(model:config_metadata()) do meta[k] = v end
  return S.save(path, sd, meta, opts)
end

-- compare the file's header with a model: missing, unexpected (optim.* skipped: trainer state), mismatched
local function compare(own, info)
  local missing, unexpected, mismatched, names = {}, {}, {}, {}
  for _, name in ipairs(sorted_keys(own)) do
    local i = info[name]
    local s = core.shape(own[name])
    if not i then
      missing[#missing + 1] = name .. " " .. shape_str(s)
    elseif not same_shape(s, i.shape) then
      mismatched[#mismatched + 1] = string.format("%s: model %s, file %s", name, shape_str(s), shape_str(i.shape))
    elseif not i.loads_as then
      mismatched[#mismatched + 1] = string.format("%s: file dtype %s cannot be loaded", name, i.dtype)
    else
      names[#names + 1] = name
    end
  end
  for _, name in ipairs(sorted_keys(info)) do
    if own[name] == nil and not name:match("^optim%.") then
      unexpected[#unexpected + 1] = name .. " " .. shape_str(info[name].shape)
    end
  end
  local parts = {}
  if #missing > 0 then parts[#parts + 1] = "missing keys: " .. table.concat(missing, ", ") end
  if #unexpected > 0 then parts[#parts + 1] = "unexpected keys: " .. table.concat(unexpected, ", ") end
  if #mismatched > 0 then parts[#parts + 1] = "mismatched shapes: " .. table.concat(mismatched, "; ") end
  return names, #parts > 0 and table.concat(parts, "; ") or nil
end

local function looks_original(info)
  for name in pairs(info) do
    if name:match("universal_projection_encoder%.transformer_encoder_block%.") then return true end
  end
end

-- load_into(model, path) -> meta: copy the file's weights into model; raises an error naming the
-- mismatching keys and shapes when the file is for another config (the model is then unchanged).
-- Returns the file's metadata and a list of config entries that differ from the model's.
function M.load_into(model, path)
  check_model(model, "checkpoint.load_into")
  if type(path) ~= "string" then error("checkpoint.load_into: path must be a string", 2) end
  local info, meta = S.header(path)
  if not info then error("checkpoint.load_into: " .. meta, 2) end
  local names, problem = compare(model:state_dict(), info)
  if problem then
    error("checkpoint.load_into: " .. path .. " does not match the model: " .. problem, 2)
  end
  local sd, msg = S.load(path, { names = names })
  if not sd then error("checkpoint.load_into: " .. msg, 2) end
  model:load_state_dict(sd, { strict = false })
  local diffs = {}
  for k, v in pairs(model:config_metadata()) do
    if k:match("^config%.") and meta[k] ~= nil and meta[k] ~= v then
      diffs[#diffs + 1] = string.format("%s: model %s, file %s", k, v, meta[k])
    end
  end
  table.sort(diffs)
  return meta, diffs
end

-- load(path) -> model, metadata | nil, msg: the model is built from the file's metadata
function M.load(path)
  if type(path) ~= "string" then error("checkpoint.load: path must be a string", 2) end
  local info, meta = S.header(path)
  if not info then return nil, meta end
  if meta.format ~= "oneencoder-1" then
    if looks_original(info) then
      return nil, path .. ": a checkpoint in the original code's layout; use checkpoint.import_original"
    end
    return nil, path .. ": not a oneencoder checkpoint (metadata 'format' is " .. tostring(meta.format) .. ")"
  end
  local ok, model, err = pcall(model_mod.from_metadata, meta)
  if not ok then return nil, path .. ": " .. tostring(model) end
  if not model then return nil, path .. ": " .. tostring(err) end
  local names, problem = compare(model:state_dict(), info)
  if problem then return nil, path .. ": the weights do not match the config in its metadata: " .. problem end
  local sd, msg = S.load(path, { names = names })
  if not sd then return nil, msg end
  model:load_state_dict(sd, { strict = false })
  return model, meta
end

-- ---------------------------------------------------------------- original layout

local STEP1_FIRST = { image = 1, text = 2 }
local function modality_order(a, b)
  local ra, rb = STEP1_FIRST[a] or 3, STEP1_FIRST[b] or 3
  if ra ~= rb then return ra < rb end
  return a < b
end

local function escape(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

-- the name in the original layout of each of our state-dict names
local function original_names(model, new_modality)
  local map = {}
  local sd = model:state_dict()
  local step2 = {}
  for _, n in ipairs(model.order) do
    if model.modalities[n].stage == 2 then step2[n] = true end
  end
  local prefix = new_modality and "text_image_encoder." or ""
  for name in pairs(sd) do
    local owner = name:match("^([%w_]+)_encoder%.alignment_layer%.") or name:match("^([%w_]+)_token_encoder%.")
    if owner and step2[owner] then
      if owner == new_modality then
        local rest = name:match("^[%w_]+_token_encoder%.(.*)$")
        map[name] = rest and ("modality_token_encoder." .. rest) or name
      end
    elseif name == "temperature" then
      map[name] = "temperature"
    else
      map[name] = prefix .. name
    end
  end
  return map, prefix
end

-- export_original(model, path, {modality = name}) -> true | nil, msg
-- Writes the heads, tokens, MLP, UP and temperature in the original layout (no encoder
-- weights). The unused transformer_encoder_block.* is written as a copy of layers.0 so that
-- the original class loads the file. A model with step-2 modalities is written as the
-- original step-2 file of one of them (opts.modality; required when there are several).
function M.export_original(model, path, opts)
  check_model(model, "checkpoint.export_original")
  if type(path) ~= "string" then error("checkpoint.export_original: path must be a string", 2) end
  opts = opts or {}
  local step2 = {}
  for _, n in ipairs(model.order) do
    if model.modalities[n].stage == 2 then step2[#step2 + 1] = n end
  end
  local chosen = opts.modality
  if chosen then
    if not model.modalities[chosen] then error("checkpoint.export_original: unknown modality '" .. chosen .. "'", 2) end
    if model.modalities[chosen].stage ~= 2 then
      error("checkpoint.export_original: '" .. chosen .. "' is a step-1 modality; opts.modality names the step-2 modality to write", 2)
    end
  elseif #step2 > 1 then
    error("checkpoint.export_original: the original layout holds one step-2 modality per file; choose one with opts.modality (" ..
      table.concat(step2, ", ") .. ")", 2)
  else
    chosen = step2[1]
  end
  local sd = model:state_dict()
  local bad = non_finite(sd)
  if bad then
    return nil, string.format("checkpoint.export_original: %s: parameter '%s' contains NaN or Inf; nothing was written", path, bad)
  end
  local map, prefix = original_names(model, chosen)
  local out = {}
  for ours, theirs in pairs(map) do out[theirs] = sd[ours] end
  local layer0 = "universal_projection_encoder.transformer_encoder.layers.0."
  for ours in pairs(map) do
    local rest = ours:match("^" .. escape(layer0) .. "(.*)$")
    if rest then out[prefix .. "universal_projection_encoder.transformer_encoder_block." .. rest] = sd[ours] end
  end
  if chosen then out["text_image_encoder.temperature"] = sd.temperature end
  local meta = { format = "pt" }
  for k, v in pairs(model:config_metadata()) do
    if k:match("^config%.") then meta[k] = v end
  end
  return S.save(path, out, meta)
end

-- import_original(path_or_tensors, opts) -> model, report | nil, msg
-- opts: modalities = {image = 768, ...} (checked against the file), fusion ("addition"),
-- pooling ("original"), heads (4, cannot be read from shapes), dropout (0.1), temperature ("fixed").
-- d, ff, layers, input dims and token size come from the shapes. Without an option, a file
-- written by export_original supplies its recorded config.* (heads, fusion, pooling, ...).
function M.import_original(src, opts)
  opts = opts or {}
  local info, tensors, where, meta
  if type(src) == "string" then
    info, meta = S.header(src)
    if not info then return nil, meta end
    where = src
  elseif type(src) == "table" then
    tensors, info, where = src, {}, "state dict"
    for name, t in pairs(src) do
      if not core.is_tensor(t) then error("checkpoint.import_original: '" .. tostring(name) .. "' is not a tensor", 2) end
      info[name] = { shape = core.shape(t), loads_as = core.dtype(t) }
    end
  else
    error("checkpoint.import_original: expected a path or a table name -> tensor", 2)
  end
  local function fail(msg) return nil, where .. ": " .. msg end
  -- the step-1 model: top level (step-1 file) or nested (step-2 file)
  local prefix
  for name in pairs(info) do
    local p = name:match("^(.-)universal_projection_encoder%.layer_normalization%.weight$")
    if p then
      if prefix and prefix ~= p then return fail("two universal projections ('" .. prefix .. "', '" .. p .. "')") end
      prefix = p
    end
  end
  if not prefix then return fail("no universal_projection_encoder.layer_normalization.weight: not a OneEncoder state dict") end
  local P = escape(prefix)
  local d = info[prefix .. "universal_projection_encoder.layer_normalization.weight"].shape[1]
  local layers, ff = 0, nil
  for name, i in pairs(info) do
    local n = name:match("^" .. P .. "universal_projection_encoder%.transformer_encoder%.layers%.(%d+)%.")
    if n then layers = math.max(layers, tonumber(n) + 1) end
    if name == prefix .. "universal_projection_encoder.transformer_encoder.layers.0.linear1.weight" then ff = i.shape[1] end
  end
  if layers == 0 or not ff then return fail("no universal_projection_encoder.transformer_encoder.layers.0.*") end
  local step1, step2 = {}, {}
  for name, i in pairs(info) do
    local m = name:match("^" .. P .. "([%w_]+)_encoder%.projection_head%.linear_layer1%.weight$")
    if m then step1[m] = i.shape[2] end
    if prefix ~= "" then
      local m2 = name:match("^([%w_]+)_encoder%.alignment_layer%.linear_layer1%.weight$")
      if m2 then step2[m2] = i.shape[2] end
    end
  end
  local s1, s2 = sorted_keys(step1), sorted_keys(step2)
  table.sort(s1, modality_order)
  if #s1 == 0 then return fail("no <modality>_encoder.projection_head.* weights") end
  if #s2 > 1 then return fail("more than one step-2 alignment layer (" .. table.concat(s2, ", ") .. ") share one token encoder") end
  if opts.modalities then
    for name, din in pairs(opts.modalities) do
      local have = step1[name] or step2[name]
      if not have then
        return fail("modality '" .. name .. "' is not in the file (it has " .. table.concat(s1, ", ") ..
          (#s2 > 0 and ", " .. table.concat(s2, ", ") or "") .. ")")
      end
      if have ~= din then return fail(string.format("modality '%s' has input dim %d in the file, %d expected", name, have, din)) end
    end
  end
  local tok = info[prefix .. "modality_token_encoder." .. s1[1] .. "_token"]
  if not tok then return fail("no " .. prefix .. "modality_token_encoder." .. s1[1] .. "_token") end
  -- what shapes cannot tell: options, else the config our export_original records, else the original's
  local rec = {}
  for k, v in pairs(meta or {}) do
    local key = k:match("^config%.(.+)$")
    if key then rec[key] = math.tointeger(tonumber(v)) or tonumber(v) or v end
  end
  local cfg = {
    d = d, ff = ff, layers = layers, heads = opts.heads or rec.heads or 4, dropout = opts.dropout or rec.dropout or 0.1,
    fusion = opts.fusion or rec.fusion or "addition", pooling = opts.pooling or rec.pooling or "original",
    temperature = opts.temperature or rec.temperature or "fixed", token_size = tok.shape[1],
  }
  local ok, model = pcall(model_mod.OneEncoder, cfg)
  if not ok then return fail(tostring(model)) end
  for _, n in ipairs(s1) do model:add_modality(n, { input_dim = step1[n] }) end
  if #s2 > 0 then
    model:freeze()
    model:add_modality(s2[1], { input_dim = step2[s2[1]] })
  end
  -- map our names to the file's
  local map = original_names(model, s2[1])
  if not info[map.temperature] then map.temperature = prefix .. "temperature" end
  local own = model:state_dict()
  local problems, wanted, used = {}, {}, {}
  for _, ours in ipairs(sorted_keys(map)) do
    local theirs = map[ours]
    local i = info[theirs]
    local s = core.shape(own[ours])
    if not i then
      if ours == "temperature" then
        map[ours] = nil -- no temperature in the file: keep the model's
      else
        problems[#problems + 1] = "missing " .. theirs .. " " .. shape_str(s)
      end
    elseif not same_shape(s, i.shape) then
      problems[#problems + 1] = string.format("%s: file %s, model %s", theirs, shape_str(i.shape), shape_str(s))
    else
      wanted[#wanted + 1] = theirs
      used[theirs] = true
    end
  end
  if #problems > 0 then return fail("cannot import: " .. table.concat(problems, "; ")) end
  local loaded = tensors
  if not loaded then
    local msg
    loaded, msg = S.load(src, { names = wanted })
    if not loaded then return nil, msg end
  end
  local sd = {}
  for ours, theirs in pairs(map) do sd[ours] = loaded[theirs] end
  if not sd.temperature then sd.temperature = own.temperature end
  model:load_state_dict(sd)
  -- everything else: the frozen encoders' weights (reported), and names ignored on purpose
  local report = { encoder_keys = {}, ignored = {}, unknown = {}, loaded = wanted, encoders = {}, config = cfg }
  local all = s1
  if #s2 > 0 then all = { table.unpack(s1) }; all[#all + 1] = s2[1] end
  for _, name in ipairs(sorted_keys(info)) do
    if not used[name] then
      local enc_owner
      local sub
      for _, m in ipairs(all) do
        local p = (step2[m] and "" or prefix) .. m .. "_encoder."
        if name:sub(1, #p) == p then
          enc_owner = m
          sub = p .. (name:sub(#p + 1):match("^[^.]+%.") or "")
          break
        end
      end
      if enc_owner then
        report.encoder_keys[#report.encoder_keys + 1] = name
        local list = report.encoders[enc_owner] or {}
        report.encoders[enc_owner] = list
        if list[#list] ~= sub then
          local seen = false
          for _, x in ipairs(list) do if x == sub then seen = true end end
          if not seen then list[#list + 1] = sub end
        end
      elseif name:match("universal_projection_encoder%.transformer_encoder_block%.") or name:match("^.-temperature$") then
        report.ignored[#report.ignored + 1] = name
      else
        report.unknown[#report.unknown + 1] = name
      end
    end
  end
  return model, report
end

return M
