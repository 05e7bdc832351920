-- report_spec.lua: PCA against a case worked by hand, SVG and grid output.
local oe = require "oneencoder"
local R = oe.report

describe("report", function()
  it("pca finds the principal directions of a hand-made cloud", function()
    -- points on the line y = 2x (plus a small orthogonal wobble): the first
    -- component is along (1, 2)/sqrt(5), its variance 5 * var(t)
    local pts = {}
    for i = 1, 50 do
      local t = (i - 25.5) / 10
      local wob = (i % 2 == 0) and 0.01 or -0.01
      pts[i] = { t - 2 * wob, 2 * t + wob }
    end
    local x = oe.tensor(pts)
    local p = R.pca(x, 2):totable()
    local var_t = 0
    for i = 1, 50 do var_t = var_t + ((i - 25.5) / 10) ^ 2 end
    local v1, v2 = 0, 0
    for i = 1, 50 do v1 = v1 + p[i][1] ^ 2; v2 = v2 + p[i][2] ^ 2 end
    assert.is_true(math.abs(v1 - 5 * var_t) / (5 * var_t) < 1e-4)
    assert.is_true(math.abs(v2 - 50 * 5 * 0.01 ^ 2) < 1e-4)
    -- the projection of point i on the first axis is +-sqrt(5) t
    assert.is_true(math.abs(math.abs(p[1][1]) - math.sqrt(5) * 2.45) < 1e-3)
  end)

  it("writes line charts and scatter plots as SVG", function()
    local svg = R.line_chart({ { name = "step <1>", y = { 3, 2, 1 } } }, { title = "loss" })
    assert.truthy(svg:match("^<svg"))
    assert.truthy(svg:match("</svg>$"))
    assert.truthy(svg:match("step &lt;1&gt;"))
    assert.truthy(svg:match("<polyline"))
    local sc = R.scatter({ { 0, 0, class = 1, group = 2 }, { 1, 1, class = 0, group = 1 } }, { classes = { "a", "b" }, groups = { "image", "text" } })
    assert.are.equal(2 + 2 + 2, select(2, sc:gsub("<circle", "")) + select(2, sc:gsub("<rect x", "")))
  end)

  it("lays out an image grid with borders", function()
    local a = oe.full({ 4, 4 }, 100, "uint8")
    local b = oe.full({ 2, 2, 3 }, 7, "uint8")
    local g = R.grid({ { a, b } }, { cell = 8, marks = { { nil, { 0, 200, 0 } } } })
    assert.are.same({ 16, 28, 3 }, g:shape())
    assert.are.equal(100, g:get(4 + 4, 4 + 4, 1))        -- inside the first cell
    assert.are.equal(200, g:get(4 + 1, 4 + 8 + 4 + 1, 2)) -- the border of the second
    assert.are.equal(7, g:get(4 + 4, 4 + 12 + 4, 3))      -- inside the second
    assert.are.equal(255, g:get(1, 1, 1))                  -- background
    -- a one-channel (h, w, 1) image is grey like an (h, w) one; other channel counts are refused
    local c = oe.full({ 3, 3, 1 }, 42, "uint8")
    local g1 = R.grid({ { c } }, { cell = 8 })
    for ch = 1, 3 do assert.are.equal(42, g1:get(4 + 4, 4 + 4, ch)) end
    local ok, err = pcall(R.grid, { { oe.full({ 3, 3, 2 }, 1, "uint8") } })
    assert.is_false(ok)
    assert.truthy(tostring(err):match("%(h, w, 1%)"))
  end)
end)
