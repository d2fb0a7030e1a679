# petl: build, tests, benchmarks. `make bench` and `make test` are the two commands a user types.
CC      ?= cc
OPT     ?= -O3 -march=native
BLAS_INC = /usr/include/x86_64-linux-gnu/openblas-openmp
BLAS_LIB = /usr/lib/x86_64-linux-gnu/openblas-openmp
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -I. -I$(BLAS_INC) -I/usr/include/stb
LDLIBS   = -rdynamic -L$(BLAS_LIB) -Wl,-rpath,$(BLAS_LIB) -lopenblas -lcjson -lpng -lz -lstb -lm -lpthread
ifeq ($(NO_OMP),1)
  CFLAGS += -Wno-unknown-pragmas
else
  CFLAGS  += -fopenmp
  LDFLAGS += -fopenmp
endif
B ?= build
# The CLI binary; a parallel build tree can use its own: make B=build-x PETL=build-x/petl build-x/petl
PETL ?= petl

LIB_DIRS = nn vit loaders methods bench vl
LIB_SRC  = $(filter-out bench/main.c,$(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c)))
LIB_OBJ  = $(LIB_SRC:%.c=$(B)/%.o)
TEST_SRC = $(wildcard tests/test_*.c)
TEST_BIN = $(TEST_SRC:tests/%.c=$(B)/tests/%)
PERF_SRC = $(wildcard bench/perf/*.c)
PERF_BIN = $(PERF_SRC:bench/perf/%.c=$(B)/perf/%)
HDRS     = $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.h)) tests/test.h tests/test_util.h tests/vl_toy.h tests/vl_data_toy.h

.PHONY: all deps test test-asan fuzz bench bench-quick perf data pretrain pretrain-vl clean
all: $(PETL)

DEPS_PKGS = gcc libc6-dev libopenblas-openmp-dev libcjson-dev libstb-dev libpng-dev zlib1g-dev gnuplot-nox \
            dataset-fashion-mnist clang libclang-rt-14-dev
deps:
	@./tools/deps.sh $(DEPS_PKGS)

$(B)/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(B)/libpetl.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# whole-archive: every method file registers itself through the registry's weak references
WHOLE = -Wl,--whole-archive $(B)/libpetl.a -Wl,--no-whole-archive
$(PETL): $(B)/bench/main.o $(B)/libpetl.a
	$(CC) $(LDFLAGS) -o $@ $(B)/bench/main.o $(WHOLE) $(LDLIBS)

$(B)/tests/%: tests/%.c $(B)/libpetl.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(WHOLE) $(LDLIBS)

$(B)/perf/%: bench/perf/%.c $(B)/libpetl.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(WHOLE) $(LDLIBS)

# the perf programs are built too (not run): an interface change must not leave them broken
test: deps
	@$(MAKE) --no-print-directory petl $(TEST_BIN) $(PERF_BIN)
	@./tests/run_all.sh $(B) $(TEST_BIN) tests/fuzz/run.sh

test-asan: deps
	@$(MAKE) --no-print-directory B=build-asan OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined" \
	  LDFLAGS="-fsanitize=address,undefined -fopenmp" build-asan/petl-asan \
	  $(TEST_SRC:tests/%.c=build-asan/tests/%)
	@ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 PETL_BIN=./build-asan/petl-asan \
	  ./tests/run_all.sh build-asan $(TEST_SRC:tests/%.c=build-asan/tests/%)

perf: deps
	@$(MAKE) --no-print-directory petl $(PERF_BIN)
	@./bench/perf.sh $(B)

bench: deps
	@$(MAKE) --no-print-directory petl
	@./bench/bench.sh

bench-quick: deps
	@$(MAKE) --no-print-directory petl
	@./bench/bench.sh quick

build-asan/petl-asan: build-asan/bench/main.o build-asan/libpetl.a
	$(CC) $(LDFLAGS) -o $@ build-asan/bench/main.o -Wl,--whole-archive build-asan/libpetl.a -Wl,--no-whole-archive $(LDLIBS)

data: deps
	@$(MAKE) --no-print-directory petl
	./petl data make --out data

pretrain: data
	./petl pretrain --preset vit-micro --data data --task fractal --out models/vit-micro-fractal.safetensors

# the default VL backbone (and its tokenizer, models/vl-tiny.tokenizer.json) over the ViT's features
pretrain-vl: data
	./petl pretrain --preset vl-tiny --data data/vl --image-encoder models/vit-micro-fractal.safetensors \
	  --out models/vl-tiny.safetensors

# ---------------------------------------------------------------- fuzzing (README: Fuzzing)
# clang libFuzzer targets, one per reader. The readers (and the helpers they share) get coverage,
# AddressSanitizer and UBSan; the rest of the library they link against is built plain, without
# optimisation, because compiling all of it with sanitizers takes longer than `make test` allows.
FUZZ_CC      ?= clang
FZ            = build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_FLAGS    = -std=c11 -D_GNU_SOURCE -g -march=native -fno-omit-frame-pointer -Wall -Wextra -Wno-unused-parameter \
                -Wno-unknown-pragmas -I. -I$(BLAS_INC) -I/usr/include/stb
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_SAN_SRC  = nn/core.c nn/outfile.c nn/util.c nn/safetensors.c loaders/img.c loaders/dataset.c bench/common.c bench/matrix.c \
                vl/tokenizer.c loaders/vldata.c tests/fuzz/stb_image.c
FUZZ_SAN_OBJ  = $(FUZZ_SAN_SRC:%.c=$(FZ)/san/%.o)
FUZZ_PLAIN_OBJ = $(patsubst %.c,$(FZ)/plain/%.o,$(filter-out $(FUZZ_SAN_SRC),$(LIB_SRC)))
FUZZ_BIN      = $(patsubst tests/fuzz/%.c,$(FZ)/%,$(wildcard tests/fuzz/fuzz_*.c))
# objects reached only through the pattern rules: keep them, or every build recompiles them all
.SECONDARY: $(FUZZ_SAN_OBJ) $(FUZZ_PLAIN_OBJ)

$(FZ)/san/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c $< -o $@
# stb_image: third-party, warnings off; UBSan without its integer-overflow and shift checks (stb's
# header parsers overflow int on absurd numbers, caught afterwards by our size limit), but with the
# bounds checks that found its JPEG Huffman overflow (stb_image.h:1990, now refused by loaders/img.c)
$(FZ)/san/tests/fuzz/stb_image.o: FUZZ_FLAGS += -w
$(FZ)/san/tests/fuzz/stb_image.o: FUZZ_SAN += -fno-sanitize=signed-integer-overflow,shift
$(FZ)/plain/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -O0 -c $< -o $@
$(FZ)/libplain.a: $(FUZZ_PLAIN_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(FZ)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_SAN_OBJ) $(FZ)/libplain.a $(HDRS)
	$(FUZZ_CC) $(FUZZ_FLAGS) -O1 -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $< $(FUZZ_SAN_OBJ) $(FZ)/libplain.a $(LDLIBS)

# every target for FUZZ_SECONDS on a scratch copy of its corpus; a crash fails it and names the
# reproducer (`make test` runs the same script for a few seconds per target)
fuzz: deps
	@./tests/fuzz/run.sh --seconds $(FUZZ_SECONDS) --keep $(FUZZ_TARGETS)

clean:
	rm -rf build build-asan build-fuzz petl
