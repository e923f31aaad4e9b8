#!/usr/bin/env bash
# Builds Toxiproxy, the TCP proxy the fault tests put between wagate and Postgres and between
# wagate and RabbitMQ, from the Go module proxy, once, into the cache folder.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/go.sh"

WAGATE_TOXIPROXY_VERSION=v2.12.0
WAGATE_CACHE_DIR="${WAGATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wagate}"
WAGATE_TOXIPROXY_BIN="$WAGATE_CACHE_DIR/toxiproxy-$WAGATE_TOXIPROXY_VERSION/bin"

# The module's server command lives in cmd/server; it is installed as toxiproxy-server.
ensure_toxiproxy() {
  if [ ! -x "$WAGATE_TOXIPROXY_BIN/toxiproxy-server" ]; then
    ensure_go "Toxiproxy for the fault tests" || return 1
    echo "building Toxiproxy $WAGATE_TOXIPROXY_VERSION into $WAGATE_TOXIPROXY_BIN" >&2
    GOBIN="$WAGATE_TOXIPROXY_BIN" CGO_ENABLED=0 go install -trimpath "github.com/Shopify/toxiproxy/v2/cmd/server@$WAGATE_TOXIPROXY_VERSION" \
      && mv "$WAGATE_TOXIPROXY_BIN/server" "$WAGATE_TOXIPROXY_BIN/toxiproxy-server" \
      || { echo "error: building Toxiproxy failed (see above)" >&2; return 1; }
  fi
  export WAGATE_TOXIPROXY_SERVER="$WAGATE_TOXIPROXY_BIN/toxiproxy-server"
}

# Run directly: build it, then print the binary's path.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then ensure_toxiproxy && echo "$WAGATE_TOXIPROXY_SERVER"; fi
