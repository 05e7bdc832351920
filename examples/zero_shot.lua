-- examples/zero_shot.lua: zero-shot classification of held-out images by text
-- prompts (several templates averaged), with the top-1/top-5 accuracy and the
-- confusion matrix.
--   lua5.4 examples/zero_shot.lua [model.safetensors]
package.path = "examples/?.lua;" .. package.path
local oe = require "oneencoder"
local toy = require "toy_data"

local model, err = oe.checkpoint.load(arg[1] or "runs/examples/step1.safetensors")    -- the config travels in the file
if not model then error(err .. " (run examples/step1_align.lua first)") end
model:eval()

local test = toy.dataset(320, 99)                        -- unseen images
local enc = toy.encoders()
local labels = oe.tensor(test.labels, "int64")

oe.no_grad(function()
  local images = toy.features(enc.image, test.images)
  local img = model:embed("image", images.feats, images.lengths)
  -- one embedding per class and template: prompts never used as training captions
  local per_template = {}
  for k, template in ipairs(toy.test_templates) do
    local prompts = {}
    for c = 0, 15 do prompts[c + 1] = toy.caption(c, 1, { template }) end
    local f, l = enc.text:encode(prompts)
    per_template[k] = model:embed("text", f, l)
  end
  local r = oe.eval.zero_shot(img, per_template, labels, { k = 5 })
  print(string.format("zero-shot top-1 %.3f  top-5 %.3f  (chance %.3f)", r.top1, r.top5, 1 / 16))
  print("confusion matrix (rows: true class, columns: predicted):")
  for _, row in ipairs(r.confusion:totable()) do print(table.concat(row, " ")) end
end)
