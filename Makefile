# nub build: host library, guest SDK, guests, CLI, tests and benchmarks (GNU Make).
#
# Targets: all (default: libraries, guests, CLI), test (unit + integration + ASan build
# + fuzz smoke + kvm inside QEMU), unit, integration, asan, kvm-test, bench, fuzz, fuzz-build, install, clean.
# common/ sources are compiled twice: with host flags into libnub and with
# freestanding guest flags into libnubguest.

CC      ?= cc
AR      ?= ar
PREFIX  ?= /usr/local
B       := build
VERSION := 0.1.0

WARN    := -Wall -Wextra -Werror -Wmissing-prototypes -Wstrict-prototypes
OPT     ?= -O2
# -fvisibility=hidden: libnub.so exports only what include/nub/ declares (nub/api.h).
HOST_CFLAGS  := -std=c11 $(OPT) -g $(WARN) -fPIC -fvisibility=hidden -Iinclude -Icommon -D_GNU_SOURCE $(EXTRA_CFLAGS)
# What every guest needs, in the tree and outside it (nubguest.pc): no PIE (the
# kernel code model cannot be PIC), no stack protector (no libc to provide
# __stack_chk_fail), no red zone (kernel-mode exceptions push below RSP), no
# build-id note (the linker script places every section itself). -static
# already links a non-PIE executable with gcc and clang (clang warns that
# -no-pie is unused there, so it is not passed).
GUEST_ARCH_CFLAGS := -ffreestanding -fno-pic -fno-pie -mcmodel=kernel -mno-red-zone \
                     -fno-stack-protector -fno-asynchronous-unwind-tables
GUEST_ARCH_LDFLAGS := -nostdlib -static -Wl,--build-id=none -Wl,-z,max-page-size=4096 \
                      -Wl,-z,noexecstack -Wl,--no-warn-rwx-segments
GUEST_CFLAGS := -std=c11 $(OPT) -g $(WARN) -Iinclude -Icommon -DNUB_GUEST=1 -nostdlib $(GUEST_ARCH_CFLAGS)
GUEST_LDFLAGS := $(GUEST_ARCH_LDFLAGS) -Wl,-T,guest/nub.ld
TEST_CFLAGS  := -std=c11 $(OPT) -g $(WARN) -Iinclude -Icommon -D_GNU_SOURCE $(EXTRA_CFLAGS)
LDLIBS_HOST  := -lunicorn -lpthread
LDLIBS_TEST  := -lcriterion -lsodium -lpthread -lm
LDLIBS_test_cli := -ljson-c # tests/integration/test_cli.c parses `nub run --json`

COMMON_SRC := $(wildcard common/*.c)
SDK_SRC    := $(wildcard guest/*.c guest/*.S)
GUEST_NAMES := $(notdir $(wildcard guests/*))
HOST_SRC   := $(wildcard host/*.c host/hv/*.c host/nubk/*.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
INTEG_SRC  := $(wildcard tests/integration/test_*.c)
BENCH_SRC  := $(wildcard bench/*.c)
EXAMPLES   := $(notdir $(patsubst %/,%,$(dir $(wildcard examples/*/Makefile))))

COMMON_HOST_OBJ  := $(COMMON_SRC:%.c=$(B)/host/%.o)
COMMON_GUEST_OBJ := $(COMMON_SRC:%.c=$(B)/guest/%.o)
SDK_OBJ          := $(patsubst %,$(B)/guest/%.o,$(basename $(SDK_SRC)))
GUEST_ELFS       := $(GUEST_NAMES:%=$(B)/guests/%.elf)
HOST_OBJ         := $(HOST_SRC:%.c=$(B)/host/%.o)
UNIT_BIN         := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/unit/%)
INTEG_BIN        := $(INTEG_SRC:tests/integration/%.c=$(B)/tests/integration/%)
BENCH_BIN        := $(BENCH_SRC:bench/%.c=$(B)/bench/%)

LIBNUB_A      := $(B)/libnub.a
LIBNUB_SO     := $(B)/libnub.so
LIBNUBGUEST_A := $(B)/libnubguest.a

.PHONY: all test unit integration asan asan-build kvm-test kvm-bench bench fuzz fuzz-build fuzz-seeds install clean headers-check outside-check exports-check
# `all` needs only the build dependencies (tools/deps.sh); tests and benchmarks
# also need libcriterion-dev and libsodium-dev (tools/deps.sh test).
all: $(LIBNUB_A) $(LIBNUB_SO) $(LIBNUBGUEST_A) $(GUEST_ELFS) $(B)/nub $(B)/nub.1 $(B)/nub.pc $(B)/nubguest.pc

# Objects depend on the compiler command they were built with: $(B)/.flags-host
# and $(B)/.flags-guest change only when that command does, so a changed
# CC, OPT or EXTRA_CFLAGS rebuilds what it affects instead of linking stale objects.
$(B)/.flags-host: FORCE
	@mkdir -p $(dir $@)
	@echo '$(CC) $(HOST_CFLAGS)' | cmp -s - $@ || echo '$(CC) $(HOST_CFLAGS)' > $@
$(B)/.flags-guest: FORCE
	@mkdir -p $(dir $@)
	@echo '$(CC) $(GUEST_CFLAGS)' | cmp -s - $@ || echo '$(CC) $(GUEST_CFLAGS)' > $@
.PHONY: FORCE
FORCE:

$(B)/host/%.o: %.c $(B)/.flags-host
	@mkdir -p $(dir $@)
	$(CC) $(HOST_CFLAGS) -MMD -MP -c $< -o $@

$(B)/guest/%.o: %.c $(B)/.flags-guest
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_CFLAGS) -MMD -MP -c $< -o $@

$(B)/guest/%.o: %.S $(B)/.flags-guest
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_CFLAGS) -MMD -MP -c $< -o $@

# Each guests/NAME/ folder links into build/guests/NAME.elf against the SDK.
.SECONDEXPANSION:
GUEST_OBJ := $(patsubst %.c,$(B)/guest/%.o,$(wildcard guests/*/*.c))
.SECONDARY: $(GUEST_OBJ)
$(B)/guests/%.elf: $$(addprefix $(B)/guest/,$$(addsuffix .o,$$(basename $$(wildcard guests/$$*/*.c)))) $(LIBNUBGUEST_A) guest/nub.ld
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_LDFLAGS) -o $@ $(filter %.o,$^) $(LIBNUBGUEST_A)

$(LIBNUB_A): $(COMMON_HOST_OBJ) $(HOST_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

$(LIBNUB_SO): $(COMMON_HOST_OBJ) $(HOST_OBJ)
	$(CC) -shared -Wl,-soname,libnub.so.0 -o $@ $^ $(LDLIBS_HOST)

$(LIBNUBGUEST_A): $(COMMON_GUEST_OBJ) $(SDK_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

# The CLI (tools/*.c). Its --help pages and its man page come from one text, tools/nub.help.
# (Makefile: VERSION is compiled in; the rule wins over $(B)/host/%.o by its shorter stem.)
CLI_OBJ := $(patsubst %.c,$(B)/host/%.o,$(wildcard tools/*.c))
$(B)/host/tools/%.o: tools/%.c $(B)/.flags-host Makefile
	@mkdir -p $(dir $@)
	$(CC) $(HOST_CFLAGS) -I$(B)/tools -DNUB_VERSION='"$(VERSION)"' -MMD -MP -c $< -o $@
$(B)/host/tools/nub.o: $(B)/tools/nub_help.h
$(B)/tools/nub_help.h: tools/nub.help tools/helpgen.awk
	@mkdir -p $(dir $@)
	awk -v mode=c -f tools/helpgen.awk tools/nub.help > $@.tmp && mv $@.tmp $@
$(B)/nub.1: tools/nub.help tools/helpgen.awk Makefile
	@mkdir -p $(dir $@)
	awk -v mode=man -v version='$(VERSION)' -f tools/helpgen.awk tools/nub.help > $@.tmp && mv $@.tmp $@
$(B)/nub: $(CLI_OBJ) $(LIBNUB_A)
	$(CC) $(HOST_CFLAGS) -o $@ $(CLI_OBJ) $(LIBNUB_A) $(LDLIBS_HOST)

$(B)/tests/unit/%: tests/unit/%.c $(LIBNUB_A)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -MMD -MP $< -o $@ $(LIBNUB_A) $(LDLIBS_TEST) $(LDLIBS_HOST)

$(B)/tests/integration/%: tests/integration/%.c $(LIBNUB_A)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -DNUB_GUEST_DIR_DEFAULT='"$(abspath $(B))/guests"' -DNUB_SRC_DIR='"$(CURDIR)"' -MMD -MP $< -o $@ \
	  $(LIBNUB_A) $(LDLIBS_TEST) $(LDLIBS_$*) $(LDLIBS_HOST)

$(B)/bench/%: bench/%.c $(LIBNUB_A)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -O3 -DNUB_GUEST_DIR_DEFAULT='"$(abspath $(B))/guests"' -MMD -MP $< -o $@ \
	  $(LIBNUB_A) -lsodium -lpthread -lm $(LDLIBS_HOST)

$(B)/nub.pc: Makefile
	@mkdir -p $(dir $@)
	printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: nub\nDescription: embeddable micro-VM sandbox\nVersion: %s\nLibs: -L$${libdir} -lnub\nLibs.private: %s\nCflags: -I$${includedir}\n' \
	  '$(PREFIX)' '$(VERSION)' '$(LDLIBS_HOST)' > $@

# Guests outside the tree: cc $(pkg-config --cflags nubguest) -c g.c && cc -o g.elf g.o $(pkg-config --libs nubguest)
$(B)/nubguest.pc: Makefile
	@mkdir -p $(dir $@)
	printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\ndatadir=$${prefix}/share/nub\n\nName: nubguest\nDescription: nub guest SDK: freestanding x86-64 guests for libnub\nVersion: %s\nLibs: %s -Wl,-T,$${datadir}/nub.ld -L$${libdir} -lnubguest\nCflags: -I$${includedir} %s\n' \
	  '$(PREFIX)' '$(VERSION)' '$(GUEST_ARCH_LDFLAGS)' '$(GUEST_ARCH_CFLAGS)' > $@

# The sanitizer build: the same tests with ASan + UBSan, in $(B)/asan.
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
ASAN_B     := $(B)/asan
ASAN_BIN   := $(UNIT_BIN:$(B)/%=$(ASAN_B)/%) $(INTEG_BIN:$(B)/%=$(ASAN_B)/%)

unit: $(UNIT_BIN)
	@tests/run.sh $(UNIT_BIN)

integration: $(INTEG_BIN) $(GUEST_ELFS)
	@tests/run.sh $(INTEG_BIN)

asan-build:
	@$(MAKE) --no-print-directory B=$(ASAN_B) EXTRA_CFLAGS='$(ASAN_FLAGS)' \
	  $(ASAN_BIN) $(ASAN_B)/nub $(ASAN_B)/nub.1 $(GUEST_ELFS:$(B)/%=$(ASAN_B)/%)

asan: asan-build
	@tests/run.sh $(ASAN_BIN)

# libFuzzer targets (tests/fuzz, docs/fuzzing.md): the library built with clang and
# -fsanitize=fuzzer-no-link,address,undefined into $(FUZZ_B)/libnub.a, each target
# linked with -fsanitize=fuzzer into $(FUZZ_B)/bin. Never part of libnub.so.
FUZZ_CC       ?= clang
FUZZ_SAN      := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_B        := $(B)/fuzz
FUZZ_SRC      := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN      := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_B)/bin/%)
FUZZ_SECONDS  ?= 60
LDLIBS_FUZZ_fuzz_x86len := -lcapstone

fuzz-build:
	@$(MAKE) --no-print-directory B=$(FUZZ_B) CC=$(FUZZ_CC) OPT=-O1 \
	  EXTRA_CFLAGS='$(FUZZ_SAN) -fsanitize=fuzzer-no-link' $(FUZZ_B)/libnub.a
	@$(MAKE) --no-print-directory $(FUZZ_BIN)

$(FUZZ_B)/bin/%: tests/fuzz/%.c tests/fuzz/fuzz.h $(FUZZ_B)/libnub.a
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=c11 -O1 -g $(WARN) -Iinclude -Icommon -Ihost -D_GNU_SOURCE $(FUZZ_SAN) \
	  -fsanitize=fuzzer $< -o $@ $(FUZZ_B)/libnub.a $(LDLIBS_FUZZ_$*) $(LDLIBS_HOST)

# Regenerate the hand-made seeds in tests/fuzz/corpus (committed) and add the
# stripped guests as ELF seeds.
fuzz-seeds: $(LIBNUB_A) $(GUEST_ELFS)
	@mkdir -p $(B)/tests/fuzz tests/fuzz/corpus/elf
	$(CC) $(TEST_CFLAGS) tests/fuzz/mkseeds.c -o $(B)/tests/fuzz/mkseeds $(LIBNUB_A) $(LDLIBS_HOST)
	$(B)/tests/fuzz/mkseeds tests/fuzz/corpus $(B)/guests/bare.elf
	for g in $(GUEST_NAMES); do strip --strip-all -o tests/fuzz/corpus/elf/guest-$$g $(B)/guests/$$g.elf; done

# Each target for FUZZ_SECONDS seconds on its corpus; fails on a crash, leak or
# timeout and leaves the reproducer in $(FUZZ_B)/crashes/TARGET/.
fuzz: fuzz-build
	@tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BIN)

# The integration suite on kvm, inside Debian's kernel under QEMU (tests/kvm/run.sh).
kvm-test: all $(INTEG_BIN)
	@bash tests/kvm/run.sh

# The benchmarks on kvm inside QEMU (nested-emulation figures: only ratios mean anything).
kvm-bench: all $(INTEG_BIN) $(BENCH_BIN)
	@NUB_KVM_BENCH=1 bash tests/kvm/run.sh

# Each public header alone and together, as C11 and C++17 (tests/headers/run.sh).
headers-check:
	@CC='$(CC)' CXX='$(CXX)' tests/headers/run.sh

# libnub.so exports exactly the functions the public headers declare (tests/exports/run.sh).
exports-check: $(LIBNUB_SO)
	@CC='$(CC)' tests/exports/run.sh $(LIBNUB_SO)

# make install into a temporary prefix, then build and run a guest from there with gcc and
# clang, and every example from its installed copy, checking its output.
outside-check: all
	@MAKE='$(MAKE)' tests/outside/run.sh

# Everything: unit, integration (emu), the ASan build, a fuzz smoke, then kvm inside QEMU.
test: all $(UNIT_BIN) $(INTEG_BIN) $(BENCH_BIN) asan-build fuzz-build headers-check outside-check exports-check
	@tests/all.sh $(UNIT_BIN) $(INTEG_BIN) $(ASAN_BIN)

bench: all $(BENCH_BIN)

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/nub $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 $(LIBNUB_A) $(LIBNUBGUEST_A) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(LIBNUB_SO) $(DESTDIR)$(PREFIX)/lib/libnub.so.$(VERSION)
	ln -sf libnub.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libnub.so.0
	ln -sf libnub.so.0 $(DESTDIR)$(PREFIX)/lib/libnub.so
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/nub
	install -m 755 $(B)/nub $(DESTDIR)$(PREFIX)/bin/
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 && install -m 644 $(B)/nub.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 guest/nub.ld $(GUEST_ELFS) $(DESTDIR)$(PREFIX)/share/nub/
	install -m 644 include/nub/*.h $(DESTDIR)$(PREFIX)/include/nub/
	sed 's|^prefix=.*|prefix=$(PREFIX)|' $(B)/nub.pc > $(DESTDIR)$(PREFIX)/lib/pkgconfig/nub.pc
	sed 's|^prefix=.*|prefix=$(PREFIX)|' $(B)/nubguest.pc > $(DESTDIR)$(PREFIX)/lib/pkgconfig/nubguest.pc
	install -m 644 guests/testguest/testguest.h $(DESTDIR)$(PREFIX)/include/nub/
	install -d $(DESTDIR)$(PREFIX)/share/doc/nub $(DESTDIR)$(PREFIX)/share/nub/template
	install -m 644 README.md docs/*.md $(DESTDIR)$(PREFIX)/share/doc/nub/
	install -m 644 examples/template/guest.c examples/template/Makefile $(DESTDIR)$(PREFIX)/share/nub/template/
	for d in $(EXAMPLES); do install -d $(DESTDIR)$(PREFIX)/share/doc/nub/examples/$$d && \
	  install -m 644 examples/$$d/* $(DESTDIR)$(PREFIX)/share/doc/nub/examples/$$d/ || exit 1; done
	install -m 644 examples/README.md $(DESTDIR)$(PREFIX)/share/doc/nub/examples/

clean:
	rm -rf $(B)

-include $(shell find $(B) -name '*.d' -type f 2>/dev/null)
