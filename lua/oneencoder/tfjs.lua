-- oneencoder.tfjs: TensorFlow.js layers models (model.json + weight shards) run by the C core
-- (csrc/tfjs, inference only).
--   local m = assert(oe.tfjs.load("model.json"))            -- or nil, "<path>: <reason>"
--   local y = m:forward(x)                  -- x float32 (N, H, W, C), NHWC as TF.js takes it
--   local y = m:forward(x, { layout = "nchw" })             -- or (N, C, H, W)
--   local t = m:forward(x, { outputs = { "out_relu", "dense_3" } })  -- {out_relu = ..., dense_3 = ...}
--   local f = m:output(x, "out_relu")                        -- one named layer's output
--   m:layers()    -- {{name, class, folded_into}...} in execution order
--   m.outputs     -- the model's declared output layers; m.input_shape {224, 224, 3} (false = any)
--   m:info()      -- {path, layers, outputs, input_shape, weights, floats, quantized}
--
-- Outputs are in TF.js's order: maps (N, H, W, C), vectors (N, D), tokens (N, L, D). Inside,
-- maps are kept NCHW so the project's convolution kernels run them (kernels transposed once
-- at load); BatchNormalization and a ReLU / Activation after a convolution or Dense layer are
-- folded into it at load, so those layers' own outputs are not kept: load with
-- { fold = false } to ask for any layer. Loading checks every layer's class and options, every
-- weight's shape and the manifest against the shard sizes; an unsupported layer fails there,
-- naming it. Wrong input shapes raise an error naming the model file and the layer.
local core = require "oneencoder.core"

local M = {}
local Model = {}
Model.__index = Model

-- load(path, {fold = true}) -> model | nil, message
function M.load(path, opts)
  if type(path) ~= "string" then error("tfjs.load: path must be a string (a model.json), got " .. type(path), 2) end
  if opts ~= nil and type(opts) ~= "table" then error("tfjs.load: opts must be a table", 2) end
  local fold = true
  if opts and opts.fold ~= nil then fold = opts.fold and true or false end
  local h, err = core.tfjs_load(path, fold)
  if not h then return nil, err end
  local info = core.tfjs_info(h)
  local self = setmetatable({ handle = h, path = info.path, outputs = info.outputs, input_shape = info.input_shape,
    fold = fold, _info = info }, Model)
  self._by_name = {}
  for _, l in ipairs(info.layers) do self._by_name[l.name] = l end
  return self
end

function Model:info() return self._info end
function Model:layers() return self._info.layers end
function Model:close() core.tfjs_close(self.handle) end
-- bytes of activations and scratch kept for the next call
function Model:arena_bytes() return core.tfjs_arena_bytes(self.handle) end

local function run(self, x, names, layout, fn)
  if not core.is_tensor(x) then error("tfjs:" .. fn .. ": x must be a float32 tensor, got " .. type(x), 3) end
  if layout ~= "nhwc" and layout ~= "nchw" then
    error("tfjs:" .. fn .. ": layout must be \"nhwc\" or \"nchw\", got " .. tostring(layout), 3)
  end
  for _, n in ipairs(names) do
    if type(n) ~= "string" then error("tfjs:" .. fn .. ": layer names must be strings", 3) end
    if not self._by_name[n] then error(string.format("tfjs:%s: %s has no layer named '%s'", fn, self.path, n), 3) end
  end
  local ok, res = pcall(core.tfjs_forward, self.handle, x, names, layout == "nchw")
  if not ok then error("tfjs:" .. fn .. ": " .. (tostring(res):gsub("^.-tfjs_forward: ", "")), 3) end
  return res
end

-- forward(x, {outputs = {names}, layout = "nhwc" | "nchw"}) -> tensor (the model's output, or
-- the one layer asked for) | {name = tensor} (several)
function Model:forward(x, opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("tfjs:forward: opts must be a table", 2) end
  local names = opts.outputs or self.outputs
  if type(names) == "string" then names = { names } end
  if type(names) ~= "table" or #names == 0 then error("tfjs:forward: outputs must be a list of layer names", 2) end
  local res = run(self, x, names, opts.layout or "nhwc", "forward")
  if #names == 1 then return res[1] end
  local out = {}
  for i, n in ipairs(names) do out[n] = res[i] end
  return out
end

-- output(x, name, {layout}) -> the named layer's output
function Model:output(x, name, opts)
  if type(name) ~= "string" then error("tfjs:output: name must be a layer name", 2) end
  return run(self, x, { name }, (opts and opts.layout) or "nhwc", "output")[1]
end

-- TF.js's tf.image.resizeBilinear(x, [h, w], alignCorners = true) on a float32 (H, W, C) image
function M.resize_bilinear_align_corners(x, h, w) return core.tfjs_resize_bilinear_ac(x, h, w) end

-- check_json(text) -> true | nil, message: model.json checks alone (no shards read)
function M.check_json(text)
  if type(text) ~= "string" then error("tfjs.check_json: text must be a string", 2) end
  return core.tfjs_check_json(text)
end

return M
