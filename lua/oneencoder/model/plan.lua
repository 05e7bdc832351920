-- model/plan.lua: what a checkpoint will build, decided from its header alone (names, shapes,
-- dtypes, metadata strings): pure functions, nothing is allocated here.
--   local plan, msg = Plan.load(info, meta)            -- our format (oe.checkpoint.load)
--   local plan, msg = Plan.import(info, meta, opts)    -- the original layout (oe.checkpoint.import_original)
--   plan = {cfg, mods, names (ours, to load), theirs (ours -> the file's name), prefix, new_modality}
-- info is a safetensors header ({name = {dtype, shape, data_offsets, loads_as}}) or the shapes
-- and dtypes of tensors in memory; meta the header's metadata. msg does not name the file.
--
-- Both plans read every size of the model from a tensor of the file whose shape is checked
-- (layout.read: no zero-size part, layer indices 0..n-1 each present), require the metadata
-- and the options to agree with those tensors, and then require the whole expected state dict
-- (layout.state_shapes) to be in the file with the expected shapes and a float dtype. Each
-- expected tensor then holds its bytes in the file (the safetensors reader checks every range
-- against the file's size and refuses overlaps), so the model built from a plan is at most a
-- small multiple of the file's size (F16 doubles).
local layout = require "oneencoder.model.layout"
local defaults = require("oneencoder.model").defaults

local Plan = {}

local function escape(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end
local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end
local shape_str = layout.dims
local function same_shape(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

local MAX_LISTED = 20   -- problems listed in one message; the rest are counted

local function listing(items)
  if #items <= MAX_LISTED then return table.concat(items, ", ") end
  return table.concat(items, ", ", 1, MAX_LISTED) .. string.format(" and %d more", #items - MAX_LISTED)
end

-- bytes per element of the file dtypes a float32 parameter loads from
local FLOAT_BYTES = { F64 = 8, F32 = 4, F16 = 2, BF16 = 2 }

local function numel(shape)
  local n = 1
  for _, x in ipairs(shape) do n = n * x end
  return n
end

-- a view of the file under today's names: names written before the scaled-dot-product rename are
-- upgraded. rename(name) -> our name or nil (not part of the view). Returns view (ours -> info),
-- theirs (ours -> file name) | nil, msg when two file names stand for one of ours.
function Plan.view(info, rename)
  local view, theirs = {}, {}
  for _, name in ipairs(sorted_keys(info)) do
    local ours = rename(name)
    if ours then
      ours = layout.upgrade_name(ours)
      if view[ours] then return nil, string.format("tensors %s and %s both stand for %s", theirs[ours], name, ours) end
      view[ours], theirs[ours] = info[name], name
    end
  end
  return view, theirs
end

-- compare an expected layout with a view: names (ours, sorted) that load, or nil, list of problems.
-- name_of(ours) gives the file's name for messages; optional[ours] may be absent.
local function match_expected(expected, view, name_of, optional)
  local names, missing, mismatched = {}, {}, {}
  for _, ours in ipairs(sorted_keys(expected)) do
    local want, i = expected[ours], view[ours]
    if not i then
      if not (optional and optional[ours]) then missing[#missing + 1] = name_of(ours) .. " " .. shape_str(want) end
    elseif not same_shape(i.shape, want) then
      mismatched[#mismatched + 1] = string.format("%s: file %s, model %s", name_of(ours), shape_str(i.shape), shape_str(want))
    elseif i.loads_as ~= "float32" then
      mismatched[#mismatched + 1] = string.format("%s: dtype %s cannot be loaded into a float32 parameter", name_of(ours), tostring(i.dtype or i.loads_as))
    else
      names[#names + 1] = ours
    end
  end
  return names, missing, mismatched
end

-- the bytes the file holds for the tensors to load must be what their shapes imply
local function check_bytes(expected, view, names)
  local implied, held = 0, 0
  for _, ours in ipairs(names) do
    local i = view[ours]
    if i.data_offsets then
      implied = implied + numel(expected[ours]) * (FLOAT_BYTES[i.dtype] or 0)
      held = held + (i.data_offsets[2] - i.data_offsets[1])
    end
  end
  if implied ~= held then
    return nil, string.format("the tensors to load hold %d bytes in the file, their shapes and dtypes imply %d", held, implied)
  end
  return true
end

-- the config value of key and where it came from, for messages
local function describe_value(key, source, meta)
  if source == "metadata" then return string.format("metadata config.%s = %s", key, layout.shown(meta["config." .. key])) end
  if source == "option" then return string.format("option %s", key) end
  if source == "tensors" then return key .. " (read from the tensors)" end
  return key .. " (default)"
end

-- reconcile(cfg, source, facts, meta) -> true | nil, msg: sizes in the metadata agree with the tensors
local FACT_TENSOR = {
  d = "universal_projection_encoder.layer_normalization.weight",
  ff = "universal_projection_encoder.transformer_encoder.layers.0.linear1.weight",
  layers = "universal_projection_encoder.transformer_encoder.layers.N.*",
}
local function reconcile(cfg, source, facts, meta)
  for _, k in ipairs { "d", "ff", "layers", "token_size" } do
    if cfg[k] == nil then
      cfg[k], source[k] = facts[k], "tensors"
    elseif cfg[k] ~= facts[k] then
      return nil, string.format("%s disagrees with the tensors: %s gives %s = %d", describe_value(k, source[k], meta),
        FACT_TENSOR[k] or facts.token_name, k, facts[k])
    end
  end
  if facts.sdp and cfg.fusion ~= "scaled_dot_product" then
    return nil, string.format("%s, but the file holds the scaled-dot-product attention (%s*)",
      describe_value("fusion", source.fusion, meta), layout.SDP)
  end
  if not facts.sdp and cfg.fusion == "scaled_dot_product" then
    return nil, string.format("%s needs %s{query,key,value}.*, which the file does not hold",
      describe_value("fusion", source.fusion, meta), layout.SDP)
  end
  return true
end

-- fill the keys that neither the file nor the caller gave, then check every value
local function complete(cfg, source, meta)
  for k, v in pairs(defaults) do
    if cfg[k] == nil then cfg[k], source[k] = v, "default" end
  end
  local ok, key, why = layout.check_config(cfg)
  if not ok then
    return nil, string.format("%s: %s%s", describe_value(key, source[key], meta), why,
      source[key] == "default" and " (give it as an option)" or "")
  end
  return true
end

-- Plan.load(info, meta) -> plan | nil, msg: our format (metadata config.* and modalities)
function Plan.load(info, meta)
  local view, theirs = Plan.view(info, function(name) if not name:match("^optim%.") then return name end end)
  if not view then return nil, theirs end
  local facts, why = layout.read(view)
  if not facts then return nil, why end
  local cfg, source = layout.parse_config(meta), {}
  for k in pairs(cfg) do source[k] = "metadata" end
  local ok, msg = reconcile(cfg, source, facts, meta)
  if not ok then return nil, msg end
  ok, msg = complete(cfg, source, meta)
  if not ok then return nil, msg end
  -- the modalities: the metadata's list, in its order, must be the file's
  local mods = facts.mods
  if meta.modalities then
    local listed, err = layout.parse_modalities(meta.modalities)
    if not listed then return nil, "metadata modalities = " .. layout.shown(meta.modalities) .. ": " .. err end
    local found = {}
    for _, m in ipairs(facts.mods) do found[m.name] = m end
    for _, m in ipairs(listed) do
      local f = found[m.name]
      local head = m.name .. (m.stage == 1 and "_encoder.projection_head" or "_encoder.alignment_layer") .. ".linear_layer1.weight"
      if not f or f.stage ~= m.stage then
        return nil, string.format("metadata modalities lists '%s:%d:%d', but the file has no %s", m.name, m.input_dim, m.stage, head)
      end
      if f.input_dim ~= m.input_dim then
        return nil, string.format("metadata modalities lists '%s:%d:%d', but the file's %s is %s", m.name, m.input_dim, m.stage,
          head, shape_str(view[head].shape))
      end
      found[m.name] = nil
    end
    local extra = sorted_keys(found)
    if #extra > 0 then
      return nil, "metadata modalities does not list " .. listing(extra) .. ", whose weights the file holds"
    end
    mods = listed
  end
  local expected = layout.state_shapes(cfg, mods)
  local names, missing, mismatched = match_expected(expected, view, function(n) return theirs[n] or n end)
  local unexpected = {}
  for _, ours in ipairs(sorted_keys(view)) do
    if expected[ours] == nil then unexpected[#unexpected + 1] = theirs[ours] .. " " .. shape_str(view[ours].shape) end
  end
  local parts = {}
  if #missing > 0 then parts[#parts + 1] = "missing keys: " .. listing(missing) end
  if #unexpected > 0 then parts[#parts + 1] = "unexpected keys: " .. listing(unexpected) end
  if #mismatched > 0 then parts[#parts + 1] = "mismatched shapes: " .. table.concat(mismatched, "; ", 1, math.min(#mismatched, MAX_LISTED)) end
  if #parts > 0 then return nil, "the weights do not match the config in its metadata: " .. table.concat(parts, "; ") end
  ok, msg = check_bytes(expected, view, names)
  if not ok then return nil, msg end
  return { cfg = cfg, mods = mods, names = names, theirs = theirs }
end

-- the file's name of one of our names: step-1 parts nested under prefix in a step-2 file, the
-- new modality's token encoder named modality_token_encoder there
function Plan.original_name(ours, prefix, new_modality)
  if new_modality then
    local rest = ours:match("^" .. escape(new_modality) .. "_token_encoder%.(.*)$")
    if rest then return "modality_token_encoder." .. rest end
    if ours:match("^" .. escape(new_modality) .. "_encoder%.alignment_layer%.") then return ours end
  end
  if ours == "temperature" then return ours end
  return prefix .. ours
end

-- options of import that set a config value, and their Lua types
Plan.IMPORT_OPTIONS = {
  heads = "integer", dropout = "number", fusion = "string", pooling = "string", temperature = "string",
}

-- Plan.import(info, meta, opts) -> plan | nil, msg: the original layout, step 1 at the top level
-- or nested under a prefix (text_image_encoder.) beside one step-2 modality. opts (types checked
-- by the caller): modalities, heads, dropout, fusion, pooling, temperature; then the config.*
-- a file written by export_original records; then what the tensors tell (the fusion attention,
-- tokens of several rows: concatenation); then the original's defaults (4 heads, addition,
-- original pooling).
function Plan.import(info, meta, opts)
  -- the step-1 model: top level (step-1 file) or nested (step-2 file)
  local prefix
  for _, name in ipairs(sorted_keys(info)) do
    local p = name:match("^(.-)universal_projection_encoder%.layer_normalization%.weight$")
    if p then
      if prefix and prefix ~= p then return nil, "two universal projections ('" .. prefix .. "', '" .. p .. "')" end
      prefix = p
    end
  end
  if not prefix then return nil, "no universal_projection_encoder.layer_normalization.weight: not a OneEncoder state dict" end
  -- the step-2 modality of a step-2 file: its alignment layer at the top level
  local s2 = {}
  if prefix ~= "" then
    for name in pairs(info) do
      local m = name:match("^([%a_][%w_]*)_encoder%.alignment_layer%.linear_layer1%.weight$")
      if m then s2[#s2 + 1] = m end
    end
    table.sort(s2)
    if #s2 > 1 then return nil, "more than one step-2 alignment layer (" .. table.concat(s2, ", ") .. ") share one token encoder" end
  end
  local m2 = s2[1]
  local view, theirs = Plan.view(info, function(name)
    if prefix ~= "" then
      if name:sub(1, #prefix) == prefix then
        local rest = name:sub(#prefix + 1)
        if rest ~= "temperature" then return rest end
      elseif m2 and name:match("^modality_token_encoder%.") then
        return m2 .. "_token_encoder." .. name:sub(#"modality_token_encoder." + 1)
      elseif name == "temperature" or (m2 and name:match("^" .. escape(m2) .. "_encoder%.alignment_layer%.")) then
        return name
      end
    elseif not name:match("_encoder%.alignment_layer%.") then
      return name
    end
  end)
  if not view then return nil, theirs end
  if not view.temperature and prefix ~= "" and info[prefix .. "temperature"] then
    view.temperature, theirs.temperature = info[prefix .. "temperature"], prefix .. "temperature"
  end
  local facts, why = layout.read(view)
  if not facts then return nil, why end
  local n2 = 0
  for _, m in ipairs(facts.mods) do if m.stage == 2 then n2 = n2 + 1 end end
  if n2 > 1 then return nil, "more than one step-2 alignment layer share one token encoder" end
  if opts.modalities then
    local have, names = {}, {}
    for _, m in ipairs(facts.mods) do have[m.name] = m.input_dim; names[#names + 1] = m.name end
    for _, name in ipairs(sorted_keys(opts.modalities)) do
      local din = opts.modalities[name]
      if not have[name] then
        return nil, "modality '" .. name .. "' is not in the file (it has " .. table.concat(names, ", ") .. ")"
      end
      if have[name] ~= din then return nil, string.format("modality '%s' has input dim %d in the file, %d expected", name, have[name], din) end
    end
  end
  -- what shapes cannot tell: options, else the config our export_original records, else the original's
  local cfg, source = {}, {}
  local rec = layout.parse_config(meta)
  for k, v in pairs(rec) do
    if defaults[k] ~= nil or k == "token_size" then cfg[k], source[k] = v, "metadata" end
  end
  for k in pairs(Plan.IMPORT_OPTIONS) do
    if opts[k] ~= nil then cfg[k], source[k] = opts[k], "option" end
  end
  if cfg.fusion == nil then
    if facts.sdp then
      cfg.fusion = "scaled_dot_product"
    elseif facts.token_size > 1 then
      cfg.fusion = "concatenation"
    end
    source.fusion = "tensors"
  end
  if cfg.pooling == nil then cfg.pooling, source.pooling = "original", "default" end
  local ok, msg = reconcile(cfg, source, facts, meta)
  if not ok then return nil, msg end
  ok, msg = complete(cfg, source, meta)
  if not ok then return nil, msg end
  if cfg.token_size > 1 and cfg.fusion ~= "concatenation" then
    return nil, string.format("%s (tokens of %d rows) cannot be used with %s: only concatenation takes several token rows",
      "modality_token_encoder." .. facts.mods[1].name .. "_token", cfg.token_size, describe_value("fusion", source.fusion, meta))
  end
  local expected = layout.state_shapes(cfg, facts.mods)
  local name_of = function(ours) return theirs[ours] or Plan.original_name(ours, prefix, m2) end
  local names, missing, mismatched = match_expected(expected, view, name_of, { temperature = true })
  local problems = {}
  for _, x in ipairs(missing) do problems[#problems + 1] = "missing " .. x end
  for _, x in ipairs(mismatched) do problems[#problems + 1] = x end
  if #problems > 0 then
    if #problems > MAX_LISTED then
      local n = #problems
      problems = { table.unpack(problems, 1, MAX_LISTED) }
      problems[#problems + 1] = string.format("and %d more", n - MAX_LISTED)
    end
    return nil, "cannot import: " .. table.concat(problems, "; ")
  end
  ok, msg = check_bytes(expected, view, names)
  if not ok then return nil, msg end
  return { cfg = cfg, mods = facts.mods, names = names, theirs = theirs, prefix = prefix, new_modality = m2 }
end

return Plan
