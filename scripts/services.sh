#!/usr/bin/env bash
# Makes sure PostgreSQL and RabbitMQ answer, starting local ones where they are installed
# but stopped. Sourced by test.sh and dev.sh, which pass the URL in use (if any): a server
# elsewhere is only checked, never started.
set -euo pipefail

# host port; bounded, since connecting to a host that drops packets can take minutes.
port_open() {
  if command -v timeout >/dev/null; then
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
    return
  fi
  # macOS has no timeout(1): the connect runs in the background, stopped after 3 s.
  bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null &
  local connect=$! status=0
  (sleep 3; kill "$connect" 2>/dev/null) &
  local stopper=$!
  wait "$connect" || status=$?
  kill "$stopper" 2>/dev/null || true
  wait "$stopper" 2>/dev/null || true
  return "$status"
}

# macOS ships shasum, not sha256sum.
sha256_of_stdin() { if command -v sha256sum >/dev/null; then sha256sum; else shasum -a 256; fi; }

wait_for_port() { # name host port seconds
  for _ in $(seq 1 "$4"); do port_open "$2" "$3" && return 0; sleep 1; done
  echo "error: $1 did not open $2:$3 within $4 s" >&2
  return 1
}

# "host port" of a URL such as postgres://user:pw@db.internal:6432/app, or the defaults.
url_endpoint() { # url default_port
  local rest="${1#*://}"
  rest="${rest%%[/?]*}"
  rest="${rest##*@}" # the last @: a password may hold one
  local host port=""
  if [ "${rest#\[}" != "$rest" ]; then # [::1]:5432
    host="${rest%%]*}"; host="${host#\[}"
    [ "${rest##*]:}" != "$rest" ] && port="${rest##*]:}"
  else
    host="${rest%%:*}"
    [ "${rest##*:}" != "$rest" ] && port="${rest##*:}"
  fi
  echo "${host:-127.0.0.1} ${port:-$2}"
}

# A setting as the process reads it: the variable, or else the file its NAME_FILE names.
# Assign it on a line of its own (url="$(setting X)"), where set -e stops at a file it cannot read.
setting() { # name
  local name="$1" file_name="${1}_FILE"
  if [ -n "${!name:-}" ]; then printf '%s' "${!name}"; return 0; fi
  [ -n "${!file_name:-}" ] || return 0
  [ -r "${!file_name}" ] || { echo "error: $file_name names ${!file_name}, which cannot be read" >&2; return 1; }
  cat "${!file_name}"
}

# Commands the tests call as a shop's engineer would (the README's demo: curl and psql).
ensure_commands() { # command...
  local missing=""
  for c in "$@"; do command -v "$c" >/dev/null || missing="$missing $c"; done
  [ -z "$missing" ] && return 0
  echo "error: missing on PATH:$missing (Debian: apt-get install curl postgresql-client)" >&2
  return 1
}

is_local() { [ "$1" = 127.0.0.1 ] || [ "$1" = localhost ] || [ "$1" = "::1" ]; }

ensure_postgres() { # [url]
  local host port
  # postgres:///db?host=/run/postgresql names a Unix socket: nothing to reach over TCP here.
  case "${1:-}" in *\?host=/*|*\&host=/*) return 0 ;; esac
  read -r host port < <(url_endpoint "${1:-postgres://127.0.0.1:5432}" 5432)
  port_open "$host" "$port" && return 0
  if ! is_local "$host"; then
    echo "error: PostgreSQL at $host:$port does not answer; check the URL or the server." >&2
    return 1
  fi
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    [ "$(id -u)" = 0 ] || { echo "error: PostgreSQL is installed but not running on $host:$port; start it as root (pg_ctlcluster <version> main start)." >&2; return 1; }
    echo "starting PostgreSQL" >&2
    # The cluster of that port, where there are several (a Debian upgrade leaves the old one).
    local cluster
    cluster="$(pg_lsclusters --no-header 2>/dev/null | awk -v port="$port" '$3 == port { print $1 " " $2; exit }')"
    [ -n "$cluster" ] || cluster="$(ls /etc/postgresql | sort -V | tail -1) main"
    # shellcheck disable=SC2086 # version and name, two words
    pg_ctlcluster --skip-systemctl-redirect $cluster start \
      || echo "warning: pg_ctlcluster $cluster start failed; its log is under /var/log/postgresql (pg_lsclusters shows the clusters)" >&2
  elif command -v pg_ctl >/dev/null && [ -n "${PGDATA:-}" ]; then
    pg_ctl -D "$PGDATA" -l "$PGDATA/server.log" start
  else
    echo "error: PostgreSQL 15+ is not running on $host:$port, and no Debian cluster (pg_ctlcluster) or PGDATA (for pg_ctl) is here to start." >&2
    echo "       Start yours, set PGDATA for pg_ctl, install it (Debian: apt-get install postgresql postgresql-contrib), or point the URL at one." >&2
    return 1
  fi
  wait_for_port PostgreSQL "$host" "$port" 30
}

# Logs in as the tests will, before the long builds: a server that wants a password the URL
# does not hold (Debian's pg_hba.conf asks one on 127.0.0.1, and its postgres role has none)
# would otherwise fail every test minutes later, each with its own connection error.
check_postgres_login() { # [url]
  local url="${1:-postgres://postgres@127.0.0.1:5432/postgres}" answer shown errors
  shown="$(printf '%s' "$url" | sed 's#://\([^:@/]*\):[^@]*@#://\1:***@#')"
  errors="$(mktemp)"
  # The server's warnings (a collation version mismatch, say) go to stderr, apart from the answer.
  if ! answer="$(PGCONNECT_TIMEOUT=5 psql -w -XAtq -c 'SHOW server_version_num' "$url" 2>"$errors")"; then
    echo "error: the tests cannot log in to PostgreSQL at $shown: $(cat "$errors")" >&2
    rm -f "$errors"
    echo "       set TEST_DATABASE_URL to a role that may create databases, with its password (for Debian's postgres role, which has none: sudo -u postgres psql -c \"ALTER ROLE postgres PASSWORD 'choose-one'\")" >&2
    return 1
  fi
  rm -f "$errors"
  answer="$(printf '%s\n' "$answer" | tail -n 1)"
  [ "$answer" -ge 150000 ] 2>/dev/null \
    || { echo "error: PostgreSQL at $shown is version $answer (server_version_num); wagate needs 15 or later" >&2; return 1; }
}

ensure_rabbitmq() { # [url]
  local host port
  local default_port=5672
  # amqps without a port is TLS on 5671, where the client connects.
  case "${1:-}" in amqps://*) default_port=5671 ;; esac
  read -r host port < <(url_endpoint "${1:-amqp://127.0.0.1:5672}" "$default_port")
  port_open "$host" "$port" && return 0
  if ! is_local "$host"; then
    echo "error: RabbitMQ at $host:$port does not answer; check the URL or the server." >&2
    return 1
  fi
  # Debian installs it in /usr/sbin, which a user's PATH may not hold.
  local server
  server="$(command -v rabbitmq-server || { [ -x /usr/sbin/rabbitmq-server ] && echo /usr/sbin/rabbitmq-server; } || true)"
  if [ -n "$server" ]; then
    [ "$(id -u)" = 0 ] || { echo "error: RabbitMQ is installed but not running on $host:$port; start it as root (rabbitmq-server -detached)." >&2; return 1; }
    echo "starting RabbitMQ" >&2
    "$server" -detached || echo "warning: rabbitmq-server -detached failed; its log is under /var/log/rabbitmq" >&2
  else
    echo "error: RabbitMQ 3.10+ is not running on $host:$port and is not installed here." >&2
    echo "       Install it (Debian: apt-get install rabbitmq-server) or point the URL at one." >&2
    return 1
  fi
  wait_for_port RabbitMQ "$host" "$port" 90
}

# Reinstalls when the lock file changed or node_modules was installed by another Node version.
ensure_node_modules() {
  local stamp=node_modules/.wagate-node-version
  # The Node version and the patches applied to packages (patches/, by postinstall) decide
  # whether an existing node_modules can be kept.
  local want
  want="$(node --version) patches $(cat patches/*.patch 2>/dev/null | sha256_of_stdin | cut -c1-16)"
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] \
     || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    npm ci --no-audit --no-fund
    echo "$want" > "$stamp"
  fi
}

ensure_promtool() {
  command -v promtool >/dev/null && command -v prometheus >/dev/null && return 0
  if command -v apt-get >/dev/null; then
    echo "installing Prometheus and promtool (Debian package prometheus)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; } >/dev/null \
      || { echo "error: could not install the Debian package prometheus (needed for promtool and the Prometheus tests; as root)" >&2; return 1; }
    # The package starts a server on :9090 at every boot where systemd runs; the tests start their own.
    if command -v systemctl >/dev/null && systemctl is-enabled --quiet prometheus 2>/dev/null; then
      systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
  else
    echo "error: promtool and prometheus are missing; install Prometheus 2.x so both are on PATH" >&2
    return 1
  fi
}
