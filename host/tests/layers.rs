//! The module layering of `host/src` (docs/architecture.md, "Layers"): a
//! module may use only the modules below it. A `crate::…` path that points
//! up or sideways fails this test, naming the file and the line.

use std::path::{Path, PathBuf};

/// Bottom to top; modules on one line share a level and may not use each
/// other.
const LAYERS: &[&[&str]] = &[
    &["model", "visible"],
    &["db"],
    &["locks"],
    &["store"],
    &["workspace"],
    &["lifecycle"],
    &["plugins"],
    &["config"],
    &["container"],
    &["fleet"],
    &["service"],
    &["authoring"],
    &["cli"],
];

/// What the crate root re-exports, by the module that defines it.
const ROOT_ITEMS: &[(&str, &str)] = &[
    ("Config", "config"),
    ("Container", "container"),
    ("LifecycleError", "lifecycle"),
    ("PlanLifecycleService", "lifecycle"),
    ("LockConflict", "locks"),
    ("LockError", "locks"),
    ("LockService", "locks"),
];

/// The module a `crate::NAME` path lands in.
fn resolve(name: &str) -> &str {
    ROOT_ITEMS
        .iter()
        .find(|(item, _)| *item == name)
        .map_or(name, |(_, m)| m)
}

fn level(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`None` for the crate root).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.trim_end_matches(".rs").to_string();
    (name != "lib" && name != "main").then_some(name)
}

/// Every module named by a `crate::` path on `line`.
fn referenced(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.push(name);
            }
        } else {
            found.push(
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    found
}

/// Back-edges in the source tree at `src`: `(file:line, from, to)`.
fn back_edges(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for file in files {
        let Some(from) = module_of(src, &file) else {
            continue;
        };
        let from_level = level(&from).unwrap_or_else(|| {
            panic!("module `{from}` is not in LAYERS: add it (and to docs/architecture.md)")
        });
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for to in referenced(code) {
                let to = resolve(&to);
                if to == from {
                    continue;
                }
                match level(to) {
                    Some(l) if l < from_level => {}
                    Some(_) => bad.push(format!(
                        "{}:{}: `{from}` uses `{to}`, which is not below it",
                        file.display(),
                        n + 1
                    )),
                    None => bad.push(format!(
                        "{}:{}: `crate::{to}` is neither a module in LAYERS nor in ROOT_ITEMS",
                        file.display(),
                        n + 1
                    )),
                }
            }
        }
    }
    bad
}

#[test]
fn modules_only_use_the_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = back_edges(&src);
    assert!(bad.is_empty(), "layering violations:\n{}", bad.join("\n"));
}

#[test]
fn a_back_edge_is_caught() {
    let dir = std::env::temp_dir().join(format!("lockstep-layers-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("store")).unwrap();
    std::fs::write(
        dir.join("store/mod.rs"),
        "use crate::model::Status;\nuse crate::{db, lifecycle};\n",
    )
    .unwrap();
    let bad = back_edges(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].contains("`store` uses `lifecycle`"), "{bad:?}");
}
