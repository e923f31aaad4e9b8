#!/usr/bin/env bash
# Runs wagate locally (migrate, ingest and worker in one process) against local services.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/node.sh
source scripts/services.sh
ensure_node
ensure_postgres "${DATABASE_URL:-}"
ensure_rabbitmq "${AMQP_URL:-}"
ensure_node_modules
npm run --silent build
exec node dist/main.js dev "$@"
