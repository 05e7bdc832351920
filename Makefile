# oneencoder: build the C core (oneencoder/core.so) and run the specs under Lua 5.4.
#   make            build build/oneencoder/core.so
#   make test       install missing Debian packages, build, run every spec, print "N passed, N failed"
#   make demo       the main job (examples/demo.lua)
#   make sanitize   the specs with the C core built with -fsanitize=address,undefined
#   make bench      benchmarks (bench/*.lua), figures printed as "name: value"
#   make install    luarocks --lua-version=5.4 make rockspec/oneencoder-scm-1.rockspec

PKGS      := lua5.4 openblas sndfile libturbojpeg libpng libavformat libavcodec libavutil libswscale libswresample fftw3f libutf8proc
CC        ?= gcc
OPT       ?= -O3 -march=native
CFLAGS    += $(OPT) -std=c11 -D_GNU_SOURCE -fPIC -fopenmp -Wall -Wextra -Wno-unused-parameter \
             $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS    += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lmvec -lm -lgomp
SRC       := $(sort $(wildcard csrc/*/*.c))
BUILD     ?= build
OBJ       := $(SRC:csrc/%.c=$(BUILD)/obj/%.o)
HDR       := $(wildcard csrc/*/*.h)
LIB       := $(BUILD)/oneencoder/core.so
LUA       := lua5.4
export LUA_PATH  := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/spec/?.lua;;
export LUA_CPATH := $(CURDIR)/$(BUILD)/?.so;;

.PHONY: all deps test sanitize bench demo install rock-install clean

all: $(LIB)

$(BUILD)/obj/%.o: csrc/%.c $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# -z nodelete: lua_close() dlcloses core.so; without it libgomp is unmapped while
# its idle OpenMP worker threads still run in it, and the process segfaults at exit.
$(LIB): $(OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared $(CFLAGS) -Wl,-z,nodelete -o $@ $(OBJ) $(LDLIBS)

deps:
	@sh scripts/install-deps.sh

test: deps
	@$(MAKE) --no-print-directory all
	@sh scripts/run-specs.sh $(BUILD)

sanitize: deps
	@$(MAKE) --no-print-directory all BUILD=build/sanitize OPT="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"
	@SANITIZE=1 sh scripts/run-specs.sh build/sanitize

bench: deps
	@$(MAKE) --no-print-directory all
	@for f in $(filter-out bench/common.lua,$(wildcard bench/*.lua)); do echo "# $$f"; $(LUA) $$f || exit 1; done

# make demo DEMO_ARGS="--ablations" (or --fresh, --quick)
demo: deps
	@$(MAKE) --no-print-directory all
	@$(LUA) examples/demo.lua $(DEMO_ARGS)

install: deps
	luarocks --lua-version=5.4 make rockspec/oneencoder-scm-1.rockspec

# used by the rockspec: LuaRocks passes its own module folders
rock-install: $(LIB)
	mkdir -p $(INST_LIBDIR)/oneencoder $(INST_LUADIR)
	cp $(LIB) $(INST_LIBDIR)/oneencoder/core.so
	cp -r lua/oneencoder $(INST_LUADIR)/

clean:
	rm -rf build
