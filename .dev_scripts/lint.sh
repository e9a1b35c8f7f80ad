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
# (yapf --diff exits 1 when it would change a file: show the diff, then fail)
echo "yapf"
if ! out=$($PY -m yapf --diff $(git ls-files '*.py' | grep -v '^configs/')) \
        || [ -n "$out" ]; then
    echo "$out"; echo "yapf: apply with $PY -m yapf -i FILE" >&2; exit 1
fi
echo "metafiles"; $PY .dev_scripts/check_metafile.py
