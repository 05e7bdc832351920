-- autograd.lua: reverse-mode automatic differentiation over C kernels.
-- Every differentiable op computes its output with a C kernel and, when grad
-- mode is on and an input requires grad, records a node
--   { inputs = {...}, n = #inputs, needs = {bool...}, backward = function(g, needs, g_owned) -> g1, g2, ... }
-- g_owned is true when g is a buffer only this walk holds: a backward may then
-- compute its result in place into g and return g itself.
-- in the output's attribute table. backward() walks the graph in reverse
-- topological order, sums gradients of tensors used several times, and
-- accumulates into .grad of leaf tensors that require grad. Frozen tensors
-- (requires_grad false) get nothing but still pass gradients to their inputs.
local core = require "oneencoder.core"

local A = {}
local grad_enabled = true
local rawattrs, attrs = core.rawattrs, core.attrs

function A.is_grad_enabled() return grad_enabled end

function A.set_grad_enabled(on)
  local old = grad_enabled
  grad_enabled = on and true or false
  return old
end

-- no_grad(fn, ...): runs fn with recording off, restores the mode even on error
function A.no_grad(fn, ...)
  local old = grad_enabled
  grad_enabled = false
  local res = table.pack(pcall(fn, ...))
  grad_enabled = old
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

function A.requires_grad(t)
  local a = rawattrs(t)
  return a ~= nil and a.requires_grad == true
end
local requires_grad = A.requires_grad

-- record(out, backward, in1, in2, ...): attach a node when needed; returns out
function A.record(out, backward, ...)
  if not grad_enabled then return out end
  local n = select("#", ...)
  local needs, any = {}, false
  for i = 1, n do
    local t = select(i, ...)
    local r = t ~= nil and type(t) == "userdata" and requires_grad(t)
    needs[i] = r
    any = any or r
  end
  if not any then return out end
  local a = attrs(out)
  a.requires_grad = true
  a.node = { inputs = { ... }, n = n, needs = needs, backward = backward }
  return out
end

local function topo_order(root)
  -- iterative post-order DFS over tensors that carry a node. A tensor is
  -- appended only after everything it depends on, so walking the list
  -- backwards visits every consumer of a tensor before the tensor itself
  -- (its gradient is complete when its own backward runs). A tensor may be
  -- pushed by several consumers; only the first copy popped expands it.
  local order, visited = {}, {}
  local stack, expanded = { root }, { false }
  while #stack > 0 do
    local n = #stack
    local t = stack[n]
    if expanded[n] then
      stack[n], expanded[n] = nil, nil
      order[#order + 1] = t
    elseif visited[t] then
      stack[n], expanded[n] = nil, nil
    else
      visited[t] = true
      expanded[n] = true
      local node = rawattrs(t).node
      for i = 1, node.n do
        local inp = node.inputs[i]
        if node.needs[i] and not visited[inp] then
          local ia = rawattrs(inp)
          if ia and ia.node then
            stack[#stack + 1] = inp
            expanded[#expanded + 1] = false
          end
        end
      end
    end
  end
  return order
end

-- backward(root, grad, retain_graph)
function A.backward(root, grad, retain_graph)
  local ra = rawattrs(root)
  if not (ra and ra.requires_grad) then
    error("backward: tensor does not require grad and has no grad_fn", 2)
  end
  if grad == nil then
    if core.numel(root) ~= 1 then
      error("backward: grad can be implicitly created only for scalar outputs, got shape "
        .. core.tostring(root):match("shape=(%b())"), 2)
    end
    grad = core.fill_(core.zeros(core.shape(root)), 1)
  end
  if not ra.node then -- a leaf: its gradient is grad itself
    ra.grad = ra.grad and core.axpy_(ra.grad, grad) or core.clone(grad)
    return
  end
  local order = topo_order(root)
  local grads, owned = { [root] = grad }, {}
  local old = grad_enabled
  grad_enabled = false
  local ok, err = pcall(function()
    for i = #order, 1, -1 do
      local t = order[i]
      local a = rawattrs(t)
      local node = a.node
      local g = grads[t]
      grads[t] = nil
      local gins
      if g then
        if not node.backward then
          error("backward: the graph was already freed; pass retain_graph = true to backward twice", 0)
        end
        gins = table.pack(node.backward(g, node.needs, owned[t] and g ~= grad))
        for j = 1, node.n do
          local gi = gins[j]
          if gi and node.needs[j] then
            -- a gradient that shares storage with the incoming one (pass-through
            -- ops such as add or reshape) is borrowed; fresh kernel outputs are owned
            local own = owned[t] or not core.same_storage(gi, g)
            for k = 1, node.n do
              if k ~= j and gins[k] and core.same_storage(gins[k], gi) then own = false end
            end
            local inp = node.inputs[j]
            local ia = rawattrs(inp)
            if ia.node then
              local cur = grads[inp]
              if cur == nil then
                grads[inp] = gi
                owned[inp] = own
              elseif owned[inp] then
                core.axpy_(cur, gi)
              elseif own then -- accumulate into the fresh one, keep the borrowed one intact
                grads[inp] = core.axpy_(gi, cur)
                owned[inp] = true
              else
                grads[inp] = core.axpy_(core.clone(cur), gi)
                owned[inp] = true
              end
            elseif ia.requires_grad then
              if ia.grad then core.axpy_(ia.grad, gi)
              elseif own then ia.grad = gi
              else ia.grad = core.clone(gi) end
            end
          end
        end
      end
      if not retain_graph then node.backward = nil; node.inputs = {}; node.n = 0 end
      -- a consumed gradient that only this walk could see is freed at once
      -- (views of it made by the backward keep their own hold on the storage)
      if g and owned[t] and g ~= grad then
        local passed_on = false
        for j = 1, (gins and gins.n or 0) do if rawequal(gins[j], g) then passed_on = true end end
        if not passed_on then core.release(g) end
      end
      owned[t] = nil
      order[i] = nil -- the walk no longer holds this activation
    end
  end)
  order, grads = nil, nil
  -- the graph's saved activations are garbage now: give their memory back
  if not retain_graph then core.collect() end
  grad_enabled = old
  if not ok then error(err, 0) end
end

return A
