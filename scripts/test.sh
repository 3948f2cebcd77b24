#!/usr/bin/env bash
# The whole test suite: lint, import contracts, type-check the compute code, then pytest (unit, Dagster, sensors, UI in headless Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser test" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
export GX_ANALYTICS_ENABLED=false
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/.numba_cache}"
export POLARS_MAX_THREADS="${POLARS_MAX_THREADS:-2}"
echo "== ruff" && .venv/bin/ruff check lake_assets resources sensors tests benchmarks scripts
echo "== import contracts (.importlinter)" && .venv/bin/lint-imports --no-cache
echo "== mypy (compute code)" && .venv/bin/mypy lake_assets --exclude 'assets\.py$' --no-error-summary
echo "== pytest" && $PY -m pytest -q "$@"
