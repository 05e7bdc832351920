/* placeholder until audio decoding lands */
#include "bind.h"
void oe_bind_audio(lua_State *L) { (void)L; }
