//! `normalize` on arbitrary strings: it never panics, and what it accepts is
//! a clean, relative, idempotent path outside the host's reserved folders.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lockstep::workspace::path::{normalize, MAX_COMPONENT_LEN, MAX_PATH_LEN, RESERVED_DIRS};

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
    let first = clean.split('/').next().unwrap_or_default();
    assert!(
        !RESERVED_DIRS.iter().any(|r| first.eq_ignore_ascii_case(r)),
        "{path:?} → {clean:?} is inside a reserved folder"
    );
    assert_eq!(
        normalize(&clean).as_deref(),
        Ok(clean.as_str()),
        "normalising {path:?} is not idempotent"
    );
});
