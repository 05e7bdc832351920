-- oe.nn: modules. Module base class plus the standard layers.
local nn = { Module = require "oneencoder.nn.module" }
for _, part in ipairs { "oneencoder.nn.layers", "oneencoder.nn.transformer" } do
  for k, v in pairs(require(part)) do nn[k] = v end
end
-- nn.class(name, parent): define a new module class
nn.class = nn.Module.class
return nn
