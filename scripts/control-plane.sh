#!/usr/bin/env bash
# Builds a real Kubernetes control plane (kube-apiserver, kube-controller-manager, kubectl and
# etcd) and Helm from the Go module proxy, once, into a cache folder. The tests start the
# control plane on loopback. A cold build takes about 9 minutes on 2 cores; later runs find the
# binaries and return at once.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/go.sh"

WAGATE_KUBE_VERSION=v1.37.2
WAGATE_ETCD_VERSION=v3.7.0 # the version kubernetes' own go.mod pins
WAGATE_CACHE_DIR="${WAGATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wagate}"
WAGATE_KUBE_BIN="$WAGATE_CACHE_DIR/kube-$WAGATE_KUBE_VERSION/bin"
WAGATE_HELM_VERSION=v3.22.0
WAGATE_HELM_BIN="$WAGATE_CACHE_DIR/helm-$WAGATE_HELM_VERSION/bin"

# The staging modules (k8s.io/api, …) are replaced by relative paths in kubernetes' own go.mod,
# which a dependent module cannot use; each must point at its published v0.x twin instead.
write_control_plane_module() { # dir
  local dir="$1" download kdir staging="v0.${WAGATE_KUBE_VERSION#v1.}"
  # go mod download -json reports its failure (no proxy, no network) inside the JSON it prints.
  if ! download="$(go mod download -json "k8s.io/kubernetes@$WAGATE_KUBE_VERSION")"; then
    echo "error: could not download k8s.io/kubernetes@$WAGATE_KUBE_VERSION: $(printf '%s\n' "$download" | sed -n 's/.*"Error": "\(.*\)".*/\1/p')" >&2
    return 1
  fi
  kdir="$(printf '%s\n' "$download" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  [ -f "$kdir/go.mod" ] || { echo "error: go mod download named no go.mod for k8s.io/kubernetes@$WAGATE_KUBE_VERSION (got: ${kdir:-no folder})" >&2; return 1; }
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

# What each cached binary says its version is when it is the pinned one: a binary cut short by
# an interrupted build, or an etcd built before WAGATE_ETCD_VERSION changed, is built again.
control_plane_current() {
  says "Kubernetes $WAGATE_KUBE_VERSION" "$WAGATE_KUBE_BIN/kube-apiserver" --version \
    && says "Kubernetes $WAGATE_KUBE_VERSION" "$WAGATE_KUBE_BIN/kube-controller-manager" --version \
    && says "Client Version: $WAGATE_KUBE_VERSION" "$WAGATE_KUBE_BIN/kubectl" version --client \
    && says "etcd Version: ${WAGATE_ETCD_VERSION#v}" "$WAGATE_KUBE_BIN/etcd" --version
}

# Whether a command prints this line. Its output is read whole first: grep -q piped to it would
# stop reading at the match, and under pipefail the command's SIGPIPE on its next line would
# count as a mismatch.
says() { # line command...
  local line="$1" output
  shift
  output="$("$@" 2>/dev/null)" || return 1
  grep -qxF "$line" <<<"$output"
}

ensure_control_plane() {
  if ! control_plane_current; then
    ensure_go "the Kubernetes control plane for the tests" || return 1
    echo "building the Kubernetes control plane $WAGATE_KUBE_VERSION into $WAGATE_KUBE_BIN (about 9 minutes the first time)" >&2
    local dir="$WAGATE_CACHE_DIR/kube-$WAGATE_KUBE_VERSION/module"
    write_control_plane_module "$dir" || return 1
    local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$WAGATE_KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${WAGATE_KUBE_VERSION#v1.}"
    ldflags="${ldflags%.*}" # gitMinor is the bare minor number
    # Chained with &&: left of ||, a subshell's set -e is off, and a failed build of the first
    # three would pass unseen once etcd, the last, built.
    (
      cd "$dir" && export GOFLAGS=-mod=mod CGO_ENABLED=0 \
        && { go mod tidy || echo "warning: go mod tidy failed (above); building with what go build resolves itself" >&2; } \
        && go build -trimpath -ldflags "$ldflags" -o "$WAGATE_KUBE_BIN/" \
          k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl \
        && go build -trimpath -ldflags "$ldflags" -o "$WAGATE_KUBE_BIN/etcd" ./etcd
    ) || { echo "error: building the Kubernetes control plane failed (see above)" >&2; return 1; }
  fi
}

ensure_helm() {
  if [ ! -x "$WAGATE_HELM_BIN/helm" ]; then
    ensure_go "Helm for the tests" || return 1
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
