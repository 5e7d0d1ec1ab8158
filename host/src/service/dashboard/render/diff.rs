//! A [`FileDiff`] as HTML: one table per file, its notes above it, every
//! stand-in for an invisible byte marked (`<mark class="inv">`), trailing
//! whitespace and carriage returns marked too, so what the CLI shows as
//! text the page shows and highlights.

use maud::{html, Markup};

use crate::workspace::{DiffLine, FileDiff, LineKind, SpanKind};

/// Every file of a changeset, or a line saying there is none.
pub fn file_diffs(diffs: &[FileDiff]) -> Markup {
    html! {
        @if diffs.is_empty() {
            p.muted { "No changes." }
        }
        @for d in diffs {
            (file_diff(d))
        }
    }
}

/// One file: header (path, kind), notes, hunks.
pub fn file_diff(d: &FileDiff) -> Markup {
    html! {
        section.diff-file data-path=(d.path) {
            header {
                span.kind { (d.kind) }
                code { (d.path) }
                @if d.unchanged { span.muted { "(unchanged)" } }
            }
            @if !d.notes.is_empty() {
                ul.notes {
                    @for n in &d.notes { li.note { (n.to_string()) } }
                }
            }
            @if !d.hunks.is_empty() {
                table.diff {
                    @for h in &d.hunks {
                        tr.hunk { td colspan="4" { (h.header()) } }
                        @let mut old = h.old_start;
                        @let mut new = h.new_start;
                        @for l in &h.lines {
                            @let (o, n) = numbers(l.kind, &mut old, &mut new);
                            (line(l, o, n))
                        }
                    }
                }
            }
        }
    }
}

/// The old and new line numbers (1-based) of a line, advancing the counters.
fn numbers(kind: LineKind, old: &mut usize, new: &mut usize) -> (Option<usize>, Option<usize>) {
    let o = (kind != LineKind::Added).then(|| {
        *old += 1;
        *old
    });
    let n = (kind != LineKind::Removed).then(|| {
        *new += 1;
        *new
    });
    (o, n)
}

fn line(l: &DiffLine, old: Option<usize>, new: Option<usize>) -> Markup {
    let class = match l.kind {
        LineKind::Context => "context",
        LineKind::Added => "added",
        LineKind::Removed => "removed",
    };
    html! {
        tr class=(class) {
            td.num { @if let Some(o) = old { (o) } }
            td.num { @if let Some(n) = new { (n) } }
            td.marker { (l.kind.marker()) }
            td.text {
                @for s in &l.spans {
                    @match s.kind {
                        SpanKind::Text => (s.text),
                        SpanKind::StandIn => mark.inv title="invisible character" { (s.text) },
                        SpanKind::TrailingSpace => mark.ws title="trailing whitespace" { (s.text) },
                        SpanKind::CarriageReturn => mark.cr title="carriage return (CRLF)" { (s.text) },
                    }
                }
                @if l.no_newline { " " span.nonl { "(no newline at end of file)" } }
            }
        }
    }
}
