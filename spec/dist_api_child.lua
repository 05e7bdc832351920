-- dist_api_child.lua: oe.dist's collectives on exactly 2 ranks against values worked out by
-- hand (spec/dist_spec.lua launches it with `mpirun -np 2`). Any mismatch raises, which ends
-- the job with a non-zero status; each rank prints "rank <r> ok" at the end.
local oe = require "oneencoder"
local core = oe.core
oe.set_num_threads(1)
assert(not oe.dist.is_initialized() and oe.dist.rank() == 0 and oe.dist.size() == 1, "before init: rank 0 of 1")
local rank, size = oe.dist.init({ timeout = 30 })
assert(size == 2 and rank == oe.dist.rank() and size == oe.dist.size(), "init returns rank and size")
local other = 1 - rank

local function same(got, want, what)
  local g = core.totable(core.reshape(got, { -1 }))
  assert(#g == #want, string.format("%s: %d values, expected %d", what, #g, #want))
  for i = 1, #want do
    assert(g[i] == want[i], string.format("%s[%d] on rank %d: got %s, expected %s", what, i, rank, tostring(g[i]), tostring(want[i])))
  end
end
local function raises(f, fragment)
  local ok, msg = pcall(f)
  assert(not ok and tostring(msg):find(fragment, 1, true), string.format("expected an error with %q, got %s", fragment, tostring(msg)))
end

-- all_reduce: rank r holds r + 1 (and 10 (r + 1) in int64)
same(oe.dist.all_reduce(oe.full({ 2, 3 }, rank + 1), "sum"), { 3, 3, 3, 3, 3, 3 }, "sum")
same(oe.dist.all_reduce(oe.full({ 4 }, rank + 1), "mean"), { 1.5, 1.5, 1.5, 1.5 }, "mean")
same(oe.dist.all_reduce(oe.full({ 2 }, rank + 1), "max"), { 2, 2 }, "max")
same(oe.dist.all_reduce(oe.full({ 2 }, rank + 1), "min"), { 1, 1 }, "min")
same(oe.dist.all_reduce(oe.full({ 3 }, 10 * (rank + 1), "int64")), { 30, 30, 30 }, "int64 sum")
raises(function() oe.dist.all_reduce(oe.zeros({ 2 }), "prod") end, 'op must be "sum", "max" or "min"')
raises(function() oe.dist.all_reduce(oe.zeros({ 2 }):requires_grad_()) end, "in-place change of a tensor that requires grad")

-- all_gather: rank 0 sends one row (0, 0), rank 1 two rows (1, 1), (1, 2)
local mine = rank == 0 and oe.tensor({ { 0, 0 } }) or oe.tensor({ { 1, 1 }, { 1, 2 } })
local g = oe.dist.all_gather(mine)
local gs = g:shape()
assert(#gs == 2 and gs[1] == 3 and gs[2] == 2, "all_gather shape")
same(g, { 0, 0, 1, 1, 1, 2 }, "all_gather")
same(oe.dist.all_gather(oe.full({}, rank + 5)), { 5, 6 }, "all_gather of scalars")

-- broadcast from rank 1; strings and numbers from rank 0 (exact doubles)
same(oe.dist.broadcast(oe.full({ 3 }, rank * 7 + 1), 1), { 8, 8, 8 }, "broadcast from 1")
assert(oe.dist.broadcast_string(rank == 0 and "h\0llo" or nil) == "h\0llo", "broadcast_string keeps every byte")
local nums = oe.dist.broadcast_numbers(rank == 0 and { 0.1, -2 ^ 52 - 1, math.huge } or nil)
assert(nums[1] == 0.1 and nums[2] == -2 ^ 52 - 1 and nums[3] == math.huge, "broadcast_numbers exact")
local sums = oe.dist.all_reduce_numbers({ rank + 0.25, 2 * rank }, "sum")
assert(sums[1] == 1.5 and sums[2] == 2, "all_reduce_numbers")
local lists = oe.dist.all_gather_numbers(rank == 0 and { 4 } or { 5, 6 })
assert(#lists == 2 and lists[1][1] == 4 and #lists[1] == 1 and lists[2][1] == 5 and lists[2][2] == 6, "all_gather_numbers")

-- all_reduce_list in buckets of 4 floats over 3 tensors (13 floats: buckets cut inside tensors)
local l = { oe.full({ 5 }, rank + 1), oe.full({ 2, 3 }, 10 * (rank + 1)), oe.full({ 2 }, -rank) }
oe.dist.all_reduce_list(l, "sum", 4)
same(l[1], { 3, 3, 3, 3, 3 }, "bucket list[1]")
same(l[2], { 30, 30, 30, 30, 30, 30 }, "bucket list[2]")
same(l[3], { -1, -1 }, "bucket list[3]")

-- split_rows, reduce_scatter: src (3, 1) = (r + 1) (1, 2, 3); rows {1, 2}
local rows = oe.dist.split_rows(3)
assert(rows[1] == 2 and rows[2] == 1, "split_rows(3) = {2, 1}")
local rs = oe.dist.reduce_scatter(oe.tensor({ { 1 }, { 2 }, { 3 } }) * (rank + 1), { 1, 2 })
same(rs, rank == 0 and { 3 } or { 6, 9 }, "reduce_scatter")

-- gather_with_grad: t = (rows[r], 2) on rank r, loss = sum(G * w_r) with w_r = r + 1 everywhere
for _, mode in ipairs({ "local", "sum" }) do
  local t = oe.full({ rank + 1, 2 }, rank + 1):requires_grad_()
  local G = oe.dist.gather_with_grad(t, { 1, 2 }, mode)
  same(G, { 1, 1, 2, 2, 2, 2 }, "gather_with_grad values")
  local loss = (G * (rank + 1)):sum()
  loss:backward()
  -- local: only this rank's own weights reach t; sum: every rank's weights add up (1 + 2)
  local want = mode == "local" and rank + 1 or 3
  local w = {}
  for i = 1, 2 * (rank + 1) do w[i] = want end
  same(t.grad, w, "gather_with_grad " .. mode .. " gradient")
end

-- the trainer refuses the combination that is not the global batch's gradient
local m = oe.OneEncoder({ d = 8, ff = 16 })
m:add_modality("image", { input_dim = 4 })
m:add_modality("text", { input_dim = 4 })
local set = oe.data.FeatureSet(oe.randn({ 8, 2, 4 }))
raises(function()
  oe.train.align(m, { a = { name = "image", set = set }, b = { name = "text", set = set }, local_loss = true,
    epochs = 1, progress = false, seed = 1 })
end, "local_loss = true needs gather_with_grad = true")

oe.dist.barrier()
print(string.format("rank %d ok", rank))
oe.dist.finalize()
assert(not oe.dist.is_initialized() and oe.dist.rank() == 0, "after finalize: one process again")
