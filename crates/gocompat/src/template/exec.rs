//! The executor: walks the tree over a JSON document or a row, with Go's rules for fields,
//! variables, truth and comparison.

use serde_json::Value;

use super::funcs::{fmt_value, go_json, go_sprint, go_sprintf, go_title, print_value, row_json};
use super::parser::{Command, Node, Operand, Pipeline};
use super::Row;

/// What a template runs on, and with which rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A row of a list command.
    Row,
    /// The header map of a table: docker's header functions, missing keys print `<no value>`.
    Header,
    /// An inspect document: missing keys are errors.
    Document,
}

#[derive(Clone)]
pub(crate) enum Val<'a> {
    Json(Value),
    Row(&'a dyn Row),
    /// Go's invalid value (a missing map key): prints `<no value>`.
    Missing,
}

pub(crate) struct Exec<'a> {
    pub(crate) root: Val<'a>,
    pub(crate) vars: Vec<(String, Val<'a>)>,
    pub(crate) mode: Mode,
    pub(crate) out: String,
}

pub(crate) type Exe<T> = std::result::Result<T, String>;

impl<'a> Exec<'a> {
    pub(crate) fn walk(&mut self, nodes: &[Node], dot: &Val<'a>) -> Exe<()> {
        for node in nodes {
            match node {
                Node::Text(text) => self.out.push_str(text),
                Node::Action(pipe) => {
                    let value = self.pipeline(pipe, dot)?;
                    if pipe.vars.is_empty() {
                        let text = print_value(&value)?;
                        self.out.push_str(&text);
                    }
                }
                Node::If {
                    branches,
                    otherwise,
                } => {
                    let n_vars = self.vars.len();
                    let mut taken = false;
                    for (pipe, body) in branches {
                        if truth(&self.pipeline(pipe, dot)?) {
                            self.walk(body, dot)?;
                            taken = true;
                            break;
                        }
                    }
                    if !taken {
                        self.walk(otherwise, dot)?;
                    }
                    self.vars.truncate(n_vars);
                }
                Node::With {
                    pipe,
                    body,
                    otherwise,
                } => {
                    let n_vars = self.vars.len();
                    let value = self.pipeline(pipe, dot)?;
                    if truth(&value) {
                        self.walk(body, &value)?;
                    } else {
                        self.walk(otherwise, dot)?;
                    }
                    self.vars.truncate(n_vars);
                }
                Node::Range {
                    pipe,
                    body,
                    otherwise,
                } => {
                    let n_vars = self.vars.len();
                    let value = self.pipeline_value(pipe, dot)?;
                    let elements: Vec<(Value, Value)> = match &value {
                        Val::Json(Value::Array(items)) => items
                            .iter()
                            .enumerate()
                            .map(|(idx, item)| (Value::from(idx), item.clone()))
                            .collect(),
                        Val::Json(Value::Object(map)) => {
                            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                            entries.sort_by(|a, b| a.0.cmp(b.0));
                            entries
                                .into_iter()
                                .map(|(key, item)| (Value::String(key.clone()), item.clone()))
                                .collect()
                        }
                        Val::Json(Value::Null) | Val::Missing => Vec::new(),
                        other => {
                            return Err(format!("range can't iterate over {}", type_name(other)))
                        }
                    };
                    if elements.is_empty() {
                        self.walk(otherwise, dot)?;
                    }
                    for (key, element) in elements {
                        let mark = self.vars.len();
                        match pipe.vars.as_slice() {
                            [] => {}
                            [value_var] => self
                                .vars
                                .push((value_var.clone(), Val::Json(element.clone()))),
                            [key_var, value_var, ..] => {
                                self.vars.push((key_var.clone(), Val::Json(key)));
                                self.vars
                                    .push((value_var.clone(), Val::Json(element.clone())));
                            }
                        }
                        self.walk(body, &Val::Json(element))?;
                        self.vars.truncate(mark);
                    }
                    self.vars.truncate(n_vars);
                }
            }
        }
        Ok(())
    }

    /// Runs a pipeline and declares or assigns its variables.
    pub(crate) fn pipeline(&mut self, pipe: &Pipeline, dot: &Val<'a>) -> Exe<Val<'a>> {
        let value = self.pipeline_value(pipe, dot)?;
        if let Some(name) = pipe.vars.first() {
            if pipe.assign {
                let slot = self
                    .vars
                    .iter_mut()
                    .rev()
                    .find(|(var, _)| var == name)
                    .ok_or_else(|| format!("undefined variable ${name}"))?;
                slot.1 = value.clone();
            } else {
                self.vars.push((name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    /// Runs a pipeline's commands, each one's result the last argument of the next.
    pub(crate) fn pipeline_value(&mut self, pipe: &Pipeline, dot: &Val<'a>) -> Exe<Val<'a>> {
        let mut value = None;
        for command in &pipe.commands {
            value = Some(self.command(command, dot, value)?);
        }
        value.ok_or_else(|| "empty pipeline".to_string())
    }

    pub(crate) fn command(
        &mut self,
        command: &Command,
        dot: &Val<'a>,
        last: Option<Val<'a>>,
    ) -> Exe<Val<'a>> {
        let (first, rest) = command.operands.split_first().ok_or("empty command")?;
        if let Operand::Function(name) = first {
            if name == "and" || name == "or" {
                return self.and_or(name, rest, dot, last);
            }
            let mut args = rest
                .iter()
                .map(|operand| self.argument(operand, dot))
                .collect::<Exe<Vec<_>>>()?;
            args.extend(last);
            return self.call(name, args);
        }
        let mut args = rest
            .iter()
            .map(|operand| self.argument(operand, dot))
            .collect::<Exe<Vec<_>>>()?;
        args.extend(last);
        match first {
            Operand::Field(chain) => field_chain(dot.clone(), chain, &args, self.mode),
            Operand::Var(name, chain) => {
                let value = self.variable(name)?;
                field_chain(value, chain, &args, self.mode)
            }
            Operand::Sub(pipe, chain) => {
                let value = self.pipeline_value(pipe, dot)?;
                field_chain(value, chain, &args, self.mode)
            }
            Operand::Literal(value) => {
                if !args.is_empty() {
                    return Err(format!("can't give argument to non-function {value}"));
                }
                Ok(Val::Json(value.clone()))
            }
            Operand::Nil => Err("nil is not a command".to_string()),
            Operand::Function(_) => Err("unreachable function operand".to_string()),
        }
    }

    pub(crate) fn argument(&mut self, operand: &Operand, dot: &Val<'a>) -> Exe<Val<'a>> {
        match operand {
            Operand::Field(chain) => field_chain(dot.clone(), chain, &[], self.mode),
            Operand::Var(name, chain) => {
                let value = self.variable(name)?;
                field_chain(value, chain, &[], self.mode)
            }
            Operand::Sub(pipe, chain) => {
                let value = self.pipeline_value(pipe, dot)?;
                field_chain(value, chain, &[], self.mode)
            }
            Operand::Function(name) if name == "and" || name == "or" => {
                self.and_or(name, &[], dot, None)
            }
            Operand::Function(name) => self.call(name, Vec::new()),
            Operand::Literal(value) => Ok(Val::Json(value.clone())),
            Operand::Nil => Ok(Val::Json(Value::Null)),
        }
    }

    pub(crate) fn variable(&self, name: &str) -> Exe<Val<'a>> {
        if name.is_empty() {
            return Ok(self.root.clone());
        }
        self.vars
            .iter()
            .rev()
            .find(|(var, _)| var == name)
            .map(|(_, value)| value.clone())
            .ok_or_else(|| format!("undefined variable ${name}"))
    }

    /// Go's `and` and `or`: the first argument that decides, evaluated no further than needed.
    pub(crate) fn and_or(
        &mut self,
        name: &str,
        operands: &[Operand],
        dot: &Val<'a>,
        last: Option<Val<'a>>,
    ) -> Exe<Val<'a>> {
        if operands.len() + usize::from(last.is_some()) == 0 {
            return Err(format!(
                "wrong number of args for {name}: want at least 1 got 0"
            ));
        }
        let mut value = Val::Missing;
        for operand in operands {
            value = self.argument(operand, dot)?;
            if truth(&value) == (name == "or") {
                return Ok(value);
            }
        }
        if let Some(last) = last {
            value = last;
        }
        Ok(value)
    }

    pub(crate) fn call(&self, name: &str, args: Vec<Val<'a>>) -> Exe<Val<'a>> {
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
        if self.mode == Mode::Header
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
}

/// Evaluates `.A.B...` on `receiver`; `args` go to the last field (a method such as `.Label`).
pub(crate) fn field_chain<'a>(
    receiver: Val<'a>,
    chain: &[String],
    args: &[Val<'a>],
    mode: Mode,
) -> Exe<Val<'a>> {
    if chain.is_empty() {
        if !args.is_empty() {
            return Err("can't give argument to non-function .".to_string());
        }
        return Ok(receiver);
    }
    let mut value = receiver;
    for (idx, name) in chain.iter().enumerate() {
        let field_args = if idx + 1 == chain.len() { args } else { &[] };
        value = field(&value, name, field_args, mode)?;
    }
    Ok(value)
}

pub(crate) fn field<'a>(
    receiver: &Val<'a>,
    name: &str,
    args: &[Val<'a>],
    mode: Mode,
) -> Exe<Val<'a>> {
    match receiver {
        Val::Row(row) => {
            if !args.is_empty() {
                let strings = args
                    .iter()
                    .map(|arg| string_arg(name, arg))
                    .collect::<Exe<Vec<_>>>()?;
                if let Some(value) = row.method(name, &strings) {
                    return Ok(Val::Json(Value::String(value)));
                }
                if row.field(name).is_some() {
                    return Err(format!(
                        "wrong number of args for {name}: want 0 got {}",
                        args.len()
                    ));
                }
            } else if let Some(value) = row.field(name) {
                return Ok(Val::Json(Value::String(value)));
            } else if row.method(name, &[String::new()]).is_some() {
                return Err(format!("wrong number of args for {name}: want 1 got 0"));
            }
            Err(format!(
                "can't evaluate field {name} in type {}",
                row.type_name()
            ))
        }
        Val::Json(Value::Object(map)) => {
            if !args.is_empty() {
                return Err(format!("{name} is not a method but has arguments"));
            }
            match map.get(name) {
                Some(value) => Ok(Val::Json(value.clone())),
                None if mode == Mode::Document => Err(format!("map has no entry for key {name:?}")),
                None => Ok(Val::Missing),
            }
        }
        Val::Missing if mode == Mode::Document => {
            Err(format!("nil data; no entry for key {name:?}"))
        }
        Val::Missing => Ok(Val::Missing),
        Val::Json(Value::Null) => Err(format!("nil pointer evaluating interface {{}}.{name}")),
        other => Err(format!(
            "can't evaluate field {name} in type {}",
            type_name(other)
        )),
    }
}

/// Go's `index` for one key: an array element by number, a map entry by string (a missing entry
/// of a map of strings, or of a null map, is the empty string, as for docker's typed labels).
pub(crate) fn index<'a>(item: &Val<'a>, key: &Val<'a>) -> Exe<Val<'a>> {
    match (item, key) {
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

/// Go's truth of a value for `if`, `with`, `and`, `or`, `not`.
pub(crate) fn truth(value: &Val) -> bool {
    match value {
        Val::Missing => false,
        Val::Row(_) => true,
        Val::Json(json) => match json {
            Value::Null => false,
            Value::Bool(flag) => *flag,
            Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
            Value::String(text) => !text.is_empty(),
            Value::Array(items) => !items.is_empty(),
            Value::Object(map) => !map.is_empty(),
        },
    }
}

pub(crate) fn is_ordered(value: &Val) -> bool {
    matches!(value, Val::Json(Value::Number(_) | Value::String(_)))
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

pub(crate) fn type_name(value: &Val) -> String {
    match value {
        Val::Row(row) => row.type_name().to_string(),
        Val::Missing => "<nil>".to_string(),
        Val::Json(json) => match json {
            Value::Null => "<nil>",
            Value::Bool(_) => "bool",
            Value::Number(number) if number.is_f64() => "float64",
            Value::Number(_) => "int",
            Value::String(_) => "string",
            Value::Array(_) => "[]interface {}",
            Value::Object(_) => "map[string]interface {}",
        }
        .to_string(),
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
