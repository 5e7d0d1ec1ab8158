//! `lockstep plugin new`: a plugin project that builds and tests as is, in
//! Rust, Python or JavaScript.
//!
//! The sources are the files under `host/templates/<lang>/`, embedded at
//! compile time, plus the latest WIT (`wit/v0.2.0/plugin.wit`) vendored as
//! `wit/plugin.wit` and the language's SDK (`sdk/<lang>/`) vendored as
//! `lockstep-sdk/` (Rust), `lockstep_sdk/` and `stubs/` (Python) or
//! `lockstep/` (JavaScript), so that the project builds on its own. In the
//! template files `{{name}}` becomes the plugin's name and `{{crate_name}}`
//! the name with `_` for `-` (a Rust crate's file name); the WIT and the SDK
//! are written as they are.

use std::path::{Path, PathBuf};

/// The WIT every template is built against: the latest version.
const WIT: &str = include_str!("../../../wit/v0.2.0/plugin.wit");

/// Where a project keeps its vendored WIT.
const WIT_PATH: &str = "wit/plugin.wit";

/// The longest plugin name (as the manifest allows).
pub const MAX_NAME_LEN: usize = 64;

/// A language a plugin can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Rust, built with cargo for `wasm32-wasip2`.
    Rust,
    /// Python, built with componentize-py.
    Python,
    /// JavaScript, built with componentize-js.
    Js,
}

impl Lang {
    /// Every language, in the order the CLI lists them.
    pub const ALL: [Lang; 3] = [Lang::Rust, Lang::Python, Lang::Js];

    /// `rust`, `python` or `js`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }

    /// The command that runs the template's unit tests.
    pub fn unit_test_command(self) -> &'static str {
        match self {
            Lang::Rust => "cargo test",
            Lang::Python => "python3 -m unittest",
            Lang::Js => "node --test",
        }
    }

    fn files(self) -> &'static [TemplateFile] {
        match self {
            Lang::Rust => RUST,
            Lang::Python => PYTHON,
            Lang::Js => JS,
        }
    }

    /// The SDK files the project vendors, at their paths in the project.
    fn sdk(self) -> &'static [TemplateFile] {
        match self {
            Lang::Rust => RUST_SDK,
            Lang::Python => PYTHON_SDK,
            Lang::Js => JS_SDK,
        }
    }
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One file of a template.
struct TemplateFile {
    /// Relative to the project, with `/` separators.
    path: &'static str,
    contents: &'static str,
}

/// The files of `host/templates/<lang>/`, embedded.
macro_rules! template {
    ($lang:literal: $($path:literal),+ $(,)?) => {
        &[$(TemplateFile {
            path: $path,
            contents: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"), "/templates/", $lang, "/", $path
            )),
        }),+]
    };
}

/// Files of `sdk/`, embedded: each `"from" => "to"` is a path under `sdk/`
/// and the path the project keeps it at.
macro_rules! sdk {
    ($($from:literal => $to:literal),+ $(,)?) => {
        &[$(TemplateFile {
            path: $to,
            contents: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/", $from)),
        }),+]
    };
}

const RUST: &[TemplateFile] = template!("rust":
    ".gitignore", "Cargo.lock", "Cargo.toml", "README.md", "build.sh", "plugin.toml",
    "src/lib.rs", "src/markers.rs", "test.sh",
    "tests/action.toml", "tests/fixture/notes.md", "tests/fixture/src/done.c",
    "tests/fixture/src/parse.c", "tests/expected/notes.md", "tests/expected/src/done.c",
    "tests/expected/src/parse.c",
);

const RUST_SDK: &[TemplateFile] = sdk!(
    "rust/Cargo.toml" => "lockstep-sdk/Cargo.toml",
    "rust/src/files.rs" => "lockstep-sdk/src/files.rs",
    "rust/src/lease.rs" => "lockstep-sdk/src/lease.rs",
    "rust/src/lib.rs" => "lockstep-sdk/src/lib.rs",
    "rust/src/params.rs" => "lockstep-sdk/src/params.rs",
    "rust/src/progress.rs" => "lockstep-sdk/src/progress.rs",
);

const PYTHON: &[TemplateFile] = template!("python":
    ".gitignore", "README.md", "app.py", "build.sh", "markers.py", "plugin.toml",
    "pyrightconfig.json", "requirements.txt", "test.sh", "test_markers.py",
    "tests/action.toml", "tests/fixture/notes.md", "tests/fixture/src/done.c",
    "tests/fixture/src/parse.c", "tests/expected/notes.md", "tests/expected/src/done.c",
    "tests/expected/src/parse.c",
);

const PYTHON_SDK: &[TemplateFile] = sdk!(
    "python/lockstep_sdk/__init__.py" => "lockstep_sdk/__init__.py",
    "python/stubs/componentize_py_async_support/__init__.py" =>
        "stubs/componentize_py_async_support/__init__.py",
    "python/stubs/componentize_py_async_support/futures.py" =>
        "stubs/componentize_py_async_support/futures.py",
    "python/stubs/componentize_py_async_support/streams.py" =>
        "stubs/componentize_py_async_support/streams.py",
    "python/stubs/componentize_py_runtime.pyi" => "stubs/componentize_py_runtime.pyi",
    "python/stubs/componentize_py_types.py" => "stubs/componentize_py_types.py",
    "python/stubs/poll_loop.py" => "stubs/poll_loop.py",
    "python/stubs/wit_world/__init__.py" => "stubs/wit_world/__init__.py",
    "python/stubs/wit_world/exports/__init__.py" => "stubs/wit_world/exports/__init__.py",
    "python/stubs/wit_world/exports/execution.py" => "stubs/wit_world/exports/execution.py",
    "python/stubs/wit_world/exports/strategy.py" => "stubs/wit_world/exports/strategy.py",
    "python/stubs/wit_world/imports/__init__.py" => "stubs/wit_world/imports/__init__.py",
    "python/stubs/wit_world/imports/locks.py" => "stubs/wit_world/imports/locks.py",
    "python/stubs/wit_world/imports/log.py" => "stubs/wit_world/imports/log.py",
    "python/stubs/wit_world/imports/progress.py" => "stubs/wit_world/imports/progress.py",
    "python/stubs/wit_world/imports/types.py" => "stubs/wit_world/imports/types.py",
    "python/stubs/wit_world/imports/workspace.py" => "stubs/wit_world/imports/workspace.py",
);

const JS: &[TemplateFile] = template!("js":
    ".gitignore", "README.md", "build.sh", "jsconfig.json", "markers.js", "markers.test.js",
    "package-lock.json", "package.json", "plugin.js", "plugin.toml", "test.sh",
    "tests/action.toml", "tests/fixture/notes.md", "tests/fixture/src/done.c",
    "tests/fixture/src/parse.c", "tests/expected/notes.md", "tests/expected/src/done.c",
    "tests/expected/src/parse.c",
);

const JS_SDK: &[TemplateFile] = sdk!(
    "js/lockstep/core.js" => "lockstep/core.js",
    "js/lockstep/sdk.js" => "lockstep/sdk.js",
    "js/lockstep/types/interfaces/lockstep-plugin-execution.d.ts" =>
        "lockstep/types/interfaces/lockstep-plugin-execution.d.ts",
    "js/lockstep/types/interfaces/lockstep-plugin-locks.d.ts" =>
        "lockstep/types/interfaces/lockstep-plugin-locks.d.ts",
    "js/lockstep/types/interfaces/lockstep-plugin-log.d.ts" =>
        "lockstep/types/interfaces/lockstep-plugin-log.d.ts",
    "js/lockstep/types/interfaces/lockstep-plugin-progress.d.ts" =>
        "lockstep/types/interfaces/lockstep-plugin-progress.d.ts",
    "js/lockstep/types/interfaces/lockstep-plugin-strategy.d.ts" =>
        "lockstep/types/interfaces/lockstep-plugin-strategy.d.ts",
    "js/lockstep/types/interfaces/lockstep-plugin-types.d.ts" =>
        "lockstep/types/interfaces/lockstep-plugin-types.d.ts",
    "js/lockstep/types/interfaces/lockstep-plugin-workspace.d.ts" =>
        "lockstep/types/interfaces/lockstep-plugin-workspace.d.ts",
    "js/lockstep/types/plugin.d.ts" => "lockstep/types/plugin.d.ts",
);

/// `lockstep plugin new` could not create the project.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The name cannot be a plugin's name.
    #[error("`{name}` cannot be a plugin name: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Something is already at the project's path; nothing was written.
    #[error("`{0}` already exists; nothing was written (pick another name or --dir)")]
    Exists(PathBuf),
    /// Writing the project failed; what was written is removed again.
    #[error("cannot write `{path}`: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What [`new_plugin`] created.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Created {
    /// The plugin's name.
    pub name: String,
    /// Its language.
    pub lang: Lang,
    /// The new project directory.
    pub dir: PathBuf,
    /// The files written, relative to `dir`, sorted.
    pub files: Vec<String>,
}

/// Rust keywords and the names of crates that come with the toolchain: a
/// Rust plugin's package cannot have these names.
const RUST_RESERVED: &[&str] = &[
    "abstract",
    "alloc",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "core",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "proc-macro",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "std",
    "struct",
    "super",
    "test",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "yield",
];

/// Check that `name` can name a plugin written in `lang`: 1 to 64 of
/// `a-z`, `0-9` and `-`, starting with a letter and not ending with `-`.
pub fn validate_name(name: &str, lang: Lang) -> Result<(), TemplateError> {
    let invalid = |reason: &str| {
        Err(TemplateError::InvalidName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return invalid("use 1 to 64 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return invalid("start it with a letter a-z");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return invalid("use only a-z, 0-9 and `-`");
    }
    if name.ends_with('-') {
        return invalid("do not end it with `-`");
    }
    if lang == Lang::Rust && RUST_RESERVED.contains(&name) {
        return invalid("Rust reserves it (a keyword or a built-in crate)");
    }
    Ok(())
}

/// The text of a template file for the plugin `name`.
fn render(contents: &str, name: &str) -> String {
    contents
        .replace("{{name}}", name)
        .replace("{{crate_name}}", &name.replace('-', "_"))
}

/// Create `parent/name/`, a plugin project in `lang`, and return what was
/// written. Refuses a directory (or anything) already at that path; when
/// writing fails midway, the new directory is removed again.
pub fn new_plugin(name: &str, lang: Lang, parent: &Path) -> Result<Created, TemplateError> {
    validate_name(name, lang)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TemplateError::Io { path, source }
    };
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let dir = parent.join(name);
    if let Err(e) = std::fs::create_dir(&dir) {
        return Err(match e.kind() {
            std::io::ErrorKind::AlreadyExists => TemplateError::Exists(dir),
            _ => io(&dir)(e),
        });
    }
    let written = write_files(&dir, name, lang);
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let mut files = written?;
    files.sort();
    Ok(Created {
        name: name.to_string(),
        lang,
        dir,
        files,
    })
}

fn write_files(dir: &Path, name: &str, lang: Lang) -> Result<Vec<String>, TemplateError> {
    let wit = TemplateFile {
        path: WIT_PATH,
        contents: WIT,
    };
    let rendered = lang.files().iter().map(|f| (f, true));
    let verbatim = lang.sdk().iter().chain([&wit]).map(|f| (f, false));
    let mut files = Vec::new();
    for (file, render_it) in rendered.chain(verbatim) {
        let path = dir.join(file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| TemplateError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let io = |source| TemplateError::Io {
            path: path.clone(),
            source,
        };
        let contents = if render_it {
            render(file.contents, name)
        } else {
            file.contents.to_string()
        };
        std::fs::write(&path, contents).map_err(io)?;
        if file.path.ends_with(".sh") {
            make_executable(&path).map_err(io)?;
        }
        files.push(file.path.to_string());
    }
    Ok(files)
}

#[cfg(unix)]
fn make_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::{manifest, HOST_API};

    /// The files of the harness test every template carries.
    const FIXTURE: [&str; 7] = [
        "tests/action.toml",
        "tests/fixture/notes.md",
        "tests/fixture/src/done.c",
        "tests/fixture/src/parse.c",
        "tests/expected/notes.md",
        "tests/expected/src/done.c",
        "tests/expected/src/parse.c",
    ];

    /// Every file under `root`, relative and sorted, but for the stamps
    /// the example builds leave (`.checked`) and Python's caches.
    fn on_disk(root: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut pending = vec![root.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy();
                if name == "__pycache__" || name == ".checked" {
                    continue;
                }
                if path.is_dir() {
                    pending.push(path);
                } else {
                    let relative = path.strip_prefix(root).unwrap();
                    found.push(relative.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        found.sort();
        found
    }

    fn sorted(files: &[TemplateFile]) -> Vec<String> {
        let mut paths: Vec<String> = files.iter().map(|f| f.path.to_string()).collect();
        paths.sort();
        paths
    }

    #[test]
    fn every_template_file_is_embedded() {
        for lang in Lang::ALL {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("templates")
                .join(lang.as_str());
            let embedded = sorted(lang.files());
            assert_eq!(embedded, on_disk(&root), "host/templates/{lang}");
            for fixture in FIXTURE {
                assert!(embedded.iter().any(|f| f == fixture), "{lang}: {fixture}");
            }
        }
    }

    /// What of `sdk/<lang>/` a project vendors, and where: the files under
    /// each part, at the prefix.
    fn vendored(lang: Lang) -> (&'static str, &'static [&'static str]) {
        match lang {
            Lang::Rust => ("lockstep-sdk/", &["Cargo.toml", "src"]),
            Lang::Python => ("", &["lockstep_sdk", "stubs"]),
            Lang::Js => ("", &["lockstep"]),
        }
    }

    #[test]
    fn every_sdk_file_is_vendored_as_it_is() {
        for lang in Lang::ALL {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../sdk")
                .join(lang.as_str());
            let (prefix, parts) = vendored(lang);
            let mut want: Vec<String> = on_disk(&root)
                .into_iter()
                .filter(|f| {
                    parts
                        .iter()
                        .any(|p| f == p || f.starts_with(&format!("{p}/")))
                })
                .map(|f| format!("{prefix}{f}"))
                .collect();
            want.sort();
            assert_eq!(sorted(lang.sdk()), want, "sdk/{lang}");
            for file in lang.sdk() {
                let from = root.join(file.path.strip_prefix(prefix).unwrap());
                let on_disk = std::fs::read_to_string(&from).unwrap();
                assert!(
                    file.contents == on_disk,
                    "{} is not what is embedded",
                    from.display()
                );
            }
        }
    }

    #[test]
    fn names_are_checked() {
        for good in ["a", "todo-markers", "x1", &"a".repeat(64)] {
            validate_name(good, Lang::Rust).unwrap();
        }
        for (bad, why) in [
            ("", "1 to 64"),
            (&"a".repeat(65), "1 to 64"),
            ("1st", "start it with a letter"),
            ("-x", "start it with a letter"),
            ("my-Plugin", "only a-z"),
            ("Plugin", "start it with a letter"),
            ("a_b", "only a-z"),
            ("a/b", "only a-z"),
            ("a-", "end it"),
        ] {
            let e = validate_name(bad, Lang::Python).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(validate_name("test", Lang::Rust).is_err());
        validate_name("test", Lang::Js).unwrap();
    }

    #[test]
    fn a_project_is_written_with_the_name_filled_in() {
        let parent = tempfile::tempdir().unwrap();
        for lang in Lang::ALL {
            let name = format!("my-{lang}-plugin");
            let created = new_plugin(&name, lang, parent.path()).unwrap();
            assert_eq!(created.dir, parent.path().join(&name));
            assert!(created.files.iter().any(|f| f == WIT_PATH));
            for file in &created.files {
                let text = std::fs::read_to_string(created.dir.join(file)).unwrap();
                assert!(!text.contains("{{"), "{lang} {file} has a placeholder left");
            }
            assert_eq!(
                std::fs::read_to_string(created.dir.join(WIT_PATH)).unwrap(),
                std::fs::read_to_string(
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/v0.2.0/plugin.wit")
                )
                .unwrap()
            );
            let m = manifest::read(&created.dir.join("plugin.toml")).unwrap();
            assert_eq!(m.name, name);
            assert_eq!(m.api, HOST_API, "templates build against the latest WIT");
            let action = std::fs::read_to_string(created.dir.join("tests/action.toml")).unwrap();
            let action = crate::lifecycle::parse_action(&action).unwrap();
            assert_eq!(
                (action.strategy.as_str(), action.executor.as_str()),
                (name.as_str(), name.as_str())
            );
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(created.dir.join("build.sh"))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o111, 0o111, "build.sh is executable");
            }
        }
        let rust = std::fs::read_to_string(parent.path().join("my-rust-plugin/build.sh")).unwrap();
        assert!(
            rust.contains("my_rust_plugin.wasm"),
            "{{{{crate_name}}}} is filled in"
        );
    }

    #[test]
    fn an_existing_directory_is_never_overwritten() {
        let parent = tempfile::tempdir().unwrap();
        std::fs::create_dir(parent.path().join("taken")).unwrap();
        std::fs::write(parent.path().join("taken/keep"), "mine").unwrap();
        let e = new_plugin("taken", Lang::Js, parent.path()).unwrap_err();
        assert!(matches!(e, TemplateError::Exists(_)), "{e}");
        assert!(e.to_string().contains("nothing was written"), "{e}");
        assert_eq!(
            std::fs::read_dir(parent.path().join("taken"))
                .unwrap()
                .count(),
            1
        );
        std::fs::write(parent.path().join("file"), "").unwrap();
        assert!(matches!(
            new_plugin("file", Lang::Rust, parent.path()).unwrap_err(),
            TemplateError::Exists(_)
        ));
        // A bad name writes nothing at all.
        assert!(new_plugin("Bad", Lang::Rust, &parent.path().join("new")).is_err());
        assert!(!parent.path().join("new").exists());
    }
}
