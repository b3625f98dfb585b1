//! `--format` templates as the docker CLI takes them: the part of Go's `text/template` that people
//! pass to docker, and docker/cli's rules around it.
//!
//! The language: text, `{{pipeline}}` actions with `{{-`/`-}}` trim markers and `{{/* */}}`
//! comments; fields `.A.B` of the dot, `$` and `$name` variables (`{{$x := ...}}`, `{{range $k, $v
//! := ...}}`), string, number and bool literals, parenthesized pipelines, `|` pipes;
//! `if`/`else if`/`else`, `range` and `with` blocks; docker's functions `json`, `split`, `join`,
//! `title`, `lower`, `upper`, `pad`, `truncate` and Go's `index`, `len`, `print`, `printf` (verbs
//! `%s %v %d %q`), `println`, `not`, `and`, `or`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`. Anything else
//! (`define`, `template`, `block`, `break`, `continue`, `call`, `html`, `js`, `slice`, `urlquery`,
//! functions no docker version has) is refused when the template is parsed, naming the template.
//!
//! docker/cli around it (`cli/command/formatter/formatter.go`, `templates/templates.go`): a format
//! that starts with `table` prints a header row (the template run on the command's map of column
//! names, with `json`, `split`, `join`, `title`, `lower`, `upper` and `truncate` passing their
//! first argument through) and aligns the columns with Go's tabwriter; spaces around the format are
//! trimmed and the two-character sequences `\t` and `\n` become a tab and a newline. Every row is
//! followed by a newline. `ovl inspect -f` takes the template as written, as `docker inspect` does.
//!
//! Values: a row of `images`, `ps` or `history` is a [`Row`] (docker/cli's formatter context: string
//! fields, `{{json .}}` is the object of all of them with sorted keys and Go's HTML escapes); an
//! inspect document is JSON. JSON values print as Go prints the decoded value (`[a b]`,
//! `map[k:v]`, `<no value>` for null or a missing key); `{{json ...}}` encodes as Go's encoder with
//! HTML escaping off, object keys in document order.
//!
//! Inspect templates run as docker/cli's `TemplateInspector` runs them
//! ([`Template::render_typed`]): first on the document decoded into its Go type, described by a
//! [`GoType`] ([`IMAGE_INSPECT`], [`CONTAINER_JSON`]), with Go's rules for typed values (fields
//! by Go name, zero values for absent keys, `[]`, `map[]` and `<nil>` for nil slices, maps and
//! pointers, struct printing, `encoding/json` of the struct); when that fails, on the JSON.

mod exec;
mod funcs;
mod gotype;
mod lexer;
mod moby;
mod parser;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use exec::{Exec, Mode, Val};
pub use gotype::{GoField, GoStruct, GoType};
use lexer::lex;
pub use moby::{CONTAINER_CONFIG, CONTAINER_JSON, GRAPH_DRIVER_DATA, IMAGE_INSPECT};
use parser::{Node, Parser};

/// A template that does not parse, or fails while it runs; the message names the template as
/// docker's does.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text is not a template ovl evaluates.
    #[error("invalid template {template:?}: {message}")]
    Invalid {
        /// The template as given.
        template: String,
        /// What is wrong with it.
        message: String,
    },
    /// Executing the template failed.
    #[error("executing template {template:?}: {message}")]
    Execute {
        /// The template as given.
        template: String,
        /// Go's message for the failure.
        message: String,
    },
}

/// The result of parsing or running a template.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One line of `ovl images`, `ovl ps` or `ovl history` as a template sees it: the fields (Go
/// methods) of docker/cli's formatter context for that command, all strings.
pub trait Row {
    /// The Go type docker/cli formats, named in error messages (`*image.historyContext`).
    fn type_name(&self) -> &'static str;
    /// The names of the fields, as `{{json .}}` lists them.
    fn field_names(&self) -> &'static [&'static str];
    /// The value of a field; `None` when the row has no such field.
    fn field(&self, name: &str) -> Option<String>;
    /// A field that takes string arguments (`{{.Label "key"}}`); `None` when there is none.
    fn method(&self, _name: &str, _args: &[String]) -> Option<String> {
        None
    }
}

/// A parsed template.
#[derive(Debug)]
pub struct Template {
    /// The text as given, named in error messages.
    source: String,
    table: bool,
    nodes: Vec<Node>,
}

impl Template {
    /// A `--format` value as docker/cli's formatter takes it: an optional `table` prefix (header
    /// row and aligned columns), surrounding spaces trimmed, `\t` and `\n` written as two characters
    /// turned into a tab and a newline.
    pub fn cli(format: &str) -> Result<Template> {
        let table = format.starts_with("table");
        let body = if table { &format[5..] } else { format };
        let body = replace_escapes(body.trim_matches(' '));
        Template::parse(format, &body, table)
    }

    /// A template used as written (`ovl inspect -f`, as `docker inspect -f`).
    pub fn go(text: &str) -> Result<Template> {
        Template::parse(text, text, false)
    }

    fn parse(source: &str, body: &str, table: bool) -> Result<Template> {
        let invalid = |message: String| Error::Invalid {
            template: source.to_string(),
            message,
        };
        let items = lex(body).map_err(invalid)?;
        let nodes = Parser { items, pos: 0 }.parse_template().map_err(invalid)?;
        Ok(Template {
            source: source.to_string(),
            table,
            nodes,
        })
    }

    /// Formats rows as the docker CLI does: each row's text and a newline; for a `table` format,
    /// the header row first (the template run on `headers`, field name → column name, with
    /// docker's header functions; what it printed before an error is kept) and the whole aligned
    /// by Go's tabwriter. An error in any row fails the whole output.
    pub fn render_rows<R: Row>(&self, rows: &[R], headers: &[(&str, &str)]) -> Result<String> {
        let mut body = String::new();
        for row in rows {
            let (text, error) = self.execute(Val::Row(row), Mode::Row);
            if let Some(error) = error {
                return Err(Error::Execute {
                    template: self.source.clone(),
                    message: error,
                });
            }
            body.push_str(&text);
            body.push('\n');
        }
        if !self.table {
            return Ok(body);
        }
        let header_map: Map<String, Value> = headers
            .iter()
            .map(|(field, name)| (field.to_string(), Value::String(name.to_string())))
            .collect();
        let (header, _ignored) = self.execute(Val::Json(Value::Object(header_map)), Mode::Header);
        Ok(crate::tabwriter::tabwrite(
            &format!("{header}\n{body}"),
            10,
            3,
        ))
    }

    /// The template run on a JSON document (an inspect result); a key the document lacks is an
    /// error, as in docker's inspect (`missingkey=error`).
    pub fn render_value(&self, value: &Value) -> Result<String> {
        let (text, error) = self.execute(Val::Json(value.clone()), Mode::Document);
        match error {
            Some(message) => Err(Error::Execute {
                template: self.source.clone(),
                message,
            }),
            None => Ok(text),
        }
    }

    /// The template run as docker/cli's `TemplateInspector` runs it on an inspect result: first on
    /// the document decoded into the Go type `schema` ([`IMAGE_INSPECT`] for an image, [`CONTAINER_JSON`] for a container), where
    /// fields are Go's (`.ID`), absent ones are zero values, nil slices and maps print `[]` and
    /// `map[]`, a missing map key prints `<no value>`; and only when that fails, on the JSON
    /// itself as [`Template::render_value`] does, whose result or error is the answer.
    pub fn render_typed(&self, schema: &'static GoType, value: &Value) -> Result<String> {
        let (text, error) = self.execute(gotype::decode(schema, value.clone()), Mode::Typed);
        match error {
            None => Ok(text),
            Some(_) => self.render_value(value),
        }
    }

    fn execute<'a>(&self, data: Val<'a>, mode: Mode) -> (String, Option<String>) {
        let mut exec = Exec {
            root: data.clone(),
            vars: Vec::new(),
            mode,
            out: String::new(),
        };
        let result = exec.walk(&self.nodes, &data);
        (exec.out, result.err())
    }
}

/// The two-character escapes docker/cli replaces in a format (`strings.NewReplacer`).
fn replace_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some('t')) => {
                chars.next();
                out.push('\t');
            }
            ('\\', Some('n')) => {
                chars.next();
                out.push('\n');
            }
            _ => out.push(c),
        }
    }
    out
}
