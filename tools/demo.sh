#!/usr/bin/env bash
# demo.sh: the first-run demo: builds in release, starts a coordinator and 2 workers on the bundled model,
# streams an answer to a prompt through the cluster, shows where the tokens went, and stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-models/kjv-jamba-mini}
PROMPT=${PROMPT:-And God said}
WORKERS=${WORKERS:-2}
MAX_TOKENS=${MAX_TOKENS:-60}
CLIENT_PORT=${CLIENT_PORT:-7400}
WORKER_PORT=${WORKER_PORT:-7401}
B=.build/release
export JAMBA_RUN_DIR=${JAMBA_RUN_DIR:-$PWD/.jamba-run/demo}

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
cleanup() { deploy/local-cluster.sh stop >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'echo; echo "interrupted: stopping the cluster"; exit 130' INT TERM

step "checking system libraries (libzmq, OpenBLAS)"
tools/ensure-deps.sh
step "building in release (first time: a few minutes)"
swift build -c release 2>&1 | grep -E "error|warning: unre|Compiling|Build" | tail -n 3
step "starting a local cluster: 1 coordinator + $WORKERS expert workers on $MODEL"
deploy/local-cluster.sh start --workers "$WORKERS" --model "$MODEL" --client-port "$CLIENT_PORT" --worker-port "$WORKER_PORT" --bin "$B"
step "submitting \"$PROMPT\" (greedy, $MAX_TOKENS new tokens), streaming the answer"
printf '%s' "$PROMPT"
"$B/jamba" submit --coordinator "tcp://127.0.0.1:$CLIENT_PORT" --prompt "$PROMPT" --max-tokens "$MAX_TOKENS" --temperature 0
step "cluster status: experts per worker, tokens routed per expert, throughput"
"$B/jamba" status --coordinator "tcp://127.0.0.1:$CLIENT_PORT"
step "stopping the cluster"
cleanup
trap - EXIT
echo "done: no process left behind."
echo
echo "Try next:"
echo "  your own prompt:   make demo PROMPT=\"In the beginning\"   (or: MAX_TOKENS=100, temperature via jamba submit --temperature 0.8 --seed 1)"
echo "  more workers:      make demo WORKERS=4   (or start more with deploy/local-cluster.sh and watch them take experts)"
echo "  inspect a cluster: deploy/local-cluster.sh start && .build/release/jamba status --coordinator tcp://127.0.0.1:7400 --json"
