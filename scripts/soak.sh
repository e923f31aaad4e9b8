#!/usr/bin/env bash
# The long soak: a steady load through a gateway and a worker for SOAK_MINUTES (default 30),
# sampled every 10 s; writes the samples, a plot and a table of the figures into docs/soak/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/node.sh
source scripts/services.sh
source scripts/toxiproxy.sh
ensure_node
ensure_postgres "${TEST_DATABASE_URL:-}"
ensure_rabbitmq "${TEST_AMQP_URL:-}"
ensure_node_modules
ensure_toxiproxy
npm run --silent build
mkdir -p docs/soak
# The figures are plotted even when the flatness checks fail: they are what to look at then.
status=0
SOAK_MINUTES="${SOAK_MINUTES:-30}" SOAK_OUTPUT=docs/soak/samples.json npx jest --ci test/faults/soak.test.ts || status=$?
npx tsx bench/soak-plot.ts docs/soak/samples.json docs/soak/soak.svg docs/soak/figures.md
echo "wrote docs/soak/samples.json, docs/soak/soak.svg and docs/soak/figures.md"
exit "$status"
