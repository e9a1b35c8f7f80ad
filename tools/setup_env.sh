#!/usr/bin/env bash
# Install what mmnckd needs into .venv at the repo root (idempotent):
# the Debian Fashion-MNIST package when run as root, the Python requirements
# at the versions of requirements/constraints.txt, and mmnckd itself in
# editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."

FMNIST=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ ! -f "$FMNIST" ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null
    else
        echo "Fashion-MNIST missing: sudo apt-get install dataset-fashion-mnist" >&2
    fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
STAMP=.venv/.mmnckd-requirements
WANT=$(cat requirements/*.txt setup.py | sha1sum | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    # the ranges of requirements/*.txt at the exact versions we test with
    .venv/bin/pip install -q --disable-pip-version-check \
        -c requirements/constraints.txt -r requirements.txt
    .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
    echo "$WANT" > "$STAMP"
fi
