//! Sequences of writes and deletes fed through `ChangesetBuilder::add`
//! against a small fixed project holding symlinks in and out of it, a
//! `.lockstep/` folder and a vendored `.git/`. Nothing panics; every path
//! the builder accepts goes through no symlink, stays inside the project
//! and enters no host or VCS directory at any depth; every refusal is a
//! `ChangeError`.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lockstep::model::FileChange;
use lockstep::workspace::{ChangeError, ChangeLimits, ChangesetBuilder, ProjectTree};

/// Directories no accepted path may enter (compared ignoring ASCII case;
/// the Unicode spellings are `path_normalize`'s concern).
const FORBIDDEN: [&str; 5] = [".git", ".hg", ".svn", ".jj", ".lockstep"];

/// Names the fixture holds, so generated paths reach its symlinks often.
const NAMES: &[&str] = &[
    "src",
    "lib.rs",
    "README.md",
    "out",
    "in",
    "self",
    "priv",
    "git",
    "dangling",
    "loop",
    ".lockstep",
    ".git",
    ".LockStep",
    "lockstep.db",
    "config",
    "new",
    "x",
    "vendor",
    ".hg",
    ".Jj",
];

#[derive(Debug, Arbitrary)]
enum Part {
    Name(u8),
    Dot,
    DotDot,
    Empty,
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum PathSpec {
    Parts(Vec<Part>),
    Raw(String),
}

impl PathSpec {
    fn render(&self) -> String {
        match self {
            PathSpec::Raw(s) => s.clone(),
            PathSpec::Parts(parts) => parts
                .iter()
                .map(|p| match p {
                    Part::Name(i) => NAMES[*i as usize % NAMES.len()],
                    Part::Dot => ".",
                    Part::DotDot => "..",
                    Part::Empty => "",
                    Part::Raw(s) => s.as_str(),
                })
                .collect::<Vec<_>>()
                .join("/"),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Change {
    Write { path: PathSpec, contents: Vec<u8> },
    Delete { path: PathSpec },
}

struct Fixture {
    root: PathBuf,
    tree: Arc<ProjectTree>,
    _project: tempfile::TempDir,
    _outside: tempfile::TempDir,
}

/// The project, made once per process. `add` only reads it.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("x"), "outside").unwrap();
        let project = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(project.path()).unwrap();
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(root.join("src/lib.rs"), "fn main() {}\n").unwrap();
        std::fs::write(root.join("README.md"), "# fixture\n").unwrap();
        std::fs::create_dir_all(root.join(".lockstep")).unwrap();
        std::fs::write(root.join(".lockstep/lockstep.db"), "db").unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join(".git/config"), "[core]\n").unwrap();
        std::fs::create_dir_all(root.join("vendor/x/.git")).unwrap();
        std::fs::write(root.join("vendor/x/.git/config"), "[core]\n").unwrap();
        symlink(outside.path(), root.join("out")).unwrap();
        symlink("src", root.join("in")).unwrap();
        symlink(".", root.join("self")).unwrap();
        symlink(".lockstep", root.join("priv")).unwrap();
        symlink(".git", root.join("git")).unwrap();
        symlink("missing/target", root.join("dangling")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        let tree = Arc::new(ProjectTree::open(&root).unwrap());
        Fixture {
            root,
            tree,
            _project: project,
            _outside: outside,
        }
    })
}

/// Where `rel` lands under `root` once every symlink on the way is followed;
/// the missing tail is appended as is. `None` when a component exists but
/// cannot be resolved (a dangling or looping symlink).
fn resolve(root: &Path, rel: &str) -> Option<PathBuf> {
    let parts: Vec<&str> = rel.split('/').collect();
    let mut current = root.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        let next = current.join(part);
        match std::fs::canonicalize(&next) {
            Ok(real) => current = real,
            Err(_) => {
                let is_symlink =
                    std::fs::symlink_metadata(&next).is_ok_and(|m| m.file_type().is_symlink());
                if is_symlink {
                    return None;
                }
                parts[i..].iter().for_each(|p| current.push(p));
                return Some(current);
            }
        }
    }
    Some(current)
}

fuzz_target!(|steps: Vec<Vec<Change>>| {
    let fx = fixture();
    let limits = ChangeLimits {
        max_file_bytes: 64,
        max_total_bytes: 256,
        max_changes: 16,
        max_original_bytes: 64,
    };
    let mut builder = ChangesetBuilder::new(fx.tree.clone(), limits);
    for step in steps {
        let changes: Vec<FileChange> = step
            .into_iter()
            .map(|c| match c {
                Change::Write { path, contents } => FileChange::Write {
                    path: path.render(),
                    contents,
                },
                Change::Delete { path } => FileChange::Delete {
                    path: path.render(),
                },
            })
            .collect();
        let accepted = match builder.add(changes) {
            Ok(accepted) => accepted,
            Err(
                ChangeError::Path { .. }
                | ChangeError::FileTooLarge { .. }
                | ChangeError::TotalTooLarge { .. }
                | ChangeError::TooMany { .. }
                | ChangeError::Collision { .. }
                | ChangeError::NotAFile { .. }
                | ChangeError::ParentNotADirectory { .. }
                | ChangeError::OriginalTooLarge { .. }
                | ChangeError::Nested { .. }
                | ChangeError::Io { .. },
            ) => continue,
        };
        for change in &accepted {
            let rel = change.path();
            let mut walked = fx.root.clone();
            for part in rel.split('/') {
                assert!(
                    !FORBIDDEN.iter().any(|f| part.eq_ignore_ascii_case(f)),
                    "accepted {rel:?}, which enters {part:?}"
                );
                walked.push(part);
                let is_symlink =
                    std::fs::symlink_metadata(&walked).is_ok_and(|m| m.file_type().is_symlink());
                assert!(!is_symlink, "accepted {rel:?}, which goes through a symlink");
            }
            let landed = resolve(&fx.root, rel)
                .unwrap_or_else(|| panic!("accepted {rel:?}, which cannot be resolved"));
            let inner = landed
                .strip_prefix(&fx.root)
                .unwrap_or_else(|_| panic!("accepted {rel:?}, which lands at {landed:?}"));
            let first = inner
                .components()
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .unwrap_or_default();
            assert!(
                !first.is_empty(),
                "accepted {rel:?}, which is the project root itself"
            );
            assert!(
                !FORBIDDEN.iter().any(|r| first.eq_ignore_ascii_case(r)),
                "accepted {rel:?}, which lands in {landed:?}"
            );
        }
    }
    // The finished changeset only ever holds paths the builder accepted.
    builder.finish();
});
