//! `normalize` on arbitrary strings: it never panics, and what it accepts is
//! a clean, relative, idempotent path with no component that is, in any
//! letter case or Unicode normalisation, a directory of the host or of
//! version control. That last oracle is written here, independently of
//! lockstep's own reserved-name check.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lockstep::workspace::path::{normalize, MAX_COMPONENT_LEN, MAX_PATH_LEN};
use unicode_normalization::UnicodeNormalization;

/// The directories no accepted path may enter, at any depth.
const FORBIDDEN: [&str; 5] = [".git", ".hg", ".svn", ".jj", ".lockstep"];

/// Whether `component` names one of [`FORBIDDEN`] on a filesystem that
/// ignores letter case and Unicode normalisation: decomposed (NFD),
/// lower-cased character by character, decomposed again, and compared
/// with the names decomposed the same way.
fn names_a_forbidden_dir(component: &str) -> bool {
    let fold = |s: &str| -> String {
        s.nfd()
            .flat_map(char::to_lowercase)
            .collect::<String>()
            .nfd()
            .collect()
    };
    let folded = fold(component);
    FORBIDDEN.iter().any(|name| folded == fold(name))
}

fuzz_target!(|path: &str| {
    let Ok(clean) = normalize(path) else {
        return;
    };
    assert!(!clean.is_empty(), "{path:?} normalised to nothing");
    assert!(
        clean.len() <= MAX_PATH_LEN,
        "{path:?} → {clean:?} is too long"
    );
    assert!(!clean.starts_with('/'), "{path:?} → {clean:?} is absolute");
    assert!(
        !clean.contains('\0') && !clean.contains('\\'),
        "{path:?} → {clean:?} has a NUL or backslash"
    );
    assert!(
        !clean.chars().any(char::is_control),
        "{path:?} → {clean:?} has a control character"
    );
    for part in clean.split('/') {
        assert!(
            !matches!(part, "" | "." | ".."),
            "{path:?} → {clean:?} has a `{part}` component"
        );
        assert!(part.len() <= MAX_COMPONENT_LEN, "{path:?} → {clean:?}");
    }
    for part in clean.split('/') {
        assert!(
            !names_a_forbidden_dir(part),
            "{path:?} → {clean:?} enters {part:?}, a host or VCS directory"
        );
    }
    assert_eq!(
        normalize(&clean).as_deref(),
        Ok(clean.as_str()),
        "normalising {path:?} is not idempotent"
    );
});
