#!/usr/bin/env bash
# Renders docs/perf/scale-*.csv as PNG charts with matplotlib (in a venv of its own).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/../../target/plot-venv"
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "matplotlib==3.9.*"
fi
"$venv/bin/python" "$here/plot.py"
