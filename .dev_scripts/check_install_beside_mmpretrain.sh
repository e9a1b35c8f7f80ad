#!/usr/bin/env bash
# Check that `pip install -e .` fits into an environment that already has
# mmpretrain 1.2 and another torch 2.x: pip must not plan to replace torch.
# The existing torch is a metadata-only stand-in (torch 2.5.1's dist-info), which
# is all pip's resolver reads; a real second torch wheel is a multi-GB download.
# Needs PyPI. Usage: bash .dev_scripts/check_install_beside_mmpretrain.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
pip="$tmp/venv/bin/pip --disable-pip-version-check"
$pip install -q --no-deps mmpretrain==1.2.0 mmengine==0.10.7 numpy==2.3.5 'setuptools<81'
site=$("$tmp/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$site/torch-2.5.1.dist-info"
printf 'Metadata-Version: 2.1\nName: torch\nVersion: 2.5.1\n' > "$site/torch-2.5.1.dist-info/METADATA"
: > "$site/torch-2.5.1.dist-info/RECORD"
plan=$($pip install --dry-run -e . 2>&1 | grep '^Would install' || true)
echo "$plan"
if [ -z "$plan" ]; then
    echo "FAIL: pip planned no install (resolution failed?)" >&2; exit 1
fi
if echo "$plan" | grep -Eq '(^| )(torch|mmpretrain|mmengine)-[0-9]'; then
    echo "FAIL: pip would replace torch, mmpretrain or mmengine" >&2; exit 1
fi
echo "OK: torch 2.5.1, mmpretrain 1.2.0 and mmengine 0.10.7 stay as they are"
