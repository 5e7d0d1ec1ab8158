//! What a trapped guest wrote to stderr just before it trapped, read as the
//! cause of the trap.
//!
//! The language runtimes inside the components say why they give up, each
//! in its own way, and then execute `unreachable`:
//!
//! - componentize-py prints the Python traceback and panics with
//!   `Python function threw an unexpected exception`; a returned value it
//!   cannot convert is a panic on `CastError { from: VALUE, classinfo:
//!   <class 'T'> }` or on a `PyErr` (`TypeError`, `AttributeError`);
//! - componentize-js (StarlingMonkey) prints the error of its bindings
//!   (`invalid variant tag value …`, `expected a string, received […]`)
//!   and `Stack:`, then `Redirecting call to abort() to mozalloc_abort`;
//! - Rust prints `thread '…' panicked at FILE:LINE:COL:` and the message.
//!
//! Only the last lines of stderr are kept (see `PluginLog::stderr_tail`),
//! so every reader looks from the end.

/// Why a guest trapped, as far as its stderr says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// A Python exception escaped an export: `exception` is its last line
    /// (`ValueError: no parser`), `at` the innermost frame
    /// (`app.py, line 32, in execute`).
    PyException {
        /// `Type: message`.
        exception: String,
        /// Where it was raised.
        at: Option<String>,
    },
    /// componentize-py could not convert a returned value: a `got` where
    /// the WIT type needs a `expected` (Python type names).
    PyWrongType {
        /// The Python type the bindings needed.
        expected: String,
        /// The Python type of the value returned.
        got: String,
        /// The value's repr, when the bindings printed it.
        value: Option<String>,
    },
    /// A returned value lacks an attribute of the WIT record: a `got` (often
    /// `None` or a `dict`) where the record was needed.
    PyNotRecord {
        /// The Python type returned.
        got: String,
        /// The attribute the bindings looked for.
        attribute: String,
    },
    /// componentize-py failed to convert a returned value otherwise.
    PyConversion(String),
    /// A JavaScript value that is not a `plugin-error` was thrown out of an
    /// export; the value as the bindings printed it (`Error: message`).
    JsThrown(String),
    /// A variant (`ty`: `PluginError`, `Change`) with a tag it does not have.
    JsUnknownTag {
        /// The WIT type, as the bindings name it.
        ty: String,
        /// The tag given.
        tag: String,
    },
    /// A value that is not a `{ tag, val }` object where a variant was needed.
    JsNotVariant {
        /// The WIT type, as the bindings name it.
        ty: String,
        /// The value as the bindings printed it.
        got: String,
    },
    /// A value of JavaScript type `got` where a string was needed.
    JsNotString(String),
    /// A value that is not a `Uint8Array` where bytes were needed.
    JsNotBytes,
    /// Another error raised by the bindings or the engine (`e is undefined`).
    JsOther(String),
    /// A Rust panic: where, and the message.
    Panic {
        /// `src/lib.rs:12:5`.
        at: String,
        /// The panic message.
        message: String,
    },
}

const PANICKED: &str = "panicked at ";
const PY_THREW: &str = "Python function threw an unexpected exception";
const JS_ABORT: &str = "Redirecting call to abort() to mozalloc_abort";
const RUST_BACKTRACE_NOTE: &str = "note: run with `RUST_BACKTRACE=1`";

/// The cause `tail` (the last stderr lines, oldest first) states, if it is
/// one of the known shapes.
pub fn read(tail: &[String]) -> Option<Cause> {
    python(tail)
        .or_else(|| javascript(tail))
        .or_else(|| rust_panic(tail))
}

/// The stderr lines worth showing when the cause is not recognised: without
/// advice that cannot apply to a plugin (it has no environment) and the
/// engines' own noise.
pub fn meaningful(tail: &[String]) -> Vec<&str> {
    tail.iter()
        .map(|l| l.trim_end())
        .filter(|l| !l.trim().is_empty() && !l.starts_with(RUST_BACKTRACE_NOTE) && *l != JS_ABORT)
        .collect()
}

/// The index of the last `thread '…' panicked at FILE:` line, with FILE.
fn panic_line(tail: &[String]) -> Option<(usize, &str)> {
    tail.iter().enumerate().rev().find_map(|(i, l)| {
        let rest = l.strip_prefix("thread '")?;
        let at = &rest[rest.find(PANICKED)? + PANICKED.len()..];
        Some((i, at.trim_end().trim_end_matches(':')))
    })
}

/// The panic message: the lines after the `panicked at` line, up to the
/// note about `RUST_BACKTRACE`.
fn panic_message(tail: &[String], line: usize) -> String {
    tail[line + 1..]
        .iter()
        .map(|l| l.trim())
        .take_while(|l| !l.starts_with(RUST_BACKTRACE_NOTE))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn rust_panic(tail: &[String]) -> Option<Cause> {
    let (line, at) = panic_line(tail)?;
    Some(Cause::Panic {
        at: at.to_string(),
        message: panic_message(tail, line),
    })
}

fn python(tail: &[String]) -> Option<Cause> {
    let (line, _) = panic_line(tail)?;
    let message = panic_message(tail, line);
    if message.starts_with(PY_THREW) {
        return Some(py_exception(&tail[..line]));
    }
    let value = message
        .split_once("Err` value: ")
        .map_or(&*message, |(_, v)| v);
    if let Some(cast) = value.strip_prefix("CastError { ") {
        return Some(py_cast(cast));
    }
    let rest = value.strip_prefix("PyErr { type: <class '")?;
    let (kind, rest) = rest.split_once("'>, value: ")?;
    let inner = rest
        .strip_prefix(kind)
        .and_then(|r| r.strip_prefix('('))
        .and_then(|r| r.rsplit_once(')'))
        .map_or(rest, |(inner, _)| inner);
    let text = unquote(inner);
    Some(py_error(kind, text))
}

/// The exception of the traceback that ends `lines`: the last lines after
/// its innermost `File "…", line N, in F` frame.
fn py_exception(lines: &[String]) -> Cause {
    let lines: Vec<&str> = lines.iter().map(|l| l.trim_end()).collect();
    let end = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(0, |i| i + 1);
    let frame = lines[..end]
        .iter()
        .rposition(|l| l.trim_start().starts_with("File \""));
    let start = frame.map_or(0, |i| i + 1);
    let exception = lines[start..end]
        .iter()
        .filter(|l| !l.starts_with("  "))
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    Cause::PyException {
        exception,
        at: frame.and_then(|i| py_frame(lines[i])),
    }
}

/// `File "/0/app.py", line 32, in execute` as `app.py, line 32, in
/// execute` (componentize-py mounts the app's folder as `/0`).
fn py_frame(line: &str) -> Option<String> {
    let rest = line.trim_start().strip_prefix("File \"")?;
    let (file, rest) = rest.split_once('"')?;
    let file = match file.strip_prefix('/').and_then(|f| f.split_once('/')) {
        Some((mount, inner)) if mount.bytes().all(|b| b.is_ascii_digit()) => inner,
        _ => file,
    };
    Some(format!("{file}{rest}"))
}

/// `from: 'text', classinfo: <class 'bytes'> }`.
fn py_cast(fields: &str) -> Cause {
    let body = fields.trim_end().trim_end_matches('}').trim_end();
    let (from, classinfo) = body
        .rsplit_once(", classinfo: ")
        .unwrap_or((body, "<class '?'>"));
    let from = from.strip_prefix("from: ").unwrap_or(from);
    let expected = classinfo
        .trim_start_matches("<class '")
        .trim_end_matches("'>")
        .to_string();
    Cause::PyWrongType {
        expected,
        got: py_type_of(from),
        value: Some(from.to_string()),
    }
}

/// A `PyErr` of type `kind` with the message `text`, raised by the
/// bindings while converting a returned value.
fn py_error(kind: &str, text: &str) -> Cause {
    // TypeError("'int' object is not an instance of 'str'")
    if let Some((got, expected)) = text
        .strip_prefix('\'')
        .and_then(|t| t.split_once("' object is not an instance of '"))
    {
        return Cause::PyWrongType {
            expected: expected.trim_end_matches('\'').to_string(),
            got: got.to_string(),
            value: None,
        };
    }
    // AttributeError("'NoneType' object has no attribute 'summary'")
    if let Some((got, attribute)) = text
        .strip_prefix('\'')
        .and_then(|t| t.split_once("' object has no attribute '"))
    {
        return Cause::PyNotRecord {
            got: got.to_string(),
            attribute: attribute.trim_end_matches('\'').to_string(),
        };
    }
    Cause::PyConversion(format!("{kind}: {text}"))
}

/// `'x'` or `"x"` without its quotes.
fn unquote(s: &str) -> &str {
    let s = s.trim();
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

/// The Python type of the value whose repr is `repr`, as far as the repr
/// tells.
fn py_type_of(repr: &str) -> String {
    let repr = repr.trim();
    let name = match repr.as_bytes().first() {
        Some(b'\'' | b'"') => "str",
        Some(b'b') if repr[1..].starts_with(['\'', '"']) => "bytes",
        Some(b'[') => "list",
        Some(b'(') => "tuple",
        Some(b'{') => "dict",
        _ if repr == "None" => "None",
        _ if repr == "True" || repr == "False" => "bool",
        _ if repr.parse::<i128>().is_ok() => "int",
        _ if repr.parse::<f64>().is_ok() => "float",
        _ => {
            // `<Foo object at 0x…>` or a dataclass's `Foo(a=1)`.
            let name = repr.trim_start_matches('<');
            let end = name
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(name.len());
            return if end == 0 {
                "value".into()
            } else {
                name[..end].to_string()
            };
        }
    };
    name.to_string()
}

fn javascript(tail: &[String]) -> Option<Cause> {
    let lines: Vec<&str> = tail.iter().map(|l| l.trim_end()).collect();
    let stack = lines.iter().rposition(|l| *l == "Stack:");
    let end = match stack {
        Some(i) => i,
        None => lines.iter().rposition(|l| *l == JS_ABORT)?,
    };
    let message = *lines[..end].iter().rev().find(|l| !l.trim().is_empty())?;
    Some(js_message(message))
}

/// The cause a componentize-js bindings message states.
fn js_message(message: &str) -> Cause {
    if let Some(rest) = message.strip_prefix("invalid variant tag value `") {
        let (tag, rest) = rest.split_once("` (received `").unwrap_or((rest, ""));
        let (got, rest) = rest.rsplit_once("`) specified for `").unwrap_or((rest, ""));
        let ty = rest.trim_end_matches('`').to_string();
        return match (tag, ty.as_str()) {
            ("undefined", "PluginError") => Cause::JsThrown(got.to_string()),
            ("undefined", _) => Cause::JsNotVariant {
                ty,
                got: got.to_string(),
            },
            (tag, _) => Cause::JsUnknownTag {
                ty,
                tag: unquote(tag).to_string(),
            },
        };
    }
    if let Some(got) = message.strip_prefix("expected a string, received [") {
        return Cause::JsNotString(got.trim_end_matches(']').to_string());
    }
    if message == "source array is too long" {
        return Cause::JsNotBytes;
    }
    Cause::JsOther(message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn a_python_exception_is_its_last_line_and_innermost_frame() {
        let tail = lines(
            "Traceback (most recent call last):\n  File \"/0/app.py\", line 171, in execute\n\
             ValueError: no parser for notes.md\n\n\
             thread '<unnamed>' (1) panicked at runtime/src/lib.rs:1293:29:\n\
             Python function threw an unexpected exception\n\
             note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
        );
        assert_eq!(
            read(&tail),
            Some(Cause::PyException {
                exception: "ValueError: no parser for notes.md".into(),
                at: Some("app.py, line 171, in execute".into()),
            })
        );
        // A deep traceback whose start was cut off.
        let tail = lines(
            "  File \"/0/app.py\", line 15, in _deeper\n  [Previous line repeated 9 more times]\n\
             \x20 File \"/0/lib/util.py\", line 14, in _deeper\nKeyError: 'markers'\n\n\
             thread '<unnamed>' (1) panicked at runtime/src/lib.rs:1293:29:\n\
             Python function threw an unexpected exception",
        );
        assert_eq!(
            read(&tail),
            Some(Cause::PyException {
                exception: "KeyError: 'markers'".into(),
                at: Some("lib/util.py, line 14, in _deeper".into()),
            })
        );
    }

    #[test]
    fn python_conversion_failures_name_the_types() {
        let panic = |value: &str| {
            lines(&format!(
                "\nthread '<unnamed>' (1) panicked at runtime/src/lib.rs:1686:57:\n\
                 called `Result::unwrap()` on an `Err` value: {value}\n{RUST_BACKTRACE_NOTE} environment variable"
            ))
        };
        assert_eq!(
            read(&panic(
                "CastError { from: 'text', classinfo: <class 'bytes'> }"
            )),
            Some(Cause::PyWrongType {
                expected: "bytes".into(),
                got: "str".into(),
                value: Some("'text'".into()),
            })
        );
        let cast = read(&panic(
            "CastError { from: [1, 2], classinfo: <class 'bytes'> }",
        ));
        assert!(matches!(cast, Some(Cause::PyWrongType { got, .. }) if got == "list"));
        assert_eq!(
            read(&panic(
                "PyErr { type: <class 'TypeError'>, value: TypeError(\"'int' object is not an instance of 'str'\"), traceback: None }"
            )),
            Some(Cause::PyWrongType {
                expected: "str".into(),
                got: "int".into(),
                value: None,
            })
        );
        assert_eq!(
            read(&panic(
                "PyErr { type: <class 'AttributeError'>, value: AttributeError(\"'NoneType' object has no attribute 'summary'\"), traceback: None }"
            )),
            Some(Cause::PyNotRecord {
                got: "NoneType".into(),
                attribute: "summary".into(),
            })
        );
        assert_eq!(
            read(&panic(
                "PyErr { type: <class 'OverflowError'>, value: OverflowError('too big'), traceback: None }"
            )),
            Some(Cause::PyConversion("OverflowError: too big".into()))
        );
    }

    #[test]
    fn python_reprs_give_their_types() {
        for (repr, ty) in [
            ("'a'", "str"),
            ("b'a'", "bytes"),
            ("[1]", "list"),
            ("(1, 2)", "tuple"),
            ("{}", "dict"),
            ("None", "None"),
            ("True", "bool"),
            ("42", "int"),
            ("4.5", "float"),
            ("FileWrite(path='a', contents=b'')", "FileWrite"),
            ("<app.Thing object at 0x10>", "app.Thing"),
            ("", "value"),
        ] {
            assert_eq!(py_type_of(repr), ty, "{repr}");
        }
    }

    fn js(message: &str) -> Vec<String> {
        lines(&format!(
            "{message}\nStack:\n  export_execution_0_2_0$execute@/tmp/x/sources/initializer.js:1473:17\n\n{JS_ABORT}\n"
        ))
    }

    #[test]
    fn javascript_bindings_messages_are_read() {
        assert_eq!(
            read(&js("invalid variant tag value `undefined` (received `Error: no parser for a.txt`) specified for `PluginError`")),
            Some(Cause::JsThrown("Error: no parser for a.txt".into()))
        );
        assert_eq!(
            read(&js("invalid variant tag value `\"wrtie\"` (received `[object Object]`) specified for `Change`")),
            Some(Cause::JsUnknownTag {
                ty: "Change".into(),
                tag: "wrtie".into()
            })
        );
        assert_eq!(
            read(&js(
                "invalid variant tag value `undefined` (received `x`) specified for `Change`"
            )),
            Some(Cause::JsNotVariant {
                ty: "Change".into(),
                got: "x".into()
            })
        );
        assert_eq!(
            read(&js("expected a string, received [number]")),
            Some(Cause::JsNotString("number".into()))
        );
        assert_eq!(
            read(&js("source array is too long")),
            Some(Cause::JsNotBytes)
        );
        assert_eq!(
            read(&js("e is undefined")),
            Some(Cause::JsOther("e is undefined".into()))
        );
        // Without a stack: the line before the abort.
        assert_eq!(
            read(&lines(&format!("boom\n{JS_ABORT}"))),
            Some(Cause::JsOther("boom".into()))
        );
    }

    #[test]
    fn a_rust_panic_keeps_place_and_message_without_the_backtrace_note() {
        let tail = lines(
            "thread '<unnamed>' panicked at src/lib.rs:12:5:\nhostile plugin panicked on purpose\n\
             note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
        );
        assert_eq!(
            read(&tail),
            Some(Cause::Panic {
                at: "src/lib.rs:12:5".into(),
                message: "hostile plugin panicked on purpose".into(),
            })
        );
        assert_eq!(
            meaningful(&tail),
            [
                "thread '<unnamed>' panicked at src/lib.rs:12:5:",
                "hostile plugin panicked on purpose"
            ]
        );
        assert_eq!(read(&lines("just a line")), None);
    }
}
