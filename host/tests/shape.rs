//! The shape of `host/src` outside tests: every function fits on a screen
//! (at most [`MAX_LINES`] lines) and no `unreachable!` stands where a user
//! could reach it. Test modules (`#[cfg(test)]` blocks, `tests.rs`,
//! `tests/` folders) are exempt.

use std::path::{Path, PathBuf};

/// Longest function, in lines, signature and closing brace included.
const MAX_LINES: usize = 60;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "tests" {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") && name != "tests.rs" {
            out.push(path);
        }
    }
}

/// The file's lines up to its first `#[cfg(test)]` item at the top level.
fn production_lines(text: &str) -> Vec<&str> {
    text.lines()
        .take_while(|l| !l.starts_with("#[cfg(test)]") && !l.starts_with("#[cfg(all(test"))
        .collect()
}

/// Whether `line` starts a function item.
fn starts_fn(line: &str) -> bool {
    let mut rest = line.trim_start();
    for prefix in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
    ] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    rest.starts_with("fn ")
}

/// `(first line, length)` of every function body in `lines`.
fn functions(lines: &[&str]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if !starts_fn(lines[i]) {
            i += 1;
            continue;
        }
        let (mut depth, mut opened, mut j) = (0i64, false, i);
        while j < lines.len() {
            let code = lines[j].split("//").next().unwrap_or("");
            for c in code.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if !opened && code.trim_end().ends_with(';') {
                break; // a declaration without a body
            }
            if opened && depth == 0 {
                found.push((i + 1, j - i + 1));
                break;
            }
            j += 1;
        }
        i = j.max(i) + 1;
    }
    found
}

fn problems(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines = production_lines(&text);
        for (start, len) in functions(&lines) {
            if len > MAX_LINES {
                bad.push(format!(
                    "{}:{start}: a function of {len} lines",
                    file.display()
                ));
            }
        }
        for (n, line) in lines.iter().enumerate() {
            if line.contains("unreachable!(") && !line.trim_start().starts_with("//") {
                bad.push(format!("{}:{}: unreachable!", file.display(), n + 1));
            }
        }
    }
    bad
}

#[test]
fn functions_fit_on_a_screen_and_nothing_claims_to_be_unreachable() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = problems(&src);
    assert!(
        bad.is_empty(),
        "over {MAX_LINES} lines or unreachable!:\n{}",
        bad.join("\n")
    );
}

#[test]
fn a_long_function_and_an_unreachable_are_caught() {
    let dir = std::env::temp_dir().join(format!("lockstep-shape-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let body = "    let x = 1;\n".repeat(MAX_LINES);
    let short = "pub fn short() -> u8 {\n    unreachable!(\"no\")\n}\n";
    let tests = format!("#[cfg(test)]\nmod tests {{\n    fn long() {{\n{body}    }}\n}}\n");
    std::fs::write(
        dir.join("a.rs"),
        format!("async fn long() {{\n{body}}}\n{short}{tests}"),
    )
    .unwrap();
    let bad = problems(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(
        bad[0].ends_with(&format!("a.rs:1: a function of {} lines", MAX_LINES + 2)),
        "{bad:?}"
    );
    assert!(bad[1].ends_with("unreachable!"), "{bad:?}");
}
