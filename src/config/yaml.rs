//! Everything that knows the config is YAML: reading it into the schema, and finding where in
//! the text a field was written so that validation errors can name a line.

use super::recover;
use serde::de::DeserializeOwned;
use std::collections::{BTreeSet, HashMap};

/// A place in the text, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Why the text does not fit the schema at all: bad YAML, an unknown or missing key, a wrong type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructuralError {
    /// Field path such as `backends[0].servers`; empty for the whole document.
    pub field: String,
    pub position: Option<Position>,
    pub message: String,
}

/// How deeply collections may nest. The deepest setting is five levels down
/// (`vrrp.instances[0].track[0].weight`); the limit is far above that, and it keeps parse time
/// in check: the YAML parser's time grows with the square of flow-collection nesting.
pub const MAX_DEPTH: usize = 64;

/// What saphyr-parser says when flow collections nest past the 255 levels it counts.
const SCANNER_DEPTH_ERROR: &str = "recursion limit exceeded";

/// Most structural errors reported at once; each costs one more read of the file.
const MAX_STRUCTURAL_ERRORS: usize = 100;
/// Most text read over all those reads, so that a large file with many errors still fails
/// fast: a few-KiB config gets all its errors, a 16 MiB one its first four.
const MAX_BYTES_READ: usize = 64 << 20;

/// What reading the text into the schema gave.
pub struct Read<T> {
    /// `None` when something outside every recovery unit does not fit (or the YAML is broken).
    pub value: Option<T>,
    /// Every structural problem found, including those of the units skipped in `value`.
    pub errors: Vec<StructuralError>,
}

/// Deserializes `text`, which `locator` has walked, reporting every structural problem with its
/// field path and place: each unknown key (with what `known_keys` allows in its mapping), and
/// the first other problem in each recovery unit (see `recover`), which is then skipped.
pub fn deserialize<T: DeserializeOwned>(
    text: &str,
    locator: &Locator,
    known_keys: fn(&str) -> Option<&'static [&'static str]>,
) -> Read<T> {
    if let Some(too_deep) = &locator.too_deep {
        return Read {
            value: None,
            errors: vec![too_deep.clone()],
        };
    }
    if let Err(error) = byte_order_mark_inside(text) {
        return Read {
            value: None,
            errors: vec![error],
        };
    }
    let mut skip = BTreeSet::new();
    let mut errors: Vec<StructuralError> = Vec::new();
    let mut bytes_read = 0;
    loop {
        bytes_read += text.len();
        let mut ignored = Vec::new();
        let (result, failed) = recover::pass(&skip, || {
            let deserializer = serde_yaml::Deserializer::from_str(text);
            let mut note = |path: serde_ignored::Path<'_>| ignored.push(field_path(&path));
            let deserializer = serde_ignored::Deserializer::new(deserializer, &mut note);
            serde_path_to_error::deserialize(deserializer)
        });
        let error = match result {
            Ok(value) => {
                errors.extend(unknown_keys(&ignored, locator, known_keys));
                return Read {
                    value: Some(value),
                    errors,
                };
            }
            Err(error) => structural(error, text, locator),
        };
        // Reading past a skipped unit can meet the same broken YAML again.
        if errors.last() != Some(&error) {
            errors.push(error);
        }
        match failed {
            Some(unit)
                if errors.len() < MAX_STRUCTURAL_ERRORS
                    && bytes_read + text.len() <= MAX_BYTES_READ =>
            {
                skip.insert(unit);
            }
            _ => {
                errors.extend(unknown_keys(&ignored, locator, known_keys));
                return Read {
                    value: None,
                    errors,
                };
            }
        }
    }
}

/// Deserializes `text` whole, reporting its first structural problem.
#[cfg(test)]
pub fn deserialize_first<T: DeserializeOwned>(text: &str) -> Result<T, StructuralError> {
    let read = deserialize(text, &Locator::new(text), |_| None);
    match (read.value, read.errors.into_iter().next()) {
        (Some(value), None) => Ok(value),
        (_, Some(error)) => Err(error),
        (None, None) => unreachable!("a failed read has an error"),
    }
}

fn structural(
    error: serde_path_to_error::Error<serde_yaml::Error>,
    text: &str,
    locator: &Locator,
) -> StructuralError {
    let field = known_path(&error.path().to_string());
    let inner = error.into_inner();
    // Errors about the document as a whole (several documents, say) come without a place.
    let position = match inner.location() {
        Some(location) => Some(within(
            text,
            Position {
                line: location.line(),
                column: location.column(),
            },
        )),
        None => locator.locate(&field),
    };
    StructuralError {
        field,
        position,
        message: bare_message(&inner.to_string()),
    }
}

/// The keys serde ignored, which are unknown ones: the schema takes them so that they can all
/// be reported, each with the keys `known_keys` allows in its mapping.
fn unknown_keys<'a>(
    ignored: &'a [String],
    locator: &'a Locator,
    known_keys: fn(&str) -> Option<&'static [&'static str]>,
) -> impl Iterator<Item = StructuralError> + 'a {
    ignored.iter().map(move |field| {
        let (mapping, key) = match field.rsplit_once('.') {
            Some((mapping, key)) => (mapping, key),
            None => ("", field.as_str()),
        };
        let message = match known_keys(&without_indexes(mapping)) {
            Some(known) => {
                <serde_yaml::Error as serde::de::Error>::unknown_field(key, known).to_string()
            }
            None => format!("unknown field `{key}`"),
        };
        // A key with no text of its own (YAML's `? ` with nothing after it is a null key) has no
        // place the locator knows: it is reported at the start, so it still has one.
        let position = locator
            .locate_key(field)
            .unwrap_or(Position { line: 1, column: 1 });
        StructuralError {
            field: field.clone(),
            position: Some(position),
            message,
        }
    })
}

/// YAML 1.2 allows a byte-order mark only at the start. yaml_serde takes one anywhere, but the
/// Locator's parser stops there, and would leave every later field without a place.
fn byte_order_mark_inside(text: &str) -> Result<(), StructuralError> {
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    match body.find('\u{feff}') {
        None => Ok(()),
        Some(at) => Err(StructuralError {
            field: String::new(),
            position: Some(end_of(&text[..text.len() - body.len() + at])),
            message:
                "a byte-order mark (U+FEFF) inside the text; YAML allows one only at the start"
                    .to_owned(),
        }),
    }
}

/// The parser puts the end of a text that has no final line break at the start of a line after
/// it, which an editor can't go to: that is the end of the last line.
fn within(text: &str, position: Position) -> Position {
    let end = end_of(text);
    if position.line <= end.line {
        position
    } else {
        end
    }
}

/// Where `text` ends: its last line (YAML breaks lines at CR, LF and CRLF alike), just after its
/// last character.
fn end_of(text: &str) -> Position {
    let breaks = text.replace("\r\n", "\n");
    let last = breaks.rsplit(['\r', '\n']).next().unwrap_or_default();
    Position {
        line: breaks.split(['\r', '\n']).count(),
        column: last.chars().count() + 1,
    }
}

/// `backends[2].servers[0]` as `backends[].servers[]`.
fn without_indexes(path: &str) -> String {
    let mut general = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                general.push_str("[]");
            }
            ']' => in_index = false,
            c if !in_index => general.push(c),
            _ => {}
        }
    }
    general
}

/// serde_ignored's path in `ConfigError`'s syntax.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => match field_path(parent) {
            parent if parent.is_empty() => key.clone(),
            parent => format!("{parent}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

/// The path up to its first unknown (`?`) segment, which is where a syntax error stopped
/// deserialization; serde_path_to_error writes the root as `.`, `ConfigError` as empty.
fn known_path(path: &str) -> String {
    if path == "." {
        return String::new();
    }
    let known: Vec<&str> = path
        .split('.')
        .take_while(|segment| *segment != "?")
        .collect();
    known.join(".")
}

/// yaml_serde's message without what `ConfigError` already shows: the ` at line L column C`
/// place(s) and the `path: ` prefix in its own path syntax.
fn bare_message(message: &str) -> String {
    let mut bare = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(" at line ") {
        bare.push_str(&rest[..start]);
        rest = skip_line_and_column(&rest[start..]);
    }
    bare.push_str(rest);
    // The path prefix is one word before the first colon; serde's own messages have spaces there.
    match bare.split_once(": ") {
        Some((prefix, message)) if !prefix.contains(char::is_whitespace) => message.to_string(),
        _ => bare,
    }
}

/// `rest` starts with ` at line `; returns what follows ` at line L column C`, or `rest` minus
/// that marker when the numbers are not there.
fn skip_line_and_column(rest: &str) -> &str {
    let after_line = rest[" at line ".len()..].trim_start_matches(|c: char| c.is_ascii_digit());
    match after_line.strip_prefix(" column ") {
        Some(column) => column.trim_start_matches(|c: char| c.is_ascii_digit()),
        None => after_line,
    }
}

/// Where the character after `text` is: its line, and its column counted in characters.
pub fn position_after(text: &str) -> Position {
    let line_start = text.rfind('\n').map_or(0, |newline| newline + 1);
    Position {
        line: text.matches('\n').count() + 1,
        column: text[line_start..].chars().count() + 1,
    }
}

/// Maps field paths (`backends[0].servers[1].address`) to where they are written.
#[derive(Debug, Default)]
pub struct Locator {
    positions: HashMap<String, Position>,
    /// Where each mapping key is written, by the field path it names.
    keys: HashMap<String, Position>,
    /// Collections nested deeper than `MAX_DEPTH`, where the walk stopped.
    too_deep: Option<StructuralError>,
}

impl Locator {
    /// Walks the YAML events of the first document in `text`, the only one a config may have.
    /// Text past a syntax error is simply not located.
    pub fn new(text: &str) -> Locator {
        let mut walk = Walk::default();
        for event in saphyr_parser::Parser::new_from_str(text) {
            let (event, span) = match event {
                Ok(event) => event,
                // The scanner counts flow levels in a byte: deeper flow nesting is refused
                // before any event shows it, and would be the slow case of the other parser.
                Err(error) if error.info() == SCANNER_DEPTH_ERROR => {
                    let start = Position {
                        line: error.marker().line(),
                        column: error.marker().col() + 1,
                    };
                    return Locator {
                        too_deep: Some(walk.too_deep(start)),
                        positions: walk.positions,
                        keys: walk.keys,
                    };
                }
                Err(_) => break,
            };
            if event == saphyr_parser::Event::DocumentEnd {
                break;
            }
            let start = Position {
                line: span.start.line(),
                column: span.start.col() + 1,
            };
            walk.event(event, start);
            if walk.stack.len() > MAX_DEPTH {
                return Locator {
                    too_deep: Some(walk.too_deep(start)),
                    positions: walk.positions,
                    keys: walk.keys,
                };
            }
        }
        Locator {
            positions: walk.positions,
            keys: walk.keys,
            too_deep: None,
        }
    }

    /// Where the key naming `field` is written; else where its value or nearest parent is.
    pub fn locate_key(&self, field: &str) -> Option<Position> {
        self.keys.get(field).copied().or_else(|| self.locate(field))
    }

    /// Where `field` is written; for a field left out (a default), where its nearest written
    /// parent is.
    pub fn locate(&self, field: &str) -> Option<Position> {
        let mut field = field;
        loop {
            if let Some(position) = self.positions.get(field) {
                return Some(*position);
            }
            if field.is_empty() {
                return None;
            }
            field = parent(field);
        }
    }
}

fn parent(field: &str) -> &str {
    let cut = if field.ends_with(']') {
        field.rfind('[')
    } else {
        field.rfind('.')
    };
    &field[..cut.unwrap_or(0)]
}

/// State of the event walk: the collections we are inside of, innermost last.
#[derive(Default)]
struct Walk {
    stack: Vec<Frame>,
    positions: HashMap<String, Position>,
    keys: HashMap<String, Position>,
}

/// An open collection. `path` is `None` inside a non-scalar mapping key, which no field path
/// can name.
enum Frame {
    Mapping {
        path: Option<String>,
        key: Option<Key>,
    },
    Sequence {
        path: Option<String>,
        next_index: usize,
    },
}

/// A mapping key whose value comes next.
enum Key {
    Scalar { name: String, position: Position },
    Complex,
}

/// What kind of node an event starts, as far as locating it matters.
enum Node<'a> {
    Scalar(&'a str),
    Collection,
}

impl Walk {
    fn event(&mut self, event: saphyr_parser::Event<'_>, start: Position) {
        use saphyr_parser::Event;
        match event {
            Event::Scalar(value, ..) => {
                self.enter(Node::Scalar(&value), start);
            }
            // An alias is a value written at this place, like a scalar.
            Event::Alias(_) => {
                self.enter(Node::Scalar("*"), start);
            }
            Event::MappingStart(..) => {
                let path = self.enter(Node::Collection, start);
                self.stack.push(Frame::Mapping { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.enter(Node::Collection, start);
                self.stack.push(Frame::Sequence {
                    path,
                    next_index: 0,
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }

    /// The error for nesting past `MAX_DEPTH` at `start`, named by the innermost open
    /// collection that has a field path.
    fn too_deep(&self, start: Position) -> StructuralError {
        let field = (self.stack.iter().rev())
            .find_map(|frame| match frame {
                Frame::Mapping { path, .. } | Frame::Sequence { path, .. } => path.clone(),
            })
            .unwrap_or_default();
        StructuralError {
            field,
            position: Some(start),
            message: format!(
                "collections nested more than {MAX_DEPTH} deep; no setting is nested like this"
            ),
        }
    }

    /// Records a node starting at `start` and returns its field path, `None` for mapping keys.
    fn enter(&mut self, node: Node<'_>, start: Position) -> Option<String> {
        let (path, position) = match self.stack.last_mut() {
            None => (String::new(), start),
            Some(Frame::Sequence { path, next_index }) => {
                let index = *next_index;
                *next_index += 1;
                (format!("{}[{index}]", path.as_ref()?), start)
            }
            Some(Frame::Mapping { path, key }) => match key.take() {
                None => {
                    *key = Some(match node {
                        Node::Scalar(name) => Key::Scalar {
                            name: name.to_string(),
                            position: start,
                        },
                        Node::Collection => Key::Complex,
                    });
                    return None;
                }
                Some(Key::Complex) => return None,
                Some(Key::Scalar { name, position }) => {
                    let path = path.as_ref()?;
                    let child = if path.is_empty() {
                        name
                    } else {
                        format!("{path}.{name}")
                    };
                    // A written value is the thing to point at; a collection or an empty value
                    // is best shown by its key, which is where a reader looks for it.
                    let at = match node {
                        Node::Scalar(value) if !value.is_empty() => start,
                        _ => position,
                    };
                    self.keys.insert(child.clone(), position);
                    (child, at)
                }
            },
        };
        self.positions.insert(path.clone(), position);
        Some(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        name: String,
        size: Option<u32>,
    }

    fn at(line: usize, column: usize) -> Option<Position> {
        Some(Position { line, column })
    }

    const TEXT: &str = "\
top:
  scalar: value
  empty:
  nested:
    - first
    - { key: flow, other: 2 }
    - name: block
      deep: [a, b]
";

    #[test]
    fn locates_scalar_values_at_the_value() {
        let locator = Locator::new(TEXT);
        assert_eq!(locator.locate("top.scalar"), at(2, 11));
        assert_eq!(locator.locate("top.nested[0]"), at(5, 7));
        assert_eq!(locator.locate("top.nested[1].key"), at(6, 14));
        assert_eq!(locator.locate("top.nested[1].other"), at(6, 27));
        assert_eq!(locator.locate("top.nested[2].deep[1]"), at(8, 17));
    }

    #[test]
    fn locates_collections_and_empty_values_at_their_key() {
        let locator = Locator::new(TEXT);
        assert_eq!(locator.locate("top"), at(1, 1));
        assert_eq!(locator.locate("top.empty"), at(3, 3));
        assert_eq!(locator.locate("top.nested"), at(4, 3));
        assert_eq!(locator.locate("top.nested[2].deep"), at(8, 7));
    }

    #[test]
    fn locates_sequence_items_at_their_start() {
        let locator = Locator::new(TEXT);
        assert_eq!(locator.locate("top.nested[1]"), at(6, 7));
        assert_eq!(locator.locate("top.nested[2]"), at(7, 7));
    }

    #[test]
    fn falls_back_to_the_nearest_written_parent() {
        let locator = Locator::new(TEXT);
        assert_eq!(locator.locate("top.nested[2].missing"), at(7, 7));
        assert_eq!(locator.locate("top.nested[9].key"), at(4, 3));
        assert_eq!(locator.locate("absent"), at(1, 1));
    }

    #[test]
    fn finds_nothing_in_an_empty_document() {
        assert_eq!(Locator::new("").locate("anything"), None);
    }

    #[test]
    fn skips_complex_keys_without_losing_its_place() {
        let locator = Locator::new("? [a, b]\n: skipped\nafter: 1\n");
        assert_eq!(locator.locate("after"), at(3, 8));
        assert_eq!(locator.locate("a"), at(1, 1));
    }

    #[test]
    fn keeps_what_it_located_before_a_syntax_error() {
        let locator = Locator::new("first: 1\nsecond: [\n");
        assert_eq!(locator.locate("first"), at(1, 8));
    }

    #[test]
    fn deserializes_text_that_fits() {
        let outer: Outer =
            deserialize_first("items:\n  - { name: a, size: 3 }\n  - name: b\n").unwrap();
        let items: Vec<(&str, Option<u32>)> = outer
            .items
            .iter()
            .map(|item| (item.name.as_str(), item.size))
            .collect();
        assert_eq!(items, [("a", Some(3)), ("b", None)]);
    }

    #[test]
    fn reports_an_unknown_key_at_the_key_with_its_path() {
        let error =
            deserialize_first::<Outer>("items:\n  - name: a\n    colour: red\n").unwrap_err();
        assert_eq!(
            error,
            StructuralError {
                field: "items[0].colour".to_string(),
                position: at(3, 5),
                message: "unknown field `colour`, expected `name` or `size`".to_string(),
            }
        );
    }

    #[test]
    fn reports_a_missing_key_at_its_mapping() {
        let error = deserialize_first::<Outer>("items:\n  - name: a\n  - size: 1\n").unwrap_err();
        assert_eq!(error.field, "items[1]");
        assert_eq!(error.position, at(3, 5));
        assert_eq!(error.message, "missing field `name`");
    }

    #[test]
    fn reports_a_wrong_type_at_the_value() {
        let error = deserialize_first::<Outer>("items:\n  - { name: a, size: big }\n").unwrap_err();
        assert_eq!(error.field, "items[0].size");
        assert_eq!(error.position, at(2, 22));
        assert_eq!(error.message, "invalid type: string \"big\", expected u32");
    }

    #[test]
    fn reports_a_syntax_error_without_an_unknown_path_segment() {
        let error = deserialize_first::<Outer>("items:\n  - name: a: b\n").unwrap_err();
        assert_eq!(error.field, "items[0]");
        assert_eq!(error.position, at(2, 12));
        assert_eq!(
            error.message,
            "mapping values are not allowed in this context"
        );
    }

    #[test]
    fn places_a_whole_document_error_at_the_start() {
        let error = deserialize_first::<Outer>("items: []\n---\nitems: []\n").unwrap_err();
        assert_eq!(error.field, "");
        assert_eq!(error.position, at(1, 1));
        assert!(
            error.message.contains("more than one document"),
            "{}",
            error.message
        );
    }

    /// A top level that takes unknown keys, with recovery units, like the config file's.
    #[derive(Debug, Deserialize)]
    struct Top {
        items: Vec<recover::Unit<Item>>,
    }

    fn top_keys(path: &str) -> Option<&'static [&'static str]> {
        path.is_empty().then(recover::field_names::<Top>)
    }

    #[test]
    fn reads_paths_without_their_indexes() {
        assert_eq!(
            without_indexes("backends[12].servers[0]"),
            "backends[].servers[]"
        );
        assert_eq!(without_indexes(""), "");
    }

    #[test]
    fn reports_each_units_first_problem_and_every_unknown_top_level_key() {
        let text = "items:\n  - { name: a, size: x }\n  - { name: b, colour: red, size: y }\n  \
                    - { name: c }\nextra: 1\nmore: [1]\n";
        let read = deserialize::<Top>(text, &Locator::new(text), top_keys);
        let errors: Vec<(String, Option<Position>)> = (read.errors.iter())
            .map(|error| (error.field.clone(), error.position))
            .collect();
        assert_eq!(
            errors,
            [
                ("items[0].size".to_string(), at(2, 22)),
                ("items[1].colour".to_string(), at(3, 16)),
                ("extra".to_string(), at(5, 1)),
                ("more".to_string(), at(6, 1)),
            ]
        );
        assert_eq!(
            read.errors[2].message,
            "unknown field `extra`, expected `items`"
        );
        let items = read.value.expect("the top level fits").items;
        assert!(
            matches!(&items[0], recover::Unit::Skipped { name } if name.as_deref() == Some("a"))
        );
        assert!(matches!(&items[1], recover::Unit::Skipped { .. }));
        assert!(matches!(&items[2], recover::Unit::Read(Item { name, size: None }) if name == "c"));
    }

    #[test]
    fn stops_at_a_problem_outside_every_unit() {
        let text = "items: 5\nextra: 1\n";
        let read = deserialize::<Top>(text, &Locator::new(text), top_keys);
        assert!(read.value.is_none());
        let fields: Vec<&str> = read.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["items"]);
    }

    #[test]
    fn places_the_character_after_a_text() {
        assert_eq!(position_after(""), Position { line: 1, column: 1 });
        assert_eq!(position_after("ab\ncafé"), Position { line: 2, column: 5 });
        assert_eq!(position_after("ab\n"), Position { line: 2, column: 1 });
    }

    #[test]
    fn strips_places_and_the_path_prefix_from_messages() {
        assert_eq!(
            bare_message("items[0]: missing field `name` at line 3 column 5"),
            "missing field `name`"
        );
        assert_eq!(
            bare_message("did not find expected key at line 2 column 1, while parsing a block mapping at line 1 column 1"),
            "did not find expected key, while parsing a block mapping"
        );
        assert_eq!(
            bare_message("invalid type: string \"x\", expected u32"),
            "invalid type: string \"x\", expected u32"
        );
    }

    #[test]
    fn cuts_paths_at_the_first_unknown_segment() {
        assert_eq!(known_path("."), "");
        assert_eq!(known_path("node.?"), "node");
        assert_eq!(known_path("a[1].b.?.c"), "a[1].b");
        assert_eq!(known_path("a[1].b"), "a[1].b");
    }
}
