#!/usr/bin/env bash
# Quick start, command 1: install (idempotent), then the whole NCKD story on
# the embedded Omniglot-242 data: train (or reuse) the teacher, train the
# student alone, distil it with KD and with NCKD, evaluate every last
# checkpoint with tools/test.py and print top-1 and NC metrics.
# About 30 minutes on 2 CPU cores (the teacher 10). Extra arguments go to efficacy.py,
# e.g. --seeds 0 1 2 or --methods student kd nckd nckd_kd.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
exec .venv/bin/python .dev_scripts/benchmark/efficacy.py omniglot \
    --work-dir work_dirs/demo --seeds 0 --methods student kd nckd "$@"
