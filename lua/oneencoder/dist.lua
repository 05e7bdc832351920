-- dist.lua: oe.dist, data-parallel communication between processes over MPI (Open MPI).
--   mpirun -np 4 lua5.4 script.lua          -- every process runs the same script
--   oe.dist.init()                           -- the one line; oe.train.* then run data-parallel
--   oe.dist.rank(), oe.dist.size()           -- 0 and 1 before init (a plain single process)
--   oe.dist.all_reduce(t, "sum" | "mean" | "max" | "min")   in place, returns t
--   oe.dist.all_gather(t) -> every rank's t concatenated along dim 1, in rank order
--                           (first dims may differ between ranks)
--   oe.dist.broadcast(t, root = 0)           in place, returns t
--   oe.dist.barrier(), oe.dist.finalize()    finalize also runs when the Lua state closes
-- The MPI part is an optional module (oneencoder/dist_mpi.so, built only where Open MPI's
-- headers are installed) loaded by init(); oe.dist.available() says whether it is there.
-- Collectives wait by polling with a deadline (init{timeout = seconds}, default 600): a rank
-- killed ends the job through mpirun; a rank that leaves early (its script failed) or hangs
-- makes the others' collective fail with a message naming it; a failed collective raises
-- an error, and the job is then aborted when the Lua state closes (the collective is still
-- pending inside MPI, so MPI cannot be finalised cleanly). finalize() waits for every rank
-- without a deadline (rank 0 may still be evaluating after the others are done).
-- Helpers used by the trainers (also usable by scripts): split_rows, gather_rows,
-- gather_with_grad, reduce_scatter, all_reduce_list, broadcast_string, broadcast_numbers,
-- all_reduce_numbers, all_gather_numbers, abort.
local core = require "oneencoder.core"
local A = require "oneencoder.autograd"

local D = {}
local mpi, load_error -- the C module once loaded; why it could not be

local function backend()
  if mpi then return mpi end
  if load_error then return nil, load_error end
  local ok, m = pcall(require, "oneencoder.dist_mpi")
  if ok then mpi = m else load_error = tostring(m) end
  return mpi, load_error
end

-- available() -> true, or false and the reason (the module is missing or does not load)
function D.available()
  local m, err = backend()
  if m then return true end
  return false, err
end

function D.is_initialized() return mpi ~= nil and mpi.initialized() end
function D.rank() return D.is_initialized() and mpi.rank() or 0 end
function D.size() return D.is_initialized() and mpi.size() or 1 end

local function need(fn)
  if not D.is_initialized() then error("oe.dist." .. fn .. ": oe.dist.init() was not called (or finalize() was)", 3) end
end

-- a failed collective: raise (the message names the rank; the job cannot continue)
local function check(ok, err)
  if ok == nil then error(tostring(err), 3) end
  return ok
end

-- closes MPI when the Lua state closes (end of the script, or an error that ends it): the
-- exit barrier with every rank, or an abort of the whole job when that cannot be done
local exit_hook = setmetatable({}, { __gc = function()
  if mpi and mpi.initialized() then
    local ok, err = mpi.finalize()
    if not ok then
      pcall(function() io.stderr:write(string.format("oe.dist (rank %d): %s; aborting the job\n", mpi.rank(), err)) end)
      mpi.abort(1)
    end
  end
end })
D._exit_hook = exit_hook -- kept alive by the module table until the state closes

-- init{timeout = seconds (600; 0: no deadline)} -> rank, size. Outside mpirun: one rank.
function D.init(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("oe.dist.init: opts must be a table or nil", 2) end
  local timeout = opts.timeout or 600
  if type(timeout) ~= "number" or timeout < 0 then error("oe.dist.init: timeout must be a number of seconds >= 0", 2) end
  local m, err = backend()
  if not m then
    error("oe.dist.init: this build has no MPI support (the module oneencoder.dist_mpi did not load: "
      .. tostring(err):gsub("\n.*", "") .. "); install Open MPI (apt-get install libopenmpi-dev openmpi-bin) and rebuild with make", 2)
  end
  local rank, size = m.init(timeout)
  if not rank then error("oe.dist.init: " .. tostring(size), 2) end
  return rank, size
end

-- finalize(): every rank reaches it, then MPI ends (no collective afterwards)
function D.finalize()
  if not (mpi and mpi.initialized()) then return true end
  local ok, err = mpi.finalize()
  if not ok then error("oe.dist.finalize: " .. tostring(err), 2) end
  return true
end

-- abort(message): message on stderr, then every process of the job ends (MPI_Abort)
function D.abort(message)
  if message then io.stderr:write(string.format("oe.dist (rank %d): %s\n", D.rank(), tostring(message))) end
  io.stderr:flush()
  if mpi and mpi.initialized() then mpi.abort(1) end
  os.exit(1)
end

function D.set_timeout(seconds) need("set_timeout"); mpi.set_timeout(seconds) end

function D.barrier()
  need("barrier")
  check(mpi.barrier())
end

local function check_inplace(t, fn)
  if not core.is_tensor(t) then error("oe.dist." .. fn .. ": argument 'tensor' must be a tensor", 3) end
  local a = core.rawattrs(t)
  if A.is_grad_enabled() and a and a.requires_grad then
    error("oe.dist." .. fn .. ": in-place change of a tensor that requires grad; wrap it in oe.no_grad or use detach()", 3)
  end
end

-- all_reduce(t, op = "sum"): "mean" divides the sum by size() (float32 only)
function D.all_reduce(t, op)
  need("all_reduce")
  check_inplace(t, "all_reduce")
  op = op or "sum"
  if op == "mean" then
    if core.dtype(t) ~= "float32" then error("oe.dist.all_reduce: mean needs a float32 tensor, got " .. core.dtype(t), 2) end
    check(mpi.all_reduce_(t, "sum"))
    return core.mul_(t, 1 / mpi.size())
  end
  return check(mpi.all_reduce_(t, op))
end

function D.broadcast(t, root)
  need("broadcast")
  check_inplace(t, "broadcast")
  return check(mpi.broadcast_(t, root or 0))
end

-- split_rows(n, size) -> {rows per rank}: contiguous shares, the first n % size ranks one more
function D.split_rows(n, size)
  size = size or D.size()
  local rows, base, extra = {}, n // size, n % size
  for r = 1, size do rows[r] = base + (r <= extra and 1 or 0) end
  return rows
end

-- gather_rows(t, rows) -> (sum rows, ...): every rank's t (rows[rank + 1] first-dim rows) in rank
-- order; no gradient
function D.gather_rows(t, rows)
  need("all_gather")
  local s = core.shape(t)
  local total = 0
  for _, r in ipairs(rows) do total = total + r end
  s[1] = total
  local out = core.zeros(s, core.dtype(t))
  return check(mpi.all_gather_into(t, out, rows))
end

function D.all_gather(t)
  need("all_gather")
  if not core.is_tensor(t) then error("oe.dist.all_gather: argument 'tensor' must be a tensor", 2) end
  if core.dim(t) == 0 then t = core.reshape(t, { 1 }) end
  local counts = check(mpi.all_gather_numbers({ core.shape(t)[1] }))
  local rows = {}
  for r, c in ipairs(counts) do rows[r] = math.tointeger(c[1]) end
  return D.gather_rows(t, rows)
end

-- reduce_scatter(t (sum rows, ...), rows) -> (rows[rank + 1], ...): this rank's block of the
-- element-wise sum of every rank's t
function D.reduce_scatter(t, rows)
  need("reduce_scatter")
  local s = core.shape(t)
  s[1] = rows[mpi.rank() + 1]
  local out = core.zeros(s, "float32")
  return check(mpi.reduce_scatter_into(t, out, rows))
end

-- gather_with_grad(t (rows[rank + 1], ...), rows, mode) -> (sum rows, ...) recorded for autograd:
--   mode "local": the gradient reaching this rank's block goes to t, the other blocks' is
--                 dropped (OpenCLIP's gather_with_grad = false with the local block replaced);
--   mode "sum":   the gradient of every rank's copy is summed (reduce-scatter) and this rank's
--                 block goes to t (OpenCLIP's gather_with_grad = true; every rank must run
--                 backward through it, in the same order)
function D.gather_with_grad(t, rows, mode)
  local out = D.gather_rows(t, rows)
  local me = mpi.rank()
  local off = 0
  for r = 1, me do off = off + rows[r] end
  local n = rows[me + 1]
  if mode == "sum" then
    return A.record(out, function(g) return D.reduce_scatter(g, rows) end, t)
  elseif mode == "local" then
    return A.record(out, function(g) return core.clone(core.narrow(g, 1, off + 1, n)) end, t)
  end
  error("oe.dist.gather_with_grad: mode must be \"local\" or \"sum\", got " .. tostring(mode), 2)
end

-- all_reduce_list({float32 t...}, op = "sum", bucket_floats = 4 Mi): every tensor reduced in
-- place, packed into buckets of at most bucket_floats floats
function D.all_reduce_list(list, op, bucket_floats)
  need("all_reduce_list")
  return check(mpi.all_reduce_list_(list, op or "sum", bucket_floats))
end

-- broadcast_string(s, root = 0) -> root's s on every rank (others pass nil)
function D.broadcast_string(s, root)
  need("broadcast_string")
  return check(mpi.broadcast_string(s, root or 0))
end

-- broadcast_numbers({x...}, root = 0) -> root's list of numbers (doubles: exact for Lua floats
-- and integers up to 2^53) on every rank
function D.broadcast_numbers(list, root)
  need("broadcast_numbers")
  root = root or 0
  local packed
  if mpi.rank() == root then
    local parts = {}
    for i, x in ipairs(list) do parts[i] = string.pack("<d", x) end
    packed = table.concat(parts)
  end
  packed = D.broadcast_string(packed, root)
  local out = {}
  for i = 1, #packed // 8 do out[i] = (string.unpack("<d", packed, (i - 1) * 8 + 1)) end
  return out
end

function D.all_reduce_numbers(list, op)
  need("all_reduce_numbers")
  return check(mpi.all_reduce_numbers(list, op or "sum"))
end

-- all_gather_numbers({x...}) -> { {x...} of rank 0, {x...} of rank 1, ... }
function D.all_gather_numbers(list)
  need("all_gather_numbers")
  return check(mpi.all_gather_numbers(list))
end

return D
