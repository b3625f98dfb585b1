//! Printing values as Go's `fmt` does and the functions Go and docker/cli add to templates.

use serde_json::Value;

use super::exec::{type_name, Exe, Val};
use super::Row;

/// What an action prints: Go's `fmt.Print` of the value; null and missing values print
/// `<no value>` as in Go's template package.
pub(crate) fn print_value(value: &Val) -> Exe<String> {
    match value {
        Val::Missing | Val::Json(Value::Null) => Ok("<no value>".to_string()),
        other => fmt_value(other),
    }
}

/// Go's `%v` of a value decoded from JSON: `[a b]` for arrays, `map[k:v]` with sorted keys for
/// objects, `<nil>` for null.
pub(crate) fn fmt_value(value: &Val) -> Exe<String> {
    match value {
        Val::Row(row) => Err(format!(
            "a {} cannot be printed as text; use {{{{json .}}}} or its fields",
            row.type_name()
        )),
        Val::Missing => Ok("<no value>".to_string()),
        Val::Json(json) => Ok(fmt_json(json)),
    }
}

pub(crate) fn fmt_json(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => text.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(fmt_json).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let parts: Vec<String> = entries
                .into_iter()
                .map(|(key, item)| format!("{key}:{}", fmt_json(item)))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// Go's `fmt.Sprint`: a space between two operands when neither is a string.
pub(crate) fn go_sprint(args: &[Val]) -> Exe<String> {
    let mut out = String::new();
    let is_string = |value: &Val| matches!(value, Val::Json(Value::String(_)));
    for (idx, arg) in args.iter().enumerate() {
        if idx > 0 && !is_string(arg) && !is_string(&args[idx - 1]) {
            out.push(' ');
        }
        out.push_str(&fmt_value(arg)?);
    }
    Ok(out)
}

/// Go's `fmt.Sprintf` for the verbs `%s`, `%v`, `%d`, `%q` and `%%`, with `-` and a width.
pub(crate) fn go_sprintf(format: &str, args: &[Val]) -> Exe<String> {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let left = chars.next_if_eq(&'-').is_some();
        let mut width = 0usize;
        while let Some(digit) = chars.next_if(char::is_ascii_digit) {
            width = width * 10 + digit.to_digit(10).map_or(0, |d| d as usize);
        }
        let verb = chars.next().ok_or("printf: format ends in %")?;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let text = match verb {
            's' | 'v' => fmt_value(arg)?,
            'd' => match arg {
                Val::Json(Value::Number(number)) if number.is_i64() || number.is_u64() => {
                    number.to_string()
                }
                other => format!("%!d({}={})", type_name(other), fmt_value(other)?),
            },
            'q' => match arg {
                Val::Json(Value::String(text)) => crate::quote::go_quote(text),
                other => fmt_value(other)?,
            },
            other => return Err(format!("printf verb %{other} is not supported")),
        };
        let pad = width.saturating_sub(text.chars().count());
        if left {
            out.push_str(&text);
            out.extend(std::iter::repeat_n(' ', pad));
        } else {
            out.extend(std::iter::repeat_n(' ', pad));
            out.push_str(&text);
        }
    }
    let extra: Vec<String> = args
        .map(|arg| Ok(format!("{}={}", type_name(arg), fmt_value(arg)?)))
        .collect::<Exe<_>>()?;
    if !extra.is_empty() {
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    Ok(out)
}

/// Go's deprecated `strings.Title`: the first letter of every word in title case, a word starting
/// after anything but an ASCII letter, digit or underscore or a Unicode letter or digit.
pub(crate) fn go_title(text: &str) -> String {
    let is_separator = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            !c.is_alphanumeric() && c.is_whitespace()
        }
    };
    let mut previous = ' ';
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_separator(previous) {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        previous = c;
    }
    out
}

/// The object `{{json .}}` prints for a row: every field, keys sorted (docker/cli marshals a map).
pub(crate) fn row_json(row: &dyn Row) -> Value {
    let mut names: Vec<&str> = row.field_names().to_vec();
    names.sort_unstable();
    Value::Object(
        names
            .into_iter()
            .map(|name| {
                let value = row.field(name).unwrap_or_default();
                (name.to_string(), Value::String(value))
            })
            .collect(),
    )
}

/// Go's `encoding/json` encoding of a value: compact, objects in the order given, Go's string
/// escapes, `<`, `>` and `&` escaped only with `escape_html`.
pub(crate) fn go_json(value: &Value, escape_html: bool) -> String {
    // Encoding a JSON value into memory cannot fail, and the encoder writes UTF-8.
    let bytes =
        crate::json::to_vec_with(value, crate::json::Options { escape_html }).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}
