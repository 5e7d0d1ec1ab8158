//! Diffs of file contents, as data and as unified-diff text, for people
//! reading a changeset or a comparison with expected files.
//!
//! The diff is what a person approves before an apply, so it shows every
//! byte that will be written and nothing a file could use to rewrite the
//! screen: control characters, escape sequences and invisible format
//! characters are made visible ([`crate::visible`]), a carriage return is a
//! `␍` at the end of its line (and a change of line endings alone is named
//! as such), trailing whitespace on changed lines is shown as `·` (space)
//! and `␉` (tab), bytes that are not UTF-8 as `\xNN`, and a binary file
//! (a NUL byte in its first 8 KiB, as git decides) by its sizes only.
//!
//! [`FileDiff`] is the one computation; the CLI prints it with
//! [`FileDiff::to_text`] and the dashboard renders the same data as HTML,
//! marking each stand-in ([`SpanKind`]) and showing every [`DiffNote`], so
//! the two cannot disagree about what changes.

use std::fmt;
use std::time::{Duration, Instant};

use similar::{Algorithm, DiffOp, DiffTag};

use crate::model::{ChangeKind, ChangeRecord};
use crate::visible;

/// Lines of context around each change.
const CONTEXT: usize = 3;
/// How far into a file to look for a NUL byte (git's heuristic).
const BINARY_SNIFF: usize = 8000;
/// Longest time spent finding a minimal diff before settling for a
/// correct but coarser one.
const DIFF_DEADLINE: Duration = Duration::from_secs(2);
/// The UTF-8 byte order mark.
const BOM: &[u8] = b"\xef\xbb\xbf";
/// The label of the missing side of a created or deleted file.
const DEV_NULL: &str = "/dev/null";

/// Whether `contents` is shown as binary: a NUL byte in its first 8000 bytes.
pub fn is_binary(contents: &[u8]) -> bool {
    contents.iter().take(BINARY_SNIFF).any(|&b| b == 0)
}

/// A unified diff of `old` → `new` with three lines of context, headed
/// `--- from` and `+++ to`; empty when the contents are equal. Safe to print
/// on a terminal: see the module docs for how each kind of byte is shown.
pub fn unified_diff(old: &[u8], new: &[u8], from: &str, to: &str) -> String {
    FileDiff::build(to, FileKind::Modified, old, new, from, to).to_text()
}

/// The diff of one stored change, base → new: `a/PATH` or `/dev/null` →
/// `b/PATH` or `/dev/null`.
pub fn change_diff(c: &ChangeRecord) -> FileDiff {
    let old = c.base_contents.as_deref().unwrap_or_default();
    let (new, kind) = match c.kind {
        ChangeKind::Write => (
            c.contents.as_deref().unwrap_or_default(),
            if c.base_hash.is_some() {
                FileKind::Modified
            } else {
                FileKind::Added
            },
        ),
        ChangeKind::Delete => (&[][..], FileKind::Deleted),
    };
    let from = match kind {
        FileKind::Added => DEV_NULL.to_string(),
        _ => format!("a/{}", c.path),
    };
    let to = match kind {
        FileKind::Deleted => DEV_NULL.to_string(),
        _ => format!("b/{}", c.path),
    };
    FileDiff::build(&c.path, kind, old, new, &from, &to)
}

/// What happens to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// Created (it did not exist).
    Added,
    /// Rewritten.
    Modified,
    /// Deleted.
    Deleted,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Added => "added",
            Self::Modified => "modified",
            Self::Deleted => "deleted",
        })
    }
}

/// One file's diff as data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileDiff {
    /// The file's path, made visible ([`visible::line`]).
    pub path: String,
    /// Created, rewritten or deleted.
    pub kind: FileKind,
    /// The `---` label, made visible.
    pub from: String,
    /// The `+++` label, made visible.
    pub to: String,
    /// Whether old and new are the same bytes (then there is nothing else).
    pub unchanged: bool,
    /// Changes a reader could miss in the lines: line endings, control
    /// characters, a byte order mark, an emptied file, binary contents.
    pub notes: Vec<DiffNote>,
    /// The hunks (none for binary contents).
    pub hunks: Vec<Hunk>,
}

/// A change that is easy to miss in the lines themselves.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "note", rename_all = "snake_case")]
pub enum DiffNote {
    /// Binary contents, shown by their sizes only.
    Binary {
        /// Size before.
        old_bytes: usize,
        /// Size after.
        new_bytes: usize,
    },
    /// Only the line endings change.
    LineEndingsOnly {
        /// Endings before (`LF`, `CRLF`, `mixed CRLF and LF`, `none`).
        from: &'static str,
        /// Endings after.
        to: &'static str,
    },
    /// The line endings change, besides other changes.
    LineEndings {
        /// Endings before.
        from: &'static str,
        /// Endings after.
        to: &'static str,
    },
    /// Changed lines carry control characters, escape sequences, invisible
    /// format characters or bytes that are not UTF-8 (shown as stand-ins).
    ControlCharacters {
        /// How many added or removed lines carry one.
        lines: usize,
    },
    /// A UTF-8 byte order mark is added or removed at the start.
    ByteOrderMark {
        /// Added (else removed).
        added: bool,
    },
    /// A non-empty file is written empty.
    Emptied {
        /// Its size before.
        old_bytes: usize,
    },
}

impl fmt::Display for DiffNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Binary {
                old_bytes,
                new_bytes,
            } => write!(f, "binary, {} → {}", bytes(*old_bytes), bytes(*new_bytes)),
            Self::LineEndingsOnly { from, to } => write!(
                f,
                "line endings only: {from} → {to} (␍ marks a carriage return)"
            ),
            Self::LineEndings { from, to } => write!(
                f,
                "line endings change: {from} → {to} (␍ marks a carriage return)"
            ),
            Self::ControlCharacters { lines } => write!(
                f,
                "{lines} changed line{} carr{} control or invisible characters (shown as ␛, \\u{{…}}, \\xNN)",
                if *lines == 1 { "" } else { "s" },
                if *lines == 1 { "ies" } else { "y" }
            ),
            Self::ByteOrderMark { added: true } => f.write_str("a byte order mark (BOM) is added"),
            Self::ByteOrderMark { added: false } => {
                f.write_str("the byte order mark (BOM) is removed")
            }
            Self::Emptied { old_bytes } => {
                write!(f, "the file is emptied ({} → 0 bytes)", bytes(*old_bytes))
            }
        }
    }
}

/// One hunk: a run of changed lines with their context.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Hunk {
    /// First old line, 0-based.
    pub old_start: usize,
    /// Old lines covered.
    pub old_len: usize,
    /// First new line, 0-based.
    pub new_start: usize,
    /// New lines covered.
    pub new_len: usize,
    /// The lines, in order.
    pub lines: Vec<DiffLine>,
}

impl Hunk {
    /// The `@@ -a,b +c,d @@` header, GNU style.
    pub fn header(&self) -> String {
        format!(
            "@@ -{} +{} @@",
            hunk_range(self.old_start, self.old_len),
            hunk_range(self.new_start, self.new_len)
        )
    }
}

/// Context, added or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    /// Unchanged, shown around changes.
    Context,
    /// Only in the new contents.
    Added,
    /// Only in the old contents.
    Removed,
}

impl LineKind {
    /// The unified-diff marker: ` `, `+` or `-`.
    pub fn marker(self) -> char {
        match self {
            Self::Context => ' ',
            Self::Added => '+',
            Self::Removed => '-',
        }
    }
}

/// One line of a hunk, cut into spans that say what each part shows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DiffLine {
    /// Context, added or removed.
    pub kind: LineKind,
    /// The line's text without its newline, in spans.
    pub spans: Vec<Span>,
    /// The line has no newline (the last line of a file).
    pub no_newline: bool,
}

impl DiffLine {
    /// Whether a span stands in for a control, format or undecodable byte.
    pub fn has_stand_in(&self) -> bool {
        self.spans.iter().any(|s| s.kind == SpanKind::StandIn)
    }
}

/// A run of a line's text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Span {
    /// What is shown (already safe to print).
    pub text: String,
    /// What it shows.
    pub kind: SpanKind,
}

/// What a [`Span`] shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    /// The file's text as itself.
    Text,
    /// The stand-in of a control character, escape, invisible format
    /// character or byte that is not UTF-8 (`␛`, `\u{202e}`, `\xff`).
    StandIn,
    /// Trailing spaces and tabs of a changed line (`·`, `␉`).
    TrailingSpace,
    /// The carriage return before the newline (`␍`).
    CarriageReturn,
}

impl FileDiff {
    fn build(path: &str, kind: FileKind, old: &[u8], new: &[u8], from: &str, to: &str) -> Self {
        let mut diff = FileDiff {
            path: visible::line(path).into_owned(),
            kind,
            from: visible::line(from).into_owned(),
            to: visible::line(to).into_owned(),
            unchanged: old == new,
            notes: Vec::new(),
            hunks: Vec::new(),
        };
        if diff.unchanged {
            return diff;
        }
        if kind != FileKind::Deleted && new.is_empty() && !old.is_empty() {
            diff.notes.push(DiffNote::Emptied {
                old_bytes: old.len(),
            });
        }
        if is_binary(old) || is_binary(new) {
            diff.notes.insert(
                0,
                DiffNote::Binary {
                    old_bytes: old.len(),
                    new_bytes: new.len(),
                },
            );
            return diff;
        }
        diff.notes.splice(0..0, text_notes(old, new));
        diff.hunks = hunks(old, new);
        let controls = diff
            .hunks
            .iter()
            .flat_map(|h| &h.lines)
            .filter(|l| l.kind != LineKind::Context && l.has_stand_in())
            .count();
        if controls > 0 {
            diff.notes
                .push(DiffNote::ControlCharacters { lines: controls });
        }
        diff
    }

    /// Whether this file is shown by its sizes only.
    pub fn is_binary(&self) -> bool {
        self.notes
            .iter()
            .any(|n| matches!(n, DiffNote::Binary { .. }))
    }

    /// The unified diff as text, as the CLI prints it: the headers, the
    /// binary or line-endings-only note, then the hunks; empty when
    /// unchanged. (The other notes are the CLI's callouts, or visible in
    /// the lines themselves.)
    pub fn to_text(&self) -> String {
        if self.unchanged {
            return String::new();
        }
        let mut out = format!("--- {}\n+++ {}\n", self.from, self.to);
        for note in &self.notes {
            if matches!(
                note,
                DiffNote::Binary { .. } | DiffNote::LineEndingsOnly { .. }
            ) {
                out.push_str(&note.to_string());
                out.push('\n');
            }
        }
        for hunk in &self.hunks {
            out.push_str(&hunk.header());
            out.push('\n');
            for line in &hunk.lines {
                out.push(line.kind.marker());
                for span in &line.spans {
                    out.push_str(&span.text);
                }
                out.push('\n');
                if line.no_newline {
                    out.push_str("\\ No newline at end of file\n");
                }
            }
        }
        out
    }
}

/// The notes about a text file's line endings and byte order mark.
fn text_notes(old: &[u8], new: &[u8]) -> Vec<DiffNote> {
    let mut notes = Vec::new();
    let (from, to) = (endings(old), endings(new));
    if line_endings_only(old, new) {
        notes.push(DiffNote::LineEndingsOnly { from, to });
    } else if from != to && from != "none" && to != "none" {
        notes.push(DiffNote::LineEndings { from, to });
    }
    if old.starts_with(BOM) != new.starts_with(BOM) {
        notes.push(DiffNote::ByteOrderMark {
            added: new.starts_with(BOM),
        });
    }
    notes
}

/// The hunks of a text diff, three lines of context each.
fn hunks(old: &[u8], new: &[u8]) -> Vec<Hunk> {
    let old_lines = split_lines(old);
    let new_lines = split_lines(new);
    let ops = similar::capture_diff_slices_deadline(
        Algorithm::Myers,
        &old_lines,
        &new_lines,
        Some(Instant::now() + DIFF_DEADLINE),
    );
    similar::group_diff_ops(ops, CONTEXT)
        .iter()
        .filter_map(|group| hunk(group, &old_lines, &new_lines))
        .collect()
}

/// One group of diff operations as a hunk.
fn hunk(group: &[DiffOp], old_lines: &[&[u8]], new_lines: &[&[u8]]) -> Option<Hunk> {
    let (first, last) = (group.first()?, group.last()?);
    let old_range = first.old_range().start..last.old_range().end;
    let new_range = first.new_range().start..last.new_range().end;
    let mut lines = Vec::new();
    for op in group {
        let (tag, old_r, new_r) = op.as_tag_tuple();
        match tag {
            DiffTag::Equal => {
                lines.extend(old_lines[old_r].iter().map(|l| line(LineKind::Context, l)));
            }
            DiffTag::Delete | DiffTag::Insert | DiffTag::Replace => {
                lines.extend(old_lines[old_r].iter().map(|l| line(LineKind::Removed, l)));
                lines.extend(new_lines[new_r].iter().map(|l| line(LineKind::Added, l)));
            }
        }
    }
    Some(Hunk {
        old_start: old_range.start,
        old_len: old_range.len(),
        new_start: new_range.start,
        new_len: new_range.len(),
        lines,
    })
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

/// One diff line in spans: the line made visible, a `␍` for a carriage
/// return before the newline, and on changed lines trailing whitespace
/// shown.
fn line(kind: LineKind, line: &[u8]) -> DiffLine {
    let (body, newline) = match line.strip_suffix(b"\n") {
        Some(body) => (body, true),
        None => (line, false),
    };
    let (body, cr) = match body.strip_suffix(b"\r") {
        Some(body) => (body, true),
        None => (body, false),
    };
    let trailing = if kind == LineKind::Context {
        0
    } else {
        body.iter()
            .rev()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count()
    };
    let (text, ws) = body.split_at(body.len() - trailing);
    let mut spans: Vec<Span> = visible::bytes_pieces(text)
        .into_iter()
        .map(|p| Span {
            text: p.text,
            kind: if p.stand_in {
                SpanKind::StandIn
            } else {
                SpanKind::Text
            },
        })
        .collect();
    if !ws.is_empty() {
        spans.push(Span {
            text: ws
                .iter()
                .map(|&b| if b == b'\t' { '␉' } else { '·' })
                .collect(),
            kind: SpanKind::TrailingSpace,
        });
    }
    if cr {
        spans.push(Span {
            text: "␍".into(),
            kind: SpanKind::CarriageReturn,
        });
    }
    DiffLine {
        kind,
        spans,
        no_newline: !newline,
    }
}

/// How a text ends its lines, for the line-endings notes.
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

/// Whether `old` and `new` differ only in their line endings (CRLF against
/// LF).
fn line_endings_only(old: &[u8], new: &[u8]) -> bool {
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
    strip(old) == strip(new)
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

    #[test]
    fn a_change_is_data_with_path_kind_hunks_and_spans() {
        let d = change_diff(&ChangeRecord::test_write(
            "src/a.rs",
            Some(b"a\nb\n"),
            b"a\nB \r\n",
        ));
        assert_eq!((d.path.as_str(), d.kind), ("src/a.rs", FileKind::Modified));
        assert_eq!(
            (d.from.as_str(), d.to.as_str()),
            ("a/src/a.rs", "b/src/a.rs")
        );
        assert_eq!(d.hunks.len(), 1);
        let kinds: Vec<LineKind> = d.hunks[0].lines.iter().map(|l| l.kind).collect();
        assert_eq!(
            kinds,
            [LineKind::Context, LineKind::Removed, LineKind::Added]
        );
        let added = &d.hunks[0].lines[2];
        let spans: Vec<(&str, SpanKind)> = added
            .spans
            .iter()
            .map(|s| (s.text.as_str(), s.kind))
            .collect();
        assert_eq!(
            spans,
            [
                ("B", SpanKind::Text),
                ("·", SpanKind::TrailingSpace),
                ("␍", SpanKind::CarriageReturn)
            ]
        );
        assert_eq!(d.hunks[0].header(), "@@ -1,2 +1,2 @@");
        assert_eq!(
            d.notes,
            [DiffNote::LineEndings {
                from: "LF",
                to: "mixed CRLF and LF"
            }]
        );
        let created = change_diff(&ChangeRecord::test_write("n", None, b"x\n"));
        assert_eq!(
            (created.kind, created.from.as_str()),
            (FileKind::Added, "/dev/null")
        );
    }

    #[test]
    fn invisible_changes_are_named_in_notes() {
        let d = change_diff(&ChangeRecord::test_write(
            "f",
            Some(b"a\n"),
            b"\xef\xbb\xbfa\n\x1b[2Kb\n",
        ));
        assert!(
            d.notes.contains(&DiffNote::ByteOrderMark { added: true }),
            "{:?}",
            d.notes
        );
        assert!(
            d.notes.contains(&DiffNote::ControlCharacters { lines: 2 }),
            "{:?}",
            d.notes
        );
        let bom = &d.hunks[0].lines[1];
        assert_eq!(bom.spans[0].text, "\\u{feff}");
        assert_eq!(bom.spans[0].kind, SpanKind::StandIn);
        let d = change_diff(&ChangeRecord::test_write(
            "config.toml",
            Some(b"key = 1\n"),
            b"",
        ));
        assert!(
            d.notes.contains(&DiffNote::Emptied { old_bytes: 8 }),
            "{:?}",
            d.notes
        );
        assert_eq!(
            DiffNote::Emptied { old_bytes: 8 }.to_string(),
            "the file is emptied (8 bytes → 0 bytes)"
        );
        let d = change_diff(&ChangeRecord::test_write(
            "logo.png",
            Some(b"\x00"),
            b"\x00\x01",
        ));
        assert!(d.is_binary() && d.hunks.is_empty());
        let d = change_diff(&ChangeRecord::test_write("w", Some(b"one\r\n"), b"one\n"));
        assert_eq!(
            d.notes,
            [DiffNote::LineEndingsOnly {
                from: "CRLF",
                to: "LF"
            }]
        );
        assert!(change_diff(&ChangeRecord::test_write("same", Some(b"x"), b"x")).unchanged);
    }

    #[test]
    fn the_text_is_the_data_joined() {
        let old = b"keep\nold \t\n\x1b]0;t\x07\r\n";
        let new = b"keep\nnew\r\n\xff tail";
        let d = change_diff(&ChangeRecord::test_write("p", Some(old), new));
        assert_eq!(d.to_text(), unified_diff(old, new, "a/p", "b/p"));
        let joined: String = d.hunks[0]
            .lines
            .iter()
            .map(|l| {
                let text: String = l.spans.iter().map(|s| s.text.as_str()).collect();
                format!("{}{text}\n", l.kind.marker())
            })
            .collect();
        assert!(
            d.to_text().contains(&joined[..joined.len() - 1]),
            "{joined}"
        );
    }
}
