#!/usr/bin/env bash
# Creates .venv with a Python >= 3.12 and installs the pinned dependencies.
# Idempotent: reruns are cheap once requirements.txt is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
  local candidates=(python3.13 python3.12)
  if command -v pyenv >/dev/null 2>&1; then
    for v in "$(pyenv root)"/versions/3.13* "$(pyenv root)"/versions/3.12*; do
      [ -x "$v/bin/python3" ] && candidates+=("$v/bin/python3")
    done
  fi
  candidates+=(python3)
  for c in "${candidates[@]}"; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
      command -v "$c"; return 0
    fi
  done
  return 1
}

if [ ! -x .venv/bin/python ]; then
  PY=$(find_python) || { echo "error: kargo_ui needs Python >= 3.12; none found (tried python3.13, python3.12, pyenv versions, python3)" >&2; exit 1; }
  echo "setup: creating .venv with $PY"
  "$PY" -m venv .venv
fi
# requirements.txt names what we use; requirements.lock pins every package, transitive ones too
# (regenerate: .venv/bin/python -m uv pip compile requirements.txt -o requirements.lock --python-version 3.12).
stamp=.venv/.requirements.sha
want=$(cat requirements.txt requirements.lock | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip uv
  .venv/bin/python -m uv pip install --quiet --python .venv/bin/python -r requirements.lock
  echo "$want" > "$stamp"
fi
# The `kargo-ui` console script (the remote CLI, kargo_ui/remote_cli.py): an editable install of
# this checkout, without dependencies (the lock installed them). Redone only when pyproject.toml
# or the checkout's place changes, or the script is missing.
stamp=.venv/.editable.sha
want=$( (pwd; cat pyproject.toml) | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/kargo-ui ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m uv pip install --quiet --python .venv/bin/python --no-deps -e .
  echo "$want" > "$stamp"
fi
