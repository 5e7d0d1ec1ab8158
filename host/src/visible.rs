//! Untrusted text made safe to print on a terminal: every character that
//! could move the cursor, erase, recolour, reorder or hide text is replaced
//! by a visible stand-in, so what a person reads is what the bytes say.
//!
//! One scheme everywhere (CLI output, diffs, log lines):
//!
//! | what                                             | shown as                         |
//! |--------------------------------------------------|----------------------------------|
//! | C0 controls U+0000–U+001F (ESC, CR, BS, …)        | Control Pictures `␀`…`␟` (`␛`, `␍`) |
//! | DEL U+007F                                       | `␡`                              |
//! | C1 controls U+0080–U+009F (CSI U+009B, …)         | `\u{9b}`                         |
//! | bidi controls U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C | `\u{202e}`      |
//! | other invisible format characters (zero-width, BOM, tags, U+2028/9, …) | `\u{200b}`   |
//! | bytes that are not UTF-8 (file contents only)    | `\xff`                           |
//!
//! Newline and tab are kept in multi-line text ([`block`]) and made visible
//! (`␊`, `␉`) in one-line fields ([`line`]), so a title cannot fake a line of
//! its own. A literal `␛` or `\u{…}` in the text is shown as itself: it is
//! harmless, and a reader who sees one knows the text contains something
//! odd. JSON output is left exact; [`json`] only writes the characters JSON
//! would otherwise pass through raw (DEL, C1, format characters) as `\u`
//! escapes, which decode to the same string.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal as itself (newline and tab aside).
fn is_hidden(c: char) -> bool {
    let u = c as u32;
    u < 0x20
        || (0x7f..=0x9f).contains(&u)
        || matches!(
            u,
            0x00ad
                | 0x034f
                | 0x061c
                | 0x0600..=0x0605
                | 0x06dd
                | 0x070f
                | 0x115f
                | 0x1160
                | 0x17b4
                | 0x17b5
                | 0x180b..=0x180f
                | 0x200b..=0x200f
                | 0x2028..=0x202e
                | 0x2060..=0x206f
                | 0x3164
                | 0xfe00..=0xfe0f
                | 0xfeff
                | 0xffa0
                | 0xfff0..=0xfffb
                | 0x1d173..=0x1d17a
                | 0xe0000..=0xe0fff
        )
}

/// Append the visible form of `c` (which [`is_hidden`] or is a newline or tab).
fn push_stand_in(out: &mut String, c: char) {
    let u = c as u32;
    if u < 0x20 {
        // U+2400 + code: the Unicode Control Pictures block.
        out.push(char::from_u32(0x2400 + u).unwrap_or('?'));
    } else if u == 0x7f {
        out.push('␡');
    } else {
        let _ = write!(out, "\\u{{{u:x}}}");
    }
}

fn visible(s: &str, keep_newlines_and_tabs: bool) -> Cow<'_, str> {
    let keep = |c: char| keep_newlines_and_tabs && (c == '\n' || c == '\t');
    if !s.chars().any(|c| is_hidden(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    push_visible(&mut out, s, keep_newlines_and_tabs);
    Cow::Owned(out)
}

fn push_visible(out: &mut String, s: &str, keep_newlines_and_tabs: bool) {
    for c in s.chars() {
        if is_hidden(c) && !(keep_newlines_and_tabs && (c == '\n' || c == '\t')) {
            push_stand_in(out, c);
        } else {
            out.push(c);
        }
    }
}

/// A one-line field (path, title, summary, name, progress message): every
/// control character made visible, newline and tab included.
pub fn line(s: &str) -> Cow<'_, str> {
    visible(s, false)
}

/// Multi-line text (an error message, a log line's body): newlines and tabs
/// kept, every other control character made visible.
pub fn block(s: &str) -> Cow<'_, str> {
    visible(s, true)
}

/// Bytes of one line of a file (without its newline), for a diff: tabs
/// kept, other controls (a carriage return as `␍`) made visible, and every
/// byte that is not part of valid UTF-8 shown as `\xNN`.
pub fn bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() + 8);
    for piece in bytes_pieces(b) {
        out.push_str(&piece.text);
    }
    out
}

/// A run of [`bytes`] output: text shown as itself, or the stand-in of one
/// hidden character or undecodable byte (which a renderer may mark, as the
/// dashboard does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// What is shown.
    pub text: String,
    /// Whether `text` stands in for something invisible (`␛`, `\u{202e}`,
    /// `\xff`).
    pub stand_in: bool,
}

/// [`bytes`] cut into [`Piece`]s: runs of plain text and one piece per
/// stand-in. Joined, the pieces are exactly [`bytes`] of the same input.
pub fn bytes_pieces(b: &[u8]) -> Vec<Piece> {
    let mut pieces: Vec<Piece> = Vec::new();
    let mut plain = String::new();
    let flush = |plain: &mut String, pieces: &mut Vec<Piece>| {
        if !plain.is_empty() {
            pieces.push(Piece {
                text: std::mem::take(plain),
                stand_in: false,
            });
        }
    };
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            if is_hidden(c) && c != '\t' {
                flush(&mut plain, &mut pieces);
                let mut text = String::new();
                push_stand_in(&mut text, c);
                pieces.push(Piece {
                    text,
                    stand_in: true,
                });
            } else {
                plain.push(c);
            }
        }
        for byte in chunk.invalid() {
            flush(&mut plain, &mut pieces);
            pieces.push(Piece {
                text: format!("\\x{byte:02x}"),
                stand_in: true,
            });
        }
    }
    flush(&mut plain, &mut pieces);
    pieces
}

/// Serialise `value` as compact JSON that is safe on a terminal and decodes
/// to exactly the same value: besides JSON's own escapes (which cover C0
/// controls), DEL, C1 controls and invisible format characters are written
/// as `\uXXXX` escapes.
pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    let mut buf = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, SafeFormatter);
    if value.serialize(&mut ser).is_err() {
        // Serialising to memory only fails for maps with non-string keys,
        // which this crate never prints.
        return "null".into();
    }
    // The formatter writes only UTF-8.
    String::from_utf8(buf).unwrap_or_default()
}

/// A compact `serde_json` formatter that also escapes the characters
/// [`is_hidden`] names.
struct SafeFormatter;

impl serde_json::ser::Formatter for SafeFormatter {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if is_hidden(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_not_sent() {
        assert_eq!(line("a\u{1b}[1A\u{1b}[2Kb"), "a␛[1A␛[2Kb");
        assert_eq!(line("x\ry"), "x␍y");
        assert_eq!(line("bell\u{7}\u{8}"), "bell␇␈");
        assert_eq!(line("del\u{7f}"), "del␡");
        assert_eq!(line("csi\u{9b}31m"), "csi\\u{9b}31m");
        assert_eq!(line("two\nlines\tand a tab"), "two␊lines␉and a tab");
        assert_eq!(
            block("two\nlines\tand a tab\u{1b}"),
            "two\nlines\tand a tab␛"
        );
    }

    #[test]
    fn bidi_and_invisible_format_characters_are_named() {
        assert_eq!(line("abc\u{202e}fed\u{202c}"), "abc\\u{202e}fed\\u{202c}");
        for c in [
            '\u{202a}', '\u{2066}', '\u{2069}', '\u{200b}', '\u{feff}', '\u{2028}',
        ] {
            let shown = line(&c.to_string()).into_owned();
            assert_eq!(shown, format!("\\u{{{:x}}}", c as u32));
        }
        // A tag character (used to smuggle invisible text).
        assert_eq!(line("\u{e0041}"), "\\u{e0041}");
    }

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        assert!(matches!(line("café — ✓ 日本"), Cow::Borrowed(_)));
        assert!(matches!(block("a\n\tb"), Cow::Borrowed(_)));
    }

    #[test]
    fn bytes_show_invalid_utf8_as_hex_and_keep_tabs() {
        assert_eq!(bytes(b"ok\tgo\xff\xfe\r"), "ok\tgo\\xff\\xfe␍");
        assert_eq!(bytes("é\u{1b}".as_bytes()), "é␛");
    }

    #[test]
    fn byte_pieces_mark_each_stand_in_and_join_to_bytes() {
        let input = "a\tb\u{1b}[2K\u{feff}c".as_bytes();
        let mut input = input.to_vec();
        input.push(0xff);
        let pieces = bytes_pieces(&input);
        let shown: Vec<(&str, bool)> = pieces
            .iter()
            .map(|p| (p.text.as_str(), p.stand_in))
            .collect();
        assert_eq!(
            shown,
            [
                ("a\tb", false),
                ("␛", true),
                ("[2K", false),
                ("\\u{feff}", true),
                ("c", false),
                ("\\xff", true)
            ]
        );
        let joined: String = pieces.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(joined, bytes(&input));
        assert!(bytes_pieces(b"").is_empty());
    }

    #[test]
    fn json_stays_exact_and_never_carries_raw_controls() {
        let value = serde_json::json!({
            "title": "a\u{1b}[2K\u{9b}\u{202e}\u{7f}\u{e0041}é",
            "n": 1,
        });
        let text = json(&value);
        assert!(
            !text.chars().any(is_hidden),
            "no raw control reaches the terminal: {text:?}"
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value, "the JSON decodes to the exact value");
    }
}
