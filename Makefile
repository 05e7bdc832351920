# oneencoder: build the C core (oneencoder/core.so) and run the specs under Lua 5.4.
#   make            build build/oneencoder/core.so
#   make test       install missing Debian packages, build, run every spec, print "N passed, N failed"
#   make demo       the main job (examples/demo.lua)
#   make sanitize   the specs with the C core built with -fsanitize=address,undefined
#   make bench      benchmarks (bench/*.lua), figures printed as "name: value"
#   make install    luarocks --lua-version=5.4 make rockspec/oneencoder-scm-1.rockspec (libraries only)
#   make rock       a source rock in build/rock with luarocks pack
#   NATIVE=1        compile for this machine's CPU only (-march=native); default: portable
#   JOBS=n          compile jobs of make test / sanitize / demo (default: the number of cores)

# Libraries the core links (pkg-config names). Lua's headers come from LUA_INCDIR (LuaRocks
# passes it) or pkg-config lua5.4; a Lua C module never links liblua itself (an interpreter
# linked statically would then hold two Lua cores).
PKGS      := openblas sndfile libturbojpeg libpng libavformat libavcodec libavutil libswscale libswresample fftw3f libutf8proc libprotobuf-c libwebpdemux
CC        ?= gcc
# Portable by default: the x86-64 baseline, with the hot kernels cloned for AVX2/FMA and
# AVX-512 and chosen at run time (csrc/core/cpu.h). NATIVE=1 builds for this machine only.
OPT       ?= -O3
ifeq ($(NATIVE),1)
OPT       += -march=native -DOE_NATIVE
endif
# the build of make test / sanitize / demo compiles on every core (21 s -> 11 s on 2 cores)
JOBS      ?= $(shell nproc 2>/dev/null || echo 1)
LUA_INCDIR ?=
LUA_CFLAGS := $(if $(LUA_INCDIR),-I$(LUA_INCDIR),$(shell pkg-config --cflags lua5.4 2>/dev/null))
LIBFLAG   ?= -shared
# CFLAGS, LDFLAGS and LIBFLAG from the environment or LuaRocks come after the project's own
OE_CFLAGS := $(OPT) -std=c11 -D_GNU_SOURCE -fPIC -fopenmp -Wall -Wextra -Wno-unused-parameter \
             $(LUA_CFLAGS) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
OE_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lmvec -lm -lgomp
SRC       := $(sort $(filter-out csrc/dist/% csrc/bind/dist_mpi.c csrc/bind/omp_env.c,$(wildcard csrc/*/*.c)))
BUILD     ?= build
OBJ       := $(SRC:csrc/%.c=$(BUILD)/obj/%.o)
HDR       := $(wildcard csrc/*/*.h)
LIB       := $(BUILD)/oneencoder/core.so
ENV_LIB   := $(BUILD)/oneencoder/omp_env.so
LUA       := lua5.4
STAMP     := $(BUILD)/obj/.flags
export LUA_PATH  := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/spec/?.lua;;
export LUA_CPATH := $(CURDIR)/$(BUILD)/?.so;;

.PHONY: all deps deps-lib test sanitize bench demo install rock rock-install clean FORCE

all: $(LIB) $(ENV_LIB)

# objects are rebuilt when the compiler or its flags change (NATIVE=1, a sanitizer, CFLAGS)
$(STAMP): FORCE
	@mkdir -p $(dir $@)
	@echo '$(CC) $(OE_CFLAGS) $(CFLAGS)' | cmp -s - $@ || echo '$(CC) $(OE_CFLAGS) $(CFLAGS)' > $@

$(BUILD)/obj/%.o: csrc/%.c $(HDR) $(STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(OE_CFLAGS) $(CFLAGS) -c $< -o $@

# -z nodelete: lua_close() dlcloses core.so; without it libgomp is unmapped while
# its idle OpenMP worker threads still run in it, and the process segfaults at exit.
$(LIB): $(OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LIBFLAG) $(OE_CFLAGS) $(CFLAGS) $(LDFLAGS) -Wl,-z,nodelete -o $@ $(OBJ) $(OE_LIBS) $(LDLIBS)

# OpenMP's wait policy chosen before core.so loads libgomp (csrc/bind/omp_env.c): a module
# of its own that must not link libgomp, so no -fopenmp here
$(ENV_LIB): csrc/bind/omp_env.c $(STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(LIBFLAG) $(OPT) -std=c11 -D_GNU_SOURCE -fPIC -Wall -Wextra $(LUA_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)

# Optional: oe.dist over Open MPI, a module of its own (oneencoder/dist_mpi.so) built only when
# pkg-config finds ompi-c (libopenmpi-dev); core.so never links MPI
MPI_LIBS  := $(shell pkg-config --libs ompi-c 2>/dev/null)
DIST_SRC  := $(sort $(wildcard csrc/dist/*.c)) csrc/bind/dist_mpi.c
DIST_LIB  := $(if $(MPI_LIBS),$(BUILD)/oneencoder/dist_mpi.so)
all: $(DIST_LIB)
$(BUILD)/oneencoder/dist_mpi.so: $(DIST_SRC) $(wildcard csrc/dist/*.h) $(HDR) $(STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(LIBFLAG) $(OE_CFLAGS) $(shell pkg-config --cflags ompi-c) $(CFLAGS) $(LDFLAGS) -Wl,-z,nodelete -o $@ $(DIST_SRC) $(MPI_LIBS) $(LDLIBS)

FORCE:

deps:
	@sh scripts/install-deps.sh test
	@sh scripts/fetch-vocab.sh
	@sh scripts/fetch-openwakeword.sh
	@sh scripts/fetch-glove.sh
	@sh scripts/fetch-nsfwjs.sh

deps-lib:
	@sh scripts/install-deps.sh lib

test: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@sh scripts/run-specs.sh $(BUILD)

sanitize: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all BUILD=build/sanitize OPT="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"
	@SANITIZE=1 sh scripts/run-specs.sh build/sanitize

# figures as "name: value", the CPU and the BLAS kernels first so machines are never mixed
bench: deps-lib
	@sh scripts/install-deps.sh bench
	@sh scripts/fetch-vocab.sh
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@$(LUA) bench/machine.lua
	@for f in $(filter-out bench/common.lua bench/machine.lua,$(wildcard bench/*.lua)); do echo "# $$f"; $(LUA) $$f || exit 1; done

# make demo: the pretrained pipeline; DEMO_ARGS="--builtin" the weight-free one (also --fresh, --quick, --ablations)
demo: deps
	@sh scripts/install-deps.sh demo
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@$(LUA) examples/demo.lua $(DEMO_ARGS)

# the library only: needs the libraries, not the tools of the tests or the demo
install: deps-lib
	luarocks --lua-version=5.4 make rockspec/oneencoder-scm-1.rockspec

# a source rock (build/rock/oneencoder-scm-1.src.rock) from the committed tree
rock: deps-lib
	@sh scripts/make-rock.sh

# used by the rockspec: LuaRocks passes its own module folders
rock-install: $(LIB) $(ENV_LIB) $(DIST_LIB)
	mkdir -p $(INST_LIBDIR)/oneencoder $(INST_LUADIR)
	cp $(LIB) $(INST_LIBDIR)/oneencoder/core.so
	cp $(ENV_LIB) $(INST_LIBDIR)/oneencoder/omp_env.so
	if [ -n "$(DIST_LIB)" ]; then cp $(DIST_LIB) $(INST_LIBDIR)/oneencoder/dist_mpi.so; fi
	cp -r lua/oneencoder $(INST_LUADIR)/

clean:
	rm -rf build

# make fuzz FUZZ_SECONDS=N: the libFuzzer harnesses in fuzz/ (scripts/fuzz.sh), N seconds per target (default 60)
.PHONY: fuzz
fuzz:
	@sh scripts/install-deps.sh fuzz
	@FUZZ_SECONDS="$(FUZZ_SECONDS)" FUZZ_TARGETS="$(FUZZ_TARGETS)" sh scripts/fuzz.sh
