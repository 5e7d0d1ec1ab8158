#!/usr/bin/env bash
# Builds this plugin as a WebAssembly component into dist/ with
# componentize-js:
#
#     bash build.sh [--verbose]     # -> dist/NAME.wasm + dist/NAME.toml
#
# NAME is the manifest's `name` (plugin.toml). First `node --check` reads
# every .js file here (a syntax check, a second at most): an error stops the
# build as `FILE:LINE: SyntaxError: message`. The toolchain, pinned in
# package-lock.json, is installed with `npm ci` when node_modules is missing
# or older than the lockfile; COMPONENTIZE_JS may name an installed
# componentize-js (0.23.0) to use instead, skipping npm. When componentize-js
# fails, your error comes first (`plugin.js:12:5: TypeError: …`);
# --verbose (or -v) shows its whole output instead.
set -euo pipefail

case "${1:-}" in -v | --verbose) verbose=1 ;; "") verbose=0 ;; *) echo "usage: bash build.sh [--verbose]" >&2 && exit 2 ;; esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
name="$(sed -n 's/^name[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' plugin.toml | head -n 1)"

if ! command -v node >/dev/null 2>&1; then
    echo "error: node (20 or later) is required to build a JavaScript plugin" >&2
    exit 1
fi

# --- the syntax check: every .js file of the plugin, before the slow build ---
failed=0
while IFS= read -r -d '' file; do
    file="${file#./}"
    if ! out="$(node --check "$file" 2>&1)"; then
        failed=1
        # node says `/abs/FILE.js:LINE`, the line, a caret, then the error.
        line="$(sed -n '1s/.*:\([0-9][0-9]*\)$/\1/p' <<<"$out")"
        error="$(grep -m 1 -E '^[A-Za-z]*Error: ' <<<"$out" || echo "SyntaxError")"
        echo "$file:${line:-?}: $error" >&2
        sed -n '2,3s/^/    /p' <<<"$out" >&2
    fi
done < <(find . \( -path ./node_modules -o -path ./dist -o -path ./tests \) -prune \
    -o -type f \( -name '*.js' -o -name '*.mjs' \) -print0 | sort -z)
if [[ $failed == 1 ]]; then
    exit 1
fi

# --- the toolchain -------------------------------------------------------------
componentize="${COMPONENTIZE_JS:-}"
if [[ -z "$componentize" ]]; then
    # npm ci writes node_modules/.package-lock.json, so it is older than the
    # lockfile (or missing) exactly when node_modules needs reinstalling.
    installed=node_modules/.package-lock.json
    if [[ ! -f "$installed" || package-lock.json -nt "$installed" || package.json -nt "$installed" ]]; then
        npm ci --no-audit --no-fund
    fi
    componentize=node_modules/.bin/componentize-js
fi

# --- the component ---------------------------------------------------------------
# Every optional WASI feature is disabled, so the component imports nothing
# but the lockstep:plugin interfaces: no console, clock, randomness or fetch.
# componentize-js reads plugin.js's own imports (./markers.js, ./lockstep/)
# relative to this folder while it pre-initialises the engine: a module
# outside it cannot be imported.
mkdir -p dist
componentize=("$componentize" plugin.js --wit wit --world-name plugin
    --disable stdio random clocks http fetch-event --out "dist/$name.wasm.tmp")
if [[ $verbose == 1 ]]; then
    "${componentize[@]}"
else
    log="$(mktemp)"
    trap 'rm -f "$log"' EXIT
    if ! "${componentize[@]}" >"$log" 2>&1; then
        # Your error first: what the engine threw while it ran plugin.js's
        # top level, as FILE:LINE:COLUMN, and its stack.
        node - "$log" >&2 <<'JS'
const text = require('node:fs').readFileSync(process.argv[2], 'utf8');
const lines = text.split('\n');
const top = lines.findIndex((l) => l.includes('Exception while evaluating top-level script'));
if (top >= 0 && lines[top + 1]) {
  console.log(lines[top + 1].replace(/^(\S+:\d+:\d+) /, '$1: '));
  const stack = lines.slice(top + 2).filter((l) => /^\s+\S+@|^\s*@/.test(l));
  for (const l of stack) console.log(`    ${l.trim()}`);
} else {
  const error = lines.find((l) => /^\w*Error: /.test(l));
  console.log(`componentize-js failed: ${error ?? lines.filter((l) => l.trim())[0] ?? ''}`);
}
JS
        echo "(the whole output of componentize-js: bash build.sh --verbose)" >&2
        exit 1
    fi
fi
mv -f "dist/$name.wasm.tmp" "dist/$name.wasm"
cp plugin.toml "dist/$name.toml"
echo "built dist/$name.wasm ($(($(wc -c <"dist/$name.wasm") / 1024)) KiB)"
