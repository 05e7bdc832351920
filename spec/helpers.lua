-- spec/helpers.lua: assertions shared by the specs.
local assert = require "luassert"
local H = {}

-- near(got, want, tol = 1e-6, what): numbers, or (nested) tables of numbers element by element
function H.near(a, b, tol, what)
  tol = tol or 1e-6
  if type(a) == "table" then
    assert.are.equal(#b, #a, (what or "") .. " length")
    for i = 1, #a do H.near(a[i], b[i], tol, (what or "") .. "[" .. i .. "]") end
    return
  end
  assert(math.abs(a - b) <= tol, string.format("%s: got %.9g, expected %.9g", what or "value", a, b))
end

-- fails_with(f, fragment...): f must raise, and the message must contain every fragment (plain text)
function H.fails_with(f, ...)
  local ok, msg = pcall(f)
  assert.is_false(ok, "expected an error")
  msg = tostring(msg)
  for _, frag in ipairs({ ... }) do
    assert(msg:find(frag, 1, true), string.format("error %q does not mention %q", msg, frag))
  end
  return msg
end

-- ---- floats reached along different paths ----
-- Results computed through another matrix shape, block size, thread count or CPU differ in
-- their last bits: OpenBLAS chooses its kernel and blocking (hence the summation order) by all of
-- these. Rounding a sum of K products in another order moves it by at most about
-- K * u * sum_i |a_i b_i| with u = 2^-24 for float32 (Higham, Accuracy and Stability of Numerical
-- Algorithms, 2002, eq. 3.5); a result that chains several such sums adds their bounds. Bits
-- are compared only where both sides take the same path with the same shapes.
H.U32 = 2 ^ -24

-- sum_tol(k, scale): bound on |x - y| for two float32 sums of k products whose magnitudes sum to scale
function H.sum_tol(k, scale) return k * H.U32 * (scale or 1) end

local function flat(t, out)
  out = out or {}
  if type(t) ~= "table" then out[#out + 1] = t; return out end
  for i = 1, #t do flat(t[i], out) end
  return out
end
local function as_list(x)
  local core = package.loaded["oneencoder.core"]
  if type(x) == "userdata" and core and core.is_tensor(x) then
    return flat(core.totable(x)), core.shape(x)
  end
  return flat(x)
end

-- allclose(got, want, atol, what): tensors or nested tables, every |got - want| <= atol, where atol
-- is a number or a table of per-element bounds; shapes must agree; reports the worst element
function H.allclose(got, want, atol, what)
  local g, gs = as_list(got)
  local w, ws = as_list(want)
  if gs and ws then assert.are.same(ws, gs, (what or "value") .. ": shape") end
  assert.are.equal(#w, #g, (what or "value") .. ": element count")
  local worst, at = -1, 0
  for i = 1, #g do
    local tol = type(atol) == "table" and atol[i] or atol
    local r = math.abs(g[i] - w[i]) / tol
    if g[i] ~= g[i] or w[i] ~= w[i] then r = math.huge end
    if r > worst then worst, at = r, i end
  end
  assert(worst <= 1, string.format("%s: element %d is %.9g, expected %.9g (tolerance %.3g)", what or "value", at,
    g[at] or 0 / 0, w[at] or 0 / 0, type(atol) == "table" and atol[at] or atol))
end

-- same_ranking(got_ids, want_ids, scores, tol, what): two rankings (lists of 0-based ids) of the
-- same scores (a 1-based list indexed by id + 1) agree up to near-ties: the j-th id of each holds a
-- score within tol of the other's, and no id repeats. Rankings from scores computed along two paths
-- may swap items whose scores differ by less than the rounding of those paths.
function H.same_ranking(got, want, scores, tol, what)
  assert.are.equal(#want, #got, (what or "ranking") .. ": length")
  local seen = {}
  for j = 1, #got do
    assert(not seen[got[j]], string.format("%s: id %d appears twice", what or "ranking", got[j]))
    seen[got[j]] = true
    local a, b = scores[got[j] + 1], scores[want[j] + 1]
    assert(math.abs(a - b) <= tol, string.format("%s: position %d holds id %d (score %.9g) where id %d (score %.9g) "
      .. "belongs; not a near-tie (tolerance %.3g)", what or "ranking", j, got[j], a, want[j], b, tol))
  end
end

-- lua_cmd() -> "LUA_PATH='...' LUA_CPATH='...' lua5.4": a child Lua with this process's module
-- paths (plain `busted` sets them only inside its own process, from .busted)
function H.lua_cmd()
  return string.format("LUA_PATH='%s' LUA_CPATH='%s' lua5.4", package.path, package.cpath)
end

return H
