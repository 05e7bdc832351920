-- bench/common.lua: timing helpers shared by the benchmarks.
local core = require "oneencoder.core"
local B = {}

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

-- run a python script with Debian's torch when available; returns its "name: value" lines as a table
function B.python(script, args)
  local ok = os.execute("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1")
  if not ok then return nil end
  local p = io.popen("/usr/bin/python3 " .. script .. " " .. (args or "") .. " 2>/dev/null")
  local out = {}
  for line in p:lines() do
    local k, v = line:match("^([%w_]+):%s*([%d%.eE+-]+)")
    if k then out[k] = tonumber(v) end
  end
  p:close()
  return out
end

return B
