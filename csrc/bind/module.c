/* module.c: luaopen_oneencoder_core, the entry point of the C extension. */
#include "bind.h"
#include "../core/blas.h"

int luaopen_oneencoder_core(lua_State *L) {
  oe_blas_init(); /* before any product: kernels matching the CPU */
  oe_threads_init();
  oe_memory_init();
  lua_newtable(L);
  oe_bind_tensor(L);
  oe_bind_ops(L);
  oe_bind_nn(L);
  oe_bind_bench(L);
  oe_bind_safetensors(L);
  oe_bind_image(L);
  oe_bind_audio(L);
  oe_bind_video(L);
  oe_bind_eval(L);
  oe_bind_cache(L);
  oe_bind_files(L);
  oe_bind_encoders(L);
  oe_bind_info(L);
  oe_bind_text(L);
  oe_bind_frozen(L);
  oe_bind_videomae(L);
  oe_bind_wav2vec2(L);
  oe_bind_generator(L);
  oe_bind_onnx(L);
  oe_bind_tfjs(L);
  oe_bind_glove(L);
  oe_bind_webp(L);
  return 1;
}
