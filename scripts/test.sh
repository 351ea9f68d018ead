#!/usr/bin/env bash
# Installs everything (scripts/setup.sh --test), makes sure PostgreSQL and Redis are running,
# then checks style (ruff) and the import layers (lint-imports) and runs the whole test suite.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "Starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
  for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "Starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.2; done
fi

export HF_HUB_OFFLINE=1
# (one command a line: under `set -e` a failure inside `a && b` would not stop the script)
.venv/bin/ruff check --quiet .
echo "ruff: clean"
# Imports only point down the layers (contracts in pyproject.toml).
.venv/bin/lint-imports --no-cache >/dev/null || .venv/bin/lint-imports --no-cache
echo "lint-imports: contracts kept"
exec .venv/bin/python -m pytest "$@"
