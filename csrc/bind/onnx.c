/* bind/onnx.c: ONNX models (csrc/onnx) for Lua.
 *   core.onnx_load(path) -> model | nil, msg        parse, check and convert (onnx.h)
 *   core.onnx_info(model) -> {path, ir_version, opset, producer, producer_version, nodes,
 *       initializers, weights, ops = {op of each node in execution order},
 *       inputs = {{name, dtype, shape}...}, outputs = {...}}
 *       (dtype nil when undeclared or unsupported, with onnx_type the declared ONNX code;
 *        shape nil when undeclared, entries are sizes or names of symbolic dims, false
 *        where unknown)
 *   core.onnx_run(model, {tensor per graph input, in order}) -> {tensor per graph output}
 *       raises "onnx_run: <path>: <problem>" (shapes that do not fit, a node failing)
 *   core.onnx_plan_info(model) -> {arena_bytes, steps, fused, folded} of the current plan
 *   core.onnx_profile(model, on) / core.onnx_profile(model) -> {{op, name, seconds}...} per node
 *   core.onnx_supported_ops() -> sorted list of op names
 *   core.onnx_close(model): frees the model now (also __gc, __close)
 * Problems with the file give nil, msg; wrong arguments raise naming the function. */
#include "bind.h"
#include "../onnx/onnx.h"
#include <string.h>

#define ONNX_MT "oe.OnnxModel"

typedef struct { oe_onnx_model *m; } onnx_box;

static int onnx_gc(lua_State *L) {
  onnx_box *b = luaL_checkudata(L, 1, ONNX_MT);
  oe_onnx_free(b->m);
  b->m = NULL;
  return 0;
}

static oe_onnx_model *check_model(lua_State *L, int idx, const char *fn) {
  onnx_box *b = luaL_testudata(L, idx, ONNX_MT);
  if (!b || !b->m) oe_lua_fail(L, fn, "argument 'model' must be an open ONNX model (core.onnx_load), got %s", luaL_typename(L, idx));
  return b->m;
}

static int l_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  onnx_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->m = NULL;
  luaL_setmetatable(L, ONNX_MT);
  oe_err e;
  if (oe_onnx_load(path, &b->m, &e) != OE_OK) {
    lua_pushnil(L);
    lua_pushstring(L, e.msg);
    return 2;
  }
  return 1;
}

static void push_io(lua_State *L, const oe_onnx_io *io) {
  lua_createtable(L, 0, 4);
  lua_pushstring(L, io->name);
  lua_setfield(L, -2, "name");
  if (io->dtype >= 0) {
    lua_pushstring(L, oe_dtype_name((oe_dtype)io->dtype));
    lua_setfield(L, -2, "dtype");
  }
  lua_pushinteger(L, io->onnx_type);
  lua_setfield(L, -2, "onnx_type");
  if (io->ndim >= 0) {
    lua_createtable(L, io->ndim, 0);
    for (int k = 0; k < io->ndim; k++) {
      if (io->dims[k] >= 0) lua_pushinteger(L, io->dims[k]);
      else if (io->dim_names[k]) lua_pushstring(L, io->dim_names[k]);
      else lua_pushboolean(L, 0);
      lua_rawseti(L, -2, k + 1);
    }
    lua_setfield(L, -2, "shape");
  }
}

static int l_info(lua_State *L) {
  oe_onnx_model *m = check_model(L, 1, "onnx_info");
  oe_onnx_info in;
  oe_onnx_get_info(m, &in);
  lua_createtable(L, 0, 12);
  lua_pushstring(L, oe_onnx_path(m)); lua_setfield(L, -2, "path");
  lua_pushinteger(L, in.ir_version); lua_setfield(L, -2, "ir_version");
  lua_pushinteger(L, in.opset); lua_setfield(L, -2, "opset");
  lua_pushstring(L, in.producer); lua_setfield(L, -2, "producer");
  lua_pushstring(L, in.producer_version); lua_setfield(L, -2, "producer_version");
  lua_pushinteger(L, in.n_nodes); lua_setfield(L, -2, "nodes");
  lua_pushinteger(L, in.n_initializers); lua_setfield(L, -2, "initializers");
  lua_pushinteger(L, in.n_weights); lua_setfield(L, -2, "weights");
  lua_createtable(L, in.n_nodes, 0);
  for (int i = 0; i < in.n_nodes; i++) {
    lua_pushstring(L, oe_onnx_node_op(m, i));
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "ops");
  oe_onnx_io io;
  lua_createtable(L, oe_onnx_n_inputs(m), 0);
  for (int i = 0; i < oe_onnx_n_inputs(m); i++) {
    oe_onnx_input(m, i, &io);
    push_io(L, &io);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "inputs");
  lua_createtable(L, oe_onnx_n_outputs(m), 0);
  for (int i = 0; i < oe_onnx_n_outputs(m); i++) {
    oe_onnx_output(m, i, &io);
    push_io(L, &io);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "outputs");
  return 1;
}

static int l_run(lua_State *L) {
  const char *fn = "onnx_run";
  oe_onnx_model *m = check_model(L, 1, fn);
  luaL_checktype(L, 2, LUA_TTABLE);
  int ni = oe_onnx_n_inputs(m), no = oe_onnx_n_outputs(m);
  if ((int)lua_rawlen(L, 2) != ni) oe_lua_fail(L, fn, "the model has %d inputs, %d tensors given", ni, (int)lua_rawlen(L, 2));
  /* the input views live in a userdata: nothing to free if an error unwinds */
  oe_tensor *in = lua_newuserdatauv(L, sizeof(oe_tensor) * (size_t)(ni > 0 ? ni : 1), 0);
  int base = lua_gettop(L);
  for (int i = 0; i < ni; i++) {
    lua_rawgeti(L, 2, i + 1);
    char arg[32];
    snprintf(arg, sizeof arg, "inputs[%d]", i + 1);
    in[i] = *oe_lua_check(L, -1, fn, arg); /* a view; the table keeps the tensor alive */
    lua_pop(L, 1);
  }
  oe_err e;
  if (oe_onnx_plan(m, in, &e) != OE_OK) return oe_lua_fail(L, fn, "%s", e.msg);
  lua_createtable(L, no, 0);
  oe_tensor **outs = lua_newuserdatauv(L, sizeof(oe_tensor *) * (size_t)(no > 0 ? no : 1), 0);
  oe_tensor *out = lua_newuserdatauv(L, sizeof(oe_tensor) * (size_t)(no > 0 ? no : 1), 0);
  for (int i = 0; i < no; i++) {
    oe_dtype dt;
    int nd;
    int64_t sh[OE_MAX_DIMS];
    oe_onnx_output_shape(m, i, &dt, &nd, sh);
    outs[i] = oe_lua_push_uninit(L, fn, dt, nd, sh);
    out[i] = *outs[i];
    lua_rawseti(L, base + 1, i + 1);
  }
  if (oe_onnx_execute(m, in, out, &e) != OE_OK) return oe_lua_fail(L, fn, "%s", e.msg);
  lua_settop(L, base + 1);
  return 1;
}

static int l_plan_info(lua_State *L) {
  oe_onnx_model *m = check_model(L, 1, "onnx_plan_info");
  oe_onnx_plan_info pi;
  oe_onnx_get_plan_info(m, &pi);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)pi.arena_bytes); lua_setfield(L, -2, "arena_bytes");
  lua_pushinteger(L, pi.steps); lua_setfield(L, -2, "steps");
  lua_pushinteger(L, pi.fused); lua_setfield(L, -2, "fused");
  lua_pushinteger(L, pi.folded); lua_setfield(L, -2, "folded");
  return 1;
}

/* profile(model, true|false): time every node from now on; profile(model) -> {{op, name,
 * seconds}...} in execution order (seconds summed over the runs since turned on) */
static int l_profile(lua_State *L) {
  oe_onnx_model *m = check_model(L, 1, "onnx_profile");
  if (!lua_isnone(L, 2)) {
    oe_err e;
    if (oe_onnx_set_profile(m, lua_toboolean(L, 2), &e) != OE_OK) return oe_lua_fail(L, "onnx_profile", "%s", e.msg);
    return 0;
  }
  oe_onnx_info in;
  oe_onnx_get_info(m, &in);
  lua_createtable(L, in.n_nodes, 0);
  for (int i = 0; i < in.n_nodes; i++) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, oe_onnx_node_op(m, i)); lua_setfield(L, -2, "op");
    lua_pushstring(L, oe_onnx_node_name(m, i)); lua_setfield(L, -2, "name");
    lua_pushnumber(L, oe_onnx_node_seconds(m, i)); lua_setfield(L, -2, "seconds");
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int l_supported(lua_State *L) {
  const char *const *names = oe_onnx_supported_ops();
  lua_newtable(L);
  for (int i = 0; names[i]; i++) {
    lua_pushstring(L, names[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int l_close(lua_State *L) {
  onnx_box *b = luaL_testudata(L, 1, ONNX_MT);
  if (!b) oe_lua_fail(L, "onnx_close", "argument 'model' must be an ONNX model, got %s", luaL_typename(L, 1));
  oe_onnx_free(b->m);
  b->m = NULL;
  return 0;
}

static const luaL_Reg fns[] = {
  {"onnx_load", l_load}, {"onnx_info", l_info}, {"onnx_run", l_run}, {"onnx_plan_info", l_plan_info},
  {"onnx_supported_ops", l_supported}, {"onnx_profile", l_profile}, {"onnx_close", l_close}, {NULL, NULL}};

void oe_bind_onnx(lua_State *L) {
  luaL_newmetatable(L, ONNX_MT);
  lua_pushcfunction(L, onnx_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, onnx_gc);
  lua_setfield(L, -2, "__close");
  lua_pushstring(L, ONNX_MT);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  luaL_setfuncs(L, fns, 0);
}
