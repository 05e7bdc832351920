-- bench/machine.lua: the machine every figure of this run belongs to, printed first by
-- `make bench` (figures from different CPUs or BLAS kernels must never be mixed).
local oe = require "oneencoder"
local i = oe.info()
for _, k in ipairs { "cpu", "blas_core", "blas_core_source", "blas", "simd", "build", "threads" } do
  print(string.format("%s: %s", k, tostring(i[k])))
end
if i.blas_note then print("blas_note: " .. i.blas_note) end
