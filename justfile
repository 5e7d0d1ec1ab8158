# lockstep — the contributor's verbs. Run through ./dev on a fresh machine.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Build the host, the CLI and the test binaries.
build:
    cargo build --workspace --all-targets

# Build the example plugins into plugins/dist (installs the wasm32-wasip2 target if missing).
plugins:
    bash plugins/build.sh

# The whole test suite on SQLite and PostgreSQL (starts PostgreSQL if it is not answering).
test: plugins
    bash scripts/ensure-postgres.sh
    cargo test --workspace --all-targets

# Everything, at full size (long-running reliability runs included).
test-full: test
    cargo test --workspace --all-targets -- --include-ignored

# Criterion benchmarks.
bench: plugins
    bash scripts/ensure-postgres.sh
    cargo bench -p lockstep

# A real plan end to end on the embedded SQLite default, with the example plugins.
demo: plugins
    cargo build -p lockstep
    bash scripts/demo.sh

# Fuzz TARGET (path_normalize, changeset_validate, action_parse) RUNS times; installs cargo-fuzz if missing.
fuzz TARGET RUNS="1000000":
    rustup run nightly rustc --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
    command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
    cargo +nightly fuzz run {{TARGET}} -- -runs={{RUNS}} -print_final_stats=1

# Formatting and lints, warnings as errors.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
