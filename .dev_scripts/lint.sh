#!/usr/bin/env bash
# The style checks of setup.cfg (as .pre-commit-config.yaml runs them) and the
# metafile check, over the whole tree. Needs the tests requirements
# (tools/setup_env.sh installs them into .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
files=$(git ls-files '*.py')
echo "flake8"; $PY -m flake8 $files
echo "isort"; $PY -m isort --check-only --diff $files
# configs/ keep one line per changed field (a leaf says only what differs);
# flake8 and isort still check them
echo "yapf"; out=$($PY -m yapf --diff $(git ls-files '*.py' | grep -v '^configs/'))
[ -z "$out" ] || { echo "$out"; exit 1; }
echo "metafiles"; $PY .dev_scripts/check_metafile.py
