/* placeholder until video decoding lands */
#include "bind.h"
void oe_bind_video(lua_State *L) { (void)L; }
