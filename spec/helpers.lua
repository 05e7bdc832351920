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

return H
