rockspec_format = "3.0"
package = "oneencoder"
version = "scm-1"
source = {
  url = "git+file:///work/main",
}
description = {
  summary = "OneEncoder: progressive alignment of modalities, in Lua 5.4 with a C core",
  detailed = [[
    Tensors with reverse-mode autograd, nn modules, optimisers and safetensors
    checkpoints in a C core (OpenBLAS, OpenMP); the OneEncoder model (Universal
    Projection, modality tokens, alignment layers), its trainers and evaluation;
    image, audio and video decoding (libjpeg-turbo, libpng, libsndfile, FFmpeg).
  ]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.4",
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
}
build = {
  type = "make",
  build_target = "all",
  install_target = "rock-install",
  install_variables = {
    INST_LIBDIR = "$(LIBDIR)",
    INST_LUADIR = "$(LUADIR)",
  },
}
test = {
  type = "command",
  command = "make test",
}
