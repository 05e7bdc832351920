/* placeholder until image decoding lands */
#include "bind.h"
void oe_bind_image(lua_State *L) { (void)L; }
