-- spec/onnx_spec.lua: ONNX import (csrc/onnx, oe.onnx) against ONNX Runtime, planning, and bad input.
-- Fixtures: spec/fixtures/onnx/ops/*.onnx, one-node (and five small multi-node) models built with
-- Debian's python3-onnx, and ops.safetensors, their inputs and onnxruntime-node 1.30.0's outputs
-- (tools/onnx_op_fixtures.sh); spec/fixtures/onnx/bad/*.onnx (tools/onnx_bad_models.py).
--
-- Tolerance. "exact" cases (data movement, integer arithmetic, max/min, ReLU, clipping) must give
-- ONNX Runtime's bits. The others must be within 1e-5 relative: |got - want| <= 1e-5 (|want| + rms),
-- rms the root mean square of the reference output, so that an element that cancels to nearly 0
-- in a sum of products is held to the output's scale rather than to its own (both runtimes round
-- sums of up to 1600 products in different orders: about k u = 1e-4 of sum |a_i b_i| at worst,
-- far less in practice; the largest deviation seen is 2e-7).
local oe = require "oneencoder"
local H = require "helpers"
local core = oe.core

local FIX = "spec/fixtures/onnx/"
local T, meta = assert(oe.load(FIX .. "ops.safetensors"))

local CASES = {}
for line in meta.cases:gmatch("[^\n]+") do
  local name, kind, ni, no = line:match("^(%S+) (%S+) (%d+) (%d+)$")
  CASES[#CASES + 1] = { name = name, exact = kind == "exact", n_in = tonumber(ni), n_out = tonumber(no) }
end

local function inputs_of(c)
  local list = {}
  for i = 1, c.n_in do list[i] = T[c.name .. "/in/" .. i] end
  return list
end

local function flat(t)
  if #core.shape(t) == 0 then return { core.item(t) } end
  return core.totable(core.reshape(t, { -1 }))
end

-- got equals want bit for bit (dtype, shape, every element)
local function same(got, want, what)
  assert.are.equal(core.dtype(want), core.dtype(got), what .. ": dtype")
  assert.are.same(core.shape(want), core.shape(got), what .. ": shape")
  local g, w = flat(got), flat(want)
  for i = 1, #w do
    if g[i] ~= w[i] then
      error(string.format("%s: element %d is %.9g, ONNX Runtime gives %.9g", what, i, g[i], w[i]))
    end
  end
end

-- |got - want| <= 1e-5 (|want| + rms(want)) element by element
local function close(got, want, what)
  assert.are.equal(core.dtype(want), core.dtype(got), what .. ": dtype")
  local w = flat(want)
  local ss = 0
  for i = 1, #w do ss = ss + w[i] * w[i] end
  local rms = math.sqrt(ss / math.max(#w, 1))
  local tol = {}
  for i = 1, #w do tol[i] = 1e-5 * (math.abs(w[i]) + rms) end
  if #w > 0 then H.allclose(got, want, tol, what) end
  assert.are.same(core.shape(want), core.shape(got), what .. ": shape")
end

local function load_case(name) return assert(oe.onnx.load(FIX .. "ops/" .. name .. ".onnx")) end

describe("onnx: every op against ONNX Runtime 1.30", function()
  it("has the fixture cases", function()
    assert.is_true(#CASES >= 150)
    assert.are.equal("1.30.0", meta.onnxruntime)
  end)
  for _, c in ipairs(CASES) do
    it(c.name, function()
      local m = load_case(c.name)
      local outs = m:run_list(inputs_of(c))
      assert.are.equal(c.n_out, #outs)
      for i = 1, c.n_out do
        local want = T[c.name .. "/out/" .. i]
        if c.exact then same(outs[i], want, c.name .. " output " .. i)
        else close(outs[i], want, c.name .. " output " .. i) end
      end
    end)
  end

  it("covers every op the issue lists, each in at least one fixture model", function()
    local listed = { "Conv", "MatMul", "Gemm", "Add", "Sub", "Mul", "Div", "Pow", "Clip", "Log", "ReduceMax", "LeakyRelu",
      "Relu", "Max", "MaxPool", "Reshape", "Transpose", "Unsqueeze", "Squeeze", "Cast", "Constant", "Shape", "Gather",
      "Concat", "Softmax", "LayerNormalization", "Erf", "Gelu", "Sigmoid", "Tanh", "GlobalAveragePool", "AveragePool",
      "BatchNormalization", "Flatten", "Slice", "Split", "ReduceMean" }
    local supported, used = {}, {}
    for _, op in ipairs(oe.onnx.supported_ops()) do supported[op] = true end
    for _, c in ipairs(CASES) do
      for _, op in ipairs(load_case(c.name):info().ops) do used[op] = true end
    end
    for _, op in ipairs(listed) do
      assert(supported[op], op .. " is not supported")
      assert(used[op], op .. " has no fixture")
    end
    for op in pairs(supported) do assert(used[op], "supported op " .. op .. " has no fixture") end
  end)
end)

describe("onnx: the model object", function()
  it("describes inputs and outputs as declared", function()
    local m = load_case("Conv_3x3_pad1")
    assert.are.equal(1, #m.inputs)
    assert.are.equal("x", m.inputs[1].name)
    assert.are.equal("float32", m.inputs[1].dtype)
    assert.are.same({ 2, 3, 7, 6 }, m.inputs[1].shape)
    assert.are.equal("y", m.outputs[1].name)
    local info = m:info()
    assert.are.equal(13, info.opset)
    assert.are.same({ "Conv" }, info.ops)
    assert.are.equal(2, info.initializers)
    assert.are.equal(4 * 3 * 3 * 3 + 4, info.weights)
    local sym = load_case("Graph_symbolic_batch")
    assert.are.same({ "N", 2, 8, 8 }, sym.inputs[1].shape)
  end)

  it("runs by name, by tensor for a one-input model, and in input order", function()
    local m = load_case("Add_row")
    local a, b = T["Add_row/in/1"], T["Add_row/in/2"]
    local want = T["Add_row/out/1"]
    same(m:run({ a = a, b = b }).y, want, "by name")
    same(m:run_list({ a, b })[1], want, "list")
    local r = load_case("Relu")
    same(r:run(T["Relu/in/1"]).y, T["Relu/out/1"], "tensor")
  end)

  it("refuses unknown, missing and mistyped inputs naming the model", function()
    local m = load_case("Add_row")
    local a, b = T["Add_row/in/1"], T["Add_row/in/2"]
    H.fails_with(function() m:run({ a = a }) end, "Add_row.onnx", "input 'b' is missing")
    H.fails_with(function() m:run({ a = a, b = b, c = b }) end, "has no input 'c'", "inputs: a, b")
    H.fails_with(function() m:run(a) end, "has 2 inputs")
    H.fails_with(function() m:run({ a = a, b = 3 }) end, "input 'b' must be a tensor")
    H.fails_with(function() m:run_list({ a }) end, "the model has 2 inputs, 1 tensors given")
    H.fails_with(function() m:run({ a = oe.zeros({ 2, 3, 5 }), b = b }) end, "Add_row.onnx", "input 'a' has shape (2, 3, 5)",
      "declares (2, 3, 4)")
    H.fails_with(function() m:run({ a = oe.zeros({ 2, 3, 4 }, "int64"), b = b }) end, "input 'a' is int64", "declares float32")
    H.fails_with(function() m:run({ a = oe.zeros({ 2, 3, 4 }, "uint8"), b = b }) end, "input 'a' is uint8")
    H.fails_with(function() oe.onnx.load(3) end, "onnx.load: path must be a string")
  end)

  it("closes", function()
    local m = load_case("Relu")
    m:close()
    H.fails_with(function() m:run(T["Relu/in/1"]) end, "open ONNX model")
    m:close()
  end)
end)

describe("onnx: planning", function()
  it("plans once per input shape and plans again when it changes", function()
    local m = load_case("Graph_symbolic_batch")
    local x = T["Graph_symbolic_batch/in/1"]
    close(m:run(x).y, T["Graph_symbolic_batch/out/1"], "batch 3")
    local p1 = m:plan_info()
    m:run(x)
    assert.are.same(p1, m:plan_info())
    -- one item alone: its row of the batch result, within rounding (another batch size may
    -- take another thread split)
    local one = m:run(core.narrow(x, 1, 2, 1)).y
    assert.are.same({ 1, 5 }, core.shape(one))
    close(one, core.narrow(T["Graph_symbolic_batch/out/1"], 1, 2, 1), "batch 1")
    local big = m:run(core.cat({ x, x, x, x }, 1)).y
    assert.are.same({ 12, 5 }, core.shape(big))
    close(core.narrow(big, 1, 10, 3), T["Graph_symbolic_batch/out/1"], "batch 12")
  end)

  it("splits large convolutions into column tiles without changing the result", function()
    -- 1x1: 96 x 12,000 outputs (two tiles of 9,362 columns); 3x3: 8 x 14,400 (two of 13,107).
    -- Each half of the input (with the rows a 3x3 window needs) gives the same rows of the
    -- output within the rounding of a 16- or 72-term sum taken in another blocking.
    local rng = oe.Generator(5)
    for _, c in ipairs({ { "Conv_1x1_symbolic", 16, 120, 100, 0 }, { "Conv_3x3_symbolic", 8, 122, 122, 2 } }) do
      local m = load_case(c[1])
      local C, Hh, W, halo = c[2], c[3], c[4], c[5]
      local x = rng:randn({ 1, C, Hh, W })
      local y = m:run(x).y
      local OH = Hh - halo
      local half = OH // 2
      local top = m:run(core.narrow(x, 3, 1, half + halo)).y
      local bottom = m:run(core.narrow(x, 3, half + 1, OH - half + halo)).y
      local K = C * (halo + 1) * (halo + 1)
      local tol = H.sum_tol(K, 3 * K * 0.3 * 4)
      H.allclose(core.narrow(y, 3, 1, half), top, tol, c[1] .. " top half")
      H.allclose(core.narrow(y, 3, half + 1, OH - half), bottom, tol, c[1] .. " bottom half")
    end
  end)

  it("gives the same bits on repeated runs", function()
    local c = { name = "Graph_fused_activations", n_in = 1 }
    local m = load_case(c.name)
    local a = m:run_list(inputs_of(c))[1]
    local b = m:run_list(inputs_of(c))[1]
    same(a, b, "second run")
  end)

  it("fuses elementwise ops into the Conv/Gemm producing their input, and only those", function()
    -- conv1 -> LeakyRelu -> Max(0.05) (fused; its result then has three readers), depthwise conv
    -- -> Clip (fused; Add's other input is computed), Gemm -> Div(2) -> Sigmoid (fused): 5
    local c = { name = "Graph_fused_activations", n_in = 1 }
    local m = load_case(c.name)
    close(m:run_list(inputs_of(c))[1], T[c.name .. "/out/1"], "fused graph")
    local p = m:plan_info()
    assert.are.equal(5, p.fused)
    assert.are.equal(#m:info().ops - 5, p.steps) -- Flatten is a view, but still a step (doing nothing)
  end)

  it("shares bytes between values whose lifetimes do not overlap", function()
    local c = { name = "Graph_buffer_reuse", n_in = 1, n_out = 3 }
    local m = load_case(c.name)
    local outs = m:run_list(inputs_of(c))
    for i = 1, 3 do close(outs[i], T[c.name .. "/out/" .. i], "output " .. i) end
    -- 11 computed (6, 6) float32 values of 144 bytes (192 in the arena): far fewer live at once
    local p = m:plan_info()
    assert.is_true(p.arena_bytes <= 6 * 192, "arena of " .. p.arena_bytes .. " bytes")
  end)

  it("folds what is known before running: shapes computed from shapes, constants", function()
    local c = { name = "Graph_computed_shape", n_in = 1 }
    local m = load_case(c.name)
    close(m:run_list(inputs_of(c))[1], T[c.name .. "/out/1"], "computed shape")
    local p = m:plan_info()
    assert.are.equal(6, p.folded) -- Shape, Gather, Unsqueeze, Concat, Cast, ReduceMax
    assert.are.equal(2, p.steps)  -- Reshape (a view) and Mul
    local k = load_case("Constant_tensor")
    same(k:run_list({})[1], T["Constant_tensor/out/1"], "constant")
  end)

  it("gives results within rounding on one thread and on two (tiles, row blocks, depthwise kernels)", function()
    local before = oe.get_num_threads()
    for _, name in ipairs({ "Conv_3x3_pad1", "Conv_1x1_tiles", "Conv_1x1_rowblocks", "Conv_im2col_tiles",
                            "Conv_depthwise_rows_stride2", "Conv_depthwise_channels_stride2", "Graph_depthwise_fused" }) do
      local c = { name = name, n_in = 1 }
      local m = load_case(c.name)
      oe.set_num_threads(1)
      local one = m:run_list(inputs_of(c))[1]
      oe.set_num_threads(2)
      local two = m:run_list(inputs_of(c))[1]
      close(one, T[c.name .. "/out/1"], name .. ", 1 thread")
      close(two, T[c.name .. "/out/1"], name .. ", 2 threads")
    end
    oe.set_num_threads(before)
  end)
end)

-- ---- bad input ----

local function tmpfile(bytes)
  local p = os.tmpname()
  local f = assert(io.open(p, "wb"))
  f:write(bytes)
  f:close()
  return p
end

local function read_all(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- a protobuf varint
local function varint(v)
  local out = {}
  repeat
    local b = v % 128
    v = v // 128
    out[#out + 1] = string.char(b + (v > 0 and 128 or 0))
  until v == 0
  return table.concat(out)
end

describe("onnx: bad input gives a clear error naming the file, never a crash", function()
  local load_errors = {
    cycle = { "the graph has a cycle", "node 'add_in_cycle' (Add)" },
    self_loop = { "the graph has a cycle", "node 'feeds_itself' (Add)" },
    missing_initializer = { "node 'proj' (MatMul)", "input 'w_missing'", "a missing initializer" },
    unknown_op = { "node 'mystery_node' (NonMaxSuppression)", "op 'NonMaxSuppression' (opset 17) is not supported" },
    custom_domain = { "node 'ms_node' (FusedConv)", "domain 'com.microsoft' is not supported" },
    dims_overflow = { "initializer 'w'", "(2097152, 2097152)", "multiply past 2^40" },
    negative_dim = { "initializer 'w'", "negative size -3" },
    raw_data_size = { "initializer 'w'", "raw_data holds 32 bytes", "need 36" },
    typed_count = { "initializer 'w'", "float_data holds 8 values", "9 elements" },
    double_initializer = { "initializer 'w' has data type DOUBLE" },
    no_opset = { "imports no opset of the default ONNX domain" },
    opset_too_new = { "opset 99 is not supported" },
    output_not_produced = { "graph output 'nowhere' is produced by no node" },
    produced_twice = { "node 'second' (Neg)", "output 'y' is also produced" },
    bad_attribute = { "node 'pool' (MaxPool)", "'kernel_shape' value 0" },
    conv3d = { "node 'conv3d' (Conv)", "3-D windows are not supported" },
  }
  for name, frags in pairs(load_errors) do
    it("load: " .. name, function()
      local path = FIX .. "bad/" .. name .. ".onnx"
      local m, err = oe.onnx.load(path)
      assert.is_nil(m)
      assert(err:find(path, 1, true), err)
      for _, f in ipairs(frags) do assert(err:find(f, 1, true), string.format("%q lacks %q", err, f)) end
    end)
  end

  local run_errors = {
    matmul_mismatch = { { 2, 3 } , { "node 'proj' (MatMul)", "A (2, 3) and B (4, 5)", "inner dimensions 3 and 4 differ" } },
    broadcast_mismatch = { { 2, 3 }, { "node 'bias' (Add)", "shapes (2, 3) and (4,) do not broadcast" } },
    reshape_mismatch = { { 2, 3 }, { "node 'reshape' (Reshape)", "cannot reshape (2, 3)" } },
    conv_channels = { { 1, 3, 5, 5 }, { "node 'conv' (Conv)", "has 3 channels", "expects 4" } },
    expand_overflow = { { 2, 3 }, { "node 'expand' (Expand)", "multiply past 2^40" } },
  }
  for name, spec in pairs(run_errors) do
    it("run: " .. name, function()
      local path = FIX .. "bad/" .. name .. ".onnx"
      local m = assert(oe.onnx.load(path))
      H.fails_with(function() m:run(oe.zeros(spec[1])) end, path, table.unpack(spec[2]))
    end)
  end

  it("run: inputs that must be known before running, indices and divisors from the data", function()
    local m = assert(oe.onnx.load(FIX .. "bad/dynamic_shape.onnx"))
    H.fails_with(function() m:run({ x = oe.zeros({ 2, 3 }), s = oe.tensor({ 3, 2 }, "int64") }) end, "dynamic_shape.onnx",
      "node 'reshape' (Reshape)", "must be known before running")
    local g = assert(oe.onnx.load(FIX .. "bad/gather_out_of_range.onnx"))
    H.fails_with(function() g:run({ x = oe.zeros({ 2, 3 }), i = oe.tensor({ 0, 7 }, "int64") }) end, "gather_out_of_range.onnx",
      "node 'gather' (Gather)", "index 7 is outside -2..1")
    same(g:run({ x = oe.ones({ 2, 3 }), i = oe.tensor({ 1, -2 }, "int64") }).y, oe.ones({ 2, 3 }), "in range")
    local d = assert(oe.onnx.load(FIX .. "bad/int_div_zero.onnx"))
    H.fails_with(function() d:run({ a = oe.tensor({ 4, 5, 6 }, "int64"), b = oe.tensor({ 2, 0, 3 }, "int64") }) end,
      "node 'div' (Div)", "integer division by zero (element 1)")
    same(d:run({ a = oe.tensor({ 7, -7, 6 }, "int64"), b = oe.tensor({ 2, 2, -4 }, "int64") }).y, oe.tensor({ 3, -3, -1 }, "int64"),
      "truncating division")
  end)

  it("refuses missing files, folders, empty files and files that are not protobuf", function()
    local m, err = oe.onnx.load("spec/fixtures/onnx/no_such_model.onnx")
    assert.is_nil(m)
    assert(err:find("no_such_model.onnx: cannot open", 1, true), err)
    m, err = oe.onnx.load("spec/fixtures/onnx")
    assert.is_nil(m)
    assert(err:find("not a regular file", 1, true), err)
    local p = tmpfile("")
    m, err = oe.onnx.load(p)
    assert.is_nil(m)
    assert(err:find(p .. ": empty file", 1, true), err)
    os.remove(p)
    local rng = oe.Generator(7)
    local garbage = core.totable(rng:randint(0, 256, { 4096 }))
    for i = 1, #garbage do garbage[i] = string.char(garbage[i]) end
    p = tmpfile(table.concat(garbage))
    m, err = oe.onnx.load(p)
    assert.is_nil(m)
    assert(err:find(p .. ": not an ONNX model", 1, true), err)
    os.remove(p)
    p = tmpfile("this is a text file, not a model\n")
    m, err = oe.onnx.load(p)
    assert.is_nil(m)
    assert(err:find(p, 1, true), err)
    os.remove(p)
  end)

  it("refuses messages nested deeper than 100 (protobuf-c alone overflows the stack on them)", function()
    -- ModelProto.graph > GraphProto.node > NodeProto.attribute > AttributeProto.g > GraphProto.node ...
    -- 200,000 levels in 0.8 MB: protobuf-c's recursive unpack crashes the process without the check
    local tags = { string.char(1 << 3 | 2), string.char(5 << 3 | 2), string.char(6 << 3 | 2) }
    local levels = 200000
    local parts, lens = {}, {}
    -- lengths from the inside out, then the bytes from the outside in
    local len = 0
    for i = levels, 1, -1 do
      lens[i] = len
      len = len + 1 + #varint(len)
    end
    for i = 1, levels do parts[i] = tags[(i - 1) % 3 + 1] .. varint(lens[i]) end
    local body = table.concat(parts)
    local p = tmpfile(string.char(7 << 3 | 2) .. varint(#body) .. body)
    local m, err = oe.onnx.load(p)
    assert.is_nil(m)
    assert(err:find(p .. ": messages nested more than 100 deep", 1, true), err)
    os.remove(p)
  end)

  it("truncated at every byte: an error, or a model that runs or refuses its input cleanly", function()
    local c = { name = "Conv_3x3_pad1", n_in = 1 }
    local bytes = read_all(FIX .. "ops/" .. c.name .. ".onnx")
    local p = os.tmpname()
    local refused = 0
    for n = 0, #bytes - 1 do
      local f = assert(io.open(p, "wb"))
      f:write(bytes:sub(1, n))
      f:close()
      local m, err = oe.onnx.load(p)
      if not m then
        assert(err:find(p, 1, true), err)
        refused = refused + 1
      else
        local ok, e2 = pcall(m.run_list, m, inputs_of(c))
        if not ok then assert(tostring(e2):find(p, 1, true), e2) end
      end
    end
    os.remove(p)
    assert.is_true(refused > 0.9 * #bytes, refused .. " of " .. #bytes .. " prefixes refused")
  end)

  it("with flipped bytes: an error or a run, never a crash", function()
    local c = { name = "Graph_fused_activations", n_in = 1 }
    local bytes = read_all(FIX .. "ops/" .. c.name .. ".onnx")
    local rng = oe.Generator(12)
    local pos = core.totable(rng:randint(1, #bytes + 1, { 400 }))
    local val = core.totable(rng:randint(0, 256, { 400 }))
    local p = os.tmpname()
    local loaded, refused = 0, 0
    for k = 1, 400 do
      local i = pos[k]
      local f = assert(io.open(p, "wb"))
      f:write(bytes:sub(1, i - 1) .. string.char(val[k]) .. bytes:sub(i + 1))
      f:close()
      local m, err = oe.onnx.load(p)
      if m then
        loaded = loaded + 1
        local ok, e2 = pcall(m.run_list, m, inputs_of(c))
        if not ok then assert(tostring(e2):find(p, 1, true), e2) end
      else
        refused = refused + 1
        assert(err:find(p, 1, true), err)
      end
    end
    os.remove(p)
    assert.are.equal(400, loaded + refused)
    assert.is_true(refused > 0)
  end)
end)

describe("onnx: the generic encoder (oe.encoders.create(\"onnx\", ...))", function()
  local E = oe.encoders
  it("turns a model's output into tokens: vector layout", function()
    local path = FIX .. "ops/Graph_symbolic_batch.onnx"
    local e, msg = E.create("onnx", { path = path })
    assert.is_nil(e)
    assert.truthy(msg:find("does not declare its feature size", 1, true), msg)
    local enc = assert(E.create("onnx", { path = path, dim = 5, modality = "image" }))
    assert.are.equal(5, enc.dim)
    local x = T["Graph_symbolic_batch/in/1"]
    local items = {}
    for b = 1, 3 do items[b] = core.select(x, 1, b) end
    local f, l = enc:encode(items)
    assert.are.same({ 3, 1, 5 }, core.shape(f))
    assert.are.same({ 1, 1, 1 }, l)
    close(core.reshape(f, { 3, 5 }), T["Graph_symbolic_batch/out/1"], "encoder rows")
    local g = enc:encode(x) -- a batch tensor
    same(g, f, "batch tensor")
    -- a preprocess function per item
    local pre = assert(E.create("onnx", { path = path, dim = 5, preprocess = function(i) return core.select(x, 1, i) end }))
    same(pre:encode({ 1, 2, 3 }), f, "preprocess")
    assert.are_not.equal(pre.id, enc.id)
  end)

  it("feature maps become one token per position (map layout)", function()
    local enc = assert(E.create("onnx", { path = FIX .. "ops/Conv_1x1.onnx", layout = "map", dim = 6 }))
    local x = T["Conv_1x1/in/1"]
    local f, l = enc:encode(x)
    assert.are.same({ 2, 25, 6 }, core.shape(f))
    assert.are.same({ 25, 25 }, l)
    -- token p of image b is the output's channel vector at position p
    local want = core.permute(core.reshape(T["Conv_1x1/out/1"], { 2, 6, 25 }), { 1, 3, 2 })
    close(f, want, "map tokens")
  end)

  it("sequence mode: an item of n rows gets n tokens, padded to the longest (row_batch calls)", function()
    local path = FIX .. "ops/Graph_symbolic_batch.onnx"
    local x = T["Graph_symbolic_batch/in/1"] -- 3 rows
    local want = T["Graph_symbolic_batch/out/1"] -- (3, 5): ONNX Runtime on the whole batch
    for _, rb in ipairs { 1, 2, 64 } do
      local enc = assert(E.create("onnx", { path = path, dim = 5, sequence = true, row_batch = rb }))
      local f, l = enc:encode({ core.narrow(x, 1, 2, 2), core.narrow(x, 1, 1, 1) })
      assert.are.same({ 2, 2, 5 }, core.shape(f))
      assert.are.same({ 2, 1 }, l)
      close(core.select(f, 1, 1), core.narrow(want, 1, 2, 2), "item 1, row_batch " .. rb)
      close(core.narrow(core.select(f, 1, 2), 1, 1, 1), core.narrow(want, 1, 1, 1), "item 2, row_batch " .. rb)
      assert.are.same({ 0, 0, 0, 0, 0 }, core.totable(core.select(core.select(f, 1, 2), 1, 2)))
    end
    local enc = assert(E.create("onnx", { path = path, dim = 5, sequence = true }))
    assert.are_not.equal(enc.id, assert(E.create("onnx", { path = path, dim = 5 })).id)
    H.fails_with(function() enc:encode(x) end, "sequence mode takes a list of items")
    H.fails_with(function() enc:encode({ core.narrow(x, 1, 1, 1), oe.zeros({ 1, 2, 4, 8 }) }) end,
      "item 2 has rows of shape (2, 4, 8), item 1 (2, 8, 8)")
    H.fails_with(function() E.create("onnx", { path = path, dim = 5, sequence = true, layout = "map" }) end,
      "option 'sequence' needs one vector per row")
    H.fails_with(function() E.create("onnx", { path = path, dim = 5, sequence = "yes" }) end, "option 'sequence' must be a boolean")
  end)

  it("refuses what it cannot feed or shape", function()
    local path = FIX .. "ops/Add_row.onnx"
    local e, msg = E.create("onnx", { path = path, dim = 4 })
    assert.is_nil(e)
    assert.truthy(msg:find("the encoder feeds one input, the model has 2 (a, b)", 1, true), msg)
    e, msg = E.create("onnx", { path = FIX .. "ops/nothing.onnx", dim = 4 })
    assert.is_nil(e)
    assert.truthy(msg:find("nothing.onnx: cannot open", 1, true), msg)
    H.fails_with(function() E.create("onnx", {}) end, "option 'path' is required")
    H.fails_with(function() E.create("onnx", { path = path, layout = "grid" }) end, "option 'layout' must be")
    local enc = assert(E.create("onnx", { path = FIX .. "ops/Graph_symbolic_batch.onnx", dim = 7 }))
    H.fails_with(function() enc:encode(T["Graph_symbolic_batch/in/1"]) end, "gives 5 features", "dim 7")
    local v = assert(E.create("onnx", { path = FIX .. "ops/Graph_symbolic_batch.onnx", dim = 5 }))
    H.fails_with(function() v:encode({ oe.zeros({ 2, 8, 8 }), oe.zeros({ 2, 4, 8 }) }) end, "item 2 has shape (2, 4, 8)")
    H.fails_with(function() v:encode({ oe.zeros({ 3, 8, 8 }) }) end, "Graph_symbolic_batch.onnx", "has shape (1, 3, 8, 8)")
    local _, lerr = v:load("x.png")
    assert.truthy(lerr:find("no loader for modality 'unknown'", 1, true))
  end)
end)
