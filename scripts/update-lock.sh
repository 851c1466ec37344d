#!/usr/bin/env bash
# Regenerate requirements/lock.txt: install the package and the BIDS validator into a fresh
# virtualenv (newest versions allowed by pyproject.toml) and pin everything it pulled in.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(mktemp -d)/venv"
trap 'rm -rf "$(dirname "$venv")"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet . bids-validator-deno
{
    sed -n '1,/^# Regenerate/p' requirements/lock.txt
    "$venv/bin/pip" freeze --exclude tspo-bids | grep '=='
} > requirements/lock.txt.new
mv requirements/lock.txt.new requirements/lock.txt
echo "requirements/lock.txt: $(grep -c '==' requirements/lock.txt) pins"
