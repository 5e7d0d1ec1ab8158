#!/usr/bin/env bash
# Builds the Python plugins in plugins/python/ as WebAssembly components with
# componentize-py and collects them, with their manifests, into a dist folder:
#
#     plugins/python/build.sh [DIST]     # DIST defaults to plugins/dist
#
# Every folder here with a plugin.toml and an app.py is one plugin; DIST gets
# NAME.wasm and NAME.toml, where NAME is the manifest's `name`. The pinned
# componentize-py (requirements.txt) lives in plugins/python/.venv, created
# with $PYTHON (default python3) and installed only when missing or when
# requirements.txt changes. The plugins import the lockstep SDK from
# sdk/python; its stub bindings (sdk/python/stubs, for editors and the tests)
# are checked against what this componentize-py generates. A component is
# rebuilt only when a source, the SDK, the WIT or requirements.txt is newer
# than it, so a second run is quick.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
wit="$(cd "$here/../../wit/v0.2.0" && pwd)"
dist="${1:-$here/../dist}"
mkdir -p "$dist"
dist="$(cd "$dist" && pwd)"
sdk="$(cd "$here/../../sdk/python" && pwd)"
venv="$here/.venv"
world=plugin

# --- toolchain -------------------------------------------------------------
if [[ ! -x "$venv/bin/python" ]]; then
    echo "creating $venv"
    "${PYTHON:-python3}" -m venv "$venv"
fi
stamp="$venv/.installed-requirements.txt"
if [[ ! -x "$venv/bin/componentize-py" ]] || ! cmp -s "$here/requirements.txt" "$stamp"; then
    echo "installing $(tr '\n' ' ' < "$here/requirements.txt")"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$stamp"
fi
# An activated virtualenv would add its site-packages to the app's path.
componentize_py() { env -u VIRTUAL_ENV "$venv/bin/componentize-py" "$@"; }

# True when $1 is missing or any later argument (file or folder) has a file
# newer than it.
stale() {
    local target="$1"
    shift
    [[ -e "$target" ]] || return 0
    [[ -n "$(find "$@" -type f -newer "$target" ! -path '*/__pycache__/*' -print -quit)" ]]
}

# shellcheck source=plugins/lib.sh
source "$here/../lib.sh"

# --- the SDK's stub bindings must be what componentize-py generates --------
if stale "$sdk/stubs/.checked" "$wit" "$stamp"; then
    fresh="$(mktemp -d)"
    componentize_py -q -d "$wit" -w "$world" bindings "$fresh/stubs"
    if ! diff -r -x .checked -x __pycache__ "$fresh/stubs" "$sdk/stubs" >/dev/null; then
        rm -rf "$fresh"
        echo "error: $sdk/stubs differs from what componentize-py generates; regenerate it:" >&2
        echo "  rm -r $sdk/stubs && $venv/bin/componentize-py -d $wit -w $world bindings $sdk/stubs" >&2
        exit 1
    fi
    rm -rf "$fresh"
    touch "$sdk/stubs/.checked"
fi

# --- plugins -----------------------------------------------------------------
plugins="$(plugins_in "$here" app.py)"
while read -r dir name; do
    [[ -n "$dir" ]] || continue
    out="$dist/$name.wasm"
    # Tests are not part of the component, so they do not make it stale.
    mapfile -t sources < <(find "$dir" "$sdk/lockstep_sdk" -type f -name '*.py' ! -name 'test_*.py' ! -path '*/__pycache__/*')
    if stale "$out" "${sources[@]}" "$wit" "$stamp"; then
        start=$SECONDS
        # componentize-py imports app.py at build time and snapshots the
        # initialised interpreter; only the modules imported then are in it.
        rm -f "$out.tmp"
        (cd "$dir" && componentize_py -q -d "$wit" -w "$world" componentize -p . -p "$sdk" app -o "$out.tmp")
        mv -f "$out.tmp" "$out"
        echo "built $out ($(($(stat -c %s "$out") / 1024 / 1024)) MiB, $((SECONDS - start)) s)"
    fi
    install_if_changed "$dir/plugin.toml" "$dist/$name.toml"
done <<<"$plugins"
echo "$(grep -c . <<<"$plugins") Python plugins in $dist"
