#!/usr/bin/env bash
# Builds this plugin as a WebAssembly component into dist/:
#
#     bash build.sh        # -> dist/NAME.wasm + dist/NAME.toml
#
# NAME is the manifest's `name` (plugin.toml). Installs the wasm32-wasip2
# target through rustup when it is missing. Honours CARGO_TARGET_DIR.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
triple=wasm32-wasip2

if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$triple"; then
    rustup target add "$triple"
fi

cargo build --release --target "$triple"

name="$(sed -n 's/^name[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' plugin.toml | head -n 1)"
# A cdylib's file is named after the crate, with `_` for `-`.
wasm="${CARGO_TARGET_DIR:-target}/$triple/release/{{crate_name}}.wasm"

mkdir -p dist
cp "$wasm" "dist/$name.wasm"
cp plugin.toml "dist/$name.toml"
echo "built dist/$name.wasm ($(($(wc -c <"dist/$name.wasm") / 1024)) KiB)"
