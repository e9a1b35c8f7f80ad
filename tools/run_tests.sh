#!/usr/bin/env bash
# Quick start, command 2: install (idempotent) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
exec .venv/bin/python -m pytest -q "$@"
