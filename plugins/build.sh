#!/usr/bin/env bash
# Builds the example plugins in plugins/rust/ as WebAssembly components and
# collects them, with their manifests, into a dist folder:
#
#     plugins/build.sh [DIST]        # DIST defaults to plugins/dist
#
# For every crate with a plugin.toml, DIST gets NAME.wasm and NAME.toml, where
# NAME is the manifest's `name`. PLUGINS_TARGET_DIR overrides cargo's target
# folder (default plugins/rust/target). Files already up to date are left
# alone, so a second run with nothing changed is quick and touches nothing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
workspace="$here/rust"
dist="${1:-$here/dist}"
target_dir="${PLUGINS_TARGET_DIR:-$workspace/target}"
mkdir -p "$target_dir"
target_dir="$(cd "$target_dir" && pwd)"
triple=wasm32-wasip2

if command -v rustup >/dev/null 2>&1; then
    # Run from the workspace so rust-toolchain.toml picks the toolchain.
    if ! (cd "$workspace" && rustup target list --installed) | grep -qx "$triple"; then
        (cd "$workspace" && rustup target add "$triple")
    fi
fi

(cd "$workspace" && CARGO_TARGET_DIR="$target_dir" cargo build --release --target "$triple")

mkdir -p "$dist"
out="$target_dir/$triple/release"

# shellcheck source=plugins/lib.sh
source "$here/lib.sh"

plugins="$(plugins_in "$workspace" Cargo.toml)"
while read -r dir name; do
    [[ -n "$dir" ]] || continue
    crate="$(basename "$dir")"
    # A cdylib's file uses the crate name with `_`; a binary keeps its `-`.
    wasm="$out/${crate//-/_}.wasm"
    [[ -f "$wasm" ]] || wasm="$out/$crate.wasm"
    if [[ ! -f "$wasm" ]]; then
        echo "error: no component built for $crate in $out" >&2
        exit 1
    fi
    install_if_changed "$wasm" "$dist/$name.wasm"
    install_if_changed "$dir/plugin.toml" "$dist/$name.toml"
done <<<"$plugins"
echo "$(grep -c . <<<"$plugins") plugins in $dist"
