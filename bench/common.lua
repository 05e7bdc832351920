-- bench/common.lua: timing helpers shared by the benchmarks.
local core = require "oneencoder.core"
local B = {}

-- median of a list of numbers (sorts it in place); nil when empty
function B.median(t)
  if #t == 0 then return nil end
  table.sort(t)
  return #t % 2 == 1 and t[(#t + 1) // 2] or (t[#t // 2] + t[#t // 2 + 1]) / 2
end

-- the 1-minute load average, or nil where /proc/loadavg cannot be read
function B.load_average()
  local f = io.open("/proc/loadavg")
  if not f then return nil end
  local l = f:read("n")
  f:close()
  return l
end

-- median seconds of fn() over reps runs after one warm-up run
function B.median_time(fn, reps)
  reps = reps or 5
  fn()
  local t = {}
  for i = 1, reps do
    local t0 = core.now()
    fn()
    t[i] = core.now() - t0
  end
  table.sort(t)
  return t[(reps + 1) // 2]
end

function B.report(name, value, fmt)
  print(string.format("%s: " .. (fmt or "%.4g"), name, value))
end

-- run a python script with Debian's torch when available; returns its "name: value" lines as a
-- table. The reference gets the BLAS kernels this process runs (OPENBLAS_CORETYPE = ours), so both
-- sides multiply with the same kernels.
function B.python(script, args)
  local ok = os.execute("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1")
  if not ok then return nil end
  local core_name = core.info().blas_core
  return B.figures(string.format("OPENBLAS_CORETYPE=%s /usr/bin/python3 %s %s 2>/dev/null", core_name, script, args or ""))
end

-- figures(cmd, echo) -> {name = number}: runs cmd and reads its `name: value` lines (echoing
-- every line when echo is true)
function B.figures(cmd, echo)
  local p = io.popen(cmd)
  local out = {}
  for line in p:lines() do
    if echo then print(line) end
    local k, v = line:match("^([%w_]+):%s*([%d%.eE+-]+)")
    if k then out[k] = tonumber(v) end
  end
  p:close()
  return out
end

-- print_machine(info): the CPU, the BLAS kernels, OpenMP's wait policy (children inherit it)
-- and the load average, so figures from different machines or loads are never mixed
function B.print_machine(info)
  print("cpu: " .. tostring(info.cpu) .. ", blas_core: " .. tostring(info.blas_core) .. ", OMP_WAIT_POLICY: "
    .. (os.getenv("OMP_WAIT_POLICY") or "unset") .. " (the reference inherits it)")
  local f = io.open("/proc/loadavg")
  if f then print("load average at start: " .. f:read("l")); f:close() end
end

-- interleaved(ours, reference, rounds): the machine is shared and noisy, so alternate
-- `rounds` times between ours() (returns a list of seconds) and reference() (a list too, or
-- nil when unavailable); returns the medians of all samples of each (reference nil if none)
function B.interleaved(ours, reference, rounds)
  local a, b = {}, {}
  for _ = 1, rounds or 3 do
    for _, t in ipairs(ours()) do a[#a + 1] = t end
    local r = reference and reference()
    if r then for _, t in ipairs(r) do b[#b + 1] = t end end
  end
  return B.median(a), B.median(b), #a, #b
end

-- samples(fn, n): n timed runs of fn (no warm-up), as a list of seconds
function B.samples(fn, n)
  local t = {}
  for i = 1, n do
    local t0 = core.now()
    fn()
    t[i] = core.now() - t0
  end
  return t
end

return B
