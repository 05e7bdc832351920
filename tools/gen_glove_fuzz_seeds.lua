-- gen_glove_fuzz_seeds.lua: the seed tables of fuzz/glove_fuzz.c (fuzz/corpus/glove/).
--   lua5.4 tools/gen_glove_fuzz_seeds.lua fuzz/corpus/glove
-- Small GloVe tables ("oneencoder-glove-1", see csrc/text/glove.h) written byte by byte:
-- a good one with an unk vector, one without, one with a hyphenated compound and a NaN row.
local dir = assert(arg[1], "usage: lua5.4 tools/gen_glove_fuzz_seeds.lua <folder>")

local function floats(t)
  local out = {}
  for i, v in ipairs(t) do out[i] = string.pack("<f", v) end
  return table.concat(out)
end

local function table_bytes(words, dim, with_unk, bad_row)
  local flat = {}
  for i = 1, #words do
    for k = 1, dim do flat[#flat + 1] = (i == bad_row and k == 1) and 0 / 0 or i * 0.5 - k * 0.25 end
  end
  local entries = {}
  if with_unk then entries[#entries + 1] = { "unk", "F32", { dim }, floats((function() local u = {} for k = 1, dim do u[k] = 0 end return u end)()) } end
  entries[#entries + 1] = { "vectors", "F32", { #words, dim }, floats(flat) }
  local wb = table.concat(words, "\n") .. "\n"
  entries[#entries + 1] = { "words", "U8", { #wb }, wb }
  local parts = { string.format('"__metadata__":{"dim":"%d","format":"oneencoder-glove-1","words":"%d"}', dim, #words) }
  local at, data = 0, {}
  for _, e in ipairs(entries) do
    local dims = {}
    for i, d in ipairs(e[3]) do dims[i] = tostring(d) end
    parts[#parts + 1] = string.format('"%s":{"dtype":"%s","shape":[%s],"data_offsets":[%d,%d]}', e[1], e[2],
      table.concat(dims, ","), at, at + #e[4])
    at = at + #e[4]
    data[#data + 1] = e[4]
  end
  local h = "{" .. table.concat(parts, ",") .. "}"
  h = h .. string.rep(" ", (8 - #h % 8) % 8)
  return string.pack("<I8", #h) .. h .. table.concat(data)
end

local function write(name, bytes)
  local f = assert(io.open(dir .. "/" .. name, "wb"))
  f:write(bytes)
  f:close()
end

write("good.safetensors", table_bytes({ "the", "cat", ",", ".", "well-known", "café" }, 4, true))
write("nounk.safetensors", table_bytes({ "a", "b" }, 3, false))
write("nanrow.safetensors", table_bytes({ "the", "zebra", "-", "“" }, 2, true, 2))
