-- Fetch, verify and prepare the demo's data (cached), or show what is cached.
--   lua5.4 examples/demo/fetch.lua                 prepare with the demo's default sizes
--   lua5.4 examples/demo/fetch.lua status          what is cached, and is it intact
--   lua5.4 examples/demo/fetch.lua --root DIR --n_train 2000 --n_speech_train 800 ...
--   lua5.4 examples/demo/fetch.lua --rich 1        also the pretrained pipeline's data (demo/rich.lua)
-- The cache folder is --root, else $OE_DATA_DIR, else ./data. Needs `make` first.
local here = (arg and arg[0] or ""):match("^(.*)/examples/demo/[^/]*$") or "."
package.path = here .. "/examples/?.lua;" .. here .. "/lua/?.lua;" .. here .. "/lua/?/init.lua;" .. package.path
package.cpath = here .. "/build/?.so;" .. package.cpath
local data = require "demo.data"

local cmd, opts = "prepare", { progress = true }
local i = 1
while arg[i] do
  local a = arg[i]
  local k = a:match("^%-%-([%w_]+)$")
  if a == "status" or a == "prepare" then cmd = a
  elseif k and arg[i + 1] then
    opts[k] = tonumber(arg[i + 1]) or arg[i + 1]
    i = i + 1
  else
    io.stderr:write("usage: lua5.4 examples/demo/fetch.lua [status|prepare] [--root DIR] [--<option> VALUE ...]\n")
    os.exit(2)
  end
  i = i + 1
end

if cmd == "status" then
  data.status(opts)
else
  local prepare = data.prepare
  if opts.rich then prepare = require("demo.rich").prepare end   -- --rich 1: the pretrained pipeline's data too
  local ok, err = pcall(prepare, opts)
  if not ok then
    io.stderr:write("data: ", tostring(err), "\n")
    os.exit(1)
  end
  local t = err.timings
  print(string.format("data %s; fetch %.1f s, verify %.1f s, load %.1f s, speech %.1f s, clips %.1f s, total %.1f s",
    err.first_fetch and "fetched this run" or "all cached", t.fetch, t.verify, t.load, t.speech, t.clips, t.total))
  data.status(opts)
end
