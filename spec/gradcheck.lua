-- spec/gradcheck.lua: finite-difference gradient checker for the specs.
--
--   local gc = require "gradcheck"
--   local ok, msg = gc.check(function(x, w) return oe.matmul(x, w) end, { x, w }, opts)
--   assert(ok, msg)
--
-- f(inputs...) returns a tensor y. The scalar checked is L = sum(y * R), where
-- R is a fixed pseudo-random projection of y's shape (drawn from a private
-- Lua generator, so it never touches oe's seeded RNG), so every output element
-- contributes with its own weight. The analytic gradient of every input comes
-- from one forward + backward through oe's autograd. The numeric gradient is
-- the central difference (L(x + h) - L(x - h)) / (x_plus - x_minus) for each
-- input element in turn, where x_plus and x_minus are the float32 values
-- actually stored after the perturbation and L is accumulated in double in
-- Lua from the float32 outputs (read back with to_bytes).
--
-- Tolerance (float32), per element: |analytic - numeric| <= atol + rtol * |numeric|
-- with atol = 2e-3, rtol = 2e-2, h = 1e-2 by default. Why these numbers: the
-- truncation error of the central difference is h^2/6 |L'''|, about 2e-5
-- relative for the smooth ops here; the rounding error of L in float32 is
-- about sqrt(n) * 6e-8 * |y| per evaluation, divided by 2h = 2e-2 this is
-- 1e-5 .. 1e-4 absolute for the sizes in the specs; a few times that for
-- ops that cancel (layer norm, softmax over many terms). 2e-3 absolute plus
-- 2 % relative is ten times above those errors, and two orders of magnitude
-- below the error of a wrong backward (a missing term, a wrong sign or a
-- factor 2 gives errors of the order of the gradient itself). The spec also
-- feeds the checker a deliberately wrong backward to show that it fails.
--
-- opts: h, atol, rtol; seed (re-seeds oe before every evaluation, so dropout
-- masks are the same in all of them); only = {true/false per input} to skip
-- inputs; max_elems (check only that many elements per input, spread evenly).
local oe = require "oneencoder"
local core = oe.core

local M = {}
M.defaults = { h = 1e-2, atol = 2e-3, rtol = 2e-2 }

-- private generator (xorshift-like LCG) for the projection R
local function lcg(seed)
  local s = seed
  return function()
    s = (s * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
    return ((s >> 11) / 9007199254740992.0) * 2 - 1 -- uniform in [-1, 1)
  end
end

local function floats(t)
  local s = core.to_bytes(t)
  local n = #s // 4
  local out, pos = {}, 1
  local CH = 128
  local i = 0
  while i < n do
    local k = math.min(CH, n - i)
    local vals = table.pack(string.unpack("<" .. string.rep("f", k), s, pos))
    for j = 1, k do out[i + j] = vals[j] end
    pos = vals[k + 1]
    i = i + k
  end
  return out
end
M.floats = floats

local function projection(n, seed)
  local r = lcg(seed or 12345)
  local R = {}
  for i = 1, n do R[i] = r() end
  return R
end

-- L = sum(y * R) in double
local function dot(y, R)
  local v = floats(y)
  local s = 0.0
  for i = 1, #v do s = s + v[i] * R[i] end
  return s
end

local function eval(f, inputs, seed)
  if seed then oe.manual_seed(seed) end
  return f(table.unpack(inputs, 1, inputs.n or #inputs))
end

-- check(f, inputs, opts) -> ok, message, details
function M.check(f, inputs, opts)
  opts = opts or {}
  local h = opts.h or M.defaults.h
  local atol = opts.atol or M.defaults.atol
  local rtol = opts.rtol or M.defaults.rtol
  local seed = opts.seed
  local checked = {}
  for i, x in ipairs(inputs) do
    checked[i] = core.is_tensor(x) and core.dtype(x) == "float32" and not (opts.only and opts.only[i] == false)
    if checked[i] then
      x:zero_grad()
      x.requires_grad = true
    end
  end
  -- analytic
  local y = eval(f, inputs, seed)
  local n = core.numel(y)
  local R = projection(n, opts.proj_seed)
  local Rt = core.reshape(oe.tensor(R), core.shape(y))
  local L = oe.sum(oe.mul(y, Rt))
  L:backward()
  local analytic = {}
  for i, x in ipairs(inputs) do
    if checked[i] then
      local g = x.grad
      if g == nil then
        analytic[i] = false
      else
        if core.numel(g) ~= core.numel(x) then
          return false, string.format("input %d: grad has %d elements, input has %d", i, core.numel(g), core.numel(x))
        end
        analytic[i] = floats(g)
      end
    end
  end
  -- numeric
  local worst, worst_msg, fails = 0, nil, 0
  local total = 0
  oe.no_grad(function()
    for i, x in ipairs(inputs) do
      if checked[i] then
        local flat = core.reshape(x, { -1 })
        local m = core.numel(x)
        local step = 1
        if opts.max_elems and m > opts.max_elems then step = m / opts.max_elems end
        local pos = 1.0
        while math.floor(pos) <= m do
          local j = math.floor(pos)
          local x0 = core.get(flat, j)
          core.set(flat, x0 + h, j)
          local xp = core.get(flat, j)
          local lp = dot(eval(f, inputs, seed), R)
          core.set(flat, x0 - h, j)
          local xm = core.get(flat, j)
          local lm = dot(eval(f, inputs, seed), R)
          core.set(flat, x0, j)
          local num = (lp - lm) / (xp - xm)
          local ana = analytic[i] and analytic[i][j] or 0.0
          local err = math.abs(ana - num)
          local bound = atol + rtol * math.abs(num)
          total = total + 1
          if not (err <= bound) then
            fails = fails + 1
            if err - bound > worst or worst_msg == nil then
              worst = err - bound
              worst_msg = string.format("input %d element %d: analytic %.6g, numeric %.6g (|diff| %.3g > %.3g)%s",
                i, j, ana, num, err, bound, analytic[i] and "" or " [no grad reached this input]")
            end
          end
          pos = pos + step
        end
      end
    end
  end)
  for i, x in ipairs(inputs) do if checked[i] then x:zero_grad() end end
  if fails > 0 then
    return false, string.format("%d of %d gradient elements differ; worst %s", fails, total, worst_msg),
      { fails = fails, total = total }
  end
  return true, string.format("%d gradient elements agree", total), { fails = 0, total = total }
end

-- assert-style helper for busted
function M.assert(f, inputs, opts)
  local ok, msg = M.check(f, inputs, opts)
  assert(ok, msg)
  return msg
end

-- uniform values in [lo, hi) from a private generator as a float32 tensor
function M.uniform(shape, lo, hi, seed)
  local r = lcg(seed or 777)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  local v = {}
  for i = 1, n do v[i] = lo + (hi - lo) * (r() + 1) / 2 end
  return core.reshape(oe.tensor(v), shape)
end

-- values away from 0 by at least gap: sign * U(gap, hi)
function M.away_from_zero(shape, gap, hi, seed)
  local r = lcg(seed or 99)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  local v = {}
  for i = 1, n do
    local u = gap + (hi - gap) * (r() + 1) / 2
    v[i] = (r() < 0) and -u or u
  end
  return core.reshape(oe.tensor(v), shape)
end

-- a random permutation of distinct values spaced by `gap` (for max/min, no near-ties)
function M.distinct(shape, gap, seed)
  local r = lcg(seed or 5)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  local v = {}
  for i = 1, n do v[i] = (i - n / 2) * gap end
  for i = n, 2, -1 do
    local j = math.floor((r() + 1) / 2 * i) + 1
    if j > i then j = i end
    v[i], v[j] = v[j], v[i]
  end
  return core.reshape(oe.tensor(v), shape)
end

return M
