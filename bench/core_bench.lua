-- bench/core_bench.lua: Linear forward+backward against raw cblas_sgemm, the
-- TransformerEncoderLayer step against PyTorch, and the Lua share of a step.
-- Prints "name: value". Usage: lua5.4 bench/core_bench.lua [threads]
package.path = "bench/?.lua;" .. package.path
local oe = require "oneencoder"
local core = oe.core
local B = require "common"

local threads = tonumber(arg and arg[1]) or 2
oe.set_num_threads(threads)
oe.manual_seed(0)
B.report("threads", threads, "%d")

-- 1. Linear (M rows, K in -> N out): forward x W^T, backward g W and g^T x (+ bias)
for _, s in ipairs { { 12608, 768, 256 }, { 12608, 256, 2048 }, { 2048, 768, 256 } } do
  local M, K, N = s[1], s[2], s[3]
  local flops = 3 * 2 * M * N * K
  local lin = oe.nn.Linear(K, N)
  local x = oe.randn({ M, K }):requires_grad_()
  local g = oe.randn({ M, N })
  local function ours()
    local y = lin(x)
    y:backward(g)
    x.grad, lin.weight.grad, lin.bias.grad = nil, nil, nil
  end
  -- interleave the reference and ours so both see the same machine load
  ours()
  local traw, tours = {}, {}
  for r = 1, 9 do
    traw[r] = core.sgemm_seconds(M, N, K, false, true, 1) + core.sgemm_seconds(M, K, N, false, false, 1) +
        core.sgemm_seconds(N, K, M, true, false, 1)
    local t0 = core.now()
    ours()
    tours[r] = core.now() - t0
  end
  table.sort(traw); table.sort(tours)
  local raw, t = traw[5], tours[5]
  local tag = string.format("linear_%dx%d_to_%d", M, K, N)
  B.report(tag .. "_gflops", flops / t / 1e9, "%.1f")
  B.report(tag .. "_raw_sgemm_gflops", flops / raw / 1e9, "%.1f")
  B.report(tag .. "_ratio_to_sgemm", raw / t, "%.3f")
end

-- 2. TransformerEncoderLayer(d 256, 4 heads, ff 2048, post-norm, relu, dropout 0.1), B=64, L=197
local Bn, L, d, ff = 64, 197, 256, 2048
local layer = oe.nn.TransformerEncoderLayer(d, 4, { dim_feedforward = ff, dropout = 0.1 })
local x = oe.randn({ Bn, L, d }):requires_grad_()
local g = oe.randn({ Bn, L, d })
local function step()
  local y = layer(x)
  y:backward(g)
  layer:zero_grad()
  x.grad = nil
end
local tok = Bn * L
local fwd_flops = tok * 2 * (d * 3 * d + d * d + 2 * d * ff) + Bn * 4 * 2 * L * L * (d // 4)
step() -- warm-up
local t_layer, t_torch = B.interleaved(function()
  local s = B.samples(step, 3)
  table.sort(s)
  return { s[2] }
end, function()
  local r = B.python("bench/transformer_torch.py", threads .. " 3")
  return r and r.torch_layer_fwd_bwd_seconds and { r.torch_layer_fwd_bwd_seconds } or nil
end, 3)
B.report("transformer_layer_fwd_bwd_seconds", t_layer)
B.report("transformer_layer_fwd_bwd_gflops", 3 * fwd_flops / t_layer / 1e9, "%.1f")
if t_torch then
  B.report("torch_layer_fwd_bwd_seconds", t_torch)
  B.report("transformer_speedup_vs_torch", t_torch / t_layer, "%.2f")
else
  print("torch_layer_fwd_bwd_seconds: unavailable (/usr/bin/python3 has no torch)")
end

-- 3. share of the step spent outside C kernels: wrap every core function with a timer
local inside = 0
local wrapped = {}
for k, f in pairs(core) do
  if type(f) == "function" and k ~= "now" then
    wrapped[k] = f
    core[k] = function(...)
      local t0 = wrapped.now and wrapped.now() or core.now()
      local r = table.pack(f(...))
      inside = inside + (core.now() - t0)
      return table.unpack(r, 1, r.n)
    end
  end
end
local t0 = core.now()
for _ = 1, 3 do step() end
local total = core.now() - t0
for k, f in pairs(wrapped) do core[k] = f end
B.report("transformer_layer_lua_share_percent", 100 * (total - inside) / total, "%.2f")

B.report("peak_rss_mb", core.peak_rss_mb(), "%.0f")
