# gyre — build, set-up, tests and benchmarks.
#
#   make           build ./gyre
#   make deps      install every Debian package gyre needs (idempotent)
#   make run       deps + build, then nginx on 127.0.0.1:$(PORT) in front of gyre
#   make test      deps + build + every test (style, C unit tests, fuzz smoke, integration)
#   make fuzz      run each libFuzzer harness for FUZZ_SECONDS
#   make bench     wrk through nginx: gyre side by side with uWSGI
#   make valgrind  the request path's integration tests against gyre under memcheck
#   make format    clang-format (.clang-format) over the C files of proto/, server/, tests/
#   make format-check  the same as a dry run: fails when a file is not formatted
#
# Sources are picked up by wildcard: a new proto/*.c, server/*.c, tests/proto/test_*.c or
# tests/fuzz/fuzz_*.c needs no edit here.

PY          := /usr/bin/python3
CC          ?= gcc
PORT        ?= 8080
PROTO       ?= uwsgi
FUZZ_SECONDS ?= 60
VALGRIND_TESTS ?= test_smoke.py test_wsgi.py

# The build flags of the Debian libraries, asked of pkg-config when a recipe first needs them
# (then kept), never when the Makefile is read: on a fresh machine `make test` parses this file
# before `make deps` has installed pkg-config and the -dev packages. A missing package is an
# error that says what to do, not an empty flag and a page of undefined symbols.
pkgconf = $(or $(shell pkg-config $(1) 2>/dev/null),$(error pkg-config $(1) failed: \
    install the build dependencies with `make deps` (scripts/deps.sh)))
PKG_CONFIG_MODULES := python3-embed inih libsystemd jansson libpcre2-8 hiredis libcrypto
PY_CFLAGS    = $(eval PY_CFLAGS := $(call pkgconf,--cflags python3-embed))$(PY_CFLAGS)
PY_LIBS      = $(eval PY_LIBS := $(call pkgconf,--libs $(PKG_CONFIG_MODULES)))$(PY_LIBS)
GREENLET_INC := /usr/lib/python3/dist-packages/greenlet

OPT         ?= -O2 -g
WARN        := -Wall -Wextra -Werror -Wmissing-prototypes
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -Iproto -fno-strict-aliasing
CFLAGS      ?=
SERVER_INC  = -Iserver -Ibuild $(PY_CFLAGS) -I$(GREENLET_INC)
SAN         := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

PROTO_SRC   := $(sort $(wildcard proto/*.c))
SERVER_SRC  := $(sort $(wildcard server/*.c))
PROTO_OBJ   := $(PROTO_SRC:%.c=build/%.o)
SERVER_OBJ  := $(SERVER_SRC:%.c=build/%.o)
# server/'s plain C files: built without Python's include path, so that an include of Python.h
# (directly or through a header) fails the build. Python is core.h's alone (see server/README).
SERVER_NOPY := $(addprefix server/,main.c master.c stats.c options.c ini.c logformat.c log.c \
    scoreboard.c server.c response.c proto_uwsgi.c proto_fastcgi.c proto_http.c conn.c listen.c \
    static.c route.c regexp.c locks.c redis_url.c metrics.c cache.c cache_conf.c signals.c)
PROTO_TESTS := $(patsubst tests/proto/%.c,build/tests/%,$(sort $(wildcard tests/proto/test_*.c)))
# server/'s parts that need no Python (configuration, log rendering, static files, routing
# rules): unit-tested like proto/.
SERVER_PURE := server/options.c server/ini.c server/logformat.c server/log.c server/static.c \
    server/response.c server/route.c server/regexp.c server/metrics.c server/cache.c \
    server/cache_conf.c server/redis_url.c server/signals.c
SERVER_TESTS := $(patsubst tests/server/%.c,build/tests/server/%,$(sort $(wildcard tests/server/test_*.c)))
FUZZERS     := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
HEADERS     := $(wildcard proto/*.h server/*.h)
# Every C file the style applies to (.clang-format at the root says which style).
FORMAT_SRC  := $(sort $(wildcard proto/*.[ch] server/*.[ch] tests/*.h tests/*/*.[ch]))
CLANG_FORMAT ?= clang-format

.PHONY: all deps run test test-style test-deps test-proto test-fuzz test-integration fuzz bench clean ubsan valgrind \
        format format-check

all: gyre

gyre: $(PROTO_OBJ) $(SERVER_OBJ)
	$(CC) $(OPT) -o $@ $^ $(PY_LIBS) -lpthread -lm

build/proto/%.o: proto/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(OPT) $(BASE_CFLAGS) $(CFLAGS) -c -o $@ $<

build/server/%.o: server/%.c $(HEADERS) build/boot_py.h
	@mkdir -p $(dir $@)
	$(CC) $(OPT) $(BASE_CFLAGS) $(SERVER_INC) $(CFLAGS) -c -o $@ $<
$(SERVER_NOPY:%.c=build/%.o): SERVER_INC = -Iserver -Ibuild

# server/boot.py, the Python half of start-up, compiled into the binary as a C string.
build/boot_py.h: server/boot.py scripts/embed.py
	@mkdir -p build
	$(PY) scripts/embed.py server/boot.py BOOT_PY $@

# gyre built with UBSan, for a sanitizer pass of the integration tests (GYRE_BIN=build/gyre-ubsan).
# Not ASan: greenlet switches stacks by copying slices of them with memcpy, and ASan reports those
# copies (and the stale shadow they leave) as stack overflows. The parsers get ASan in their unit
# tests and fuzzers; the server gets UBSan here and valgrind (see README).
ubsan: build/gyre-ubsan
build/gyre-ubsan: $(PROTO_SRC) $(SERVER_SRC) $(HEADERS) build/boot_py.h
	@mkdir -p build
	$(CC) -O1 -g $(BASE_CFLAGS) $(SERVER_INC) -fsanitize=undefined -fno-sanitize-recover=all \
	    -fno-omit-frame-pointer -o $@ $(PROTO_SRC) $(SERVER_SRC) $(PY_LIBS) -lpthread -lm

# C unit tests of the wire parsers: pure C, built with sanitizers, no Python.
build/tests/test_%: tests/proto/test_%.c $(PROTO_SRC) $(HEADERS) tests/testlib.h
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(BASE_CFLAGS) -Itests $(SAN) -o $@ $< $(PROTO_SRC)

# C unit tests of server/'s pure parts: the same harness and sanitizers, no Python.
build/tests/server/%: tests/server/%.c $(SERVER_PURE) $(HEADERS) tests/testlib.h
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(BASE_CFLAGS) -Itests -Iserver $(SAN) -o $@ $< $(SERVER_PURE) -linih -ljansson -lpcre2-8

# conn.c's buffer arithmetic, with the real uwsgi and HTTP protocols on a socketpair: conn.c is
# plain C and reaches the loop through engine.h alone, which tests/server/conn_loop.c provides.
CONN_TEST_SRC := $(addprefix server/,conn.c server.c log.c regexp.c response.c proto_uwsgi.c \
    proto_http.c) \
    tests/server/conn_loop.c
build/tests/server/test_conn: tests/server/test_conn.c $(CONN_TEST_SRC) $(PROTO_SRC) $(HEADERS) \
        tests/testlib.h
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(BASE_CFLAGS) -Itests -Iserver $(SAN) -o $@ $< $(CONN_TEST_SRC) $(PROTO_SRC) -ljansson -lpcre2-8

build/fuzz/%: tests/fuzz/%.c $(PROTO_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	clang -O1 -g -std=c11 -D_GNU_SOURCE $(WARN) -Iproto \
	    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $< $(PROTO_SRC)

deps:
	@scripts/deps.sh

# run and test install the dependencies first, then build in a make of their own: one that
# reads this file again after the install.
run: deps
	@$(MAKE) --no-print-directory gyre
	@PORT=$(PORT) PROTO=$(PROTO) scripts/run.sh

test: deps
	@$(MAKE) --no-print-directory gyre
	@$(MAKE) --no-print-directory test-style test-deps test-proto test-fuzz test-integration

# One style (.clang-format): every C file formatted, every sizeof with parentheses.
test-style:
	@$(CLANG_FORMAT) --dry-run --Werror $(FORMAT_SRC)
	@! grep -nE 'sizeof [A-Za-z_(*]' $(FORMAT_SRC) || \
	    { echo "write sizeof(x), not sizeof x (.clang-format)"; exit 1; }
	@echo "== style: clang-format clean, sizeof(x) throughout"

# server/'s files depend on each other one way: a cycle (from nm of the objects) fails the tests.
test-deps: gyre
	@$(PY) scripts/deps-graph.py > build/deps-graph.txt || { cat build/deps-graph.txt; exit 1; }
	@echo "== server/ dependencies: no cycles (build/deps-graph.txt)"

test-proto: $(PROTO_TESTS) $(SERVER_TESTS)
	@set -e; for t in $(PROTO_TESTS) $(SERVER_TESTS); do echo "== $$t"; $$t; done

# A short libFuzzer run of every harness over its seed corpus: catches a harness or parser that
# crashes at once. The long runs are `make fuzz`.
test-fuzz: $(FUZZERS)
	@set -e; for f in $(FUZZERS); do n=$$(basename $$f); mkdir -p build/corpus/$$n; \
	    echo "== $$n (smoke)"; $$f -max_total_time=10 -print_final_stats=0 \
	    build/corpus/$$n tests/fuzz/corpus/$$n 2>&1 | tail -n 2; done

test-integration: gyre
	cd tests/integration && $(PY) -m pytest -q -p no:cacheprovider .

fuzz: $(FUZZERS)
	@set -e; for f in $(FUZZERS); do n=$$(basename $$f); mkdir -p build/corpus/$$n; \
	    echo "== $$n ($(FUZZ_SECONDS)s)"; $$f -max_total_time=$(FUZZ_SECONDS) \
	    build/corpus/$$n tests/fuzz/corpus/$$n; done

# The request path under valgrind's memcheck: the WSGI conformance tests (all three protocols)
# and the smoke tests against gyre run by scripts/valgrind-gyre.sh, then a report of the errors
# and definite leaks in gyre's own code (CPython's known import-time reports are counted apart).
valgrind: gyre
	rm -rf build/valgrind
	-cd tests/integration && GYRE_BIN=$(CURDIR)/scripts/valgrind-gyre.sh $(PY) -m pytest -q \
	    -p no:cacheprovider $(VALGRIND_TESTS)
	$(PY) scripts/valgrind-report.py

bench: deps gyre
	$(PY) bench/bench.py

format:
	$(CLANG_FORMAT) -i $(FORMAT_SRC)

# --dry-run --Werror: every line that would change is reported (file:line) and the exit status
# is non-zero, so CI or a pre-commit hook can run it.
format-check:
	$(CLANG_FORMAT) --dry-run --Werror $(FORMAT_SRC)

clean:
	rm -rf build gyre
