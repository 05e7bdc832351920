-- extract.lua: frozen-encoder features for a list of files or strings, batched, with a progress
-- line, written through the feature cache, ready for the trainers.
--
--   local vit = assert(oe.encoders.create("vit", {weights = "vit/model.safetensors"}))
--   local images, info = oe.pretrained.extract(vit, image_paths, {cache = "cache/image", progress = true})
--   local texts = oe.pretrained.extract(bert, captions, {cache = "cache/text"})
--   oe.train.align(m, {a = {name = "image", set = images}, b = {name = "text", set = texts}, ...})
--
-- features(enc, inputs, opts) -> feature set, info | nil, message
--   inputs: a list of paths (image, audio, video encoders: read with the encoder's loader; images
--     as cv2.imread reads them, see oneencoder.pretrained.load_image) or of strings (text
--     encoders: the strings are the inputs). The set has one row per kept input, in input order
--     (a repeated input is encoded once and appears at each of its places).
--   opts.cache: a directory (oe.cache): items keyed by path (files, identity path + size + mtime,
--     or opts.identity = "sha256") or by the text itself (strings), under the encoder's id, which
--     names its weights file with its size and modification time: a changed file or encoder is
--     recomputed, a run killed midway resumes. Without a cache the features stay in memory
--     (oe.data.FeatureSet, padded to the longest item).
--   opts.batch (32), opts.progress (a line on stderr), opts.dtype (cache rows: "float32" default,
--     "float16"), opts.identity, opts.loader (fn(path) -> item | nil, message),
--   opts.on_error: "fail" (default: nil, message naming the first bad input) or "skip" (left out;
--     info.bad lists {index, input, reason}).
--   info = {kept = 1-based input positions in the set, bad = {...}, stats = cache build stats}
local core = require "oneencoder.core"

local M = {}

local OPTIONS = { cache = "string", batch = "integer", progress = "boolean", dtype = "string", identity = "string",
  loader = "function", on_error = "string" }

local function check_options(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error("extract: opts must be a table, got " .. type(opts), 3) end
  for k, v in pairs(opts) do
    local want = OPTIONS[k]
    if not want then error("extract: unknown option '" .. tostring(k) .. "'", 3) end
    if (want == "integer" and math.type(v) ~= "integer") or (want ~= "integer" and type(v) ~= want) then
      error(string.format("extract: option '%s' must be %s %s, got %s", k, want == "integer" and "an" or "a", want, type(v)), 3)
    end
  end
  if opts.batch and opts.batch < 1 then error("extract: option 'batch' must be at least 1", 3) end
  if opts.on_error and opts.on_error ~= "fail" and opts.on_error ~= "skip" then
    error("extract: option 'on_error' must be \"fail\" or \"skip\"", 3)
  end
  return opts
end

-- a marker raised from inside cache:build for an input that cannot be loaded
local BadInput = {}
BadInput.__index = BadInput
BadInput.__tostring = function(b) return b.msg end

-- features(enc, inputs, opts) -> set, info | nil, message
function M.features(enc, inputs, opts)
  if type(enc) ~= "table" or type(enc.encode) ~= "function" or type(enc.id) ~= "string" then
    error("extract: the first argument must be an encoder (oe.encoders.create)", 2)
  end
  if type(inputs) ~= "table" or #inputs == 0 then error("extract: inputs must be a non-empty list of paths or strings", 2) end
  opts = check_options(opts)
  local texts = enc.modality == "text"
  local on_error = opts.on_error or "fail"
  local batch = opts.batch or 32
  local loader = opts.loader
  if not loader then
    if enc.modality == "image" then loader = require("oneencoder.pretrained").load_image
    else loader = function(p) return enc:load(p) end end
  end

  -- unique items in input order; texts that are empty are bad inputs
  local items, item_of, bad = {}, {}, {}
  local function reject(i, input, reason)
    if on_error == "fail" then
      return string.format("extract: item %d%s: %s", i, texts and "" or " (" .. tostring(input) .. ")", reason)
    end
    bad[#bad + 1] = { index = i, input = input, reason = reason }
  end
  for i, x in ipairs(inputs) do
    if type(x) ~= "string" then error(string.format("extract: item %d must be a string, got %s", i, type(x)), 2) end
    local why
    if x == "" or (texts and not x:find("%S")) then why = texts and "empty text" or "empty path" end
    if texts and not why and enc.tokenizer and #enc:tokenizer():ids(x, 1) == 0 then why = "empty text (no token after cleaning)" end
    if not texts and not why and not opts.loader and not core.fs_stat(x) then why = x .. ": no such file" end
    if why then
      local msg = reject(i, x, why)
      if msg then return nil, msg end
    elseif not item_of[x] then
      local it = texts and { key = x } or { key = x, path = x }
      items[#items + 1] = it
      item_of[x] = it
    end
  end

  local function encode_items(list)
    local loaded = {}
    for j, it in ipairs(list) do
      if texts then
        loaded[j] = it.key
      else
        local v, why = loader(it.path)
        if v ~= nil and enc.check then
          local ok, cwhy = enc:check(v)
          if not ok then v, why = nil, cwhy end
        end
        if v == nil then error(setmetatable({ key = it.key, msg = tostring(why or "the loader returned nothing") }, BadInput), 0) end
        loaded[j] = v
      end
    end
    return enc:encode(loaded)
  end

  local stats
  if opts.cache then
    local cache = require("oneencoder.cache").open(opts.cache, { encoder_id = enc.id, dtype = opts.dtype, identity = opts.identity })
    while true do
      local ok, res = pcall(cache.build, cache, items, encode_items, { batch = batch, progress = opts.progress })
      if ok then stats = res break end
      if getmetatable(res) ~= BadInput then error(res, 0) end
      -- the item is left out; what was computed before it is in the cache already
      local first
      for i, x in ipairs(inputs) do
        if x == res.key then
          first = first or i
          local msg = reject(i, x, res.msg)
          if msg then return nil, msg end
        end
      end
      local rest = {}
      for _, it in ipairs(items) do if it.key ~= res.key then rest[#rest + 1] = it end end
      items, item_of[res.key] = rest, nil
    end
  end

  local kept, keys = {}, {}
  local badset = {}
  for _, b in ipairs(bad) do badset[b.index] = true end
  for i, x in ipairs(inputs) do
    if not badset[i] and item_of[x] then kept[#kept + 1] = i; keys[#keys + 1] = item_of[x] end
  end

  local set
  if opts.cache then
    if #keys == 0 then return nil, "extract: no input could be encoded" end
    set = require("oneencoder.cache").open(opts.cache, { encoder_id = enc.id, dtype = opts.dtype, identity = opts.identity })
        :feature_set(keys)
  else
    -- in memory: encode the unique items batch by batch
    local feats_of, t0 = {}, core.now()
    local i = 1
    while i <= #items do
      local list = {}
      for j = i, math.min(i + batch - 1, #items) do list[#list + 1] = items[j] end
      local ok, f, l = pcall(encode_items, list)
      if ok then
        for j, it in ipairs(list) do feats_of[it.key] = { f, j, l[j] } end
        i = i + #list
        if opts.progress then io.stderr:write(string.format("extract %s: %d/%d, %.1f items/s\n", enc.name, i - 1, #items, (i - 1) / math.max(core.now() - t0, 1e-9))) end
      elseif getmetatable(f) == BadInput then
        for k, x in ipairs(inputs) do
          if x == f.key then
            local msg = reject(k, x, f.msg)
            if msg then return nil, msg end
          end
        end
        local rest = {}
        for _, it in ipairs(items) do if it.key ~= f.key then rest[#rest + 1] = it end end
        items, item_of[f.key] = rest, nil
      else
        error(f, 0)
      end
    end
    kept, keys = {}, {}
    badset = {}
    for _, b in ipairs(bad) do badset[b.index] = true end
    for k, x in ipairs(inputs) do
      if not badset[k] and item_of[x] then kept[#kept + 1] = k; keys[#keys + 1] = x end
    end
    if #keys == 0 then return nil, "extract: no input could be encoded" end
    local Lmax, D = 0, enc.dim
    for _, k in ipairs(keys) do Lmax = math.max(Lmax, feats_of[k][3]) end
    local out = core.zeros({ #keys, Lmax, D })
    local lengths = {}
    for r, k in ipairs(keys) do
      local f, j, n = table.unpack(feats_of[k])
      local row = core.narrow(core.narrow(f, 1, j, 1), 2, 1, n)          -- (1, n, D)
      if n < Lmax then row = core.cat({ row, core.zeros({ 1, Lmax - n, D }) }, 2) end
      core.set_slice(out, 1, r, row)
      lengths[r] = n
    end
    set = require("oneencoder.data").FeatureSet(out, lengths)
  end
  table.sort(bad, function(a, b) return a.index < b.index end)
  return set, { kept = kept, bad = bad, stats = stats }
end

return M
