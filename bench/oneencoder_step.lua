-- bench/oneencoder_step.lua: one step-1 training step at B=64, image sequence
-- 197, text sequence 32, input dim 768, d 256 (heads + tokens + UP forward
-- and backward, AdamW update), next to the PyTorch mirror in the same run.
-- Usage: lua5.4 bench/oneencoder_step.lua [threads] [steps]
package.path = "bench/?.lua;" .. package.path
local oe = require "oneencoder"
local core = oe.core
local Bm = require "common"

local threads = tonumber(arg and arg[1]) or 2
local steps = tonumber(arg and arg[2]) or 3
oe.set_num_threads(threads)
oe.manual_seed(0)
Bm.report("threads", threads, "%d")

local B, Li, Lt, D = 64, 197, 32, 768
local model = oe.OneEncoder({ pooling = "original" })
model:add_modality("image", { input_dim = D })
model:add_modality("text", { input_dim = D })
model:train()
local opt = oe.optim.AdamW(model:parameters(true), { lr = 1e-3, weight_decay = 1e-3 })
local xi = oe.randn({ B, Li, D })
local xt = oe.randn({ B, Lt, D })

local function step()
  local ei = model:embed("image", xi)
  local et = model:embed("text", xt)
  local loss = oe.train.clip_loss(ei, et, model:logit_scale())
  opt:zero_grad()
  loss:backward()
  opt:step()
  return loss
end

-- rounds of (ours: `steps` steps, PyTorch: a process timing `steps` steps), medians of the
-- per-round medians: both sides see the same machine load
step() -- warm-up
local have_torch
local t, t_torch = Bm.interleaved(function()
  local s = Bm.samples(step, steps)
  table.sort(s)
  return { s[(#s + 1) // 2] }
end, function()
  local r = Bm.python("bench/oneencoder_step_torch.py", threads .. " " .. steps)
  if not (r and r.torch_step1_seconds) then return nil end
  have_torch = r
  return { r.torch_step1_seconds }
end, 3)
Bm.report("oneencoder_step1_seconds", t)
Bm.report("oneencoder_peak_rss_mb", core.peak_rss_mb(), "%.0f")
Bm.report("oneencoder_trainable_parameters", model:num_parameters(true), "%d")
if t_torch then
  Bm.report("torch_step1_seconds", t_torch)
  Bm.report("torch_peak_rss_mb", have_torch.torch_peak_rss_mb or -1, "%.0f")
  Bm.report("speedup_vs_torch", t_torch / t, "%.2f")
else
  print("torch_step1_seconds: unavailable")
end
