#!/usr/bin/env bash
# One command: set up, migrate, seed the demo and serve the dashboard on http://127.0.0.1:8000
# (embedded mode: SQLite, in-process worker and scheduler; no services needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export KARGO_DEMO=1
# Local demo: let warehouses poll every few seconds instead of Kargo's 5-minute minimum.
export KARGO_MIN_DISCOVERY_INTERVAL="${KARGO_MIN_DISCOVERY_INTERVAL:-0}"
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py demo
exec .venv/bin/python manage.py serve --host 127.0.0.1 --port "${PORT:-8000}"
