#!/usr/bin/env bash
# Builds the JavaScript plugins in plugins/js/ as WebAssembly components and
# collects them, with their manifests, into a dist folder:
#
#     plugins/js/build.sh [DIST]        # DIST defaults to plugins/dist
#
# Every folder here with a plugin.toml is a plugin whose entry module is
# plugin.js; DIST gets NAME.wasm and NAME.toml, where NAME is the manifest's
# `name`. The toolchain (componentize-js and jco, pinned in package-lock.json)
# is installed with `npm ci` when node_modules is missing or older than the
# lockfile. The plugins import the lockstep SDK from sdk/js; its WIT type
# declarations (sdk/js/lockstep/types) are checked against what jco
# generates. A component is rebuilt only when a source, the SDK, the WIT, the
# lockfile or this script is newer than it, so a second run with nothing
# changed is quick and touches nothing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
wit="$root/wit/v0.2.0"
sdk="$root/sdk/js"
dist="${1:-$here/../dist}"
mkdir -p "$dist"
dist="$(cd "$dist" && pwd)"

if ! command -v node >/dev/null 2>&1; then
    echo "error: node (20 or later) is required to build the JavaScript plugins" >&2
    exit 1
fi

# npm ci writes node_modules/.package-lock.json, so it is older than the
# lockfile (or missing) exactly when node_modules needs reinstalling.
installed="$here/node_modules/.package-lock.json"
if [[ ! -f "$installed" || "$here/package-lock.json" -nt "$installed" || "$here/package.json" -nt "$installed" ]]; then
    (cd "$here" && npm ci --no-audit --no-fund)
fi
componentize="$here/node_modules/.bin/componentize-js"

# The SDK's type declarations must be what jco generates from the WIT.
types="$sdk/lockstep/types"
if [[ ! -f "$types/.checked" || -n "$(find "$wit" "$installed" -newer "$types/.checked" -print -quit)" ]]; then
    fresh="$(mktemp -d)"
    "$here/node_modules/.bin/jco" guest-types "$wit" --world-name plugin -o "$fresh" >/dev/null
    # A `**/*` in the WIT's docs would end the generated doc comment.
    find "$fresh" -name '*.d.ts' -exec sed -i 's#\*\*/\*#**\\/*#g' {} +
    if ! diff -r -x .checked "$fresh" "$types" >/dev/null; then
        echo "error: $types differs from what jco generates (in $fresh); replace it:" >&2
        echo "  rm -r $types && mv $fresh $types" >&2
        exit 1
    fi
    rm -rf "$fresh"
    touch "$types/.checked"
fi

# The plugins use no WASI at all: the only imports left are the lockstep
# interfaces. (Without this the engine imports wasi:cli, wasi:clocks,
# wasi:random, wasi:io and wasi:http for console, timers, Math.random and
# fetch, none of which a plugin may use.)
no_wasi=(stdio random clocks http fetch-event)

# shellcheck source=plugins/lib.sh
source "$here/../lib.sh"

# Whether anything a component is built from is newer than $1. Modules of
# every plugin and of the SDK count, since a plugin may import shared ones
# with `../`.
stale() {
    [[ ! -f "$1" ]] && return 0
    [[ -n "$(find "$here" "$sdk" -path "$here/node_modules" -prune -o -type f \
        \( \( -name '*.js' -o -name '*.mjs' \) ! -name '*.test.js' \
        -o -name package-lock.json -o -name build.sh \) -newer "$1" -print -quit)" ]] && return 0
    [[ -n "$(find "$wit" -type f -name '*.wit' -newer "$1" -print -quit)" ]]
}

plugins="$(plugins_in "$here" plugin.js)"
while read -r dir name; do
    [[ -n "$dir" ]] || continue
    dir="$(basename "$dir")"
    out="$dist/$name.wasm"
    if stale "$out"; then
        echo "building $name from $dir/plugin.js"
        start=$SECONDS
        # Run from the repository's root: while the component is
        # pre-initialised its modules are read relative to the folder it runs
        # in, and nothing outside it (the SDK is in sdk/js); its stack traces
        # name them so (plugins/js/json-format/plugin.js).
        (cd "$root" && "$componentize" "plugins/js/$dir/plugin.js" --wit "$wit" --world-name plugin \
            --disable "${no_wasi[@]}" --out "$out.tmp")
        mv -f "$out.tmp" "$out"
        echo "updated $out ($(($(wc -c <"$out") / 1024)) KiB, $((SECONDS - start)) s)"
    fi
    install_if_changed "$here/$dir/plugin.toml" "$dist/$name.toml"
done <<<"$plugins"
echo "$(grep -c . <<<"$plugins") JavaScript plugins in $dist"
