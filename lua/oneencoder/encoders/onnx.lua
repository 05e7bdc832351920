-- encoders/onnx.lua: any ONNX model as a frozen encoder (oneencoder.onnx runs it in C).
--   local enc = oe.encoders.create("onnx", { path = "encoder.onnx", modality = "image" })
--   local feats, lengths = enc:encode(list_of_items)   -- (B, L, D), every length L
--
-- Options:
--   path        the .onnx file (required)
--   input       name of the graph input (checked; the model must have exactly one)
--   output      name of the graph output giving the features (default: the first output)
--   layout      how the output becomes tokens (B, L, D):
--                 "auto" (default): by rank, 2 -> "vector", 3 -> "tokens", 4 -> "map"
--                 "vector"  (B, D) -> (B, 1, D)
--                 "tokens"  (B, L, D) as it is
--                 "map"     a feature map (B, C, H, W) -> (B, H * W, C): one token per position
--                 "flatten" (B, ...) -> (B, 1, everything else)
--   dim         D when the model does not declare it (checked against every output)
--   modality    "image", "audio", "text", "video" or another name (default "unknown"); picks the
--               loader: oneencoder.image.load for images, oneencoder.audio.load (16 kHz mono) for
--               audio
--   preprocess  function(item) -> float32 tensor of one item's input shape (without the batch
--               dimension); default: items are such tensors already
--   loader      function(path) -> item | nil, message (overrides the modality's loader)
--   sequence    true: an item (after preprocess) is a sequence of n model inputs (n, ...), such
--               as an audio clip's windows or a video's frames; the model runs on the rows of
--               every item (at most row_batch rows per call) and item i gets one token per row,
--               in order: features (B, max n, D), zero rows after each item's length n_i. The
--               output must give one vector per row (layout "vector" or "flatten"; "auto" takes
--               a (rows, D) output). Default false: one model input per item.
--   row_batch   rows per model call in sequence mode (default 64: bounds the activations)
--
-- Input: a list of items (each turned into one input row by preprocess, all of one shape) or a
-- tensor already batched (B, ...) of the input's dtype. The model runs on the whole batch in one
-- call; the first output dimension must be B. Planning (shapes, buffers) is redone only when the
-- batch shape changes.
local core = require "oneencoder.core"
local C = require "oneencoder.encoders.common"

local NAME = "onnx"
local Onnx = C.class(NAME)

local DEFAULTS = { path = C.NONE, input = C.NONE, output = C.NONE, layout = "auto", dim = C.NONE, modality = "unknown",
  preprocess = C.NONE, loader = C.NONE, sequence = false, row_batch = 64 }
local LAYOUTS = { auto = true, vector = true, tokens = true, map = true, flatten = true }

local function find(list, name)
  for _, io in ipairs(list) do
    if io.name == name then return io end
  end
end
local function names(list)
  local n = {}
  for i, io in ipairs(list) do n[i] = io.name end
  return table.concat(n, ", ")
end

-- D of the declared output shape under a layout, or nil when not declared
local function declared_dim(shape, layout)
  if not shape then return nil end
  local r = #shape
  if layout == "auto" then layout = r == 2 and "vector" or r == 3 and "tokens" or r == 4 and "map" or nil end
  local d
  if layout == "vector" and r == 2 then d = shape[2]
  elseif layout == "tokens" and r == 3 then d = shape[3]
  elseif layout == "map" and r == 4 then d = shape[2]
  elseif layout == "flatten" then
    d = 1
    for i = 2, r do d = type(d) == "number" and type(shape[i]) == "number" and d * shape[i] or nil end
  end
  return type(d) == "number" and d or nil
end

-- Onnx.new(opts) -> encoder | nil, message (a missing or bad model file)
function Onnx.new(opts)
  local o = C.options(NAME, opts, DEFAULTS, 4)
  if type(o.path) ~= "string" then error("encoders.create(\"onnx\"): option 'path' is required (an .onnx file)", 3) end
  if not LAYOUTS[o.layout] then
    error("encoders.create(\"onnx\"): option 'layout' must be \"auto\", \"vector\", \"tokens\", \"map\" or \"flatten\", got "
      .. tostring(o.layout), 3)
  end
  for _, k in ipairs({ "preprocess", "loader" }) do
    if o[k] ~= nil and type(o[k]) ~= "function" then error("encoders.create(\"onnx\"): option '" .. k .. "' must be a function", 3) end
  end
  if type(o.modality) ~= "string" then error("encoders.create(\"onnx\"): option 'modality' must be a string", 3) end
  if type(o.sequence) ~= "boolean" then error("encoders.create(\"onnx\"): option 'sequence' must be a boolean", 3) end
  local row_batch = C.int(NAME, "row_batch", o.row_batch, 1, 1 << 20)
  if o.sequence and o.layout ~= "auto" and o.layout ~= "vector" and o.layout ~= "flatten" then
    error("encoders.create(\"onnx\"): option 'sequence' needs one vector per row: layout \"auto\", \"vector\" or \"flatten\", got "
      .. o.layout, 3)
  end
  local m, err = require("oneencoder.onnx").load(o.path)
  if not m then return nil, err end
  if #m.inputs ~= 1 then
    return nil, string.format("%s: the encoder feeds one input, the model has %d (%s)", o.path, #m.inputs, names(m.inputs))
  end
  local input = m.inputs[1]
  if o.input ~= nil and o.input ~= input.name then
    return nil, string.format("%s: no input '%s' (the input is '%s')", o.path, tostring(o.input), input.name)
  end
  local output = o.output ~= nil and find(m.outputs, o.output) or m.outputs[1]
  if not output then return nil, string.format("%s: no output '%s' (outputs: %s)", o.path, tostring(o.output), names(m.outputs)) end
  local dim = declared_dim(output.shape, o.layout)
  if o.dim ~= nil then
    local d = C.int(NAME, "dim", o.dim, 1, 1 << 30)
    if dim and dim ~= d then return nil, string.format("%s: output '%s' declares %d features, option dim is %d", o.path, output.name, dim, d) end
    dim = d
  end
  if not dim then
    return nil, string.format("%s: output '%s' does not declare its feature size under layout '%s': give option dim", o.path,
      output.name, o.layout)
  end
  local self = setmetatable({ name = NAME, modality = o.modality }, Onnx)
  self.model, self.input, self.output, self.layout, self.dim = m, input.name, output.name, o.layout, dim
  self.item_fn, self.loader_fn = o.preprocess, o.loader
  self.sequence, self.row_batch = o.sequence, row_batch
  local st = core.fs_stat(m.path)
  local ident = st and string.format("%s:%d:%d.%09d", m.path, st.size, st.mtime, st.mtime_ns) or m.path
  self.settings = { path = m.path, input = input.name, output = output.name, layout = o.layout, dim = dim, modality = o.modality,
    sequence = o.sequence }
  self.id = string.format("onnx:%s:in=%s:out=%s:layout=%s%s%s:v1", ident, input.name, output.name, o.layout,
    o.sequence and ":sequence" or "", o.preprocess and ":custom-preprocess" or "")
  local shape = {}
  for i = 2, #(input.shape or {}) do shape[#shape + 1] = tostring(input.shape[i]) end
  self.preprocess = {
    modality = o.modality,
    input = o.sequence
        and string.format("a list of %s tensors (n, %s), n rows per item%s", input.dtype or "float32", table.concat(shape, ", "),
          o.preprocess and " after the preprocess function" or "")
        or string.format("a list of %s tensors (%s)%s, or a batch (B, ...)", input.dtype or "float32", table.concat(shape, ", "),
          o.preprocess and " after the preprocess function" or ""),
    model_input = input.name, model_output = output.name, layout = o.layout,
  }
  return self
end

function Onnx:check(item)
  if self.item_fn then return true end
  if not core.is_tensor(item) then return nil, "expected a tensor, got " .. type(item) end
  return true
end

-- to_batch(batch) -> tensor (B, ...)
function Onnx:to_batch(batch)
  if core.is_tensor(batch) then return batch end
  if type(batch) ~= "table" then C.fail(self, "expected a list of items or a batch tensor, got %s", type(batch)) end
  if #batch == 0 then C.fail(self, "empty batch") end
  local rows = {}
  for i, item in ipairs(batch) do
    local x = item
    if self.item_fn then x = self.item_fn(item) end
    if not core.is_tensor(x) then C.fail(self, "item %d: expected a tensor, got %s", i, type(x)) end
    local s = core.shape(x)
    local full = { 1 }
    for k = 1, #s do full[k + 1] = s[k] end
    rows[i] = core.reshape(x, full)
    if i > 1 and C.shape_str(rows[i]) ~= C.shape_str(rows[1]) then
      C.fail(self, "item %d has shape %s, item 1 %s", i, C.shape_str(x), C.shape_str(core.select(rows[1], 1, 1)))
    end
  end
  return #rows == 1 and rows[1] or core.cat(rows, 1)
end

-- tokens(y) -> (B, L, D)
function Onnx:tokens(y, B)
  local s = core.shape(y)
  local layout = self.layout
  if layout == "auto" then layout = #s == 2 and "vector" or #s == 3 and "tokens" or #s == 4 and "map" or nil end
  if not layout or s[1] ~= B then
    C.fail(self, "output '%s' has shape %s for a batch of %d (layout %s)", self.output, C.shape_str(y), B, self.layout)
  end
  local t
  if layout == "vector" and #s == 2 then t = core.reshape(y, { s[1], 1, s[2] })
  elseif layout == "tokens" and #s == 3 then t = y
  elseif layout == "map" and #s == 4 then t = core.permute(core.reshape(y, { s[1], s[2], s[3] * s[4] }), { 1, 3, 2 })
  elseif layout == "flatten" then t = core.reshape(y, { s[1], 1, -1 })
  else C.fail(self, "output '%s' has shape %s, which layout '%s' does not take", self.output, C.shape_str(y), self.layout) end
  if core.shape(t)[3] ~= self.dim then
    C.fail(self, "output '%s' gives %d features, the encoder was created with dim %d", self.output, core.shape(t)[3], self.dim)
  end
  return t
end

-- sequence mode: items (n_i, ...) -> features (B, max n_i, D), lengths n_i
function Onnx:encode_sequences(batch)
  if type(batch) ~= "table" or core.is_tensor(batch) then
    C.fail(self, "sequence mode takes a list of items, got %s", core.is_tensor(batch) and "a tensor" or type(batch))
  end
  if #batch == 0 then C.fail(self, "empty batch") end
  local seqs, lengths, row_shape = {}, {}, nil
  for i, item in ipairs(batch) do
    local x = self.item_fn and self.item_fn(item) or item
    if not core.is_tensor(x) then C.fail(self, "item %d: expected a tensor, got %s", i, type(x)) end
    local s = core.shape(x)
    if #s < 1 or s[1] < 1 then C.fail(self, "item %d has shape %s: a sequence needs at least one row", i, C.shape_str(x)) end
    local rs = C.shape_str(core.select(x, 1, 1))
    if row_shape and rs ~= row_shape then C.fail(self, "item %d has rows of shape %s, item 1 %s", i, rs, row_shape) end
    row_shape = rs
    seqs[i], lengths[i] = x, s[1]
  end
  -- every row of every item, run row_batch at a time -> vectors (rows, D)
  local rows = #seqs == 1 and seqs[1] or core.cat(seqs, 1)
  local total = core.shape(rows)[1]
  local vecs = {}
  for start = 1, total, self.row_batch do
    local n = math.min(self.row_batch, total - start + 1)
    local y = self.model:run({ [self.input] = core.narrow(rows, 1, start, n) })[self.output]
    vecs[#vecs + 1] = core.reshape(self:tokens(y, n), { n, self.dim })
  end
  local all = #vecs == 1 and vecs[1] or core.cat(vecs, 1)
  local L = math.max(table.unpack(lengths))
  local out = core.zeros({ #seqs, L, self.dim })
  local at = 1
  for i, n in ipairs(lengths) do
    core.set_slice(core.select(out, 1, i), 1, 1, core.narrow(all, 1, at, n))
    at = at + n
  end
  return out, lengths
end

-- encode(batch) -> features (B, L, D) float32, lengths
function Onnx:encode(batch)
  if self.sequence then return self:encode_sequences(batch) end
  local x = self:to_batch(batch)
  local B = core.shape(x)[1]
  local y = self.model:run({ [self.input] = x })[self.output]
  local t = self:tokens(y, B)
  local lengths = {}
  for b = 1, B do lengths[b] = core.shape(t)[2] end
  return t, lengths
end

-- load(path) -> item | nil, message
function Onnx:load(path)
  if self.loader_fn then return self.loader_fn(path) end
  if self.modality == "image" then return require("oneencoder.image").load(path) end
  if self.modality == "audio" then return require("oneencoder.audio").load(path, { rate = 16000, mono = true }) end
  return nil, string.format("%s: the onnx encoder has no loader for modality '%s' (give option loader)", path, self.modality)
end

return Onnx
