#!/usr/bin/env bash
# Release builds carry no fault-injection hooks and no database counters
# (the `db-stats` feature). Builds the `lockstep` binary
# with its default features — what `cargo build --release` and
# `cargo install` build; the dev profile only so the build is reused — and
# fails if it holds any trace of the apply hooks (the names of their
# environment variables, the message of the injected crash). As a control,
# the test host the crash tests run (built with the `fault-injection`
# feature) must hold them, so the search itself is known to work.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target="${CARGO_TARGET_DIR:-target}/debug"
# The last marker is the `db-stats` counters' (host/src/db/stats.rs), also
# on in the test crate's builds.
markers=(LOCKSTEP_FAULT_APPLY_ "fault injection: stopping after" lockstep-db-stats-counters)

has_marker() {
    local marker
    for marker in "${markers[@]}"; do
        if grep -aqF "$marker" "$1"; then
            echo "$1 contains \`$marker\`" >&2
            return 0
        fi
    done
    return 1
}

cargo test -p lockstep-tests --no-run --quiet
for marker in "${markers[@]}"; do
    if ! grep -aqF "$marker" "$target/lockstep-test-host"; then
        echo "control failed: the test host has no \`$marker\`; has the hook changed? update this script" >&2
        exit 1
    fi
done

cargo build -p lockstep --bin lockstep --quiet
if has_marker "$target/lockstep"; then
    echo "fault-injection hooks or db-stats counters leaked into the default build of lockstep" >&2
    exit 1
fi
echo "no fault-injection hooks and no db-stats counters in the default build of lockstep"
