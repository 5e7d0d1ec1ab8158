//! Unified diffs of file contents, for people reading a changeset or a
//! comparison with expected files.
//!
//! The diff is what a person approves before an apply, so it shows every
//! byte that will be written and nothing a file could use to rewrite the
//! screen: control characters, escape sequences and invisible format
//! characters are made visible ([`crate::visible`]), a carriage return is a
//! `␍` at the end of its line (and a change of line endings alone is named
//! as such), trailing whitespace on changed lines is shown as `·` (space)
//! and `␉` (tab), bytes that are not UTF-8 as `\xNN`, and a binary file
//! (a NUL byte in its first 8 KiB, as git decides) by its sizes only.

use std::time::{Duration, Instant};

use similar::{Algorithm, DiffTag};

use crate::visible;

/// Lines of context around each change.
const CONTEXT: usize = 3;
/// How far into a file to look for a NUL byte (git's heuristic).
const BINARY_SNIFF: usize = 8000;
/// Longest time spent finding a minimal diff before settling for a
/// correct but coarser one.
const DIFF_DEADLINE: Duration = Duration::from_secs(2);

/// Whether `contents` is shown as binary: a NUL byte in its first 8000 bytes.
pub fn is_binary(contents: &[u8]) -> bool {
    contents.iter().take(BINARY_SNIFF).any(|&b| b == 0)
}

/// A unified diff of `old` → `new` with three lines of context, headed
/// `--- from` and `+++ to`; empty when the contents are equal. Safe to print
/// on a terminal: see the module docs for how each kind of byte is shown.
pub fn unified_diff(old: &[u8], new: &[u8], from: &str, to: &str) -> String {
    if old == new {
        return String::new();
    }
    let mut out = format!("--- {}\n+++ {}\n", visible::line(from), visible::line(to));
    if is_binary(old) || is_binary(new) {
        out.push_str(&format!(
            "binary, {} → {}\n",
            bytes(old.len()),
            bytes(new.len())
        ));
        return out;
    }
    if let Some(note) = line_endings_only(old, new) {
        out.push_str(&note);
        out.push('\n');
    }
    let old_lines = split_lines(old);
    let new_lines = split_lines(new);
    let ops = similar::capture_diff_slices_deadline(
        Algorithm::Myers,
        &old_lines,
        &new_lines,
        Some(Instant::now() + DIFF_DEADLINE),
    );
    for group in similar::group_diff_ops(ops, CONTEXT) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let old_range = first.old_range().start..last.old_range().end;
        let new_range = first.new_range().start..last.new_range().end;
        out.push_str(&format!(
            "@@ -{} +{} @@\n",
            hunk_range(old_range.start, old_range.len()),
            hunk_range(new_range.start, new_range.len())
        ));
        for op in &group {
            let (tag, old_r, new_r) = op.as_tag_tuple();
            match tag {
                DiffTag::Equal => {
                    for l in &old_lines[old_r] {
                        push_line(&mut out, ' ', l);
                    }
                }
                DiffTag::Delete | DiffTag::Insert | DiffTag::Replace => {
                    for l in &old_lines[old_r] {
                        push_line(&mut out, '-', l);
                    }
                    for l in &new_lines[new_r] {
                        push_line(&mut out, '+', l);
                    }
                }
            }
        }
    }
    out
}

fn bytes(n: usize) -> String {
    format!("{n} byte{}", if n == 1 { "" } else { "s" })
}

/// `start,len` of a hunk header, GNU style: 1-based, `,len` left out when it
/// is 1, and for an empty range the line before it.
fn hunk_range(start: usize, len: usize) -> String {
    match len {
        0 => format!("{start},0"),
        1 => format!("{}", start + 1),
        n => format!("{},{n}", start + 1),
    }
}

/// The lines of `text`, each with its `\n` (the last may have none).
fn split_lines(text: &[u8]) -> Vec<&[u8]> {
    text.split_inclusive(|&b| b == b'\n').collect()
}

/// One diff line: the marker, the line made visible, a `␍` for a carriage
/// return before the newline, and on changed lines trailing whitespace
/// shown; a line without a newline is followed by git's note saying so.
fn push_line(out: &mut String, marker: char, line: &[u8]) {
    let (body, newline) = match line.strip_suffix(b"\n") {
        Some(body) => (body, true),
        None => (line, false),
    };
    out.push(marker);
    let (body, cr) = match body.strip_suffix(b"\r") {
        Some(body) => (body, true),
        None => (body, false),
    };
    let trailing = if marker == ' ' {
        0
    } else {
        body.iter()
            .rev()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count()
    };
    let (text, ws) = body.split_at(body.len() - trailing);
    out.push_str(&visible::bytes(text));
    for &b in ws {
        out.push(if b == b'\t' { '␉' } else { '·' });
    }
    if cr {
        out.push('␍');
    }
    out.push('\n');
    if !newline {
        out.push_str("\\ No newline at end of file\n");
    }
}

/// How a text ends its lines, for the "line endings only" note.
fn endings(text: &[u8]) -> &'static str {
    let lf = text.iter().filter(|&&b| b == b'\n').count();
    let crlf = text.windows(2).filter(|w| *w == b"\r\n").count();
    match (crlf, lf) {
        (_, 0) => "none",
        (0, _) => "LF",
        (c, l) if c == l => "CRLF",
        _ => "mixed CRLF and LF",
    }
}

/// `Some(note)` when `old` and `new` differ only in their line endings
/// (CRLF against LF).
fn line_endings_only(old: &[u8], new: &[u8]) -> Option<String> {
    let strip = |t: &[u8]| -> Vec<u8> {
        let mut out = Vec::with_capacity(t.len());
        for (i, &b) in t.iter().enumerate() {
            if b == b'\r' && t.get(i + 1) == Some(&b'\n') {
                continue;
            }
            out.push(b);
        }
        out
    };
    (strip(old) == strip(new)).then(|| {
        format!(
            "line endings only: {} → {} (␍ marks a carriage return)",
            endings(old),
            endings(new)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_line_is_shown_with_its_context() {
        let d = unified_diff(b"a\nb\nc\n", b"a\nB\nc\n", "x/f", "y/f");
        assert_eq!(d, "--- x/f\n+++ y/f\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
        assert_eq!(unified_diff(b"same\n", b"same\n", "x", "y"), "");
        let d = unified_diff(b"", b"new", "/dev/null", "b/n");
        assert!(
            d.contains("@@ -0,0 +1 @@\n+new\n\\ No newline at end of file"),
            "{d}"
        );
        let d = unified_diff(b"old\n", b"", "a/g", "/dev/null");
        assert!(d.ends_with("@@ -1 +0,0 @@\n-old\n"), "{d}");
    }

    #[test]
    fn distant_changes_get_their_own_hunks() {
        let old: String = (1..=20).map(|i| format!("{i}\n")).collect();
        let new: String = (1..=20)
            .map(|i| match i {
                2 => "two\n".to_string(),
                19 => "nineteen\n".to_string(),
                i => format!("{i}\n"),
            })
            .collect();
        let d = unified_diff(old.as_bytes(), new.as_bytes(), "a", "b");
        assert!(d.contains("@@ -1,5 +1,5 @@\n 1\n-2\n+two\n 3\n"), "{d}");
        assert!(
            d.contains("@@ -16,5 +16,5 @@\n 16\n 17\n 18\n-19\n+nineteen\n 20\n"),
            "{d}"
        );
    }

    #[test]
    fn escape_sequences_in_contents_are_made_visible() {
        let d = unified_diff(b"a\n", b"a\n\x1b[1A\x1b[2Kb\n", "a/f", "b/f");
        assert!(!d.contains('\x1b'), "{d:?}");
        assert!(d.contains("+␛[1A␛[2Kb\n"), "{d}");
    }

    #[test]
    fn a_crlf_to_lf_change_is_named_and_marked() {
        let d = unified_diff(b"one\r\ntwo\r\n", b"one\ntwo\n", "a/f", "b/f");
        assert!(
            d.contains("line endings only: CRLF → LF"),
            "the note comes first: {d}"
        );
        assert!(d.contains("-one␍\n-two␍\n+one\n+two\n"), "{d}");
        let d = unified_diff(b"one\r\n", b"uno\n", "a/f", "b/f");
        assert!(!d.contains("line endings only"), "{d}");
    }

    #[test]
    fn trailing_whitespace_is_visible_on_changed_lines_only() {
        let d = unified_diff(b"keep  \nx\n", b"keep  \nx \t\n", "a/f", "b/f");
        assert!(d.contains("\n keep  \n-x\n+x·␉\n"), "{d}");
    }

    #[test]
    fn non_utf8_bytes_are_shown_as_hex() {
        let d = unified_diff(b"caf\xe9\n", b"cafe\n", "a/f", "b/f");
        assert!(d.contains("-caf\\xe9\n+cafe\n"), "{d}");
    }

    #[test]
    fn binary_contents_are_summarised_by_size() {
        let d = unified_diff(b"\x00\x01\x02", b"\x00\x01\x1b[2K", "a/f", "b/f");
        assert_eq!(d, "--- a/f\n+++ b/f\nbinary, 3 bytes → 6 bytes\n");
        let d = unified_diff(b"", b"\x00", "/dev/null", "b/f");
        assert!(d.ends_with("binary, 0 bytes → 1 byte\n"), "{d}");
    }

    #[test]
    fn paths_in_headers_are_made_visible() {
        let d = unified_diff(b"", b"x\n", "/dev/null", "b/\u{202e}txt.exe");
        assert!(d.contains("+++ b/\\u{202e}txt.exe\n"), "{d}");
    }
}
