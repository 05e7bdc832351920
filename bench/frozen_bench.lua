-- bench/frozen_bench.lua: the pretrained encoders at full size with random weights.
--   ViT-B/16 forward, batch 8 at 224 (timm layout) against torchvision's vit_b_16, and the share
--   of this machine's raw sgemm throughput it reaches; BERT-base forward, 64 x 32 tokens, against
--   PyTorch's nn.TransformerEncoder fast path of the same shape; then, in a child process, peak
--   RSS while embedding images (JPEG -> original preprocessing -> ViT) and captions (token ids ->
--   BERT) with both models taken from one ~200 M-parameter file (the released OneEncoder file's
--   size), and the images/s and captions/s of that run.
-- Prints `name: value` (wall seconds, and process CPU seconds over every thread, the steadier
-- figure on a shared machine). Usage: lua5.4 bench/frozen_bench.lua [threads]
-- The PyTorch reference runs in the same run, interleaved with ours repetition by repetition,
-- with the same thread count, the same OPENBLAS_CORETYPE as this process's OpenBLAS uses
-- (oe.info().blas_core) and the same OMP_WAIT_POLICY (inherited).
package.path = "bench/?.lua;" .. package.path
local oe = require "oneencoder"
local core = oe.core
local B = require "common"
local report, median = B.report, B.median

local D, M = 768, 3072

-- ---- the child: embed from the file, report throughput and peak RSS ----
if arg[1] == "--child" then
  local path, threads = arg[2], tonumber(arg[3])
  oe.set_num_threads(threads)
  local w = assert(core.frozen_open(path))
  local vit = assert(oe.encoders.create("vit", { weights = w, prefix = "image_encoder.pretrained_vit." }))
  local bert = assert(oe.encoders.create("bert", { weights = w, prefix = "text_encoder.pretrained_bert.", config = false }))
  local jpg = "spec/fixtures/frozen/photo.jpg"
  local paths = {}
  for i = 1, 32 do paths[i] = jpg end
  vit:encode_files({ jpg, jpg }, { batch = 8 })                        -- warm-up: pages, scratch
  local t0 = core.now()
  local f = vit:encode_files(paths, { batch = 8 })
  local t_img = core.now() - t0
  assert(core.shape(f)[1] == 32)
  local ids = core.randint(1000, 30000, { 64, 32 }, "int64")
  local mask = oe.ones({ 64, 32 }, "int64")
  bert:encode({ input_ids = ids, attention_mask = mask })
  t0 = core.now()
  for _ = 1, 4 do bert:encode({ input_ids = ids, attention_mask = mask }) end
  local t_txt = core.now() - t0
  report("frozen_images_per_s", 32 / t_img, "%.2f")
  report("frozen_captions_per_s", 256 / t_txt, "%.1f")
  report("frozen_peak_rss_mb", core.peak_rss_mb(), "%.0f")
  local info = core.frozen_info(w)
  report("frozen_weights_inplace_tensors", info.inplace, "%d")
  report("frozen_weights_converted_tensors", info.converted, "%d")
  os.exit(0)
end

local threads = tonumber(arg and arg[1]) or 2
oe.set_num_threads(threads)
oe.manual_seed(0)
local info = oe.info()
report("threads", threads, "%d")
B.print_machine(info)

-- ---- random weights: ViT-B/16 (timm) and BERT-base (HF) in one file ----
local function lin(t, name, o, i, std)
  t[name .. ".weight"] = oe.normal({ o, i }, 0, std or 0.02)
  t[name .. ".bias"] = oe.zeros({ o })
end
local function ln(t, name, n)
  t[name .. ".weight"] = oe.ones({ n })
  t[name .. ".bias"] = oe.zeros({ n })
end
local t = {}
local V = "image_encoder.pretrained_vit."
t[V .. "cls_token"] = oe.normal({ 1, 1, D }, 0, 0.02)
t[V .. "pos_embed"] = oe.normal({ 1, 197, D }, 0, 0.02)
t[V .. "patch_embed.proj.weight"] = oe.normal({ D, 3, 16, 16 }, 0, 0.02)
t[V .. "patch_embed.proj.bias"] = oe.zeros({ D })
for i = 0, 11 do
  local p = V .. "blocks." .. i .. "."
  ln(t, p .. "norm1", D); ln(t, p .. "norm2", D)
  lin(t, p .. "attn.qkv", 3 * D, D); lin(t, p .. "attn.proj", D, D)
  lin(t, p .. "mlp.fc1", M, D); lin(t, p .. "mlp.fc2", D, M)
end
ln(t, V .. "norm", D)
lin(t, V .. "head", 1000, D)
local T = "text_encoder.pretrained_bert."
t[T .. "embeddings.word_embeddings.weight"] = oe.normal({ 30522, D }, 0, 0.02)
t[T .. "embeddings.position_embeddings.weight"] = oe.normal({ 512, D }, 0, 0.02)
t[T .. "embeddings.token_type_embeddings.weight"] = oe.normal({ 2, D }, 0, 0.02)
ln(t, T .. "embeddings.LayerNorm", D)
for i = 0, 11 do
  local p = T .. "encoder.layer." .. i .. "."
  lin(t, p .. "attention.self.query", D, D); lin(t, p .. "attention.self.key", D, D)
  lin(t, p .. "attention.self.value", D, D); lin(t, p .. "attention.output.dense", D, D)
  ln(t, p .. "attention.output.LayerNorm", D)
  lin(t, p .. "intermediate.dense", M, D); lin(t, p .. "output.dense", D, M)
  ln(t, p .. "output.LayerNorm", D)
end
lin(t, T .. "pooler.dense", D, D)
local nparams = 0
for _, v in pairs(t) do nparams = nparams + core.numel(v) end
local path = os.tmpname() .. ".safetensors"
assert(oe.save(path, t))
t = nil
collectgarbage("collect")
local fsize = core.fs_stat(path).size
report("frozen_weights_million_params", nparams / 1e6, "%.1f")
report("frozen_weights_file_mb", fsize / 2 ^ 20, "%.0f")

-- ---- the reference, same threads, BLAS kernels and OpenMP wait policy, interleaved ----
-- frozen_torch.py loads both models once and runs one forward per command written to a FIFO;
-- each repetition runs ours, then theirs, then (for the ViT) one raw sgemm, and the medians of
-- each are compared, so that all of them see the same drifting load of a shared machine.
local torch
do
  local ok = os.execute("/usr/bin/python3 -c 'import torch, torchvision' >/dev/null 2>&1")
  if ok then
    local fifo = os.tmpname()
    os.remove(fifo)
    assert(os.execute("mkfifo '" .. fifo .. "'"))
    local env = string.format("OMP_NUM_THREADS=%d ", threads)
    if info.blas_core then env = env .. "OPENBLAS_CORETYPE=" .. info.blas_core .. " " end
    local out = io.popen(env .. "/usr/bin/python3 bench/frozen_torch.py " .. threads .. " '" .. fifo .. "' 2>/dev/null")
    local cmd = assert(io.open(fifo, "r+")) -- read-write: opening never blocks on the reader
    if out:read("l") == "ready" then
      torch = {}
      function torch.run(what)
        cmd:write(what, "\n")
        cmd:flush()
        local w, c = out:read("l"):match("^" .. what .. " (%S+) (%S+)")
        return tonumber(w), tonumber(c)
      end
      function torch.close()
        cmd:write("quit\n")
        cmd:close()
        out:close()
        os.remove(fifo)
      end
    else
      cmd:close(); out:close(); os.remove(fifo)
    end
  end
end


-- reps of: ours (wall, cpu), torch (wall, cpu), extra(); medians
local function interleaved(reps, ours, what, extra)
  ours()
  local r = { w = {}, c = {}, tw = {}, tc = {}, x = {} }
  for i = 1, reps do
    local t0, c0 = core.now(), os.clock()
    ours()
    r.w[i], r.c[i] = core.now() - t0, os.clock() - c0
    if torch then r.tw[i], r.tc[i] = torch.run(what) end
    if extra then r.x[i] = extra() end
  end
  return { wall = median(r.w), cpu = median(r.c), torch_wall = torch and median(r.tw), torch_cpu = torch and median(r.tc),
    extra = extra and median(r.x) }
end

local w = assert(core.frozen_open(path))
local REPS = 7

-- ---- ViT-B/16, batch 8 ----
do
  local vit = assert(oe.encoders.create("vit", { weights = w, prefix = V }))
  local Bn, L = 8, 197
  local x = oe.normal({ Bn, 3, 224, 224 }, 0, 1)
  local flops = 2 * Bn * 196 * D * 3 * 256 + 12 * (2 * Bn * L * (3 * D * D + D * D + 2 * D * M) + 4 * Bn * L * L * D)
  -- the raw sgemm (OpenBLAS's own threads): 3 timed runs after a warm-up, wall median, and
  -- CPU seconds per run (process CPU over the call / 4, the fills of A and B are ~1% of it)
  local raw_cpu = {}
  local r = interleaved(REPS, function() vit:forward(x) end, "vit",
    function()
      local c0 = os.clock()
      local sec = core.sgemm_seconds(Bn * L, M, D, false, true, 3)
      raw_cpu[#raw_cpu + 1] = (os.clock() - c0) / 4
      return sec
    end)
  local raw_gflops = 2 * Bn * L * M * D / r.extra / 1e9
  local raw_cpu_gflops = 2 * Bn * L * M * D / median(raw_cpu) / 1e9
  report("vit_b16_b8_seconds", r.wall)
  report("vit_b16_b8_cpu_seconds", r.cpu)
  report("vit_b16_b8_gflops", flops / r.wall / 1e9, "%.1f")
  report("sgemm_1576x3072x768_gflops", raw_gflops, "%.1f")
  report("vit_b16_share_of_sgemm_percent", 100 * (flops / r.wall / 1e9) / raw_gflops, "%.1f")
  -- the same per CPU-second (steadier when other processes share the cores)
  report("sgemm_1576x3072x768_gflop_per_cpu_second", raw_cpu_gflops, "%.1f")
  report("vit_b16_gflop_per_cpu_second", flops / r.cpu / 1e9, "%.1f")
  report("vit_b16_share_of_sgemm_per_cpu_second_percent", 100 * (flops / r.cpu) / (raw_cpu_gflops * 1e9), "%.1f")
  if torch then
    report("torch_vit_b16_b8_seconds", r.torch_wall)
    report("torch_vit_b16_b8_cpu_seconds", r.torch_cpu)
    report("vit_b16_speedup_vs_torchvision", r.torch_wall / r.wall, "%.2f")
    report("vit_b16_cpu_time_ratio_torchvision_over_ours", r.torch_cpu / r.cpu, "%.2f")
  end
end

-- ---- BERT-base, 64 x 32 tokens ----
do
  local bert = assert(oe.encoders.create("bert", { weights = w, prefix = T, config = false }))
  local Bn, L = 64, 32
  local ids = core.randint(1000, 30000, { Bn, L }, "int64")
  local mask = oe.ones({ Bn, L }, "int64")
  local flops = 12 * (2 * Bn * L * (4 * D * D + 2 * D * M) + 4 * Bn * L * L * D)
  local r = interleaved(REPS, function() bert:forward(ids, mask) end, "bert")
  report("bert_base_b64x32_seconds", r.wall)
  report("bert_base_b64x32_cpu_seconds", r.cpu)
  report("bert_base_b64x32_gflops", flops / r.wall / 1e9, "%.1f")
  if torch then
    report("torch_bert_base_b64x32_seconds", r.torch_wall)
    report("torch_bert_base_b64x32_cpu_seconds", r.torch_cpu)
    report("bert_base_speedup_vs_torch_transformer", r.torch_wall / r.wall, "%.2f")
    report("bert_base_cpu_time_ratio_torch_over_ours", r.torch_cpu / r.cpu, "%.2f")
  end
end
if torch then torch.close() end
w = nil
collectgarbage("collect")

-- ---- peak RSS in a child that only maps the file and embeds ----
do
  local child = B.figures(string.format("lua5.4 bench/frozen_bench.lua --child '%s' %d", path, threads), true)
  if child.frozen_peak_rss_mb then
    report("frozen_rss_budget_mb", fsize / 2 ^ 20 + 400, "%.0f")
    report("frozen_peak_rss_over_weights_mb", child.frozen_peak_rss_mb - fsize / 2 ^ 20, "%.0f")
  end
end
os.remove(path)
