-- demo/emoji.lua: emoji concepts with their official names (the Unicode character names as published in
-- emoji-datasource), drawn in two styles (Google's Noto, Twitter's Twemoji: 64x64 PNG), and
-- Microsoft's Fluent emoji animated (WebP, @lobehub/fluent-emoji-anim-1) and in 3D (still WebP,
-- @lobehub/fluent-emoji-3d). Needs demo.npm's packages unpacked (demo/npm.lua).
--
--   local E = require "demo.emoji"
--   local set = E.load({ root = "./data" })
--   -- set.concepts: { {code, name, caption, keywords, category, subcategory, google, twitter,
--   --                  fluent_anim (nil or path), fluent_3d (nil or path), anim_variants}, ...}
--   --   sorted by code; anim_variants: the skin-tone variants' animations {path, caption, tone}
--   -- set.counts: entries, dropped (by category / subcategory), no_image, kept, animated, ...
--   E.CATEGORY_NOUNS["Food & Drink"]    --> "food or a drink" (for prompts: "an emoji of food or a drink")
--
-- Dropped as noise: country and regional flags (262: coloured rectangles told apart by name
-- only; the 8 other flags, chequered, white, pirate..., stay), Component (skin-tone swatches),
-- and the Symbols subcategories that are letters, keycaps, arrows, geometric shapes,
-- punctuation, maths and media-control buttons. Images: one per concept (no skin tones); the
-- animations of the skin-tone variants (290 of the 477 in fluent-emoji-anim-1) are kept as
-- further videos of their concept, captioned as CLDR names them ("waving hand: light skin tone").
local dkjson = require "dkjson"
local npm = require "demo.npm"
local oe = require "oneencoder"
local core = oe.core
local C = require "demo.captions"

local E = {}
E.DROP_CATEGORIES = { ["Component"] = true }
E.DROP_SUBCATEGORIES = { ["country-flag"] = true, ["subdivision-flag"] = true, alphanum = true, keycap = true,
  arrow = true, geometric = true, punctuation = true, math = true, ["av-symbol"] = true }
E.TONES = { ["1f3fb"] = "light skin tone", ["1f3fc"] = "medium-light skin tone", ["1f3fd"] = "medium skin tone",
  ["1f3fe"] = "medium-dark skin tone", ["1f3ff"] = "dark skin tone" }
E.CATEGORIES = { "Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink", "Travel & Places",
  "Activities", "Objects", "Symbols", "Flags" }
E.CATEGORY_NOUNS = {
  ["Smileys & Emotion"] = "a smiley or an emotion", ["People & Body"] = "a person or a body part",
  ["Animals & Nature"] = "an animal or a plant", ["Food & Drink"] = "food or a drink",
  ["Travel & Places"] = "a place or a vehicle", ["Activities"] = "an activity or a sport",
  ["Objects"] = "an object", ["Symbols"] = "a symbol", ["Flags"] = "a flag",
}

-- tone_caption(caption, key) -> "waving hand: light skin tone" for key "1F3FB" ("1F3FB-1F3FC": two tones)
function E.tone_caption(caption, key)
  local names = {}
  for t in tostring(key):lower():gmatch("[^%-]+") do
    if not E.TONES[t] then return nil end
    names[#names + 1] = E.TONES[t]
  end
  if #names == 2 and names[1] == names[2] then names[2] = nil end
  return caption .. ": " .. table.concat(names, ", ")
end

local function fail(fmt, ...) error(string.format(fmt, ...), 0) end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close(); return true end
  return false
end

-- fluent_name(image) -> candidate Fluent file stems for an emoji-datasource image name
-- ("1f636-200d-1f32b-fe0f.png" -> "1f636-200d-1f32b-fe0f", then without the fe0f selectors)
function E.fluent_names(image)
  local stem = tostring(image):gsub("%.png$", ""):lower()
  local out = { stem }
  local bare = stem:gsub("%-fe0f", "")
  if bare ~= stem then out[#out + 1] = bare end
  return out
end

-- read_json(path) -> decoded value (error naming the file on a bad file)
local function read_json(path)
  local f, err = io.open(path, "rb")
  if not f then fail("cannot open %s: %s (run the data step first)", path, err) end
  local s = f:read("a")
  f:close()
  local v, _, jerr = dkjson.decode(s, 1, nil)
  if v == nil then fail("%s: not valid JSON (%s)", path, tostring(jerr)) end
  if type(v) ~= "table" or #v == 0 then fail("%s: expected a non-empty JSON array of emoji", path) end
  return v
end

-- load(opts) -> {concepts, counts}. opts.root; opts.animated_only (default true: Fluent
-- files with a single frame are not videos); opts.check_anim (default true: header of each
-- Fluent animation read through core.webp_info, a corrupt one counted and skipped).
function E.load(opts)
  opts = opts or {}
  local gdir = npm.dir("emoji_google", opts) .. "/package"
  local tdir = npm.dir("emoji_twitter", opts) .. "/package"
  local adir = npm.dir("fluent_anim", opts) .. "/package/assets"
  local ddir = npm.dir("fluent_3d", opts) .. "/package/assets"
  local list = read_json(gdir .. "/emoji.json")
  local counts = { entries = #list, dropped_category = 0, dropped_subcategory = 0, no_image = 0, no_name = 0,
    kept = 0, fluent_anim_files = 0, animated = 0, still_anim_files = 0, corrupt_anim = 0, fluent_3d = 0,
    per_category = {}, corrupt_files = {} }
  local concepts = {}
  for i, e in ipairs(list) do
    if type(e) ~= "table" or type(e.unified) ~= "string" or type(e.image) ~= "string" then
      fail("%s: entry %d has no unified code or image name", gdir .. "/emoji.json", i)
    end
    if E.DROP_CATEGORIES[e.category] then counts.dropped_category = counts.dropped_category + 1
    elseif E.DROP_SUBCATEGORIES[e.subcategory] then counts.dropped_subcategory = counts.dropped_subcategory + 1
    else
      local g, t = gdir .. "/img/google/64/" .. e.image, tdir .. "/img/twitter/64/" .. e.image
      local caption = C.emoji_caption(e)
      if not caption then counts.no_name = counts.no_name + 1
      elseif not (e.has_img_google and e.has_img_twitter and exists(g) and exists(t)) then
        counts.no_image = counts.no_image + 1
      else
        local c = { code = e.unified:lower(), name = e.name, caption = caption, keywords = C.emoji_keywords(e, caption),
          category = e.category, subcategory = e.subcategory, google = g, twitter = t, image = e.image,
          sort_order = e.sort_order }
        for _, stem in ipairs(E.fluent_names(e.image)) do
          if not c.fluent_anim and exists(adir .. "/" .. stem .. ".webp") then c.fluent_anim = adir .. "/" .. stem .. ".webp" end
          if not c.fluent_3d and exists(ddir .. "/" .. stem .. ".webp") then c.fluent_3d = ddir .. "/" .. stem .. ".webp" end
        end
        c.anim_variants = {}
        local keys = {}
        for k in pairs(type(e.skin_variations) == "table" and e.skin_variations or {}) do keys[#keys + 1] = k end
        table.sort(keys)
        for _, k in ipairs(keys) do
          local v = e.skin_variations[k]
          local vcap = type(v) == "table" and type(v.image) == "string" and E.tone_caption(caption, k)
          if vcap then
            for _, stem in ipairs(E.fluent_names(v.image)) do
              local p = adir .. "/" .. stem .. ".webp"
              if exists(p) then c.anim_variants[#c.anim_variants + 1] = { path = p, caption = vcap, tone = k:lower() }; break end
            end
          end
        end
        concepts[#concepts + 1] = c
        counts.per_category[c.category] = (counts.per_category[c.category] or 0) + 1
      end
    end
  end
  table.sort(concepts, function(a, b) return a.code < b.code end)
  for _, c in ipairs(concepts) do
    if c.fluent_3d then counts.fluent_3d = counts.fluent_3d + 1 end
    if c.fluent_anim then
      counts.fluent_anim_files = counts.fluent_anim_files + 1
      if opts.check_anim ~= false then
        local info, err = core.webp_info(c.fluent_anim)
        if not info then
          counts.corrupt_anim = counts.corrupt_anim + 1
          counts.corrupt_files[#counts.corrupt_files + 1] = err
          c.fluent_anim = nil
        elseif info.frames < 2 and opts.animated_only ~= false then
          counts.still_anim_files = counts.still_anim_files + 1
          c.fluent_anim = nil
        else
          c.anim_frames = info.frames
        end
      end
      if c.fluent_anim then counts.animated = counts.animated + 1 end
    end
    local kept = {}
    for _, v in ipairs(c.anim_variants) do
      counts.fluent_anim_files = counts.fluent_anim_files + 1
      local info, err = true, nil
      if opts.check_anim ~= false then info, err = core.webp_info(v.path) end
      if not info then
        counts.corrupt_anim = counts.corrupt_anim + 1
        counts.corrupt_files[#counts.corrupt_files + 1] = err
      elseif info == true or info.frames >= 2 or opts.animated_only == false then
        v.frames = info ~= true and info.frames or nil
        kept[#kept + 1] = v
      else
        counts.still_anim_files = counts.still_anim_files + 1
      end
    end
    c.anim_variants = kept
    counts.animated_variants = (counts.animated_variants or 0) + #kept
  end
  counts.kept = #concepts
  return { concepts = concepts, counts = counts }
end

return E
