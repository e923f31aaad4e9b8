#!/usr/bin/env bash
# The one test command: installs what it needs, starts local services, builds, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
ensure_postgres
ensure_rabbitmq
ensure_node_modules
ensure_promtool
npm run --silent typecheck
npm run --silent build
npx jest --ci "$@"
