//! The functions of a template (Go's builtins, docker/cli's additions, its header functions for
//! `table` formats), with Go's comparison rules, and printing values as Go's `fmt` does.

use serde_json::Value;

use super::exec::{truth, type_name, Exe, Mode, Val};
use super::gotype;
use super::Row;

/// What an action prints: Go's `fmt.Print` of the value; null and missing values print
/// `<no value>` as in Go's template package.
pub(crate) fn print_value(value: &Val) -> Exe<String> {
    match value {
        Val::Missing | Val::Json(Value::Null) => Ok("<no value>".to_string()),
        Val::Typed(ty, json) => match gotype::undescribed(ty, json) {
            Some(error) => Err(error),
            None => Ok(gotype::print(ty, json)),
        },
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
        Val::Typed(ty, json) => match gotype::undescribed(ty, json) {
            Some(error) => Err(error),
            None => Ok(gotype::format(ty, json, 0)),
        },
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
                Val::Typed(ty, json) if gotype::number(ty, json).is_some() => {
                    gotype::number(ty, json).unwrap_or_default().to_string()
                }
                other => format!("%!d({}={})", type_name(other), fmt_value(other)?),
            },
            'q' => match arg {
                Val::Json(Value::String(text)) => crate::quote::go_quote(text),
                Val::Typed(ty, json) if gotype::strings(ty, json).is_some() => {
                    let items = gotype::strings(ty, json).unwrap_or_default();
                    let quoted: Vec<String> = items
                        .iter()
                        .map(|item| crate::quote::go_quote(item))
                        .collect();
                    format!("[{}]", quoted.join(" "))
                }
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

/// Calls the function `name` of a template (Go's builtins and docker/cli's additions) in `mode`.
pub(crate) fn call<'a>(mode: Mode, name: &str, args: Vec<Val<'a>>) -> Exe<Val<'a>> {
    let want = |n: usize| -> Exe<()> {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!(
                "wrong number of args for {name}: want {n} got {}",
                args.len()
            ))
        }
    };
    // docker/cli's HeaderFunctions: the header row shows column names unchanged.
    if mode == Mode::Header
        && matches!(
            name,
            "json" | "split" | "join" | "title" | "lower" | "upper" | "truncate"
        )
    {
        want(if matches!(name, "json" | "title" | "lower" | "upper") {
            1
        } else {
            2
        })?;
        return Ok(Val::Json(Value::String(string_arg(name, &args[0])?)));
    }
    let text = |value: String| Ok(Val::Json(Value::String(value)));
    match name {
        "json" => {
            want(1)?;
            text(match &args[0] {
                Val::Json(value) => go_json(value, false),
                Val::Row(row) => go_json(&row_json(*row), true),
                Val::Typed(ty, json) => match gotype::undescribed(ty, json) {
                    Some(error) => return Err(error),
                    None => go_json(&gotype::encode(ty, json), false),
                },
                Val::Missing => "null".to_string(),
            })
        }
        "split" => {
            want(2)?;
            let (whole, separator) = (string_arg(name, &args[0])?, string_arg(name, &args[1])?);
            let parts: Vec<Value> = if separator.is_empty() {
                whole
                    .chars()
                    .map(|c| Value::String(c.to_string()))
                    .collect()
            } else {
                whole
                    .split(separator.as_str())
                    .map(|part| Value::String(part.to_string()))
                    .collect()
            };
            Ok(Val::Json(Value::Array(parts)))
        }
        "join" => {
            want(2)?;
            let items = match &args[0] {
                Val::Json(Value::Array(items)) => items
                    .iter()
                    .map(|item| item.as_str().map(str::to_string))
                    .collect::<Option<Vec<String>>>(),
                Val::Typed(ty, json) => gotype::strings(ty, json),
                _ => None,
            }
            .ok_or_else(|| {
                format!(
                    "wrong type for value; expected []string; got {}",
                    type_name(&args[0])
                )
            })?;
            text(items.join(&string_arg(name, &args[1])?))
        }
        "title" => {
            want(1)?;
            text(go_title(&string_arg(name, &args[0])?))
        }
        "lower" => {
            want(1)?;
            text(string_arg(name, &args[0])?.to_lowercase())
        }
        "upper" => {
            want(1)?;
            text(string_arg(name, &args[0])?.to_uppercase())
        }
        "pad" => {
            want(3)?;
            let source = string_arg(name, &args[0])?;
            let (prefix, suffix) = (int_arg(name, &args[1])?, int_arg(name, &args[2])?);
            if source.is_empty() {
                return text(source);
            }
            let spaces = |n: i64| " ".repeat(usize::try_from(n).unwrap_or(0));
            text(format!("{}{source}{}", spaces(prefix), spaces(suffix)))
        }
        "truncate" => {
            want(2)?;
            let source = string_arg(name, &args[0])?;
            let length = usize::try_from(int_arg(name, &args[1])?)
                .map_err(|_| "truncate: negative length".to_string())?;
            if source.len() < length {
                return text(source);
            }
            let mut end = length;
            while !source.is_char_boundary(end) {
                end -= 1;
            }
            text(source[..end].to_string())
        }
        "index" => {
            let (item, keys) = args
                .split_first()
                .ok_or("wrong number of args for index: want at least 1 got 0")?;
            let mut item = item.clone();
            for key in keys {
                item = index(&item, key)?;
            }
            Ok(item)
        }
        "len" => {
            want(1)?;
            let n = match &args[0] {
                Val::Json(Value::String(text)) => text.len(),
                Val::Json(Value::Array(items)) => items.len(),
                Val::Json(Value::Object(map)) => map.len(),
                Val::Typed(ty, json) => gotype::length(ty, json)?,
                other => return Err(format!("len of type {}", type_name(other))),
            };
            Ok(Val::Json(Value::from(n)))
        }
        "print" => text(go_sprint(&args)?),
        "println" => {
            let parts = args.iter().map(fmt_value).collect::<Exe<Vec<_>>>()?;
            text(format!("{}\n", parts.join(" ")))
        }
        "printf" => {
            let (format, rest) = args
                .split_first()
                .ok_or("wrong number of args for printf: want at least 1 got 0")?;
            text(go_sprintf(&string_arg(name, format)?, rest)?)
        }
        "not" => {
            want(1)?;
            Ok(Val::Json(Value::Bool(!truth(&args[0]))))
        }
        "eq" => {
            let (first, others) = args
                .split_first()
                .ok_or("missing argument for comparison")?;
            if others.is_empty() {
                return Err("missing argument for comparison".to_string());
            }
            for other in others {
                if compare(first, other)? == std::cmp::Ordering::Equal {
                    return Ok(Val::Json(Value::Bool(true)));
                }
            }
            Ok(Val::Json(Value::Bool(false)))
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want(2)?;
            let ordering = compare(&args[0], &args[1])?;
            if name != "ne" && !is_ordered(&args[0]) {
                return Err(format!(
                    "invalid type for comparison: {}",
                    type_name(&args[0])
                ));
            }
            let result = match name {
                "ne" => ordering.is_ne(),
                "lt" => ordering.is_lt(),
                "le" => ordering.is_le(),
                "gt" => ordering.is_gt(),
                _ => ordering.is_ge(),
            };
            Ok(Val::Json(Value::Bool(result)))
        }
        other => Err(format!("function {other:?} not defined")),
    }
}

/// Go's `index` for one key: an array element by number, a map entry by string (a missing entry
/// of a map of strings, or of a null map, is the empty string, as for docker's typed labels).
pub(crate) fn index<'a>(item: &Val<'a>, key: &Val<'a>) -> Exe<Val<'a>> {
    match (item, key) {
        (Val::Typed(ty, json), key) => gotype::index(ty, json, key),
        (Val::Json(Value::Array(items)), Val::Json(Value::Number(number))) => {
            let idx = number
                .as_i64()
                .ok_or_else(|| format!("cannot index slice/array with type {}", type_name(key)))?;
            usize::try_from(idx)
                .ok()
                .and_then(|idx| items.get(idx))
                .map(|value| Val::Json(value.clone()))
                .ok_or_else(|| format!("error calling index: index out of range: {idx}"))
        }
        (Val::Json(Value::String(text)), Val::Json(Value::Number(number))) => {
            let idx = number.as_i64().unwrap_or(-1);
            usize::try_from(idx)
                .ok()
                .and_then(|idx| text.as_bytes().get(idx))
                .map(|byte| Val::Json(Value::from(*byte)))
                .ok_or_else(|| format!("error calling index: index out of range: {idx}"))
        }
        (Val::Json(Value::Object(map)), Val::Json(Value::String(name))) => {
            Ok(match map.get(name) {
                Some(value) => Val::Json(value.clone()),
                None if map.values().all(Value::is_string) => {
                    Val::Json(Value::String(String::new()))
                }
                None => Val::Missing,
            })
        }
        (Val::Json(Value::Null), Val::Json(Value::String(_))) => {
            Ok(Val::Json(Value::String(String::new())))
        }
        _ => Err(format!(
            "error calling index: cannot index {} with {}",
            type_name(item),
            type_name(key)
        )),
    }
}

pub(crate) fn is_ordered(value: &Val) -> bool {
    match value {
        Val::Json(json) => matches!(json, Value::Number(_) | Value::String(_)),
        Val::Typed(ty, json) => gotype::number(ty, json).is_some(),
        _ => false,
    }
}

/// Go's basic comparison: numbers with numbers, strings with strings, bools with bools.
pub(crate) fn compare(left: &Val, right: &Val) -> Exe<std::cmp::Ordering> {
    use std::cmp::Ordering;
    let null = Value::Null;
    let json = |value: &Val| -> Exe<Value> {
        match value {
            Val::Json(json) => Ok(json.clone()),
            Val::Missing => Ok(null.clone()),
            Val::Row(row) => Err(format!("invalid type for comparison: {}", row.type_name())),
            Val::Typed(ty, json) => gotype::number(ty, json)
                .ok_or_else(|| format!("invalid type for comparison: {}", ty.name())),
        }
    };
    match (json(left)?, json(right)?) {
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => Ok(a.cmp(&b)),
            _ => a
                .as_f64()
                .zip(b.as_f64())
                .and_then(|(a, b)| a.partial_cmp(&b))
                .ok_or_else(|| "incomparable numbers".to_string()),
        },
        (Value::String(a), Value::String(b)) => Ok(a.cmp(&b)),
        (Value::Bool(a), Value::Bool(b)) => Ok(a.cmp(&b)),
        (Value::Null, Value::Null) => Ok(Ordering::Equal),
        (a, b) => Err(format!(
            "incompatible types for comparison: {} and {}",
            type_name(&Val::Json(a)),
            type_name(&Val::Json(b))
        )),
    }
}

pub(crate) fn string_arg(function: &str, value: &Val) -> Exe<String> {
    match value {
        Val::Json(Value::String(text)) => Ok(text.clone()),
        other => Err(format!(
            "wrong type for value of {function}; expected string; got {}",
            type_name(other)
        )),
    }
}

pub(crate) fn int_arg(function: &str, value: &Val) -> Exe<i64> {
    match value {
        Val::Json(Value::Number(number)) if number.as_i64().is_some() => {
            Ok(number.as_i64().unwrap_or_default())
        }
        other => Err(format!(
            "wrong type for value of {function}; expected int; got {}",
            type_name(other)
        )),
    }
}
