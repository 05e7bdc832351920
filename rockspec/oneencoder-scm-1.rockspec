rockspec_format = "3.0"
package = "oneencoder"
version = "scm-1"
-- Install from a checkout with `luarocks --lua-version=5.4 make rockspec/oneencoder-scm-1.rockspec`
-- (the source entry is not used then). `make rock` packs the committed tree as
-- build/rock/oneencoder-scm-1.tar.gz next to a copy of this file and turns both into a
-- source rock (oneencoder-scm-1.src.rock) with `luarocks pack`.
source = {
  url = "oneencoder-scm-1.tar.gz",
  dir = "oneencoder",
}
description = {
  summary = "OneEncoder: progressive alignment of modalities, in Lua 5.4 with a C core",
  detailed = [[
    Tensors with reverse-mode autograd, nn modules, optimisers and safetensors
    checkpoints in a C core (OpenBLAS, OpenMP); the OneEncoder model (Universal
    Projection, modality tokens, alignment layers), its trainers and evaluation;
    image, audio and video decoding (libjpeg-turbo, libpng, libsndfile, FFmpeg,
    libwebp); frozen pretrained encoders (ViT, BERT, Wav2Vec2, VideoMAE, ONNX and
    TF.js models, GloVe) run in C.
  ]],
  license = "MIT",
}
dependencies = {
  "lua ~> 5.4",
}
-- declared by library name: Debian keeps cblas.h and the FFmpeg headers in the
-- multiarch include folder, where LuaRocks 3.8 does not look for headers
external_dependencies = {
  OPENBLAS = { library = "openblas" },
  SNDFILE = { library = "sndfile" },
  TURBOJPEG = { library = "turbojpeg" },
  PNG = { library = "png" },
  AVFORMAT = { library = "avformat" },
  AVCODEC = { library = "avcodec" },
  AVUTIL = { library = "avutil" },
  SWSCALE = { library = "swscale" },
  SWRESAMPLE = { library = "swresample" },
  FFTW = { library = "fftw3f" },
  UTF8PROC = { library = "utf8proc" },
  PROTOBUFC = { library = "protobuf-c" },
  WEBPDEMUX = { library = "webpdemux" },
  XXHASH = { header = "xxhash.h" },   -- compiled in (XXH_INLINE_ALL), nothing linked
}
-- LuaRocks' compiler flags reach the Makefile (after the project's own -O3, hence the
-- explicit -O3 here: LuaRocks' default CFLAGS say -O2); the same values at install time,
-- so the install step does not rebuild with other flags
build = {
  type = "make",
  build_target = "all",
  build_variables = {
    CFLAGS = "$(CFLAGS) -O3",
    LIBFLAG = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
  },
  install_target = "rock-install",
  install_variables = {
    CFLAGS = "$(CFLAGS) -O3",
    LIBFLAG = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    INST_LIBDIR = "$(LIBDIR)",
    INST_LUADIR = "$(LUADIR)",
  },
}
test = {
  type = "command",
  command = "make test",
}
