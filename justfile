# lockstep — the contributor's verbs. Run through ./dev on a fresh machine.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Build the host, the CLI and the test binaries.
build:
    cargo build --workspace --all-targets

# Build every example plugin into plugins/dist: Rust (installs the wasm32-wasip2
# target if missing), Python (componentize-py in a venv), JavaScript (componentize-js via npm).
plugins:
    bash plugins/build.sh
    bash plugins/python/build.sh
    bash plugins/js/build.sh

# The whole test suite on SQLite and PostgreSQL (starts PostgreSQL if it is not
# answering; installs Debian's chromium and chromium-driver for the dashboard's
# browser test if they are missing).
test: plugins
    bash scripts/ensure-postgres.sh
    bash scripts/ensure-browser.sh
    cargo test --workspace --all-targets

# Everything, at full size (long-running reliability runs included; the
# PostgreSQL restart test runs alone at the end since it stops the server).
# The criterion benches run once each in test mode, without libtest's flags
# (their harness rejects `--include-ignored`).
test-full: plugins
    bash scripts/ensure-postgres.sh
    bash scripts/ensure-browser.sh
    LOCKSTEP_CRASH_TRIALS=200 cargo test --workspace --lib --bins --tests --examples -- --include-ignored --skip postgres_server_restarted_mid_phase
    cargo test --workspace --doc
    cargo test --workspace --benches
    cargo test -p lockstep-tests --test faults postgres_server_restarted_mid_phase -- --ignored

# Check that the default (release) build of `lockstep` has no fault-injection
# hooks; they exist only in the test crate's builds.
no-fault-hooks:
    bash scripts/check-no-fault-hooks.sh

# Criterion benchmarks.
bench: plugins
    bash scripts/ensure-postgres.sh
    cargo bench -p lockstep --bench locks --bench plugins

# The worker fleet: plans/s burn-down for 1, 2, 4 in-process workers and the
# idle pickup latency, on SQLite and PostgreSQL; writes docs/perf/fleet-*.csv.
# FLEET_PLANS, FLEET_WORKERS, FLEET_CONCURRENCY, FLEET_BACKENDS change the run.
bench-fleet: plugins
    bash scripts/ensure-postgres.sh
    cargo bench -p lockstep --features db-stats --bench fleet

# The service under load on loopback: 200 event streams, steady reads and
# submissions for SERVICE_SECONDS (default 30); throughput, p50/p99, errors,
# lost events. SERVICE_DATABASE_URL runs it on PostgreSQL. Built with the
# db-stats counters like bench-fleet and compare (one relaxed atomic add per
# database request), so one optimised build serves all three.
bench-service: plugins
    cargo bench -p lockstep --features db-stats --bench service

# Each figure beside its baseline, with the ratio and the goal. Also builds the
# extism baseline (bench/extism, its own workspace: it brings another wasmtime).
# `./dev compare --check` exits non-zero when a goal is missed.
compare *ARGS: plugins
    bash scripts/ensure-postgres.sh
    bash plugins/extism/build.sh
    cd bench/extism && cargo build --release --target-dir ../../target/extism
    cargo bench -p lockstep --features db-stats --bench compare -- {{ARGS}}

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

# How costs grow with table size, steps and bytes; writes docs/perf/*.csv and the charts.
scale: plugins
    bash scripts/ensure-postgres.sh
    cargo bench -p lockstep --bench scale
    bash docs/perf/plot.sh

# The binary as installs get it (stripped, thin LTO): target/dist/lockstep.
dist:
    cargo build -p lockstep --bin lockstep --profile dist
    ls -l target/dist/lockstep
