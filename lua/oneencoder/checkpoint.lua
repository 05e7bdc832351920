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
-- step-1 parts are not nested. The scaled-dot-product fusion's attention is
-- universal_projection_encoder.scaled_dot_product.{query,key,value}.* in both (our files written
-- before that rename, with universal_projection_encoder.{query,key,value}.*, still load).
--
-- Untrusted files: load and import_original decide everything from the header first
-- (oneencoder.model.plan: the config from the tensors' names and shapes, the metadata checked
-- against them, the whole expected state dict present with its shapes and a float dtype) and only
-- then build the model and read tensors. Every bad file gives nil and a message naming the file
-- (and the metadata key at fault); no file content makes them raise, and no file makes them
-- allocate more than a small multiple of its size. Wrong argument types still raise.
local core = require "oneencoder.core"
local S = require "oneencoder.serialize"
local T = require "oneencoder.tensor"
local model_mod = require "oneencoder.model"
local layout = require "oneencoder.model.layout"
local Plan = require "oneencoder.model.plan"

local M = {}

local same_shape, shape_str = T.same_dims, T.dims_str
local function escape(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end
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

-- ---------------------------------------------------------------- building from a plan
-- load and import_original plan from the header first (oneencoder.model.plan: pure, checks the
-- whole file against the config it implies), and only then build and read tensors.

-- build(plan) -> model | nil, msg: never raises for a plan that passed
local function build(plan)
  local ok, model = pcall(model_mod.build, plan.cfg, plan.mods)
  if not ok then return nil, "cannot build the model: " .. tostring(model) end
  return model
end

-- the file's tensors for plan.names, under our names
local function read_tensors(src, plan)
  local wanted = {}
  for i, ours in ipairs(plan.names) do wanted[i] = plan.theirs[ours] end
  local loaded = src
  if type(src) == "string" then
    local msg
    loaded, msg = S.load(src, { names = wanted })
    if not loaded then return nil, msg end
  end
  local sd = {}
  for i, ours in ipairs(plan.names) do sd[ours] = loaded[wanted[i]] end
  return sd, wanted
end

-- ---------------------------------------------------------------- our format

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
-- Files written before the scaled-dot-product rename load too.
function M.load_into(model, path)
  check_model(model, "checkpoint.load_into")
  if type(path) ~= "string" then error("checkpoint.load_into: path must be a string", 2) end
  local info, meta = S.header(path)
  if not info then error("checkpoint.load_into: " .. meta, 2) end
  local view, theirs = Plan.view(info, function(name) return name end)
  if not view then error("checkpoint.load_into: " .. path .. ": " .. theirs, 2) end
  local names, problem = compare(model:state_dict(), view)
  if problem then
    error("checkpoint.load_into: " .. path .. " does not match the model: " .. problem, 2)
  end
  local sd, msg = read_tensors(path, { names = names, theirs = theirs })
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

-- load(path) -> model, metadata | nil, msg. The model is built from the file's metadata
-- (config.*, modalities) once it has been checked against the tensors: every bad file,
-- whatever its content, gives nil and a message naming the file (and the metadata key at fault),
-- and nothing larger than the file's tensors is allocated. Files written before the
-- scaled-dot-product rename load too.
function M.load(path)
  if type(path) ~= "string" then error("checkpoint.load: path must be a string", 2) end
  local info, meta = S.header(path)
  if not info then return nil, meta end
  if meta.format ~= "oneencoder-1" then
    if looks_original(info) then
      return nil, path .. ": a checkpoint in the original code's layout; use checkpoint.import_original"
    end
    return nil, path .. ": not a oneencoder checkpoint (metadata 'format' is " .. (meta.format and layout.shown(meta.format) or "missing") .. ")"
  end
  local plan, why = Plan.load(info, meta)
  if not plan then return nil, path .. ": " .. why end
  local model, err = build(plan)
  if not model then return nil, path .. ": " .. err end
  local sd, msg = read_tensors(path, plan)
  if not sd then return nil, msg end
  local ok, lerr = pcall(model.load_state_dict, model, sd)
  if not ok then return nil, path .. ": " .. tostring(lerr) end
  return model, meta
end

-- the name in the original layout of each of our state-dict names (other step-2 modalities left out)
local function original_names(model, new_modality)
  local map = {}
  local step2 = {}
  for _, n in ipairs(model.order) do
    if model.modalities[n].stage == 2 then step2[n] = true end
  end
  local prefix = new_modality and "text_image_encoder." or ""
  for name in pairs(model:state_dict()) do
    local owner = name:match("^([%w_]+)_encoder%.alignment_layer%.") or name:match("^([%w_]+)_token_encoder%.")
    if not (owner and step2[owner] and owner ~= new_modality) then
      map[name] = Plan.original_name(name, prefix, new_modality)
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

-- ---------------------------------------------------------------- import

local function check_options(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error("checkpoint.import_original: opts must be a table", 3) end
  for k, kind in pairs(Plan.IMPORT_OPTIONS) do
    local v = opts[k]
    if v ~= nil and (kind == "integer" and math.type(v) ~= "integer" or kind ~= "integer" and type(v) ~= kind) then
      error(string.format("checkpoint.import_original: opts.%s must be %s %s, got %s", k, kind == "integer" and "an" or "a", kind, type(v)), 3)
    end
  end
  if opts.modalities ~= nil then
    if type(opts.modalities) ~= "table" then error("checkpoint.import_original: opts.modalities must be a table name -> input dim", 3) end
    for name, din in pairs(opts.modalities) do
      if type(name) ~= "string" or math.type(din) ~= "integer" then
        error("checkpoint.import_original: opts.modalities must map modality names to integer input dims", 3)
      end
    end
  end
  return opts
end

-- the file's names that are not loaded: the frozen encoders' weights, names ignored on purpose, the rest
local function import_report(info, plan, wanted)
  local used = {}
  for _, n in ipairs(wanted) do used[n] = true end
  local report = { encoder_keys = {}, ignored = {}, unknown = {}, loaded = wanted, encoders = {}, config = plan.cfg }
  for _, name in ipairs(sorted_keys(info)) do
    if not used[name] then
      local enc_owner, sub
      for _, m in ipairs(plan.mods) do
        local p = (m.stage == 2 and "" or plan.prefix) .. m.name .. "_encoder."
        if name:sub(1, #p) == p then
          enc_owner = m.name
          sub = p .. (name:sub(#p + 1):match("^[^.]+%.") or "")
          break
        end
      end
      if enc_owner then
        report.encoder_keys[#report.encoder_keys + 1] = name
        local list = report.encoders[enc_owner] or {}
        report.encoders[enc_owner] = list
        local seen = false
        for _, x in ipairs(list) do if x == sub then seen = true end end
        if not seen then list[#list + 1] = sub end
      elseif name:match("universal_projection_encoder%.transformer_encoder_block%.") or name:match("^.-temperature$") then
        report.ignored[#report.ignored + 1] = name
      else
        report.unknown[#report.unknown + 1] = name
      end
    end
  end
  return report
end

-- import_original(path_or_tensors, opts) -> model, report | nil, msg
-- opts: modalities = {image = 768, ...} (checked against the file), fusion, pooling ("original"),
-- heads (4, cannot be read from shapes), dropout (0.1), temperature ("fixed").
-- d, ff, layers, input dims and token size come from the shapes; the fusion too when they tell it
-- (the scaled_dot_product.* attention; tokens of 15 rows: concatenation), else "addition".
-- Without an option, a file written by export_original supplies its recorded config.* (heads,
-- fusion, pooling, ...). Every bad file gives nil and a message, and nothing is allocated before
-- the whole file has been checked against the config it implies (see oneencoder.model.plan);
-- options of the wrong type raise an error.
function M.import_original(src, opts)
  opts = check_options(opts)
  local info, where, meta
  if type(src) == "string" then
    info, meta = S.header(src)
    if not info then return nil, meta end
    where = src
  elseif type(src) == "table" then
    info, where, meta = {}, "state dict", {}
    for name, t in pairs(src) do
      if type(name) ~= "string" or not core.is_tensor(t) then
        error("checkpoint.import_original: '" .. tostring(name) .. "' is not a tensor", 2)
      end
      info[name] = { shape = core.shape(t), loads_as = core.dtype(t) }
    end
  else
    error("checkpoint.import_original: expected a path or a table name -> tensor", 2)
  end
  local plan, why = Plan.import(info, meta, opts)
  if not plan then return nil, where .. ": " .. why end
  local model, err = build(plan)
  if not model then return nil, where .. ": " .. err end
  local sd, wanted = read_tensors(src, plan)
  if not sd then return nil, wanted end
  if not sd.temperature then sd.temperature = model.temperature end
  local ok, lerr = pcall(model.load_state_dict, model, sd)
  if not ok then return nil, where .. ": " .. tostring(lerr) end
  return model, import_report(info, plan, wanted)
end

return M
