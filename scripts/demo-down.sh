#!/usr/bin/env bash
# `make demo-down`: stop the demo server and remove everything it made (workloads,
# containers, sandboxes, network, mounts, data dir).
set -uo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${1:-/var/lib/dockyard-demo}
RUN_DIR=${DEMO_RUN_DIR:-/run/dockyard-demo}
DY="$PWD/.venv/bin/dockyard"
export KUBECONFIG="$DATA_DIR/kubeconfig"

if [ -f "$DATA_DIR/server.pid" ] && kill -0 "$(cat "$DATA_DIR/server.pid")" 2>/dev/null; then
  pid=$(cat "$DATA_DIR/server.pid")
  echo "stopping dockyard server (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
fi
rm -f "$DATA_DIR/server.pid"
"$DY" node reset --data-dir "$DATA_DIR" --run-dir "$RUN_DIR" --bridge dydemo0 --pod-cidr 10.89.0.0/16
rm -rf "$RUN_DIR"
echo "demo removed; the image cache in $DATA_DIR is kept (rm -rf $DATA_DIR to drop it)"
