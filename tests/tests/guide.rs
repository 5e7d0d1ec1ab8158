//! The code in docs/plugin-guide.md is built and run, so that it stays true.
//!
//! Every Rust, Python and JavaScript block of the guide follows a marker
//! `<!-- guide-test: LANG FILE -->`; the blocks marked for a language, in
//! order, make FILE of a project `lockstep plugin new` creates in that
//! language. The project is built with its own `build.sh` and run by
//! `lockstep plugin test` against a small fixture: with `--expect` (the
//! example's result, which also shows that `**/*.txt` matches a file at the
//! root, as the guide says), and with `--hold final-newline` (the example's
//! lease is held elsewhere: the conflict fails the plan, exit code 3).
//!
//! The builds share the caches of `tests/authoring.rs` (cargo's target
//! folder, compiled components) and one virtualenv for componentize-py.

use std::path::Path;
use std::sync::Mutex;

use lockstep_tests::author::{check, Author};
use lockstep_tests::process::{repo_root, stderr, stdout};

/// One build at a time: they are heavy.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The marker before a checked block.
const MARKER: &str = "<!-- guide-test: ";

/// A code block of the guide, marked for `lang`'s file `file`.
#[derive(Debug)]
struct Block {
    lang: String,
    file: String,
    code: String,
}

/// The marked blocks of `guide`; panics naming the line of a Rust, Python
/// or JavaScript block without a marker, or of a marker without a block.
fn blocks(guide: &str) -> Vec<Block> {
    let mut found = Vec::new();
    let mut lines = guide.lines().enumerate().peekable();
    let mut marker: Option<(usize, String, String)> = None;
    while let Some((n, line)) = lines.next() {
        if let Some(rest) = line.strip_prefix(MARKER) {
            let rest = rest.strip_suffix(" -->").expect("a marker ends with -->");
            let (lang, file) = rest.split_once(' ').expect("guide-test: LANG FILE");
            marker = Some((n + 1, lang.to_string(), file.to_string()));
            continue;
        }
        let Some(fence) = line.strip_prefix("```") else {
            if !line.trim().is_empty() {
                if let Some((at, ..)) = &marker {
                    panic!("line {at}: a marker not followed by a code block");
                }
            }
            continue;
        };
        let mut code = String::new();
        for (_, line) in lines.by_ref() {
            if line.starts_with("```") {
                break;
            }
            code.push_str(line);
            code.push('\n');
        }
        let checked = ["rust", "python", "js"].contains(&fence);
        match marker.take() {
            Some((_, lang, file)) => {
                assert_eq!(
                    lang,
                    fence,
                    "line {}: the marker names another language",
                    n + 1
                );
                found.push(Block { lang, file, code });
            }
            None => assert!(
                !checked,
                "line {}: a {fence} block without `{MARKER}{fence} FILE -->`",
                n + 1
            ),
        }
    }
    found
}

fn guide() -> String {
    std::fs::read_to_string(repo_root().join("docs/plugin-guide.md")).unwrap()
}

#[test]
fn every_rust_python_and_javascript_block_of_the_guide_is_checked() {
    let blocks = blocks(&guide());
    for lang in ["rust", "python", "js"] {
        assert!(
            blocks.iter().any(|b| b.lang == lang),
            "no {lang} block is marked"
        );
    }
}

/// The fixture: `(path, contents)`, before and after.
const FIXTURE: [(&str, &[u8], &[u8]); 4] = [
    ("a.txt", b"no newline", b"no newline\n"),
    ("docs/b.txt", b"ends well\n", b"ends well\n"),
    ("c.md", b"not matched", b"not matched"),
    ("bin.txt", b"\xff\xfe not text", b"\xff\xfe not text"),
];

fn write_tree(dir: &Path, files: impl IntoIterator<Item = (&'static str, &'static [u8])>) {
    if dir.exists() {
        std::fs::remove_dir_all(dir).unwrap();
    }
    for (path, contents) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
}

fn the_example_builds_and_runs(lang: &str) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let author = Author::new(Path::new(env!("CARGO_TARGET_TMPDIR")).join("authoring"));
    let parent = tempfile::tempdir().unwrap();
    let name = format!("guide-{lang}");
    check(
        "plugin new",
        &author.lockstep(
            parent.path(),
            &["plugin", "new", &name, "--lang", lang, "--dir", "."],
        ),
    );
    let project = parent.path().join(&name);

    let mut files = std::collections::BTreeMap::<String, String>::new();
    for block in blocks(&guide()).into_iter().filter(|b| b.lang == lang) {
        files.entry(block.file).or_default().push_str(&block.code);
    }
    assert!(!files.is_empty(), "no {lang} example in the guide");
    for (file, code) in &files {
        std::fs::write(project.join(file), code).unwrap();
    }
    write_tree(
        &project.join("tests/fixture"),
        FIXTURE.map(|(path, before, _)| (path, before)),
    );
    write_tree(
        &project.join("tests/expected"),
        FIXTURE.map(|(path, _, after)| (path, after)),
    );
    std::fs::write(
        project.join("tests/action.toml"),
        format!(
            "name = \"final-newline\"\nstrategy = \"{name}\"\nexecutor = \"{name}\"\n\n\
             [params]\nglobs = \"**/*.txt\"\n"
        ),
    )
    .unwrap();

    check("build.sh", &author.build(&project));

    let wasm = format!("dist/{name}.wasm");
    let harness = [
        "plugin",
        "test",
        wasm.as_str(),
        "--project",
        "tests/fixture",
        "--action",
        "tests/action.toml",
    ];
    let mut expect = harness.to_vec();
    expect.extend(["--expect", "tests/expected"]);
    let out = author.lockstep(&project, &expect);
    check("plugin test --expect", &out);
    let text = stdout(&out);
    assert!(
        text.contains("1 of 3 files need a final newline")
            && text.contains("Added a newline to a.txt")
            && text.contains("✓ the result matches tests/expected (4 files)"),
        "{text}\n{}",
        stderr(&out)
    );

    let mut hold = harness.to_vec();
    hold.extend(["--hold", "final-newline"]);
    let out = author.lockstep(&project, &hold);
    assert_eq!(
        out.status.code(),
        Some(3),
        "the example's lease is held: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn the_rust_example_of_the_guide_builds_and_runs() {
    the_example_builds_and_runs("rust");
}

#[test]
fn the_python_example_of_the_guide_builds_and_runs() {
    the_example_builds_and_runs("python");
}

#[test]
fn the_javascript_example_of_the_guide_builds_and_runs() {
    the_example_builds_and_runs("js");
}
