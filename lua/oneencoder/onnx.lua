-- oneencoder.onnx: ONNX models run by the C core (csrc/onnx, inference only).
--   local m = assert(oe.onnx.load("model.onnx"))      -- or nil, "<path>: <reason>"
--   local out = m:run({ input = x })                   -- {output_name = tensor, ...}
--   local y = m:run(x).output                          -- a one-input model takes the tensor itself
--   m.inputs, m.outputs                                -- {{name, dtype, shape}, ...} as declared
--   m:info()   {path, ir_version, opset, producer, nodes, initializers, weights, ops}
--   m:plan_info()  {arena_bytes, steps, fused, folded} of the plan for the last input shapes
--   oe.onnx.supported_ops()                            -- sorted op names
--
-- Loading parses the file with protobuf-c, converts the initializers, checks every node's op
-- (an unsupported op fails here, naming the op, the node and the opset) and orders the graph.
-- The first run with given input shapes plans: shapes inferred node by node, constant parts
-- folded, elementwise ops fused into the Conv/MatMul/Gemm before them, buffers placed in one
-- arena; later runs with the same shapes reuse the plan. Inputs are float32, int64 or int32
-- tensors of the declared shapes (symbolic dims take any size); wrong names, counts, dtypes or
-- shapes raise an error naming the model file and the input. No autograd: outputs are plain
-- tensors.
local core = require "oneencoder.core"

local M = {}
local Model = {}
Model.__index = Model

local function names_of(list)
  local n = {}
  for i, io in ipairs(list) do n[i] = io.name end
  return table.concat(n, ", ")
end

-- load(path) -> model | nil, message
function M.load(path)
  if type(path) ~= "string" then error("onnx.load: path must be a string, got " .. type(path), 2) end
  local h, err = core.onnx_load(path)
  if not h then return nil, err end
  local info = core.onnx_info(h)
  local self = setmetatable({ handle = h, path = info.path, inputs = info.inputs, outputs = info.outputs,
    opset = info.opset, _info = info }, Model)
  self.input_index, self.output_index = {}, {}
  for i, io in ipairs(info.inputs) do self.input_index[io.name] = i end
  for i, io in ipairs(info.outputs) do self.output_index[io.name] = i end
  return self
end

function Model:info() return self._info end
function Model:plan_info() return core.onnx_plan_info(self.handle) end

-- core.onnx_run raising "onnx:<fn>: <path>: <problem>" at the caller's level
local function run(self, list, fn, level)
  local ok, res = pcall(core.onnx_run, self.handle, list)
  if not ok then error("onnx:" .. fn .. ": " .. (tostring(res):gsub("^.-onnx_run: ", "")), level + 1) end
  return res
end

-- run_list({tensor per input, in the model's input order}) -> {tensor per output, in order}
function Model:run_list(list)
  if type(list) ~= "table" then error("onnx:run_list: expected a list of tensors, got " .. type(list), 2) end
  return run(self, list, "run_list", 2)
end

-- run(feeds) -> {name = tensor}; feeds: {input_name = tensor} or one tensor for a one-input model
function Model:run(feeds)
  local list = {}
  if core.is_tensor(feeds) then
    if #self.inputs ~= 1 then
      error(string.format("onnx:run: %s has %d inputs (%s): pass a table {name = tensor}", self.path, #self.inputs,
        names_of(self.inputs)), 2)
    end
    list[1] = feeds
  elseif type(feeds) == "table" then
    for k, v in pairs(feeds) do
      if not self.input_index[k] then
        error(string.format("onnx:run: %s has no input '%s' (inputs: %s)", self.path, tostring(k), names_of(self.inputs)), 2)
      end
      if not core.is_tensor(v) then error(string.format("onnx:run: input '%s' must be a tensor, got %s", k, type(v)), 2) end
      list[self.input_index[k]] = v
    end
    for i, io in ipairs(self.inputs) do
      if list[i] == nil then error(string.format("onnx:run: %s: input '%s' is missing", self.path, io.name), 2) end
    end
  else
    error("onnx:run: expected a table {input_name = tensor} or a tensor, got " .. type(feeds), 2)
  end
  local outs = run(self, list, "run", 2)
  local byname = {}
  for i, io in ipairs(self.outputs) do byname[io.name] = outs[i] end
  return byname
end

-- close(): frees the model now (the garbage collector does it otherwise)
function Model:close() core.onnx_close(self.handle) end
Model.__close = Model.close

M.supported_ops = core.onnx_supported_ops

return M
