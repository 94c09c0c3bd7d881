#!/usr/bin/env bash
# run_llamacpp.sh: llama.cpp figures on the bench model (f32, f16, q8_0), written to bench/reference/llamacpp.json.
#
# Usage:   nice -n 10 bash tools/bench/run_llamacpp.sh [all|source|build|convert|bench]   (default: all = every stage)
#
# What it does (each stage is skipped when its output already exists):
#   source   the llama.cpp source tree. With LLAMA_CPP_DIR=/path/to/llama.cpp (an existing checkout) that tree is
#            used as is. Otherwise it comes from PyPI: the llama-cpp-python sdist vendors the whole llama.cpp tree
#            (vendor/llama.cpp: CMake project, convert_hf_to_gguf.py, gguf-py), fetched with
#            `pip download --no-deps --no-binary llama-cpp-python llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION` and unpacked
#            (only that package from source: with `:all:` pip also bootstraps its build tools, cmake included, from source).
#            (A plain git clone of llama.cpp (ggml-org/llama.cpp) with LLAMA_CPP_DIR=... works the same way.)
#   build    cmake -DGGML_NATIVE=ON -DLLAMA_CURL=OFF, Release, without AMX (-mno-amx-*: its f16 path crashes at this
#            version); targets llama-bench, llama-batched-bench, llama-quantize; under `nice -n 10`, -j2.
#   convert  convert_hf_to_gguf.py --outtype f32 and f16, then `llama-quantize ... Q8_0` from the f16 file.
#            The bench model has no tokenizer (it is random weights and a config), and the converter needs one,
#            so a synthetic Llama-style BPE tokenizer.json with the model's 32000 entries is written next to
#            symlinks of the weights (tools/bench/llamacpp_bench.py tokenizer). Token ids are random in every
#            benchmark, so the tokenizer does not change any figure.
#   bench    tools/bench/llamacpp_bench.py: llama-bench (pp512 and tg128, batch 1) and llama-batched-bench
#            (32-token prompts, 128 new tokens, 1/8/32 parallel sequences) per dtype, 2 threads, each command in
#            its own process with its peak RSS; writes bench/reference/llamacpp.json.
#
# Needs: cmake, gcc/g++ (apt-get install -y cmake build-essential), python3 with numpy torch safetensors
# transformers tokenizers pyyaml tqdm requests (the converter; gguf itself is taken from the tree's gguf-py),
# pip (for the source stage), ~4 GB free disk (GGUF files: f32 1.7 GB, f16 0.85 GB, q8_0 0.45 GB).
# The model dir defaults to .bench-model/ (python3 tools/bench/make_bench_model.py makes it).
#
# Environment:
#   MODEL_DIR                 HF model dir (default: <repo>/.bench-model)
#   LLAMA_CPP_DIR             existing llama.cpp source tree (skips the PyPI download)
#   LLAMA_CPP_PYTHON_VERSION  llama-cpp-python sdist to take the source from (default 0.3.36 = llama.cpp 0c1e570)
#   WORK_DIR                  build products, GGUF files (default: <repo>/.build-llamacpp, git-ignored by .build-*/)
#   OUT_JSON                  default <repo>/bench/reference/llamacpp.json
#   REPEATS                   llama-bench repetitions, and processes per llama-batched-bench case (default 3)
#   MAX_WAIT                  before each benchmark process, wait up to this many s for the machine to go quiet
#                             (other processes < 0.25 cores; default 60, 0 = don't wait). The JSON records how busy
#                             the rest of the machine was during each run (other_processes_cpu_cores).
#   MAX_TRIES                 a process during which the rest of the machine used > 0.3 cores is run again, up to
#                             this many times in all (default 4); the quietest attempt is kept.
#   DTYPES                    default "f32 f16 q8_0"
#   UPDATE=1                  keep the dtypes already in OUT_JSON that this run does not measure (re-run one dtype:
#                             UPDATE=1 DTYPES=f32 bash tools/bench/run_llamacpp.sh bench)
# Do not run this next to another benchmark: the machine has 2 cores and the figures use both.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
MODEL_DIR="${MODEL_DIR:-$REPO/.bench-model}"
WORK_DIR="${WORK_DIR:-$REPO/.build-llamacpp}"
LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
OUT_JSON="${OUT_JSON:-$REPO/bench/reference/llamacpp.json}"
DTYPES="${DTYPES:-f32 f16 q8_0}"
BUILD_DIR="$WORK_DIR/build"
GGUF_DIR="$WORK_DIR/gguf"
PY="${PYTHON:-python3}"
STAGE="${1:-all}"

log() { echo "[run_llamacpp] $*" >&2; }

stage_source() {
    if [[ -n "${LLAMA_CPP_DIR:-}" ]]; then
        [[ -f "$LLAMA_CPP_DIR/CMakeLists.txt" && -f "$LLAMA_CPP_DIR/convert_hf_to_gguf.py" ]] \
            || { log "LLAMA_CPP_DIR=$LLAMA_CPP_DIR is not a llama.cpp tree"; exit 1; }
        SOURCE_DESC="LLAMA_CPP_DIR=$LLAMA_CPP_DIR"
        return
    fi
    local src="$WORK_DIR/src"
    LLAMA_CPP_DIR="$src/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
    SOURCE_DESC="PyPI sdist llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION, vendor/llama.cpp"
    if [[ ! -f "$LLAMA_CPP_DIR/CMakeLists.txt" ]]; then
        mkdir -p "$src"
        log "downloading the llama-cpp-python $LLAMA_CPP_PYTHON_VERSION sdist from PyPI"
        "$PY" -m pip download --no-deps --no-binary llama-cpp-python "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$src"
        tar -xzf "$src/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz" -C "$src"
    fi
    # Jamba support: both the converter (JambaForCausalLM) and the C++ model (LLM_ARCH_JAMBA) are needed.
    grep -rqs "JambaForCausalLM" "$LLAMA_CPP_DIR/convert_hf_to_gguf.py" "$LLAMA_CPP_DIR/conversion" \
        || { log "this llama.cpp has no JambaForCausalLM in its converter (too old?)"; exit 1; }
    grep -qs "LLM_ARCH_JAMBA" "$LLAMA_CPP_DIR/src/llama-arch.cpp" \
        || { log "this llama.cpp has no LLM_ARCH_JAMBA"; exit 1; }
}

stage_build() {
    if [[ -x "$BUILD_DIR/bin/llama-bench" && -x "$BUILD_DIR/bin/llama-batched-bench" \
          && -x "$BUILD_DIR/bin/llama-quantize" ]]; then
        log "build exists: $BUILD_DIR/bin"
        return
    fi
    command -v cmake >/dev/null || { log "cmake missing: apt-get install -y cmake"; exit 1; }
    log "configuring $LLAMA_CPP_DIR -> $BUILD_DIR"
    # Without AMX even where the CPU has it: at this llama.cpp version its AMX f16 matmul segfaults in
    # llama-batched-bench at 8 sequences (seen on a Xeon with amx_bf16/amx_int8, 2026-12-05), and our engine does
    # not use AMX either. GCC keeps an explicit -mno-* against -march=native.
    local no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    nice -n 10 cmake -S "$LLAMA_CPP_DIR" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
        -DCMAKE_C_FLAGS="$no_amx" -DCMAKE_CXX_FLAGS="$no_amx" \
        -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF
    log "building (nice -n 10, -j2)"
    nice -n 10 cmake --build "$BUILD_DIR" --config Release -j2 \
        --target llama-bench llama-batched-bench llama-quantize
}

stage_convert() {
    mkdir -p "$GGUF_DIR"
    local hf="$WORK_DIR/hf-model"
    [[ -f "$MODEL_DIR/config.json" ]] || { log "no model at $MODEL_DIR (python3 tools/bench/make_bench_model.py)"; exit 1; }
    mkdir -p "$hf"
    for f in "$MODEL_DIR"/*.json "$MODEL_DIR"/*.safetensors; do ln -sf "$(readlink -f "$f")" "$hf/"; done
    [[ -f "$hf/tokenizer.json" ]] || "$PY" "$HERE/llamacpp_bench.py" tokenizer "$hf"
    for t in f32 f16; do
        if [[ ! -s "$GGUF_DIR/bench-$t.gguf" ]]; then
            log "converting to $t"
            PYTHONPATH="$LLAMA_CPP_DIR/gguf-py${PYTHONPATH:+:$PYTHONPATH}" nice -n 10 "$PY" \
                "$LLAMA_CPP_DIR/convert_hf_to_gguf.py" "$hf" --outtype "$t" --outfile "$GGUF_DIR/bench-$t.gguf.tmp"
            mv "$GGUF_DIR/bench-$t.gguf.tmp" "$GGUF_DIR/bench-$t.gguf"
        fi
    done
    if [[ ! -s "$GGUF_DIR/bench-q8_0.gguf" ]]; then
        log "quantizing to q8_0"
        nice -n 10 "$BUILD_DIR/bin/llama-quantize" "$GGUF_DIR/bench-f16.gguf" "$GGUF_DIR/bench-q8_0.gguf.tmp" Q8_0 2
        mv "$GGUF_DIR/bench-q8_0.gguf.tmp" "$GGUF_DIR/bench-q8_0.gguf"
    fi
}

stage_bench() {
    log "benchmarking ($DTYPES), writing $OUT_JSON"
    "$PY" "$HERE/llamacpp_bench.py" bench --bin "$BUILD_DIR/bin" --gguf-dir "$GGUF_DIR" --dtypes $DTYPES \
        --repeats "${REPEATS:-3}" --max-wait "${MAX_WAIT:-60}" --max-tries "${MAX_TRIES:-4}" ${UPDATE:+--update} --source "$SOURCE_DESC" --llama-cpp-dir "$LLAMA_CPP_DIR" --out "$OUT_JSON"
}

case "$STAGE" in
    source)  stage_source ;;
    build)   stage_source; stage_build ;;
    convert) stage_source; stage_build; stage_convert ;;
    bench)   stage_source; stage_bench ;;
    all)     stage_source; stage_build; stage_convert; stage_bench ;;
    *) echo "usage: $0 [all|source|build|convert|bench]" >&2; exit 2 ;;
esac
