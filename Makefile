# xferwatch: the two commands a user needs are `make run` and `make test` (as root).
SWIFT ?= swift
# make run's configuration: the shipped agent.conf with this tree's YARA rules in place of
# /etc/xferwatch/yara, so a checkout runs everything the package runs (.build/run/agent.conf).
RUN_CONFIG := .build/run/agent.conf
CONFIG ?= $(RUN_CONFIG)
# Debian packages the build, the agent and the tests need.
BUILD_PACKAGES := libaudit-dev libpcre2-dev libyara-dev libssl-dev libcap-dev libpcap-dev pkg-config
# Real servers and clients for the end-to-end tests (Tests/support/transfer-lab, syslog-receiver),
# python3-jsonschema to check agentctl status --json against its schema, groff to check the man pages,
# bash-completion, fish and zsh to complete with what the package installs.
TEST_PACKAGES := lintian auditd python3-audit laurel curl iproute2 vsftpd tftpd-hpa tftp-hpa openssh-server openssh-client \
	tnftp lftp busybox bsdutils gcc libc6-dev rsyslog rsyslog-gnutls rsyslog-relp openssl python3-jsonschema python3-prometheus-client groff-base \
	bash-completion fish zsh microsocks socat proxychains4 samba smbclient rsync python3-paramiko php-cli ncat dante-server podman runc git

.PHONY: run test check test-asan test-tsan build release deb deps test-deps bench-replay golden lint run-config fuzz

deps:
	@missing=$$(for p in $(BUILD_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

# Installing servers must not start them on the host: without a policy of its own, the
# machine gets a temporary policy-rc.d that forbids starting services during the install.
test-deps: deps
	@missing=$$(for p in $(TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		guard=; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; guard=1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; status=$$?; \
		if [ -n "$$guard" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
		[ $$status -eq 0 ] || exit $$status; \
	fi
	@# The end-to-end tests run the agent as the package does: dropped to its system user.
	@getent passwd _xferwatch >/dev/null || adduser --system --group --quiet --home /var/lib/xferwatch --no-create-home _xferwatch
	@# The tests need the audit socket free.
	@if pgrep -x auditd >/dev/null; then service auditd stop >/dev/null 2>&1 || pkill -x auditd; fi; true

build: deps
	$(SWIFT) build

# As shipped: the Swift runtime linked in (hosts without Swift run it) and immediate binding.
RELEASE_FLAGS := --static-swift-stdlib -Xlinker -z -Xlinker now -Xlinker -z -Xlinker relro
release: deps
	$(SWIFT) build -c release $(RELEASE_FLAGS)

# The Debian package, from the release build: .build/deb/xferwatch_<version>_<arch>.deb.
deb: release
	packaging/build-deb

run-config: $(RUN_CONFIG)
$(RUN_CONFIG): agent.conf
	@mkdir -p $(dir $@)
	sed 's|"/etc/xferwatch/yara/\*\.yar"|"$(CURDIR)/rules/yara/*.yar"|' agent.conf > $@

# The agent drops to [agent] user once its rules are in: the system user the package makes.
run: release $(RUN_CONFIG)
	@getent passwd _xferwatch >/dev/null || adduser --system --group --quiet --home /var/lib/xferwatch --no-create-home _xferwatch
	.build/release/xferwatchd run --config $(CONFIG)

# Tests that use the kernel audit subsystem share one serialized suite; they need root.
# The end-to-end flow tests run the release build, as shipped, against short-lived clients.
# On failure the issues, a crashed thread's backtrace and the tests a crash cut short are
# repeated at the end, where a log's tail shows them.
# The code as .swift-format lays it out (the toolchain's swift-format): a finding fails the tests.
lint:
	$(SWIFT) format lint --recursive --strict --configuration .swift-format Sources Tests bench

# The unit tests alone: recorded data and the modules themselves, no root, no kernel audit, no
# servers (Tests/UnitTests). The edit-compile-test loop; make test runs them too.
check: deps
	$(SWIFT) test --filter UnitTests

test: lint test-deps deb
	@mkdir -p .build; { $(SWIFT) test 2>&1; echo $$? > .build/test-status; } | tee .build/test-output.txt; \
	status=$$(cat .build/test-status); \
	if [ "$$status" -ne 0 ]; then echo "--- failed expectations ---"; grep -A2 "recorded an issue" .build/test-output.txt | cut -c1-400; \
		echo "--- a crashed thread ---"; grep -A16 "crashed:$$" .build/test-output.txt | cut -c1-200; \
		echo "--- tests started and not ended ---"; \
		sed -n 's/^◇ Test \(.*\) started\.$$/\1/p' .build/test-output.txt | grep -v -e "^case passing " -e "^run$$" | sort > .build/tests-started; \
		sed -En 's/^[✔✘] Test (.*) (passed|failed) after .*/\1/p' .build/test-output.txt | sed -E 's/ with [0-9]+ test cases?$$//' | sort > .build/tests-ended; \
		comm -23 .build/tests-started .build/tests-ended; fi; \
	exit $$status

# The test suite under a sanitizer, the agent and agentctl the end-to-end tests run built with it
# too, in a build directory of its own (.build-asan, .build-tsan). Leak checking is off: the
# Swift runtime's caches live until exit and LeakSanitizer reports them.
test-asan test-tsan: test-%: lint test-deps deb
	$(SWIFT) build -c release --build-path .build-$* --sanitize=$(SANITIZER_$*) --product xferwatchd
	$(SWIFT) build -c release --build-path .build-$* --sanitize=$(SANITIZER_$*) --product agentctl
	XFERWATCH_BUILD_PATH=.build-$* ASAN_OPTIONS=detect_leaks=0 TSAN_OPTIONS=halt_on_error=1 \
		$(SWIFT) test --build-path .build-$* --sanitize=$(SANITIZER_$*)
SANITIZER_asan := address
SANITIZER_tsan := thread

bench-replay: test-deps release
	bench/replay

# Rewrites Tests/Fixtures/golden/ from the current replay output: read the diff before committing it.
golden: deps
	XFERWATCH_UPDATE_GOLDEN=1 $(SWIFT) test --filter GoldenReplayTests

# libFuzzer targets (fuzz/): packets, audit records, TOML, control requests, RELP answers, /proc and ELF notes, syslog messages, FUZZ_SECONDS each
# (default 60); fails on a crash or a hang.
fuzz: deps
	fuzz/run
