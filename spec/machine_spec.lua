-- machine_spec.lua: the products run on kernels that match the CPU, oe.info says which,
-- and the specs that compare floats across paths hold on every kernel set this CPU can
-- run (the kernels another machine would pick: Haswell is what an AVX2 machine runs,
-- Prescott the generic fallback), which guards the other CPU kind from this one.
local oe = require "oneencoder"
local core = oe.core
local H = require "helpers"

local function level_of(simd) return ({ baseline = 0, avx2 = 1, avx512 = 2 })[simd] end

-- run lua code in a child with the build's paths and extra environment; returns its output
local function child(env, code)
  local f = os.tmpname()
  local h = assert(io.open(f, "w")); h:write(code); h:close()
  local p = io.popen(env .. " " .. H.lua_cmd() .. " " .. f .. " 2>&1")
  local out = p:read("a")
  p:close()
  os.remove(f)
  return out
end

describe("oe.info", function()
  it("names the CPU, the SIMD level of the kernels, the BLAS and its kernels, the threads", function()
    local i = oe.info()
    for _, k in ipairs { "cpu", "simd", "blas", "blas_core", "blas_core_source", "blas_library_core", "build" } do
      assert.equal("string", type(i[k]), k)
      assert.is_true(#i[k] > 0, k)
    end
    assert.truthy(level_of(i.simd), i.simd)
    assert.equal(oe.get_num_threads(), i.threads)
    assert.truthy(i.blas:find("OpenBLAS", 1, true))
  end)

  it("runs kernels at the CPU's level unless the user forced a core", function()
    local i = oe.info()
    if os.getenv("OPENBLAS_CORETYPE") then
      assert.equal("OPENBLAS_CORETYPE", i.blas_core_source)
    else
      -- blas_better_core says nil when a core already matches the CPU's level
      assert.is_nil(core.blas_better_core(i.blas_core, level_of(i.simd), i.cpu:find("AMD", 1, true) ~= nil),
        "OpenBLAS runs " .. i.blas_core .. " on a " .. i.simd .. " CPU")
      assert.truthy(i.blas_core_source == "library" or i.blas_core_source == "cpuid")
    end
  end)
end)

describe("OpenMP wait policy", function()
  -- libgomp reads its policy when core.so loads it; oneencoder/omp_env.so sets
  -- OMP_WAIT_POLICY=passive just before when the machine is busy, unless the user chose
  -- (csrc/bind/omp_env.c says why). OMP_DISPLAY_ENV=verbose makes
  -- libgomp print what it read (GOMP_SPINCOUNT 0 is passive; 300000 its own default)
  local code = [[local oe = require "oneencoder"; local i = oe.info()
    io.write("info=", i.omp_wait_policy, "/", i.omp_wait_policy_source, "\n")]]
  local clean = "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT OMP_DISPLAY_ENV=verbose"
  it("makes idle OpenMP threads sleep on a busy machine unless the user set the policy", function()
    local out = child(clean, code)
    local policy, others, cpus = out:match("info=(%a+)/([%d.]+) other tasks running on (%d+) CPUs")
    assert.truthy(policy, out)
    -- passive when other tasks run on at least half the CPUs at start, libgomp's default else
    if tonumber(others) >= tonumber(cpus) / 2 then
      assert.equal("passive", policy, out)
      assert.truthy(out:find("GOMP_SPINCOUNT = '0'", 1, true), out)
    else
      assert.equal("default", policy, out)
      assert.truthy(out:find("GOMP_SPINCOUNT = '300000'", 1, true), out)
    end
    out = child(clean .. " GOMP_SPINCOUNT=300000", code)
    assert.truthy(out:find("info=default/environment", 1, true), out)
    assert.truthy(out:find("GOMP_SPINCOUNT = '300000'", 1, true), out)
    out = child(clean .. " OMP_WAIT_POLICY=active", code)
    assert.truthy(out:find("info=active/environment", 1, true), out)
    assert.truthy(out:find("OMP_WAIT_POLICY = 'ACTIVE'", 1, true), out)
  end)
end)

describe("BLAS core choice", function()
  it("replaces a generic fallback by the core the features call for, and only then", function()
    local b = core.blas_better_core
    assert.equal("SkylakeX", b("Prescott", 2, false))
    assert.equal("SkylakeX", b("Haswell", 2, false))
    assert.equal("SkylakeX", b("Zen", 2, true))       -- an AVX-512 AMD CPU the library maps to Zen
    assert.equal("Haswell", b("Prescott", 1, false))
    assert.equal("Zen", b("Prescott", 1, true))
    assert.equal("Haswell", b("Sandybridge", 1, false))
    assert.is_nil(b("SkylakeX", 2, false))
    assert.is_nil(b("Cooperlake", 2, false))
    assert.is_nil(b("Zen", 1, true))
    assert.is_nil(b("Haswell", 1, false))
    assert.is_nil(b("Prescott", 0, false))             -- nothing better exists for that CPU
  end)

  it("keeps a core forced with OPENBLAS_CORETYPE and switches at run time on request", function()
    local want = ({ [2] = "SkylakeX", [1] = "Haswell" })[level_of(oe.info().simd)]
    local code = ([[
      local oe = require "oneencoder"
      local i = oe.info()
      io.write(i.blas_core, " ", i.blas_core_source, "\n")
      oe.manual_seed(1)
      local a, b = oe.randn({ 200, 300 }), oe.randn({ 300, 100 })
      local y1 = oe.matmul(a, b)
      if arg_want ~= "" then oe.set_blas_core(arg_want) end
      i = oe.info()
      io.write(i.blas_core, " ", i.blas_core_source, " ", tostring(os.getenv("OPENBLAS_CORETYPE")), "\n")
      local y2 = oe.matmul(a, b)
      local scale = oe.matmul(a:abs(), b:abs())
      -- another kernel sums the 300 products in another order: bound 2 * 300 u sum |a b|
      local bad = ((y1 - y2):abs() - scale * (2 * 300 * 2 ^ -24)):max():item()
      io.write(bad <= 0 and "close" or ("far " .. bad), "\n")
      local ok, err = pcall(oe.set_blas_core, "NoSuchCore")
      io.write(tostring(ok), " ", tostring(err), "\n")
    ]]):gsub("arg_want", string.format("%q", want or ""))
    local out = child("OPENBLAS_CORETYPE=Prescott", code)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal("Prescott OPENBLAS_CORETYPE", lines[1], out)
    if want then
      -- the user's variable is left as it was for child processes
      assert.equal(want .. " oe.set_blas_core Prescott", lines[2], out)
    end
    assert.equal("close", lines[3], out)
    assert.truthy(lines[4]:find("false .*OpenBLAS has no core named 'NoSuchCore'"), out)
  end)
end)

describe("specs comparing floats across paths, on other kernels", function()
  -- each kernel set blocks and orders the sums differently, as another CPU would
  for _, coretype in ipairs { "Haswell", "Prescott" } do
    it("hold with " .. coretype .. " kernels", function()
      if coretype == "Haswell" and level_of(oe.info().simd) < 1 then return end -- cannot run here
      local files = "spec/eval_spec.lua spec/encoders_spec.lua spec/model_spec.lua"
      local run = "OPENBLAS_CORETYPE=" .. coretype .. " " .. H.lua_cmd() .. " /usr/bin/busted -o TAP "
      -- and the convolutions' claim that an item's bits do not depend on its batch (each item's
      -- products have one shape whatever the batch, on any kernel set)
      local p = io.popen(run .. files .. " 2>&1; " .. run .. "--filter='feed_forward' spec/train_spec.lua 2>&1; "
        .. run .. "--filter='same.bits.alone' spec/tfjs_spec.lua 2>&1; "
        .. run .. "--filter='batches.clips' spec/speech_embedding_spec.lua 2>&1")
      local out = p:read("a")
      p:close()
      local ok = select(2, out:gsub("\nok ", "")) + (out:match("^ok ") and 1 or 0)
      local bad = {}
      for l in out:gmatch("not ok [^\n]*") do bad[#bad + 1] = l end
      assert.equal(0, #bad, table.concat(bad, "\n") .. "\n" .. out:sub(1, 3000))
      assert.is_true(ok > 20, "too few specs ran:\n" .. out:sub(1, 2000))
    end)
  end
end)
