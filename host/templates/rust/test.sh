#!/usr/bin/env bash
# Everything the plugin is checked with: the unit tests, the build, then the
# component run by lockstep's harness against tests/fixture, its result
# compared with tests/expected. LOCKSTEP names the lockstep binary (default:
# `lockstep` on PATH).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
name="$(sed -n 's/^name[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' plugin.toml | head -n 1)"

cargo test
bash build.sh
"${LOCKSTEP:-lockstep}" plugin test "dist/$name.wasm" \
    --project tests/fixture --action tests/action.toml --expect tests/expected
