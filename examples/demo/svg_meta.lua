-- demo/svg_meta.lua: the Dublin Core metadata of an SVG drawing (Open Clip Art Library files),
-- read with an XML parser (LuaExpat, Debian's lua-expat), not with patterns.
--
--   local meta = require "demo.svg_meta"
--   local m, err = meta.parse(svg_text, "name.svg")
--   -- m.title, m.description (strings, "" when absent), m.keywords (list), m.creator
--
-- Read from the RDF block <metadata><rdf:RDF><cc:Work>: dc:title and dc:description (direct
-- children of the Work, not the dc:title of a publisher or creator Agent), the rdf:li items of
-- dc:subject/rdf:Bag, and the creator Agent's dc:title. Namespaces are resolved by URI, so a
-- file using other prefixes reads the same. Parsing stops after the metadata (drawings are up
-- to a few MB; their paths are not needed). A file that is not well-formed XML gives nil and
-- the parser's message with the line.
local lxp = require "lxp"

local M = {}

local DC = "http://purl.org/dc/elements/1.1/"
local RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
local SEP = "\1"

-- a sentinel error that ends parsing once the metadata is read
local DONE = setmetatable({}, { __tostring = function() return "done" end })

function M.parse(text, name)
  name = name or "<svg>"
  local stack = {}          -- {ns, local} of open elements
  local buf                 -- text of the innermost element being collected
  local out = { title = "", description = "", keywords = {}, creator = "" }
  local in_meta, seen_meta = 0, false
  local function split(n)
    local ns, l = n:match("^(.-)" .. SEP .. "(.+)$")
    if ns then return ns, l end
    return "", n
  end
  local function at(i) return stack[#stack + 1 - i] end   -- at(1): current element
  local cb = {
    StartElement = function(_, n)
      local ns, l = split(n)
      stack[#stack + 1] = { ns = ns, l = l }
      if l == "metadata" then in_meta = in_meta + 1; seen_meta = true end
      buf = {}
    end,
    EndElement = function(p, n)
      local ns, l = split(n)
      local txt = buf and table.concat(buf) or ""
      local parent, grand = at(2), at(3)
      if in_meta > 0 and ns == DC and parent and parent.l == "Work" then
        if l == "title" then out.title = txt
        elseif l == "description" then out.description = txt end
      elseif in_meta > 0 and ns == RDF and l == "li" and grand and grand.ns == DC and grand.l == "subject" then
        out.keywords[#out.keywords + 1] = txt
      elseif in_meta > 0 and ns == DC and l == "title" and parent and parent.l == "Agent" and grand
             and grand.ns == DC and grand.l == "creator" then
        out.creator = txt
      end
      stack[#stack] = nil
      buf = {}
      if l == "metadata" then
        in_meta = in_meta - 1
        if in_meta == 0 then error(DONE, 0) end
      end
    end,
    CharacterData = function(_, t) if buf then buf[#buf + 1] = t end end,
  }
  local p = lxp.new(cb, SEP)
  local ok, a, b, c = pcall(p.parse, p, text)
  if ok and a then ok, a, b, c = pcall(p.parse, p) end
  pcall(p.close, p)   -- LuaExpat raises when closing a parser stopped mid-document
  if not ok then
    if a == DONE then return out end
    return nil, string.format("%s: %s", name, tostring(a))
  end
  if not a then return nil, string.format("%s: not well-formed XML (line %s: %s)", name, tostring(c), tostring(b)) end
  out.no_metadata = not seen_meta
  return out
end

return M
