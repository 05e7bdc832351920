-- demo/captions.lua: captions for drawings and emoji from their own metadata, cleaned.
-- Pure functions on strings (no I/O); spec/demo_rich_data_spec.lua works cases out by hand.
--
--   local C = require "demo.captions"
--   C.words("arrowRight_03-blue.svg")          --> "arrow right blue"
--   C.clean_title("Clipart by Nicu Buculei - jigsaw_red_10")  --> "jigsaw red"
--   C.clean_keywords({ "mammal, bat", "clip art", "hash" })   --> { "mammal", "bat" }
--   C.clean_description("This is a nice detailed image of clouds.")  --> "a nice detailed image of clouds"
--   C.drawing_caption{ title = "bat", keywords = { "mammal", "bat", "animal" } }
--     --> { text = "bat, mammal, animal", title = "bat", ... }
--   C.emoji_caption{ name = "GRINNING FACE WITH SMILING EYES", short_names = { "smile" } }
--     --> "grinning face with smiling eyes"
--
-- Rules (stated once, applied everywhere):
--  * words(): file-name noise removed: an extension (.svg/.png/...), underscores and hyphens
--    between words become spaces, camelCase is split, any token holding a digit is dropped
--    (version numbers, "01", "r16", "111"), as are bracketed notes and stray punctuation;
--    lowercase, single spaces.
--  * a title is unusable when empty after cleaning, when it names a collection (the same raw
--    title on COLLECTION_MIN or more drawings: "gramastar" on 1,375 stars, "Part of the Flat
--    Icon Collection (...)", "Lemon SVG theme"), when it is the author's name, an e-mail or a URL,
--    or when it is a generic word (NOISE_WORDS alone: "icon", "clipart", "card"...).
--  * "Clipart by <author> - <file name>": the prefix goes, the file name is cleaned as above.
--  * keywords: split on commas and semicolons, cleaned like words(), NOISE_WORDS and tokens of
--    the collections dropped ("hash", "magick", "lemon theme icon"), duplicates dropped.
--  * descriptions: a URL, an e-mail or a description shared by COLLECTION_MIN+ drawings is
--    dropped; otherwise the first sentence, without "This is", at most DESC_MAX_WORDS words.
local C = {}

C.COLLECTION_MIN = 5
C.DESC_MAX_WORDS = 20
C.MAX_KEYWORDS = 3

-- words that carry no content alone (file formats, site words, collection words, icon-theme jargon)
C.NOISE_WORDS = {}
for w in ([[clip art clipart clip_art cliparts image images picture media svg png eps vector
  public domain publicdomain openclipart open clip library externalsource remix icon icons theme themes
  hash magick lemon lemon_theme_icon mapsym webpage menu action actions application applications
  filesystem filesystems mimetypes mime types mime-types device devices unsorted special various
  collection inkscape drawing untitled new file simple card gramastar test sample etiquette flat
  plastik blueberry gold crystal nuvola tango]]):gmatch("%S+") do
  C.NOISE_WORDS[w] = true
end
-- phrases dropped as keywords though their words may be fine alone
C.NOISE_PHRASES = { ["clip art"] = true, ["public domain"] = true, ["lemon theme icon"] = true,
  ["mime types"] = true, ["signs and symbols"] = true, ["line art"] = true }

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", ""):gsub("%s+", " ")) end

-- words(s) -> cleaned lowercase words, single spaces ("" when nothing is left)
function C.words(s)
  s = tostring(s or "")
  s = s:gsub("%.[sS][vV][gG][zZ]?%f[%W]", " "):gsub("%.[pP][nN][gG]%f[%W]", " ")
       :gsub("%.[jJ][pP][eE]?[gG]%f[%W]", " "):gsub("%.[eE][pP][sS]%f[%W]", " ")
  s = s:gsub("%b()", " "):gsub("%b[]", " "):gsub("%b{}", " ")
  s = s:gsub("(%l)(%u)", "%1 %2"):gsub("(%u)(%u%l)", "%1 %2")   -- camelCase, HTMLFile
  s = s:gsub("[_%-/\\|+&]", " ")
  local out = {}
  for tok in s:gmatch("%S+") do
    tok = tok:gsub("^[%p]+", ""):gsub("[%p]+$", "")
    if tok ~= "" and not tok:find("%d") and not tok:find("[%c]") then
      -- inner punctuation other than an apostrophe splits the token
      for part in tok:gsub("[^%w'\128-\255]", " "):gmatch("%S+") do out[#out + 1] = part:lower() end
    end
  end
  return table.concat(out, " ")
end

local function all_noise(words)
  if words == "" then return true end
  if C.NOISE_PHRASES[words] then return true end
  for w in words:gmatch("%S+") do
    if not C.NOISE_WORDS[w] then return false end
  end
  return true
end
C.all_noise = all_noise

local function looks_like_address(s) return s:find("@", 1, true) or s:find("://", 1, true) or s:find("www%.") end

-- clean_title(title, opts) -> cleaned title | nil, reason.
-- opts.collection (set of raw titles seen on COLLECTION_MIN+ drawings), opts.creator
function C.clean_title(title, opts)
  opts = opts or {}
  local raw = trim(tostring(title or ""))
  if raw == "" then return nil, "empty" end
  if opts.collection and opts.collection[raw] then return nil, "collection" end
  if looks_like_address(raw) then return nil, "address" end
  local by = raw:match("^[Cc]lipart by .- %- (.+)$")
  if by then raw = by end
  if opts.creator and opts.creator ~= "" and raw:lower() == trim(opts.creator):lower() then return nil, "author" end
  local w = C.words(raw)
  if w == "" then return nil, "empty" end
  if all_noise(w) then return nil, "generic" end
  return w
end

-- clean_keywords(list, opts) -> list of cleaned keywords (order kept, duplicates and noise dropped)
-- opts.drop: extra set of words to drop (e.g. the words of the drawing's own title)
function C.clean_keywords(list, opts)
  opts = opts or {}
  local out, seen = {}, {}
  for _, item in ipairs(list or {}) do
    for piece in tostring(item):gmatch("[^,;]+") do
      if not looks_like_address(piece) then
        local w = C.words(piece)
        if w ~= "" and not all_noise(w) and not seen[w] and not (opts.drop and opts.drop[w]) then
          seen[w] = true
          out[#out + 1] = w
        end
      end
    end
  end
  return out
end

-- clean_description(desc, opts) -> cleaned first sentence | nil, reason. opts.collection: set of
-- descriptions shared by COLLECTION_MIN+ drawings; opts.title: a description equal to it is dropped
function C.clean_description(desc, opts)
  opts = opts or {}
  local raw = trim(tostring(desc or ""))
  if raw == "" then return nil, "empty" end
  if opts.collection and opts.collection[raw] then return nil, "collection" end
  if looks_like_address(raw) then return nil, "address" end
  local first = raw:match("^(.-[%.!?])%s") or raw
  first = first:gsub("^[Tt]his is ", ""):gsub("^[Tt]his ", "")
  local w = C.words(first)
  if w == "" or all_noise(w) then return nil, "generic" end
  if opts.title and w == opts.title then return nil, "same as the title" end
  local n, cut = 0, {}
  for tok in w:gmatch("%S+") do
    n = n + 1
    if n > C.DESC_MAX_WORDS then return nil, "too long" end
    cut[n] = tok
  end
  return table.concat(cut, " ")
end

-- collections(values) -> set of the raw (trimmed) values seen COLLECTION_MIN or more times
function C.collections(values)
  local count, set = {}, {}
  for _, v in ipairs(values) do
    local t = trim(tostring(v or ""))
    if t ~= "" then count[t] = (count[t] or 0) + 1 end
  end
  for t, n in pairs(count) do if n >= C.COLLECTION_MIN then set[t] = true end end
  return set
end

-- drawing_caption(m, opts) -> {text, title, keywords, description} | nil, reason
-- m: {title, description, keywords, creator} (demo.svg_meta). The caption is the cleaned title,
-- or the first keyword when the title is unusable, followed by up to MAX_KEYWORDS keywords not
-- already in it: "bat, mammal, animal". opts: title_collections, desc_collections (sets).
function C.drawing_caption(m, opts)
  opts = opts or {}
  local title, why = C.clean_title(m.title, { collection = opts.title_collections, creator = m.creator })
  local in_title = {}
  if title then for w in title:gmatch("%S+") do in_title[w] = true end; in_title[title] = true end
  local kws = C.clean_keywords(m.keywords, { drop = in_title })
  local head = title
  if not head then
    if #kws == 0 then return nil, "no usable title (" .. why .. ") and no keyword" end
    head = table.remove(kws, 1)
  end
  local parts = { head }
  for i = 1, math.min(C.MAX_KEYWORDS, #kws) do parts[#parts + 1] = kws[i] end
  local desc = C.clean_description(m.description, { collection = opts.desc_collections, title = head })
  return { text = table.concat(parts, ", "), title = head, keywords = kws, description = desc,
           title_source = title and "title" or "keyword" }
end

-- emoji_caption(e) -> the official name, lowercased ("GRINNING FACE" -> "grinning face"); the
-- flag and keycap prefixes of the names stay; nil for a nameless entry.
function C.emoji_caption(e)
  local name = trim(tostring(e.name or ""))
  if name == "" then
    local s = e.short_names and e.short_names[1] or e.short_name
    if not s then return nil end
    name = s
  end
  local w = name:lower():gsub("[_%-]", " "):gsub("[^%w%s'\128-\255]", " ")
  w = trim(w)
  return w ~= "" and w or nil
end

-- emoji_keywords(e) -> the short names that add a word not in the name ("smile" for grinning face
-- with smiling eyes), cleaned
function C.emoji_keywords(e, caption)
  local in_name = {}
  for w in (caption or ""):gmatch("%S+") do in_name[w] = true end
  local out, seen = {}, {}
  for _, s in ipairs(e.short_names or {}) do
    local w = trim(s:lower():gsub("[_%-]", " "))
    if w ~= "" and w ~= caption and not seen[w] and not w:find("%d") then
      local new = false
      for t in w:gmatch("%S+") do if not in_name[t] then new = true end end
      if new then seen[w] = true; out[#out + 1] = w end
    end
  end
  return out
end

return C
