# dnsd — build, test, demo and benchmarks. Every target installs what it needs.
SHELL := /bin/bash
export PATH := $(PATH):/opt/swift/usr/bin

APT_PACKAGES := bind9-dnsutils dnsperf dnsmasq-base ldnsutils libldns-dev libmnl-dev \
                libcurl4-openssl-dev busybox-static nftables iproute2 util-linux gcc curl \
                etcd-server etcd-client dpkg-dev \
                podman runc conmon containerd containernetworking-plugins uidmap docker.io
RELEASE_BIN := .build/release/dnsd
## The package's version: BuildInfo.version, the one place it is kept.
VERSION := $(shell sed -n 's/.*static let version = "\(.*\)"/\1/p' Sources/BuildInfo/BuildInfo.swift)
DEB := dist/dnsd_$(VERSION)_amd64.deb

.PHONY: all deps build release deb test-package test fuzz demo demo-podman demo-docker bench bench-dns bench-hosts bench-attach bench-converge bench-noisy bench-scale bench-cli bench-cni bench-concurrency bench-docker bench-fleet clean-test-leftovers clean

all: build

## Install the Debian packages the build, tests and benchmarks use (apt-get update once, only
## when something is missing).
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@command -v swift >/dev/null || { echo "swift not found (expected in /opt/swift/usr/bin)"; exit 1; }

build: deps
	swift build

## Release builds link the Swift runtime and Foundation statically: a client process (`dnsd run`,
## `dnsd ps`) then starts in ~11 ms instead of ~17 (bench/cli.sh).
release: deps
	swift build -c release -Xswiftc -static-stdlib

## Unit, namespace and end-to-end tests, then the real-runtime tests and the fault tests one at a time (root: they create network namespaces), then the
## noisy-neighbour check (fails on a lost query; prints its latency bar). Lines starting FIGURE
## are the measured figures.
test: deps clean-test-leftovers
	@[ "$$(id -u)" = 0 ] || { echo "make test needs root (network namespaces)"; exit 1; }
	swift build --build-tests
	set -o pipefail; swift test --skip-build --skip FaultTests --skip RuntimeTests 2>&1 | tee .build/test.log
	@# Real podman, containerd and dockerd: heavy, so on their own, one suite at a time.
	set -o pipefail; swift test --skip-build --filter RuntimeTests --no-parallel 2>&1 | tee -a .build/test.log
	@# The fault tests have time bounds (DNS back within 1 s, catch-up within 2 s): one at a time,
	@# not beside other suites deleting hundreds of namespaces (the kernel's teardown holds rtnl).
	set -o pipefail; swift test --skip-build --filter FaultTests --no-parallel 2>&1 | tee -a .build/test.log
	@echo "== figures"; grep -h '^FIGURE' .build/test.log || true
	ROUNDS=3 bench/noisy.sh .build/debug/dnsd
	@$(MAKE) --no-print-directory clean-test-leftovers
	@$(MAKE) --no-print-directory test-package

## The package: release binaries (Swift runtime linked in), the service unit, the config file,
## man pages (ArgumentParser's generate-manual plugin) and shell completions, by dpkg-deb.
deb: release
	swift build --product generate-manual
	scripts/mkdeb.sh .build/release $(VERSION) dist

## Installs the package on this machine (refusing if a dnsd package is installed already),
## runs the story on two simulated hosts with /opt/swift hidden, upgrades, purges.
test-package: deb
	@[ "$$(id -u)" = 0 ] || { echo "make test-package needs root"; exit 1; }
	scripts/test-package.sh $(DEB)

## A long fuzz run of the DNS query path and the store decoders (5M mutated packets;
## DNSD_FUZZ_ITERATIONS to change), optimised, with @testable imports enabled, in its own build
## folder; then the same corpus once under AddressSanitizer (200k inputs, its own build folder).
fuzz: deps
	swift build -c release --build-tests -Xswiftc -enable-testing --scratch-path .build-fuzz
	DNSD_FUZZ_ITERATIONS=$${DNSD_FUZZ_ITERATIONS:-5000000} swift test -c release -Xswiftc -enable-testing \
	  --scratch-path .build-fuzz --skip-build --filter FuzzTests
	swift build --build-tests --sanitize=address --scratch-path .build-asan
	LSAN_OPTIONS=suppressions=$(CURDIR)/scripts/lsan.supp DNSD_FUZZ_ITERATIONS=$${DNSD_ASAN_FUZZ_ITERATIONS:-200000} \
	  DNSD_STORE_FUZZ_ITERATIONS=40000 swift test --sanitize=address --scratch-path .build-asan --skip-build --filter FuzzTests

## The user's story, end to end, on this machine; removes everything it made.
demo: release
	@[ "$$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces)"; exit 1; }
	scripts/demo.sh $(RELEASE_BIN)

## The CNI story: podman on two simulated hosts and containerd (ctr run --cni) on one, names by
## dnsd across hosts; removes everything it made.
demo-podman: release
	@[ "$$(id -u)" = 0 ] || { echo "make demo-podman needs root (network namespaces, runtimes)"; exit 1; }
	scripts/demo-podman.sh $(RELEASE_BIN)

## The Docker story: dockerd 20.10 on two simulated hosts with dnsd as its network and IPAM
## driver; names across hosts; removes everything it made.
demo-docker: release
	@[ "$$(id -u)" = 0 ] || { echo "make demo-docker needs root (network namespaces, dockerd)"; exit 1; }
	scripts/demo-docker.sh $(RELEASE_BIN)

## The resolver alone in one sandbox (dnsd serve-dns).
demo-resolver: release
	scripts/demo-resolver.sh $(RELEASE_BIN)

## Benchmarks (DESIGN.md §6). Each prints its figures and ratios against the peers.
bench: bench-dns bench-hosts bench-attach bench-converge bench-noisy bench-scale bench-cli bench-cni bench-concurrency bench-docker bench-fleet

bench-dns: release
	bench/dns.sh $(RELEASE_BIN)

bench-hosts: release
	bench/hosts.sh

bench-attach: release
	bench/attach.sh

bench-converge: release
	bench/converge.sh $(RELEASE_BIN)

bench-noisy: release
	bench/noisy.sh $(RELEASE_BIN)

bench-scale: release
	bench/scale.sh $(RELEASE_BIN)

bench-cli: release
	bench/cli.sh $(RELEASE_BIN)

bench-cni: release
	bench/cni.sh $(RELEASE_BIN)

bench-concurrency: release
	bench/concurrency.sh $(RELEASE_BIN)

bench-docker: release
	bench/docker.sh $(RELEASE_BIN)

bench-fleet: release
	bench/fleet.sh $(RELEASE_BIN)

## What test runs that died left behind (their namespaces, files, links and processes, found by
## their run token), and nothing of a run or benchmark still going: scripts/sweep-test-runs.sh.
clean-test-leftovers:
	@scripts/sweep-test-runs.sh

clean:
	rm -rf .build
