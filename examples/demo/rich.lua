-- demo/rich.lua: the data of the pretrained pipeline (issue 13), on top of demo/data.lua's.
--
--   local rich = require "demo.rich"
--   local S = rich.prepare({ root = "./data", progress = true })
--   -- everything data.prepare gives (Fashion-MNIST, digits, class captions and their speech,
--   -- the 568 Asterisk recordings), and:
--   -- S.drawings.train/.test    { {id, path (224x224 PNG on white), svg, caption, title, keywords,
--   --                              description, category}, ... }   split by caption, seeded
--   -- S.emoji.train/.test       concepts { {code, caption, keywords, category, google, twitter,
--   --                              fluent_anim, fluent_3d, anim_variants}, ... }  split by concept
--   -- S.emoji_images.train/.test  { {path, style ("google" | "twitter"), code, caption, category}, ... }
--   -- S.videos.train/.test      { {path (animated WebP), caption, code, category, frames}, ... }
--   -- S.fluent_3d.train/.test   { {path (still WebP), code, caption, animated} }: the concepts' 3D
--   --                           renders; held-out ones are the gallery of video -> image (never
--   --                           trained together), training ones are step-1 images with their names
--   -- S.spoken.train/.test      { {path, text, voice, source, ref}, ... } (disjoint voices: R.voices())
--   -- S.asterisk_groups         {digits, letters, phonetic, other}: { {id, path, text, label}, ... }
--   -- S.counts                  sizes and what was dropped, per source (for the report)
--
-- Held out: a seeded quarter of the drawing captions (every drawing sharing a caption on the
-- same side, so a held-out caption was never seen in training), a seeded fifth of the emoji
-- concepts (both styles, the animations and the 3D renders of a concept on the same side: the
-- other style of a held-out emoji is its natural held-out pair), the test voices, and all the
-- Asterisk recordings. Spoken captions in training say training captions only, plus the words
-- of the Asterisk vocabulary (digits, letters, phonetic alphabet) in synthetic voices; the
-- real recordings of those words are never trained on.
local data = require "demo.data"
local npm = require "demo.npm"
local OC = require "demo.openclipart"
local E = require "demo.emoji"
local oe = require "oneencoder"
local core = oe.core

local R = {}
R.DRAWING_TEST = 0.25
R.EMOJI_TEST = 0.2
R.PHONETIC = { "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
  "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform",
  "victor", "whiskey", "xray", "yankee", "zulu" }

local function say(opts, fmt, ...)
  if opts and opts.progress then io.stderr:write(string.format(fmt, ...), "\n"); io.stderr:flush() end
end

-- split(keys, frac, seed) -> set {key = true} of the held-out keys: the distinct keys sorted,
-- shuffled by demo.data's splitmix64 stream of seed, the first round(frac * n) held out.
-- The same keys and seed give the same set whatever their order.
function R.split(keys, frac, seed)
  if type(frac) ~= "number" or frac < 0 or frac > 1 then error("split: frac must be in 0..1", 2) end
  local seen, uniq = {}, {}
  for _, k in ipairs(keys) do
    if not seen[k] then seen[k] = true; uniq[#uniq + 1] = k end
  end
  table.sort(uniq)
  local r = data.rng(seed)
  for i = #uniq, 2, -1 do
    local j = r(i)
    uniq[i], uniq[j] = uniq[j], uniq[i]
  end
  local n = math.floor(frac * #uniq + 0.5)
  local test = {}
  for i = 1, n do test[uniq[i]] = true end
  return test
end

-- asterisk_groups(list) -> {digits, letters, phonetic, other}; each item {id, path, text, label}
-- with label the 0-based class within its group (digits: the digit; letters: a = 0; phonetic:
-- alpha = 0). letters holds the 26 single letters (letters/a .. letters/z); other: every
-- remaining prompt with a spoken transcript (punctuation names, words, sentences).
function R.asterisk_groups(list)
  local g = { digits = {}, letters = {}, phonetic = {}, other = {} }
  local ph = {}
  for i, w in ipairs(R.PHONETIC) do ph[w] = i - 1 end
  for _, e in ipairs(list) do
    local letter = e.id:match("^letters/(%l)$")
    local it = { id = e.id, path = e.path, text = e.text }
    if e.digit then it.label = e.digit; table.insert(g.digits, it)
    elseif letter then it.label = letter:byte() - 97; table.insert(g.letters, it)
    elseif e.id:match("^phonetic/%l_p$") and ph[e.text] then it.label = ph[e.text]; table.insert(g.phonetic, it)
    elseif e.text:match("%a") then table.insert(g.other, it) end
  end
  for _, k in ipairs({ "digits", "letters", "phonetic" }) do table.sort(g[k], function(a, b) return a.label < b.label end) end
  return g
end

-- voices() -> {train, test}: demo.data's split with two of its four held-out flite voices
-- (slt, awb) moved to training, so that training hears 8 kHz telephone-band speech as the real
-- Asterisk prompts are; still disjoint: held out are the two espeak-ng voices of a language and
-- variant never trained on and the flite voices rms and kal16.
function R.voices()
  local base = data.voices()
  local train, test = {}, {}
  for _, v in ipairs(base.train) do train[#train + 1] = v end
  for _, v in ipairs(base.test) do
    if v == "flite:slt" or v == "flite:awb" then train[#train + 1] = v else test[#test + 1] = v end
  end
  return { train = train, test = test }
end

-- the words of the Asterisk vocabulary spoken in training (synthetic voices only)
function R.vocabulary_words()
  local w = {}
  for _, d in ipairs(data.DIGIT_CLASSES) do w[#w + 1] = d end
  for c = 97, 122 do w[#w + 1] = string.char(c) end
  for _, p in ipairs(R.PHONETIC) do w[#w + 1] = p end
  return w
end

-- prepare(opts) -> S (see the top). opts: those of data.prepare, and seed (1234),
-- drawing_test, emoji_test (fractions), vocab_voices (how many training voices say every
-- vocabulary word: all 26 by default), size (224), train_names (default true; false: the
-- training drawings' and emoji's names are not synthesised, the held-out ones are).
function R.prepare(opts)
  opts = opts or {}
  local t_all = core.now()
  local base = {}
  for k, v in pairs(opts) do base[k] = v end
  base.rich = true
  base.voices = R.voices()   -- the class captions' speech with the same voice split as the rest
  base.n_clips_train, base.n_clips_test = 0, 0
  local S = data.prepare(base)
  local seed = opts.seed or 1234
  S.counts = {}
  -- npm packages
  local t0 = core.now()
  local fetched = false
  for _, key in ipairs(npm.ORDER) do
    local r = npm.ensure(key, opts)
    if r.state ~= "cached" then fetched = true end
    say(opts, "  %-28s %-10s (%d files, %.1f s)", npm.PACKAGES[key].spec, r.state, r.files, r.seconds)
  end
  S.timings.npm = core.now() - t0
  S.first_fetch = S.first_fetch or fetched
  -- drawings
  t0 = core.now()
  local oc = OC.load(opts)
  local paths, failed = OC.render(oc.items, { root = opts.root, size = opts.size or 224, progress = opts.progress,
    workers = opts.workers })
  local drawings, caps = {}, {}
  for i, it in ipairs(oc.items) do
    if paths[i] then
      it.svg, it.path = it.path, paths[i]
      drawings[#drawings + 1] = it
      caps[#caps + 1] = it.caption
    end
  end
  local nfail = 0
  for _ in pairs(failed) do nfail = nfail + 1 end
  local dtest = R.split(caps, opts.drawing_test or R.DRAWING_TEST, seed + 101)
  S.drawings = { train = {}, test = {} }
  for _, it in ipairs(drawings) do table.insert(S.drawings[dtest[it.caption] and "test" or "train"], it) end
  oc.counts.render_failed = nfail
  oc.counts.render_failures = failed
  S.counts.drawings = oc.counts
  S.timings.drawings = core.now() - t0
  say(opts, "  drawings: %d kept of %d (%d dropped by category, %d without a caption, %d corrupt, %d failed to render); %d train / %d test",
    #drawings, oc.counts.drawings, oc.counts.dropped_category, oc.counts.dropped_caption, oc.counts.corrupt, nfail,
    #S.drawings.train, #S.drawings.test)
  -- emoji
  t0 = core.now()
  local em = E.load(opts)
  local codes = {}
  for i, c in ipairs(em.concepts) do codes[i] = c.code end
  local etest = R.split(codes, opts.emoji_test or R.EMOJI_TEST, seed + 202)
  S.emoji = { train = {}, test = {} }
  S.emoji_images = { train = {}, test = {} }
  S.videos = { train = {}, test = {} }
  S.fluent_3d = { train = {}, test = {} }
  for _, c in ipairs(em.concepts) do
    local split = etest[c.code] and "test" or "train"
    table.insert(S.emoji[split], c)
    for _, style in ipairs({ "google", "twitter" }) do
      table.insert(S.emoji_images[split], { path = c[style], style = style, code = c.code, caption = c.caption,
        category = c.category })
    end
    if c.fluent_anim then
      table.insert(S.videos[split], { path = c.fluent_anim, caption = c.caption, code = c.code, category = c.category,
        frames = c.anim_frames })
    end
    for _, v in ipairs(c.anim_variants) do
      table.insert(S.videos[split], { path = v.path, caption = v.caption, code = c.code, category = c.category,
        frames = v.frames, tone = v.tone })
    end
    if c.fluent_3d then
      table.insert(S.fluent_3d[split], { path = c.fluent_3d, code = c.code, caption = c.caption,
        animated = c.fluent_anim ~= nil or #c.anim_variants > 0 })
    end
  end
  S.counts.emoji = em.counts
  S.timings.emoji = core.now() - t0
  say(opts, "  emoji: %d concepts (%d dropped), %d train / %d test; videos %d train / %d test; 3D renders of held-out concepts %d",
    #em.concepts, em.counts.dropped_category + em.counts.dropped_subcategory, #S.emoji.train, #S.emoji.test,
    #S.videos.train, #S.videos.test, #S.fluent_3d.test)
  -- Asterisk groups
  S.asterisk_groups = R.asterisk_groups(S.asterisk)
  -- spoken names: training captions in training voices, held-out ones in held-out voices
  t0 = core.now()
  local voices = R.voices()
  S.rich_voices = voices
  local r = data.rng(seed + 303)
  local spoken = { train = {}, test = {} }
  local function add(split, text, source, ref)
    local vs = voices[split]
    local voice = vs[r(#vs)] -- drawn even when not kept: the held-out names keep their voices
    if split == "test" or opts.train_names ~= false then
      table.insert(spoken[split], { text = text, voice = voice, source = source, ref = ref })
    end
  end
  for _, split in ipairs({ "train", "test" }) do
    for _, it in ipairs(S.drawings[split]) do add(split, it.title, "drawing", it.id) end
    for _, c in ipairs(S.emoji[split]) do add(split, c.caption, "emoji", c.code) end
  end
  local nv = opts.vocab_voices or #voices.train
  for _, w in ipairs(R.vocabulary_words()) do
    for k = 1, math.min(nv, #voices.train) do
      table.insert(spoken.train, { text = w, voice = voices.train[k], source = "vocabulary", ref = w })
    end
  end
  for _, split in ipairs({ "train", "test" }) do
    local ps = data.speak_batch(spoken[split], { root = opts.root, progress = opts.progress, workers = opts.workers })
    for i, it in ipairs(spoken[split]) do it.path = ps[i] end
  end
  S.spoken = spoken
  S.timings.spoken = core.now() - t0
  S.counts.spoken = { train = #spoken.train, test = #spoken.test }
  S.timings.rich_total = core.now() - t_all
  say(opts, "  spoken names: %d train / %d test (%.1f s); rich data ready in %.1f s", #spoken.train, #spoken.test,
    S.timings.spoken, S.timings.rich_total)
  return S
end

return R
