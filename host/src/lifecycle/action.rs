//! Action files: TOML with `name`, `strategy`, `executor` and a `[params]`
//! table of strings.

use std::collections::BTreeMap;

use super::Action;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionFile {
    name: String,
    strategy: String,
    executor: String,
    #[serde(default)]
    params: BTreeMap<String, String>,
}

/// Parse an action file. Errors name the line, column and field.
pub fn parse_action(source: &str) -> Result<Action, String> {
    let file: ActionFile = toml::from_str(source).map_err(|e| {
        let location = e
            .span()
            .map(|span| {
                let line = source[..span.start.min(source.len())].matches('\n').count() + 1;
                format!("line {line}: ")
            })
            .unwrap_or_default();
        format!("{location}{}", e.message())
    })?;
    for (field, value) in [
        ("name", &file.name),
        ("strategy", &file.strategy),
        ("executor", &file.executor),
    ] {
        if value.trim().is_empty() {
            return Err(format!("field `{field}` must not be empty"));
        }
    }
    Ok(Action {
        name: file.name,
        strategy: file.strategy,
        executor: file.executor,
        params: file.params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_action() {
        let a =
            parse_action("name = \"x\"\nstrategy = \"s\"\nexecutor = \"e\"\n[params]\nk = \"v\"\n")
                .unwrap();
        assert_eq!(a.params["k"], "v");
    }

    #[test]
    fn errors_name_line_and_field() {
        let e = parse_action("name = \"x\"\nstrategy = \"s\"\n").unwrap_err();
        assert!(e.contains("executor"), "{e}");
        let e = parse_action("name = \"x\"\nstrategy = \"s\"\nexecutor = \"e\"\n[params]\nk = 3\n")
            .unwrap_err();
        assert!(e.starts_with("line 5"), "{e}");
        let e = parse_action("name = \"x\"\nstrategy = 1\nexecutor = \"e\"\n").unwrap_err();
        assert!(e.starts_with("line 2") && e.contains("string"), "{e}");
        let e = parse_action("name = \"x\"\nstrategy = \"s\"\nexecutor = \"e\"\nextra = 1\n")
            .unwrap_err();
        assert!(e.contains("extra"), "{e}");
        assert!(
            parse_action("name = \"\"\nstrategy = \"s\"\nexecutor = \"e\"\n")
                .unwrap_err()
                .contains("name")
        );
    }
}
