#!/usr/bin/env bash
# Runs wagate locally (migrate, ingest and worker in one process) against local services.
# `scripts/dev.sh --prepare` only installs, builds and starts the services, then exits.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/node.sh
source scripts/services.sh
ensure_node
database_url="$(setting DATABASE_URL)"
amqp_url="$(setting AMQP_URL)"
ensure_postgres "$database_url"
ensure_rabbitmq "$amqp_url"
ensure_node_modules
# Build only when the sources changed: the build starts by deleting dist/, which would pull
# the CLI away from a shell that is already using it (npx wagate … right after this script).
if [ ! -f dist/main.js ] || [ -n "$(find src tsconfig.json tsconfig.build.json package-lock.json -newer dist/main.js -print -quit)" ]; then
  npm run --silent build
fi
if [ "${1:-}" = "--prepare" ]; then exit 0; fi
exec node dist/main.js dev "$@"
