//! `extism-baseline`: the plugin call overhead of the `extism` crate's host,
//! calling the Extism equivalent of the `noop` plugin
//! (`plugins/extism/noop`, built to `plugins/dist/extism/noop.wasm`).
//!
//! ```text
//! extism-baseline --plugin plugins/dist/extism/noop.wasm --iterations 20000
//! ```
//!
//! It measures, each call timed on its own after a warm-up of N/10 calls:
//!
//! - `call_*`: one `execute` call into a plugin that is already loaded and
//!   instantiated (median, 10th and 90th percentiles);
//! - `new_from_compiled_and_call_median_ns`: a new plugin made from the
//!   already compiled module, one `execute` call, and dropping the plugin,
//!   the equivalent of an instantiate + call through lockstep.
//!
//! `just compare` (`host/benches/compare.rs`) runs it as a subprocess in the
//! same run as its own figures and reads the one JSON line it prints on
//! stdout. Diagnostics go to stderr.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use extism::{CompiledPlugin, Manifest, Plugin, PluginBuilder, Wasm};

/// The `extism` release this is built against (pinned in `Cargo.toml`).
const EXTISM_VERSION: &str = "1.30.0";

/// The arguments of `execute`, the same step the component benchmark runs.
const INPUT: &[u8] =
    br#"{"plan_id":"bench","step":{"id":"noop","title":"noop","params":[],"targets":[]}}"#;

/// What the noop plugin returns.
const EXPECTED: &[u8] = br#"{"changes":[],"summary":"noop"}"#;

const USAGE: &str = "usage: extism-baseline --plugin PATH [--iterations N]";

struct Args {
    plugin: PathBuf,
    iterations: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut plugin = None;
    let mut iterations = 10_000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--plugin" => plugin = Some(PathBuf::from(args.next().ok_or("--plugin needs a path")?)),
            "--iterations" => {
                let n = args.next().ok_or("--iterations needs a number")?;
                iterations = n
                    .parse()
                    .map_err(|_| format!("--iterations: not a number: {n}"))?;
                if iterations == 0 {
                    return Err("--iterations must be at least 1".into());
                }
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument: {other}\n{USAGE}")),
        }
    }
    let plugin = plugin.ok_or_else(|| format!("missing --plugin\n{USAGE}"))?;
    Ok(Args { plugin, iterations })
}

/// The sample at quantile `q` (0..=1) of sorted samples, the same rule as
/// the main benchmark's median (`samples[len / 2]`).
fn quantile(sorted: &[Duration], q: f64) -> u128 {
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len() - 1);
    sorted[i].as_nanos()
}

/// Runs `f` N/10 times as a warm-up, then N times, each timed on its own;
/// returns the samples sorted.
fn time(iterations: usize, mut f: impl FnMut()) -> Vec<Duration> {
    for _ in 0..iterations.div_ceil(10) {
        f();
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        f();
        samples.push(started.elapsed());
    }
    samples.sort();
    samples
}

fn run(args: &Args) -> Result<String, extism::Error> {
    let manifest = Manifest::new([Wasm::file(&args.plugin)]);

    // WASI enabled, the common default for Extism plugins (and lockstep's
    // plugins get WASI too); no host functions.
    let mut plugin = Plugin::new(&manifest, [], true)?;
    let output = plugin.call::<&[u8], &[u8]>("execute", INPUT)?;
    if output != EXPECTED {
        return Err(extism::Error::msg(format!(
            "unexpected output from execute: {}",
            String::from_utf8_lossy(output)
        )));
    }

    eprintln!("extism {EXTISM_VERSION}: timing {} calls", args.iterations);
    let calls = time(args.iterations, || {
        let output = plugin
            .call::<&[u8], &[u8]>("execute", INPUT)
            .expect("execute failed");
        std::hint::black_box(output);
    });

    // Compiled once; each sample makes a new plugin (store, linker,
    // instance on the first call) from it, calls it once and drops it.
    let compiled = CompiledPlugin::new(PluginBuilder::new(&manifest).with_wasi(true))?;
    eprintln!(
        "extism {EXTISM_VERSION}: timing {} new_from_compiled + call",
        args.iterations
    );
    let fresh = time(args.iterations, || {
        let mut plugin = Plugin::new_from_compiled(&compiled).expect("new_from_compiled failed");
        let output = plugin
            .call::<&[u8], &[u8]>("execute", INPUT)
            .expect("execute failed");
        std::hint::black_box(output);
    });

    // Every value is a number but the version, a fixed string: the line is
    // written by hand to keep the keys in this order.
    Ok(format!(
        concat!(
            r#"{{"extism_version":"{}","call_median_ns":{},"call_p10_ns":{},"#,
            r#""call_p90_ns":{},"new_from_compiled_and_call_median_ns":{},"iterations":{}}}"#,
        ),
        EXTISM_VERSION,
        quantile(&calls, 0.5),
        quantile(&calls, 0.1),
        quantile(&calls, 0.9),
        quantile(&fresh, 0.5),
        args.iterations,
    ))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("extism-baseline: {message}");
            return ExitCode::from(2);
        }
    };
    if !args.plugin.is_file() {
        eprintln!(
            "extism-baseline: plugin not found: {} (build it with plugins/extism/build.sh)",
            args.plugin.display()
        );
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("extism-baseline: {e:#}");
            ExitCode::FAILURE
        }
    }
}
