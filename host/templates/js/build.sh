#!/usr/bin/env bash
# Builds this plugin as a WebAssembly component into dist/ with
# componentize-js:
#
#     bash build.sh        # -> dist/NAME.wasm + dist/NAME.toml
#
# NAME is the manifest's `name` (plugin.toml). The toolchain, pinned in
# package-lock.json, is installed with `npm ci` when node_modules is missing
# or older than the lockfile. COMPONENTIZE_JS may name an installed
# componentize-js (0.23.0) to use instead, skipping npm.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
name="$(sed -n 's/^name[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' plugin.toml | head -n 1)"

if ! command -v node >/dev/null 2>&1; then
    echo "error: node (20 or later) is required to build a JavaScript plugin" >&2
    exit 1
fi
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

# Every optional WASI feature is disabled, so the component imports nothing
# but the lockstep:plugin interfaces: no console, clock, randomness or fetch.
# componentize-js reads plugin.js's own imports (./markers.js) relative to
# this folder while it pre-initialises the engine.
mkdir -p dist
"$componentize" plugin.js --wit wit --world-name plugin \
    --disable stdio random clocks http fetch-event --out "dist/$name.wasm.tmp"
mv -f "dist/$name.wasm.tmp" "dist/$name.wasm"
cp plugin.toml "dist/$name.toml"
echo "built dist/$name.wasm ($(($(wc -c <"dist/$name.wasm") / 1024)) KiB)"
