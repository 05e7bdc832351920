/* placeholder until the safetensors reader/writer lands */
#include "bind.h"
void oe_bind_safetensors(lua_State *L) { (void)L; }
