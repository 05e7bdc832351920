-- demo/openclipart.lua: the Open Clip Art Library drawings of Debian's openclipart-svg
-- (public domain), with captions from their own metadata, rendered on white at a fixed size.
--
--   local OC = require "demo.openclipart"
--   local set = OC.load({ root = "./data" })     -- after data.ensure("openclipart-svg")
--   -- set.items: { {id, path, category, caption, title, keywords, description}, ... } sorted by id
--   -- set.counts: files, drawings, dropped_category, dropped_caption, corrupt, per_category
--   local paths, failed = OC.render(set.items, { root = "./data", size = 224, workers = 2 })
--
-- A drawing is one file name (the package stores 1,196 drawings twice, under a category and a
-- subcategory); its category is the first folder of its first path outside the dropped ones.
-- Dropped as noise (DROP): icon themes and buttons (computer/icons, computer/buttons, buttons),
-- flags (*/flags/*: 570 flags, mostly coloured rectangles that differ by name only), geometric
-- shapes, stars and arrows (shapes/*), colour gradients and patterns (special/*), LEDs and logos.
-- A drawing whose metadata gives no usable caption (demo.captions) is dropped too; a file that
-- is not well-formed XML is counted as corrupt and skipped.
local oe = require "oneencoder"
local core = oe.core
local meta = require "demo.svg_meta"
local C = require "demo.captions"

local OC = {}
OC.SVG_DIR = "pkgs/openclipart-svg/usr/share/openclipart/svg"
OC.DROP = { "^computer/icons/", "^computer/buttons/", "^buttons/", "/flags/", "^shapes/", "^special/",
  "^signs_and_symbols/led/", "^logos/" }

local function fail(fmt, ...) error(string.format(fmt, ...), 0) end
local function q(s) return "'" .. (tostring(s):gsub("'", "'\\''")) .. "'" end
local PRE = (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true) and "unset LD_PRELOAD; " or ""
local function run(cmd)
  local p = io.popen(PRE .. "(" .. cmd .. ") 2>&1", "r")
  local out = p:read("a")
  local ok = p:close()
  return ok == true, out
end
local function root_of(opts)
  local r = (opts and opts.root) or os.getenv("OE_DATA_DIR") or "./data"
  if r:sub(1, 1) ~= "/" and os.getenv("PWD") then r = os.getenv("PWD") .. "/" .. r:gsub("^%./", "") end
  return (r:gsub("/+$", ""))
end
local function say(opts, fmt, ...)
  if opts and opts.progress then io.stderr:write(string.format(fmt, ...), "\n"); io.stderr:flush() end
end

-- dropped(rel) -> the DROP pattern a path (relative to the svg folder) falls under, or nil
function OC.dropped(rel)
  for _, pat in ipairs(OC.DROP) do if rel:find(pat) then return pat end end
  return nil
end

-- group(rels) -> drawings { {id, path, paths, category} } (id = file name without .svg, sorted),
-- and the number dropped by category. rels: paths relative to the svg folder.
function OC.group(rels)
  table.sort(rels)
  local by, order = {}, {}
  for _, rel in ipairs(rels) do
    local id = rel:match("([^/]+)%.svg$")
    if id then
      if not by[id] then by[id] = {}; order[#order + 1] = id end
      table.insert(by[id], rel)
    end
  end
  table.sort(order)
  local out, n_dropped = {}, 0
  for _, id in ipairs(order) do
    local keep
    for _, rel in ipairs(by[id]) do
      if not OC.dropped(rel) then keep = rel; break end
    end
    if keep then
      out[#out + 1] = { id = id, path = keep, paths = by[id], category = keep:match("^([^/]+)/") or "unsorted" }
    else
      n_dropped = n_dropped + 1
    end
  end
  return out, n_dropped, #order
end

-- load(opts) -> {items, counts}. Reads every kept drawing's metadata (about 3 s for 5,000 files).
function OC.load(opts)
  opts = opts or {}
  local base = root_of(opts) .. "/" .. OC.SVG_DIR
  local ok, out = run("cd " .. q(base) .. " && find . -name '*.svg' -type f")
  if not ok then fail("cannot list the drawings in %s: %s (run the data step first)", base, out) end
  local rels = {}
  for line in out:gmatch("[^\n]+") do rels[#rels + 1] = line:gsub("^%./", "") end
  if #rels == 0 then fail("%s holds no .svg file", base) end
  local drawings, n_dropped, n_all = OC.group(rels)
  -- metadata of every drawing (kept ones), then the collections among their titles/descriptions
  local metas, corrupt, corrupt_files = {}, 0, {}
  for i, d in ipairs(drawings) do
    local f = io.open(base .. "/" .. d.path, "rb")
    local s = f and f:read("a")
    if f then f:close() end
    local m, err = nil, "cannot read"
    if s then m, err = meta.parse(s, d.path) end
    if not m then corrupt = corrupt + 1; corrupt_files[#corrupt_files + 1] = err end
    metas[i] = m
  end
  local titles, descs = {}, {}
  for i = 1, #drawings do
    local m = metas[i]
    titles[#titles + 1] = m and m.title or ""
    descs[#descs + 1] = m and m.description or ""
  end
  local tcol, dcol = C.collections(titles), C.collections(descs)
  local items, no_caption, per_cat, by_source = {}, 0, {}, { title = 0, keyword = 0 }
  for i, d in ipairs(drawings) do
    local m = metas[i]
    if m then
      local c = C.drawing_caption(m, { title_collections = tcol, desc_collections = dcol })
      if c then
        items[#items + 1] = { id = d.id, path = base .. "/" .. d.path, category = d.category, caption = c.text,
          title = c.title, keywords = c.keywords, description = c.description, source = "openclipart" }
        per_cat[d.category] = (per_cat[d.category] or 0) + 1
        by_source[c.title_source] = by_source[c.title_source] + 1
      else
        no_caption = no_caption + 1
      end
    end
  end
  return { items = items, counts = { files = #rels, drawings = n_all, dropped_category = n_dropped,
    dropped_caption = no_caption, corrupt = corrupt, corrupt_files = corrupt_files, kept = #items,
    per_category = per_cat, caption_from = by_source } }
end

-- pad(img, size) -> uint8 (size, size, 3): img (h, w, 3) centred on white. rsvg-convert's fit
-- rounds up at times (225 for 224): a side at most 2 pixels too long is centre-cropped, a longer
-- one shrunk (bilinear, aspect kept) first.
function OC.pad(img, size)
  local sh = core.shape(img)
  if sh[3] ~= 3 then error(string.format("pad: expected an (h, w, 3) image, got %d channels", sh[3] or 0), 2) end
  local h, w = sh[1], sh[2]
  if h > size + 2 or w > size + 2 then
    local s = size / math.max(h, w)
    h, w = math.max(1, math.min(size, math.floor(h * s + 0.5))), math.max(1, math.min(size, math.floor(w * s + 0.5)))
    img = oe.image.resize(img, h, w)
  elseif h > size or w > size then
    h, w = math.min(h, size), math.min(w, size)
    img = oe.image.center_crop(img, h, w)
  end
  if h == size and w == size then return img end
  local src = core.to_bytes(img)
  local top, left = (size - h) // 2, (size - w) // 2
  local white_row = string.rep("\255", size * 3)
  local lpad, rpad = string.rep("\255", left * 3), string.rep("\255", (size - w - left) * 3)
  local rows = {}
  for y = 0, size - 1 do
    local sy = y - top
    if sy < 0 or sy >= h then rows[#rows + 1] = white_row
    else rows[#rows + 1] = lpad .. src:sub(sy * w * 3 + 1, (sy + 1) * w * 3) .. rpad end
  end
  return core.from_bytes(table.concat(rows), "uint8", { size, size, 3 })
end

function OC.png_path(item, opts)
  return string.format("%s/openclipart/png%d/%s.png", root_of(opts), opts and opts.size or 224, item.id)
end

-- render(items, opts) -> paths (nil for a drawing that failed), failed {id = reason}.
-- rsvg-convert draws each SVG on white, fitted inside size x size (aspect kept), with
-- opts.workers processes (2) and a timeout per file (opts.timeout, 20 s); the result is centred
-- on a white square and saved as PNG. Cached: a rendered PNG is kept, and a drawing that
-- failed is listed in png<size>/failed.txt with the reason and not tried again.
function OC.render(items, opts)
  opts = opts or {}
  local size = opts.size or 224
  local root = root_of(opts)
  local dir = string.format("%s/openclipart/png%d", root, size)
  run("mkdir -p " .. q(dir))
  local failed_file = dir .. "/failed.txt"
  local failed = {}
  local f = io.open(failed_file, "r")
  if f then
    for line in f:lines() do
      local id, why = line:match("^([^\t]+)\t(.*)$")
      if id then failed[id] = why end
    end
    f:close()
  end
  local paths, todo = {}, {}
  for i, it in ipairs(items) do
    local p = OC.png_path(it, opts)
    local fh = io.open(p, "rb")
    if fh then fh:close(); paths[i] = p
    elseif not failed[it.id] then todo[#todo + 1] = i end
  end
  if #todo == 0 then return paths, failed end
  local t0 = core.now()
  say(opts, "  drawings: rendering %d SVG files with rsvg-convert (%d cached)", #todo, #items - #todo)
  local tmp = dir .. "/.tmp-render"
  run("rm -rf " .. q(tmp) .. " && mkdir -p " .. q(tmp))
  -- one line per job: index, tab, svg path (split by the shell itself: a fork per file less
  -- than cut); rsvg-convert runs under timeout, xargs -P workers
  local listf = tmp .. "/jobs"
  local lf = assert(io.open(listf, "w"))
  for _, i in ipairs(todo) do lf:write(i, "\t", items[i].path, "\n") end
  lf:close()
  local script = tmp .. "/one.sh"
  local sf = assert(io.open(script, "w"))
  sf:write(string.format([[
i=${1%%%%%s*}; svg=${1#*%s}
if timeout %d rsvg-convert -a -w %d -h %d -b white "$svg" -o "%s/$i.png" 2>"%s/$i.err"; then echo "ok $i"; else echo "fail $i $?"; fi
]], "\t", "\t", opts.timeout or 20, size, size, tmp, tmp))
  sf:close()
  local p = io.popen(PRE .. string.format("tr '\\n' '\\0' < %s | xargs -0 -P %d -n 1 sh %s 2>&1", q(listf),
    opts.workers or 2, q(script)), "r")
  local done, nfail = 0, 0
  local ff = assert(io.open(failed_file, "a"))
  for line in p:lines() do
    local st, i, code = line:match("^(%a+) (%d+) ?(%d*)")
    i = tonumber(i)
    if st and i then
      local it = items[i]
      local why
      if st == "ok" then
        local img, err = oe.image.load(tmp .. "/" .. i .. ".png")
        if img then
          local sq = OC.pad(img, size)
          local okw, werr = oe.image.save(sq, OC.png_path(it, opts))
          if okw then paths[i] = OC.png_path(it, opts) else why = "cannot save: " .. tostring(werr) end
        else
          why = "rsvg-convert wrote an unreadable PNG: " .. tostring(err)
        end
      else
        local ef = io.open(tmp .. "/" .. i .. ".err")
        local msg = ef and ef:read("a"):gsub("%s+", " "):sub(1, 200) or ""
        if ef then ef:close() end
        why = code == "124" and string.format("rsvg-convert took longer than %d s", opts.timeout or 20)
          or ("rsvg-convert failed: " .. msg)
      end
      if why then
        failed[it.id] = why
        nfail = nfail + 1
        ff:write(it.id, "\t", why, "\n")
        ff:flush()
      end
      os.remove(tmp .. "/" .. i .. ".png")
      os.remove(tmp .. "/" .. i .. ".err")
      done = done + 1
      if opts.progress and done % 1000 == 0 then say(opts, "  drawings %d/%d (%.1f s)", done, #todo, core.now() - t0) end
    end
  end
  p:close()
  ff:close()
  run("rm -rf " .. q(tmp))
  say(opts, "  drawings: %d rendered, %d failed, in %.1f s", done - nfail, nfail, core.now() - t0)
  return paths, failed
end

return OC
