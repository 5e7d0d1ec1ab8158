#!/usr/bin/env bash
# Builds the Extism baseline plugin in plugins/extism/noop/ (an `extism-pdk`
# plugin, the equivalent of the component `noop`) and copies it into a dist
# folder:
#
#     plugins/extism/build.sh [DIST]    # DIST defaults to plugins/dist
#
# DIST gets extism/noop.wasm (a subfolder: plugin discovery only looks at
# components directly in DIST, and this is a core module, not a plugin). CARGO_TARGET_DIR overrides cargo's target folder
# (default plugins/extism/noop/target). The file is left alone when already up
# to date.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
crate="$here/noop"
dist="${1:-$here/../dist}"
target_dir="${CARGO_TARGET_DIR:-$crate/target}"
mkdir -p "$target_dir"
target_dir="$(cd "$target_dir" && pwd)"
triple=wasm32-unknown-unknown

if command -v rustup >/dev/null 2>&1; then
    # Run from the crate so its rust-toolchain.toml picks the toolchain.
    if ! (cd "$crate" && rustup target list --installed) | grep -qx "$triple"; then
        (cd "$crate" && rustup target add "$triple")
    fi
fi

(cd "$crate" && CARGO_TARGET_DIR="$target_dir" cargo build --release --target "$triple")

wasm="$target_dir/$triple/release/extism_noop.wasm"
if [[ ! -f "$wasm" ]]; then
    echo "error: no module built at $wasm" >&2
    exit 1
fi

mkdir -p "$dist/extism"
out="$(cd "$dist/extism" && pwd)/noop.wasm"
if ! cmp -s "$wasm" "$out"; then
    cp "$wasm" "$out.tmp"
    mv -f "$out.tmp" "$out"
    echo "updated $out"
fi
