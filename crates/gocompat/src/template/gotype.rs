//! Go types for the typed half of docker/cli's inspect templates: a value of a Go struct as
//! `encoding/json` decodes it from an inspect document, kept as the JSON beside its [`GoType`],
//! and what `text/template` and `fmt` do with it (fields by Go name, zero values for absent keys,
//! nil slices and maps that print `[]` and `map[]`, nil pointers that are false).

use serde_json::{Map, Value};

use super::exec::{Exe, Val};
use super::funcs::fmt_json;
use crate::time::{go_duration_string, GoTime};

/// A Go type as far as a template can tell: its kind, its name in messages, and for structs the
/// fields in Go order with their JSON keys.
#[derive(Debug)]
pub enum GoType {
    /// `string`.
    String,
    /// `bool`.
    Bool,
    /// An integer type, by its Go name (`int`, `int64`, `uint32`).
    Int(&'static str),
    /// `float64`.
    Float64,
    /// `time.Duration`: nanoseconds in JSON, printed by its `String` method (`1m30s`).
    Duration,
    /// `time.Time`: RFC 3339 text in JSON, printed by its `String` method.
    Time,
    /// A defined type without a `String` method (`nat.Port`, `strslice.StrSlice`): its name and
    /// its underlying type. A string is not assignable to it, so a map keyed by one cannot be
    /// read with `.key` or `index`.
    Named(&'static str, &'static GoType),
    /// `[]T`; JSON null is the nil slice.
    Slice(&'static GoType),
    /// `map[K]V`, keys sorted when printed or encoded; JSON null is the nil map.
    Map(&'static GoType, &'static GoType),
    /// `*T`; JSON null is the nil pointer.
    Pointer(&'static GoType),
    /// A struct.
    Struct(&'static GoStruct),
    /// `interface{}`: whatever `encoding/json` decodes (maps, slices, strings, numbers, bools).
    Interface,
    /// A pointer to a struct not described here (`*container.HostConfig`), by name: nil or not
    /// is all a typed run knows of it, so using anything else of it fails the typed run and the
    /// JSON run answers.
    Opaque(&'static str),
}

/// A Go struct: its name in messages (`types.ImageInspect`) and its fields in Go order.
#[derive(Debug)]
pub struct GoStruct {
    /// The package-qualified name, as `reflect` prints it.
    pub name: &'static str,
    /// The fields in declaration order (the order `fmt` prints and `encoding/json` writes).
    pub fields: &'static [GoField],
}

/// One field of a [`GoStruct`].
#[derive(Debug)]
pub struct GoField {
    /// The Go name, what `{{.Name}}` selects.
    pub name: &'static str,
    /// The JSON key (the tag's name, or the Go name when the tag has none).
    pub json: &'static str,
    /// The field's type.
    pub ty: &'static GoType,
    /// The tag's `omitempty`: a zero value is left out when encoding.
    pub omitempty: bool,
    /// An embedded struct or pointer to one: its fields are read from and written to the
    /// enclosing JSON object, and `{{.Name}}` finds them through the enclosing struct.
    pub embedded: bool,
}

impl GoField {
    /// A field whose JSON key is its Go name.
    pub const fn new(name: &'static str, ty: &'static GoType) -> GoField {
        GoField {
            name,
            json: name,
            ty,
            omitempty: false,
            embedded: false,
        }
    }

    /// An embedded field (`*ContainerJSONBase` in `types.ContainerJSON`), named by its type.
    pub const fn embedded(name: &'static str, ty: &'static GoType) -> GoField {
        GoField {
            name,
            json: name,
            ty,
            omitempty: false,
            embedded: true,
        }
    }

    /// A field whose JSON key differs from its Go name (`ID` with `json:"Id"`).
    pub const fn keyed(name: &'static str, json: &'static str, ty: &'static GoType) -> GoField {
        GoField {
            name,
            json,
            ty,
            omitempty: false,
            embedded: false,
        }
    }

    /// The same field with `omitempty` in its tag.
    pub const fn omitempty(self) -> GoField {
        GoField {
            omitempty: true,
            ..self
        }
    }
}

impl GoType {
    /// The name `reflect` gives the type (`[]string`, `*container.Config`, `map[string]string`).
    pub fn name(&self) -> String {
        match self {
            GoType::String => "string".to_string(),
            GoType::Bool => "bool".to_string(),
            GoType::Int(name) | GoType::Named(name, _) => (*name).to_string(),
            GoType::Float64 => "float64".to_string(),
            GoType::Duration => "time.Duration".to_string(),
            GoType::Time => "time.Time".to_string(),
            GoType::Slice(elem) => format!("[]{}", elem.name()),
            GoType::Map(key, elem) => format!("map[{}]{}", key.name(), elem.name()),
            GoType::Pointer(elem) => format!("*{}", elem.name()),
            GoType::Struct(st) => st.name.to_string(),
            GoType::Interface => "interface {}".to_string(),
            GoType::Opaque(name) => format!("*{name}"),
        }
    }

    /// The type with every defined name taken off.
    fn underlying(&'static self) -> &'static GoType {
        match self {
            GoType::Named(_, ty) => ty.underlying(),
            other => other,
        }
    }
}

/// Go's value of type `ty` that `encoding/json` decodes from `json` (null or a mismatched kind
/// being the zero value). Strings, bools, numbers and interfaces become plain JSON values, as they
/// behave the same in a template; the rest keep their type.
pub(crate) fn decode<'a>(ty: &'static GoType, json: Value) -> Val<'a> {
    match ty.underlying() {
        GoType::String => Val::Json(match json {
            Value::String(text) => Value::String(text),
            _ => Value::String(String::new()),
        }),
        GoType::Bool => Val::Json(Value::Bool(json.as_bool().unwrap_or(false))),
        GoType::Int(_) => Val::Json(match json {
            Value::Number(number) if number.is_i64() || number.is_u64() => Value::Number(number),
            _ => Value::from(0),
        }),
        GoType::Float64 => Val::Json(match json {
            Value::Number(number) => Value::Number(number),
            _ => Value::from(0),
        }),
        GoType::Interface => Val::Json(json),
        _ => Val::Typed(ty, json),
    }
}

/// `{{.name}}` on a typed value: a struct's field by its Go name (through pointers), or a key of a
/// map keyed by plain strings (`<no value>` when absent, Go's default `missingkey`).
pub(crate) fn field<'a>(ty: &'static GoType, json: &Value, name: &str) -> Exe<Val<'a>> {
    match ty.underlying() {
        GoType::Pointer(_) if json.is_null() => {
            Err(format!("nil pointer evaluating {}.{name}", ty.name()))
        }
        GoType::Pointer(elem) => field(elem, json, name),
        GoType::Struct(st) => {
            if let Some(field) = st.fields.iter().find(|field| field.name == name) {
                return Ok(decode(field.ty, field_json(json, field)));
            }
            // A field promoted from an embedded struct, through a pointer that must not be nil.
            for embedded in st.fields.iter().filter(|field| field.embedded) {
                if promotes(embedded.ty, name) {
                    return field(embedded.ty, &field_json(json, embedded), name);
                }
            }
            Err(format!("can't evaluate field {name} in type {}", ty.name()))
        }
        GoType::Map(GoType::String, elem) => Ok(match json.get(name) {
            Some(value) => decode(elem, value.clone()),
            None => Val::Missing,
        }),
        _ => Err(format!("can't evaluate field {name} in type {}", ty.name())),
    }
}

/// Go's truth: non-empty slices and maps, non-nil pointers, every struct, non-zero durations.
pub(crate) fn truth(ty: &'static GoType, json: &Value) -> bool {
    match ty.underlying() {
        GoType::Slice(_) => json.as_array().is_some_and(|items| !items.is_empty()),
        GoType::Map(..) => json.as_object().is_some_and(|map| !map.is_empty()),
        GoType::Pointer(_) | GoType::Interface | GoType::Opaque(_) => !json.is_null(),
        GoType::Duration => json.as_i64().unwrap_or(0) != 0,
        GoType::Struct(_) | GoType::Time => true,
        _ => super::exec::truth(&decode(ty, json.clone())),
    }
}

/// The builtin `len`: of a slice or a map (zero when nil), through pointers.
pub(crate) fn length(ty: &'static GoType, json: &Value) -> Exe<usize> {
    match ty.underlying() {
        GoType::Pointer(_) if json.is_null() => Err("len of nil pointer".to_string()),
        GoType::Pointer(elem) => length(elem, json),
        GoType::Slice(_) => Ok(json.as_array().map_or(0, Vec::len)),
        GoType::Map(..) => Ok(json.as_object().map_or(0, Map::len)),
        _ => Err(format!("len of type {}", ty.name())),
    }
}

/// The builtin `index` for one key: a slice element by number, a map entry by string (the
/// element type's zero value when absent), through pointers.
pub(crate) fn index<'a>(ty: &'static GoType, json: &Value, key: &Val<'a>) -> Exe<Val<'a>> {
    match (ty.underlying(), key) {
        (GoType::Pointer(_), _) if json.is_null() => {
            Err("error calling index: index of nil pointer".to_string())
        }
        (GoType::Pointer(elem), _) => index(elem, json, key),
        (GoType::Slice(elem), Val::Json(Value::Number(number))) => {
            let idx = number.as_i64().unwrap_or(-1);
            usize::try_from(idx)
                .ok()
                .and_then(|idx| json.as_array()?.get(idx))
                .map(|item| decode(elem, item.clone()))
                .ok_or_else(|| format!("error calling index: index out of range: {idx}"))
        }
        (GoType::Map(GoType::String, elem), Val::Json(Value::String(name))) => {
            Ok(decode(elem, json.get(name).cloned().unwrap_or(Value::Null)))
        }
        (GoType::Map(key_type, _), _) => Err(format!(
            "error calling index: value has type {}; should be {}",
            super::exec::type_name(key),
            key_type.name()
        )),
        _ => Err(format!(
            "error calling index: cannot index {} with {}",
            ty.name(),
            super::exec::type_name(key)
        )),
    }
}

/// What `range` visits: a slice's elements with their indices, a map's entries by sorted key.
pub(crate) fn elements<'a>(ty: &'static GoType, json: &Value) -> Exe<Vec<(Val<'a>, Val<'a>)>> {
    match ty.underlying() {
        GoType::Slice(elem) => Ok(json
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .enumerate()
                    .map(|(idx, item)| (Val::Json(Value::from(idx)), decode(elem, item.clone())))
                    .collect()
            })
            .unwrap_or_default()),
        GoType::Map(_, elem) => Ok(sorted_entries(json)
            .into_iter()
            .map(|(key, item)| {
                (
                    Val::Json(Value::String(key.clone())),
                    decode(elem, item.clone()),
                )
            })
            .collect()),
        _ => Err(format!("range can't iterate over {}", format(ty, json, 0))),
    }
}

/// The entries of a JSON object in key order, as Go's `range` and `fmt` visit a map; none for
/// anything else.
fn sorted_entries(json: &Value) -> Vec<(&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> = json
        .as_object()
        .map(|map| map.iter().collect())
        .unwrap_or_default();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// What an action prints: `text/template` follows pointers before handing the value to `fmt`.
pub(crate) fn print(ty: &'static GoType, json: &Value) -> String {
    match ty.underlying() {
        GoType::Pointer(elem) if !json.is_null() => print(elem, json),
        _ => format(ty, json, 0),
    }
}

/// Where `fmt` prints a non-nil pointer it does not follow (a pointer inside a struct, or to a
/// number). Go prints the address, which differs from run to run; this stands for it.
const POINTER_ADDRESS: &str = "0xc000010000";

/// Go's `%v` of the value at nesting `depth`: `[a b]`, `map[k:v]` with sorted keys, `{f1 f2}` for
/// structs, `&{...}` for a pointer to a struct, slice or map at the top, `<nil>` for nil pointers
/// and interfaces, and the `String` method of times and durations.
pub(crate) fn format(ty: &'static GoType, json: &Value, depth: usize) -> String {
    match ty.underlying() {
        GoType::Interface if json.is_null() => "<nil>".to_string(),
        GoType::Interface => fmt_json(json),
        GoType::Time => time(json).to_go_string(),
        GoType::Duration => go_duration_string(json.as_i64().unwrap_or(0)),
        GoType::Slice(elem) => {
            let items = json.as_array().map(Vec::as_slice).unwrap_or_default();
            let parts: Vec<String> = items
                .iter()
                .map(|item| format(elem, item, depth + 1))
                .collect();
            format!("[{}]", parts.join(" "))
        }
        GoType::Map(_, elem) => {
            let parts: Vec<String> = sorted_entries(json)
                .into_iter()
                .map(|(key, item)| format!("{key}:{}", format(elem, item, depth + 1)))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
        GoType::Pointer(_) | GoType::Opaque(_) if json.is_null() => "<nil>".to_string(),
        GoType::Opaque(_) => POINTER_ADDRESS.to_string(),
        GoType::Pointer(elem) => match elem.underlying() {
            GoType::Struct(_) | GoType::Slice(_) | GoType::Map(..) if depth == 0 => {
                format!("&{}", format(elem, json, depth + 1))
            }
            _ => POINTER_ADDRESS.to_string(),
        },
        GoType::Struct(st) => {
            let parts: Vec<String> = st
                .fields
                .iter()
                .map(|field| format(field.ty, &field_json(json, field), depth + 1))
                .collect();
            format!("{{{}}}", parts.join(" "))
        }
        _ => match decode(ty, json.clone()) {
            Val::Json(value) => fmt_json(&value),
            _ => String::new(),
        },
    }
}

/// What `encoding/json` writes for the value: struct fields in Go order under their JSON keys
/// (zero values filled in, `omitempty` ones left out when empty), map keys sorted, nil slices,
/// maps and pointers as null, times in RFC 3339 with nanoseconds.
pub(crate) fn encode(ty: &'static GoType, json: &Value) -> Value {
    match ty.underlying() {
        GoType::Interface => sorted(json),
        GoType::Time => Value::String(time(json).to_rfc3339_nano()),
        GoType::Duration => Value::from(json.as_i64().unwrap_or(0)),
        GoType::Slice(elem) => match json.as_array() {
            Some(items) => Value::Array(items.iter().map(|item| encode(elem, item)).collect()),
            None => Value::Null,
        },
        GoType::Map(_, elem) => match json.as_object() {
            Some(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(key, item)| (key.clone(), encode(elem, item)))
                        .collect(),
                )
            }
            None => Value::Null,
        },
        GoType::Pointer(_) | GoType::Opaque(_) if json.is_null() => Value::Null,
        GoType::Opaque(_) => json.clone(),
        GoType::Pointer(elem) => encode(elem, json),
        GoType::Struct(st) => {
            let mut object = Map::new();
            for field in st.fields {
                let value = field_json(json, field);
                if field.omitempty && is_empty(field.ty, &value) {
                    continue;
                }
                match (field.embedded, encode(field.ty, &value)) {
                    (true, Value::Object(inner)) => {
                        for (key, item) in inner {
                            object.entry(key).or_insert(item);
                        }
                    }
                    (true, _) => {}
                    (false, encoded) => {
                        object.insert(field.json.to_string(), encoded);
                    }
                }
            }
            Value::Object(object)
        }
        _ => match decode(ty, json.clone()) {
            Val::Json(value) => value,
            _ => Value::Null,
        },
    }
}

/// The elements of a `[]string` (a nil slice has none); `None` for any other type.
pub(crate) fn strings(ty: &'static GoType, json: &Value) -> Option<Vec<String>> {
    match ty.underlying() {
        GoType::Slice(GoType::String) => Some(
            json.as_array()
                .map(|items| {
                    items
                        .iter()
                        .map(|item| item.as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default(),
        ),
        _ => None,
    }
}

/// The number behind a duration, for comparisons and `%d`; `None` for types that are not numbers.
pub(crate) fn number(ty: &'static GoType, json: &Value) -> Option<Value> {
    match ty.underlying() {
        GoType::Duration => Some(Value::from(json.as_i64().unwrap_or(0))),
        _ => None,
    }
}

/// Go's `isEmptyValue`, which `omitempty` asks: false, zero, empty text, nil or empty slices
/// and maps, nil pointers; a struct is never empty.
fn is_empty(ty: &'static GoType, json: &Value) -> bool {
    match ty.underlying() {
        GoType::Struct(_) | GoType::Time => false,
        GoType::Pointer(_) | GoType::Interface | GoType::Opaque(_) => json.is_null(),
        _ => !truth(ty, json),
    }
}

/// Whether a non-nil value of a type not described here is reachable in the value: printing or
/// encoding it would need its fields, so the typed run fails there.
pub(crate) fn undescribed(ty: &'static GoType, json: &Value) -> Option<String> {
    if json.is_null() {
        return None;
    }
    match ty.underlying() {
        GoType::Opaque(name) => Some(format!("the fields of {name} are not described")),
        GoType::Pointer(elem) => undescribed(elem, json),
        GoType::Slice(elem) => json
            .as_array()?
            .iter()
            .find_map(|item| undescribed(elem, item)),
        GoType::Map(_, elem) => json
            .as_object()?
            .values()
            .find_map(|item| undescribed(elem, item)),
        GoType::Struct(st) => st
            .fields
            .iter()
            .find_map(|field| undescribed(field.ty, &field_json(json, field))),
        _ => None,
    }
}

/// Whether `name` is a field of the struct `ty` (through a pointer) or promoted into it.
fn promotes(ty: &'static GoType, name: &str) -> bool {
    match ty.underlying() {
        GoType::Pointer(elem) => promotes(elem, name),
        GoType::Struct(st) => st
            .fields
            .iter()
            .any(|field| field.name == name || (field.embedded && promotes(field.ty, name))),
        _ => false,
    }
}

/// The JSON of one field of a struct: its key's value, or for an embedded struct the enclosing
/// object itself (an embedded pointer is nil unless one of its keys is there, as `encoding/json`
/// allocates it only then).
fn field_json(json: &Value, field: &GoField) -> Value {
    if !field.embedded {
        return member(json, field.json);
    }
    match field.ty.underlying() {
        GoType::Pointer(elem) => match elem.underlying() {
            GoType::Struct(st)
                if st
                    .fields
                    .iter()
                    .any(|inner| inner.embedded || has_member(json, inner.json)) =>
            {
                json.clone()
            }
            _ => Value::Null,
        },
        _ => json.clone(),
    }
}

/// Whether the object has the key, matched as `encoding/json` matches it.
fn has_member(json: &Value, key: &str) -> bool {
    json.as_object().is_some_and(|object| {
        object.contains_key(key) || object.keys().any(|name| name.eq_ignore_ascii_case(key))
    })
}

/// The JSON of a field as `encoding/json` matches keys: exactly, else ignoring ASCII case; null
/// when absent.
fn member(json: &Value, key: &str) -> Value {
    let Some(object) = json.as_object() else {
        return Value::Null;
    };
    object
        .get(key)
        .or_else(|| {
            object
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(key))
                .map(|(_, value)| value)
        })
        .cloned()
        .unwrap_or(Value::Null)
}

/// A `time.Time` decoded from JSON text; the zero time when absent or unreadable.
fn time(json: &Value) -> GoTime {
    json.as_str()
        .and_then(GoTime::parse_rfc3339)
        .unwrap_or(GoTime::ZERO)
}

/// A value Go decoded into `interface{}` and encodes again: object keys sorted at every level.
fn sorted(json: &Value) -> Value {
    match json {
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(key, item)| (key.clone(), sorted(item)))
                    .collect(),
            )
        }
        other => other.clone(),
    }
}
