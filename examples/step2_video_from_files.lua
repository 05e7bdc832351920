-- examples/step2_video_from_files.lua: step 2 of OneEncoder (video brought in against text) from
-- video files and caption strings, in one script: a step-1 model with its BERT -> a frozen VideoMAE
-- -> video and caption features cached on disk -> the UP frozen, the video alignment layer and
-- token trained -> the model embeds video files directly -> retrieval figures.
--
--   lua5.4 examples/step2_video_from_files.lua
--       No download: the step-1 model is the small random-weight one of the test fixtures
--       (spec/fixtures/pretrained/text_image.safetensors: ViT, BERT, heads, UP, d = 32) and the
--       VideoMAE the small random one of spec/fixtures/videomae/model_a (32-d, 4 frames of 32x32).
--       Runs in seconds; random encoders carry no pretrained knowledge, so the figures only show
--       that the alignment layer learns these pairs.
--   lua5.4 examples/step2_video_from_files.lua OneEncoder-text-image/model.safetensors vocab.txt videomae-base
--       The released step-1 file (its BERT and UP) and MCG-NJU/videomae-base as a Hugging Face
--       folder (model.safetensors, config.json, preprocessor_config.json).
--
-- Data: 60 clips of 12 frames drawn here (a coloured shape moving over a grey background: 20
-- captions such as "a red house" x 3 motions; two motions train, the third is held out), encoded
-- with the ffmpeg command-line tool into runs/step2_video/videos/ (without ffmpeg: the two
-- fixture clips). Frames: the original's sampling (a random window of consecutive frames; the
-- feature cache keeps the first window drawn for each clip). Run it again: the features come
-- from the cache (runs/step2_video/cache/), training resumes or is skipped (runs/step2_video/ckpt/).
local oe = require "oneencoder"
local core = oe.core

local ROOT = "runs/step2_video"
os.execute("mkdir -p " .. ROOT .. "/videos " .. ROOT .. "/frames")
local t_start = core.now()
local function exists(p) return core.fs_stat(p) ~= nil end

-- ---------------------------------------------------------------- the step-1 model and VideoMAE
local step1 = arg[1] or "spec/fixtures/pretrained/text_image.safetensors"
local vocab = arg[2] or "spec/fixtures/pretrained/vocab.txt"
local vmae_dir = arg[3] or "spec/fixtures/videomae/model_a"
local small = arg[1] == nil
local model = assert(oe.pretrained.load(step1, { vocab = vocab, vit = small and { heads = 3 } or nil,
  bert = small and { heads = 4 } or nil }))
local bert = model:encoder("text")
local vmae = assert(oe.encoders.create("videomae", { path = vmae_dir, sampling = "original", seed = 1 }))
print(string.format("step-1 model d = %d; BERT %d-d; VideoMAE %d-d (%d layers, %d frames of %d, %d tokens)", model.cfg.d,
  bert.dim, vmae.dim, vmae.config.depth, vmae.config.frames, vmae.config.image_size, vmae.config.tokens))

-- ---------------------------------------------------------------- clips and captions
local COLOURS = { red = { 220, 30, 30 }, blue = { 40, 70, 220 }, green = { 30, 180, 60 }, white = { 250, 250, 250 },
  black = { 10, 10, 10 } }
local SHAPES = { house = "square", car = "disc", tree = "cross", water = "stripes" }
local MOTIONS = { { 1, 0 }, { 0, 1 }, { 1, 1 } }   -- right, down (training); diagonal (held out)
local N, T = 48, 12

-- one N x N frame: the shape of colour c centred at (cx, cy) on grey
local function draw(shape, c, cx, cy)
  local bytes = {}
  for y = 0, N - 1 do
    for x = 0, N - 1 do
      local dx, dy = x - cx, y - cy
      local on
      if shape == "square" then on = math.abs(dx) < 9 and math.abs(dy) < 9
      elseif shape == "disc" then on = dx * dx + dy * dy < 100
      elseif shape == "stripes" then on = math.abs(dy) < 12 and ((x + cx // 1) // 4) % 2 == 0
      else on = (math.abs(dx) < 3 and math.abs(dy) < 11) or (math.abs(dy) < 3 and math.abs(dx) < 11) end
      local p = on and c or { 150, 150, 150 }
      bytes[#bytes + 1] = string.char(p[1], p[2], p[3])
    end
  end
  return oe.from_bytes(table.concat(bytes), "uint8", { N, N, 3 })
end

local have_ffmpeg = os.execute("command -v ffmpeg >/dev/null 2>&1")
local train_paths, train_caps, test_paths, test_caps = {}, {}, {}, {}
if have_ffmpeg then
  local cnames, snames = {}, {}
  for k in pairs(COLOURS) do cnames[#cnames + 1] = k end
  for k in pairs(SHAPES) do snames[#snames + 1] = k end
  table.sort(cnames); table.sort(snames)
  for _, cn in ipairs(cnames) do
    for _, sn in ipairs(snames) do
      local caption = "a " .. cn .. " " .. sn
      for m, mv in ipairs(MOTIONS) do
        local path = string.format("%s/videos/%s_%s_%d.mp4", ROOT, cn, sn, m)
        if not exists(path) then
          local fdir = string.format("%s/frames/%s_%s_%d", ROOT, cn, sn, m)
          os.execute("mkdir -p '" .. fdir .. "'")
          for t = 0, T - 1 do
            local cx, cy = 12 + mv[1] * 2 * t, 12 + mv[2] * 2 * t
            if mv[1] == 0 then cx = 24 end
            if mv[2] == 0 then cy = 24 end
            assert(oe.image.save(draw(SHAPES[sn], COLOURS[cn], cx, cy), string.format("%s/%02d.png", fdir, t)))
          end
          local cmd = string.format("ffmpeg -loglevel error -y -framerate 12 -i '%s/%%02d.png' -c:v libx264 -pix_fmt yuv420p '%s'",
            fdir, path)
          assert(os.execute(cmd), "ffmpeg failed: " .. cmd)
          os.execute("rm -rf '" .. fdir .. "'")
        end
        if m < 3 then
          train_paths[#train_paths + 1], train_caps[#train_caps + 1] = path, caption
        else
          test_paths[#test_paths + 1], test_caps[#test_caps + 1] = path, caption
        end
      end
    end
  end
else
  print("ffmpeg not found: using the fixture clip")
  train_paths, train_caps = { "spec/fixtures/videomae/clip.mp4" }, { "a red house" }
  test_paths, test_caps = train_paths, train_caps
end
print(string.format("%d training clips, %d held-out clips (another motion)", #train_paths, #test_paths))

-- ---------------------------------------------------------------- features, once (cached)
local t0 = core.now()
local videos = assert(oe.pretrained.extract(vmae, train_paths, { cache = ROOT .. "/cache/video", batch = 8, progress = true }))
local texts = assert(oe.pretrained.extract(bert, train_caps, { cache = ROOT .. "/cache/text", batch = 64, progress = true }))
print(string.format("features: %d clips, %d captions in %.1f s", videos:size(), texts:size(), core.now() - t0))

-- ---------------------------------------------------------------- step 2: video against text
model:freeze()                                           -- UP, heads and tokens of step 1 stay fixed
model:add_modality("video", { input_dim = vmae.dim, generator = oe.Generator(1) })
t0 = core.now()
local result = oe.train.extend(model, {
  a = { name = "video", set = videos }, b = { name = "text", set = texts },
  epochs = 40, batch_size = 16, val_split = 0.15, seed = 0, progress = false, drop_duplicates = true,
  checkpoint_dir = ROOT .. "/ckpt", log_path = ROOT .. "/ckpt/log.jsonl",
})
print(string.format("step 2: %d epochs in %.1f s, best validation loss %.4f", result.epochs, core.now() - t0, result.best_val_loss))

-- ---------------------------------------------------------------- video files -> the shared space
model:set_encoder("video", vmae)
local ve = model:embed_videos(test_paths, { batch = 8 })   -- (N, d), L2-normalised
local te = model:embed_texts(test_caps)
local r = oe.eval.retrieval(ve, te)
print(string.format("held-out motion, video -> caption over %d pairs: R@1 %.3f, R@5 %.3f (chance %.3f)", #test_paths,
  r.a2b.R1, r.a2b.R5, 1 / #test_paths))
print(string.format("total %.1f s", core.now() - t_start))
