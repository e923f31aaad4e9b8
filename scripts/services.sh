#!/usr/bin/env bash
# Makes sure PostgreSQL and RabbitMQ answer on their local ports, starting them where they
# are installed but stopped. Sourced by test.sh and dev.sh.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() { # name port seconds
  for _ in $(seq 1 "$3"); do port_open "$2" && return 0; sleep 1; done
  echo "error: $1 did not open port $2 within $3 s" >&2
  return 1
}

ensure_postgres() {
  port_open 5432 && return 0
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
  elif command -v pg_ctl >/dev/null && [ -n "${PGDATA:-}" ]; then
    pg_ctl -D "$PGDATA" -l "$PGDATA/server.log" start
  else
    echo "error: PostgreSQL 15+ is not running on 127.0.0.1:5432 and is not installed here." >&2
    echo "       Install it (Debian: apt-get install postgresql postgresql-contrib) or set DATABASE_URL." >&2
    return 1
  fi
  wait_for_port PostgreSQL 5432 30
}

ensure_rabbitmq() {
  port_open 5672 && return 0
  if command -v rabbitmq-server >/dev/null; then
    echo "starting RabbitMQ" >&2
    rabbitmq-server -detached || true
  else
    echo "error: RabbitMQ 3.10+ is not running on 127.0.0.1:5672 and is not installed here." >&2
    echo "       Install it (Debian: apt-get install rabbitmq-server) or set AMQP_URL." >&2
    return 1
  fi
  wait_for_port RabbitMQ 5672 90
}

ensure_node_modules() {
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
  fi
}

ensure_promtool() {
  command -v promtool >/dev/null && command -v prometheus >/dev/null && return 0
  if command -v apt-get >/dev/null; then
    echo "installing Prometheus and promtool (Debian package prometheus)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; } >/dev/null \
      || { echo "error: could not install the Debian package prometheus (needed for promtool and the Prometheus tests)" >&2; return 1; }
  else
    echo "error: promtool and prometheus are missing; install Prometheus 2.x so both are on PATH" >&2
    return 1
  fi
}
