//! The lexer: text and `{{...}}` actions split into tokens, trim markers applied.

use serde_json::{Number, Value};

/// The space characters of Go's template lexer (trim markers, spaces between tokens).
pub(crate) const SPACES: &[char] = &[' ', '\t', '\r', '\n'];

/// Functions of docker's templates and Go's builtins that ovl evaluates.
pub(crate) const FUNCTIONS: &[&str] = &[
    "json", "split", "join", "title", "lower", "upper", "pad", "truncate", "index", "len", "print",
    "printf", "println", "not", "and", "or", "eq", "ne", "lt", "le", "gt", "ge",
];

/// Functions a docker template has that ovl does not evaluate.
pub(crate) const UNSUPPORTED_FUNCTIONS: &[&str] = &["call", "html", "js", "slice", "urlquery"];

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
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
pub(crate) struct Token {
    pub(crate) tok: Tok,
    /// Whether space came before the token (a field right after `)` continues a chain).
    pub(crate) spaced: bool,
}

#[derive(Debug)]
pub(crate) enum Item {
    Text(String),
    Action(Vec<Token>),
}

pub(crate) fn lex(src: &str) -> Result<Vec<Item>, String> {
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
pub(crate) fn has_left_trim(rest: &str) -> bool {
    let bytes = rest.as_bytes();
    bytes.len() >= 2 && bytes[0] == b'-' && SPACES.contains(&char::from(bytes[1]))
}

/// The position after `}}` or ` -}}` at `pos`, and whether the text after it is trimmed.
pub(crate) fn right_delim(src: &str, pos: usize) -> Option<(usize, bool)> {
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

pub(crate) fn lex_action(src: &str, start: usize) -> Result<(Vec<Token>, usize, bool), String> {
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

pub(crate) fn ident_len(text: &str) -> usize {
    text.char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map_or(text.len(), |(idx, _)| idx)
}

/// `.A.B...` at the start of `text`: the names and the length consumed.
pub(crate) fn lex_chain(text: &str) -> (Vec<String>, usize) {
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
pub(crate) fn lex_quoted(text: &str) -> Result<(String, usize), String> {
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
pub(crate) fn lex_char(text: &str) -> Result<(u32, usize), String> {
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
pub(crate) fn lex_number(text: &str) -> Result<(Number, usize), String> {
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
