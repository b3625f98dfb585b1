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

use anyhow::{anyhow, Result};
use serde_json::{Map, Number, Value};

use crate::format;

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
        let items = lex(body).map_err(|err| anyhow!("invalid template {source:?}: {err}"))?;
        let nodes = Parser { items, pos: 0 }
            .parse_template()
            .map_err(|err| anyhow!("invalid template {source:?}: {err}"))?;
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
                return Err(anyhow!("executing template {:?}: {error}", self.source));
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
        Ok(format::tabwrite(&format!("{header}\n{body}"), 10, 3))
    }

    /// The template run on a JSON document (an inspect result); a key the document lacks is an
    /// error, as in docker's inspect (`missingkey=error`).
    pub fn render_value(&self, value: &Value) -> Result<String> {
        let (text, error) = self.execute(Val::Json(value.clone()), Mode::Document);
        match error {
            Some(error) => Err(anyhow!("executing template {:?}: {error}", self.source)),
            None => Ok(text),
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

// ------------------------------------------------------------------------------------------------
// Lexing

/// The space characters of Go's template lexer (trim markers, spaces between tokens).
const SPACES: &[char] = &[' ', '\t', '\r', '\n'];

/// Functions of docker's templates and Go's builtins that ovl evaluates.
const FUNCTIONS: &[&str] = &[
    "json", "split", "join", "title", "lower", "upper", "pad", "truncate", "index", "len", "print",
    "printf", "println", "not", "and", "or", "eq", "ne", "lt", "le", "gt", "ge",
];

/// Functions a docker template has that ovl does not evaluate.
const UNSUPPORTED_FUNCTIONS: &[&str] = &["call", "html", "js", "slice", "urlquery"];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// `.A.B`; empty for the dot itself.
    Field(Vec<String>),
    /// `$name.A.B`; the name is empty for `$`.
    Var(String, Vec<String>),
    Ident(String),
    Literal(Value),
    Nil,
    Pipe,
    LeftParen,
    RightParen,
    Comma,
    Declare,
    Assign,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// Whether space came before the token (a field right after `)` continues a chain).
    spaced: bool,
}

#[derive(Debug)]
enum Item {
    Text(String),
    Action(Vec<Token>),
}

fn lex(src: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut pos = 0;
    let mut trim_next = false;
    loop {
        let start = src[pos..].find("{{").map(|idx| pos + idx);
        let mut text = &src[pos..start.unwrap_or(src.len())];
        if trim_next {
            text = text.trim_start_matches(SPACES);
        }
        let Some(start) = start else {
            if !text.is_empty() {
                items.push(Item::Text(text.to_string()));
            }
            return Ok(items);
        };
        let mut inside = start + 2;
        if has_left_trim(&src[inside..]) {
            text = text.trim_end_matches(SPACES);
            inside += 2;
        }
        if !text.is_empty() {
            items.push(Item::Text(text.to_string()));
        }
        if src[inside..].starts_with("/*") {
            let end = src[inside + 2..]
                .find("*/")
                .map(|idx| inside + 2 + idx + 2)
                .ok_or("unclosed comment")?;
            (pos, trim_next) =
                right_delim(src, end).ok_or("comment ends before closing delimiter")?;
            continue;
        }
        let (tokens, end, trim) = lex_action(src, inside)?;
        items.push(Item::Action(tokens));
        pos = end;
        trim_next = trim;
    }
}

/// `{{- ` trims the text before the action (the dash must be followed by a space character).
fn has_left_trim(rest: &str) -> bool {
    let bytes = rest.as_bytes();
    bytes.len() >= 2 && bytes[0] == b'-' && SPACES.contains(&char::from(bytes[1]))
}

/// The position after `}}` or ` -}}` at `pos`, and whether the text after it is trimmed.
fn right_delim(src: &str, pos: usize) -> Option<(usize, bool)> {
    let rest = &src[pos..];
    let bytes = rest.as_bytes();
    if bytes.len() >= 4
        && SPACES.contains(&char::from(bytes[0]))
        && bytes[1] == b'-'
        && rest[2..].starts_with("}}")
    {
        return Some((pos + 4, true));
    }
    rest.starts_with("}}").then_some((pos + 2, false))
}

fn lex_action(src: &str, start: usize) -> Result<(Vec<Token>, usize, bool), String> {
    let mut tokens = Vec::new();
    let mut pos = start;
    let mut spaced = true;
    loop {
        if let Some((end, trim)) = right_delim(src, pos) {
            return Ok((tokens, end, trim));
        }
        let rest = &src[pos..];
        let Some(c) = rest.chars().next() else {
            return Err("unclosed action".to_string());
        };
        let mut push = |tok: Tok, len: usize, pos: &mut usize| {
            tokens.push(Token { tok, spaced });
            *pos += len;
        };
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                pos += 1;
                spaced = true;
                continue;
            }
            '|' => push(Tok::Pipe, 1, &mut pos),
            '(' => push(Tok::LeftParen, 1, &mut pos),
            ')' => push(Tok::RightParen, 1, &mut pos),
            ',' => push(Tok::Comma, 1, &mut pos),
            '=' => push(Tok::Assign, 1, &mut pos),
            ':' if rest.starts_with(":=") => push(Tok::Declare, 2, &mut pos),
            '"' => {
                let (text, len) = lex_quoted(rest)?;
                push(Tok::Literal(Value::String(text)), len, &mut pos);
            }
            '`' => {
                let end = rest[1..]
                    .find('`')
                    .ok_or("unterminated raw quoted string")?;
                push(
                    Tok::Literal(Value::String(rest[1..1 + end].to_string())),
                    end + 2,
                    &mut pos,
                );
            }
            '\'' => {
                let (code, len) = lex_char(rest)?;
                push(Tok::Literal(Value::from(code)), len, &mut pos);
            }
            '$' => {
                let name_len = ident_len(&rest[1..]);
                let (chain, chain_len) = lex_chain(&rest[1 + name_len..]);
                let name = rest[1..1 + name_len].to_string();
                push(Tok::Var(name, chain), 1 + name_len + chain_len, &mut pos);
            }
            '.' if !rest[1..].starts_with(|c: char| c.is_ascii_digit()) => {
                let (chain, len) = lex_chain(rest);
                if chain.is_empty() {
                    push(Tok::Field(Vec::new()), 1, &mut pos);
                } else {
                    push(Tok::Field(chain), len, &mut pos);
                }
            }
            '.' | '+' | '-' | '0'..='9' => {
                let (number, len) = lex_number(rest)?;
                push(Tok::Literal(Value::Number(number)), len, &mut pos);
            }
            c if c.is_alphabetic() || c == '_' => {
                let len = ident_len(rest);
                let word = &rest[..len];
                let tok = match word {
                    "true" => Tok::Literal(Value::Bool(true)),
                    "false" => Tok::Literal(Value::Bool(false)),
                    "nil" => Tok::Nil,
                    _ => Tok::Ident(word.to_string()),
                };
                push(tok, len, &mut pos);
            }
            c => return Err(format!("bad character {c:?} in action")),
        }
        spaced = false;
    }
}

fn ident_len(text: &str) -> usize {
    text.char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map_or(text.len(), |(idx, _)| idx)
}

/// `.A.B...` at the start of `text`: the names and the length consumed.
fn lex_chain(text: &str) -> (Vec<String>, usize) {
    let mut chain = Vec::new();
    let mut pos = 0;
    while text[pos..].starts_with('.') {
        let len = ident_len(&text[pos + 1..]);
        if len == 0 {
            break;
        }
        chain.push(text[pos + 1..pos + 1 + len].to_string());
        pos += 1 + len;
    }
    (chain, pos)
}

/// A Go interpreted string literal at the start of `text`: its value and length.
fn lex_quoted(text: &str) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut chars = text.char_indices().skip(1);
    while let Some((idx, c)) = chars.next() {
        match c {
            '"' => return Ok((out, idx + 1)),
            '\n' => break,
            '\\' => {
                let (_, escape) = chars.next().ok_or("unterminated quoted string")?;
                let mut hex = |n_digits: usize| -> Result<u32, String> {
                    let digits: String = (0..n_digits)
                        .filter_map(|_| chars.next().map(|(_, d)| d))
                        .collect();
                    u32::from_str_radix(&digits, 16)
                        .map_err(|_| format!("invalid escape in quoted string {digits:?}"))
                };
                let decoded = match escape {
                    'a' => '\u{7}',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'v' => '\u{b}',
                    '\\' => '\\',
                    '"' => '"',
                    'x' => char::from_u32(hex(2)?).ok_or("invalid \\x escape")?,
                    'u' => char::from_u32(hex(4)?).ok_or("invalid \\u escape")?,
                    'U' => char::from_u32(hex(8)?).ok_or("invalid \\U escape")?,
                    '0'..='7' => {
                        let digits: String = std::iter::once(escape)
                            .chain((0..2).filter_map(|_| chars.next().map(|(_, d)| d)))
                            .collect();
                        let code = u32::from_str_radix(&digits, 8)
                            .map_err(|_| format!("invalid octal escape \\{digits}"))?;
                        char::from_u32(code).ok_or("invalid octal escape")?
                    }
                    other => return Err(format!("unknown escape sequence \\{other}")),
                };
                out.push(decoded);
            }
            c => out.push(c),
        }
    }
    Err("unterminated quoted string".to_string())
}

/// A Go character constant (`'a'`, `'\n'`) at the start of `text`: its code point and length.
fn lex_char(text: &str) -> Result<(u32, usize), String> {
    let mut escaped = false;
    for (idx, c) in text.char_indices().skip(1) {
        match c {
            '\n' => break,
            '\\' if !escaped => {
                escaped = true;
                continue;
            }
            '\'' if !escaped => {
                let inner = &text[1..idx];
                let (value, _) = lex_quoted(&format!("\"{}\"", inner.replace("\\'", "'")))?;
                let mut chars = value.chars();
                return match (chars.next(), chars.next()) {
                    (Some(c), None) => Ok((u32::from(c), idx + 1)),
                    _ => Err(format!("malformed character constant {}", &text[..=idx])),
                };
            }
            _ => {}
        }
        escaped = false;
    }
    Err("unterminated character constant".to_string())
}

/// A Go number literal at the start of `text`: integers (decimal, `0x`, `0o`, `0b`), floats.
fn lex_number(text: &str) -> Result<(Number, usize), String> {
    let len = text
        .char_indices()
        .find(|(idx, c)| {
            !(c.is_ascii_alphanumeric()
                || *c == '.'
                || *c == '_'
                || (matches!(c, '+' | '-')
                    && (*idx == 0 || text[..*idx].ends_with(['e', 'E', 'p', 'P']))))
        })
        .map_or(text.len(), |(idx, _)| idx);
    let literal = &text[..len];
    let bad = || format!("bad number syntax: {literal:?}");
    let cleaned = literal.replace('_', "");
    let (negative, digits) = match cleaned.as_bytes().first() {
        Some(b'-') => (true, &cleaned[1..]),
        Some(b'+') => (false, &cleaned[1..]),
        _ => (false, cleaned.as_str()),
    };
    let radix = [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ]
    .iter()
    .find_map(|(prefix, radix)| digits.strip_prefix(prefix).map(|rest| (rest, *radix)));
    let integer = match radix {
        Some((rest, radix)) => Some(i64::from_str_radix(rest, radix).map_err(|_| bad())?),
        None if digits.len() > 1
            && digits.starts_with('0')
            && digits.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(i64::from_str_radix(&digits[1..], 8).map_err(|_| bad())?)
        }
        None => digits.parse::<i64>().ok(),
    };
    if let Some(integer) = integer {
        return Ok((Number::from(if negative { -integer } else { integer }), len));
    }
    let float: f64 = digits.parse().map_err(|_| bad())?;
    let number = Number::from_f64(if negative { -float } else { float }).ok_or_else(bad)?;
    Ok((number, len))
}

// ------------------------------------------------------------------------------------------------
// Parsing

#[derive(Debug)]
enum Node {
    Text(String),
    Action(Pipeline),
    If {
        branches: Vec<(Pipeline, Vec<Node>)>,
        otherwise: Vec<Node>,
    },
    Range {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    With {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug)]
struct Pipeline {
    /// Variables the pipeline declares (`$x :=`) or assigns (`$x =`).
    vars: Vec<String>,
    assign: bool,
    commands: Vec<Command>,
}

#[derive(Debug)]
struct Command {
    operands: Vec<Operand>,
}

#[derive(Debug)]
enum Operand {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Function(String),
    Literal(Value),
    Nil,
    Sub(Box<Pipeline>, Vec<String>),
}

/// How a block list ended.
enum Ending {
    Eof,
    End,
    Else,
    ElseIf(Pipeline),
}

struct Parser {
    items: Vec<Item>,
    pos: usize,
}

impl Parser {
    fn parse_template(&mut self) -> Result<Vec<Node>, String> {
        let (nodes, ending) = self.parse_list()?;
        match ending {
            Ending::Eof => Ok(nodes),
            Ending::End => Err("unexpected {{end}}".to_string()),
            Ending::Else | Ending::ElseIf(_) => Err("unexpected {{else}}".to_string()),
        }
    }

    fn parse_list(&mut self) -> Result<(Vec<Node>, Ending), String> {
        let mut nodes = Vec::new();
        while self.pos < self.items.len() {
            let item = std::mem::replace(&mut self.items[self.pos], Item::Text(String::new()));
            self.pos += 1;
            let tokens = match item {
                Item::Text(text) => {
                    nodes.push(Node::Text(text));
                    continue;
                }
                Item::Action(tokens) => tokens,
            };
            let keyword = match tokens.first().map(|token| &token.tok) {
                Some(Tok::Ident(word)) => word.as_str(),
                _ => "",
            };
            match keyword {
                "end" => {
                    if tokens.len() > 1 {
                        return Err("unexpected token in {{end}}".to_string());
                    }
                    return Ok((nodes, Ending::End));
                }
                "else" => {
                    return match tokens.get(1).map(|token| &token.tok) {
                        None => Ok((nodes, Ending::Else)),
                        Some(Tok::Ident(word)) if word == "if" => Ok((
                            nodes,
                            Ending::ElseIf(parse_pipeline(&tokens[2..], 1, "if")?),
                        )),
                        Some(_) => Err("only {{else}} and {{else if}} are supported".to_string()),
                    };
                }
                "if" => {
                    let mut branches = Vec::new();
                    let mut pipe = parse_pipeline(&tokens[1..], 1, "if")?;
                    let otherwise = loop {
                        let (body, ending) = self.parse_list()?;
                        branches.push((pipe, body));
                        match ending {
                            Ending::ElseIf(next) => pipe = next,
                            Ending::Else => break self.parse_block_end("if")?,
                            Ending::End => break Vec::new(),
                            Ending::Eof => {
                                return Err("unexpected EOF: {{if}} without {{end}}".to_string())
                            }
                        }
                    };
                    nodes.push(Node::If {
                        branches,
                        otherwise,
                    });
                }
                "range" | "with" => {
                    let n_vars = if keyword == "range" { 2 } else { 1 };
                    let pipe = parse_pipeline(&tokens[1..], n_vars, keyword)?;
                    let (body, ending) = self.parse_list()?;
                    let otherwise = match ending {
                        Ending::End => Vec::new(),
                        Ending::Else => self.parse_block_end(keyword)?,
                        Ending::ElseIf(_) => {
                            return Err(format!(
                                "{{{{else if}}}} is not supported in {{{{{keyword}}}}}"
                            ))
                        }
                        Ending::Eof => {
                            return Err(format!(
                                "unexpected EOF: {{{{{keyword}}}}} without {{{{end}}}}"
                            ))
                        }
                    };
                    let node = if keyword == "range" {
                        Node::Range {
                            pipe,
                            body,
                            otherwise,
                        }
                    } else {
                        Node::With {
                            pipe,
                            body,
                            otherwise,
                        }
                    };
                    nodes.push(node);
                }
                "define" | "template" | "block" | "break" | "continue" => {
                    return Err(format!("{{{{{keyword}}}}} is not supported"));
                }
                _ => nodes.push(Node::Action(parse_pipeline(&tokens, 1, "command")?)),
            }
        }
        Ok((nodes, Ending::Eof))
    }

    /// The `{{else}}` part of a block, which must end with `{{end}}`.
    fn parse_block_end(&mut self, keyword: &str) -> Result<Vec<Node>, String> {
        let (otherwise, ending) = self.parse_list()?;
        match ending {
            Ending::End => Ok(otherwise),
            _ => Err(format!(
                "expected {{{{end}}}} after {{{{else}}}} of {{{{{keyword}}}}}"
            )),
        }
    }
}

/// A pipeline, optionally declaring or assigning up to `max_vars` variables first.
fn parse_pipeline(tokens: &[Token], max_vars: usize, context: &str) -> Result<Pipeline, String> {
    let mut vars = Vec::new();
    let mut assign = false;
    let mut rest = tokens;
    let mut idx = 0;
    let mut names = Vec::new();
    while let Some(Token {
        tok: Tok::Var(name, chain),
        ..
    }) = tokens.get(idx)
    {
        if !chain.is_empty() {
            break;
        }
        names.push(name.clone());
        match tokens.get(idx + 1).map(|token| &token.tok) {
            Some(Tok::Comma) if names.len() < max_vars => idx += 2,
            Some(Tok::Declare) => {
                vars = std::mem::take(&mut names);
                rest = &tokens[idx + 2..];
                break;
            }
            Some(Tok::Assign) if names.len() == 1 => {
                vars = std::mem::take(&mut names);
                assign = true;
                rest = &tokens[idx + 2..];
                break;
            }
            _ => break,
        }
    }
    if vars.iter().any(String::is_empty) {
        return Err("cannot declare or assign the variable $".to_string());
    }
    let mut commands = Vec::new();
    let mut start = 0;
    let mut depth = 0usize;
    for (idx, token) in rest.iter().enumerate() {
        match token.tok {
            Tok::LeftParen => depth += 1,
            Tok::RightParen => {
                depth = depth.checked_sub(1).ok_or("unexpected right paren")?;
            }
            Tok::Pipe if depth == 0 => {
                commands.push(parse_command(&rest[start..idx])?);
                start = idx + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unclosed left paren".to_string());
    }
    if start == rest.len() && !commands.is_empty() {
        return Err("missing command after |".to_string());
    }
    if start < rest.len() {
        commands.push(parse_command(&rest[start..])?);
    }
    if commands.is_empty() {
        return Err(format!("missing value for {context}"));
    }
    Ok(Pipeline {
        vars,
        assign,
        commands,
    })
}

fn parse_command(tokens: &[Token]) -> Result<Command, String> {
    if tokens.is_empty() {
        return Err("empty command".to_string());
    }
    let mut operands = Vec::new();
    let mut idx = 0;
    while idx < tokens.len() {
        let operand = match &tokens[idx].tok {
            Tok::Field(chain) => Operand::Field(chain.clone()),
            Tok::Var(name, chain) => Operand::Var(name.clone(), chain.clone()),
            Tok::Literal(value) => Operand::Literal(value.clone()),
            Tok::Nil => Operand::Nil,
            Tok::Ident(name) => {
                if FUNCTIONS.contains(&name.as_str()) {
                    Operand::Function(name.clone())
                } else if UNSUPPORTED_FUNCTIONS.contains(&name.as_str()) {
                    return Err(format!("function {name:?} is not supported"));
                } else if matches!(
                    name.as_str(),
                    "if" | "else"
                        | "end"
                        | "range"
                        | "with"
                        | "define"
                        | "template"
                        | "block"
                        | "break"
                        | "continue"
                ) {
                    return Err(format!("unexpected {name:?} in command"));
                } else {
                    return Err(format!("function {name:?} not defined"));
                }
            }
            Tok::LeftParen => {
                let mut depth = 0;
                let mut close = None;
                for (offset, token) in tokens[idx..].iter().enumerate() {
                    match token.tok {
                        Tok::LeftParen => depth += 1,
                        Tok::RightParen => {
                            depth -= 1;
                            if depth == 0 {
                                close = Some(idx + offset);
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let close = close.ok_or("unclosed left paren")?;
                let sub = parse_pipeline(&tokens[idx + 1..close], 1, "parenthesized pipeline")?;
                idx = close;
                let mut chain = Vec::new();
                if let Some(Token {
                    tok: Tok::Field(names),
                    spaced: false,
                }) = tokens.get(idx + 1)
                {
                    chain = names.clone();
                    idx += 1;
                }
                Operand::Sub(Box::new(sub), chain)
            }
            Tok::RightParen => return Err("unexpected right paren".to_string()),
            Tok::Pipe => return Err("unexpected |".to_string()),
            Tok::Comma => return Err("unexpected , in command".to_string()),
            Tok::Declare | Tok::Assign => return Err("unexpected variable declaration".to_string()),
        };
        if let (
            Some(Token {
                tok: Tok::Field(_),
                spaced: false,
            }),
            false,
        ) = (tokens.get(idx + 1), matches!(operand, Operand::Sub(..)))
        {
            return Err(
                "a field of a function's result is not supported; use parentheses".to_string(),
            );
        }
        operands.push(operand);
        idx += 1;
    }
    Ok(Command { operands })
}

// ------------------------------------------------------------------------------------------------
// Execution

/// What a template runs on, and with which rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A row of a list command.
    Row,
    /// The header map of a table: docker's header functions, missing keys print `<no value>`.
    Header,
    /// An inspect document: missing keys are errors.
    Document,
}

#[derive(Clone)]
enum Val<'a> {
    Json(Value),
    Row(&'a dyn Row),
    /// Go's invalid value (a missing map key): prints `<no value>`.
    Missing,
}

struct Exec<'a> {
    root: Val<'a>,
    vars: Vec<(String, Val<'a>)>,
    mode: Mode,
    out: String,
}

type Exe<T> = std::result::Result<T, String>;

impl<'a> Exec<'a> {
    fn walk(&mut self, nodes: &[Node], dot: &Val<'a>) -> Exe<()> {
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
            Operand::Function(name) => self.call(name, Vec::new()),
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

    fn call(&self, name: &str, args: Vec<Val<'a>>) -> Exe<Val<'a>> {
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
fn field_chain<'a>(
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

fn field<'a>(receiver: &Val<'a>, name: &str, args: &[Val<'a>], mode: Mode) -> Exe<Val<'a>> {
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
fn index<'a>(item: &Val<'a>, key: &Val<'a>) -> Exe<Val<'a>> {
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
fn truth(value: &Val) -> bool {
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

fn is_ordered(value: &Val) -> bool {
    matches!(value, Val::Json(Value::Number(_) | Value::String(_)))
}

/// Go's basic comparison: numbers with numbers, strings with strings, bools with bools.
fn compare(left: &Val, right: &Val) -> Exe<std::cmp::Ordering> {
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

fn type_name(value: &Val) -> String {
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

fn string_arg(function: &str, value: &Val) -> Exe<String> {
    match value {
        Val::Json(Value::String(text)) => Ok(text.clone()),
        other => Err(format!(
            "wrong type for value of {function}; expected string; got {}",
            type_name(other)
        )),
    }
}

fn int_arg(function: &str, value: &Val) -> Exe<i64> {
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

/// What an action prints: Go's `fmt.Print` of the value; null and missing values print
/// `<no value>` as in Go's template package.
fn print_value(value: &Val) -> Exe<String> {
    match value {
        Val::Missing | Val::Json(Value::Null) => Ok("<no value>".to_string()),
        other => fmt_value(other),
    }
}

/// Go's `%v` of a value decoded from JSON: `[a b]` for arrays, `map[k:v]` with sorted keys for
/// objects, `<nil>` for null.
fn fmt_value(value: &Val) -> Exe<String> {
    match value {
        Val::Row(row) => Err(format!(
            "a {} cannot be printed as text; use {{{{json .}}}} or its fields",
            row.type_name()
        )),
        Val::Missing => Ok("<no value>".to_string()),
        Val::Json(json) => Ok(fmt_json(json)),
    }
}

fn fmt_json(value: &Value) -> String {
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
fn go_sprint(args: &[Val]) -> Exe<String> {
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
fn go_sprintf(format: &str, args: &[Val]) -> Exe<String> {
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
                Val::Json(Value::String(text)) => format::go_quote(text),
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
fn go_title(text: &str) -> String {
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
fn row_json(row: &dyn Row) -> Value {
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
/// escapes (`\u0008`, `\u000c`, U+2028 and U+2029 escaped; `<`, `>`, `&` only with `escape_html`).
fn go_json(value: &Value, escape_html: bool) -> String {
    let mut out = String::new();
    write_json(&mut out, value, escape_html);
    out
}

fn write_json(out: &mut String, value: &Value, escape_html: bool) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Number(number) => out.push_str(&number.to_string()),
        Value::String(text) => write_json_string(out, text, escape_html),
        Value::Array(items) => {
            out.push('[');
            for (idx, item) in items.iter().enumerate() {
                if idx > 0 {
                    out.push(',');
                }
                write_json(out, item, escape_html);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (idx, (key, item)) in map.iter().enumerate() {
                if idx > 0 {
                    out.push(',');
                }
                write_json_string(out, key, escape_html);
                out.push(':');
                write_json(out, item, escape_html);
            }
            out.push('}');
        }
    }
}

fn write_json_string(out: &mut String, text: &str, escape_html: bool) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if escape_html => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row like docker/cli's history context, with fixed values.
    struct TestRow {
        id: &'static str,
        size: &'static str,
    }

    impl Row for TestRow {
        fn type_name(&self) -> &'static str {
            "*test.row"
        }
        fn field_names(&self) -> &'static [&'static str] {
            &["ID", "Size", "Comment"]
        }
        fn field(&self, name: &str) -> Option<String> {
            match name {
                "ID" => Some(self.id.to_string()),
                "Size" => Some(self.size.to_string()),
                "Comment" => Some("<&>".to_string()),
                _ => None,
            }
        }
        fn method(&self, name: &str, args: &[String]) -> Option<String> {
            (name == "Label").then(|| format!("label {}", args.join(",")))
        }
    }

    const HEADERS: &[(&str, &str)] = &[("ID", "IMAGE"), ("Size", "SIZE"), ("Comment", "COMMENT")];

    fn rows() -> Vec<TestRow> {
        vec![
            TestRow {
                id: "abc",
                size: "1.2MB",
            },
            TestRow {
                id: "<missing>",
                size: "0B",
            },
        ]
    }

    fn render(format: &str) -> String {
        Template::cli(format)
            .and_then(|template| template.render_rows(&rows(), HEADERS))
            .unwrap_or_else(|err| panic!("{format}: {err:#}"))
    }

    fn doc(template: &str, value: &Value) -> String {
        Template::go(template)
            .and_then(|template| template.render_value(value))
            .unwrap_or_else(|err| panic!("{template}: {err:#}"))
    }

    #[test]
    fn fields_literal_text_and_escapes() {
        assert_eq!(render("{{.ID}}"), "abc\n<missing>\n");
        assert_eq!(
            render("id={{.ID}}\\t{{ .Size }}"),
            "id=abc\t1.2MB\nid=<missing>\t0B\n"
        );
        // Surrounding spaces are trimmed, `\n` becomes a newline, `\\t` keeps one backslash.
        assert_eq!(render("  {{.ID}}\\n "), "abc\n\n<missing>\n\n");
        assert_eq!(render("a\\\\tb"), "a\\\tb\na\\\tb\n");
    }

    #[test]
    fn table_prints_the_header_and_aligns_like_tabwriter() {
        // Column width: widest cell plus 3, at least 10; the last cell is not padded.
        assert_eq!(
            render("table {{.ID}}\\t{{.Size}}"),
            "IMAGE       SIZE\nabc         1.2MB\n<missing>   0B\n"
        );
        // An empty last column still pads the column before it.
        assert_eq!(
            render("table {{.Size}}\\t{{.ID}}\\t"),
            "SIZE      IMAGE       \n1.2MB     abc         \n0B        <missing>   \n"
        );
        // Header functions pass the column name through.
        assert_eq!(
            render("table {{upper .ID}}\\t{{json .Size}}"),
            "IMAGE       SIZE\nABC         \"1.2MB\"\n<MISSING>   \"0B\"\n"
        );
        // `table` alone on no rows still prints the header line.
        let template = Template::cli("table {{.ID}}").expect("parse");
        assert_eq!(
            template
                .render_rows::<TestRow>(&[], HEADERS)
                .expect("render"),
            "IMAGE\n"
        );
    }

    #[test]
    fn json_of_a_row_sorts_keys_and_escapes_html() {
        assert_eq!(
            render("{{json .}}").lines().next(),
            Some(r#"{"Comment":"\u003c\u0026\u003e","ID":"abc","Size":"1.2MB"}"#)
        );
        // A field's value is encoded without HTML escapes (SetEscapeHTML(false)).
        assert_eq!(render("{{json .Comment}}").lines().next(), Some(r#""<&>""#));
    }

    #[test]
    fn functions() {
        assert_eq!(
            render("{{lower .Size}}|{{upper .ID}}").lines().next(),
            Some("1.2mb|ABC")
        );
        assert_eq!(render("{{.ID | upper}}").lines().next(), Some("ABC"));
        assert_eq!(render("{{pad .ID 2 1}}|").lines().next(), Some("  abc |"));
        assert_eq!(render("{{truncate .ID 2}}").lines().next(), Some("ab"));
        assert_eq!(
            render("{{join (split .Size \".\") \"+\"}}").lines().next(),
            Some("1+2MB")
        );
        assert_eq!(
            render("{{title \"hello wide_world-x\"}}").lines().next(),
            Some("Hello Wide_world-X")
        );
        assert_eq!(render("{{.ID}}{{println}}").lines().next(), Some("abc"));
        assert_eq!(
            render("{{println .ID .Size}}"),
            "abc 1.2MB\n\n<missing> 0B\n\n"
        );
        assert_eq!(
            render("{{printf \"%-5s|%3d\" .ID 7}}").lines().next(),
            Some("abc  |  7")
        );
        assert_eq!(
            render("{{print 1 2 \"a\" 3}}").lines().next(),
            Some("1 2a3")
        );
        assert_eq!(render("{{.Label \"x\"}}").lines().next(), Some("label x"));
        assert_eq!(render("{{len .ID}}").lines().next(), Some("3"));
    }

    #[test]
    fn conditionals_ranges_and_variables() {
        assert_eq!(
            render("{{if eq .ID \"abc\"}}top{{else if .Size}}{{.Size}}{{else}}none{{end}}"),
            "top\n0B\n"
        );
        assert_eq!(
            render("{{with .Size}}<{{.}}>{{end}}").lines().next(),
            Some("<1.2MB>")
        );
        assert_eq!(
            render("{{range $i, $p := split .Size \".\"}}{{$i}}={{$p}};{{end}}")
                .lines()
                .next(),
            Some("0=1;1=2MB;")
        );
        assert_eq!(
            render("{{$x := .ID}}{{$x}}-{{$.Size}}").lines().next(),
            Some("abc-1.2MB")
        );
        assert_eq!(
            render("{{- \" a \" -}}  \n  {{.ID}}").lines().next(),
            Some(" a abc")
        );
        assert_eq!(
            render("{{/* a comment */}}{{.ID}}").lines().next(),
            Some("abc")
        );
        assert_eq!(
            render("{{if and .ID (not \"\")}}y{{end}}").lines().next(),
            Some("y")
        );
        assert_eq!(
            render("{{if or \"\" .Size}}{{.Size}}{{end}}")
                .lines()
                .next(),
            Some("1.2MB")
        );
    }

    #[test]
    fn documents_print_like_go() {
        let value = serde_json::json!({
            "Id": "sha256:abc",
            "RootFS": {"Type": "layers", "Layers": ["sha256:1", "sha256:2"]},
            "Config": {"Labels": {"b": "2", "a": "1"}, "Env": ["A=1", "B=<2>"], "Volumes": null},
            "Size": 1234,
        });
        assert_eq!(doc("{{.Id}}", &value), "sha256:abc");
        assert_eq!(
            doc("{{json .RootFS.Layers}}", &value),
            r#"["sha256:1","sha256:2"]"#
        );
        assert_eq!(doc("{{.RootFS.Layers}}", &value), "[sha256:1 sha256:2]");
        assert_eq!(doc("{{.Config.Labels}}", &value), "map[a:1 b:2]");
        assert_eq!(doc("{{index .Config.Labels \"b\"}}", &value), "2");
        assert_eq!(doc("{{index .Config.Labels \"zz\"}}", &value), "");
        assert_eq!(doc("{{join .Config.Env \",\"}}", &value), "A=1,B=<2>");
        assert_eq!(doc("{{json .Config.Env}}", &value), r#"["A=1","B=<2>"]"#);
        assert_eq!(doc("{{.Config.Volumes}}", &value), "<no value>");
        assert_eq!(doc("{{.Size}}", &value), "1234");
        assert_eq!(
            doc("{{json .RootFS}}", &value),
            r#"{"Type":"layers","Layers":["sha256:1","sha256:2"]}"#
        );
        assert_eq!(
            doc("{{range .RootFS.Layers}}{{println .}}{{end}}", &value),
            "sha256:1\nsha256:2\n"
        );
        // inspect takes the template as written: `\t` stays two characters.
        assert_eq!(doc("{{.Id}}\\t", &value), "sha256:abc\\t");
        assert_eq!(
            go_json(&serde_json::json!("a\u{8}\u{2028}<"), false),
            r#""a\u0008\u2028<""#
        );
    }

    #[test]
    fn errors_name_the_template() {
        let err = Template::cli("{{foo .ID}}").expect_err("unknown function");
        assert_eq!(
            err.to_string(),
            r#"invalid template "{{foo .ID}}": function "foo" not defined"#
        );
        let err = Template::cli("{{.ID").expect_err("unclosed");
        assert!(err.to_string().contains("unclosed action"), "{err}");
        let err = Template::cli("{{if .ID}}x").expect_err("no end");
        assert!(err.to_string().contains("without {{end}}"), "{err}");
        let err = Template::cli("{{template \"x\"}}").expect_err("unsupported");
        assert!(
            err.to_string().contains("{{template}} is not supported"),
            "{err}"
        );
        let err = Template::cli("{{html .ID}}").expect_err("unsupported function");
        assert!(
            err.to_string()
                .contains(r#"function "html" is not supported"#),
            "{err}"
        );
        let err = Template::cli("{{.Nope}}")
            .and_then(|template| template.render_rows(&rows(), HEADERS))
            .expect_err("unknown field");
        assert_eq!(
            err.to_string(),
            r#"executing template "{{.Nope}}": can't evaluate field Nope in type *test.row"#
        );
        let err = Template::go("{{.Missing}}")
            .and_then(|template| template.render_value(&serde_json::json!({"Id": "x"})))
            .expect_err("missing key");
        assert!(
            err.to_string()
                .contains(r#"map has no entry for key "Missing""#),
            "{err}"
        );
        let err = Template::cli("{{.}}")
            .and_then(|template| template.render_rows(&rows(), HEADERS))
            .expect_err("row as text");
        assert!(err.to_string().contains("use {{json .}}"), "{err}");
    }

    #[test]
    fn header_keeps_what_was_printed_before_an_error() {
        // docker/cli ignores header errors: `.Label "x"` fails on the header map.
        assert_eq!(
            render("table {{.ID}}\\t{{.Label \"x\"}}"),
            "IMAGE       \nabc         label x\n<missing>   label x\n"
        );
    }
}
