//! The parser: tokens into a tree of text, actions and `if`/`range`/`with` blocks.

use serde_json::Value;

use super::lexer::{Item, Tok, Token, FUNCTIONS, UNSUPPORTED_FUNCTIONS};

#[derive(Debug)]
pub(crate) enum Node {
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
pub(crate) struct Pipeline {
    /// Variables the pipeline declares (`$x :=`) or assigns (`$x =`).
    pub(crate) vars: Vec<String>,
    pub(crate) assign: bool,
    pub(crate) commands: Vec<Command>,
}

#[derive(Debug)]
pub(crate) struct Command {
    pub(crate) operands: Vec<Operand>,
}

#[derive(Debug)]
pub(crate) enum Operand {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Function(String),
    Literal(Value),
    Nil,
    Sub(Box<Pipeline>, Vec<String>),
}

/// How a block list ended.
pub(crate) enum Ending {
    Eof,
    End,
    Else,
    ElseIf(Pipeline),
}

pub(crate) struct Parser {
    pub(crate) items: Vec<Item>,
    pub(crate) pos: usize,
}

impl Parser {
    pub(crate) fn parse_template(&mut self) -> Result<Vec<Node>, String> {
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
pub(crate) fn parse_pipeline(
    tokens: &[Token],
    max_vars: usize,
    context: &str,
) -> Result<Pipeline, String> {
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

pub(crate) fn parse_command(tokens: &[Token]) -> Result<Command, String> {
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
