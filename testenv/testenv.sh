#!/usr/bin/env bash
# testenv.sh -- build (once per machine) and run a loopback Kubernetes control
# plane for integration tests: etcd + kube-apiserver (+ kube-controller-manager,
# kube-scheduler, kwok and one fake node with --full). Every binary is built
# from the Go tools modules under testenv/tools (go.mod + go.sum committed).
#
#   testenv.sh build            build the binaries into the cache (no-op when cached)
#   testenv.sh cached           exit 0 when the binaries are built
#   testenv.sh up [--full]      start; --full adds kcm + scheduler + kwok + a fake node
#   testenv.sh status           exit 0 when the API server of this work dir answers
#   testenv.sh down             stop everything `up` started
#   testenv.sh bin              print the directory that holds the built binaries
#   . "$K8S_TESTENV_DIR/env"    KUBECONFIG, HELM_*, PATH for tests and the demo
#   K8S_TESTENV_APISERVER_ARGS  extra kube-apiserver flags (a test's private control
#                               plane, e.g. --watch-cache=false)
#
# Everything listens on 127.0.0.1 only. Needs go, openssl, curl, python3.
# See docs/testenv.md for the layout, the costs and how to make pods fail.
set -Eeuo pipefail

REPO_ROOT=${REPO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
TOOLS=$REPO_ROOT/testenv/tools

# ---- versions: keep in sync with testenv/tools/*/go.mod --------------------
K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
HELM_VERSION=v3.22.0
KWOK_VERSION=v0.8.0
K8S_MINOR=$(echo "$K8S_VERSION" | cut -d. -f2)

# ---- go environment: build once per machine --------------------------------
export GOTOOLCHAIN=${GOTOOLCHAIN:-local} # fail loudly instead of fetching a toolchain
export CGO_ENABLED=0
export GOFLAGS="-trimpath -buildvcs=false -mod=readonly"
CACHE_ROOT=${K8S_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k8s-testenv}
export GOMODCACHE=$CACHE_ROOT/gomod
export GOCACHE=$CACHE_ROOT/gobuild
# The stamp covers the go.sum files too, so a dependency bump rebuilds.
SUMS=$(cat "$TOOLS"/*/go.mod "$TOOLS"/*/go.sum | sha256sum | cut -c1-12)
BIN=$CACHE_ROOT/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION-kwok-$KWOK_VERSION-$SUMS

WORK=${K8S_TESTENV_DIR:-/tmp/k8s-testenv}
PKI=$WORK/pki

log() { printf '[testenv %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# timed <name> <cmd...>: runs the command under GNU time, appending wall time
# and peak RSS to the build report (the numbers docs/testenv.md quotes).
timed() {
  local name=$1; shift
  if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -f "$name: wall %es, peak RSS %M KiB" -a -o "$BIN/build-report.txt" "$@"
  else
    "$@"
  fi
}

build() {
  if [[ -f $BIN/.complete ]]; then log "binaries cached in $BIN"; return; fi
  command -v go >/dev/null || die "go is not installed; it is needed once to build the test binaries"
  mkdir -p "$BIN"
  : >"$BIN/build-report.txt"
  local t0=$SECONDS kv="" p
  # Without these the API server reports v0.0.0-master and charts that declare
  # kubeVersion refuse to install.
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    kv+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$K8S_MINOR"
    kv+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  log "building kube-apiserver, kube-controller-manager, kube-scheduler $K8S_VERSION (cold: 15-30 min)"
  (cd "$TOOLS/kube" && timed kube go build -ldflags "-s -w$kv" -o "$BIN/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler)
  log "building etcd $ETCD_VERSION"
  (cd "$TOOLS/etcd" && timed etcd go build -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3)
  log "building helm $HELM_VERSION"
  (cd "$TOOLS/helm" && timed helm go build -ldflags "-s -w \
      -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
      -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
      -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$K8S_MINOR" \
    -o "$BIN/helm" helm.sh/helm/v3/cmd/helm)
  log "building kwok $KWOK_VERSION"
  (cd "$TOOLS/kwok" && timed kwok go build -ldflags "-s -w" -o "$BIN/kwok" sigs.k8s.io/kwok/cmd/kwok)
  # kwok's Stage manifests ship inside the kwok module: copy them out.
  local kd
  kd=$(cd "$TOOLS/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  mkdir -p "$BIN/kwok-stages"
  cp "$kd"/kustomize/stage/node/fast/node-initialize.yaml \
    "$kd"/kustomize/stage/node/heartbeat/node-heartbeat.yaml \
    "$kd"/kustomize/stage/pod/fast/pod-ready.yaml \
    "$kd"/kustomize/stage/pod/fast/pod-complete.yaml \
    "$kd"/kustomize/stage/pod/fast/pod-delete.yaml \
    "$kd"/kustomize/stage/pod/chaos/pod-container-running-failed.yaml \
    "$BIN/kwok-stages/"
  chmod -R u+w "$BIN/kwok-stages"
  echo "total: $((SECONDS - t0))s" >>"$BIN/build-report.txt"
  touch "$BIN/.complete"
  log "build done in $((SECONDS - t0))s; report in $BIN/build-report.txt"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_for() { # wait_for <seconds> <description> <command...>
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then log "timeout waiting for $what (logs in $WORK/logs)"; return 1; fi
    sleep 0.5
  done
  log "$what ready"
}

gen_pki() {
  mkdir -p "$PKI"
  (
    cd "$PKI"
    local days=3650
    # A real CA: rustls rejects a self-signed leaf used as its own CA.
    openssl req -x509 -new -nodes -newkey rsa:2048 -keyout ca.key -out ca.crt -days $days \
      -subj "/CN=testenv-ca" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
    openssl req -new -nodes -newkey rsa:2048 -keyout apiserver.key -out apiserver.csr \
      -subj "/CN=kube-apiserver" 2>/dev/null
    printf '%s\n' \
      "basicConstraints=CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" \
      "subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:127.0.0.1,IP:10.0.0.1" \
      >apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -out apiserver.crt -days $days -extfile apiserver.ext 2>/dev/null
    # admin client cert: O=system:masters is cluster-admin under RBAC
    openssl req -new -nodes -newkey rsa:2048 -keyout admin.key -out admin.csr \
      -subj "/O=system:masters/CN=testenv-admin" 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=clientAuth" >admin.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -out admin.crt -days $days -extfile admin.ext 2>/dev/null
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
    openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
    chmod 600 ./*.key
  )
}

write_kubeconfig() { # write_kubeconfig <file> <server>
  local b64='base64 -w0'
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster:
    server: $2
    certificate-authority-data: $($b64 <"$PKI/ca.crt")
users:
- name: testenv-admin
  user:
    client-certificate-data: $($b64 <"$PKI/admin.crt")
    client-key-data: $($b64 <"$PKI/admin.key")
contexts:
- name: testenv
  context:
    cluster: testenv
    user: testenv-admin
    namespace: default
current-context: testenv
EOF
  chmod 600 "$1"
}

start_bg() { # start_bg <name> <cmd...>
  local name=$1
  shift
  # setsid: a Ctrl-C in the terminal that ran `up` does not kill the stack.
  setsid "$@" >"$WORK/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$WORK/pids/$name"
}

kapi() { # kapi <curl args...>: authenticated call to the test API server
  curl -fsS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$@"
}

node_schedulable() { # node_schedulable <api> <node>
  kapi "$1/api/v1/nodes/$2" | python3 -c '
import json, sys
n = json.load(sys.stdin)
ready = any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
taints = [t for t in n.get("spec", {}).get("taints", []) if t.get("effect") in ("NoSchedule", "NoExecute")]
sys.exit(0 if ready and not taints else 1)'
}

# write_kwok_config <file>: kwok's own stages (from the module) plus ours
# (testenv/kwok/*.yaml). kwok's pod-ready stage is told to leave pods that carry
# our fault label alone, so a "broken" pod never turns Ready.
write_kwok_config() {
  local out=$1 f first=1
  : >"$out"
  for f in "$BIN"/kwok-stages/*.yaml "$REPO_ROOT"/testenv/kwok/*.yaml; do
    ((first)) || echo '---' >>"$out"
    first=0
    if [[ $(basename "$f") == pod-ready.yaml ]]; then
      python3 - "$f" >>"$out" <<'PY'
import sys
text = open(sys.argv[1]).read()
marker = "    matchExpressions:\n"
assert marker in text, "kwok pod-ready stage changed shape: update testenv.sh"
print(text.replace(marker, marker
      + "    - key: '.metadata.labels[\"fault.testenv.upgrade-guard.dev/kind\"]'\n"
      + "      operator: 'DoesNotExist'\n", 1), end="")
PY
    else
      cat "$f" >>"$out"
    fi
  done
}

# start_etcd / start_apiserver read their ports from $WORK/ports so that
# `restart-apiserver` brings the API server back on the same address.
start_etcd() {
  . "$WORK/ports"
  start_bg etcd "$BIN/etcd" --name=node0 --data-dir="$WORK/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="node0=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync=true --auto-compaction-retention=1 --log-level=warn \
    --quota-backend-bytes=8589934592
  wait_for 30 etcd curl -fsS "http://127.0.0.1:$ETCD_PORT/health"
}

start_apiserver() {
  . "$WORK/ports"
  local api="https://127.0.0.1:$API_PORT"
  start_bg kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --secure-port="$API_PORT" \
    --cert-dir="$WORK/pki/apiserver-generated" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --authorization-mode=RBAC \
    --service-account-issuer="$api/" \
    --service-account-key-file="$PKI/sa.pub" \
    --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --disable-admission-plugins=ServiceAccount \
    --allow-privileged=true \
    --enable-priority-and-fairness=false \
    --max-requests-inflight=0 --max-mutating-requests-inflight=0 \
    --profiling=false ${K8S_TESTENV_APISERVER_ARGS:-}
  wait_for 120 kube-apiserver kapi "$api/readyz"
  wait_for 30 "namespace default" kapi "$api/api/v1/namespaces/default"
}

# alive <pid>: running and not a zombie (in a container whose init does not reap,
# a stopped daemon can linger as a zombie and must not be waited for).
alive() { [[ -r /proc/$1/stat ]] && [[ $(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) != Z ]]; }

stop_one() { # stop_one <name>: SIGTERM, wait up to 10 s, then SIGKILL
  local name=$1 pid
  [[ -f $WORK/pids/$name ]] || return 0
  pid=$(cat "$WORK/pids/$name")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$WORK/pids/$name"
}

up() {
  local full=0
  [[ ${1:-} == --full ]] && full=1
  build
  [[ -d $WORK/pids ]] && down # stale run from an earlier job
  rm -rf "$WORK"
  mkdir -p "$WORK"/{logs,pids,etcd,kcm-certs,sched-certs,helm}
  trap 'log "startup failed; logs in $WORK/logs"; down' ERR
  gen_pki
  printf 'ETCD_PORT=%s\nETCD_PEER_PORT=%s\nAPI_PORT=%s\n' "$(free_port)" "$(free_port)" "$(free_port)" >"$WORK/ports"
  . "$WORK/ports"
  local api="https://127.0.0.1:$API_PORT"
  start_etcd
  start_apiserver
  local kubeconfig=$WORK/kubeconfig
  write_kubeconfig "$kubeconfig" "$api"

  if ((full)); then
    local kcm_port sched_port
    kcm_port=$(free_port)
    sched_port=$(free_port)
    start_bg kube-controller-manager "$BIN/kube-controller-manager" \
      --kubeconfig="$kubeconfig" --leader-elect=false \
      --bind-address=127.0.0.1 --secure-port="$kcm_port" --cert-dir="$WORK/kcm-certs" \
      --authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics \
      --controllers='*' \
      --root-ca-file="$PKI/ca.crt" --service-account-private-key-file="$PKI/sa.key" \
      --use-service-account-credentials=false \
      --kube-api-qps=500 --kube-api-burst=1000
    start_bg kube-scheduler "$BIN/kube-scheduler" \
      --kubeconfig="$kubeconfig" --leader-elect=false \
      --bind-address=127.0.0.1 --secure-port="$sched_port" --cert-dir="$WORK/sched-certs" \
      --authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics \
      --kube-api-qps=500 --kube-api-burst=1000
    wait_for 60 kube-controller-manager curl -fsSk "https://127.0.0.1:$kcm_port/healthz"
    wait_for 60 kube-scheduler curl -fsSk "https://127.0.0.1:$sched_port/healthz"

    write_kwok_config "$WORK/kwok.yaml"
    # HOME=$WORK: kwok merges ~/.kwok/kwok.yaml when it exists.
    start_bg kwok env HOME="$WORK" "$BIN/kwok" --kubeconfig="$kubeconfig" --config="$WORK/kwok.yaml" \
      --manage-all-nodes=true --cidr=10.244.0.0/16 --node-ip=10.1.0.1
    # One fake node; kwok's node-initialize stage fills its conditions.
    kapi -X POST -H 'Content-Type: application/json' "$api/api/v1/nodes" -d '{
      "apiVersion": "v1", "kind": "Node",
      "metadata": {"name": "kwok-node-0",
        "labels": {"kubernetes.io/hostname": "kwok-node-0", "kubernetes.io/os": "linux",
                   "kubernetes.io/arch": "amd64", "type": "kwok"},
        "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"}},
      "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "250"},
                 "capacity": {"cpu": "32", "memory": "256Gi", "pods": "250"}}}' >/dev/null
    # Ready=True (kwok) and the not-ready taint removed (node-lifecycle controller).
    wait_for 120 "node kwok-node-0 schedulable" node_schedulable "$api" kwok-node-0
  fi

  cat >"$WORK/env" <<EOF
export KUBECONFIG=$kubeconfig
export K8S_TESTENV_DIR=$WORK
export K8S_TESTENV_API=$api
export K8S_TESTENV_FULL=$full
export K8S_TESTENV_BIN=$BIN
export HELM_BIN=$BIN/helm
export HELM_CACHE_HOME=$WORK/helm/cache
export HELM_CONFIG_HOME=$WORK/helm/config
export HELM_DATA_HOME=$WORK/helm/data
export PATH=$BIN:\$PATH
EOF
  trap - ERR
  log "control plane up: $api (. $WORK/env)"
}

status() {
  [[ -f $WORK/ports && -f $PKI/ca.crt ]] || return 1
  . "$WORK/ports"
  kapi "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1
}

down() {
  local name
  for name in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    stop_one "$name"
  done
  log "stopped (logs kept in $WORK/logs)"
}

case ${1:-} in
  build) build ;;
  cached) [[ -f $BIN/.complete ]] ;;
  bin) echo "$BIN" ;;
  up) shift; up "$@" ;;
  status) status ;;
  down) down ;;
  # Used by tests that prove no watch event is lost across an API server restart.
  stop-apiserver) stop_one kube-apiserver ;;
  start-apiserver) start_apiserver ;;
  *) echo "usage: $0 build|cached|bin|up [--full]|status|down|stop-apiserver|start-apiserver" >&2; exit 2 ;;
esac
