# The two set-up commands: `make run` and `make test`. Both install missing
# Debian packages, configure and build first.
BUILD ?= build
SAN_BUILD ?= build-sanitize
JOBS ?= $(shell nproc)
DEBIAN_PACKAGES := g++ cmake make pkg-config libcpp-httplib-dev liblmdb-dev lmdb-utils \
  libcurl4-openssl-dev libsimdjson-dev libboost-test-dev libsodium-dev rapidjson-dev \
  libsystemd-dev wrk

.PHONY: deps configure build run test test-sanitize bench install cross-arm64 test-arm64 clean

deps:
	@./scripts/install-deps.sh $(DEBIAN_PACKAGES)

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

configure: $(BUILD)/CMakeCache.txt

build: deps configure
	cmake --build $(BUILD) -j $(JOBS)

run: build
	mkdir -p data
	OFFBRAND_DATA_DIR=$${OFFBRAND_DATA_DIR:-./data} OFFBRAND_LISTEN=$${OFFBRAND_LISTEN:-127.0.0.1:8080} \
	  ./$(BUILD)/offbrand serve

test: build
	cd $(BUILD) && ctest --output-on-failure -j 2

test-sanitize: deps
	cmake -S . -B $(SAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DOFFBRAND_SANITIZE=ON
	cmake --build $(SAN_BUILD) -j $(JOBS)
	cd $(SAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j 2

bench: build
	./$(BUILD)/offbrand_bench --binary ./$(BUILD)/offbrand --double ./$(BUILD)/stream_double_server

install: build
	./scripts/install.sh $(BUILD)/offbrand

cross-arm64:
	./scripts/cross-arm64.sh build

test-arm64:
	./scripts/cross-arm64.sh test

clean:
	rm -rf $(BUILD) $(SAN_BUILD) build-arm64
