#!/usr/bin/env bash
# `make demo`: a real cluster on this machine and the whole story, each step's command printed
# so it can be typed by hand. Idempotent: a second run reuses the server, images and objects.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA_DIR=${1:-/var/lib/dockyard-demo}
RUN_DIR=${DEMO_RUN_DIR:-/run/dockyard-demo}
PORT=${DEMO_PORT:-16443}
HOST_PORT=${DEMO_HOST_PORT:-8080}
BRIDGE=dydemo0
POD_CIDR=10.89.0.0/16
DY=dockyard  # .venv/bin is first on PATH below, so the printed commands read as typed
export KUBECONFIG="$DATA_DIR/kubeconfig"
export PATH="$PWD/.venv/bin:$PATH"

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '\033[36m$ %s\033[0m\n' "$*"; "$@"; }
retry() {  # retry N CMD...: run CMD until it succeeds, at most N times a second apart
  local n=$1; shift
  for _ in $(seq "$n"); do "$@" && return 0; sleep 1; done
  "$@"
}

server_ready() {
  [ -f "$DATA_DIR/server.pid" ] && kill -0 "$(cat "$DATA_DIR/server.pid")" 2>/dev/null &&
    curl -sk --max-time 2 "https://127.0.0.1:$PORT/readyz" >/dev/null
}

start_server() {
  bold "1. Start a server with its local node (api server, scheduler, controllers, agent)"
  if server_ready; then
    echo "already running (pid $(cat "$DATA_DIR/server.pid"))"
  else
    mkdir -p "$DATA_DIR"
    echo "\$ dockyard server --data-dir $DATA_DIR --port $PORT --run-dir $RUN_DIR --bridge $BRIDGE --pod-cidr $POD_CIDR &"
    nohup "$DY" server --data-dir "$DATA_DIR" --port "$PORT" --run-dir "$RUN_DIR" \
      --bridge "$BRIDGE" --pod-cidr "$POD_CIDR" >"$DATA_DIR/server.log" 2>&1 &
    echo $! >"$DATA_DIR/server.pid"
    retry 60 server_ready
  fi
  retry 60 sh -c "$DY get nodes 2>/dev/null | grep -q ' Ready'"
  show "$DY" get nodes -o wide
}

build_images() {
  bold "2. Build the example image from examples/nginx/Dockerfile"
  show "$DY" image bootstrap debian:bookworm --data-dir "$DATA_DIR"
  show "$DY" build -t my-nginx:latest --data-dir "$DATA_DIR" examples/nginx
  show "$DY" build -t my-nginx:v2 --build-arg VERSION=v2 --data-dir "$DATA_DIR" examples/nginx
  show "$DY" images --data-dir "$DATA_DIR"
}

run_container() {
  bold "3. Run it like Docker, with a port mapped, and fetch the page"
  "$DY" rm -f hello >/dev/null 2>&1 || true
  show "$DY" run -d --name hello -p "$HOST_PORT:80" my-nginx:latest
  show retry 60 curl -fsS "http://127.0.0.1:$HOST_PORT/"
}

deploy() {
  bold "4. Deploy it with replicas, scale it"
  show "$DY" apply -f examples/nginx/deployment.yaml
  show "$DY" rollout status deployment/my-nginx --timeout 3m
  show "$DY" scale deployment/my-nginx --replicas=5
  show "$DY" rollout status deployment/my-nginx --timeout 3m
  show "$DY" get pods -o wide
}

roll() {
  bold "5. Roll out a new version, then roll it back"
  show "$DY" set image deployment/my-nginx nginx=my-nginx:v2
  show "$DY" rollout status deployment/my-nginx --timeout 3m
  show "$DY" rollout history deployment/my-nginx
  show "$DY" rollout undo deployment/my-nginx
  show "$DY" rollout status deployment/my-nginx --timeout 3m
}

restarts() {  # restarts POD: print the pod's first container's restart count
  dockyard get pod "$1" -o json | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["status"]["containerStatuses"][0]["restartCount"])'
}

heal() {
  bold "6. Kill a container and watch it restarted"
  local pods pod
  pods=$("$DY" get pods -l app=my-nginx -o name)
  pod=${pods%%$'\n'*}  # the first (not `| head -1`: under pipefail its SIGPIPE fails the step)
  pod=${pod#pod/}
  show "$DY" exec "$pod" -- sh -c 'kill 1'
  for _ in $(seq 60); do [ "$(restarts "$pod")" != 0 ] && break; sleep 1; done
  show "$DY" get pod "$pod"
}

observe() {
  bold "7. See what runs where, with what resources"
  show retry 30 "$DY" top pod
  show "$DY" top node
  show "$DY" status
}

start_server
build_images
run_container
deploy
roll
heal
observe
bold "Done. The cluster keeps running: export KUBECONFIG=$KUBECONFIG and use dockyard (or kubectl)."
echo "Stop it and remove everything with: make demo-down"
