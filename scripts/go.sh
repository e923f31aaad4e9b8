#!/usr/bin/env bash
# The Go that builds the test tools from the module proxy: at least the version the pinned
# modules declare, checked up front, since an older one fails deep inside a long build.
WAGATE_GO_MINOR=26

ensure_go() { # what it builds
  command -v go >/dev/null || { echo "error: Go 1.$WAGATE_GO_MINOR+ is needed to build $1 (https://go.dev/doc/install)" >&2; return 1; }
  local version minor
  version="$(go env GOVERSION 2>/dev/null)"
  # A toolchain built from Go's own sources says "devel go1.27-…", newer than any release.
  case "$version" in devel*) return 0 ;; esac
  minor="$(printf '%s' "$version" | sed -n 's/^go1\.\([0-9][0-9]*\).*/\1/p')"
  [ -n "$minor" ] && [ "$minor" -ge "$WAGATE_GO_MINOR" ] && return 0
  echo "error: Go 1.$WAGATE_GO_MINOR+ is needed to build $1; $(command -v go) is ${version:-of no version it would tell} (https://go.dev/doc/install)" >&2
  return 1
}
