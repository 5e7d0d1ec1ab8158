#!/usr/bin/env bash
# The demo: a real plan end to end on the embedded SQLite default, with the
# example plugins, on a copy of examples/sample-project; then a second
# session refused while the first holds the plan lock.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin="${CARGO_TARGET_DIR:-target}/debug/lockstep"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
project="$work/sample-project"
cp -R examples/sample-project "$project"
export LOCKSTEP_PLUGIN_PATH="$PWD/plugins/dist"
lk() { "$bin" --project "$project" "$@"; }

echo "━━ lockstep demo: project copied to $project"
lk plugins list
echo
echo "━━ 1. add a license header to every Rust file (strategize → execute → diff → apply)"
lk plan run examples/actions/license-header.toml --yes
echo
echo "━━ the result: src/main.rs and scripts/release.rs now start with"
head -n 3 "$project/src/main.rs"
head -n 4 "$project/scripts/release.rs"

echo
echo "━━ 2. two sessions, one plan: the second is refused while the first holds the lock"
id="$(lk plan new examples/actions/slow.toml)"
lk plan strategize "$id" >/dev/null
lk plan execute "$id" >"$work/first.log" 2>&1 &
first=$!
for _ in $(seq 1 100); do
    lk locks list 2>/dev/null | grep -q "plan:$id" && break
    sleep 0.1
done
set +e
lk plan execute "$id"
code=$?
set -e
echo "(the second session exited with code $code: 3 means lock conflict)"
wait "$first"
echo "the first session finished:"
lk plan status "$id" > "$work/status.txt"
head -n 1 "$work/status.txt"
[[ "$code" == 3 ]]
