#!/usr/bin/env bash
# Builds a real Kubernetes control plane (kube-apiserver, kube-controller-manager, kubectl and
# etcd) and Helm from the Go module proxy, once, into a cache folder. The tests start the
# control plane on loopback. A cold build takes about 9 minutes on 2 cores; later runs find the
# binaries and return at once.
set -euo pipefail

WAGATE_KUBE_VERSION=v1.37.2
WAGATE_ETCD_VERSION=v3.7.0 # the version kubernetes' own go.mod pins
WAGATE_CACHE_DIR="${WAGATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wagate}"
WAGATE_KUBE_BIN="$WAGATE_CACHE_DIR/kube-$WAGATE_KUBE_VERSION/bin"
WAGATE_HELM_VERSION=v3.22.0
WAGATE_HELM_BIN="$WAGATE_CACHE_DIR/helm-$WAGATE_HELM_VERSION/bin"

# The staging modules (k8s.io/api, …) are replaced by relative paths in kubernetes' own go.mod,
# which a dependent module cannot use; each must point at its published v0.x twin instead.
write_control_plane_module() { # dir
  local dir="$1" kdir staging="v0.${WAGATE_KUBE_VERSION#v1.}"
  kdir="$(go mod download -json "k8s.io/kubernetes@$WAGATE_KUBE_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  mkdir -p "$dir"
  {
    echo "module wagate.local/control-plane"
    echo
    echo "go $(sed -n 's/^go //p' "$kdir/go.mod")"
    echo
    echo "require ("
    echo "	k8s.io/kubernetes $WAGATE_KUBE_VERSION"
    echo "	go.etcd.io/etcd/server/v3 $WAGATE_ETCD_VERSION"
    echo ")"
    echo
    echo "replace ("
    sed -n '/^replace (/,/^)/p' "$kdir/go.mod" | sed -n 's#^\t\(k8s.io/[^ ]*\) => ./staging/.*#\t\1 => \1 '"$staging"'#p'
    echo ")"
  } > "$dir/go.mod"
  cat > "$dir/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/server/v3/etcdmain"
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	_ "k8s.io/kubectl/pkg/cmd"
)
GO
  mkdir -p "$dir/etcd" && cat > "$dir/etcd/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
}

ensure_control_plane() {
  local want="kube-apiserver kube-controller-manager kubectl etcd" missing=""
  for b in $want; do [ -x "$WAGATE_KUBE_BIN/$b" ] || missing="$missing $b"; done
  if [ -n "$missing" ]; then
    command -v go >/dev/null || { echo "error: Go 1.26+ is needed to build the Kubernetes control plane for the tests (https://go.dev/doc/install)" >&2; return 1; }
    echo "building the Kubernetes control plane $WAGATE_KUBE_VERSION into $WAGATE_KUBE_BIN (about 9 minutes the first time)" >&2
    local dir="$WAGATE_CACHE_DIR/kube-$WAGATE_KUBE_VERSION/module"
    write_control_plane_module "$dir"
    local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$WAGATE_KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${WAGATE_KUBE_VERSION#v1.}"
    ldflags="${ldflags%.*}" # gitMinor is the bare minor number
    # Chained with &&: left of ||, a subshell's set -e is off, and a failed build of the first
    # three would pass unseen once etcd, the last, built.
    (
      cd "$dir" && export GOFLAGS=-mod=mod CGO_ENABLED=0 \
        && { go mod tidy >/dev/null 2>&1 || true; } \
        && go build -trimpath -ldflags "$ldflags" -o "$WAGATE_KUBE_BIN/" \
          k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl \
        && go build -trimpath -ldflags "$ldflags" -o "$WAGATE_KUBE_BIN/etcd" ./etcd
    ) || { echo "error: building the Kubernetes control plane failed (see above)" >&2; return 1; }
  fi
}

ensure_helm() {
  if [ ! -x "$WAGATE_HELM_BIN/helm" ]; then
    command -v go >/dev/null || { echo "error: Go 1.26+ is needed to build Helm for the tests (https://go.dev/doc/install)" >&2; return 1; }
    echo "building Helm $WAGATE_HELM_VERSION into $WAGATE_HELM_BIN" >&2
    GOBIN="$WAGATE_HELM_BIN" CGO_ENABLED=0 go install -trimpath "helm.sh/helm/v3/cmd/helm@$WAGATE_HELM_VERSION" \
      || { echo "error: building Helm failed (see above)" >&2; return 1; }
  fi
}

# Both go first on PATH, so the tests and the commands they run find the pinned versions.
ensure_kube_tools() {
  ensure_control_plane && ensure_helm || return 1
  export WAGATE_KUBE_BIN WAGATE_HELM_BIN
  export PATH="$WAGATE_KUBE_BIN:$WAGATE_HELM_BIN:$PATH"
}

# Run directly: build both, then print the folders.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then ensure_kube_tools && echo "$WAGATE_KUBE_BIN $WAGATE_HELM_BIN"; fi
