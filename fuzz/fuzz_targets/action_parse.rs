//! `parse_action` on arbitrary bytes: it never panics, an accepted action
//! names its plugins, and a refusal says why.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lockstep::lifecycle::parse_action;

fuzz_target!(|data: &[u8]| {
    let source = String::from_utf8_lossy(data);
    match parse_action(&source) {
        Ok(action) => {
            for (field, value) in [
                ("name", &action.name),
                ("strategy", &action.strategy),
                ("executor", &action.executor),
            ] {
                assert!(!value.trim().is_empty(), "accepted an empty `{field}`");
            }
        }
        Err(e) => assert!(
            !e.to_string().trim().is_empty(),
            "an empty error for {source:?}"
        ),
    }
});
