-- cache.lua: an on-disk cache of frozen-encoder features.
--
--   local cache = oe.cache.open("cache/vit", {encoder_id = "vit_b16@sha256:ab12..", dtype = "float16"})
--   local stats = cache:build(items, encode_fn, {batch = 64, progress = true})
--       items: a list of {key = "unique key", path = "input file" (optional), version = "extra identity" (optional)}
--       encode_fn(list_of_items) -> feats (B, L, D) float32, lengths (table or int tensor; nil = all L)
--       stats: {items, hits, computed, shards_written, shards_removed, seconds}
--   local set = cache:feature_set(keys)    -- keys: a list of key strings or of items
--   set:size(), set:dim(), set:batch({1, 5, 9}) -> (B, Lmax, D) float32, {lengths}
--
-- Layout of the directory:
--   manifest.safetensors   no tensors; metadata "shards" lists the complete shards, one line each
--                          (file, encoder id, dtype, items, bytes, checksum: XXH3-64 of the
--                          whole shard file in 16 hex digits). Written last, by rename.
--   shard-<seq>-<rand>.safetensors
--                          feats (T, D) F16 or F32: the items' rows back to back, each with
--                          exactly its true length (no padding); lengths (N) I32; metadata
--                          "items": one line per item, key and identity (percent-encoded).
--   .lock                  flock'ed while a build runs (one builder at a time).
-- Shards are immutable once written (temporary file, fsync, rename: serialize.save) and the
-- manifest is rewritten (the same way) after every shard, so at any moment it lists only
-- complete shards: a build killed at any point leaves a cache whose manifest is valid, and the
-- next build computes only what is not in it. A shard whose header does not validate, whose
-- size differs from the manifest's record, or whose metadata does not match is reported in
-- cache.problems and its items are computed again by the next build (which also drops it).
-- Contents: every shard is read whole and compared with its checksum when a feature set
-- opens it (with its lengths table) and, for the shards holding the requested items, by
-- build: damaged bytes are refused by reading and recomputed by the next build, never counted
-- as hits. A shard without a checksum (an older cache) is treated as damaged.
--
-- An entry is used only when the encoder id and the item's identity match: identity
-- "stat" (default) = path, size and mtime (nanoseconds) of item.path; "sha256" = the SHA-256
-- and size of the file's content (the path may change); item.version is appended when given;
-- an item without a path is identified by its key (and version) only.
--
-- Reading: feature sets read rows straight from the shard files, either through a read-only
-- mapping (read = "mmap", default) or with pread (read = "pread"), or keep whole shards in
-- memory with an LRU of at most lru_shards shards (read = "memory"). float16 rows are converted
-- to float32 by the batch call.
local core = require "oneencoder.core"
local S = require "oneencoder.serialize"

local C = {}

local MANIFEST = "manifest.safetensors"
local FORMAT = "oneencoder-cache-1"

-- ---- small helpers ----
local function enc(s)
  return (s:gsub("[%c%%\t\n\r\128-\255 ]", function(c) return string.format("%%%02X", c:byte()) end))
end
local function dec(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function join(dir, name) return dir:sub(-1) == "/" and dir .. name or dir .. "/" .. name end

local function mkdir_p(dir)
  local st = core.fs_stat(dir)
  if st and st.is_dir then return true end
  local acc = dir:sub(1, 1) == "/" and "/" or ""
  for part in dir:gmatch("[^/]+") do
    acc = acc .. part
    local ok, err = core.fs_mkdir(acc)
    if not ok then return nil, err end
    acc = acc .. "/"
  end
  return true
end

local function split_lines(s)
  local out = {}
  if s == nil or s == "" then return out end
  for line in (s .. "\n"):gmatch("(.-)\n") do
    if line ~= "" then out[#out + 1] = line end
  end
  return out
end
local function split_tabs(line)
  local out = {}
  for f in (line .. "\t"):gmatch("(.-)\t") do out[#out + 1] = f end
  return out
end

local function random_hex()
  return string.format("%08x", math.random(0, 0x7fffffff) ~ (math.floor(core.now() * 1e6) & 0x7fffffff))
end

-- ---- the cache object ----
local Cache = {}
Cache.__index = Cache

local DTYPES = { float16 = "F16", float32 = "F32" }

-- open(dir, opts): opts.encoder_id (string, required), dtype ("float32" default | "float16"),
-- shard_items (4096), shard_mb (256: a shard is closed when its float32 rows reach this size),
-- identity ("stat" | "sha256"), read ("mmap" | "pread" | "memory"), lru_shards (4, for "memory").
function C.open(dir, opts)
  if type(dir) ~= "string" or dir == "" then error("cache.open: dir must be a non-empty string", 2) end
  opts = opts or {}
  if type(opts.encoder_id) ~= "string" or opts.encoder_id == "" then
    error("cache.open: opts.encoder_id must be a non-empty string naming the encoder (and its weights)", 2)
  end
  local dtype = opts.dtype or "float32"
  if not DTYPES[dtype] then error("cache.open: dtype must be 'float16' or 'float32', got " .. tostring(dtype), 2) end
  local identity = opts.identity or "stat"
  if identity ~= "stat" and identity ~= "sha256" then error("cache.open: identity must be 'stat' or 'sha256'", 2) end
  local read = opts.read or "mmap"
  if read ~= "mmap" and read ~= "pread" and read ~= "memory" then
    error("cache.open: read must be 'mmap', 'pread' or 'memory'", 2)
  end
  local shard_items = opts.shard_items or 4096
  if math.type(shard_items) ~= "integer" or shard_items < 1 then error("cache.open: shard_items must be a positive integer", 2) end
  local ok, err = mkdir_p(dir)
  if not ok then error("cache.open: " .. err, 2) end
  local self = setmetatable({
    dir = dir, encoder_id = opts.encoder_id, dtype = dtype, identity = identity, read = read,
    shard_items = shard_items, shard_bytes = (opts.shard_mb or 256) * 1048576,
    lru_shards = opts.lru_shards or 4,
  }, Cache)
  self:refresh()
  return self
end

-- refresh(): read the manifest and the headers of this encoder's shards again.
-- Sets self.index (key -> {shard, row, identity, length}), self.shards, self.problems.
function Cache:refresh()
  self.index, self.problems, self.all_shards, self.shards = {}, {}, {}, {}
  self.D, self.seq = nil, 0
  local mpath = join(self.dir, MANIFEST)
  local st = core.fs_stat(mpath)
  if st then
    local info, meta = S.header(mpath)
    if not info then
      self.problems[#self.problems + 1] = { file = MANIFEST, msg = meta }
    elseif meta.format ~= FORMAT then
      self.problems[#self.problems + 1] = { file = MANIFEST, msg = "not a cache manifest (format " .. tostring(meta.format) .. ")" }
    else
      for _, line in ipairs(split_lines(meta.shards)) do
        local f = split_tabs(line)
        local rec = { file = f[1], encoder_id = dec(f[2] or ""), dtype = f[3] or "", n = math.tointeger(tonumber(f[4])),
          bytes = math.tointeger(tonumber(f[5])), checksum = f[6] }
        self.all_shards[#self.all_shards + 1] = rec
        local seq = math.tointeger(tonumber((rec.file or ""):match("^shard%-(%d+)%-")))
        if seq and seq > self.seq then self.seq = seq end
      end
    end
  end
  for _, rec in ipairs(self.all_shards) do
    if rec.encoder_id == self.encoder_id then self:_index_shard(rec) end
  end
  return self
end

function Cache:_problem(rec, msg)
  rec.bad = msg
  self.problems[#self.problems + 1] = { file = rec.file, msg = msg }
end

-- validate one shard's header and add its items to the index (later shards win)
function Cache:_index_shard(rec)
  local path = join(self.dir, rec.file)
  local st = core.fs_stat(path)
  if not st then return self:_problem(rec, path .. ": missing") end
  if not (rec.checksum or ""):match("^" .. ("[0-9a-f]"):rep(16) .. "$") then
    return self:_problem(rec, path .. ": the manifest has no content checksum for it (written by an older version)")
  end
  if st.size ~= rec.bytes then
    return self:_problem(rec, string.format("%s: %d bytes on disk, the manifest recorded %s", path, st.size, tostring(rec.bytes)))
  end
  local info, meta = S.header(path)
  if not info then return self:_problem(rec, meta) end
  local fi, li = info.feats, info.lengths
  if not fi or not li or #fi.shape ~= 2 or #li.shape ~= 1 or li.shape[1] ~= rec.n or meta.encoder_id ~= rec.encoder_id then
    return self:_problem(rec, path .. ": not the shard the manifest describes")
  end
  local lines = split_lines(meta.items)
  if #lines ~= rec.n then return self:_problem(rec, path .. ": metadata lists " .. #lines .. " items, expected " .. rec.n) end
  if self.D and fi.shape[2] ~= self.D then
    return self:_problem(rec, string.format("%s: feature dim %d, other shards have %d", path, fi.shape[2], self.D))
  end
  self.D = fi.shape[2]
  rec.D = fi.shape[2]
  self.shards[#self.shards + 1] = rec
  for row, line in ipairs(lines) do
    local f = split_tabs(line)
    self.index[dec(f[1])] = { shard = rec, row = row - 1, identity = dec(f[2] or "") }
  end
end

-- identity string of an item (raises for an unreadable input file)
function Cache:item_identity(item)
  local id
  if item.path == nil then
    id = "key"
  elseif self.identity == "sha256" then
    local hex, size = core.fs_sha256(item.path)
    if not hex then error("cache: item '" .. item.key .. "': " .. size, 3) end
    id = "sha256:" .. hex .. ":" .. size
  else
    local st, err = core.fs_stat(item.path)
    if not st then error("cache: item '" .. item.key .. "': " .. err, 3) end
    if not st.is_file then error("cache: item '" .. item.key .. "': " .. item.path .. " is not a regular file", 3) end
    id = string.format("stat:%d:%d.%09d:%s", st.size, st.mtime, st.mtime_ns, item.path)
  end
  if item.version ~= nil then id = id .. "|" .. tostring(item.version) end
  return id
end

local function check_items(items, fn)
  if type(items) ~= "table" then error(fn .. ": items must be a list of {key = ..., path = ...}", 3) end
  local seen = {}
  for i, it in ipairs(items) do
    if type(it) ~= "table" or type(it.key) ~= "string" or it.key == "" then
      error(string.format("%s: item %d must be a table with a non-empty string key", fn, i), 3)
    end
    if it.path ~= nil and type(it.path) ~= "string" then error(string.format("%s: item %d ('%s'): path must be a string", fn, i, it.key), 3) end
    if seen[it.key] then error(string.format("%s: key '%s' appears twice (items %d and %d)", fn, it.key, seen[it.key], i), 3) end
    seen[it.key] = i
  end
end

-- status(items) -> list of the items that are missing or stale, and the count of hits
function Cache:status(items)
  check_items(items, "cache:status")
  local todo, hits = {}, 0
  for _, it in ipairs(items) do
    local e = self.index[it.key]
    local id = self:item_identity(it)
    if e and e.identity == id then hits = hits + 1 else todo[#todo + 1] = { item = it, identity = id } end
  end
  return todo, hits
end

function Cache:_write_manifest()
  local lines = {}
  for _, rec in ipairs(self.all_shards) do
    if not rec.dropped then
      lines[#lines + 1] = table.concat({ rec.file, enc(rec.encoder_id), rec.dtype, tostring(rec.n), tostring(rec.bytes),
        rec.checksum or "" }, "\t")
    end
  end
  local ok, err = S.save(join(self.dir, MANIFEST), {}, { format = FORMAT, shards = table.concat(lines, "\n") })
  if not ok then error("cache: writing the manifest failed: " .. tostring(err), 0) end
end

-- write the pending items as one shard, then the manifest
function Cache:_flush(pending)
  if #pending == 0 then return end
  local rows, lens, lines = {}, {}, {}
  for i, p in ipairs(pending) do
    rows[i], lens[i] = p.rows, p.length
    lines[i] = enc(p.item.key) .. "\t" .. enc(p.identity)
  end
  local feats = #rows == 1 and rows[1] or core.cat(rows, 1)
  if self.dtype == "float16" then
    local mx = core.reduce("max", feats):item()
    local mn = core.reduce("min", feats):item()
    if mx > 65504 or mn < -65504 then
      error(string.format("cache: features reach %g, outside the float16 range (65504); use dtype = 'float32'",
        math.max(mx, -mn)), 0)
    end
  end
  self.seq = self.seq + 1
  local file = string.format("shard-%06d-%s.safetensors", self.seq, random_hex())
  local path = join(self.dir, file)
  local ok, err = S.save(path, { feats = feats, lengths = core.from_table(lens, "int32") },
    { format = FORMAT, encoder_id = self.encoder_id, items = table.concat(lines, "\n") },
    { dtype = self.dtype })
  if not ok then error("cache: writing a shard failed: " .. tostring(err), 0) end
  local checksum, size = core.fs_xxh3(path)
  if not checksum then error("cache: reading back a shard failed: " .. tostring(size), 0) end
  local rec = { file = file, encoder_id = self.encoder_id, dtype = DTYPES[self.dtype], n = #pending, bytes = size,
    checksum = checksum, D = core.shape(feats)[2] }
  self.all_shards[#self.all_shards + 1] = rec
  self.shards[#self.shards + 1] = rec
  self:_write_manifest()
  for i, p in ipairs(pending) do
    self.index[p.item.key] = { shard = rec, row = i - 1, identity = p.identity }
  end
  self.D = self.D or rec.D
  self.stats.shards_written = self.stats.shards_written + 1
  -- internal copies: free them now rather than when the GC gets to them
  if feats ~= rows[1] then core.release(feats) end
  for _, r in ipairs(rows) do core.release(r) end
end

-- remove shards without a live row (superseded or bad) and files no manifest names
function Cache:_compact()
  local live = {}
  for _, e in pairs(self.index) do live[e.shard] = true end
  local removed = {}
  for _, rec in ipairs(self.all_shards) do
    if rec.encoder_id == self.encoder_id and not live[rec] then
      rec.dropped = true
      removed[#removed + 1] = rec.file
    end
  end
  if #removed > 0 then self:_write_manifest() end
  local kept = {}
  for _, rec in ipairs(self.all_shards) do
    if not rec.dropped then kept[#kept + 1] = rec end
  end
  self.all_shards = kept
  local named = { [MANIFEST] = true }
  for _, rec in ipairs(kept) do named[rec.file] = true end
  local names = core.fs_listdir(self.dir) or {}
  local n = 0
  for _, name in ipairs(names) do
    -- orphan shards (killed between a shard's rename and the manifest) and temporary files of killed writes
    if not named[name] and (name:match("^shard%-%d+%-%x+%.safetensors$") or name:match("^shard%-.*%.tmp%.")
        or name:match("^manifest%.safetensors%.tmp%.")) then
      os.remove(join(self.dir, name))
      n = n + 1
    end
  end
  self.shards = {}
  for _, rec in ipairs(kept) do
    if rec.encoder_id == self.encoder_id then self.shards[#self.shards + 1] = rec end
  end
  self.maps = nil
  return #removed, n
end

local function check_output(feats, lengths, chunk)
  local B = #chunk
  if not core.is_tensor(feats) or core.dim(feats) ~= 3 then
    error("cache:build: encode_fn must return features (B, L, D), got " .. (core.is_tensor(feats) and core.dim(feats) .. " dimensions" or type(feats)), 0)
  end
  if core.dtype(feats) ~= "float32" then error("cache:build: encode_fn must return float32 features, got " .. core.dtype(feats), 0) end
  local s = core.shape(feats)
  if s[1] ~= B then error(string.format("cache:build: encode_fn returned %d rows for %d items", s[1], B), 0) end
  local lt = {}
  if lengths == nil then
    for b = 1, B do lt[b] = s[2] end
  else
    if core.is_tensor(lengths) then lengths = core.totable(lengths) end
    if type(lengths) ~= "table" or #lengths ~= B then error(string.format("cache:build: encode_fn must return %d lengths", B), 0) end
    for b = 1, B do
      local n = math.tointeger(lengths[b])
      if not n or n < 1 or n > s[2] then
        error(string.format("cache:build: length %s of item '%s' is outside 1..%d", tostring(lengths[b]), chunk[b].item.key, s[2]), 0)
      end
      lt[b] = n
    end
  end
  if not core.all_finite(feats) then
    error("cache:build: encode_fn returned NaN or Inf for one of the items " .. chunk[1].item.key .. " .. " .. chunk[B].item.key, 0)
  end
  return s, lt
end

-- build(items, encode_fn, {batch = 64, progress = false}): encode every item that is missing
-- or stale (once each) and store it. Returns stats. On an error from encode_fn the items
-- encoded so far are written as a complete shard, then the error is raised again.
function Cache:build(items, encode_fn, opts)
  check_items(items, "cache:build")
  if type(encode_fn) ~= "function" then error("cache:build: encode_fn must be a function", 2) end
  opts = opts or {}
  local batch = opts.batch or 64
  if math.type(batch) ~= "integer" or batch < 1 then error("cache:build: batch must be a positive integer", 2) end
  local lk, lerr = core.fs_lock(join(self.dir, ".lock"))
  if not lk then error("cache:build: " .. lerr, 2) end
  local lock <close> = lk -- released on return and on any error
  local t0 = core.now()
  self:refresh()
  self.stats = { items = #items, hits = 0, computed = 0, shards_written = 0, shards_removed = 0, files_removed = 0 }
  self:_verify_shards_of(items)
  local todo, hits = self:status(items)
  self.stats.hits = hits
  local progress = opts.progress
  local tty = progress and core.isatty and core.isatty(2)
  local function report(done, final)
    if not progress then return end
    local dt = core.now() - t0
    local line = string.format("cache %s: %d/%d computed (%d cached), %.1f items/s", self.encoder_id, done, #todo, hits,
      done / math.max(dt, 1e-9))
    if tty then io.stderr:write("\r", line, final and "\n" or "") else if final or done % (batch * 16) == 0 then io.stderr:write(line, "\n") end end
  end
  local pending, pending_bytes = {}, 0
  local ok, err = pcall(function()
    for i = 1, #todo, batch do
      local chunk, list = {}, {}
      for j = i, math.min(i + batch - 1, #todo) do
        chunk[#chunk + 1] = todo[j]
        list[#list + 1] = todo[j].item
      end
      local feats, lengths = encode_fn(list)
      local s, lt = check_output(feats, lengths, chunk)
      if self.D and s[3] ~= self.D then
        error(string.format("cache:build: encode_fn returned dim %d, this encoder's cache holds dim %d", s[3], self.D), 0)
      end
      self.D = self.D or s[3]
      for b, t in ipairs(chunk) do
        local row = core.reshape(core.narrow(feats, 1, b, 1), { s[2], s[3] })
        if lt[b] < s[2] then row = core.narrow(row, 1, 1, lt[b]) end
        pending[#pending + 1] = { item = t.item, identity = t.identity, rows = row, length = lt[b] }
        pending_bytes = pending_bytes + lt[b] * s[3] * 4
        self.stats.computed = self.stats.computed + 1
        if #pending >= self.shard_items or pending_bytes >= self.shard_bytes then
          self:_flush(pending)
          pending, pending_bytes = {}, 0
        end
      end
      report(self.stats.computed)
    end
  end)
  if not ok then
    pcall(self._flush, self, pending) -- keep what was computed; the manifest lists only complete shards
    error(err, 0)
  end
  self:_flush(pending)
  self.stats.shards_removed, self.stats.files_removed = self:_compact()
  lock:release()
  self.stats.seconds = core.now() - t0
  report(self.stats.computed, true)
  return self.stats
end

-- _verify_shards_of(items): open every shard that holds one of the items as reading does
-- (header, lengths table, content checksum); a shard that fails loses all its index entries,
-- so its items count as missing (and the shard, without a live row, is dropped by _compact)
function Cache:_verify_shards_of(items)
  local checked = {}
  for _, it in ipairs(items) do
    local e = self.index[it.key]
    local rec = e and e.shard
    if rec and not checked[rec] then
      checked[rec] = true
      local m, err = core.featmap_open(join(self.dir, rec.file), { mmap = false, checksum = rec.checksum })
      if m then
        m:close()
      else
        self:_problem(rec, err)
        for k, entry in pairs(self.index) do
          if entry.shard == rec then self.index[k] = nil end
        end
      end
    end
  end
end

-- size on disk of this encoder's shards, in bytes
function Cache:bytes()
  local n = 0
  for _, rec in ipairs(self.shards) do n = n + rec.bytes end
  return n
end

function Cache:keys()
  local out = {}
  for k in pairs(self.index) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- ---- feature sets ----
local CachedSet = {}
CachedSet.__index = CachedSet

function Cache:_map(rec)
  self.maps = self.maps or {}
  local m = self.maps[rec.file]
  if m then return m end
  local err
  m, err = core.featmap_open(join(self.dir, rec.file), { mmap = self.read == "mmap", checksum = rec.checksum })
  if not m then error("cache: " .. err .. " (run cache:build to recompute its items)", 0) end
  self.maps[rec.file] = m
  return m
end

-- feature_set(keys, opts): keys is a list of key strings, or of items ({key, path, version});
-- items are checked against their cached identity (a stale or missing one is an error).
-- The set has size(), dim(), batch(ids) -> (B, Lmax, D) float32, {lengths}, and keys.
function Cache:feature_set(keys)
  if type(keys) ~= "table" or #keys == 0 then error("cache:feature_set: keys must be a non-empty list", 2) end
  local entries, lens, klist = {}, {}, {}
  for i, k in ipairs(keys) do
    local key = type(k) == "table" and k.key or k
    if type(key) ~= "string" then error(string.format("cache:feature_set: entry %d is not a key or an item", i), 2) end
    local e = self.index[key]
    if not e then
      error(string.format("cache:feature_set: '%s' is not in the cache for encoder '%s' (run cache:build first)", key, self.encoder_id), 2)
    end
    if type(k) == "table" and self:item_identity(k) ~= e.identity then
      error(string.format("cache:feature_set: '%s' is stale (its input or version changed; run cache:build)", key), 2)
    end
    entries[i] = e
    klist[i] = key
  end
  local set = setmetatable({ cache = self, entries = entries, keys = klist, n = #entries, D = self.D,
    lengths = lens, mode = self.read }, CachedSet)
  -- every shard is opened (and its content checked) here, in every read mode
  for i, e in ipairs(entries) do
    local m = self:_map(e.shard)
    if self.read ~= "memory" then
      set.maps = set.maps or {}
      set.maps[i] = m
    end
    e.shard.lengths_t = e.shard.lengths_t or m:lengths()
    lens[i] = e.shard.lengths_t[e.row + 1]
  end
  if self.read == "memory" then
    set.lru = {}      -- file -> {feats (T, D), offsets}
    set.lru_order = {}
  end
  return set
end

function CachedSet:size() return self.n end
function CachedSet:dim() return self.D end

function CachedSet:_shard_in_memory(rec)
  local hit = self.lru[rec.file]
  local order = self.lru_order
  if hit then
    for i, f in ipairs(order) do if f == rec.file then table.remove(order, i) break end end
    table.insert(order, rec.file)
    return hit
  end
  local t, msg = S.load(join(self.cache.dir, rec.file))
  if not t then error("cache: " .. msg .. " (run cache:build to recompute its items)", 0) end
  local offs, pos = {}, 0
  for i, n in ipairs(core.totable(t.lengths)) do offs[i] = pos; pos = pos + n end
  hit = { feats = t.feats, offsets = offs }
  self.lru[rec.file] = hit
  table.insert(order, rec.file)
  return hit
end

-- drop the least recently used shards beyond lru_shards (after a batch was gathered)
function CachedSet:_evict()
  local order = self.lru_order
  while #order > self.cache.lru_shards do
    local f = table.remove(order, 1)
    core.release(self.lru[f].feats)
    self.lru[f] = nil
  end
end

-- batch(ids): 1-based ids into this set -> features (B, Lmax, D) float32 (zero past each
-- item's length), lengths
function CachedSet:batch(ids)
  local srcs, rows, lens = {}, {}, {}
  for i, id in ipairs(ids) do
    if math.type(id) ~= "integer" or id < 1 or id > self.n then
      error(string.format("cache feature set: item %s outside 1..%d", tostring(id), self.n), 2)
    end
    local e = self.entries[id]
    lens[i] = self.lengths[id]
    if self.mode == "memory" then
      local sh = self:_shard_in_memory(e.shard)
      srcs[i], rows[i] = sh.feats, sh.offsets[e.row + 1]
    else
      srcs[i], rows[i] = self.maps[id], e.row
    end
  end
  if #ids == 0 then error("cache feature set: empty batch", 2) end
  local x, err = core.featmap_gather(srcs, rows, lens)
  if self.mode == "memory" then self:_evict() end
  if not x then error("cache feature set: " .. err, 2) end
  return x, lens
end

return C
