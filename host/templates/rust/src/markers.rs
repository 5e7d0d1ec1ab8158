//! The plugin's pure logic: no host calls, so `cargo test` runs it on this
//! machine's own target.

use lockstep_sdk::PluginError;

/// The markers upper-cased when the action names none.
pub const DEFAULT_MARKERS: &str = "TODO,FIXME";

/// The globs searched when the action names none.
pub const DEFAULT_GLOBS: &str = "**/*";

/// Parses the `markers` param: comma-separated words of ASCII letters,
/// returned upper-cased. A bad value is `invalid-input`.
pub fn parse_markers(param: Option<&str>) -> Result<Vec<String>, PluginError> {
    let invalid = PluginError::InvalidInput;
    let markers: Vec<String> = param
        .unwrap_or(DEFAULT_MARKERS)
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| {
            if m.bytes().all(|b| b.is_ascii_alphabetic()) {
                Ok(m.to_ascii_uppercase())
            } else {
                Err(invalid(format!(
                    "param `markers`: `{m}` is not a word of ASCII letters"
                )))
            }
        })
        .collect::<Result<_, _>>()?;
    if markers.is_empty() {
        return Err(invalid("param `markers` names no marker".into()));
    }
    Ok(markers)
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `text` with every marker that is followed by `:`, starts a word and is
/// not upper-case already written in upper case (`todo:` and `Todo:` become
/// `TODO:`; `mastodon:` stays). `None` when nothing changes. `markers` are
/// upper-case ASCII words, as [`parse_markers`] returns them.
pub fn upper_case_markers(text: &str, markers: &[String]) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = bytes.to_vec();
    let mut changed = false;
    for marker in markers {
        let marker = marker.as_bytes();
        let n = marker.len();
        let mut i = 0;
        while i + n < bytes.len() {
            let word = &bytes[i..i + n];
            if bytes[i + n] == b':'
                && word.eq_ignore_ascii_case(marker)
                && word != marker
                && (i == 0 || !is_word(bytes[i - 1]))
            {
                out[i..i + n].copy_from_slice(marker);
                changed = true;
                i += n;
            } else {
                i += 1;
            }
        }
    }
    // Only ASCII letters were replaced by ASCII letters: still UTF-8.
    changed.then(|| String::from_utf8(out).expect("ASCII for ASCII keeps UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<String> {
        parse_markers(None).unwrap()
    }

    #[test]
    fn markers_in_another_case_are_upper_cased() {
        let text = "// todo: parse\n# Fixme: tabs\n/* TODO: done */\nmastodon: no\ntodo no colon\n";
        assert_eq!(
            upper_case_markers(text, &defaults()).as_deref(),
            Some("// TODO: parse\n# FIXME: tabs\n/* TODO: done */\nmastodon: no\ntodo no colon\n")
        );
        assert_eq!(upper_case_markers("TODO: x\n", &defaults()), None);
        assert_eq!(
            upper_case_markers("todo:", &defaults()).as_deref(),
            Some("TODO:")
        );
        assert_eq!(
            upper_case_markers("é todo: ü", &defaults()).as_deref(),
            Some("é TODO: ü")
        );
    }

    #[test]
    fn params_are_checked() {
        assert_eq!(parse_markers(Some("note, hack")).unwrap(), ["NOTE", "HACK"]);
        assert_eq!(
            parse_markers(Some("to-do")).unwrap_err(),
            PluginError::InvalidInput("param `markers`: `to-do` is not a word of ASCII letters".into())
        );
        assert!(parse_markers(Some(" , ")).is_err());
    }
}
