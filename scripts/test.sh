#!/usr/bin/env bash
# One command: set up and run the whole test suite (fast, integration and browser layers).
# Installs Debian's Chromium and Prometheus when missing and starts Redis/PostgreSQL when they
# are not answering.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ! -x /usr/bin/chromium ]; then
  echo "test: installing Debian's chromium for the browser tests"
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
# The prometheus metric provider's tests start their own server from this binary, on a free port
# (not the package's service on 9090, which they never use).
if [ ! -x /usr/bin/prometheus ]; then
  echo "test: installing Debian's prometheus for the prometheus metric tests"
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
# Image and OCI chart discovery tests start their own registry from this binary, on a free
# loopback port with storage in a temporary directory (never the package's service on port
# 5000); htpasswd (apache2-utils) makes the bcrypt entry of the registry with basic auth.
if [ ! -x /usr/bin/docker-registry ] || [ ! -x /usr/bin/htpasswd ]; then
  echo "test: installing Debian's docker-registry and apache2-utils for the image discovery tests"
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-registry apache2-utils >/dev/null
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "test: starting redis-server"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
fi
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "test: starting postgresql"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi

export KARGO_NO_SKIPS=1
.venv/bin/ruff check .
# One-way layers (kargo <- projects <- freight <- stages <- kargo_ui) and no import cycles.
.venv/bin/lint-imports --no-cache
# The layers in their own pytest processes, fastest first; the first layer that fails stops the
# run with its exit status. Browser tests stay apart: pytest-playwright keeps an asyncio loop in
# the main thread, which would break async_to_sync in the other tests.
run_layer() {
  local name=$1 status=0
  shift
  echo "test: layer $name"
  "$@" || status=$?
  # Arguments that pick tests of other layers leave a layer with nothing to run (exit 5).
  if [ "$status" = 5 ] && [ "$narrowed" = 1 ]; then status=0; fi
  if [ "$status" != 0 ]; then
    echo "test: layer $name failed (exit $status); later layers not run"
    exit "$status"
  fi
}
narrowed=$([ "$#" -gt 0 ] && echo 1 || echo 0)
run_layer "unit + http" .venv/bin/python -m pytest -p no:playwright -m "unit or http" "$@"
run_layer "integration + conformance" \
  .venv/bin/python -m pytest -p no:playwright -m "integration or conformance" "$@"
run_layer "e2e" env DJANGO_ALLOW_ASYNC_UNSAFE=true .venv/bin/python -m pytest -m e2e "$@"
