#!/usr/bin/env bash
# Builds this plugin as a WebAssembly component into dist/ with
# componentize-py:
#
#     bash build.sh [--verbose]     # -> dist/NAME.wasm + dist/NAME.toml
#
# NAME is the manifest's `name` (plugin.toml). First every .py file here is
# compiled by python3 (a syntax check, a second at most): an error stops the
# build as `FILE:LINE: SyntaxError: message`. Then the pinned componentize-py
# (requirements.txt) is installed into a virtualenv: .venv here, created with
# $PYTHON (default python3), or the one PLUGIN_VENV names (to share one
# between plugins); it is installed only when missing or when
# requirements.txt changes. When componentize-py fails, your error comes
# first (`app.py:12: NameError: name 'x' is not defined`) with the Python
# traceback; --verbose (or -v) shows componentize-py's whole output instead.
set -euo pipefail

case "${1:-}" in -v | --verbose) verbose=1 ;; "") verbose=0 ;; *) echo "usage: bash build.sh [--verbose]" >&2 && exit 2 ;; esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
venv="${PLUGIN_VENV:-$here/.venv}"
name="$(sed -n 's/^name[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' plugin.toml | head -n 1)"

# --- the syntax check: every .py file of the plugin, before the slow build ---
"${PYTHON:-python3}" - <<'PY'
import os
import sys

failed = False
skip = {".venv", "dist", "stubs", "tests", "__pycache__", "node_modules"}
for root, dirs, files in os.walk("."):
    dirs[:] = sorted(d for d in dirs if d not in skip and not d.startswith("."))
    for file in sorted(f for f in files if f.endswith(".py")):
        path = os.path.relpath(os.path.join(root, file))
        with open(path, "rb") as source:
            code = source.read()
        try:
            compile(code, path, "exec", dont_inherit=True)
        except SyntaxError as e:
            failed = True
            print(f"{path}:{e.lineno}: {type(e).__name__}: {e.msg}", file=sys.stderr)
            if e.text:
                print(f"    {e.text.strip()}", file=sys.stderr)
                if e.offset:
                    indent = len(e.text) - len(e.text.lstrip())
                    print(" " * (4 + e.offset - 1 - indent) + "^", file=sys.stderr)
sys.exit(1 if failed else 0)
PY

# --- the toolchain -------------------------------------------------------------
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

# --- the component ---------------------------------------------------------------
# componentize-py imports app.py now and snapshots the initialised
# interpreter: only the modules imported then are in the component. (An
# activated virtualenv would add its site-packages to the app's path.)
mkdir -p dist
componentize=(env -u VIRTUAL_ENV "$venv/bin/componentize-py" -q -d wit -w plugin
    componentize -p . app -o "dist/$name.wasm.tmp")
if [[ $verbose == 1 ]]; then
    "${componentize[@]}"
else
    log="$(mktemp)"
    trap 'rm -f "$log"' EXIT
    if ! env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "${componentize[@]}" >"$log" 2>&1; then
        # Your error first: the Python traceback componentize-py wraps, the
        # innermost frame of this project named as FILE:LINE.
        "$venv/bin/python" - "$log" >&2 <<'PY'
import re
import sys

text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
start = text.find("AssertionError: ")
block = text[start + len("AssertionError: "):] if start >= 0 else text
end = block.find("\n\nCaused by:")
block = (block[:end] if end >= 0 else block).strip()
# The project's folder is mapped to /0/ inside componentize-py.
block = re.sub(r'"/\d+/', '"', block)
frames = re.findall(r'File "([^"/][^"]*)", line (\d+)', block)
lines = [line for line in block.splitlines() if line.strip()]
error = next((line for line in reversed(lines) if not line.startswith(" ")), None)
if frames and error:
    path, line = frames[-1]
    print(f"{path}:{line}: {error}")
    for line in lines:
        print(f"    {line}")
else:
    print("componentize-py failed:")
    for line in lines[:20]:
        print(f"    {line}")
PY
        echo "(the whole output of componentize-py: bash build.sh --verbose)" >&2
        exit 1
    fi
fi
mv -f "dist/$name.wasm.tmp" "dist/$name.wasm"
cp plugin.toml "dist/$name.toml"
echo "built dist/$name.wasm ($(($(wc -c <"dist/$name.wasm") / 1024 / 1024)) MiB)"
