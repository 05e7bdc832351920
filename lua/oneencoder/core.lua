-- oneencoder.core: loads the C core, oneencoder/core.so (found on package.cpath), after
-- oneencoder/omp_env.so has chosen OpenMP's wait policy (csrc/bind/omp_env.c: idle threads
-- sleep instead of spinning when the machine is busy as the module loads, unless
-- OMP_WAIT_POLICY or GOMP_SPINCOUNT is set). libgomp reads
-- the policy when core.so brings it in, so the order matters; without omp_env.so the core
-- loads with OpenMP's default. The result is core.omp_env (oe.info() reports it).
local function open(name)
  local path, err = package.searchpath(name, package.cpath)
  if not path then return nil, err end
  local fn, lerr = package.loadlib(path, "luaopen_" .. name:gsub("%.", "_"))
  if not fn then return nil, path .. ": " .. lerr end
  return fn(name, path)
end

local omp_env = open("oneencoder.omp_env")
local core, err = open("oneencoder.core")
if not core then error("module 'oneencoder.core' (the C core, core.so) cannot be loaded: " .. err, 2) end
core.omp_env = omp_env or { wait_policy = os.getenv("OMP_WAIT_POLICY") or "default", source = "omp_env.so not found" }
return core
