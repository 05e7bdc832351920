-- The pretrained pipeline's data (examples/demo/{captions,svg_meta,openclipart,emoji,npm,rich}.lua)
-- on small inputs made here: runs offline without the fetched data. Needs LuaExpat and dkjson
-- (lua-expat, lua-dkjson), rsvg-convert (librsvg2-bin) and tar/gzip.
package.path = "examples/?.lua;" .. package.path
local oe = require "oneencoder"
local core = oe.core
local C = require "demo.captions"
local meta = require "demo.svg_meta"
local OC = require "demo.openclipart"
local E = require "demo.emoji"
local npm = require "demo.npm"
local rich = require "demo.rich"
local data = require "demo.data"

local F = require "demo_files"
local q, sh, tmpdir, rmdir, write, read, exists = F.q, F.sh, F.tmpdir, F.rmdir, F.write, F.read, F.exists

describe("caption cleaning (hand-worked cases)", function()
  it("words(): file-name noise out, camelCase split, digits dropped, lowercase", function()
    assert.equals("arrow right blue", C.words("arrowRight_03-blue.svg"))
    assert.equals("orange burner", C.words("Orange_Burner"))
    assert.equals("ice cream cone", C.words("Ice Cream Cone (4 scoop)"))
    assert.equals("html file", C.words("HTMLFile"))
    assert.equals("chaussee glissante", C.words("chaussee_glissante"))
    assert.equals("don't panic", C.words("Don't panic!!"))
    assert.equals("jigsaw red", C.words("jigsaw_red_10"))
    assert.equals("", C.words("fc23 01 r16"))
    assert.equals("", C.words(nil))
  end)
  it("clean_title(): collections, authors, addresses and generic titles are unusable", function()
    local coll = { ["gramastar"] = true, ["Lemon SVG theme"] = true }
    assert.equals("jigsaw red", C.clean_title("Clipart by Nicu Buculei - jigsaw_red_10"))
    assert.same({ nil, "collection" }, { C.clean_title("gramastar", { collection = coll }) })
    assert.same({ nil, "collection" }, { C.clean_title("  Lemon SVG theme ", { collection = coll }) })
    assert.same({ nil, "author" }, { C.clean_title("Architetto Francesco Rollandin", { creator = "architetto francesco rollandin" }) })
    assert.same({ nil, "address" }, { C.clean_title("jean.victor.balin@gmail.com") })
    assert.same({ nil, "address" }, { C.clean_title("see http://aiga.org") })
    assert.same({ nil, "generic" }, { C.clean_title("SVG Icon") })
    assert.same({ nil, "generic" }, { C.clean_title("clip art") })
    assert.same({ nil, "empty" }, { C.clean_title("   ") })
    assert.same({ nil, "empty" }, { C.clean_title("fc05") })
    assert.equals("bat", C.clean_title("bat"))
  end)
  it("clean_keywords(): split on commas, noise and duplicates out, title words dropped on request", function()
    assert.same({ "mammal", "bat" }, C.clean_keywords({ "mammal, bat", "clip art", "hash", "Mammal", "" }))
    assert.same({ "animal" }, C.clean_keywords({ "bat", "animal" }, { drop = { bat = true } }))
    -- "flag_2": the underscore splits, the digit token goes, "flag" stays
    assert.same({ "united nations member", "europe", "flag" }, C.clean_keywords({ "united_nations_member", "europe; flag_2" , "x@y.z" }))
  end)
  it("clean_description(): first sentence, no 'This is', no boilerplate, at most 20 words", function()
    assert.equals("a nice detailed image of clouds", C.clean_description("This is a nice detailed image of clouds. Enjoy!"))
    assert.same({ nil, "address" }, { C.clean_description("jean.victor.balin@gmail.com") })
    assert.same({ nil, "collection" }, { C.clean_description("UK roadsigns", { collection = { ["UK roadsigns"] = true } }) })
    assert.same({ nil, "same as the title" }, { C.clean_description("Hot Dog", { title = "hot dog" }) })
    assert.same({ nil, "too long" }, { C.clean_description(string.rep("word ", 21)) })
    assert.equals(string.rep("word ", 19) .. "word", C.clean_description(string.rep("word ", 20)))
  end)
  it("drawing_caption(): title then up to 3 new keywords; the first keyword stands in for an unusable title", function()
    local c = C.drawing_caption({ title = "bat", description = "", keywords = { "mammal", "bat", "animal" } })
    assert.equals("bat, mammal, animal", c.text)
    assert.equals("title", c.title_source)
    c = C.drawing_caption({ title = "gramastar", description = "", keywords = { "stars", "geometry", "hash", "magick" } },
      { title_collections = { gramastar = true } })
    assert.equals("stars, geometry", c.text)
    assert.equals("keyword", c.title_source)
    c = C.drawing_caption({ title = "Red Lips", description = "Red female lips with highlights.", keywords = { "lips", "red", "kiss", "mouth", "face" } })
    assert.equals("red lips, kiss, mouth, face", c.text)
    assert.equals("red female lips with highlights", c.description)
    local none, why = C.drawing_caption({ title = "", description = "", keywords = { "clipart" } })
    assert.is_nil(none)
    assert.equals("no usable title (empty) and no keyword", why)
  end)
  it("collections(): raw values seen COLLECTION_MIN or more times", function()
    local v = {}
    for i = 1, C.COLLECTION_MIN do v[i] = "gramastar" end
    for i = 1, C.COLLECTION_MIN - 1 do v[#v + 1] = "card " end
    v[#v + 1] = ""
    assert.same({ gramastar = true }, C.collections(v))
  end)
  it("emoji names: lowercased official names, short names that add a word, skin tones", function()
    local e = { name = "GRINNING FACE WITH SMILING EYES", short_names = { "smile", "grinning_face_with_smiling_eyes" } }
    assert.equals("grinning face with smiling eyes", C.emoji_caption(e))
    assert.same({ "smile" }, C.emoji_keywords(e, C.emoji_caption(e)))
    assert.equals("x", C.emoji_caption({ name = "", short_names = { "x" } }))
    assert.is_nil(C.emoji_caption({ name = "" }))
    assert.equals("waving hand: light skin tone", E.tone_caption("waving hand", "1F3FB"))
    assert.equals("kiss: medium skin tone, dark skin tone", E.tone_caption("kiss", "1F3FD-1F3FF"))
    assert.equals("kiss: dark skin tone", E.tone_caption("kiss", "1F3FF-1F3FF"))
    assert.is_nil(E.tone_caption("kiss", "1F600"))
    assert.same({ "1f636-200d-1f32b-fe0f", "1f636-200d-1f32b" }, E.fluent_names("1f636-200d-1f32b-fe0f.png"))
  end)
end)

describe("SVG metadata through LuaExpat", function()
  local RDF = [[<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:DC="http://purl.org/dc/elements/1.1/"
     xmlns:R="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:cc="http://web.resource.org/cc/">
  <title>svg title (not the metadata)</title>
  <metadata><R:RDF><cc:Work R:about="">
    <DC:title>bat &amp; ball</DC:title>
    <DC:description>A bat.
 With a ball.</DC:description>
    <DC:subject><R:Bag><R:li>mammal</R:li><R:li>sport, ball</R:li></R:Bag></DC:subject>
    <DC:publisher><cc:Agent><DC:title>Open Clip Art Library</DC:title></cc:Agent></DC:publisher>
    <DC:creator><cc:Agent><DC:title>Jane Doe</DC:title></cc:Agent></DC:creator>
  </cc:Work></R:RDF></metadata>
  <path d="M0 0"/>
  <broken>
]]
  it("reads title, description, keywords and creator by namespace URI, and stops after the metadata", function()
    -- the file is cut after the metadata (an unclosed element): parsing stops before it
    local m = assert(meta.parse(RDF, "bat.svg"))
    assert.equals("bat & ball", m.title)
    assert.equals("A bat.\n With a ball.", m.description)
    assert.same({ "mammal", "sport, ball" }, m.keywords)
    assert.equals("Jane Doe", m.creator)
  end)
  it("gives empty fields without metadata, and a reason for malformed XML", function()
    local m = assert(meta.parse('<svg xmlns="http://www.w3.org/2000/svg"><path d="M0 0"/></svg>', "plain.svg"))
    assert.same({ "", "", 0, true }, { m.title, m.description, #m.keywords, m.no_metadata })
    local none, err = meta.parse('<svg><metadata><a></b></metadata></svg>', "bad.svg")
    assert.is_nil(none)
    assert.truthy(err:find("^bad.svg: ") and err:find("mismatched", 1, true), err)
    none, err = meta.parse("", "empty.svg")
    assert.is_nil(none)
    assert.truthy(err:find("^empty.svg: "), err)
  end)
end)

describe("drawings: grouping, noise categories, rendering", function()
  it("keeps one drawing per file name, in its first folder outside the dropped categories", function()
    local d, dropped, total = OC.group({ "animals/bat.svg", "animals/mammals/bat.svg", "shapes/star_01.svg",
      "shapes/cat.svg", "animals/cat.svg", "computer/icons/flat/save.svg", "signs_and_symbols/flags/europe/fr.svg",
      "signs_and_symbols/stop.svg", "computer/hardware/mouse.svg" })
    assert.equals(7, total)
    assert.equals(3, dropped)   -- star_01, save, fr
    local got = {}
    for i, it in ipairs(d) do got[i] = it.id .. "@" .. it.path .. "@" .. it.category end
    assert.same({ "bat@animals/bat.svg@animals", "cat@animals/cat.svg@animals", "mouse@computer/hardware/mouse.svg@computer",
      "stop@signs_and_symbols/stop.svg@signs_and_symbols" }, got)
    assert.equals("^shapes/", OC.dropped("shapes/arrows/a.svg"))
    assert.is_nil(OC.dropped("food/fruit/apple.svg"))
  end)
  it("pads on white, centred (hand-worked 2x1 into 3x3), and crops a 1-pixel overshoot", function()
    local img = core.from_bytes("\1\2\3\4\5\6", "uint8", { 1, 2, 3 })
    local out = core.to_bytes(OC.pad(img, 3))
    local W = "\255\255\255"
    assert.equals(W .. W .. W .. "\1\2\3\4\5\6" .. W .. W .. W .. W, out)
    local wide = core.from_bytes(string.rep("\0", 2 * 5 * 3), "uint8", { 2, 5, 3 })
    assert.same({ 4, 4, 3 }, core.shape(OC.pad(wide, 4)))   -- 5 > 4 by one: cropped, then padded
  end)
  it("renders SVG on white at a fixed size, counts a broken file once and does not retry it", function()
    local root = tmpdir()
    local good = root .. "/in/red.svg"
    write(good, '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect x="0" y="0" width="40" height="20" fill="#ff0000"/></svg>')
    write(root .. "/in/broken.svg", '<svg xmlns="http://www.w3.org/2000/svg"><rect')
    local items = { { id = "red", path = good }, { id = "broken", path = root .. "/in/broken.svg" } }
    local paths, failed = OC.render(items, { root = root, size = 16, workers = 1 })
    assert.equals(root .. "/openclipart/png16/red.png", paths[1])
    assert.is_nil(paths[2])
    assert.truthy(failed.broken:find("rsvg-convert failed", 1, true), failed.broken)
    local img = assert(oe.image.load(paths[1]))
    assert.same({ 16, 16, 3 }, core.shape(img))
    -- 40x20 fitted into 16 x 16 is 16 x 8, centred: rows 0..3 and 12..15 white, the middle red
    assert.same({ 255, 255, 255 }, { core.get(img, 1, 1, 1), core.get(img, 1, 1, 2), core.get(img, 1, 1, 3) })
    assert.same({ 255, 0, 0 }, { core.get(img, 8, 8, 1), core.get(img, 8, 8, 2), core.get(img, 8, 8, 3) })
    assert.same({ 255, 255, 255 }, { core.get(img, 16, 8, 1), core.get(img, 16, 8, 2), core.get(img, 16, 8, 3) })
    -- second run: cached result kept, the broken file not tried again (its reason listed once)
    os.remove(good)
    local p2, f2 = OC.render(items, { root = root, size = 16, workers = 1 })
    assert.equals(paths[1], p2[1])
    assert.equals(failed.broken, f2.broken)
    local n = 0
    for _ in read(root .. "/openclipart/png16/failed.txt"):gmatch("[^\n]+") do n = n + 1 end
    assert.equals(1, n)
    rmdir(root)
  end)
end)

describe("held-out splits fixed by seed", function()
  local keys = {}
  for i = 1, 200 do keys[i] = string.format("k%03d", i) end
  local function size(s) local n = 0 for _ in pairs(s) do n = n + 1 end return n end
  it("holds out round(frac * distinct keys), the same set for the same seed in any order and with repeats", function()
    local a = rich.split(keys, 0.25, 7)
    assert.equals(50, size(a))
    local shuffled = {}
    for i = #keys, 1, -1 do shuffled[#shuffled + 1] = keys[i]; shuffled[#shuffled + 1] = keys[i] end
    assert.same(a, rich.split(shuffled, 0.25, 7))
    local b = rich.split(keys, 0.25, 8)
    assert.equals(50, size(b))
    assert.are_not.same(a, b)
    for k in pairs(a) do assert.truthy(k:match("^k%d%d%d$")) end
    assert.equals(0, size(rich.split(keys, 0, 7)))
    assert.equals(200, size(rich.split(keys, 1, 7)))
    assert.has_error(function() rich.split(keys, 1.5, 7) end)
  end)
  it("follows demo.data's splitmix64 stream (Fisher-Yates from the end), worked for 4 keys", function()
    local r = data.rng(3)
    local u = { "a", "b", "c", "d" }
    for i = 4, 2, -1 do local j = r(i); u[i], u[j] = u[j], u[i] end
    assert.same({ [u[1]] = true, [u[2]] = true }, rich.split({ "d", "c", "b", "a" }, 0.5, 3))
  end)
end)

describe("voices of the spoken names", function()
  it("train on 24 espeak-ng voices and flite slt/awb, hold out two espeak-ng voices and flite rms/kal16", function()
    local v = rich.voices()
    assert.equals(26, #v.train)
    assert.same({ "espeak:en-029+f5:170:55", "espeak:en-us-nyc+m7:160:45", "flite:rms", "flite:kal16" }, v.test)
    local tr = {}
    for _, x in ipairs(v.train) do tr[x] = true end
    for _, x in ipairs(v.test) do assert.is_nil(tr[x], x) end
    assert.truthy(tr["flite:slt"] and tr["flite:awb"])
  end)
end)

describe("Asterisk prompt groups", function()
  it("sorts digits, single letters and the phonetic alphabet into labelled groups", function()
    local list = {
      { id = "digits/7", path = "7.wav", text = "seven", digit = 7 }, { id = "digits/0", path = "0.wav", text = "zero", digit = 0 },
      { id = "letters/b", path = "b.wav", text = "b" }, { id = "letters/dash", path = "d.wav", text = "dash" },
      { id = "phonetic/z_p", path = "z.wav", text = "zulu" }, { id = "phonetic/9_p", path = "9.wav", text = "niner" },
      { id = "vm-goodbye", path = "g.wav", text = "Goodbye!" }, { id = "silence/1", path = "s.wav", text = "" },
    }
    local g = rich.asterisk_groups(list)
    assert.same({ 0, 7 }, { g.digits[1].label, g.digits[2].label })
    assert.same({ "letters/b", 1 }, { g.letters[1].id, g.letters[1].label })
    assert.same({ "phonetic/z_p", 25 }, { g.phonetic[1].id, g.phonetic[1].label })
    local other = {}
    for i, it in ipairs(g.other) do other[i] = it.id end
    assert.same({ "letters/dash", "phonetic/9_p", "vm-goodbye" }, other)
    assert.equals(62, #rich.vocabulary_words())
  end)
end)

describe("npm packages: pinned SHA-256, unpacked once, nothing half-written", function()
  local root, tgz, sum, saved
  setup(function()
    root = tmpdir()
    write(root .. "/src/package/emoji.json", "[]")
    write(root .. "/src/package/LICENSE", "MIT")
    write(root .. "/src/package/README.md", "readme")
    write(root .. "/src/package/img/google/64/1f600.png", string.rep("p", 300))
    write(root .. "/src/package/img/google/64/1f601.png", "q")
    write(root .. "/src/package/extra/skip.bin", "not unpacked")
    tgz = root .. "/emoji-datasource-google-16.0.0.tgz"
    assert(sh("cd " .. q(root .. "/src") .. " && tar czf " .. q(tgz) .. " package"))
    sum = npm.sha256(tgz)
    saved = npm.PACKAGES.emoji_google
    npm.PACKAGES.emoji_google = setmetatable({ sha256 = sum, min_files = 3 }, { __index = saved })
  end)
  teardown(function()
    npm.PACKAGES.emoji_google = saved
    rmdir(root)
  end)
  -- stands in for `npm pack`: copies the tarball into the folder npm would write to
  local function fetch_from(path) return "cd %s && cp " .. q(path) .. " . && : %s" end

  it("fetches, checks, unpacks only the wanted files, then uses the cache", function()
    local cache = root .. "/c1"
    local r = npm.ensure("emoji_google", { root = cache, fetch_cmd = fetch_from(tgz) })
    assert.equals("fetched", r.state)
    assert.equals(5, r.files)
    local dir = cache .. "/npm/emoji-datasource-google-16.0.0"
    assert.equals(string.rep("p", 300), read(dir .. "/package/img/google/64/1f600.png"))
    assert.is_false(exists(dir .. "/package/extra/skip.bin"))
    assert.truthy(read(dir .. ".stamp"):find("300 package/img/google/64/1f600.png", 1, true))
    assert.equals("cached", npm.ensure("emoji_google", { root = cache, fetch_cmd = "false %s %s" }).state)
    -- a truncated file: unpacked again from the kept tarball, without fetching
    write(dir .. "/package/img/google/64/1f600.png", "short")
    assert.equals("extracted", npm.ensure("emoji_google", { root = cache, fetch_cmd = "false %s %s" }).state)
    assert.equals(string.rep("p", 300), read(dir .. "/package/img/google/64/1f600.png"))
    assert.same({ emoji_google = "ok" }, { emoji_google = npm.status({ root = cache }).emoji_google })
  end)
  it("names a checksum mismatch and leaves no tarball and no unpacked folder", function()
    local cache = root .. "/c2"
    local other = root .. "/other/emoji-datasource-google-16.0.0.tgz"
    write(other, "not the pinned tarball")
    local ok, err = pcall(npm.ensure, "emoji_google", { root = cache, fetch_cmd = fetch_from(other) })
    assert.is_false(ok)
    assert.truthy(err:find("checksum mismatch for emoji-datasource-google@16.0.0", 1, true), err)
    assert.truthy(err:find("pinned " .. sum, 1, true), err)
    assert.is_false(exists(cache .. "/npm/tarballs/emoji-datasource-google-16.0.0.tgz"))
    assert.is_false(exists(cache .. "/npm/emoji-datasource-google-16.0.0.stamp"))
    local _, listing = pcall(function() return io.popen("ls -A " .. q(cache .. "/npm/tarballs")):read("a") end)
    assert.equals("", listing)
  end)
  it("names a failed download with npm's message", function()
    local ok, err = pcall(npm.ensure, "emoji_google", { root = root .. "/c3", fetch_cmd = "cd %s && echo 'npm error 404 %s' && false" })
    assert.is_false(ok)
    assert.truthy(err:find("npm pack emoji-datasource-google@16.0.0 failed", 1, true) and err:find("npm error 404", 1, true), err)
  end)
end)

describe("emoji concepts from an emoji-datasource layout", function()
  local root
  setup(function()
    root = tmpdir()
    local list = {
      { name = "GRINNING FACE", unified = "1F600", image = "1f600.png", short_names = { "grinning" }, category = "Smileys & Emotion",
        subcategory = "face-smiling", has_img_google = true, has_img_twitter = true },
      { name = "WAVING HAND SIGN", unified = "1F44B", image = "1f44b.png", short_names = { "wave" }, category = "People & Body",
        subcategory = "hand-fingers-open", has_img_google = true, has_img_twitter = true,
        skin_variations = { ["1F3FB"] = { image = "1f44b-1f3fb.png" }, ["1F3FF"] = { image = "1f44b-1f3ff.png" } } },
      { name = "Egypt Flag", unified = "1F1EA-1F1EC", image = "1f1ea-1f1ec.png", short_names = { "flag-eg" }, category = "Flags",
        subcategory = "country-flag", has_img_google = true, has_img_twitter = true },
      { name = "CHEQUERED FLAG", unified = "1F3C1", image = "1f3c1.png", short_names = { "checkered_flag" }, category = "Flags",
        subcategory = "flag", has_img_google = true, has_img_twitter = true },
      { name = "KEYCAP 2", unified = "0032-FE0F-20E3", image = "0032-fe0f-20e3.png", short_names = { "two" }, category = "Symbols",
        subcategory = "keycap", has_img_google = true, has_img_twitter = true },
      { name = "LIGHT SKIN TONE", unified = "1F3FB", image = "1f3fb.png", short_names = { "skin-tone-2" }, category = "Component",
        subcategory = "skin-tone", has_img_google = true, has_img_twitter = true },
      { name = "GHOST", unified = "1F47B", image = "1f47b.png", short_names = { "ghost" }, category = "Smileys & Emotion",
        subcategory = "face-costume", has_img_google = true, has_img_twitter = false },
    }
    local dkjson = require "dkjson"
    local g = root .. "/npm/emoji-datasource-google-16.0.0/package"
    local t = root .. "/npm/emoji-datasource-twitter-16.0.0/package"
    write(g .. "/emoji.json", dkjson.encode(list))
    for _, e in ipairs(list) do
      write(g .. "/img/google/64/" .. e.image, "png")
      write(t .. "/img/twitter/64/" .. e.image, "png")
    end
    local a = root .. "/npm/lobehub-fluent-emoji-anim-1-1.0.0/package/assets/"
    local d = root .. "/npm/lobehub-fluent-emoji-3d-1.1.0/package/assets/"
    local anim = read("spec/fixtures/webp/anim_lossy.webp")
    write(a .. "1f600.webp", read("spec/fixtures/webp/still_lossy.webp"))     -- a still file: not a video
    write(a .. "1f44b.webp", anim)
    write(a .. "1f44b-1f3fb.webp", anim)
    write(a .. "1f44b-1f3ff.webp", anim:sub(1, 100))                            -- corrupt: counted, skipped
    write(a .. "1f3c1.webp", anim)
    write(d .. "1f600.webp", read("spec/fixtures/webp/still_lossy.webp"))
    write(d .. "1f44b.webp", read("spec/fixtures/webp/still_lossy.webp"))
  end)
  teardown(function() rmdir(root) end)

  it("keeps named concepts with both styles, drops the noise, finds animations and 3D renders", function()
    local s = E.load({ root = root })
    local got = {}
    for i, c in ipairs(s.concepts) do got[i] = c.code .. "=" .. c.caption end
    assert.same({ "1f3c1=chequered flag", "1f44b=waving hand sign", "1f600=grinning face" }, got)
    local c = s.concepts[2]
    assert.truthy(c.fluent_anim:find("/1f44b.webp$"))
    assert.truthy(c.fluent_3d:find("/1f44b.webp$"))
    assert.equals(4, c.anim_frames)
    assert.equals(1, #c.anim_variants)
    assert.equals("waving hand sign: light skin tone", c.anim_variants[1].caption)
    assert.same({ "wave" }, c.keywords)
    assert.is_nil(s.concepts[3].fluent_anim)   -- a single frame
    assert.truthy(s.concepts[3].fluent_3d)
    local n = s.counts
    assert.same({ 7, 1, 2, 1, 3, 1, 1, 1 }, { n.entries, n.dropped_category, n.dropped_subcategory, n.no_image, n.kept,
      n.corrupt_anim, n.still_anim_files, n.animated_variants })
    assert.truthy(n.corrupt_files[1]:find("1f44b-1f3ff.webp: truncated WebP file", 1, true), n.corrupt_files[1])
  end)
  it("names a broken emoji.json", function()
    local bad = root .. "/bad"
    write(bad .. "/npm/emoji-datasource-google-16.0.0/package/emoji.json", "[{\"name\": ")
    local ok, err = pcall(E.load, { root = bad })
    assert.is_false(ok)
    assert.truthy(err:find("emoji.json: not valid JSON", 1, true), err)
  end)
end)
