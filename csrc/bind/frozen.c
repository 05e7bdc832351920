/* bind/frozen.c: the frozen pretrained-encoder runtime (ViT, BERT, ...) for Lua. */
#include "bind.h"

void oe_bind_frozen(lua_State *L) { (void)L; }
