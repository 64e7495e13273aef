# libcsal3d: GNU make build. `make help` lists the targets.
#
# Outputs: lib/libcsal3d.so.$(VERSION) (SONAME libcsal3d.so.$(MAJOR)), lib/libcsal3d.a,
# lib/libcsal3d-cuda.so.$(VERSION) (SONAME libcsal3d-cuda.so.$(MAJOR); when nvcc is found
# and CUDA != 0), bin/csal3d, build/ (objects, tests). `make asan` builds the same under
# build/asan/ with sanitizers.

MAJOR   := 0
MINOR   := 1
PATCH   := 0
VERSION := $(MAJOR).$(MINOR).$(PATCH)

CC      ?= cc
PYTHON  ?= /usr/bin/python3
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR  ?= $(PREFIX)/bin
# Where `make install` puts the Python package: $(PYTHON)'s site-packages for $(PREFIX)
# (scripts/python_dir.py); empty (no Python) skips it.
PYTHONDIR ?= $(shell $(PYTHON) scripts/python_dir.py '$(PREFIX)' 2>/dev/null)
DESTDIR ?=

# Where this build puts things (make asan overrides them).
BUILD   ?= build
OUT_LIB ?= lib
OUT_BIN ?= bin

CFLAGS  ?= -O2 -g
SANITIZE ?=
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -fPIC -fopenmp $(WARN) $(CFLAGS) $(SANITIZE) \
              -Iinclude -Ilib -I/usr/include/nifti
LIB_CFLAGS := $(ALL_CFLAGS) -fvisibility=hidden -DCSAL3D_BUILDING

# Dependencies. PC_DEPS have pkg-config files; the others are listed by hand.
PC_DEPS      := zlib jansson lapacke openblas libpng
LIBS_PRIVATE := -ldnnl -lnifti2 -lniftiio -lznz -lgomp -lm -ldl -lpthread
DEP_LIBS     := $(shell pkg-config --libs $(PC_DEPS) 2>/dev/null) $(LIBS_PRIVATE)
LDFLAGS ?=
ALL_LDFLAGS := $(LDFLAGS) $(SANITIZE) -fopenmp
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null)

# CUDA engine plugin: built when nvcc is found, unless CUDA=0.
NVCC ?= $(shell command -v nvcc 2>/dev/null || { test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCH ?= 90
ifeq ($(NVCC),)
CUDA := 0
endif
CUDA ?= 1
NVCC_FLAGS := -std=c++17 -O2 -g -arch=sm_$(CUDA_ARCH) -Xcompiler -fPIC,-fvisibility=hidden \
              -Iinclude -Ilib

LIB_SRC  := $(sort $(shell find lib -name '*.c' -not -path 'lib/engine/cuda/*'))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CUDA_SRC := $(sort $(wildcard lib/engine/cuda/*.cu))
CUDA_OBJ := $(CUDA_SRC:%.cu=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(sort $(wildcard tests/bench_*.c))
BENCH_BIN := $(BENCH_SRC:tests/%.c=$(BUILD)/tests/%)
# The csal3d tool is built from examples/csal3d/*.c; every other examples/*.c is a program.
# (comm_mpi.c and comm_nccl.c go only into csal3d-mpi, below.)
TOOL_SRC := $(filter-out examples/csal3d/comm_mpi.c examples/csal3d/comm_nccl.c,\
              $(sort $(wildcard examples/csal3d/*.c)))
TOOL_OBJ := $(TOOL_SRC:%.c=$(BUILD)/%.o)
TOOL_BIN := $(OUT_BIN)/csal3d
EXAMPLE_SRC := $(sort $(wildcard examples/*.c))
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(OUT_BIN)/%) $(TOOL_BIN)

# csal3d-mpi: the tool with the MPI communicator (examples/csal3d/comm_mpi.c and main.c
# with CSAL3D_TOOL_MPI; objects in $(BUILD)/examples/mpi), built when mpicc is found,
# unless MPI=0. The library itself never links MPI.
MPICC ?= $(shell command -v mpicc 2>/dev/null)
ifeq ($(MPICC),)
MPI := 0
endif
MPI ?= 1
ifeq ($(MPI),1)
MPI_BIN := $(OUT_BIN)/csal3d-mpi
MPI_OBJ := $(filter-out $(BUILD)/examples/csal3d/main.o,$(TOOL_OBJ)) \
           $(BUILD)/examples/mpi/comm_mpi.o
endif

# csal3d-mpi --comm nccl (examples/csal3d/comm_nccl.c, main.c with CSAL3D_TOOL_NCCL):
# built in where MPI is and nccl.h and libnccl.so are found in NCCL_HOME (default the
# CUDA tree), unless NCCL=0.
NCCL_HOME ?= $(or $(CUDA_HOME),/usr/local/cuda)
ifneq ($(words $(wildcard $(NCCL_HOME)/include/nccl.h $(NCCL_HOME)/lib64/libnccl.so)),2)
NCCL := 0
endif
ifneq ($(MPI),1)
NCCL := 0
endif
NCCL ?= 1
ifeq ($(MPI)$(NCCL),11)
MPI_MAIN := $(BUILD)/examples/mpi/nccl/main.o
MPI_OBJ += $(MPI_MAIN) $(BUILD)/examples/mpi/nccl/comm_nccl.o
MPI_NCCL_CFLAGS := -DCSAL3D_TOOL_NCCL -isystem $(NCCL_HOME)/include
MPI_NCCL_LIBS := -L$(NCCL_HOME)/lib64 -lnccl -lcudart -Wl,-rpath,$(NCCL_HOME)/lib64
else ifeq ($(MPI),1)
MPI_MAIN := $(BUILD)/examples/mpi/main.o
MPI_OBJ += $(MPI_MAIN)
endif

SHARED   := $(OUT_LIB)/libcsal3d.so.$(VERSION)
STATIC   := $(OUT_LIB)/libcsal3d.a
# The plugin is versioned like the library; the core dlopens its SONAME
# (C3_CUDA_PLUGIN_FILE in lib/engine/cuda/plugin.h), libcsal3d-cuda.so is the
# development link (CSAL3D_CUDA_PLUGIN, the tests).
PLUGIN_SO := $(OUT_LIB)/libcsal3d-cuda.so.$(VERSION)
PLUGIN_LINKS := $(OUT_LIB)/libcsal3d-cuda.so.$(MAJOR) $(OUT_LIB)/libcsal3d-cuda.so
ifeq ($(CUDA),1)
PLUGIN_TARGET := $(PLUGIN_SO) $(PLUGIN_LINKS)
endif

# The ABI baseline (abi/README.md): `make abi-check` compares the library against it.
ABI_BASELINE := abi/libcsal3d.abi

.PHONY: all help check check-run asan install uninstall docs demo bench deps clean \
        abi-check abi-dump
.DEFAULT_GOAL := all

all: $(SHARED) $(STATIC) $(PLUGIN_TARGET) $(EXAMPLE_BIN) $(MPI_BIN) $(TEST_BIN)

help:
	@echo "make            build the libraries, the csal3d tool and the tests"
	@echo "make check      install missing Debian packages (as root), build, run every test"
	@echo "make demo       run the end-to-end demo"
	@echo "make asan       the tests under AddressSanitizer + UBSan (build/asan)"
	@echo "make bench      build and run the benchmarks (tables of time, GFLOP/s, memory)"
	@echo "make install    PREFIX=/usr/local DESTDIR= : headers, libraries, pkg-config, csal3d,"
	@echo "                the Python package (PYTHONDIR=$$($(PYTHON) scripts/python_dir.py '$(PREFIX)'))"
	@echo "make abi-check  compare the library's ABI with $(ABI_BASELINE) (abigail-tools)"
	@echo "make abi-dump   rewrite $(ABI_BASELINE): only when the ABI is meant to change"
	@echo "make docs       API reference with Doxygen into docs/api"
	@echo "make deps       check (and as root install) the Debian build dependencies"
	@echo "variables: CUDA=0 (no CUDA plugin), MPI=0 (no csal3d-mpi), NCCL=0 (no --comm nccl), PYTHON=$(PYTHON), CC, CFLAGS"

deps:
	@sh scripts/deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(LIB_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.o: %.cu
	@mkdir -p $(@D)
	$(NVCC) $(NVCC_FLAGS) -MMD -MP -c $< -o $@

$(SHARED): $(LIB_OBJ) lib/csal3d.map
	@mkdir -p $(@D)
	$(CC) -shared -o $@ $(LIB_OBJ) -Wl,-soname,libcsal3d.so.$(MAJOR) \
	  -Wl,--version-script=lib/csal3d.map -Wl,--as-needed -Wl,--no-undefined \
	  $(ALL_LDFLAGS) $(DEP_LIBS)
	ln -sf libcsal3d.so.$(VERSION) $(OUT_LIB)/libcsal3d.so.$(MAJOR)
	ln -sf libcsal3d.so.$(MAJOR) $(OUT_LIB)/libcsal3d.so

$(STATIC): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $(LIB_OBJ)

$(PLUGIN_SO): $(CUDA_OBJ) lib/engine/cuda/plugin.map
	@mkdir -p $(@D)
	$(NVCC) -shared -o $@ $(CUDA_OBJ) -Xlinker -soname,libcsal3d-cuda.so.$(MAJOR) \
	  -Xlinker --version-script=lib/engine/cuda/plugin.map -Xlinker --no-undefined \
	  -L$(CUDA_HOME)/lib64 -lcudnn -lcublasLt -lcublas -lcudart \
	  -Xlinker -rpath,$(CUDA_HOME)/lib64

$(OUT_LIB)/libcsal3d-cuda.so.$(MAJOR): $(PLUGIN_SO)
	ln -sf libcsal3d-cuda.so.$(VERSION) $@

$(OUT_LIB)/libcsal3d-cuda.so: $(OUT_LIB)/libcsal3d-cuda.so.$(MAJOR)
	ln -sf libcsal3d-cuda.so.$(MAJOR) $@

# The command-line tool and examples link the shared library, found at run time
# beside them (bin/ -> ../lib) both in the build tree and once installed. They are
# clients of the library: compiled without its build flags (visibility, CSAL3D_BUILDING).
$(BUILD)/examples/csal3d/%.o: examples/csal3d/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(TOOL_BIN): $(TOOL_OBJ) $(SHARED)
	@mkdir -p $(@D)
	$(CC) -o $@ $(TOOL_OBJ) -L$(OUT_LIB) -lcsal3d -Wl,-rpath,'$$ORIGIN/../lib' $(ALL_LDFLAGS)

$(MPI_MAIN): examples/csal3d/main.c
	@mkdir -p $(@D)
	$(MPICC) $(ALL_CFLAGS) -DCSAL3D_TOOL_MPI $(MPI_NCCL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/examples/mpi/nccl/comm_nccl.o: examples/csal3d/comm_nccl.c
	@mkdir -p $(@D)
	$(MPICC) $(ALL_CFLAGS) $(MPI_NCCL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/examples/mpi/comm_mpi.o: examples/csal3d/comm_mpi.c
	@mkdir -p $(@D)
	$(MPICC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

# (relinked when NCCL changes: the stamp names the setting the binary was linked with)
$(BUILD)/examples/mpi/nccl.$(NCCL):
	@mkdir -p $(@D)
	@rm -f $(BUILD)/examples/mpi/nccl.* && touch $@

$(MPI_BIN): $(MPI_OBJ) $(SHARED) $(BUILD)/examples/mpi/nccl.$(NCCL)
	@mkdir -p $(@D)
	$(MPICC) -o $@ $(MPI_OBJ) -L$(OUT_LIB) -lcsal3d -Wl,-rpath,'$$ORIGIN/../lib' $(ALL_LDFLAGS) \
	  $(MPI_NCCL_LIBS)

$(OUT_BIN)/%: examples/%.c $(SHARED)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< -L$(OUT_LIB) -lcsal3d \
	  -Wl,-rpath,'$$ORIGIN/../lib' $(ALL_LDFLAGS)

# Tests link the static library so that they can reach internal functions.
$(BUILD)/tests/%: tests/%.c $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -MMD -MP -o $@ $< $(STATIC) \
	  $(ALL_LDFLAGS) $(DEP_LIBS) $(CHECK_LIBS)

check: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory check-run

# Runs every suite: the Check programs, the shell tests, the Python tests.
check-run:
	@BUILD=$(BUILD) OUT_LIB=$(OUT_LIB) PYTHON="$(PYTHON)" SANITIZE="$(SANITIZE)" \
	  CUDA=$(CUDA) MPI=$(MPI) sh tests/run.sh $(TEST_BIN)

# (csal3d-mpi is left out: OpenMPI is not instrumented and leaks by design at exit.)
ASAN_VARS := BUILD=build/asan OUT_LIB=build/asan/lib OUT_BIN=build/asan/bin CUDA=0 MPI=0 \
  CFLAGS="-O1 -g -fno-omit-frame-pointer" \
  SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=all"

asan:
	@$(MAKE) --no-print-directory $(ASAN_VARS) all
	@$(MAKE) --no-print-directory $(ASAN_VARS) check-run

bench: $(SHARED) $(BENCH_BIN) $(EXAMPLE_BIN) $(MPI_BIN)
	@for b in $(BENCH_BIN); do echo "== $$b"; CSAL3D_BENCH_BIN=$(OUT_BIN) $$b || exit 1; done

demo: deps
	@$(MAKE) --no-print-directory all
	@sh scripts/demo.sh

# csal3d.pc is written by each install, for that install's PREFIX, LIBDIR and INCLUDEDIR
# (a file target in the build tree kept the first install's paths). The Python package
# goes to PYTHONDIR with a link to the installed library beside it, where it looks first
# after $$CSAL3D_LIBRARY.
install: $(SHARED) $(STATIC) $(PLUGIN_TARGET) $(EXAMPLE_BIN)
	install -d $(DESTDIR)$(INCLUDEDIR)/csal3d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(BINDIR)
	install -m 644 include/csal3d/*.h $(DESTDIR)$(INCLUDEDIR)/csal3d/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libcsal3d.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libcsal3d.so.$(MAJOR)
	ln -sf libcsal3d.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/libcsal3d.so
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	$(if $(PLUGIN_TARGET),install -m 755 $(PLUGIN_SO) $(DESTDIR)$(LIBDIR)/)
	$(if $(PLUGIN_TARGET),ln -sf libcsal3d-cuda.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libcsal3d-cuda.so.$(MAJOR))
	$(if $(PLUGIN_TARGET),ln -sf libcsal3d-cuda.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/libcsal3d-cuda.so)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@REQUIRES_PRIVATE@|$(PC_DEPS)|g' -e 's|@LIBS_PRIVATE@|$(LIBS_PRIVATE)|g' \
	    pkgconfig/csal3d.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/csal3d.pc
	$(if $(EXAMPLE_BIN),install -m 755 $(EXAMPLE_BIN) $(DESTDIR)$(BINDIR)/)
	$(if $(MPI_BIN),install -m 755 $(MPI_BIN) $(DESTDIR)$(BINDIR)/)
	@d='$(PYTHONDIR)'; if [ -z "$$d" ]; then \
	  echo "install: $(PYTHON) not found: the Python package is not installed (set PYTHONDIR)"; \
	else \
	  echo "install: the Python package into $(DESTDIR)$$d/csal3d"; \
	  install -d "$(DESTDIR)$$d/csal3d" && \
	  install -m 644 bindings/python/csal3d/*.py "$(DESTDIR)$$d/csal3d/" && \
	  ln -sf "$(LIBDIR)/libcsal3d.so.$(MAJOR)" "$(DESTDIR)$$d/csal3d/libcsal3d.so.$(MAJOR)"; \
	fi

uninstall:
	rm -rf $(DESTDIR)$(INCLUDEDIR)/csal3d
	rm -f $(DESTDIR)$(LIBDIR)/libcsal3d.* $(DESTDIR)$(LIBDIR)/libcsal3d-cuda.so* \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/csal3d.pc $(DESTDIR)$(BINDIR)/csal3d-mpi \
	      $(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(EXAMPLE_BIN)))
	@d='$(PYTHONDIR)'; [ -z "$$d" ] || { echo "rm -rf $(DESTDIR)$$d/csal3d"; rm -rf "$(DESTDIR)$$d/csal3d"; }

# The ABI check (abi/README.md). It skips, saying why, without abidiff or debug info.
abi-check: $(SHARED)
	@PYTHON="$(PYTHON)" sh scripts/abi_check.sh $(ABI_BASELINE) $(SHARED) include/csal3d; \
	  rc=$$?; [ $$rc -eq 77 ] && rc=0; exit $$rc

# Rewrites the baseline: only when the ABI is meant to change (and an incompatible
# change goes with a MAJOR bump, a new SONAME).
abi-dump: $(SHARED)
	@sh scripts/abi_check.sh --dump $(ABI_BASELINE) $(SHARED) include/csal3d

docs:
	@command -v doxygen >/dev/null || { echo "doxygen not found: apt-get install -y doxygen"; exit 1; }
	doxygen docs/Doxyfile
	@echo "API reference: docs/api/html/index.html"

clean:
	rm -rf build bin docs/api lib/libcsal3d.* lib/libcsal3d-cuda.so* lib/csal3d.pc
	find bindings -name __pycache__ -type d -exec rm -rf {} +

-include $(LIB_OBJ:.o=.d) $(CUDA_OBJ:.o=.d) $(TOOL_OBJ:.o=.d) $(MPI_OBJ:.o=.d) $(TEST_BIN:=.d)
