# JambaCluster: build, test, demo and benchmarks. Every target installs missing system libraries first.
SWIFT ?= swift
MODEL ?= Tests/Fixtures/tiny-b
PROMPT ?= And God said

.PHONY: deps build release test demo bench clean

deps:
	@tools/ensure-deps.sh

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# The whole suite: unit, golden and integration tests (the latter launch real daemons on loopback).
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

demo: release
	.build/release/jamba generate --model $(MODEL) --prompt "$(PROMPT)" --max-tokens 40

clean:
	rm -rf .build
