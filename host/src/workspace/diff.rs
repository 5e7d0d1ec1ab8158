//! Unified diffs of file contents, for people reading a changeset or a
//! comparison with expected files.

/// A unified diff of `old` → `new` with three lines of context, headed
/// `--- from` and `+++ to`; empty when the texts are equal. Bytes that are
/// not UTF-8 are shown lossily.
pub fn unified_diff(old: &[u8], new: &[u8], from: &str, to: &str) -> String {
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    similar::TextDiff::from_lines(old.as_ref(), new.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(from, to)
        .to_string()
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
        assert!(d.contains("+new\n\\ No newline at end of file"), "{d}");
    }
}
