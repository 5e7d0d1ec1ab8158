//! A trap's [`Cause`] as one sentence in the author's terms: which export
//! and step, what the plugin did (the exception and its message, the field
//! and the type it should have had), and what to do instead.

use super::cause::Cause;
use super::CallSite;

/// The fields of what an export returns, by the type they have, in the
/// words of each language's bindings.
struct Returns {
    /// The record, as componentize-py names its class.
    py_record: &'static str,
    /// The record, as a JavaScript object.
    js_record: &'static str,
    /// Fields that are strings.
    strings: &'static str,
    /// Fields that are lists.
    lists: &'static str,
    /// Fields that are `list<u8>` (bytes), if any.
    bytes: Option<&'static str>,
    /// Fields that are tuples, if any.
    tuples: Option<&'static str>,
}

const OUTCOME: Returns = Returns {
    py_record: "StepOutcome",
    js_record: "{ changes, summary }",
    strings: "`summary` or a change's `path`",
    lists: "`changes`",
    bytes: Some("a write's `contents`"),
    tuples: None,
};

const PROPOSAL: Returns = Returns {
    py_record: "PlanProposal",
    js_record: "{ summary, steps }",
    strings: "`summary`, a step's `id` or `title`, a param's key or value, or a target",
    lists: "`steps` or a step's `params` or `targets`",
    bytes: None,
    tuples: Some("a step's param (a `(key, value)` pair)"),
};

fn returns(site: &CallSite) -> &'static Returns {
    match site {
        CallSite::Strategize => &PROPOSAL,
        CallSite::Execute { .. } => &OUTCOME,
    }
}

/// A value of the type `ty`: `a number`, `an object`, `None`; `code`
/// puts the name in backticks (`` a `str` ``).
fn a(ty: &str, code: bool) -> String {
    let ty = if ty == "NoneType" { "None" } else { ty };
    let name = if code {
        format!("`{ty}`")
    } else {
        ty.to_string()
    };
    match ty {
        "None" | "undefined" | "null" => name,
        t if t.starts_with(['a', 'e', 'i', 'o', 'u']) => format!("an {name}"),
        _ => format!("a {name}"),
    }
}

const PY_RAISE: &str = "an exception that escapes an export stops the plugin: catch it and \
    raise `Err(PluginError_Permanent(str(e)))` (or `PluginError_InvalidInput`, \
    `PluginError_Retryable`) to fail with your own message";
const JS_THROW: &str = "a thrown value that is not a plugin-error stops the plugin: catch it and \
    throw `{ tag: 'permanent', val: String(e) }` (or `invalid-input`, `retryable`) to fail \
    with your own message";

/// The sentence for `cause` in a call of `site`.
pub fn sentence(cause: &Cause, site: &CallSite) -> String {
    let r = returns(site);
    match cause {
        Cause::PyException { exception, at } => {
            let at = at.as_ref().map_or(String::new(), |at| format!(" ({at})"));
            format!("{site} raised {exception}{at}; {PY_RAISE}")
        }
        Cause::PyWrongType {
            expected,
            got,
            value,
        } => py_wrong_type(site, r, expected, got, value.as_deref()),
        Cause::PyNotRecord { got, attribute } => {
            let record = py_record_of(r, attribute);
            format!(
                "{site} returned {} where a `{record}` is needed (it has no attribute \
                 `{attribute}`); return `{record}({})`",
                a(got, true),
                py_fields(record),
            )
        }
        Cause::PyConversion(error) => {
            format!("{site} returned a value the Python bindings cannot convert: {error}")
        }
        Cause::JsThrown(thrown) => format!("{site} threw {thrown}; {JS_THROW}"),
        Cause::JsUnknownTag { ty, tag } => js_unknown_tag(site, ty, tag),
        Cause::JsNotVariant { ty, got } => format!(
            "{site} returned `{got}` where a `{ty}` is needed: {}",
            js_variant_shape(ty)
        ),
        Cause::JsNotString(got) => format!(
            "{site} returned {} where a string is needed: {} must be a string",
            a(got, false),
            r.strings
        ),
        Cause::JsNotBytes => format!(
            "{site} returned {} that is not a Uint8Array; use new TextEncoder().encode(text)",
            r.bytes.unwrap_or("a `list<u8>` field")
        ),
        Cause::JsOther(message) => format!(
            "{site} failed in the JavaScript bindings: {message} (probably because the value \
             returned is not `{}` with every field set)",
            r.js_record
        ),
        Cause::Panic { at, message } => format!("{site} panicked at {at}: {message}"),
    }
}

fn py_wrong_type(
    site: &CallSite,
    r: &Returns,
    expected: &str,
    got: &str,
    value: Option<&str>,
) -> String {
    let value = value.map_or(String::new(), |v| format!(" ({v})"));
    let (fields, fix) = match expected {
        "bytes" => (r.bytes, "; use text.encode('utf-8')"),
        "str" => (Some(r.strings), ""),
        "list" => (Some(r.lists.trim_end_matches(',')), ""),
        "tuple" => (r.tuples, ""),
        _ => (None, ""),
    };
    let fields = match fields {
        Some(f) => format!(": {f} must be `{expected}`"),
        None => String::new(),
    };
    format!(
        "{site} returned {}{value} where `{expected}` is needed{fields}{fix}",
        a(got, true)
    )
}

/// The record of `r` an attribute belongs to.
fn py_record_of(r: &Returns, attribute: &str) -> &'static str {
    match attribute {
        "path" | "contents" => "FileWrite",
        "id" | "title" | "params" | "targets" => "Step",
        _ => r.py_record,
    }
}

/// The fields of a record of the bindings, for its constructor.
fn py_fields(record: &str) -> &'static str {
    match record {
        "StepOutcome" => "changes=[…], summary=…",
        "PlanProposal" => "summary=…, steps=[…]",
        "FileWrite" => "path=…, contents=…",
        "Step" => "id=…, title=…, params=[…], targets=[…]",
        _ => "…",
    }
}

fn js_variant_shape(ty: &str) -> &'static str {
    match ty {
        "Change" => "each change is `{ tag: 'write', val: { path, contents } }` or `{ tag: 'delete', val: path }`",
        "PluginError" => "a plugin-error is `{ tag, val }` with tag `invalid-input`, `lock`, `retryable` or `permanent`",
        _ => "a variant is a `{ tag, val }` object",
    }
}

fn js_unknown_tag(site: &CallSite, ty: &str, tag: &str) -> String {
    let (what, tags) = match ty {
        "PluginError" => (
            "threw a plugin-error",
            "`invalid-input`, `lock`, `retryable`, `permanent`",
        ),
        "Change" => ("returned a change", "`write`, `delete`"),
        _ => ("returned a variant", "those of its WIT type"),
    };
    format!("{site} {what} with the unknown tag `{tag}`; the tags are {tags}")
}

/// The sentence when nothing was written to stderr: `can_write` says
/// whether the component could have.
pub fn silent(site: &CallSite, trap: &str, can_write: bool) -> String {
    if can_write {
        return format!("{site} stopped ({trap}) without writing a reason to stderr");
    }
    format!(
        "{site} stopped ({trap}) and the component cannot write to stderr (it imports no \
         wasi:cli/stderr, as componentize-js builds with `--disable stdio` do), so the reason \
         is lost. In JavaScript it is usually an exception thrown out of the export or a value \
         of the wrong type returned: build without `--disable stdio` to see the engine's \
         message, and catch exceptions in each export (throw `{{ tag: 'permanent', val: \
         String(e) }}`)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step() -> CallSite {
        CallSite::Execute {
            step: "file-1".into(),
        }
    }

    #[test]
    fn python_sentences_name_the_step_the_field_and_the_types() {
        let s = sentence(
            &Cause::PyWrongType {
                expected: "bytes".into(),
                got: "str".into(),
                value: Some("'text'".into()),
            },
            &step(),
        );
        assert_eq!(
            s,
            "`execute` (step `file-1`) returned a `str` ('text') where `bytes` is needed: \
             a write's `contents` must be `bytes`; use text.encode('utf-8')"
        );
        let s = sentence(
            &Cause::PyWrongType {
                expected: "str".into(),
                got: "int".into(),
                value: None,
            },
            &CallSite::Strategize,
        );
        assert!(
            s.starts_with(
                "`strategize` returned an `int` where `str` is needed: `summary`, a step's `id`"
            ),
            "{s}"
        );
        let s = sentence(
            &Cause::PyNotRecord {
                got: "NoneType".into(),
                attribute: "summary".into(),
            },
            &step(),
        );
        assert!(
            s.starts_with(
                "`execute` (step `file-1`) returned `None` where a `StepOutcome` is needed"
            ),
            "{s}"
        );
        let s = sentence(
            &Cause::PyException {
                exception: "ValueError: no parser".into(),
                at: Some("app.py, line 3, in execute".into()),
            },
            &step(),
        );
        assert!(
            s.starts_with(
                "`execute` (step `file-1`) raised ValueError: no parser (app.py, line 3, in execute); an exception"
            ),
            "{s}"
        );
    }

    #[test]
    fn javascript_sentences_name_the_step_the_field_and_the_types() {
        assert_eq!(
            sentence(&Cause::JsNotString("number".into()), &step()),
            "`execute` (step `file-1`) returned a number where a string is needed: \
             `summary` or a change's `path` must be a string"
        );
        assert!(sentence(
            &Cause::JsThrown("Error: boom".into()),
            &CallSite::Strategize
        )
        .starts_with("`strategize` threw Error: boom; a thrown value"));
        assert_eq!(
            sentence(
                &Cause::JsUnknownTag {
                    ty: "Change".into(),
                    tag: "wrtie".into()
                },
                &step()
            ),
            "`execute` (step `file-1`) returned a change with the unknown tag `wrtie`; the tags are `write`, `delete`"
        );
        assert!(sentence(&Cause::JsNotBytes, &step())
            .contains("a write's `contents` that is not a Uint8Array"));
        assert!(silent(&step(), "wasm trap", false).contains("cannot write to stderr"));
        assert!(!silent(&step(), "wasm trap", true).contains("JavaScript"));
    }
}
