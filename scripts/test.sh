#!/usr/bin/env bash
# The whole test suite: lint, import contracts, type-check the compute code, then pytest (unit, Dagster, sensors, UI in headless Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
# as root, install what the tests start and is missing: chromium (UI test), PostgreSQL (instance, Optuna storage),
# redis-server (Celery broker); the tests start them on 127.0.0.1 and stop them (tests/services.py)
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's ${missing[*]} for the tests" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  # Debian's packages start their own services; the tests use private instances on free ports, so stop them
  if command -v service >/dev/null 2>&1; then
    service postgresql stop >/dev/null 2>&1 || true
    service redis-server stop >/dev/null 2>&1 || true
  fi
fi
export GX_ANALYTICS_ENABLED=false
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/.numba_cache}"
export POLARS_MAX_THREADS="${POLARS_MAX_THREADS:-2}"
echo "== ruff" && .venv/bin/ruff check lake_assets resources sensors tests benchmarks scripts
echo "== import contracts (.importlinter)" && .venv/bin/lint-imports --no-cache
echo "== mypy (compute code)" && .venv/bin/mypy lake_assets --exclude 'assets\.py$' --no-error-summary
echo "== pytest" && $PY -m pytest -q "$@"
