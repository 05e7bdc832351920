-- encoders/common.lua: helpers shared by the built-in encoders (option checks,
-- identity strings, the fixed random projection, batch assembly).
local core = require "oneencoder.core"

local C = {}

-- Copy opts after checking every key is known (a typo must not silently fall back to a default).
function C.options(name, opts, allowed, level)
  if opts ~= nil and type(opts) ~= "table" then
    error(string.format("encoders.create(\"%s\"): options must be a table, got %s", name, type(opts)), level or 3)
  end
  local o = {}
  for k, v in pairs(opts or {}) do
    if allowed[k] == nil then
      local names = {}
      for a in pairs(allowed) do names[#names + 1] = a end
      table.sort(names)
      error(string.format("encoders.create(\"%s\"): unknown option '%s' (known: %s)", name, tostring(k),
        table.concat(names, ", ")), level or 3)
    end
    o[k] = v
  end
  for k, def in pairs(allowed) do
    if o[k] == nil and def ~= C.NONE then o[k] = def end
  end
  return o
end
C.NONE = setmetatable({}, { __tostring = function() return "none" end }) -- an option without a default

function C.int(name, key, v, lo, hi)
  if math.type(v) ~= "integer" and not (type(v) == "number" and v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53) then
    error(string.format("encoders.create(\"%s\"): option '%s' must be an integer, got %s", name, key, tostring(v)), 4)
  end
  v = math.tointeger(v)
  if (lo and v < lo) or (hi and v > hi) then
    error(string.format("encoders.create(\"%s\"): option '%s' = %d is outside %s..%s", name, key, v, tostring(lo or "-inf"),
      tostring(hi or "inf")), 4)
  end
  return v
end

function C.num(name, key, v)
  if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge then
    error(string.format("encoders.create(\"%s\"): option '%s' must be a finite number, got %s", name, key, tostring(v)), 4)
  end
  return v
end

function C.bool(name, key, v)
  if type(v) ~= "boolean" then
    error(string.format("encoders.create(\"%s\"): option '%s' must be true or false, got %s", name, key, tostring(v)), 4)
  end
  return v
end

-- {h, w} from a number or a table; nil stays nil
function C.size(name, key, v)
  if v == nil or v == false then return nil end
  if type(v) == "number" then v = { v, v } end
  if type(v) ~= "table" or #v ~= 2 then
    error(string.format("encoders.create(\"%s\"): option '%s' must be a number or {height, width}", name, key), 4)
  end
  return { C.int(name, key, v[1], 1, 1 << 16), C.int(name, key, v[2], 1, 1 << 16) }
end

-- A number in an identity string: integers as integers, others exactly (%.17g).
function C.fmt(v)
  if math.type(v) == "integer" then return tostring(v) end
  if type(v) == "number" then
    if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return tostring(math.tointeger(v)) end
    return string.format("%.17g", v)
  end
  if type(v) == "boolean" then return v and "1" or "0" end
  if type(v) == "table" then
    local parts = {}
    if #v > 0 then
      for i, x in ipairs(v) do parts[i] = C.fmt(x) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    for i, k in ipairs(keys) do parts[i] = k .. "=" .. C.fmt(v[k]) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return tostring(v)
end

-- seed: any Lua integer (64-bit)
function C.seed(name, v) return C.int(name, "seed", v) end

-- The fixed random projection (Din, D): N(0, 1) / sqrt(Din) from (seed, tag), independent
-- of the global RNG. tokens (B, L, Din) -> (B, L, D) through one sgemm.
function C.projection(seed, tag, din, d)
  return core.enc_gaussian(seed, tag, { din, d }, 1 / math.sqrt(din))
end
function C.project(tokens, W)
  local s = core.shape(tokens)
  local d = core.shape(W)[2]
  local flat = core.reshape(tokens, { s[1] * s[2], s[3] })
  return core.reshape(core.matmul(flat, W), { s[1], s[2], d })
end

-- shape as a string for messages
function C.shape_str(t)
  local s = core.shape(t)
  local p = {}
  for i, v in ipairs(s) do p[i] = tostring(v) end
  return "(" .. table.concat(p, ", ") .. ")"
end

function C.is_list(t) return type(t) == "table" and not core.is_tensor(t) end

-- Base class: every encoder has name, modality, dim, id, preprocess, settings and
-- encode(batch) -> features (B, L, D) float32, lengths; check(item) -> true | nil, msg;
-- load(path) -> item | nil, msg; encode_files(paths, opts).
local Base = {}
Base.__index = Base
C.Base = Base

function Base:__tostring() return string.format("oneencoder.encoders.%s(%s, dim %d)", self.name, self.id, self.dim) end
function Base:encode_files(paths, opts) return require("oneencoder.encoders").encode_files(self, paths, opts) end

function C.class(name)
  local cls = setmetatable({}, { __index = Base })
  cls.__index = cls
  cls.__tostring = Base.__tostring
  cls.__name = "oneencoder.encoders." .. name
  return cls
end

-- a bad-argument error from encode/check, named "<encoder>:encode: ..." (no
-- position prefix: the message says which argument and item)
function C.fail(enc, fmt, ...)
  error(string.format("%s:encode: " .. fmt, enc.name, ...), 0)
end

return C
