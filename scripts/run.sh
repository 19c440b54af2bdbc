#!/usr/bin/env bash
# One command: set up, migrate, seed the demo and serve the dashboard on http://127.0.0.1:8000
# (embedded mode: SQLite, in-process worker and scheduler; no services needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export KARGO_DEMO=1
# Local demo: let warehouses poll every few seconds instead of Kargo's 5-minute minimum.
export KARGO_MIN_DISCOVERY_INTERVAL="${KARGO_MIN_DISCOVERY_INTERVAL:-0}"
# A database made before the apps were reshaped (models under `kargo_ui`) cannot be migrated
# forward: keep it aside and start afresh (the demo reseeds itself).
db="${KARGO_SQLITE_PATH:-${KARGO_DATA_DIR:-var}/kargo_ui.sqlite3}"
if [ -f "$db" ] && .venv/bin/python -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); sys.exit(0 if c.execute(\"select 1 from django_migrations where app='kargo_ui'\").fetchone() else 1)" "$db" 2>/dev/null; then
  echo "run: $db predates the current layout; moved to $db.old"
  mv "$db" "$db.old"; rm -f "$db-wal" "$db-shm"
fi
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py demo
exec .venv/bin/python manage.py serve --host 127.0.0.1 --port "${PORT:-8000}"
