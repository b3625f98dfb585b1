//! The executor: walks the tree over a JSON document or a row, with Go's rules for fields,
//! variables, pipelines and truth.

use serde_json::Value;

use super::funcs::{call, print_value, string_arg};
use super::gotype::{self, GoType};
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
    /// A typed Go value (docker/cli's first try at an inspect template): missing map keys print
    /// `<no value>`.
    Typed,
}

#[derive(Clone)]
pub(crate) enum Val<'a> {
    Json(Value),
    Row(&'a dyn Row),
    /// A Go value of a type other than string, bool, number or interface, with its JSON.
    Typed(&'static GoType, Value),
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
                    let elements: Vec<(Val<'a>, Val<'a>)> = match &value {
                        Val::Json(Value::Array(items)) => items
                            .iter()
                            .enumerate()
                            .map(|(idx, item)| {
                                (Val::Json(Value::from(idx)), Val::Json(item.clone()))
                            })
                            .collect(),
                        Val::Json(Value::Object(map)) => {
                            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                            entries.sort_by(|a, b| a.0.cmp(b.0));
                            entries
                                .into_iter()
                                .map(|(key, item)| {
                                    (
                                        Val::Json(Value::String(key.clone())),
                                        Val::Json(item.clone()),
                                    )
                                })
                                .collect()
                        }
                        Val::Typed(ty, json) => gotype::elements(ty, json)?,
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
                            [value_var] => self.vars.push((value_var.clone(), element.clone())),
                            [key_var, value_var, ..] => {
                                self.vars.push((key_var.clone(), key));
                                self.vars.push((value_var.clone(), element.clone()));
                            }
                        }
                        self.walk(body, &element)?;
                        self.vars.truncate(mark);
                    }
                    self.vars.truncate(n_vars);
                }
            }
        }
        Ok(())
    }

    /// Runs a pipeline and declares or assigns its variables.
    fn pipeline(&mut self, pipe: &Pipeline, dot: &Val<'a>) -> Exe<Val<'a>> {
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
    fn pipeline_value(&mut self, pipe: &Pipeline, dot: &Val<'a>) -> Exe<Val<'a>> {
        let mut value = None;
        for command in &pipe.commands {
            value = Some(self.command(command, dot, value)?);
        }
        value.ok_or_else(|| "empty pipeline".to_string())
    }

    fn command(&mut self, command: &Command, dot: &Val<'a>, last: Option<Val<'a>>) -> Exe<Val<'a>> {
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
            return call(self.mode, name, args);
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

    fn argument(&mut self, operand: &Operand, dot: &Val<'a>) -> Exe<Val<'a>> {
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
            Operand::Function(name) => call(self.mode, name, Vec::new()),
            Operand::Literal(value) => Ok(Val::Json(value.clone())),
            Operand::Nil => Ok(Val::Json(Value::Null)),
        }
    }

    fn variable(&self, name: &str) -> Exe<Val<'a>> {
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
    fn and_or(
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
        Val::Typed(ty, json) => {
            if !args.is_empty() {
                return Err(format!("{name} is not a method but has arguments"));
            }
            gotype::field(ty, json, name)
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

/// Go's truth of a value for `if`, `with`, `and`, `or`, `not`.
pub(crate) fn truth(value: &Val) -> bool {
    match value {
        Val::Missing => false,
        Val::Row(_) => true,
        Val::Typed(ty, json) => gotype::truth(ty, json),
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

pub(crate) fn type_name(value: &Val) -> String {
    match value {
        Val::Row(row) => row.type_name().to_string(),
        Val::Typed(ty, _) => ty.name(),
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
