//! `lockstep plugins …`: what the plugin directories hold and what a
//! component is. Presentation only; the work is in [`crate::plugins`].

use std::path::Path;

use crate::plugins::{CompileHook, ComponentInfo, Grant, PluginEngine, PluginInfo};
use crate::visible::{block, line};

/// The progress line for a component compiled rather than loaded from the
/// cache (the first use after a build takes seconds for a Python or
/// JavaScript plugin): on stderr, except with `--json` when stderr is not a
/// terminal — a program reading the JSON does not want it, a person
/// watching does, and plain output goes to people and logs.
pub(crate) fn compile_progress(json: bool, stderr_is_terminal: bool) -> Option<CompileHook> {
    if json && !stderr_is_terminal {
        return None;
    }
    Some(CompileHook::new(|path, cached| {
        eprintln!("{}", compile_line(path, cached));
    }))
}

/// `compiling NAME (first use, cached afterwards)…`.
fn compile_line(path: &Path, cached: bool) -> String {
    let name = path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    let when = match cached {
        true => "first use, cached afterwards",
        false => "no usable cache: compiled on every run",
    };
    format!("compiling {} ({when})…", line(&name))
}

/// `plugins list`: every plugin found, in search order, with its problems.
pub(crate) fn list(engine: &PluginEngine, json: bool) -> anyhow::Result<()> {
    let plugins = engine.list();
    if json {
        println!("{}", crate::visible::json(&plugins));
        return Ok(());
    }
    if plugins.is_empty() {
        let dirs: Vec<String> = engine
            .dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        println!(
            "no plugins found in {}\nPut NAME.wasm and its NAME.toml manifest in one of them, or add a directory with --plugin-dir or {}.",
            if dirs.is_empty() { "(no directories)".to_string() } else { dirs.join(", ") },
            crate::config::PLUGIN_PATH_ENV
        );
        return Ok(());
    }
    print!("{}", table(&plugins));
    Ok(())
}

fn dash(s: Option<String>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or_else(|| "-".into())
}

fn table(plugins: &[PluginInfo]) -> String {
    let rows: Vec<[String; 5]> = plugins
        .iter()
        .map(|p| {
            [
                line(&p.name).into_owned(),
                line(&dash(Some(p.version.clone()))).into_owned(),
                dash(p.kind.map(|k| k.to_string())),
                line(&dash(p.api.clone())).into_owned(),
                line(&p.path.display().to_string()).into_owned(),
            ]
        })
        .collect();
    let header = ["NAME", "VERSION", "KIND", "API", "PATH"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let render = |row: &[String; 5]| {
        let mut out = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.push('\n');
        out
    };
    let mut out = render(&header);
    for (row, p) in rows.iter().zip(plugins) {
        out.push_str(&render(row));
        if let Some(by) = &p.shadowed_by {
            out.push_str(&format!(
                "  shadowed by {}\n",
                line(&by.display().to_string())
            ));
        }
        if let Some(problem) = &p.problem {
            for (i, l) in block(problem).lines().enumerate() {
                out.push_str(if i == 0 { "  problem: " } else { "           " });
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    out
}

/// `plugins precompile`: fill the compiled-component cache.
pub(crate) fn precompile(engine: &PluginEngine, json: bool) -> anyhow::Result<()> {
    let done = engine.precompile();
    if json {
        println!("{}", crate::visible::json(&done));
    } else {
        match engine.cache_dir() {
            Some(dir) => println!("cache: {}", dir.display()),
            None => println!("no cache directory: set LOCKSTEP_CACHE_DIR"),
        }
        for p in &done {
            let what = match (&p.outcome, &p.error) {
                (Some(o), _) => format!("{o:?}").to_lowercase(),
                (None, Some(e)) => format!("error: {e}"),
                (None, None) => "?".into(),
            };
            println!(
                "{:>9.1} ms  {:<9}  {}",
                p.millis,
                block(&what),
                line(&p.path.display().to_string())
            );
        }
    }
    if done.iter().any(|p| p.error.is_some()) {
        anyhow::bail!("some plugins could not be compiled");
    }
    Ok(())
}

/// `plugins inspect PATH|NAME`: a component's world, API version, imports
/// and exports, and what would stop the host from using it.
pub(crate) fn inspect(engine: &PluginEngine, path: &Path, json: bool) -> anyhow::Result<()> {
    let info = engine.inspect(path)?;
    if json {
        println!("{}", crate::visible::json(&info));
    } else {
        print!("{}", block(&describe(&info)));
    }
    Ok(())
}

fn describe(info: &ComponentInfo) -> String {
    let mut out = String::new();
    let mut field = |label: &str, values: &[String]| {
        if values.is_empty() {
            out.push_str(&format!("{label:<10} -\n"));
        }
        for (i, v) in values.iter().enumerate() {
            out.push_str(&format!("{:<10} {v}\n", if i == 0 { label } else { "" }));
        }
    };
    field("component", &[info.path.display().to_string()]);
    field("world", std::slice::from_ref(&info.world));
    field("api", &[dash(info.api.clone())]);
    let manifest = info.manifest.as_ref().map(|m| {
        let mut s = format!(
            "{} {} ({}), api {}",
            m.name,
            dash(Some(m.version.clone())),
            dash(m.kind.map(|k| k.to_string())),
            dash(m.api.clone())
        );
        if let (Some(t), Some(mem)) = (m.timeout_ms, m.memory_bytes) {
            s.push_str(&format!("; limits {t} ms, {} MiB", mem >> 20));
            if let Some(fuel) = m.fuel {
                s.push_str(&format!(", {fuel} fuel"));
            }
        }
        s
    });
    field("manifest", &[dash(manifest)]);
    if let Some(m) = info.manifest.as_ref().filter(|m| !m.description.is_empty()) {
        field("about", std::slice::from_ref(&m.description));
    }
    if let Some(m) = &info.manifest {
        if !m.limits.is_empty() {
            field("limits", &grants(&m.limits));
        }
    }
    field("imports", &info.imports);
    let (ours, others) = exports(&info.exports);
    field("exports", &ours);
    if !others.is_empty() {
        field("ignored", &others);
    }
    if !info.unprovided_imports.is_empty() {
        field("missing", &info.unprovided_imports);
    }
    if info.problems.is_empty() {
        field("status", &["usable".to_string()]);
    } else {
        field("problems", &info.problems);
    }
    out
}

/// The exports of the plugin contract, each with the role it serves, and
/// the others (componentize-py adds an instance named `exports`), which the
/// host never calls.
fn exports(names: &[String]) -> (Vec<String>, Vec<String>) {
    let mut ours = Vec::new();
    let mut others = Vec::new();
    for name in names {
        let role = if name.starts_with("lockstep:plugin/strategy@") {
            Some("strategist")
        } else if name.starts_with("lockstep:plugin/execution@") {
            Some("executor")
        } else {
            None
        };
        match role {
            Some(role) => ours.push(format!("{name} ({role})")),
            None if name.starts_with("lockstep:plugin/") => ours.push(name.clone()),
            None => others.push(format!(
                "{name} (not part of lockstep:plugin; the host does not call it)"
            )),
        }
    }
    (ours, others)
}

/// One line per limit: `name  requested → granted`, and the ceiling that
/// clamped it.
fn grants(grants: &[Grant]) -> Vec<String> {
    let width = grants.iter().map(|g| g.limit.len()).max().unwrap_or(0);
    grants
        .iter()
        .map(|g| {
            let requested = match g.requested {
                Some(r) => format!("{r} requested"),
                None => "default".into(),
            };
            let granted = match g.granted {
                Some(v) => v.to_string(),
                None => "off".into(),
            };
            let mut line = format!("{:<width$}  {requested} → {granted}", g.limit);
            if let Some(ceiling) = g.clamped_by {
                line.push_str(&format!(" (clamped by the policy's ceiling {ceiling})"));
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::plugins::PluginKind;

    fn info(name: &str, problem: Option<&str>) -> PluginInfo {
        PluginInfo {
            name: name.into(),
            version: if problem.is_some() {
                String::new()
            } else {
                "0.1.0".into()
            },
            kind: problem.is_none().then_some(PluginKind::Plugin),
            api: problem.is_none().then(|| "0.1.0".into()),
            path: PathBuf::from(format!("/p/{name}.wasm")),
            manifest: PathBuf::from(format!("/p/{name}.toml")),
            description: String::new(),
            timeout_ms: Some(10_000),
            memory_bytes: Some(256 << 20),
            fuel: None,
            limits: Vec::new(),
            shadowed_by: None,
            problem: problem.map(String::from),
        }
    }

    #[test]
    fn the_table_aligns_columns_and_shows_problems() {
        let t = table(&[info("license-header", None), info("x", Some("broken"))]);
        assert_eq!(
            t,
            "NAME            VERSION  KIND    API    PATH\n\
             license-header  0.1.0    plugin  0.1.0  /p/license-header.wasm\n\
             x               -        -       -      /p/x.wasm\n  problem: broken\n"
        );
    }

    #[test]
    fn a_description_lists_every_import_and_problem() {
        let d = describe(&ComponentInfo {
            path: "/p/w.wasm".into(),
            world: "wasi:cli/command".into(),
            api: None,
            imports: vec!["a".into(), "b".into()],
            exports: vec![],
            unprovided_imports: vec![],
            manifest: None,
            problems: vec!["not a plugin".into()],
        });
        assert!(d.contains("imports    a\n           b\n"), "{d}");
        assert!(d.contains("exports    -\n"), "{d}");
        assert!(d.contains("problems   not a plugin\n"), "{d}");
    }

    #[test]
    fn the_compile_line_names_the_plugin_and_is_left_out_for_json_to_a_program() {
        assert_eq!(
            compile_line(Path::new("/p/trailing-whitespace.wasm"), true),
            "compiling trailing-whitespace (first use, cached afterwards)…"
        );
        assert_eq!(
            compile_line(Path::new("x\x1b[2K.wasm"), false),
            "compiling x␛[2K (no usable cache: compiled on every run)…"
        );
        assert!(compile_progress(false, false).is_some());
        assert!(compile_progress(false, true).is_some());
        assert!(compile_progress(true, true).is_some());
        assert!(compile_progress(true, false).is_none());
    }

    #[test]
    fn a_description_shows_the_manifests_text_and_sets_other_exports_apart() {
        let mut manifest = info("tw", None);
        manifest.description = "Trims trailing whitespace.".into();
        let d = describe(&ComponentInfo {
            path: "/p/tw.wasm".into(),
            world: "lockstep:plugin/plugin@0.2.0".into(),
            api: Some("0.2.0".into()),
            imports: vec![],
            exports: vec![
                "exports".into(),
                "lockstep:plugin/strategy@0.2.0".into(),
                "lockstep:plugin/execution@0.2.0".into(),
            ],
            unprovided_imports: vec![],
            manifest: Some(manifest),
            problems: vec![],
        });
        assert!(d.contains("about      Trims trailing whitespace.\n"), "{d}");
        assert!(
            d.contains(
                "exports    lockstep:plugin/strategy@0.2.0 (strategist)\n\
                 \x20          lockstep:plugin/execution@0.2.0 (executor)\n\
                 ignored    exports (not part of lockstep:plugin; the host does not call it)\n"
            ),
            "{d}"
        );
    }

    #[test]
    fn grants_show_requested_granted_and_the_clamping_ceiling() {
        let lines = grants(&[
            Grant {
                limit: "timeout_ms",
                requested: Some(600_000),
                granted: Some(300_000),
                clamped_by: Some(300_000),
            },
            Grant {
                limit: "fuel",
                requested: None,
                granted: None,
                clamped_by: None,
            },
        ]);
        assert_eq!(
            lines,
            vec![
                "timeout_ms  600000 requested → 300000 (clamped by the policy's ceiling 300000)",
                "fuel        default → off",
            ]
        );
    }
}
