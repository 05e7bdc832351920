/* bind/text.c: tokenizers (WordPiece) for Lua. */
#include "bind.h"

void oe_bind_text(lua_State *L) { (void)L; }
