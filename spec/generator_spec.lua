-- generator_spec.lua: oe.Generator (csrc/bind/generator.c): its own counter-based stream,
-- state and replay, draws equal to the global stream's for the same state, and the places
-- that take one (dropout in oe.F and the modules, add_modality's initial weights).
local oe = require "oneencoder"
local core = oe.core
local H = require "helpers"

local function bytes(t) return core.to_bytes(t) end

-- SplitMix64 written out in Lua (64-bit integers wrap): the reference for csrc/core/rng.h
local function mix(z)
  z = (z ~ (z >> 30)) * 0xbf58476d1ce4e5b9
  z = (z ~ (z >> 27)) * 0x94d049bb133111eb
  return z ~ (z >> 31)
end
local GAMMA = 0x9e3779b97f4a7c15

describe("oe.Generator", function()
  it("is SplitMix64 from its seed, independent of the global stream", function()
    oe.manual_seed(1)
    local before = oe.get_rng_state()
    local g = oe.Generator(5)
    local st = g:state()
    assert.are.same({ mix(5 ~ 0x6a09e667f3bcc909), 0 }, st)
    local u = core.totable(g:rand({ 4 }))
    for i = 1, 4 do
      local bits = mix(st[1] + i * GAMMA) -- draw i - 1 of counter 0: seed + (0 + (i - 1) + 1) * gamma
      assert.are.equal((bits >> 40) / 16777216, u[i])
    end
    assert.are.same({ st[1], 4 }, g:state())
    assert.are.same(before, oe.get_rng_state())
  end)

  it("draws what the global stream draws after manual_seed with the same seed", function()
    oe.manual_seed(7)
    local a, b, c = oe.randn({ 5, 3 }), oe.uniform({ 4 }, -1, 2), oe.randint(-3, 10, { 6 })
    local c32 = oe.randint(0, 5, { 3 }, "int32")
    local p = oe.data.permutation(9)
    local d = oe.normal({ 2 }, 1, 3)
    oe.manual_seed(123)
    local before = oe.get_rng_state()
    local g = oe.Generator(7)
    assert.are.equal(bytes(a), bytes(g:randn({ 5, 3 })))
    assert.are.equal(bytes(b), bytes(g:rand({ 4 }, -1, 2)))
    assert.are.equal(bytes(c), bytes(g:randint(-3, 10, { 6 })))
    assert.are.equal(bytes(c32), bytes(g:randint(0, 5, { 3 }, "int32")))
    assert.are.same(p, g:permutation(9))
    assert.are.equal(bytes(d), bytes(g:randn({ 2 }, 1, 3)))
    assert.are.same(before, oe.get_rng_state())
    -- data.permutation with a generator is the generator's permutation
    local g2 = oe.Generator(7)
    g2:randn({ 5, 3 }); g2:rand({ 4 }); g2:randint(0, 1, { 6 }); g2:randint(0, 1, { 3 })
    assert.are.same(p, oe.data.permutation(9, g2))
    -- a permutation holds 1..n once each
    local seen = {}
    for _, v in ipairs(p) do seen[v] = (seen[v] or 0) + 1 end
    for i = 1, 9 do assert.are.equal(1, seen[i]) end
  end)

  it("replays from a saved state; clones are independent; set_state takes a table or two integers", function()
    local g = oe.Generator(11)
    g:rand({ 3 })
    local st = g:state()
    local x = bytes(g:randn({ 8 }))
    local c = g:clone()
    local y = bytes(g:randn({ 8 }))
    assert.are_not.equal(x, y)
    assert.are.equal(y, bytes(c:randn({ 8 })))
    g:set_state(st)
    assert.are.equal(x, bytes(g:randn({ 8 })))
    g:set_state(st[1], st[2])
    assert.are.equal(x, bytes(g:randn({ 8 })))
    g:manual_seed(11)
    assert.are.same(oe.Generator(11):state(), g:state())
  end)

  it("without a seed takes one draw of the global stream as its seed", function()
    oe.manual_seed(3)
    local g1, g2 = oe.Generator(), oe.Generator()
    assert.are.same({ oe.get_rng_state()[1], 2 }, oe.get_rng_state())
    assert.are_not.same(g1:state(), g2:state())
    oe.manual_seed(3)
    local g3 = oe.Generator()
    assert.are.same(g1:state(), g3:state())
    -- the seed is the global stream's first draw (counter 0): mix(seed + gamma)
    local gs = oe.get_rng_state()
    assert.are.same({ mix(mix(gs[1] + GAMMA) ~ 0x6a09e667f3bcc909), 0 }, g3:state())
  end)

  it("oe.default_generator is the global stream", function()
    oe.manual_seed(9)
    local want = bytes(oe.randn({ 6 }))
    oe.manual_seed(9)
    assert.are.equal(want, bytes(oe.default_generator:randn({ 6 })))
    assert.are.same(oe.get_rng_state(), oe.default_generator:state())
    assert.is_true(oe.is_generator(oe.default_generator))
    assert.is_false(oe.is_generator({}))
  end)

  it("rejects bad arguments with clear messages", function()
    H.fails_with(function() oe.Generator("x") end, "Generator: seed must be an integer or nil")
    H.fails_with(function() oe.Generator(1):randint(3, 3, { 2 }) end, "Generator:randint: empty range [3, 3)")
    H.fails_with(function() oe.Generator(1):set_state({ 1 }) end, "Generator:set_state: state[2] (counter) must be an integer")
    H.fails_with(function() oe.F.dropout(oe.ones(4), 0.5, true, "gen") end,
      "dropout: argument 'generator' must be an oe.Generator or nil, got string")
    H.fails_with(function() oe.nn.Linear(2, 2):set_generator({}) end, "set_generator: gen must be an oe.Generator or nil")
  end)
end)

describe("dropout from a generator", function()
  it("F.dropout, F.relu_dropout, F.attention and F.feed_forward draw from it, not from the global stream", function()
    local x = oe.randn({ 3, 5, 8 })
    local w1, b1, w2, b2 = oe.randn({ 12, 8 }), oe.randn({ 12 }), oe.randn({ 8, 12 }), oe.randn({ 8 })
    local qkv = oe.randn({ 2, 4, 24 })
    local function all(gen)
      local out = {}
      out[1] = bytes(oe.F.dropout(x, 0.4, true, gen))
      out[2] = bytes(oe.F.relu_dropout(x, 0.3, true, gen))
      local o, probs = oe.F.attention(qkv, nil, nil, 2, nil, 0.25, true, gen)
      out[3], out[4] = bytes(o), bytes(probs)
      out[5] = bytes(oe.F.feed_forward(x, w1, b1, w2, b2, 0.2, true, 4, gen))
      return out
    end
    oe.manual_seed(21)
    local global = all(nil)                  -- the global stream seeded with 21
    oe.manual_seed(5)
    local before = oe.get_rng_state()
    local g = oe.Generator(21)
    local with_gen = all(g)                  -- a generator seeded with 21: the same draws
    assert.are.same(global, with_gen)
    assert.are.same(before, oe.get_rng_state())
    local other = all(oe.Generator(22))
    for i = 1, 5 do
      if i ~= 4 then assert.are_not.equal(global[i], other[i], "output " .. i .. " ignores the generator") end
    end
  end)

  it("modules take it from set_generator or Dropout's option; nil returns them to the global stream", function()
    oe.manual_seed(2)
    local layer = oe.nn.TransformerEncoderLayer(8, 2, { dim_feedforward = 16, dropout = 0.3 })
    local x = oe.randn({ 2, 5, 8 })
    oe.manual_seed(31)
    local global = bytes(layer(x))
    local state_after_global = oe.get_rng_state()
    oe.manual_seed(4)
    local before = oe.get_rng_state()
    layer:set_generator(oe.Generator(31))
    assert.are.equal(global, bytes(layer(x)))
    assert.are.same(before, oe.get_rng_state())
    layer:set_generator(nil)
    oe.manual_seed(31)
    assert.are.equal(global, bytes(layer(x)))
    assert.are.same(state_after_global, oe.get_rng_state())
    -- with checkpoint_ff the feed-forward replays its draws from the generator in backward
    oe.manual_seed(2)
    local ck = oe.nn.TransformerEncoderLayer(8, 2, { dim_feedforward = 16, dropout = 0.3, checkpoint_ff = true })
    ck:set_generator(oe.Generator(31))
    local y = ck(x)
    oe.manual_seed(2)
    local plain = oe.nn.TransformerEncoderLayer(8, 2, { dim_feedforward = 16, dropout = 0.3 })
    plain:set_generator(oe.Generator(31))
    local z = plain(x)
    -- checkpointed against plain feed-forward: other kernels (a fused backward), so compared within
    -- a rounding bound: the layer chains sums of at most 16 products, about 40 roundings in all,
    -- each of at most u times the largest magnitude; one dropout decision taken differently
    -- moves a value by a whole product, orders of magnitude more
    local function bound(t) return H.sum_tol(40, 1 + core.item(t:abs():max())) end
    H.allclose(y, z, bound(z), "checkpointed forward")
    y:sum():backward()
    z:sum():backward()
    H.allclose(ck.linear1.weight.grad, plain.linear1.weight.grad, 10 * bound(plain.linear1.weight.grad),
      "linear1 gradient (10 rows summed)")
    local d = oe.nn.Dropout(0.5, { generator = oe.Generator(8) })
    oe.manual_seed(8)
    assert.are.equal(bytes(oe.F.dropout(oe.ones(20), 0.5, true)), bytes(d(oe.ones(20))))
  end)
end)

describe("add_modality with a generator", function()
  local function part_bytes(m, prefix)
    local out = {}
    for _, p in ipairs(m:named_parameters()) do
      if p[1]:sub(1, #prefix) == prefix then out[#out + 1] = p[1] .. "=" .. bytes(p[2]) end
    end
    assert.is_true(#out > 0)
    return table.concat(out, "|")
  end

  it("draws the new parts from it and leaves the global stream alone", function()
    oe.manual_seed(1)
    local m1 = oe.OneEncoder({ d = 16, ff = 32 })
    local before = oe.get_rng_state()
    m1:add_modality("image", { input_dim = 8, generator = oe.Generator(5) })
    assert.are.same(before, oe.get_rng_state())
    oe.manual_seed(2)                        -- another global position: the same new parts
    local m2 = oe.OneEncoder({ d = 16, ff = 32 })
    m2:add_modality("image", { input_dim = 8, generator = oe.Generator(5) })
    oe.manual_seed(3)
    local m3 = oe.OneEncoder({ d = 16, ff = 32 })
    oe.manual_seed(5)                        -- the global stream at the generator's position
    m3:add_modality("image", { input_dim = 8 })
    for _, prefix in ipairs({ "image_encoder.", "modality_token_encoder." }) do
      assert.are.equal(part_bytes(m1, prefix), part_bytes(m2, prefix))
      assert.are.equal(part_bytes(m1, prefix), part_bytes(m3, prefix))
    end
    assert.are_not.equal(part_bytes(m1, "universal_projection_encoder."), part_bytes(m2, "universal_projection_encoder."))
    -- step 2: alignment layer, token and token MLP
    m1:freeze(); m2:freeze()
    oe.manual_seed(40)
    m1:add_modality("audio", { input_dim = 4, generator = oe.Generator(6) })
    m2:add_modality("audio", { input_dim = 4, generator = oe.Generator(6) })
    assert.are.equal(part_bytes(m1, "audio_"), part_bytes(m2, "audio_"))
    H.fails_with(function() m1:add_modality("video", { generator = 5 }) end, "add_modality: opts.generator must be an oe.Generator")
  end)
end)
