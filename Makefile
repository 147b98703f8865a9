# xferwatch: the two commands a user needs are `make run` and `make test` (as root).
SWIFT ?= swift
CONFIG ?= ./agent.conf
# Debian packages the build, the agent and the tests need.
BUILD_PACKAGES := libaudit-dev pkg-config
TEST_PACKAGES := auditd python3-audit laurel curl iproute2

.PHONY: run test build release deps test-deps bench-replay

deps:
	@missing=$$(for p in $(BUILD_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

# Debian starts auditd on install where it can: the tests need the audit socket free.
test-deps: deps
	@missing=$$(for p in $(TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi
	@if pgrep -x auditd >/dev/null; then service auditd stop >/dev/null 2>&1 || pkill -x auditd; fi; true

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

run: release
	.build/release/xferwatchd run --config $(CONFIG)

# Tests that use the kernel audit subsystem share one serialized suite; they need root.
test: test-deps build
	$(SWIFT) test

bench-replay: test-deps release
	bench/replay
