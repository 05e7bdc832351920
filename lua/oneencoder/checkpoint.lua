-- checkpoint.lua: model checkpoints (being written)
local M = {}
return M
