-- serialize.lua: checkpoints in the safetensors format.
--   S.save(path, tensors, metadata, {dtype = "float16"|"bfloat16"}) -> true | nil, msg
--   S.load(path, {names = {...}})       -> tensors, metadata | nil, msg
--   S.header(path)                      -> {name = {dtype, shape, data_offsets, loads_as}}, metadata | nil, msg
--   S.save_module(module, path, metadata, opts) -> true | nil, msg
--   S.load_module(module, path, {strict = true}) -> report, metadata | nil, msg
-- A bad or missing file gives nil and a message that starts with the path;
-- bad arguments (a value that is not a tensor, a metadata value that is not
-- a string) raise errors. Saving is crash-safe: the file is written next to
-- the target under a temporary name, synced, then renamed over it.
local core = require "oneencoder.core"
local T = require "oneencoder.tensor"

local S = {}

local function check_path(fn, path)
  if type(path) ~= "string" then error(fn .. ": path must be a string, got " .. type(path), 3) end
end

-- save(path, tensors, metadata, opts): tensors is a table name -> tensor;
-- metadata an optional table string -> string; opts.dtype = "float16" or
-- "bfloat16" stores float32 tensors at half size (round to nearest even).
function S.save(path, tensors, metadata, opts)
  check_path("save", path)
  if type(tensors) ~= "table" then error("save: tensors must be a table name -> tensor, got " .. type(tensors), 2) end
  if metadata ~= nil and type(metadata) ~= "table" then
    error("save: metadata must be a table of strings, got " .. type(metadata), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then error("save: opts must be a table, got " .. type(opts), 2) end
  return core.st_save(path, tensors, metadata, opts)
end

-- load(path, opts): every tensor (F16/BF16/F64 become float32), or only
-- opts.names (a list) when given. Returns tensors, metadata (a table, empty
-- when the file has none).
function S.load(path, opts)
  check_path("load", path)
  if opts and opts.names then return core.st_load_names(path, opts.names) end
  return core.st_load(path)
end

-- header(path): names, dtypes and shapes without reading any tensor data.
function S.header(path)
  check_path("header", path)
  return core.st_header(path)
end

function S.save_module(module, path, metadata, opts)
  check_path("save_module", path)
  return S.save(path, module:state_dict(), metadata, opts)
end

local same_shape, shape_str = T.same_dims, T.dims_str

-- load_module(module, path, {strict = true}): copies the file's tensors into
-- the module's parameters and buffers by state-dict name. The header is
-- checked first and only the tensors the module needs are read, so a few
-- heads can be taken from a large checkpoint with strict = false.
-- strict: the file's names must equal the module's (missing or unexpected
-- names are an error); without strict they are only reported. A shape
-- mismatch is always an error. Returns a report {missing, unexpected,
-- loaded} and the metadata, or nil, message (the module is left unchanged).
function S.load_module(module, path, opts)
  check_path("load_module", path)
  opts = opts or {}
  local strict = opts.strict ~= false
  local info, meta = core.st_header(path)
  if not info then return nil, meta end
  local own = module:state_dict()
  local names, missing, unexpected, mismatched = {}, {}, {}, {}
  for name, t in pairs(own) do
    local i = info[name]
    if not i then
      missing[#missing + 1] = name
    elseif not same_shape(core.shape(t), i.shape) then
      mismatched[#mismatched + 1] = string.format("%s: module has %s, file has %s", core.escape(name), shape_str(core.shape(t)), shape_str(i.shape))
    elseif not i.loads_as then
      mismatched[#mismatched + 1] = string.format("%s: dtype %s cannot be loaded", core.escape(name), i.dtype)
    else
      names[#names + 1] = name
    end
  end
  for name in pairs(info) do
    if own[name] == nil then unexpected[#unexpected + 1] = name end
  end
  table.sort(names); table.sort(missing); table.sort(unexpected); table.sort(mismatched)
  if #mismatched > 0 or (strict and (#missing > 0 or #unexpected > 0)) then
    local parts, esc = {}, core.escape -- names from the file may hold control bytes: escaped in the message
    local function shown(list) local o = {} for i, n in ipairs(list) do o[i] = esc(n) end return table.concat(o, ", ") end
    if #missing > 0 then parts[#parts + 1] = "missing keys: " .. shown(missing) end
    if #unexpected > 0 then parts[#parts + 1] = "unexpected keys: " .. shown(unexpected) end
    if #mismatched > 0 then parts[#parts + 1] = "mismatched: " .. table.concat(mismatched, "; ") end
    return nil, path .. ": checkpoint does not match the module: " .. table.concat(parts, "; ")
  end
  local sd, msg = core.st_load_names(path, names)
  if not sd then return nil, msg end
  local ok, err = pcall(module.load_state_dict, module, sd, { strict = false })
  if not ok then return nil, path .. ": " .. tostring(err) end
  return { missing = missing, unexpected = unexpected, loaded = names }, meta
end

return S
