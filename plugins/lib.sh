# Helpers shared by the example plugins' build scripts (build.sh here and in
# python/ and js/); they source this file.

# Prints "DIR NAME" for every folder of $1 that has a plugin.toml, NAME being
# its manifest's `name`; stops the build when a manifest has no name or a
# folder lacks the entry file $2.
plugins_in() {
    local manifest dir name
    for manifest in "$1"/*/plugin.toml; do
        [[ -f "$manifest" ]] || continue
        dir="$(dirname "$manifest")"
        name="$(sed -n 's/^name[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$manifest" | head -n 1)"
        if [[ -z "$name" ]]; then
            echo "error: $manifest has no name" >&2
            return 1
        fi
        if [[ ! -f "$dir/$2" ]]; then
            echo "error: $dir has no $2" >&2
            return 1
        fi
        echo "$dir $name"
    done
}

# Copies $1 to $2 unless $2 already has the same contents.
install_if_changed() {
    if ! cmp -s "$1" "$2"; then
        cp "$1" "$2.tmp"
        mv -f "$2.tmp" "$2"
        echo "updated $2"
    fi
}
