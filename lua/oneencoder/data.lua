-- data.lua: feature sets and batching for the trainers.
-- A feature set holds frozen-encoder outputs for N items: features (N, L, D)
-- and the true length of each item. Anything with the same three methods
-- (size, dim, batch) works, e.g. the on-disk feature cache.
--   local fs = oe.data.FeatureSet(feats, lengths)   -- lengths: table or int tensor, nil = all L
--   fs:size() -> N ; fs:dim() -> D ; fs:batch(ids) -> (B, Lmax, D), {lengths}
local core = require "oneencoder.core"

local D = {}

local FeatureSet = {}
FeatureSet.__index = FeatureSet

function D.FeatureSet(feats, lengths)
  if not core.is_tensor(feats) or core.dim(feats) ~= 3 then
    error("FeatureSet: features must be a (N, L, D) tensor", 2)
  end
  local s = core.shape(feats)
  if s[1] < 1 then error("FeatureSet: the feature set is empty", 2) end
  local lt = {}
  if lengths == nil then
    for i = 1, s[1] do lt[i] = s[2] end
  else
    if core.is_tensor(lengths) then lengths = core.totable(lengths) end
    if #lengths ~= s[1] then error(string.format("FeatureSet: %d lengths for %d items", #lengths, s[1]), 2) end
    for i = 1, s[1] do
      local n = math.tointeger(lengths[i])
      if not n or n < 1 or n > s[2] then
        error(string.format("FeatureSet: length %s of item %d is outside 1..%d", tostring(lengths[i]), i, s[2]), 2)
      end
      lt[i] = n
    end
  end
  if not core.all_finite(feats) then error("FeatureSet: features contain NaN or Inf", 2) end
  return setmetatable({ feats = feats, lengths = lt, n = s[1], L = s[2], D = s[3] }, FeatureSet)
end

function FeatureSet:size() return self.n end
function FeatureSet:dim() return self.D end

-- batch(ids): ids a Lua list of 1-based item numbers -> features (B, Lmax, D), lengths
function FeatureSet:batch(ids)
  local zero_based, lens, lmax = {}, {}, 1
  for i, id in ipairs(ids) do
    if id < 1 or id > self.n then error(string.format("FeatureSet:batch: item %d outside 1..%d", id, self.n), 2) end
    zero_based[i] = id - 1
    lens[i] = self.lengths[id]
    if lens[i] > lmax then lmax = lens[i] end
  end
  local x = core.index_select(self.feats, core.from_table(zero_based, "int64"))
  if lmax < self.L then x = core.narrow(x, 2, 1, lmax) end
  return x, lens
end

-- deterministic shuffle of 1..n (Fisher-Yates) from generator (an oe.Generator; the same
-- shuffle as generator:permutation(n)) or, when it is nil, from the global stream
function D.permutation(n, generator)
  if generator ~= nil then return generator:permutation(n) end
  local p = {}
  for i = 1, n do p[i] = i end
  if n < 2 then return p end
  local r = core.totable(core.randint(0, 1 << 30, { n }))
  for i = n, 2, -1 do
    local j = r[i] % i + 1
    p[i], p[j] = p[j], p[i]
  end
  return p
end

return D
