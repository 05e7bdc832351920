-- report.lua: figures and tables for experiment reports, in plain formats:
-- SVG written as text (line charts, scatter plots) and PNG through libpng
-- (image grids). No plotting library is needed to read them: any browser does.
--   local R = oe.report
--   R.save_text("loss.svg", R.line_chart({ {name = "step 1", x = {...}, y = {...}} }, {title = "loss"}))
--   local xy = R.pca(emb, 2)                                   -- (N, 2)
--   R.save_text("space.svg", R.scatter(points, {title = "..."}))
--   R.save_grid("grid.png", {{img, img, ...}, ...}, {cell = 56})
local core = require "oneencoder.core"

local R = {}

R.palette = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
  "#17becf", "#393b79", "#ad494a", "#637939", "#8c6d31", "#843c39", "#7b4173" }

local function esc(s)
  return (tostring(s):gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;"):gsub('"', "&quot;"))
end

local function range(vals)
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(vals) do
    if v == v and v > -math.huge and v < math.huge then lo, hi = math.min(lo, v), math.max(hi, v) end
  end
  if lo > hi then lo, hi = 0, 1 end
  if hi - lo < 1e-12 then lo, hi = lo - 0.5, hi + 0.5 end
  return lo, hi
end

local function ticks(lo, hi, n)
  local step = 10 ^ math.floor(math.log(math.max((hi - lo) / n, 1e-12), 10))
  for _, m in ipairs { 1, 2, 5, 10 } do
    if (hi - lo) / (step * m) <= n then step = step * m break end
  end
  local out = {}
  for v = math.ceil(lo / step) * step, hi + 1e-9, step do out[#out + 1] = v end
  return out
end

-- line_chart(series, opts): series = { {name, x = {...}, y = {...}}, ... }
function R.line_chart(series, opts)
  opts = opts or {}
  local W, H, ml, mr, mt, mb = opts.width or 640, opts.height or 360, 60, opts.legend_width or 210, 30, 45
  local xs, ys = {}, {}
  for _, s in ipairs(series) do
    for i = 1, #s.y do xs[#xs + 1] = s.x and s.x[i] or i; ys[#ys + 1] = s.y[i] end
  end
  local x0, x1 = range(xs)
  local y0, y1 = range(ys)
  local function px(x) return ml + (x - x0) / (x1 - x0) * (W - ml - mr) end
  local function py(y) return H - mb - (y - y0) / (y1 - y0) * (H - mt - mb) end
  local o = { string.format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">', W, H),
    string.format('<rect width="%d" height="%d" fill="white"/>', W, H) }
  if opts.title then o[#o + 1] = string.format('<text x="%d" y="18" font-size="14">%s</text>', ml, esc(opts.title)) end
  for _, t in ipairs(ticks(y0, y1, 6)) do
    o[#o + 1] = string.format('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%s</text>',
      ml, W - mr, py(t), py(t), ml - 5, py(t) + 4, string.format("%.3g", t))
  end
  for _, t in ipairs(ticks(x0, x1, 8)) do
    o[#o + 1] = string.format('<text x="%.1f" y="%d" text-anchor="middle">%s</text>', px(t), H - mb + 16, string.format("%.3g", t))
  end
  o[#o + 1] = string.format('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="black"/>', ml, W - mr, H - mb, H - mb)
  o[#o + 1] = string.format('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="black"/>', ml, ml, mt, H - mb)
  if opts.xlabel then o[#o + 1] = string.format('<text x="%d" y="%d" text-anchor="middle">%s</text>', (ml + W - mr) // 2, H - 8, esc(opts.xlabel)) end
  for k, s in ipairs(series) do
    local color = s.color or R.palette[(k - 1) % #R.palette + 1]
    local pts = {}
    for i = 1, #s.y do
      if s.y[i] == s.y[i] then pts[#pts + 1] = string.format("%.1f,%.1f", px(s.x and s.x[i] or i), py(s.y[i])) end
    end
    o[#o + 1] = string.format('<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>', color,
      s.dash and ' stroke-dasharray="5,4"' or "", table.concat(pts, " "))
    o[#o + 1] = string.format('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2"%s/><text x="%d" y="%d">%s</text>',
      W - mr + 10, W - mr + 30, mt + 18 * k, mt + 18 * k, color, s.dash and ' stroke-dasharray="5,4"' or "", W - mr + 35, mt + 18 * k + 4, esc(s.name))
  end
  o[#o + 1] = "</svg>"
  return table.concat(o, "\n")
end

local MARKERS = { "circle", "square", "triangle", "diamond" }

local function marker(kind, x, y, r, color)
  if kind == "square" then
    return string.format('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="0.7"/>', x - r, y - r, 2 * r, 2 * r, color)
  elseif kind == "triangle" then
    return string.format('<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s" fill-opacity="0.7"/>', x, y - r, x - r, y + r, x + r, y + r, color)
  elseif kind == "diamond" then
    return string.format('<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s" fill-opacity="0.7"/>', x, y - r, x + r, y, x, y + r, x - r, y, color)
  end
  return string.format('<circle cx="%.1f" cy="%.1f" r="%.1f" fill="%s" fill-opacity="0.7"/>', x, y, r, color)
end

-- scatter(points, opts): points = { {x, y, class = 0-based int, group = 1-based marker index}, ... }
-- opts.classes = {names}, opts.groups = {names} (one marker per group)
function R.scatter(points, opts)
  opts = opts or {}
  local W, H, m, legend = opts.width or 640, opts.height or 520, 30, 170
  local xs, ys = {}, {}
  for i, p in ipairs(points) do xs[i], ys[i] = p[1], p[2] end
  local x0, x1 = range(xs)
  local y0, y1 = range(ys)
  local function px(x) return m + (x - x0) / (x1 - x0) * (W - 2 * m - legend) end
  local function py(y) return H - m - (y - y0) / (y1 - y0) * (H - 2 * m) end
  local o = { string.format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">', W, H),
    string.format('<rect width="%d" height="%d" fill="white"/>', W, H) }
  if opts.title then o[#o + 1] = string.format('<text x="%d" y="18" font-size="14">%s</text>', m, esc(opts.title)) end
  for _, p in ipairs(points) do
    local color = R.palette[(p.class or 0) % #R.palette + 1]
    o[#o + 1] = marker(MARKERS[((p.group or 1) - 1) % #MARKERS + 1], px(p[1]), py(p[2]), opts.radius or 3.5, color)
  end
  local y = m + 10
  for i, name in ipairs(opts.classes or {}) do
    o[#o + 1] = marker("circle", W - legend + 10, y, 5, R.palette[(i - 1) % #R.palette + 1])
    o[#o + 1] = string.format('<text x="%d" y="%d">%s</text>', W - legend + 22, y + 4, esc(name))
    y = y + 16
  end
  y = y + 10
  for i, name in ipairs(opts.groups or {}) do
    o[#o + 1] = marker(MARKERS[(i - 1) % #MARKERS + 1], W - legend + 10, y, 5, "#444")
    o[#o + 1] = string.format('<text x="%d" y="%d">%s</text>', W - legend + 22, y + 4, esc(name))
    y = y + 16
  end
  o[#o + 1] = "</svg>"
  return table.concat(o, "\n")
end

-- pca(x (N, d), k) -> (N, k): centred data projected on its k leading principal
-- directions (power iteration with deflation on the d x d covariance, in float32)
function R.pca(x, k, iters)
  k, iters = k or 2, iters or 200
  local s = core.shape(x)
  local N, d = s[1], s[2]
  local mean = core.reduce("mean", x, 1, true)
  local xc = core.binary("sub", x, mean)
  local cov = core.matmul(xc, xc, true, false) -- (d, d)
  local comps = {}
  for c = 1, k do
    local v = core.fill_(core.zeros({ d, 1 }), 1)
    core.set(v, 2, c % d + 1, 1)
    for _ = 1, iters do
      local w = core.matmul(cov, v)
      for _, u in ipairs(comps) do -- deflate: w -= u (u^T w)
        local proj = core.item(core.matmul(u, w, true, false))
        core.axpy_(w, u, -proj)
      end
      local n = math.sqrt(core.sumsq(w))
      if n < 1e-20 then break end
      v = core.unary("muls", w, 1 / n)
    end
    comps[c] = v
  end
  return core.matmul(xc, core.cat(comps, 2)) -- (N, k)
end

-- grid(rows, opts) -> uint8 (H, W, 3): rows of uint8 images (h, w), (h, w, 1) or (h, w, 3), each cell
-- resized (nearest) to opts.cell pixels with a 2-pixel gap; opts.marks[r][c] = {r, g, b}
-- draws a border (e.g. green for a correct retrieval, red for a wrong one)
function R.grid(rows, opts)
  opts = opts or {}
  local cell, gap = opts.cell or 56, 4
  local ncol = 0
  for _, row in ipairs(rows) do ncol = math.max(ncol, #row) end
  local Hh, Ww = #rows * (cell + gap) + gap, ncol * (cell + gap) + gap
  local out = core.fill_(core.zeros({ Hh, Ww, 3 }, "uint8"), 255)
  for r, row in ipairs(rows) do
    for c, img in ipairs(row) do
      local sh = core.shape(img)
      local h, w = sh[1], sh[2]
      local three = #sh == 3 and sh[3] == 3
      local one = #sh == 3 and sh[3] == 1
      if #sh == 3 and not (three or one) then error("grid: images must be (h, w), (h, w, 1) or (h, w, 3)", 2) end
      local top, left = gap + (r - 1) * (cell + gap), gap + (c - 1) * (cell + gap)
      local mark = opts.marks and opts.marks[r] and opts.marks[r][c]
      local cellimg = core.zeros({ cell, cell, 3 }, "uint8")
      for y = 1, cell do
        local sy = math.min(h, math.floor((y - 0.5) * h / cell) + 1)
        for x = 1, cell do
          local sx = math.min(w, math.floor((x - 0.5) * w / cell) + 1)
          for ch = 1, 3 do
            local v = three and core.get(img, sy, sx, ch) or one and core.get(img, sy, sx, 1) or core.get(img, sy, sx)
            if mark and (y <= 3 or y > cell - 3 or x <= 3 or x > cell - 3) then v = mark[ch] end
            core.set(cellimg, v, y, x, ch)
          end
        end
      end
      -- paste the cell row by row
      for y = 1, cell do
        local line = core.narrow(cellimg, 1, y, 1)
        local target_row = core.narrow(out, 1, top + y, 1)
        core.set_slice(target_row, 2, left + 1, line)
        core.set_slice(out, 1, top + y, target_row)
      end
    end
  end
  return out
end

-- save_text(path, s) -> true | nil, message: crash-safe (a temporary file in
-- the same folder, fsync, rename, folder fsync; see core.write_file_atomic)
function R.save_text(path, s)
  if type(path) ~= "string" then error("save_text: path must be a string, got " .. type(path), 2) end
  if type(s) ~= "string" then error("save_text: text must be a string, got " .. type(s), 2) end
  return core.write_file_atomic(path, s)
end

-- read_jsonl(path) -> list of flat records (numbers and strings) written by the trainers
function R.read_jsonl(path)
  local out = {}
  local f = io.open(path, "r")
  if not f then return out end
  for line in f:lines() do
    local rec = {}
    for k, v in line:gmatch('"([%w_]+)":([^,}]+)') do
      if v:sub(1, 1) == '"' then rec[k] = v:sub(2, -2) else rec[k] = tonumber(v) end
    end
    out[#out + 1] = rec
  end
  f:close()
  return out
end

return R
