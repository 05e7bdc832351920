-- train_spec.lua: trainers (step 1 / step 2), resume, logs, bad input; the
-- chunked feed-forward node against finite differences.
local oe = require "oneencoder"
local gc = require "gradcheck"
local core = oe.core
local H = require "helpers"

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  os.execute("mkdir -p " .. d)
  return d
end

-- two feature sets whose items pair up through a shared class prototype
local function toy_sets(n, D, seed)
  oe.manual_seed(seed or 5)
  local pa, pb = oe.randn({ 8, D }), oe.randn({ 8, D })
  local fa, fb = oe.zeros({ n, 4, D }), oe.zeros({ n, 3, D })
  local la, lb = {}, {}
  for i = 1, n do
    local c = (i - 1) % 8
    fa:set_slice(1, i, pa:narrow(1, c + 1, 1):reshape({ 1, 1, D }) + oe.randn({ 1, 4, D }) * 0.3)
    fb:set_slice(1, i, pb:narrow(1, c + 1, 1):reshape({ 1, 1, D }) + oe.randn({ 1, 3, D }) * 0.3)
    la[i], lb[i] = 1 + (i % 4), 1 + (i % 3)
  end
  return oe.data.FeatureSet(fa, la), oe.data.FeatureSet(fb, lb)
end

local function small_model(D)
  local m = oe.OneEncoder({ d = 16, ff = 32 })
  m:add_modality("image", { input_dim = D })
  m:add_modality("text", { input_dim = D })
  return m
end

local function weights_bytes(m)
  local parts = {}
  for _, p in ipairs(m:named_parameters()) do parts[#parts + 1] = p[1] .. "=" .. p[2]:to_bytes() end
  return table.concat(parts, "|")
end

describe("feed_forward (chunked, checkpointed)", function()
  it("matches finite differences with dropout and several chunks", function()
    local x = gc.uniform({ 2, 5, 6 }, -1, 1, 11)
    local w1, b1 = gc.uniform({ 7, 6 }, -0.5, 0.5, 12), gc.uniform({ 7 }, -0.5, 0.5, 13)
    local w2, b2 = gc.uniform({ 6, 7 }, -0.5, 0.5, 14), gc.uniform({ 6 }, -0.5, 0.5, 15)
    local ok, msg = gc.check(function(a, p1, q1, p2, q2)
      oe.manual_seed(99) -- same dropout draws at every evaluation
      return oe.F.feed_forward(a, p1, q1, p2, q2, 0.3, true, 3)
    end, { x, w1, b1, w2, b2 }, { seed = 7, h = 1e-3 })
    assert(ok, msg)
  end)

  it("equals the unfused relu-dropout path draw for draw", function()
    local x = oe.randn({ 3, 4, 6 })
    local l1, l2 = oe.nn.Linear(6, 10), oe.nn.Linear(10, 6)
    oe.manual_seed(4)
    local a = oe.F.feed_forward(x, l1.weight, l1.bias, l2.weight, l2.bias, 0.25, true, 5)
    oe.manual_seed(4)
    local b = l2(oe.F.relu_dropout(l1(x), 0.25, true))
    -- chunks of 5 + 5 + 2 rows against 12 rows: other GEMM shapes, so other summation orders.
    -- Per output, sums of 6 (+ bias) then 10 (+ bias) products: tolerance (7 + 11) u times
    -- sum |h_j w2_kj| + |b2_k|, with |h_j| at most (|x| |W1|^T + |b1|) / 0.75 (the dropout scale).
    -- A different dropout decision moves an output by a whole |h_j w2_kj|, far above this.
    oe.no_grad(function()
      local habs = (x:abs():matmul(l1.weight:abs():t()) + l1.bias:abs()) / 0.75
      local scale = habs:matmul(l2.weight:abs():t()) + l2.bias:abs()
      H.allclose(a, b, core.totable((scale * (18 * H.U32)):reshape({ -1 })), "feed_forward")
    end)
  end)
end)

describe("trainers", function()
  it("step 1 learns, logs every epoch and keeps the best checkpoint", function()
    local A, B = toy_sets(96, 12)
    local m = small_model(12)
    local dir = tmpdir()
    local res = oe.train.align(m, { a = { name = "image", set = A }, b = { name = "text", set = B }, epochs = 4,
      batch_size = 16, checkpoint_dir = dir, log_path = dir .. "/log.jsonl", progress = false, seed = 1 })
    assert.are.equal(4, res.epochs)
    assert.is_true(res.history[4].train_loss < res.history[1].train_loss)
    local lines = 0
    for line in io.lines(dir .. "/log.jsonl") do
      lines = lines + 1
      assert.truthy(line:match('"epoch":' .. lines))
      assert.truthy(line:match('"val_loss":'))
      assert.truthy(line:match('"val_r1":'))
    end
    assert.are.equal(4, lines)
    assert.truthy(io.open(dir .. "/best.safetensors"))
  end)

  it("a killed run resumes to the same weights as an uninterrupted one", function()
    local A, B = toy_sets(64, 8)
    local opts = function(dir, on_epoch)
      return { a = { name = "image", set = A }, b = { name = "text", set = B }, epochs = 4, batch_size = 16,
        checkpoint_dir = dir, progress = false, seed = 3, on_epoch = on_epoch, early_stopping = false }
    end
    oe.manual_seed(0)
    local full = small_model(8)
    oe.train.align(full, opts(tmpdir()))
    -- same command, killed after epoch 2, then run again
    local dir = tmpdir()
    oe.manual_seed(0)
    local m1 = small_model(8)
    local ok, err = pcall(oe.train.align, m1, opts(dir, function(rec) if rec.epoch == 2 then error("killed") end end))
    assert.is_false(ok)
    assert.truthy(tostring(err):match("killed"))
    oe.manual_seed(0)
    local m2 = small_model(8)
    local res = oe.train.align(m2, opts(dir))
    assert.are.equal(4, res.epochs)
    assert.are.equal(2, #res.history) -- only epochs 3 and 4 ran again
    assert.are.equal(weights_bytes(full), weights_bytes(m2))
  end)

  it("a finished run is not trained again", function()
    local A, B = toy_sets(48, 8)
    local dir = tmpdir()
    local o = { a = { name = "image", set = A }, b = { name = "text", set = B }, epochs = 2, batch_size = 16,
      checkpoint_dir = dir, progress = false }
    oe.manual_seed(0)
    local m = small_model(8)
    oe.train.align(m, o)
    local before = weights_bytes(m)
    oe.manual_seed(0)
    local m2 = small_model(8)
    local res = oe.train.align(m2, o)
    assert.are.equal(0, #res.history)
    assert.are.equal(before, weights_bytes(m2))
  end)

  it("step 2 trains only the new parts and leaves earlier embeddings bit-identical", function()
    local A, B = toy_sets(64, 8)
    oe.manual_seed(0)
    local m = small_model(8)
    oe.train.align(m, { a = { name = "image", set = A }, b = { name = "text", set = B }, epochs = 1, batch_size = 16, progress = false })
    m:eval()
    local x = B:batch({ 1, 2, 3 })
    local before = m:embed("text", x):to_bytes()
    local frozen = {}
    for _, p in ipairs(m:named_parameters()) do frozen[p[1]] = p[2]:to_bytes() end
    m:train()
    m:freeze()
    m:add_modality("audio", { input_dim = 8 })
    local C = toy_sets(64, 8, 9)
    local res = oe.train.extend(m, { a = { name = "audio", set = C }, b = { name = "text", set = B }, epochs = 2,
      batch_size = 16, progress = false })
    assert.are.equal(2, res.epochs)
    m:eval()
    assert.are.equal(before, m:embed("text", x):to_bytes())
    -- every step-1 parameter is unchanged and frozen; only the audio parts train
    local n_frozen = 0
    for _, p in ipairs(m:named_parameters()) do
      if frozen[p[1]] then
        n_frozen = n_frozen + 1
        assert.are.equal(frozen[p[1]], p[2]:to_bytes())
        assert.is_false(p[2].requires_grad)
      else
        assert.truthy(p[1]:match("^audio_"))
        assert.is_true(p[2].requires_grad)
      end
    end
    assert.is_true(n_frozen > 20)
  end)

  it("group_by_length: batches of neighbouring lengths, every pair once, a partial batch last", function()
    -- 1,000 pairs, distinct lengths: item i of the a side has length len[i], a permutation of 1..1000
    local NB, n = 8, 1000
    local gen0 = oe.Generator(3)
    local len = gen0:permutation(n)
    local pairs_list = {}
    for i = 1, n do pairs_list[i] = { i, i } end
    local order = gen0:permutation(n)
    local out = oe.train._length_grouped(order, pairs_list, len, NB, oe.Generator(4))
    assert.are.equal(n, #out)
    local seen = {}
    for _, k in ipairs(out) do assert.is_nil(seen[k]); seen[k] = true end
    -- runs of 400 pairs (50 batches): each full batch holds NB consecutive ranks of its run's lengths
    local per_run = 50 * NB
    for s0 = 1, n, per_run do
      local run_n = math.min(per_run, n - s0 + 1)
      local sorted = {}
      for i = s0, s0 + run_n - 1 do sorted[#sorted + 1] = len[out[i]] end
      table.sort(sorted)
      local rank = {}
      for r, v in ipairs(sorted) do rank[v] = r end
      local full = run_n // NB
      local starts = {}
      for b = 0, full - 1 do
        local lo, hi = math.huge, -math.huge
        for i = s0 + b * NB, s0 + b * NB + NB - 1 do
          lo, hi = math.min(lo, rank[len[out[i]]]), math.max(hi, rank[len[out[i]]])
        end
        assert.are.equal(NB - 1, hi - lo)
        assert.are.equal(1, (lo - 1) % NB + 1) -- aligned to the sorted run's batches
        starts[#starts + 1] = lo
      end
      -- the batches are not left in sorted order (the run's 50 batches are shuffled)
      if full > 2 then
        local ascending = true
        for b = 2, #starts do if starts[b] < starts[b - 1] then ascending = false end end
        assert.is_false(ascending)
      end
      -- the partial batch (only in the last run) holds the run's longest items
      for i = s0 + full * NB, s0 + run_n - 1 do assert.is_true(rank[len[out[i]]] > full * NB) end
    end
    -- the same generators give the same order
    local again = oe.train._length_grouped(order, pairs_list, len, NB, oe.Generator(4))
    assert.are.same(out, again)
  end)

  it("group_by_length trains: fewer padded positions per batch, the loss falls", function()
    local A, B = toy_sets(96, 8)
    local m = small_model(8)
    local padded = { [false] = 0, [true] = 0 }
    local res
    for _, g in ipairs({ false, true }) do
      local orig = A.batch
      A.batch = function(self, ids)
        local x, l = orig(self, ids)
        local lmax = 0
        for _, v in ipairs(l) do lmax = math.max(lmax, v) end
        for _, v in ipairs(l) do padded[g] = padded[g] + (lmax - v) end
        return x, l
      end
      oe.manual_seed(0)
      m = small_model(8)
      res = oe.train.align(m, { a = { name = "image", set = A }, b = { name = "text", set = B }, epochs = 3, batch_size = 16,
        progress = false, group_by_length = g, seed = 7 })
      A.batch = orig
    end
    assert.is_true(padded[true] < padded[false] / 2, string.format("padding %d grouped vs %d", padded[true], padded[false]))
    assert.is_true(res.history[3].train_loss < res.history[1].train_loss)
  end)

  it("drop-duplicates keeps pairs that share an item from being negatives", function()
    local ea = oe.F.normalize(oe.tensor({ { 1, 0 }, { 1, 0 }, { 0, 1 } }))
    local eb = oe.F.normalize(oe.tensor({ { 1, 0.1 }, { 1, -0.1 }, { 0, 1 } }))
    local plain = oe.train.clip_loss(ea, eb, 10):item()
    local mask = oe.zeros({ 3, 3 }, "uint8")
    mask:set(1, 1, 2); mask:set(1, 2, 1)
    local dedup = oe.train.clip_loss(ea, eb, 10, mask):item()
    assert.is_true(dedup < plain)
    -- hand value: with rows 1 and 2 unable to see each other, every row's logits are {s_ii, s_i3}
    local s = 10 * (1 / math.sqrt(1.01))
    local row12 = math.log(math.exp(s) + math.exp(0)) - s
    local row3 = math.log(math.exp(10) + 2 * math.exp(10 * 0.1 / math.sqrt(1.01))) - 10
    local col3 = math.log(math.exp(10) + 2 * math.exp(0)) - 10
    local expected = ((2 * row12 + row3) / 3 + (2 * row12 + col3) / 3) / 2
    assert.is_true(math.abs(dedup - expected) < 1e-5)
  end)

  it("validation R@1 counts a shared partner item as a hit", function()
    -- rows 1 and 2 share caption item 7 (identical embeddings); row 3 has its own
    local ea = oe.tensor({ { 1, 0 }, { 1, 0 }, { 0, 1 } })
    local eb = oe.tensor({ { 1, 0 }, { 1, 0 }, { 0.6, 0.8 } })
    -- row 2's best match is row 1 (ties go to the lower index): a hit only through the shared item
    assert.are.equal(1, oe.train.rank1(ea, eb, { 7, 7, 9 }))
    assert.are.equal(2 / 3, oe.train.rank1(ea, eb))
    assert.are.equal(2 / 3, oe.train.rank1(ea, eb, { 7, 8, 9 }))
  end)

  it("gives clear errors for bad input", function()
    local A, B = toy_sets(32, 8)
    local m = small_model(8)
    local ok, err = pcall(oe.train.align, m, { a = { name = "audio", set = A }, b = { name = "text", set = B }, progress = false })
    assert.truthy(tostring(err):match("unknown modality 'audio'"))
    local C = oe.data.FeatureSet(oe.randn({ 32, 2, 5 }))
    ok, err = pcall(oe.train.align, m, { a = { name = "image", set = C }, b = { name = "text", set = B }, progress = false })
    assert.truthy(tostring(err):match("feature dims"))
    ok, err = pcall(oe.data.FeatureSet, oe.zeros({ 0, 2, 5 }))
    assert.truthy(tostring(err):match("empty"))
    local bad = oe.randn({ 4, 2, 5 })
    bad:set(0 / 0, 1, 1, 1)
    ok, err = pcall(oe.data.FeatureSet, bad)
    assert.truthy(tostring(err):match("NaN"))
    ok, err = pcall(oe.data.FeatureSet, oe.randn({ 2, 3, 5 }), { 1, 4 })
    assert.truthy(tostring(err):match("length 4 of item 2"))
    m:freeze()
    ok, err = pcall(oe.train.align, m, { a = { name = "image", set = A }, b = { name = "text", set = B }, progress = false })
    assert.truthy(tostring(err):match("frozen"))
  end)

  it("draws from its own generator: the global stream is neither reseeded nor used", function()
    local A, B = toy_sets(48, 8)
    local base = small_model(8)
    local init = {}
    for k, t in pairs(base:state_dict()) do init[k] = t:clone() end
    local function fresh() local m = small_model(8); m:load_state_dict(init); return m end
    local function opts(extra)
      local o = { a = { name = "image", set = A }, b = { name = "text", set = B }, epochs = 2, batch_size = 16,
        progress = false, early_stopping = false }
      for k, v in pairs(extra or {}) do o[k] = v end
      return o
    end
    -- opts.generator: the global stream's position is the same before and after
    oe.manual_seed(11)
    local g = oe.Generator(3)
    local m1 = fresh()
    local before = oe.get_rng_state()
    local dir = tmpdir()
    oe.train.align(m1, opts({ generator = g, checkpoint_dir = dir }))
    assert.are.same(before, oe.get_rng_state())
    -- the checkpoint holds the generator's state, and the generator moved (split, shuffles, dropout)
    local _, meta = oe.load_header(dir .. "/last.safetensors")
    local st = g:state()
    assert.are.equal(string.format("seed=%d;counter=%d", st[1], st[2]), meta.rng)
    assert.are.equal(oe.Generator(3):state()[1], st[1])
    assert.is_true(st[2] > 2 * 48)
    -- the same generator seed as opts.seed: the same run, bit for bit
    local m2 = fresh()
    oe.train.align(m2, opts({ seed = 3 }))
    assert.are.equal(weights_bytes(m1), weights_bytes(m2))
    -- the model's dropout went back to the global stream afterwards
    for _, mod in ipairs(m1:modules()) do assert.is_nil(rawget(mod, "generator")) end
    -- no seed: the user's seeding decides, and consecutive runs do not share their draws
    oe.manual_seed(42)
    local r1 = fresh(); oe.train.align(r1, opts())
    local r2 = fresh(); oe.train.align(r2, opts())
    oe.manual_seed(42)
    local r3 = fresh(); oe.train.align(r3, opts())
    oe.manual_seed(43)
    local r4 = fresh(); oe.train.align(r4, opts())
    assert.are_not.equal(weights_bytes(r1), weights_bytes(r2))
    assert.are.equal(weights_bytes(r1), weights_bytes(r3))
    assert.are_not.equal(weights_bytes(r1), weights_bytes(r4))
    local ok, err = pcall(oe.train.align, fresh(), opts({ generator = 3 }))
    assert.is_false(ok)
    assert.truthy(tostring(err):find("train: opts.generator must be an oe.Generator", 1, true))
  end)

  it("a run given a generator resumes bit-identically whatever generator the restart passes", function()
    local A, B = toy_sets(64, 8)
    local opts = function(dir, gen, on_epoch)
      return { a = { name = "image", set = A }, b = { name = "text", set = B }, epochs = 3, batch_size = 16,
        checkpoint_dir = dir, progress = false, generator = gen, on_epoch = on_epoch, early_stopping = false }
    end
    oe.manual_seed(0)
    local full = small_model(8)
    oe.train.align(full, opts(tmpdir(), oe.Generator(17)))
    local dir = tmpdir()
    oe.manual_seed(0)
    local m1 = small_model(8)
    local ok = pcall(oe.train.align, m1, opts(dir, oe.Generator(17), function(rec) if rec.epoch == 1 then error("killed") end end))
    assert.is_false(ok)
    oe.manual_seed(0)
    local m2 = small_model(8)
    local res = oe.train.align(m2, opts(dir, oe.Generator(999)))  -- split and position come from the checkpoint
    assert.are.equal(2, #res.history)
    assert.are.equal(weights_bytes(full), weights_bytes(m2))
  end)

  it("removes the temporary files of killed saves whose writer is gone, and nothing else", function()
    local A, B = toy_sets(32, 8)
    local dir = tmpdir()
    -- a process id that has just ended, and one that is alive (this process's parent shell's init: 1)
    local p = io.popen("sh -c 'echo $$'"); local dead = tonumber(p:read("a")); p:close()
    assert.is_false(core.pid_alive(dead))
    assert.is_true(core.pid_alive(1))
    local names = {
      stale = { "last.safetensors.tmp." .. dead .. ".0badf00d", "best.safetensors.tmp." .. dead .. ".00000001" },
      kept = { "last.safetensors.tmp.1.deadbeef",              -- a live writer
        "notes.txt.tmp." .. dead .. ".0badf00d",                 -- not a checkpoint's temporary
        "last.safetensors.tmp.x", "mine.safetensors" },
    }
    for _, list in pairs(names) do
      for _, n in ipairs(list) do local f = assert(io.open(dir .. "/" .. n, "wb")); f:write(string.rep("x", 100)); f:close() end
    end
    oe.train.align(small_model(8), { a = { name = "image", set = A }, b = { name = "text", set = B }, epochs = 1,
      batch_size = 16, checkpoint_dir = dir, progress = false })
    local present = {}
    for _, n in ipairs(core.fs_listdir(dir)) do present[n] = true end
    for _, n in ipairs(names.stale) do assert.is_nil(present[n], n .. " was left") end
    for _, n in ipairs(names.kept) do assert.is_true(present[n], n .. " was removed") end
  end)

  it("keeps every finished epoch's log line when a resume is killed while it trims the log", function()
    local A, B = toy_sets(48, 8)
    local dir = tmpdir()
    local log = dir .. "/log.jsonl"
    local o = { a = { name = "image", set = A }, b = { name = "text", set = B }, epochs = 3, batch_size = 16,
      checkpoint_dir = dir, log_path = log, progress = false, early_stopping = false }
    local function epochs_logged()
      local out = {}
      for line in io.lines(log) do out[#out + 1] = math.tointeger(tonumber(line:match('"epoch":(%d+)'))) end
      return out
    end
    oe.manual_seed(0)
    o.on_epoch = function(rec) if rec.epoch == 2 then error("killed") end end
    assert.is_false(pcall(oe.train.align, small_model(8), o))
    o.on_epoch = nil
    -- a line written after the last checkpoint (killed between the two): the resume must drop it
    local f = assert(io.open(log, "a")); f:write('{"epoch":3,"stage":"lost"}\n'); f:close()
    assert.are.same({ 1, 2, 3 }, epochs_logged())
    -- a kill during any write to the log (or a file beside it) while the resume trims it:
    -- io.open'ed writes die at their first write, core.write_file_atomic before its rename
    local real_open, real_atomic = io.open, core.write_file_atomic
    if real_atomic then core.write_file_atomic = function(path) error("killed while writing " .. path) end end
    io.open = function(path, mode, ...)
      local fh, err = real_open(path, mode, ...)
      if fh and type(path) == "string" and path:sub(1, #log) == log and mode and mode:match("[wa]") then
        return setmetatable({}, { __index = function(_, k)
          if k == "write" then return function() error("killed while writing " .. path) end end
          return function(_, ...) return fh[k](fh, ...) end
        end })
      end
      return fh, err
    end
    local ok, err = pcall(oe.train.align, small_model(8), o)
    io.open, core.write_file_atomic = real_open, real_atomic
    assert.is_false(ok)
    assert.truthy(tostring(err):match("killed while writing"), tostring(err))
    local kept = epochs_logged()
    assert.are.equal(1, kept[1])
    assert.are.equal(2, kept[2])
    -- the restart then trims the extra line and logs epoch 3 once
    oe.train.align(small_model(8), o)
    assert.are.same({ 1, 2, 3 }, epochs_logged())
  end)

  it("stops on a NaN loss without saving over the last good checkpoint", function()
    local A, B = toy_sets(32, 8)
    local m = small_model(8)
    local dir = tmpdir()
    local o = { a = { name = "image", set = A }, b = { name = "text", set = B }, epochs = 1, batch_size = 16,
      checkpoint_dir = dir, progress = false }
    oe.train.align(m, o)
    local f = assert(io.open(dir .. "/last.safetensors", "rb")); local good = f:read("a"); f:close()
    -- poison a weight, train again with one more epoch
    local w = m.image_encoder.projection_head.linear_layer1.weight
    oe.no_grad(function() w:set(0 / 0, 1, 1) end)
    o.epochs = 2
    o.resume = false
    local ok, err = pcall(oe.train.align, m, o)
    assert.is_false(ok)
    assert.truthy(tostring(err):match("loss is .*nan.* at epoch 1, batch 1") or tostring(err):match("loss is"))
    f = assert(io.open(dir .. "/last.safetensors", "rb")); local now = f:read("a"); f:close()
    assert.are.equal(good, now)
  end)
end)
