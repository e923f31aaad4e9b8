#!/usr/bin/env bash
# The one test command: installs what it needs (Node, npm packages, promtool, and a Kubernetes
# control plane, Helm and Toxiproxy built once into a cache), starts local services, builds, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/node.sh
source scripts/services.sh
source scripts/control-plane.sh
source scripts/toxiproxy.sh
ensure_node
ensure_commands curl psql
ensure_postgres "${TEST_DATABASE_URL:-}"
check_postgres_login "${TEST_DATABASE_URL:-}"
ensure_rabbitmq "${TEST_AMQP_URL:-}"
ensure_node_modules
ensure_promtool
ensure_kube_tools
ensure_toxiproxy
npm run --silent typecheck
npm run --silent build
npx jest --ci "$@"
