# JambaCluster: build, test, demo and benchmarks. Every target installs missing system libraries first.
SWIFT ?= swift
MODEL ?= models/kjv-jamba-mini
PROMPT ?= And God said
WORKERS ?= 2
MAX_TOKENS ?= 60
BENCH_MODEL ?= .bench-model

.PHONY: deps build release test demo bench bench-balance clean

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

# A local cluster (coordinator + $(WORKERS) workers) on the bundled model answers $(PROMPT), then stops.
demo: deps
	MODEL="$(MODEL)" PROMPT="$(PROMPT)" WORKERS="$(WORKERS)" MAX_TOKENS="$(MAX_TOKENS)" tools/demo.sh

# Throughput against this machine's measured limits, single-process and through a loopback cluster (bench/).
# The bench model (1.7 GB, random weights) is made by transformers: pip install torch transformers.
# llama.cpp's f16 figures are re-measured first when tools/bench/run_llamacpp.sh has built it, so the bf16 target
# compares against a run minutes apart on the same machine; the other references stay as last measured.
bench: release
	[ -f $(BENCH_MODEL)/config.json ] || python3 tools/bench/make_bench_model.py $(BENCH_MODEL)
	if [ -x .build-llamacpp/build/bin/llama-bench ]; then UPDATE=1 DTYPES=f16 MAX_WAIT=30 bash tools/bench/run_llamacpp.sh bench; fi
	.build/release/jamba bench --model $(BENCH_MODEL) --threads 2 --dtypes bf16,f32 --cluster-dtypes f32,bf16 --out bench/results
	# bf16 b1 against llama.cpp f16 in interleaved pairs (the separate llama.cpp run above is minutes away), then the
	# targets are rendered again with their ratio.
	if [ -x .build-llamacpp/build/bin/llama-bench ]; then python3 tools/bench/interleave.py --pairs 5 --batches 1,8 && \
	  .build/release/jamba bench --model $(BENCH_MODEL) --render-only --out bench/results; fi
	[ -f /tmp/tokenizer-bench/tokenizer.json ] || { tools/ensure-deps.sh --with-bible && python3 tools/tokenizer-bench/make_tokenizer.py --out /tmp/tokenizer-bench; }
	.build/release/jamba bench-tokenizer --tokenizer /tmp/tokenizer-bench/tokenizer.json \
	  --text /tmp/tokenizer-bench/kjv.txt,/tmp/tokenizer-bench/python.txt --out bench/tokenizer

# Expert balancing under Zipf-skewed routing: round-robin placement vs rebalanced (bench/balance.*).
bench-balance: release
	[ -f .bench-skewed/config.json ] || python3 tools/skew/make_skewed_model.py Tests/Fixtures/tiny-b .bench-skewed
	.build/release/jamba bench-balance --model .bench-skewed --workers 4 --spare-slots 0.25 --out bench/balance

clean:
	rm -rf .build
