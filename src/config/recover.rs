//! Recovery units: the parts of the file that are read on their own terms (each top-level
//! section, each frontend, backend and VRRP instance), so that one that does not fit the schema
//! is reported and skipped instead of hiding every error after it.
//!
//! serde stops at the first error, and the YAML deserializer cannot resume inside a document.
//! So the file is read again after each such error, with every unit that failed so far skipped.
//! Units are told apart by the order they are met in, which skipping one does not change, since
//! units never nest.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;

/// A part of the file read on its own, or skipped because it does not fit the schema (that
/// error is reported on its own).
#[derive(Debug)]
pub enum Unit<T> {
    Read(T),
    /// `name` is the unit's `name` key when it has a string one, so that references to it by
    /// name are not reported as unknown as well.
    Skipped {
        name: Option<String>,
    },
}

impl<T> Unit<T> {
    pub fn read(self) -> Option<T> {
        match self {
            Unit::Read(value) => Some(value),
            Unit::Skipped { .. } => None,
        }
    }
}

/// The state of one read of the file, on the thread doing it.
#[derive(Default)]
struct Pass {
    skip: BTreeSet<usize>,
    next: usize,
    /// The unit the read failed in, if it failed in one.
    failed: Option<usize>,
}

thread_local! {
    static PASS: RefCell<Pass> = RefCell::default();
}

/// Runs one read of the file with the units in `skip` skipped; returns its result and the unit
/// it failed in, if any.
pub fn pass<T, E>(
    skip: &BTreeSet<usize>,
    read: impl FnOnce() -> Result<T, E>,
) -> (Result<T, E>, Option<usize>) {
    PASS.with_borrow_mut(|pass| {
        *pass = Pass {
            skip: skip.clone(),
            ..Pass::default()
        }
    });
    let result = read();
    let failed = PASS.with_borrow_mut(|pass| std::mem::take(pass).failed);
    (result, failed)
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Unit<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (id, skipped) = PASS.with_borrow_mut(|pass| {
            let id = pass.next;
            pass.next += 1;
            (id, pass.skip.contains(&id))
        });
        if skipped {
            let name = deserializer.deserialize_any(NodeVisitor { unit: true })?;
            return Ok(Unit::Skipped { name });
        }
        T::deserialize(deserializer)
            .map(Unit::Read)
            .inspect_err(|_| {
                PASS.with_borrow_mut(|pass| {
                    pass.failed.get_or_insert(id);
                })
            })
    }
}

/// Reads past any node. `unit`: the node is a unit, whose `name` is returned; otherwise a
/// string scalar's text is.
struct NodeVisitor {
    unit: bool,
}

/// Any node, as its text when it is a string scalar.
struct Node(Option<String>);

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(NodeVisitor { unit: false })
            .map(Node)
    }
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok((!self.unit).then(|| value.to_owned()))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<Node>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut name = None;
        while let Some(Node(key)) = map.next_key()? {
            let Node(value) = map.next_value()?;
            if self.unit && key.as_deref() == Some("name") {
                name = value;
            }
        }
        Ok(name)
    }
}

/// The field names of struct `T`, as serde knows them.
pub fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut probe = FieldsProbe(&[]);
    let _ = T::deserialize(&mut probe);
    probe.0
}

/// A deserializer that only notes the field names of the struct asked of it.
struct FieldsProbe(&'static [&'static str]);

impl<'de> Deserializer<'de> for &mut FieldsProbe {
    type Error = de::value::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = fields;
        Err(de::Error::custom("only the field names were wanted"))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_structs_field_names() {
        assert_eq!(field_names::<Item>(), ["name", "size"]);
    }

    #[derive(Debug, serde::Deserialize)]
    struct List {
        items: Vec<Unit<Item>>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        name: String,
        size: u32,
    }

    fn read(text: &str, skip: &[usize]) -> (Result<List, String>, Option<usize>) {
        let skip = skip.iter().copied().collect();
        let (result, failed) = pass(&skip, || {
            serde_yaml::from_str::<List>(text).map_err(|e| e.to_string())
        });
        (result, failed)
    }

    const TEXT: &str = "items:\n  - { name: a, size: 1 }\n  - { name: b, size: big }\n  \
                        - { name: c, size: 3, colour: red }\n  - { name: d, size: 4 }\n";

    #[test]
    fn names_the_unit_a_read_failed_in() {
        let (result, failed) = read(TEXT, &[]);
        assert!(result.is_err());
        assert_eq!(failed, Some(1));
        let (result, failed) = read(TEXT, &[1]);
        assert!(result.unwrap_err().contains("colour"));
        assert_eq!(failed, Some(2));
    }

    #[test]
    fn skips_units_keeping_their_names_and_reads_the_rest() {
        let (result, failed) = read(TEXT, &[1, 2]);
        assert_eq!(failed, None);
        let items = result.unwrap().items;
        let summary: Vec<String> = items
            .into_iter()
            .map(|item| match item {
                Unit::Read(item) => format!("{}={}", item.name, item.size),
                Unit::Skipped { name } => format!("skipped {name:?}"),
            })
            .collect();
        assert_eq!(
            summary,
            ["a=1", "skipped Some(\"b\")", "skipped Some(\"c\")", "d=4"]
        );
    }
}
