#!/usr/bin/env bash
# Builds the real Kubernetes binaries, crictl, etcd and CoreDNS from the Go module proxy into a cache
# outside the checkout, keyed by version; a binary already in the cache is reused, never rebuilt.
# Usage: build.sh [server|etcd|crictl|coredns|node|kubeadm|e2e|paths]...
#        (default: server etcd crictl coredns)
# e2e: e2e.test, agnhost and ginkgo (conformance only); kubeadm: for joining VM nodes (vagrant).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
K8S_VERSION=$(sed -n 's/^require k8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$here/k8s/go.mod")
ETCD_VERSION=$(sed -n 's/^require go.etcd.io\/etcd\/server\/v3 \(v[0-9.]*\)$/\1/p' "$here/etcd/go.mod")
CRICTL_VERSION=$(sed -n 's/^require sigs.k8s.io\/cri-tools \(v[0-9.]*\)$/\1/p' "$here/crictl/go.mod")
COREDNS_VERSION=$(sed -n 's/^require github.com\/coredns\/coredns \(v[0-9.]*\)$/\1/p' "$here/coredns/go.mod")
CACHE=${PYKUBELET_CACHE:-$HOME/.cache/pykubelet}
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
log() { printf '[gobuild] %s\n' "$*" >&2; }

# Version stamps so /version, kubectl and the node's kubeletVersion read the real release.
k8s_ldflags() {
  local major minor date out="-s -w"
  major=$(echo "$K8S_VERSION" | cut -d. -f1 | tr -d v)
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  date=$(date -u -d @0 +%Y-%m-%dT%H:%M:%SZ)
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    out+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    out+=" -X $pkg.gitCommit=module-proxy-$K8S_VERSION -X $pkg.gitTreeState=clean"
    out+=" -X $pkg.buildDate=$date"
  done
  echo "$out"
}

# timed NAME CMD...: runs CMD, appending wall time and peak RSS to the cache's build log.
timed() {
  local name=$1; shift
  local t0; t0=$(date +%s)
  /usr/bin/time -f "%M" -o "$CACHE/.rss" "$@"
  printf '%s\t%s\t%ss\t%sKiB\n' "$(date -u +%FT%TZ)" "$name" "$(( $(date +%s) - t0 ))" \
    "$(cat "$CACHE/.rss")" >> "$CACHE/build-times.tsv"
}

build_k8s() {  # build_k8s CGO TAGS PKG...
  local cgo=$1 tags=$2; shift 2
  local out="$CACHE/kubernetes-$K8S_VERSION" missing=()
  mkdir -p "$out"
  for pkg in "$@"; do [ -x "$out/$(basename "$pkg")" ] || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && { log "kubernetes $K8S_VERSION: cached ($*)"; return; }
  log "kubernetes $K8S_VERSION: building ${missing[*]} (a cold build takes tens of minutes)"
  (cd "$here/k8s" && go mod download &&
   CGO_ENABLED=$cgo timed "k8s:${missing[*]}" go build -trimpath -tags "$tags" \
     -ldflags "$(k8s_ldflags)" -o "$out/" "${missing[@]}")
}

# e2e.test (the test binary of package test/e2e, manifests embedded), agnhost (the multi-call binary
# of the e2e test images) and the ginkgo CLI that runs e2e.test with parallel workers, all from the
# same module graph as the control plane. Conformance only; never part of `make test`.
build_e2e() {
  local out="$CACHE/kubernetes-$K8S_VERSION"
  mkdir -p "$out"
  if [ -x "$out/e2e.test" ]; then
    log "e2e.test $K8S_VERSION: cached"
  else
    log "e2e.test $K8S_VERSION: building (a cold build takes tens of minutes)"
    (cd "$here/k8s" && go mod download &&
     CGO_ENABLED=0 timed "k8s:e2e.test" go test -c -trimpath -tags selinux,notest \
       -ldflags "$(k8s_ldflags)" -o "$out/e2e.test.tmp" k8s.io/kubernetes/test/e2e &&
     mv "$out/e2e.test.tmp" "$out/e2e.test")
  fi
  build_k8s 0 selinux,notest k8s.io/kubernetes/test/images/agnhost
  if [ -x "$out/ginkgo" ]; then
    log "ginkgo CLI: cached"
  else
    log "ginkgo CLI: building (the version k8s.io/kubernetes $K8S_VERSION requires)"
    (cd "$here/k8s" && CGO_ENABLED=0 timed "ginkgo" go build -trimpath -ldflags "-s -w" \
       -o "$out/ginkgo" github.com/onsi/ginkgo/v2/ginkgo)
  fi
}

build_etcd() {
  local out="$CACHE/etcd-$ETCD_VERSION"
  [ -x "$out/etcd" ] && { log "etcd $ETCD_VERSION: cached"; return; }
  log "etcd $ETCD_VERSION: building"
  mkdir -p "$out"
  (cd "$here/etcd" && go mod download &&
   CGO_ENABLED=0 timed "etcd" go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3)
}

build_crictl() {
  local out="$CACHE/crictl-$CRICTL_VERSION"
  [ -x "$out/crictl" ] && { log "crictl $CRICTL_VERSION: cached"; return; }
  log "crictl $CRICTL_VERSION: building"
  mkdir -p "$out"
  (cd "$here/crictl" && go mod download &&
   CGO_ENABLED=0 timed "crictl" go build -trimpath -ldflags "-s -w" -o "$out/crictl" sigs.k8s.io/cri-tools/cmd/crictl)
}

# CoreDNS for the cluster's DNS addon (its root package is main; plugins are compiled in).
build_coredns() {
  local out="$CACHE/coredns-$COREDNS_VERSION"
  [ -x "$out/coredns" ] && { log "coredns $COREDNS_VERSION: cached"; return; }
  log "coredns $COREDNS_VERSION: building (a cold build takes several minutes)"
  mkdir -p "$out"
  (cd "$here/coredns" && go mod download &&
   CGO_ENABLED=0 timed "coredns" go build -trimpath \
     -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=module-proxy-$COREDNS_VERSION" \
     -o "$out/coredns.tmp" github.com/coredns/coredns &&
   mv "$out/coredns.tmp" "$out/coredns")
}

mkdir -p "$CACHE"
exec 9>"$CACHE/.build.lock"
flock 9  # one build at a time: a second caller waits, then finds the cache filled
targets=("$@"); [ ${#targets[@]} -eq 0 ] && targets=(server etcd crictl coredns)
for t in "${targets[@]}"; do
  case "$t" in
    server) build_k8s 0 selinux,notest k8s.io/kubernetes/cmd/kube-apiserver \
              k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
              k8s.io/kubernetes/cmd/kubectl ;;
    node)   build_k8s 1 selinux,notest k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy ;;
    kubeadm) build_k8s 0 selinux,notest k8s.io/kubernetes/cmd/kubeadm ;;
    e2e)    build_e2e ;;
    etcd)   build_etcd ;;
    crictl) build_crictl ;;
    coredns) build_coredns ;;
    paths)  echo "K8S_BIN=$CACHE/kubernetes-$K8S_VERSION ETCD_BIN=$CACHE/etcd-$ETCD_VERSION CRICTL_BIN=$CACHE/crictl-$CRICTL_VERSION COREDNS_BIN=$CACHE/coredns-$COREDNS_VERSION" ;;
    *) log "unknown target: $t (server, node, kubeadm, e2e, etcd, crictl, coredns, paths)"; exit 2 ;;
  esac
done
