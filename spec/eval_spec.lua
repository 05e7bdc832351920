-- eval_spec.lua: oe.eval against values worked out by hand and against brute force.
local oe = require "oneencoder"
local H = require "helpers"
local near, fails_with = H.near, H.fails_with
local E = oe.eval
local core = oe.core


-- the call fails with a message containing every given fragment

local function eye(n)
  local rows = {}
  for i = 1, n do
    rows[i] = {}
    for j = 1, n do rows[i][j] = (i == j) and 1 or 0 end
  end
  return oe.tensor(rows)
end

local function rows_of(list) return oe.normalize(oe.tensor(list)) end

-- ranking order of one row of scores: higher first, ties by lower index (0-based ids)
local function brute_order(scores)
  local ids = {}
  for j = 1, #scores do ids[j] = j end
  table.sort(ids, function(x, y)
    if scores[x] ~= scores[y] then return scores[x] > scores[y] end
    return x < y
  end)
  for j = 1, #ids do ids[j] = ids[j] - 1 end
  return ids
end

describe("oe.eval wiring", function()
  it("is reachable as oe.eval", function()
    assert.are.equal(require "oneencoder.eval", oe.eval)
    assert.are.equal("function", type(oe.eval.topk_search))
  end)
end)

describe("eval.topk_search", function()
  it("returns best scores first with ties broken by lower index", function()
    local q = oe.tensor({ { 1, 0 } })
    local keys = oe.tensor({ { 0, 1 }, { 1, 0 }, { 1, 0 }, { 0.5, 0.5 }, { 1, 0 } })
    for _, block in ipairs({ 1, 2, 4096 }) do
      local s, i = E.topk_search(q, keys, 3, { block = block })
      assert.are.same({ { 1, 2, 4 } }, core.totable(i))
      assert.are.same({ { 1, 1, 1 } }, core.totable(s))
      s, i = E.topk_search(q, keys, 5, { block = block })
      assert.are.same({ { 1, 2, 4, 3, 0 } }, core.totable(i))
      assert.are.same({ { 1, 1, 1, 0.5, 0 } }, core.totable(s))
      assert.are.equal("int64", core.dtype(i))
    end
  end)

  it("equals brute force on random data for several block sizes and k up to N", function()
    oe.manual_seed(11)
    local Q, N, d = 23, 157, 12
    local q, keys = oe.normalize(oe.randn(Q, d)), oe.normalize(oe.randn(N, d))
    local full = core.totable(oe.matmul(q, keys:t()))
    -- blocked and full products sum the d terms in other orders: scores of unit vectors move by
    -- up to sum_tol(d) on each side, and items closer than that may swap
    local tol = 2 * H.sum_tol(d, 1)
    local order = {}
    for r = 1, Q do order[r] = brute_order(full[r]) end
    for _, k in ipairs({ 1, 5, N }) do
      for _, block in ipairs({ 1, 3, 64, N - 1, N, 4096 }) do
        for _, qblock in ipairs({ 1, 4, 256 }) do
          local s, i = E.topk_search(q, keys, k, { block = block, qblock = qblock })
          assert.are.same({ Q, k }, s:shape())
          local st, it_ = core.totable(s), core.totable(i)
          for r = 1, Q do
            local want = table.move(order[r], 1, k, 1, {})
            H.same_ranking(it_[r], want, full[r], tol, "row " .. r)
            for j = 1, k do near(st[r][j], full[r][it_[r][j] + 1], tol) end
          end
        end
      end
    end
  end)

  it("blocks over many keys agree with a full score matrix and the topk op", function()
    oe.manual_seed(3)
    local q, keys = oe.normalize(oe.randn(5, 8)), oe.normalize(oe.randn(10000, 8))
    local s, i = E.topk_search(q, keys, 20, { block = 1000, qblock = 2 })
    local full = oe.matmul(q, keys:t())
    local s2, i2 = oe.topk(full, 20)
    local tol = 2 * H.sum_tol(8, 1) -- two summation orders of 8 products of unit vectors
    local a, b, ia, ib, f = core.totable(s), core.totable(s2), core.totable(i), core.totable(i2), core.totable(full)
    for r = 1, 5 do
      H.same_ranking(ia[r], ib[r], f[r], tol, "row " .. r)
      for j = 1, 20 do near(a[r][j], b[r][j], tol) end
    end
  end)

  it("rejects bad input with the function and argument named", function()
    local q, keys = oe.normalize(oe.randn(2, 3)), oe.normalize(oe.randn(4, 3))
    fails_with(function() E.topk_search(q, oe.randn(4, 2), 1) end, "eval.topk_search", "different embedding sizes")
    fails_with(function() E.topk_search(q, keys, 5) end, "eval.topk_search", "'k' = 5 is larger than the number of keys (4)")
    fails_with(function() E.topk_search(q, keys, 0) end, "eval.topk_search", "'k'")
    fails_with(function() E.topk_search(q, keys, 1.5) end, "eval.topk_search", "'k' must be an integer")
    fails_with(function() E.topk_search(oe.zeros({ 0, 3 }), keys, 1) end, "eval.topk_search", "'queries' is empty")
    fails_with(function() E.topk_search(q, oe.zeros({ 0, 3 }), 1) end, "eval.topk_search", "'keys' is empty")
    fails_with(function() E.topk_search(q, oe.tensor({ { 1, 2, 3 } }, "int64"), 1) end, "'keys' must be float32")
    fails_with(function() E.topk_search(oe.randn(3), keys, 1) end, "'queries' must be 2-D")
    fails_with(function() E.topk_search(oe.tensor({ { 0 / 0, 0, 1 } }), keys, 1) end, "'queries' has NaN or Inf")
    fails_with(function() E.topk_search(q, keys, 1, { block = 0 }) end, "option 'block'")
    fails_with(function() core.search_topk(q, keys, 9) end, "search_topk", "out of range")
  end)
end)

-- Three queries that all score the six one-hot keys 6 > 5 > 4 > 3 > 2 > 1.
local function three_queries()
  local keys = eye(6)
  local w = { 6, 5, 4, 3, 2, 1 }
  return rows_of({ w, w, w }), keys
end

describe("eval.retrieval", function()
  it("ranks 1, 2, 5: R@1 = 1/3, R@5 = 1, median 2, mean 8/3 (and the tied reverse direction)", function()
    local a, b = three_queries()
    -- a[0] matches key 0 (rank 1), a[1] key 1 (rank 2), a[2] key 4 (rank 5)
    local r = E.retrieval(a, b, { a = { 100, 200, 300 }, b = { 100, 200, 7, 8, 300, 9 } })
    local m = r.a2b
    assert.are.equal(3, m.n)
    near(m.R1, 1 / 3); near(m.R5, 1); near(m.R10, 1)
    near(m.median_rank, 2); near(m.mean_rank, 8 / 3)
    near(m.mAP, (1 + 1 / 2 + 1 / 5) / 3)
    assert.are.same({ 1, 2, 5 }, core.totable(m.ranks))
    -- b -> a: the three a rows are identical, so every key ties them and the
    -- lower index wins: key 0 -> a[0] rank 1, key 1 -> a[1] rank 2, key 4 -> a[2] rank 3
    local w = r.b2a
    assert.are.equal(3, w.n)
    assert.are.equal(3, w.n_without_relevant)
    assert.are.same({ 1, 2, 0, 0, 3, 0 }, core.totable(w.ranks))
    near(w.R1, 1 / 3); near(w.median_rank, 2); near(w.mean_rank, 2)
    near(w.mAP, (1 + 1 / 2 + 1 / 3) / 3)
  end)

  it("mAP with two relevant items at ranks 1 and 3 is (1 + 2/3) / 2", function()
    local a = rows_of({ { 6, 5, 4, 3, 2, 1 } })
    local r = E.retrieval(a, eye(6), { { 1 }, { 1, 0, 1, 2, 3, 4 } })
    near(r.a2b.mAP, (1 + 2 / 3) / 2, 1e-12)
    near(r.a2b.R1, 1)
    near(core.totable(r.a2b.ap)[1], (1 + 2 / 3) / 2, 1e-6)
  end)

  it("one-to-one by default, and captions pointing at images", function()
    -- a[i] is closest to b[(i + 1) % 3] and second closest to b[i]
    local b = eye(3)
    local a = rows_of({ { 2, 3, 0 }, { 0, 2, 3 }, { 3, 0, 2 } })
    local r = E.retrieval(a, b)
    assert.are.same({ 2, 2, 2 }, core.totable(r.a2b.ranks))
    near(r.a2b.R1, 0); near(r.a2b.R5, 1); near(r.a2b.mAP, 0.5)
    -- captions: b rows 0, 1 describe image 0, rows 2, 3 image 1
    local img = eye(2)
    local cap = rows_of({ { 1, 0 }, { 0.2, 1 }, { 0, 1 }, { 1, 0.1 } })
    local c = E.retrieval(img, cap, { 0, 0, 1, 1 })
    -- image 0 ranks captions 0, 3, 1, 2: relevant at 1 and 3; image 1: 2, 1, 3, 0: relevant at 1 and 3
    assert.are.same({ 1, 1 }, core.totable(c.a2b.ranks))
    near(c.a2b.mAP, (1 + 2 / 3) / 2, 1e-12)
    -- caption 1 prefers image 1, caption 3 prefers image 0 (both wrong)
    assert.are.same({ 1, 2, 1, 2 }, core.totable(c.b2a.ranks))
    near(c.b2a.R1, 0.5); near(c.b2a.median_rank, 1.5); near(c.b2a.mean_rank, 1.5)
  end)

  it("agrees with brute-force ranks and AP on random data with groups", function()
    oe.manual_seed(5)
    local N, M, d = 30, 50, 6
    local a, b = oe.normalize(oe.randn(N, d)), oe.normalize(oe.randn(M, d))
    local ga, gb = {}, {}
    for i = 1, N do ga[i] = (i * 7) % 9 end
    for j = 1, M do gb[j] = (j * 5) % 11 end
    local r = E.retrieval(a, b, { a = ga, b = gb }, { qblock = 7 })
    local s = core.totable(oe.matmul(a, b:t()))
    -- the search's blocked products and this full one may round scores differently (by up to
    -- sum_tol(d) each); this data has no two scores of a row that close, so ranks are exact
    local tol = 2 * H.sum_tol(d, 1)
    for i = 1, N do
      local sorted = table.move(s[i], 1, M, 1, {})
      table.sort(sorted)
      for j = 2, M do assert(sorted[j] - sorted[j - 1] > tol, "near-tie in row " .. i) end
    end
    local firsts, apsum, n = core.totable(r.a2b.ranks), 0, 0
    for i = 1, N do
      local order = brute_order(s[i])
      local hits, ap, first = 0, 0, 0
      for pos, j in ipairs(order) do
        if gb[j + 1] == ga[i] then
          hits = hits + 1
          ap = ap + hits / pos
          if first == 0 then first = pos end
        end
      end
      assert.are.equal(first, firsts[i])
      if hits > 0 then apsum, n = apsum + ap / hits, n + 1 end
    end
    assert.are.equal(n, r.a2b.n)
    near(r.a2b.mAP, apsum / n, 1e-9)
  end)

  it("rejects bad ground truth", function()
    local a, b = three_queries()
    fails_with(function() E.retrieval(a, b) end, "eval.retrieval", "one-to-one", "equal counts")
    fails_with(function() E.retrieval(a, b, { a = { 1, 2 }, b = { 1, 2, 3, 4, 5, 6 } }) end, "'relevant.a' has 2 entries, expected 3")
    fails_with(function() E.retrieval(a, b, { a = { 1, 2, 3 } }) end, "needs group ids for both")
    fails_with(function() E.retrieval(a, b, { 0, 1, 2, 0, 1, 7 }) end, "entry 6 = 7 is not a row of 'a'")
    fails_with(function() E.retrieval(a, b, { a = { 1, 2, 3.5 }, b = { 1, 2, 3, 4, 5, 6 } }) end, "entry 3 is not an integer")
    fails_with(function() E.retrieval(a, b, { a = { 1, 2, 3 }, b = { 4, 4, 4, 4, 4, 4 } }) end, "no query has a relevant item")
    fails_with(function() E.retrieval(a, oe.randn(6, 4)) end, "eval.retrieval", "different embedding sizes")
  end)
end)

describe("eval.querying (AudioCLIP protocol)", function()
  it("P@1, R@1 and mAP on a hand-worked example", function()
    -- five one-hot keys with labels 0 1 0 1 0; both queries score keys 1 > 2 > 3 > 4 > 0
    local keys = eye(5)
    local w = { 1, 5, 4, 3, 2 }
    local q = rows_of({ w, w })
    local r = E.querying(q, keys, { 0, 1 }, oe.tensor({ 0, 1, 0, 1, 0 }, "int64"))
    -- query 0 (label 0): relevant keys 2, 4, 0 at ranks 2, 4, 5 -> AP = (1/2 + 2/4 + 3/5) / 3, top-1 miss
    -- query 1 (label 1): relevant keys 1, 3 at ranks 1, 3 -> AP = (1 + 2/3) / 2, top-1 hit, R@1 = 1/2
    near(r.P1, 0.5)
    near(r.R1, 0.25)
    near(r.mAP, ((0.5 + 0.5 + 0.6) / 3 + (1 + 2 / 3) / 2) / 2, 1e-12)
    assert.are.same({ 2, 1 }, core.totable(r.ranks))
  end)

  it("multi-label sets: relevant when a label is shared", function()
    local q = rows_of({ { 4, 3, 2, 1 }, { 4, 3, 2, 1 } })
    local r = E.querying(q, eye(4), { { 0, 2 }, { 9 } }, { { 1 }, { 2 }, { 0, 1 }, { 3 } })
    -- query 0: keys 1 and 2 relevant at ranks 2, 3; query 1 has no relevant key
    assert.are.equal(1, r.n)
    assert.are.equal(1, r.n_without_relevant)
    near(r.P1, 0); near(r.R1, 0); near(r.mAP, (1 / 2 + 2 / 3) / 2, 1e-12)
  end)

  it("rejects mismatched labels", function()
    local q = rows_of({ { 1, 0 } })
    fails_with(function() E.querying(q, eye(2), { 0, 1 }, { 0, 1 }) end, "eval.querying", "'query_labels' has 2 entries, expected 1")
    fails_with(function() E.querying(q, eye(2), { 0 }) end, "eval.querying", "'key_labels' is missing")
  end)

  it("the C kernel checks offsets and label ranges", function()
    local q = rows_of({ { 1, 0 } })
    local i64 = function(t) return oe.tensor(t, "int64") end
    fails_with(function() core.search_ranks(q, eye(2), i64({ 0, 1 }), i64({ 5 }), i64({ 0, 1, 2 }), i64({ 0, 1 }), 2) end,
      "search_ranks", "label 5 outside [0, 2)")
    fails_with(function() core.search_ranks(q, eye(2), i64({ 0, 2 }), i64({ 0 }), i64({ 0, 1, 2 }), i64({ 0, 1 }), 2) end,
      "search_ranks", "query_offsets")
  end)
end)

describe("eval.zero_shot", function()
  -- 4 classes = one-hot class embeddings; 6 images
  local function four_class()
    local img = rows_of({
      { 4, 3, 2, 1 }, -- label 0, predicted 0
      { 1, 4, 3, 2 }, -- label 1, predicted 1
      { 1, 2, 4, 3 }, -- label 2, predicted 2
      { 3, 1, 2, 4 }, -- label 3, predicted 3
      { 1, 4, 2, 3 }, -- label 0, predicted 1 (order 1, 3, 2, 0)
      { 1, 2, 3, 4 }, -- label 2, predicted 3 (order 3, 2, 1, 0)
    })
    return img, eye(4), { 0, 1, 2, 3, 0, 2 }
  end

  it("top-1, top-5, per-class accuracy and the confusion matrix", function()
    local img, cls, y = four_class()
    local z = E.zero_shot(img, cls, oe.tensor(y, "int64"))
    near(z.top1, 4 / 6)
    near(z.top5, 1) -- 4 classes: every label is within the top min(5, 4)
    assert.are.same({ { 1, 1, 0, 0 }, { 0, 1, 0, 0 }, { 0, 0, 1, 1 }, { 0, 0, 0, 1 } }, core.totable(z.confusion))
    assert.are.equal("int64", core.dtype(z.confusion))
    near(z.per_class_accuracy[1], 0.5); near(z.per_class_accuracy[2], 1)
    near(z.per_class_accuracy[3], 0.5); near(z.per_class_accuracy[4], 1)
    near(z.mean_per_class_accuracy, 0.75)
    assert.are.same({ 0, 1, 2, 3, 1, 3 }, core.totable(z.predictions))
    -- top-2: image 4 misses (label 0 ranked last), image 5 hits (label 2 second)
    near(E.zero_shot(img, cls, y, { k = 2 }).top5, 5 / 6)
  end)

  it("top-5 below 1 with 6 classes; a class without samples gives NaN and is left out of the mean", function()
    local img = rows_of({ { 6, 5, 4, 3, 2, 1 }, { 6, 5, 4, 3, 2, 1 } })
    local z = E.zero_shot(img, eye(6), { 5, 4 })
    near(z.top1, 0); near(z.top5, 0.5)
    assert.is_true(z.per_class_accuracy[1] ~= z.per_class_accuracy[1])
    near(z.mean_per_class_accuracy, 0)
  end)

  it("averages per-template class embeddings as OpenCLIP (normalise, mean, normalise)", function()
    local t1 = oe.tensor({ { 1, 0, 0 }, { 0, 1, 0 } })
    local t2 = oe.tensor({ { 0, 0, 2 }, { 0, 3, 0 } }) -- not normalised: each template is normalised first
    local c = core.totable(E.class_embeddings({ t1, t2 }))
    local h = 1 / math.sqrt(2)
    for j, v in ipairs({ h, 0, h }) do near(c[1][j], v) end
    for j, v in ipairs({ 0, 1, 0 }) do near(c[2][j], v) end
    local c3 = core.totable(E.class_embeddings(oe.stack({ t1, t2 })))
    assert.are.same(c, c3)
    -- an image at (0, 0.5, 0.866): template 1 alone says class 1, the ensemble class 0
    local img = rows_of({ { 0, 0.5, 0.866 } })
    near(E.zero_shot(img, t1, { 0 }).top1, 0)
    near(E.zero_shot(img, { t1, t2 }, { 0 }).top1, 1)
  end)

  it("class prompts with the default and the CIFAR-10 templates", function()
    assert.are.same({ { "a photo of a cat." }, { "a photo of a dog." } }, E.class_prompts({ "cat", "dog" }))
    assert.are.same({ { "a cat, this is a photo of a cat." } }, E.class_prompts({ "cat" }, E.templates.cifar10))
    local p = E.class_prompts({ "100% cotton" }, { "a photo of a {c}.", function(c) return c:upper() end })
    assert.are.same({ { "a photo of a 100% cotton.", "100% COTTON" } }, p)
    fails_with(function() E.class_prompts({}) end, "eval.class_prompts", "'classnames'")
    fails_with(function() E.class_prompts({ "cat" }, { "a photo" }) end, "has no {c} placeholder")
  end)

  it("rejects bad input", function()
    local img, cls, y = four_class()
    fails_with(function() E.zero_shot(img, cls, { 0, 4, 0, 0, 0, 0 }) end, "eval.zero_shot", "'labels' entry 2 = 4 is outside 0..3")
    fails_with(function() E.zero_shot(img, cls, { 0, 1 }) end, "eval.zero_shot", "'labels' has 2 entries, expected 6")
    fails_with(function() E.zero_shot(img, oe.randn(4, 3), y) end, "eval.zero_shot", "different embedding sizes")
    fails_with(function() E.zero_shot(img, {}, y) end, "eval.zero_shot", "empty list of templates")
    fails_with(function() E.zero_shot(img, { cls, eye(3) }, y) end, "eval.zero_shot", "template 2 has shape (3, 3)")
    fails_with(function() E.zero_shot(oe.zeros({ 0, 4 }), cls, {}) end, "eval.zero_shot", "'image_emb' is empty")
  end)
end)

describe("eval.linear_probe", function()
  -- 4 well separated clusters around +-e1, +-e2 in 8-d
  local function clusters(n)
    local centers = { { 1, 0 }, { -1, 0 }, { 0, 1 }, { 0, -1 } }
    local noise = core.totable(oe.uniform({ n, 8 }, -0.2, 0.2))
    local x, y = {}, {}
    for i = 1, n do
      local c = (i - 1) % 4
      local row = noise[i]
      row[1], row[2] = row[1] + centers[c + 1][1], row[2] + centers[c + 1][2]
      x[i], y[i] = row, c
    end
    return oe.normalize(oe.tensor(x)), y
  end

  it("reaches 100% on a linearly separable set", function()
    oe.manual_seed(21)
    local xtr, ytr = clusters(80)
    local xte, yte = clusters(40)
    local p = E.linear_probe(xtr, ytr, xte, oe.tensor(yte, "int64"), { epochs = 60, batch = 16, lr = 0.05 })
    assert.are.equal(1, p.train_acc)
    assert.are.equal(1, p.test_acc)
    assert.are.equal(4, p.num_classes)
    assert.is_true(p.losses[60] < p.losses[1] / 4)
    assert.are.same({ 4, 8 }, p.model.weight:shape())
  end)

  it("stays near chance on random labels", function()
    oe.manual_seed(8)
    local xtr, xte = oe.normalize(oe.randn(200, 16)), oe.normalize(oe.randn(800, 16))
    local ytr = core.totable(oe.randint(0, 4, { 200 }, "int64"))
    local yte = core.totable(oe.randint(0, 4, { 800 }, "int64"))
    local p = E.linear_probe(xtr, ytr, xte, yte, { epochs = 30, batch = 32, lr = 0.05 })
    assert.is_true(p.test_acc > 0.17 and p.test_acc < 0.33, "test accuracy " .. p.test_acc)
    assert.is_true(p.train_acc > p.test_acc) -- it fits noise on the training set only
  end)

  it("is deterministic given the seed", function()
    local xtr, ytr = clusters(40)
    local a = E.linear_probe(xtr, ytr, xtr, ytr, { epochs = 5, batch = 8, seed = 4 })
    local b = E.linear_probe(xtr, ytr, xtr, ytr, { epochs = 5, batch = 8, seed = 4 })
    assert.are.same(a.losses, b.losses)
    assert.are.equal(core.to_bytes(a.model.weight), core.to_bytes(b.model.weight))
  end)

  it("rejects bad input", function()
    local x = oe.normalize(oe.randn(4, 3))
    local y = { 0, 1, 0, 1 }
    fails_with(function() E.linear_probe(x, { 0, 1 }, x, y) end, "eval.linear_probe", "'train_y' has 2 entries, expected 4")
    fails_with(function() E.linear_probe(x, y, x, { 0, 1, 2, 1 }, { num_classes = 2 }) end, "eval.linear_probe",
      "'test_y' entry 3 = 2 is outside 0..1")
    fails_with(function() E.linear_probe(x, { 0, -1, 0, 1 }, x, y) end, "'train_y' entry 2 = -1")
    fails_with(function() E.linear_probe(x, y, oe.randn(4, 5), y) end, "eval.linear_probe", "different embedding sizes")
    fails_with(function() E.linear_probe(oe.zeros({ 0, 3 }), {}, x, y) end, "'train_x' is empty")
    fails_with(function() E.linear_probe(x, y, x, y, { epochs = 0 }) end, "option 'epochs'")
  end)
end)

describe("eval.format_table", function()
  it("prints a Markdown table from arrays or from maps with a column order", function()
    local t = E.format_table({ { "model", "R@1", "n" }, { "ours", 0.5, 3 }, { "base", 0.25, 12 } })
    assert.are.equal(table.concat({
      "| model | R@1    | n   |",
      "| ----- | ------ | --- |",
      "| ours  | 0.5000 | 3   |",
      "| base  | 0.2500 | 12  |",
    }, "\n"), t)
    local m = E.format_table({ { name = "x", acc = 1 / 3 } }, { "name", "acc" }, { digits = 2 })
    assert.are.equal("| name | acc  |\n| ---- | ---- |\n| x    | 0.33 |", m)
    fails_with(function() E.format_table({}) end, "eval.format_table", "'rows'")
  end)
end)
