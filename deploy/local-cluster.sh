#!/usr/bin/env bash
# local-cluster.sh: starts (or stops) a development cluster on this machine: one coordinator and N workers.
#
#   deploy/local-cluster.sh start [--workers N] [--model DIR] [--client-port P] [--worker-port P] [--bin DIR]
#                                 [--threads N] [--weights-dtype f32|bf16]
#   deploy/local-cluster.sh status | stop
#
# Processes run in the background with their logs and pid files in $JAMBA_RUN_DIR (default .jamba-run/).
# `start` returns once every expert has a live holder (or fails, printing the logs' tails and stopping all).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
run_dir=${JAMBA_RUN_DIR:-$here/.jamba-run}
bin=${JAMBA_BIN:-$here/.build/release}
model=${JAMBA_MODEL:-$here/models/kjv-jamba-mini}
workers=2
client_port=7400
worker_port=7401
threads=1
dtype=f32
cmd=${1:-}
[ $# -gt 0 ] && shift
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --client-port) client_port=$2; shift 2 ;;
    --worker-port) worker_port=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --weights-dtype) dtype=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
client="tcp://127.0.0.1:$client_port"

stop_all() {
  [ -d "$run_dir" ] || return 0
  for f in "$run_dir"/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null || true
  done
  # Give them a moment to finish in-flight work, then make sure nothing is left behind.
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    alive=0
    for f in "$run_dir"/*.pid; do [ -e "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.3
  done
  for f in "$run_dir"/*.pid; do [ -e "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null || true; rm -f "$f"; done
}

case "$cmd" in
  start)
    [ -x "$bin/jamba-coordinator" ] || { echo "no $bin/jamba-coordinator: build first (swift build -c release)" >&2; exit 1; }
    [ -f "$model/config.json" ] || { echo "no model at $model" >&2; exit 1; }
    stop_all
    mkdir -p "$run_dir"
    "$bin/jamba-coordinator" --model "$model" --client-endpoint "$client" \
      --worker-endpoint "tcp://127.0.0.1:$worker_port" --min-workers "$workers" --weights-dtype "$dtype" \
      >"$run_dir/coordinator.out" 2>"$run_dir/coordinator.log" &
    echo $! >"$run_dir/coordinator.pid"
    for i in $(seq 1 "$workers"); do
      "$bin/jamba-worker" --model "$model" --coordinator "tcp://127.0.0.1:$worker_port" --name "worker-$i" \
        --threads "$threads" --weights-dtype "$dtype" >/dev/null 2>"$run_dir/worker-$i.log" &
      echo $! >"$run_dir/worker-$i.pid"
    done
    if "$bin/jamba" status --coordinator "$client" --wait-ready 60 --min-workers "$workers" --timeout 2 >/dev/null; then
      echo "cluster ready: coordinator $client, $workers worker(s); logs in $run_dir"
      exit 0
    fi
    echo "cluster did not become ready; last log lines:" >&2
    tail -n 5 "$run_dir"/*.log >&2 || true
    stop_all
    exit 1
    ;;
  status)
    exec "$bin/jamba" status --coordinator "$client"
    ;;
  stop)
    stop_all
    echo "cluster stopped"
    ;;
  *)
    sed -n '2,8p' "$0"
    exit 2
    ;;
esac
