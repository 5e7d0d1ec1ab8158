#!/usr/bin/env bash
# Builds this plugin as a WebAssembly component into dist/ with
# componentize-py:
#
#     bash build.sh        # -> dist/NAME.wasm + dist/NAME.toml
#
# NAME is the manifest's `name` (plugin.toml). The pinned componentize-py
# (requirements.txt) is installed into a virtualenv: .venv here, created with
# $PYTHON (default python3), or the one PLUGIN_VENV names (to share one
# between plugins). It is installed only when missing or when
# requirements.txt changes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
venv="${PLUGIN_VENV:-$here/.venv}"
name="$(sed -n 's/^name[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' plugin.toml | head -n 1)"

if [[ ! -x "$venv/bin/python" ]]; then
    echo "creating $venv"
    "${PYTHON:-python3}" -m venv "$venv"
fi
stamp="$venv/.installed-requirements.txt"
if [[ ! -x "$venv/bin/componentize-py" ]] || ! cmp -s requirements.txt "$stamp"; then
    echo "installing $(tr '\n' ' ' < requirements.txt)"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
    cp requirements.txt "$stamp"
fi

# componentize-py imports app.py now and snapshots the initialised
# interpreter: only the modules imported then are in the component. (An
# activated virtualenv would add its site-packages to the app's path.)
mkdir -p dist
env -u VIRTUAL_ENV "$venv/bin/componentize-py" -q -d wit -w plugin \
    componentize -p . app -o "dist/$name.wasm.tmp"
mv -f "dist/$name.wasm.tmp" "dist/$name.wasm"
cp plugin.toml "dist/$name.toml"
echo "built dist/$name.wasm ($(($(wc -c <"dist/$name.wasm") / 1024 / 1024)) MiB)"
