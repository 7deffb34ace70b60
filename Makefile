# Front door to the CMake build. `make` builds build/cairn (release).
# `make run` and `make test` install missing dependencies first.
GEN := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")
PY := /usr/bin/python3
FUZZ_SECONDS ?= 10
JOBS ?= $(shell nproc)

.PHONY: all build deps run test unit integration fuzz fuzz-build fuzz-short bench format format-check asan clean docs layers

all: build

deps:
	@scripts/install-deps.sh

build:
	@cmake -S . -B build $(GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build -j $(JOBS)

run: deps build
	./build/cairn

asan:
	@cmake -S . -B build-asan $(GEN) -DCMAKE_BUILD_TYPE=Debug -DCAIRN_SANITIZE=ON -DCAIRN_TESTING=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)

unit: asan
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS)

integration: asan
	CAIRN_BIN=$(CURDIR)/build-asan/cairn CAIRN_BUILD=$(CURDIR)/build-asan \
	  $(PY) -m pytest -q -p no:cacheprovider tests/integration

fuzz-build:
	@CC=clang cmake -S . -B build-fuzz $(GEN) -DCMAKE_BUILD_TYPE=Debug -DCAIRN_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS)

fuzz-short: fuzz-build
	@scripts/run-fuzz.sh build-fuzz $(FUZZ_SECONDS)

fuzz: FUZZ_SECONDS=300
fuzz: fuzz-short

layers:
	@$(PY) scripts/check-layers.py --selftest >/dev/null
	@$(PY) scripts/check-layers.py

test: deps format-check layers unit integration fuzz-short
	@echo "make test: all passed"

bench: deps build
	@$(PY) bench/run.py $(BENCH_ARGS)

docs: build
	./build/cairn --dump-config-docs > docs/config.md

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	@clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-fuzz
