-- nn/module.lua: the Module base class (Torch7/PyTorch vocabulary).
-- A module holds parameters (tensors that require grad unless frozen),
-- buffers (saved, never trained) and child modules, each in registration
-- order so that named_parameters() gives PyTorch-style dotted names.
-- Modules keep no per-call state: the same module may run several times in
-- one step and the gradients add up.
local core = require "oneencoder.core"
local T = require "oneencoder.tensor"

local Module = {}
Module.__index = Module
Module.__name = "Module"

-- class(name, parent): a new module class; calling it constructs an instance
function Module.class(name, parent)
  parent = parent or Module
  local cls = setmetatable({}, { __index = parent, __call = function(c, ...) return c.new(...) end })
  cls.__index = cls
  cls.__name = name
  cls.__call = function(self, ...) return self:forward(...) end
  cls.__tostring = function(self) return self:describe() end
  cls.new = function(...)
    local self = setmetatable({}, cls)
    Module._init(self)
    if cls.init then cls.init(self, ...) end
    return self
  end
  return cls
end

function Module._init(self)
  rawset(self, "_param_names", {})
  rawset(self, "_buffer_names", {})
  rawset(self, "_module_names", {})
  rawset(self, "_frozen", false)
  rawset(self, "training", true)
end

function Module:register_parameter(name, t)
  if not core.is_tensor(t) then error("register_parameter: '" .. name .. "' must be a tensor", 2) end
  self._param_set = self._param_set or {}
  if not self._param_set[name] then
    table.insert(self._param_names, name)
    self._param_set[name] = true
  end
  T.requires_grad_(t, not self._frozen)
  rawset(self, name, t)
  return t
end

function Module:register_buffer(name, t)
  table.insert(self._buffer_names, name)
  rawset(self, name, t)
  return t
end

function Module:add_module(name, m)
  name = tostring(name)
  table.insert(self._module_names, name)
  rawset(self, name, m)
  return m
end

function Module:children()
  local out = {}
  for _, n in ipairs(self._module_names) do out[#out + 1] = { n, self[n] } end
  return out
end

-- named_parameters(): ordered list of {name, tensor}; a tensor shared by two
-- places is listed once (its first name)
function Module:named_parameters(prefix, out, seen)
  prefix, out, seen = prefix or "", out or {}, seen or {}
  for _, n in ipairs(self._param_names) do
    local t = self[n]
    if t and not seen[t] then
      seen[t] = true
      out[#out + 1] = { prefix .. n, t }
    end
  end
  for _, n in ipairs(self._module_names) do
    local m = self[n]
    if m then m:named_parameters(prefix .. n .. ".", out, seen) end
  end
  return out
end

function Module:named_buffers(prefix, out)
  prefix, out = prefix or "", out or {}
  for _, n in ipairs(self._buffer_names) do
    if self[n] then out[#out + 1] = { prefix .. n, self[n] } end
  end
  for _, n in ipairs(self._module_names) do
    local m = self[n]
    if m then m:named_buffers(prefix .. n .. ".", out) end
  end
  return out
end

-- parameters(trainable_only): list of tensors
function Module:parameters(trainable_only)
  local out = {}
  for _, p in ipairs(self:named_parameters()) do
    if not trainable_only or p[2].requires_grad then out[#out + 1] = p[2] end
  end
  return out
end

function Module:num_parameters(trainable_only)
  local n = 0
  for _, p in ipairs(self:parameters(trainable_only)) do n = n + core.numel(p) end
  return n
end

function Module:modules(out)
  out = out or {}
  out[#out + 1] = self
  for _, n in ipairs(self._module_names) do
    if self[n] then self[n]:modules(out) end
  end
  return out
end

-- set_generator(gen): this module and its children draw their dropout from gen (an
-- oe.Generator); nil returns them to the global stream
function Module:set_generator(gen)
  if gen ~= nil and not core.is_generator(gen) then error("set_generator: gen must be an oe.Generator or nil", 2) end
  for _, m in ipairs(self:modules()) do rawset(m, "generator", gen) end
  return self
end

function Module:train(mode)
  if mode == nil then mode = true end
  for _, m in ipairs(self:modules()) do rawset(m, "training", mode) end
  return self
end
function Module:eval() return self:train(false) end

-- freeze(): parameters stop requiring grad; gradients still flow through to inputs
function Module:freeze()
  for _, m in ipairs(self:modules()) do
    rawset(m, "_frozen", true)
    for _, n in ipairs(m._param_names) do T.requires_grad_(m[n], false); m[n].grad = nil end
  end
  return self
end
function Module:unfreeze()
  for _, m in ipairs(self:modules()) do
    rawset(m, "_frozen", false)
    for _, n in ipairs(m._param_names) do T.requires_grad_(m[n], true) end
  end
  return self
end
function Module:is_frozen() return self._frozen end

function Module:zero_grad()
  for _, p in ipairs(self:parameters()) do p.grad = nil end
end

-- state_dict(): name -> tensor (parameters and buffers, shared storage)
function Module:state_dict()
  local sd = {}
  for _, p in ipairs(self:named_parameters()) do sd[p[1]] = p[2] end
  for _, b in ipairs(self:named_buffers()) do sd[b[1]] = b[2] end
  return sd
end

-- state_dict_names(): names in registration order
function Module:state_dict_names()
  local names = {}
  for _, p in ipairs(self:named_parameters()) do names[#names + 1] = p[1] end
  for _, b in ipairs(self:named_buffers()) do names[#names + 1] = b[1] end
  return names
end

-- load_state_dict(sd, {strict = true}): copies values into the existing tensors.
-- Returns a report {missing = {...}, unexpected = {...}, mismatched = {...}};
-- with strict (default) any problem raises an error that lists them by name,
-- and nothing is copied.
function Module:load_state_dict(sd, opts)
  opts = opts or {}
  local strict = opts.strict ~= false
  local own = self:state_dict()
  local report = { missing = {}, unexpected = {}, mismatched = {} }
  for name, t in pairs(own) do
    local src = sd[name]
    if src == nil then
      report.missing[#report.missing + 1] = name
    elseif not core.is_tensor(src) or core.numel(src) ~= core.numel(t) or not T.same_shape(src, t) then
      report.mismatched[#report.mismatched + 1] = string.format("%s: expected %s, got %s", name, T.shape_str(t),
        core.is_tensor(src) and T.shape_str(src) or type(src))
    end
  end
  for name in pairs(sd) do
    if own[name] == nil then report.unexpected[#report.unexpected + 1] = name end
  end
  for _, l in pairs(report) do table.sort(l) end
  local bad = #report.missing + #report.unexpected + #report.mismatched
  if bad > 0 and (strict or #report.mismatched > 0) then
    local parts = {}
    if #report.missing > 0 then parts[#parts + 1] = "missing keys: " .. table.concat(report.missing, ", ") end
    if #report.unexpected > 0 then parts[#parts + 1] = "unexpected keys: " .. table.concat(report.unexpected, ", ") end
    if #report.mismatched > 0 then parts[#parts + 1] = "mismatched shapes: " .. table.concat(report.mismatched, "; ") end
    error("load_state_dict: " .. table.concat(parts, "; "), 2)
  end
  for name, t in pairs(own) do
    local src = sd[name]
    if src ~= nil then core.copy_(t, src) end
  end
  return report
end

-- save(path, metadata, opts) -> true | nil, msg: the state dict as safetensors
function Module:save(path, metadata, opts)
  return require("oneencoder.serialize").save_module(self, path, metadata, opts)
end
-- load(path, {strict = true}) -> report, metadata | nil, msg (see serialize.lua)
function Module:load(path, opts)
  return require("oneencoder.serialize").load_module(self, path, opts)
end

function Module:describe(indent)
  indent = indent or ""
  local s = self.__name .. (self.extra_repr and ("(" .. self:extra_repr() .. ")") or "")
  if #self._module_names == 0 then return s end
  local lines = { s .. " {" }
  for _, n in ipairs(self._module_names) do
    lines[#lines + 1] = indent .. "  (" .. n .. "): " .. self[n]:describe(indent .. "  ")
  end
  lines[#lines + 1] = indent .. "}"
  return table.concat(lines, "\n")
end

function Module:forward() error(self.__name .. ": forward is not implemented", 2) end

return Module
