-- eval.lua: evaluation of embeddings (oe.eval).
--
-- Every function takes L2-normalised float32 embeddings (rows, d); cosine
-- similarity is then the dot product. Nothing here records gradients.
-- Ranking order everywhere: higher score first, equal scores by lower index
-- (the same order as topk_search), so results are deterministic.
--
--   local scores, ids = oe.eval.topk_search(queries, keys, 10)        -- (Q, 10), 0-based ids
--   local r = oe.eval.retrieval(img, txt, {a = img_ids, b = cap_img_ids})
--   print(r.a2b.R1, r.b2a.median_rank, r.b2a.mAP)
--   local q = oe.eval.querying(text_emb, audio_emb, {0, 1, 2}, audio_labels)  -- P1, R1, mAP
--   local z = oe.eval.zero_shot(img, {tmpl1_emb, tmpl2_emb}, labels)  -- top1, top5, confusion
--   local p = oe.eval.linear_probe(xtr, ytr, xte, yte, {epochs = 50})
--   print(oe.eval.format_table({{"model", "R@1"}, {"ours", 0.42}}))
local core = require "oneencoder.core"
local A = require "oneencoder.autograd"
local T = require "oneencoder.tensor"

local eval = {}

local is_tensor, shape_of, dtype_of = core.is_tensor, core.shape, core.dtype

-- ---------------------------------------------------------------- checks

local function fail(fn, fmt, ...) error("eval." .. fn .. ": " .. string.format(fmt, ...), 3) end

local function shape_str(t)
  local s = shape_of(t)
  return "(" .. table.concat(s, ", ") .. (#s == 1 and ",)" or ")")
end

-- an embedding matrix: float32, (rows >= 1, d >= 1), finite
local function check_emb(fn, arg, t)
  if not is_tensor(t) then fail(fn, "argument '%s' must be a float32 tensor (rows, d), got %s", arg, type(t)) end
  if dtype_of(t) ~= "float32" then fail(fn, "argument '%s' must be float32, got %s", arg, dtype_of(t)) end
  local s = shape_of(t)
  if #s ~= 2 then fail(fn, "argument '%s' must be 2-D (rows, d), got shape %s", arg, shape_str(t)) end
  if s[1] < 1 then fail(fn, "argument '%s' is empty (shape %s)", arg, shape_str(t)) end
  if s[2] < 1 then fail(fn, "argument '%s' has no features (shape %s)", arg, shape_str(t)) end
  if not core.all_finite(t) then fail(fn, "argument '%s' has NaN or Inf values", arg) end
  return s[1], s[2]
end

local function check_same_dim(fn, an, a, bn, b)
  local da, db = shape_of(a)[2], shape_of(b)[2]
  if da ~= db then
    fail(fn, "'%s' %s and '%s' %s have different embedding sizes (%d vs %d)", an, shape_str(a), bn, shape_str(b), da, db)
  end
end

-- integer labels from a Lua list or a tensor -> Lua list of integers (length n if given)
local function int_list(fn, arg, x, n)
  local list
  if is_tensor(x) then
    if core.dim(x) ~= 1 then fail(fn, "argument '%s' must be 1-D, got shape %s", arg, shape_str(x)) end
    list = core.totable(x)
  elseif type(x) == "table" then
    list = x
  else
    fail(fn, "argument '%s' must be a list or a 1-D tensor of integers, got %s", arg, type(x))
  end
  local out = {}
  for i = 1, #list do
    local v = list[i]
    local iv = math.tointeger(v)
    if iv == nil then fail(fn, "argument '%s' entry %d is not an integer (%s)", arg, i, tostring(v)) end
    out[i] = iv
  end
  if n and #out ~= n then fail(fn, "argument '%s' has %d entries, expected %d", arg, #out, n) end
  return out
end

-- labels of rows: a list/tensor of integers (one label each) or a list of lists
-- (label sets). Returns a list of label lists.
local function label_sets(fn, arg, x, n)
  if type(x) == "table" and not is_tensor(x) and type(x[1]) == "table" then
    if #x ~= n then fail(fn, "argument '%s' has %d entries, expected %d", arg, #x, n) end
    local out = {}
    for i = 1, n do
      if type(x[i]) ~= "table" then fail(fn, "argument '%s' entry %d is not a list of labels", arg, i) end
      out[i] = int_list(fn, arg .. "[" .. i .. "]", x[i])
    end
    return out
  end
  local l = int_list(fn, arg, x, n)
  local out = {}
  for i = 1, n do out[i] = { l[i] } end
  return out
end

-- label lists of both sides -> CSR tensors over one dense label space
local function csr_pair(qsets, ksets)
  local dense, nlab = {}, 0
  local function build(sets)
    local off, lab = { 0 }, {}
    for i = 1, #sets do
      for _, v in ipairs(sets[i]) do
        local d = dense[v]
        if d == nil then d = nlab; dense[v] = d; nlab = nlab + 1 end
        lab[#lab + 1] = d
      end
      off[i + 1] = #lab
    end
    local labt = #lab > 0 and core.from_table(lab, "int64") or core.zeros({ 0 }, "int64")
    return core.from_table(off, "int64"), labt
  end
  local qo, ql = build(qsets)
  local ko, kl = build(ksets)
  return qo, ql, ko, kl, nlab
end

local function median(sorted)
  local n = #sorted
  if n % 2 == 1 then return sorted[(n + 1) // 2] end
  return (sorted[n // 2] + sorted[n // 2 + 1]) / 2
end

-- ---------------------------------------------------------------- top-k

-- topk_search(queries (Q, d), keys (N, d), k, {block = 4096, qblock = 1024})
--   -> scores (Q, k) float32 best first, indices (Q, k) int64 0-based.
-- Exact: scores are computed in (qblock x block) tiles with sgemm, so memory
-- stays at qblock * block floats (16 MB by default) however large N is; the per-row selection
-- runs in parallel (OpenMP) over the query rows. Ties: lower key index first.
function eval.topk_search(queries, keys, k, opts)
  opts = opts or {}
  local fn = "topk_search"
  check_emb(fn, "queries", queries)
  local N = check_emb(fn, "keys", keys)
  check_same_dim(fn, "queries", queries, "keys", keys)
  if math.type(k) ~= "integer" then fail(fn, "argument 'k' must be an integer, got %s", tostring(k)) end
  if k < 1 then fail(fn, "argument 'k' = %d must be at least 1", k) end
  if k > N then fail(fn, "argument 'k' = %d is larger than the number of keys (%d)", k, N) end
  local block, qblock = opts.block or 4096, opts.qblock or 1024
  if math.type(block) ~= "integer" or block < 1 then fail(fn, "option 'block' must be a positive integer") end
  if math.type(qblock) ~= "integer" or qblock < 1 then fail(fn, "option 'qblock' must be a positive integer") end
  return core.search_topk(queries, keys, k, block, qblock)
end

-- ---------------------------------------------------------------- ranking metrics

-- Metrics of one direction from the per-query kernel outputs.
-- ranks: 1-based rank of the first relevant key (0 = the query has none).
-- Queries without any relevant key are left out of every average and counted
-- in n_without_relevant.
-- apsum: the kernel's double-precision sum of AP (0 for queries without relevant keys).
local function summarise(fn, first, nrel, ap, apsum, ks)
  local f, r = core.totable(first), core.totable(nrel)
  local ranks = {}
  for i = 1, #f do
    if r[i] > 0 then ranks[#ranks + 1] = f[i] end
  end
  local n = #ranks
  if n == 0 then fail(fn, "no query has a relevant item: check the ground truth") end
  local out = { n = n, n_without_relevant = #f - n, ranks = first, ap = ap, recall = {} }
  for _, k in ipairs(ks) do
    local hit = 0
    for _, v in ipairs(ranks) do if v <= k then hit = hit + 1 end end
    out.recall[k] = hit / n
  end
  local sum = 0
  for _, v in ipairs(ranks) do sum = sum + v end
  table.sort(ranks)
  out.mean_rank = sum / n
  out.median_rank = median(ranks)
  out.mAP = apsum / n
  return out
end

-- query rows per score tile of the ranking kernel: the tile holds every key's
-- score (qblock x N floats); about 64 MB unless the caller says otherwise.
-- Large tiles matter: each sgemm call packs the whole key matrix again.
local function ranks_qblock(fn, qblock, Q, N)
  if qblock == nil then return math.max(1, math.min(Q, 1024, (64 * 1024 * 1024) // (4 * N))) end
  if math.type(qblock) ~= "integer" or qblock < 1 then fail(fn, "option 'qblock' must be a positive integer") end
  return qblock
end

local function rank_direction(fn, q, k, qsets, ksets, ks, qblock)
  local qo, ql, ko, kl, nlab = csr_pair(qsets, ksets)
  qblock = ranks_qblock(fn, qblock, #qsets, #ksets)
  local first, nrel, ap, apsum = core.search_ranks(q, k, qo, ql, ko, kl, nlab, qblock)
  return summarise(fn, first, nrel, ap, apsum, ks)
end

-- retrieval(a (N, d), b (M, d), relevant, {ks = {1, 5, 10}, qblock = auto})
-- relevant (ground truth):
--   nil                      one-to-one: a[i] matches b[i] (needs N == M)
--   {a = ga, b = gb}         group ids (lists or 1-D int tensors of N and M ids;
--   or {ga, gb}              any integers): a[i] and b[j] match when ga[i] == gb[j],
--                            e.g. several captions per image
--   gb (M ids)               b[j] matches a[gb[j]] (0-based), a[i] has group i
-- Returns {a2b = m, b2a = m}; m holds, over the queries that have at least one
-- relevant item (n of them):
--   R1, R5, R10   fraction of queries with a relevant item in the top 1/5/10
--                 (recall[k] for every k in opts.ks)
--   median_rank, mean_rank   of the first relevant item, 1-based (median of an
--                 even count = mean of the two middle ranks, as numpy)
--   mAP           mean over queries of the average precision over all relevant
--                 items: AP = (1/R) sum_p p / rank_p, rank_p of the p-th relevant
--   ranks         int64 (Q) first-relevant rank per query (0 = none), ap float32 (Q)
function eval.retrieval(a, b, relevant, opts)
  opts = opts or {}
  local fn = "retrieval"
  local N = check_emb(fn, "a", a)
  local M = check_emb(fn, "b", b)
  check_same_dim(fn, "a", a, "b", b)
  local ga, gb
  if relevant == nil then
    if N ~= M then
      fail(fn, "'a' has %d rows and 'b' %d: without 'relevant' the pairing is one-to-one and needs equal counts", N, M)
    end
    ga, gb = {}, {}
    for i = 1, N do ga[i] = i - 1; gb[i] = i - 1 end
  elseif type(relevant) == "table" and not is_tensor(relevant) and (relevant.a ~= nil or relevant.b ~= nil
      or is_tensor(relevant[1]) or type(relevant[1]) == "table") then
    local ra, rb = relevant.a or relevant[1], relevant.b or relevant[2]
    if ra == nil or rb == nil then fail(fn, "argument 'relevant' needs group ids for both 'a' and 'b'") end
    ga = int_list(fn, "relevant.a", ra, N)
    gb = int_list(fn, "relevant.b", rb, M)
  else
    gb = int_list(fn, "relevant", relevant, M)
    ga = {}
    for i = 1, N do ga[i] = i - 1 end
    for j = 1, M do
      if gb[j] < 0 or gb[j] >= N then
        fail(fn, "argument 'relevant' entry %d = %d is not a row of 'a' (0..%d)", j, gb[j], N - 1)
      end
    end
  end
  local sa, sb = {}, {}
  for i = 1, N do sa[i] = { ga[i] } end
  for j = 1, M do sb[j] = { gb[j] } end
  local ks = opts.ks or { 1, 5, 10 }
  local out = {}
  out.a2b = rank_direction(fn, a, b, sa, sb, ks, opts.qblock)
  out.b2a = rank_direction(fn, b, a, sb, sa, ks, opts.qblock)
  for _, m in pairs(out) do m.R1, m.R5, m.R10 = m.recall[1], m.recall[5], m.recall[10] end
  return out
end

-- querying(queries (Q, d), keys (N, d), query_labels, key_labels, {qblock = auto})
-- The AudioCLIP querying protocol (Guzhov et al. 2021, sec. "Querying"): every
-- query ranks all keys of the other modality by cosine similarity; a key counts
-- as relevant when its class label matches the query's (for multi-label data
-- such as AudioSet, when the label sets share a label). The paper reports top-1
-- precision/recall (P@1, R@1) and mean average precision; its released code has
-- no querying script, so these are the standard IR definitions we implement:
--   P@1 = mean over queries of [top-1 key is relevant]
--   R@1 = mean over queries of (relevant keys in the top 1) / (relevant keys)
--   mAP = mean over queries of AP = (1/R) sum_p p / rank_p over all R relevant keys
-- Queries without any relevant key are left out (n_without_relevant counts them).
-- Labels: a list or 1-D int tensor (one label per row) or a list of label lists.
-- Example: text->audio with class-name queries: querying(text_emb, audio_emb,
-- {0, 1, ..., C-1}, audio_labels).
function eval.querying(queries, keys, query_labels, key_labels, opts)
  opts = opts or {}
  local fn = "querying"
  local Q = check_emb(fn, "queries", queries)
  local N = check_emb(fn, "keys", keys)
  check_same_dim(fn, "queries", queries, "keys", keys)
  if query_labels == nil then fail(fn, "argument 'query_labels' is missing") end
  if key_labels == nil then fail(fn, "argument 'key_labels' is missing") end
  local qs = label_sets(fn, "query_labels", query_labels, Q)
  local ks = label_sets(fn, "key_labels", key_labels, N)
  local qo, ql, ko, kl, nlab = csr_pair(qs, ks)
  local first, nrel, ap, apsum = core.search_ranks(queries, keys, qo, ql, ko, kl, nlab, ranks_qblock(fn, opts.qblock, Q, N))
  local m = summarise(fn, first, nrel, ap, apsum, { 1 })
  local f, r = core.totable(first), core.totable(nrel)
  local r1 = 0
  for i = 1, #f do if r[i] > 0 and f[i] == 1 then r1 = r1 + 1 / r[i] end end
  return { P1 = m.recall[1], R1 = r1 / m.n, mAP = m.mAP, n = m.n, n_without_relevant = m.n_without_relevant,
    ranks = first, ap = ap }
end

-- ---------------------------------------------------------------- zero-shot

eval.templates = {
  default = { "a photo of a {c}." },
  cifar10 = { "a {c}, this is a photo of a {c}." },
}

-- class_prompts(classnames, templates) -> { {prompt per template} per class }
-- templates: a list of strings with "{c}" (or functions c -> string); default
-- {"a photo of a {c}."}. eval.templates.cifar10 is the CIFAR-10 style one.
function eval.class_prompts(classnames, templates)
  local fn = "class_prompts"
  if type(classnames) ~= "table" or #classnames == 0 then fail(fn, "argument 'classnames' must be a non-empty list of strings") end
  templates = templates or eval.templates.default
  if type(templates) == "string" then templates = { templates } end
  if type(templates) ~= "table" or #templates == 0 then fail(fn, "argument 'templates' must be a non-empty list") end
  for i, t in ipairs(templates) do
    if type(t) == "string" then
      if not t:find("{c}", 1, true) then fail(fn, "template %d (%q) has no {c} placeholder", i, t) end
    elseif type(t) ~= "function" then
      fail(fn, "template %d must be a string or a function, got %s", i, type(t))
    end
  end
  local out = {}
  for ci, c in ipairs(classnames) do
    if type(c) ~= "string" then fail(fn, "class name %d must be a string, got %s", ci, type(c)) end
    local list = {}
    for ti, t in ipairs(templates) do
      if type(t) == "function" then
        list[ti] = t(c)
      else
        list[ti] = (t:gsub("{c}", function() return c end))
      end
    end
    out[ci] = list
  end
  return out
end

-- class_embeddings(per_template) -> (C, d): OpenCLIP's template ensemble.
-- per_template: a (C, d) tensor, a list of (C, d) tensors (one per template)
-- or a (T, C, d) tensor. Each template embedding is L2-normalised, the
-- templates are averaged per class, and the mean is L2-normalised again.
function eval.class_embeddings(per_template, fn)
  fn = fn or "class_embeddings"
  local list
  if is_tensor(per_template) then
    local s = shape_of(per_template)
    if #s == 3 then
      if s[1] < 1 then fail(fn, "argument 'class_emb' has no templates") end
      list = {}
      for t = 1, s[1] do list[t] = core.select(per_template, 1, t) end
    else
      list = { per_template }
    end
  elseif type(per_template) == "table" then
    list = per_template
    if #list == 0 then fail(fn, "argument 'class_emb' is an empty list of templates") end
  else
    fail(fn, "argument 'class_emb' must be a tensor (C, d) or a list of them, got %s", type(per_template))
  end
  local C, d
  return A.no_grad(function()
    local acc
    for t, e in ipairs(list) do
      local c, dd = check_emb(fn, "class_emb[" .. t .. "]", e)
      if C and (c ~= C or dd ~= d) then
        fail(fn, "template %d has shape %s, template 1 has (%d, %d)", t, shape_str(e), C, d)
      end
      C, d = c, dd
      local n = T.normalize(e)
      acc = acc and T.add(acc, n) or n
    end
    if #list == 1 then return acc end
    return T.normalize(T.div(acc, #list))
  end)
end

-- zero_shot(image_emb (N, d), class_emb, labels (N) int 0-based, {k = 5})
-- class_emb: (C, d) or per-template embeddings (see class_embeddings).
-- Returns:
--   top1, top5      accuracies; top5 counts a hit within the first min(opts.k or 5, C)
--   per_class_accuracy  list of C recalls (NaN for a class with no sample)
--   mean_per_class_accuracy  mean over the classes that have samples
--   confusion       (C, C) int64, rows = true class, cols = predicted
--   predictions     (N) int64 top-1 class, n
function eval.zero_shot(image_emb, class_emb, labels, opts)
  opts = opts or {}
  local fn = "zero_shot"
  local N = check_emb(fn, "image_emb", image_emb)
  local cls = eval.class_embeddings(class_emb, fn)
  local C = shape_of(cls)[1]
  check_same_dim(fn, "image_emb", image_emb, "class_emb", cls)
  if labels == nil then fail(fn, "argument 'labels' is missing") end
  local y = int_list(fn, "labels", labels, N)
  for i = 1, N do
    if y[i] < 0 or y[i] >= C then fail(fn, "argument 'labels' entry %d = %d is outside 0..%d (%d classes)", i, y[i], C - 1, C) end
  end
  local k = math.min(opts.k or 5, C)
  local _, idx = core.search_topk(image_emb, cls, k, 4096, 256)
  local ids = core.totable(idx)
  local pred, hit1, hitk = {}, 0, 0
  for i = 1, N do
    local row = ids[i]
    pred[i] = row[1]
    if row[1] == y[i] then hit1 = hit1 + 1 end
    for j = 1, k do if row[j] == y[i] then hitk = hitk + 1; break end end
  end
  local predt = core.from_table(pred, "int64")
  local conf = core.confusion(core.from_table(y, "int64"), predt, C)
  local ct = core.totable(conf)
  local per, sum, present = {}, 0, 0
  for c = 1, C do
    local row = 0
    for j = 1, C do row = row + ct[c][j] end
    if row > 0 then
      per[c] = ct[c][c] / row
      sum, present = sum + per[c], present + 1
    else
      per[c] = 0 / 0
    end
  end
  return { top1 = hit1 / N, top5 = hitk / N, per_class_accuracy = per, mean_per_class_accuracy = sum / present,
    confusion = conf, predictions = predt, n = N }
end

-- ---------------------------------------------------------------- linear probe

-- linear_probe(train_x (N, d), train_y (N), test_x (M, d), test_y (M),
--   {epochs = 100, lr = 1e-2, weight_decay = 0, batch = 256, num_classes, seed})
-- Multinomial logistic regression (oe.nn.Linear(d, C) + oe.F.cross_entropy)
-- trained with oe.optim.AdamW on shuffled mini-batches (the order comes from
-- the project's RNG: deterministic given oe.manual_seed or opts.seed).
-- Labels are int 0-based; C = num_classes or 1 + the largest label seen.
-- Returns {train_acc, test_acc, model, num_classes, losses (mean loss per epoch)}.
function eval.linear_probe(train_x, train_y, test_x, test_y, opts)
  opts = opts or {}
  local fn = "linear_probe"
  local nn = require "oneencoder.nn"
  local F = require "oneencoder.functional"
  local optim = require "oneencoder.optim"
  local N, d = check_emb(fn, "train_x", train_x)
  local M = check_emb(fn, "test_x", test_x)
  check_same_dim(fn, "train_x", train_x, "test_x", test_x)
  if train_y == nil then fail(fn, "argument 'train_y' is missing") end
  if test_y == nil then fail(fn, "argument 'test_y' is missing") end
  local ytr = int_list(fn, "train_y", train_y, N)
  local yte = int_list(fn, "test_y", test_y, M)
  local C = opts.num_classes
  if C == nil then
    C = 0
    for _, v in ipairs(ytr) do if v + 1 > C then C = v + 1 end end
    for _, v in ipairs(yte) do if v + 1 > C then C = v + 1 end end
    if C < 2 then C = 2 end
  elseif math.type(C) ~= "integer" or C < 2 then
    fail(fn, "option 'num_classes' must be an integer >= 2, got %s", tostring(C))
  end
  for name, list in pairs({ train_y = ytr, test_y = yte }) do
    for i, v in ipairs(list) do
      if v < 0 or v >= C then fail(fn, "argument '%s' entry %d = %d is outside 0..%d", name, i, v, C - 1) end
    end
  end
  local epochs, lr, wd, batch = opts.epochs or 100, opts.lr or 1e-2, opts.weight_decay or 0, opts.batch or 256
  if math.type(epochs) ~= "integer" or epochs < 1 then fail(fn, "option 'epochs' must be a positive integer") end
  if math.type(batch) ~= "integer" or batch < 1 then fail(fn, "option 'batch' must be a positive integer") end
  if type(lr) ~= "number" or not (lr > 0) then fail(fn, "option 'lr' must be a positive number") end
  if type(wd) ~= "number" or not (wd >= 0) then fail(fn, "option 'weight_decay' must be >= 0") end
  if opts.seed ~= nil then core.manual_seed(opts.seed) end

  local ytr_t, yte_t = core.from_table(ytr, "int64"), core.from_table(yte, "int64")
  local model = nn.Linear(d, C)
  local opt = optim.AdamW(model:parameters(true), { lr = lr, weight_decay = wd })
  local losses = {}
  for ep = 1, epochs do
    -- a permutation from the seeded RNG: ascending order of N uniform draws
    local _, perm = core.topk(core.rand({ N }), N, false)
    local total, steps = 0, 0
    for s = 1, N, batch do
      local n = math.min(batch, N - s + 1)
      local ids = core.narrow(perm, 1, s, n)
      local xb = core.index_select(train_x, ids)
      local yb = core.index_select(ytr_t, ids)
      opt:zero_grad()
      local loss = F.cross_entropy(model(xb), yb)
      loss:backward()
      opt:step()
      total, steps = total + core.item(loss), steps + 1
    end
    losses[ep] = total / steps
  end

  local function accuracy(x, y)
    return A.no_grad(function()
      local pred = core.totable(T.argmax(model(x), 2))
      local yl = core.totable(y)
      local hit = 0
      for i = 1, #yl do if pred[i] == yl[i] then hit = hit + 1 end end
      return hit / #yl
    end)
  end
  model:eval()
  return { train_acc = accuracy(train_x, ytr_t), test_acc = accuracy(test_x, yte_t), model = model,
    num_classes = C, losses = losses }
end

-- ---------------------------------------------------------------- tables

local function cell(v, digits)
  if type(v) == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    if v ~= v then return "nan" end
    return string.format("%." .. digits .. "f", v)
  end
  return tostring(v == nil and "" or v)
end

-- format_table(rows, columns, {digits = 4}) -> Markdown table string.
--   rows as arrays, the first row being the header:
--     format_table({{"model", "R@1"}, {"ours", 0.4213}})
--   or rows as maps with the column order given:
--     format_table({{model = "ours", R1 = 0.42}}, {"model", "R1"})
-- Integers print as is, other numbers with `digits` decimals.
function eval.format_table(rows, columns, opts)
  local fn = "format_table"
  if type(rows) ~= "table" or #rows == 0 then fail(fn, "argument 'rows' must be a non-empty list of rows") end
  opts = opts or {}
  local digits = opts.digits or 4
  local header, body = {}, {}
  if columns then
    for i, c in ipairs(columns) do header[i] = tostring(c) end
    for r, row in ipairs(rows) do
      if type(row) ~= "table" then fail(fn, "row %d is not a table", r) end
      local line = {}
      for i, c in ipairs(columns) do line[i] = cell(row[c], digits) end
      body[r] = line
    end
  else
    for i, c in ipairs(rows[1]) do header[i] = cell(c, digits) end
    for r = 2, #rows do
      local row = rows[r]
      if type(row) ~= "table" then fail(fn, "row %d is not a table", r) end
      local line = {}
      for i = 1, #header do line[i] = cell(row[i], digits) end
      body[#body + 1] = line
    end
  end
  if #header == 0 then fail(fn, "the table has no columns") end
  local width = {}
  for i, h in ipairs(header) do width[i] = math.max(3, utf8.len(h) or #h) end
  for _, line in ipairs(body) do
    for i, v in ipairs(line) do width[i] = math.max(width[i], utf8.len(v) or #v) end
  end
  local function fmt(line)
    local parts = {}
    for i = 1, #header do
      local v = line[i] or ""
      parts[i] = v .. string.rep(" ", width[i] - (utf8.len(v) or #v))
    end
    return "| " .. table.concat(parts, " | ") .. " |"
  end
  local out = { fmt(header) }
  local sep = {}
  for i = 1, #header do sep[i] = string.rep("-", width[i]) end
  out[2] = "| " .. table.concat(sep, " | ") .. " |"
  for _, line in ipairs(body) do out[#out + 1] = fmt(line) end
  return table.concat(out, "\n")
end

return eval
