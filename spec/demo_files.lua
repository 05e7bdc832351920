-- demo_files.lua: file and shell helpers shared by the demo data specs (demo_data_spec,
-- demo_rich_data_spec). Shell commands run without the sanitizer runtime `make sanitize`
-- preloads (as examples/demo/data.lua does: the tools are not ours, espeak-ng hangs under it).
local data = require "demo.data"

local F = {}
local q = data.shell_quote
F.q = q
local PRE = (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true) and "unset LD_PRELOAD; " or ""
function F.sh(cmd) return os.execute(PRE .. cmd) end

-- a fresh empty folder under /tmp
function F.tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(F.sh("mkdir -p " .. q(d)))
  return d
end
function F.rmdir(d) F.sh("rm -rf " .. q(d)) end
-- write s to path, making its folder
function F.write(path, s)
  F.sh("mkdir -p " .. q(path:match("^(.*)/")))
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end
function F.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end
function F.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end
return F
