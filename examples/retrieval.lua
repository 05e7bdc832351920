-- examples/retrieval.lua: retrieval between modalities in the shared space,
-- including audio -> image, a pair that was never trained together (audio was
-- aligned to text only). Relevant = same class.
--   lua5.4 examples/retrieval.lua [step2.safetensors]
package.path = "examples/?.lua;" .. package.path
local oe = require "oneencoder"
local toy = require "toy_data"

local model, err = oe.checkpoint.load(arg[1] or "runs/examples/step2.safetensors")    -- the config travels in the file
if not model then error(err .. " (run examples/step1_align.lua and examples/step2_extend.lua first)") end
model:eval()

local test = toy.dataset(160, 77)
local enc = toy.encoders()
oe.no_grad(function()
  local function embed(name, e, items)
    local f, l = e:encode(items)
    return model:embed(name, f, l)
  end
  local img = embed("image", enc.image, test.images)
  local txt = embed("text", enc.text, test.captions)
  local aud = embed("audio", enc.audio, test.recordings)
  local groups = { a = test.labels, b = test.labels }
  local rows = { { "query -> target", "R@1", "R@5", "mAP", "chance R@1" } }
  for _, pair in ipairs { { "image", img, "text", txt }, { "text", txt, "image", img },
    { "audio", aud, "text", txt }, { "audio", aud, "image", img } } do
    local r = oe.eval.retrieval(pair[2], pair[4], groups).a2b
    rows[#rows + 1] = { pair[1] .. " -> " .. pair[3], string.format("%.3f", r.R1), string.format("%.3f", r.R5),
      string.format("%.3f", r.mAP), string.format("%.3f", 10 / 160) }
  end
  print(oe.eval.format_table(rows))
  -- nearest neighbours of the first recording among the images
  local scores, ids = oe.eval.topk_search(aud:narrow(1, 1, 1), img, 3)
  local c, s = toy.class(test.labels[1])
  print(string.format("recording of a %s %s -> images of classes %s", c, s,
    table.concat((function() local o = {} for i, id in ipairs(ids:totable()[1]) do local a, b = toy.class(test.labels[id + 1]); o[i] = a .. " " .. b end return o end)(), ", ")))
end)
