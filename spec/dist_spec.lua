-- dist_spec.lua: oe.dist and the data-parallel trainers. The MPI cases run as children under
-- `mpirun --oversubscribe -np 2` (spec/dist_api_child.lua, spec/dist_child.lua), one OpenMP
-- thread per rank; where mpirun or the oneencoder.dist_mpi module is missing they are skipped
-- with the reason shown as pending. The case without MPI always runs.
local oe = require "oneencoder"
local H = require "helpers"
local core = oe.core

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  os.execute("mkdir -p " .. d)
  return d
end

local function lua_env()
  return string.format("LUA_PATH='%s' LUA_CPATH='%s'", package.path, package.cpath)
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- run(cmd) -> ok, output (stdout and stderr), seconds
local function run(cmd, dir)
  local out = dir .. "/out.txt"
  local t0 = core.now()
  local ok = os.execute(cmd .. " > '" .. out .. "' 2>&1")
  return ok == true, read(out) or "", core.now() - t0
end

-- under SANITIZE=1 the ranks get the sanitizer runtime but mpirun itself does not (its own
-- allocations are not ours to check), and the ranks run without leak detection: Open MPI
-- unloads its components in MPI_Finalize, before LeakSanitizer reports, so their leftover
-- allocations come out as leaks from "<unknown module>" that no suppression can name. Memory
-- errors and undefined behaviour are still caught there; leaks of the core are checked by the
-- other specs, in process.
local function sanitizer_args()
  local pre = os.getenv("LD_PRELOAD")
  if not pre or pre == "" then return "", "" end
  local asan = (os.getenv("ASAN_OPTIONS") or ""):gsub("detect_leaks=%d", "")
  return "env -u LD_PRELOAD", string.format("-x LD_PRELOAD='%s' -x ASAN_OPTIONS='%s:detect_leaks=0'", pre, asan)
end

-- mpirun(np, script args, dir) -> ok, output, seconds (a hung job is stopped after 120 s)
local function mpirun(np, args, dir)
  local pre, pass = sanitizer_args()
  return run(string.format("%s %s timeout -k 5 120 mpirun --allow-run-as-root --oversubscribe -np %d %s lua5.4 %s",
    lua_env(), pre, np, pass, args), dir)
end

local function single(args, dir) return run(lua_env() .. " lua5.4 " .. args, dir) end

-- a run's config file (a Lua table constructor)
local function config(dir, name, text)
  local path = dir .. "/" .. name .. ".cfg.lua"
  write(path, "return " .. text)
  return path
end

local function weights(prefix, rank) return assert(oe.load(prefix .. ".rank" .. (rank or 0) .. ".safetensors")) end

local function bytes_equal(a, b)
  for k, t in pairs(a) do
    if not b[k] or t:to_bytes() ~= b[k]:to_bytes() then return false, k end
  end
  for k in pairs(b) do if not a[k] then return false, k end end
  return true
end

describe("oe.dist without MPI", function()
  it("is one process of one until init, and init explains what is missing when the module is not built", function()
    local dir = tmpdir()
    -- a module path holding only the core: what a build without Open MPI's headers gives
    local core_so = package.searchpath("oneencoder.core", package.cpath)
    os.execute(string.format("mkdir -p '%s/oneencoder' && ln -s \"$(realpath '%s')\" '%s/oneencoder/core.so'", dir, core_so, dir))
    write(dir .. "/child.lua", [[
      local oe = require "oneencoder"
      assert(oe.dist.rank() == 0 and oe.dist.size() == 1 and not oe.dist.is_initialized())
      local ok, why = oe.dist.available()
      assert(ok == false and why:find("oneencoder.dist_mpi", 1, true), tostring(why))
      local ok2, msg = pcall(oe.dist.init)
      assert(not ok2 and msg:find("this build has no MPI support", 1, true) and msg:find("libopenmpi-dev", 1, true), msg)
      local ok3, msg3 = pcall(oe.dist.all_reduce, oe.zeros({ 2 }))
      assert(not ok3 and msg3:find("oe.dist.init() was not called", 1, true), msg3)
      print("ok")
    ]])
    local ok, out = run(string.format("LUA_PATH='%s' LUA_CPATH='%s/?.so' lua5.4 %s/child.lua", package.path, dir, dir), dir)
    assert(ok and out:match("ok"), out)
  end)
end)

local have_mpirun = os.execute("command -v mpirun > /dev/null 2>&1") == true
local have_module, module_error = oe.dist.available()
local skip = not have_mpirun and "mpirun is not installed (Debian: openmpi-bin)"
  or not have_module and ("oneencoder.dist_mpi is not built (Debian: libopenmpi-dev, then make): " .. tostring(module_error))

describe("oe.dist over MPI (2 ranks)", function()
  if skip then
    pending("skipped: " .. skip)
    return
  end

  it("all_reduce, all_gather, broadcast, the bucketed reduction and gather_with_grad give the hand-worked values", function()
    local dir = tmpdir()
    local ok, out = mpirun(2, "spec/dist_api_child.lua", dir)
    assert(ok and out:match("rank 0 ok") and out:match("rank 1 ok"), out)
  end)

  -- The trainers over 2 ranks x batch 32 against one process with batch 64 on the same data order
  -- (648 training pairs: 10 global batches of 64 and a remainder of 8 split 4 + 4, 2 epochs, so 22
  -- steps, validation over 72 pairs in batches of 64 and 8; item lengths vary, so a rank's share
  -- pads to other lengths than the whole batch). Dropout 0 (each rank draws its own masks, so with
  -- dropout the runs are equal in distribution only). Bound: the issue's 1e-5 on losses, weights
  -- and the final embeddings; measured about 5e-7 (other GEMM shapes, gradients summed in
  -- another order).
  -- One exception, stated and checked: the key third of in_proj_bias in step 1. Its gradient is
  -- zero in exact arithmetic (adding q.b_k shifts a whole softmax row), so what reaches it is
  -- rounding noise, and AdamW's normalised step turns noise into steps of about lr whatever its
  -- size: the two runs walk it differently (~1e-4) with no effect on any output, which the
  -- embeddings of every item (within 1e-5) show.
  local function compare(single_prefix, dp_prefix, what, key_bias_free)
    local s, p = dofile(single_prefix .. ".lua"), dofile(dp_prefix .. ".lua")
    assert(#s.losses >= 20 and #p.losses == #s.losses, what .. ": " .. #p.losses .. " steps against " .. #s.losses)
    H.near(p.losses, s.losses, 1e-5, what .. " loss per step")
    H.near(p.val, s.val, 1e-5, what .. " validation loss per epoch")
    local ws, wp = weights(single_prefix), weights(dp_prefix)
    local same_ranks, which = bytes_equal(wp, weights(dp_prefix, 1))
    assert(same_ranks, what .. ": rank 1's " .. tostring(which) .. " differs from rank 0's")
    for k, t in pairs(ws) do
      local d = (wp[k] - t):abs()
      if key_bias_free and k:match("self_attn%.in_proj_bias$") then
        local n = core.numel(t) // 3 -- q, k, v stacked: compare q and v only
        d = oe.cat({ d:narrow(1, 1, n), d:narrow(1, 2 * n + 1, n) })
      end
      local worst = d:max():item()
      assert(worst <= 1e-5, string.format("%s: %s differs by %.3g", what, k, worst))
    end
    assert(ws["emb.image"] or ws["emb.audio"], "embeddings saved")
  end

  it("2 ranks x batch 32 equal 1 process x batch 64 in step 1 (both gather variants, learnable temperature)", function()
    local dir = tmpdir()
    local s_cfg = config(dir, "single", string.format([[{ batch = 64, runs = {
      { out = %q }, { out = %q, temperature = "learnable", clip_grad_norm = 0.05 } } }]], dir .. "/s1", dir .. "/s1t"))
    local p_cfg = config(dir, "dp", string.format([[{ batch = 32, dist = true, runs = {
      { out = %q }, { out = %q, local_loss = true, gather_with_grad = true },
      { out = %q, gather_with_grad = true },
      { out = %q, temperature = "learnable", clip_grad_norm = 0.05 } } }]], dir .. "/p1", dir .. "/p1l", dir .. "/p1g", dir .. "/p1t"))
    local ok, out = single("spec/dist_child.lua " .. s_cfg, dir)
    assert(ok, out)
    ok, out = mpirun(2, "spec/dist_child.lua " .. p_cfg, dir)
    assert(ok, out)
    compare(dir .. "/s1", dir .. "/p1", "step 1, whole loss per rank", true)
    compare(dir .. "/s1", dir .. "/p1l", "step 1, local loss + gather_with_grad", true)
    compare(dir .. "/s1", dir .. "/p1g", "step 1, whole loss + gather_with_grad", true)
    -- clipping sees the global gradient norm, so a temperature gradient counted twice would show
    compare(dir .. "/s1t", dir .. "/p1t", "step 1, learnable temperature, clipped", true)
  end)

  it("2 ranks x batch 32 equal 1 process x batch 64 in step 2 (both gather variants)", function()
    local dir = tmpdir()
    local s_cfg = config(dir, "single", string.format("{ batch = 64, stage = 2, out = %q }", dir .. "/s2"))
    local p_cfg = config(dir, "dp", string.format([[{ batch = 32, stage = 2, dist = true, runs = {
      { out = %q }, { out = %q, local_loss = true, gather_with_grad = true } } }]], dir .. "/p2", dir .. "/p2l"))
    local ok, out = single("spec/dist_child.lua " .. s_cfg, dir)
    assert(ok, out)
    ok, out = mpirun(2, "spec/dist_child.lua " .. p_cfg, dir)
    assert(ok, out)
    compare(dir .. "/s2", dir .. "/p2", "step 2, whole loss per rank", false)
    compare(dir .. "/s2", dir .. "/p2l", "step 2, local loss + gather_with_grad", false)
  end)

  -- dropout 0.1 (a stream per rank), checkpoints, 3 epochs of 11 steps
  local function job(dir, name, kill_at)
    return config(dir, name, string.format("{ batch = 32, dist = true, dropout = 0.1, epochs = 3, out = %q, checkpoint_dir = %q%s }",
      dir .. "/" .. name, dir .. "/ck_" .. name, kill_at and string.format(", kill_at = { %d, %d }", kill_at[1], kill_at[2]) or ""))
  end

  it("gives bit-identical weights when the same command runs twice", function()
    local dir = tmpdir()
    for _, name in ipairs({ "a", "b" }) do
      local ok, out = mpirun(2, "spec/dist_child.lua " .. job(dir, name), dir)
      assert(ok, out)
    end
    local same, which = bytes_equal(weights(dir .. "/a"), weights(dir .. "/b"))
    assert(same, "the two runs differ in " .. tostring(which))
    -- the dropout streams are live: a run without dropout ends elsewhere
    local ok, out = mpirun(2, "spec/dist_child.lua " .. config(dir, "c",
      string.format("{ batch = 32, dist = true, dropout = 0, epochs = 3, out = %q }", dir .. "/c")), dir)
    assert(ok, out)
    assert(not bytes_equal(weights(dir .. "/a"), weights(dir .. "/c")), "dropout changed nothing")
  end)

  it("ends the job within 30 s when a rank is killed at a random step, and the same command resumes to the uninterrupted weights", function()
    local dir = tmpdir()
    math.randomseed(os.time())
    local kill_at = { math.random(0, 1), math.random(1, 33) }
    local what = string.format("rank %d killed at step %d", kill_at[1], kill_at[2])
    local ok, out = mpirun(2, "spec/dist_child.lua " .. job(dir, "whole"), dir)
    assert(ok, out)
    ok, out = mpirun(2, "spec/dist_child.lua " .. job(dir, "cut", kill_at), dir)
    local ended = core.now()
    assert(not ok, what .. ": the job did not fail\n" .. out)
    assert(out:find("exited on signal 9", 1, true), what .. ": mpirun's message\n" .. out)
    local killed = dofile(dir .. "/cut.killed")
    assert(ended - killed < 30, string.format("%s: the job ended %.1f s after the kill", what, ended - killed))
    ok, out = mpirun(2, "spec/dist_child.lua " .. job(dir, "cut"), dir) -- the same command
    assert(ok, what .. ": the resumed run failed\n" .. out)
    local same, which = bytes_equal(weights(dir .. "/whole"), weights(dir .. "/cut"))
    assert(same, what .. ": the resumed run differs in " .. tostring(which))
  end)

  it("stops the other rank with a message naming the rank whose script failed, without a hang", function()
    local dir = tmpdir()
    write(dir .. "/fail.lua", [[
      local oe = require "oneencoder"
      local rank = oe.dist.init({ timeout = 60 })
      oe.dist.barrier()
      if rank == 1 then error("rank 1 fails on purpose") end
      oe.dist.all_reduce(oe.zeros({ 4 }))
      print("rank 0 went on")
    ]])
    local ok, out, seconds = mpirun(2, dir .. "/fail.lua", dir)
    assert(not ok, out)
    assert(out:find("rank 1 fails on purpose", 1, true), out)
    assert(out:find("rank 1 left the job (its script ended or failed) while rank 0 waits for it", 1, true), out)
    assert(not out:find("rank 0 went on", 1, true), out)
    assert(seconds < 30, string.format("took %.1f s", seconds))
  end)

  it("waits at the end, past the timeout, for a rank still at work (no collective pending)", function()
    local dir = tmpdir()
    write(dir .. "/late.lua", [[
      local oe = require "oneencoder"
      local rank = oe.dist.init({ timeout = 1 })
      oe.dist.barrier()
      if rank == 0 then os.execute("sleep 3"); print("rank 0 finished its late work") end
    ]])
    local ok, out, seconds = mpirun(2, dir .. "/late.lua", dir)
    assert(ok and out:find("rank 0 finished its late work", 1, true), out)
    assert(seconds >= 3, string.format("took %.1f s", seconds))
  end)

  it("fails a collective after the timeout when a rank hangs, and aborts the job", function()
    local dir = tmpdir()
    write(dir .. "/hang.lua", [[
      local oe = require "oneencoder"
      local rank = oe.dist.init({ timeout = 2 })
      if rank == 1 then os.execute("sleep 20") end
      oe.dist.barrier()
    ]])
    local ok, out, seconds = mpirun(2, dir .. "/hang.lua", dir)
    assert(not ok, out)
    assert(out:find("no answer from the other ranks after 2 s on rank 0", 1, true), out)
    assert(out:find("aborting the job", 1, true), out)
    assert(seconds < 15, string.format("took %.1f s", seconds))
  end)
end)
