//! A push body decoded straight into [`RawRecord`]s: serde visits the array and each object
//! once and writes every value into its record's cell, with no JSON tree in between (the
//! tree cost two allocations per key and value, 280,000 per 10,000-record push). The
//! answers are those of a tree walk in key order: every bad record by index, a key's error
//! named by the key, a repeated key's last value the one that counts.

use std::fmt;

use portcullis_core::registry::{RawRecord, COLUMNS, OPTIONAL_COLUMNS};
use portcullis_core::service::registry_load::too_many;
use portcullis_core::service::{RecordError, MAX_PUSH_RECORDS};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::Bad;

/// The body as records, or what is wrong with it (never echoing a value: it could be a
/// card number).
pub(super) fn decode(body: &[u8]) -> Result<Vec<RawRecord>, Bad> {
    let decoded = {
        let mut de = serde_json::Deserializer::from_slice(body);
        let decoded = de.deserialize_any(BodyVisitor).and_then(|d| {
            de.end()?;
            Ok(d)
        });
        decoded.map_err(|e| {
            Bad::Body(format!(
                "The body is not valid JSON (line {}, column {}).",
                e.line(),
                e.column()
            ))
        })?
    };
    let Some(items) = decoded else {
        return Err(Bad::Body(
            "The body must be a JSON array of records.".into(),
        ));
    };
    if items.count > MAX_PUSH_RECORDS {
        return Err(Bad::Records(vec![too_many(items.count)]));
    }
    if items.errors.is_empty() {
        Ok(items.records)
    } else {
        Err(Bad::Records(items.errors))
    }
}

/// A decoded array: its records (while there are at most [`MAX_PUSH_RECORDS`]), how many
/// items it had, and the errors of the bad ones.
struct Items {
    records: Vec<RawRecord>,
    count: usize,
    errors: Vec<RecordError>,
}

/// The top level: `Some` for an array, `None` for any other JSON value.
struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = Option<Items>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Items {
            records: Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_PUSH_RECORDS)),
            count: 0,
            errors: Vec::new(),
        };
        loop {
            if items.count >= MAX_PUSH_RECORDS {
                // Too many: the rest is only counted (the answer says how many).
                if seq.next_element::<IgnoredAny>()?.is_none() {
                    break;
                }
                items.count += 1;
                continue;
            }
            let seed = ItemSeed {
                index: items.count,
                errors: &mut items.errors,
            };
            match seq.next_element_seed(seed)? {
                None => break,
                Some(Some(raw)) => items.records.push(raw),
                Some(None) => {}
            }
            items.count += 1;
        }
        Ok(Some(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// One item of the array: its record when it is an object whose every key and value is
/// good; else its errors go to `errors` and it decodes to `None`.
struct ItemSeed<'a> {
    index: usize,
    errors: &'a mut Vec<RecordError>,
}

impl<'de> DeserializeSeed<'de> for ItemSeed<'_> {
    type Value = Option<RawRecord>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl ItemSeed<'_> {
    fn not_object(self) -> Option<RawRecord> {
        self.errors.push(RecordError {
            index: self.index,
            field: String::new(),
            message: "must be an object with the registry columns as keys".into(),
        });
        None
    }
}

impl<'de> Visitor<'de> for ItemSeed<'_> {
    type Value = Option<RawRecord>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a registry record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut raw = RawRecord::default();
        // (key, error) of this record, at most one per key: a repeated key's last value
        // decides, as in a JSON object read into a map.
        let mut bad: Vec<(String, RecordError)> = Vec::new();
        while let Some(key) = map.next_key::<Key>()? {
            let cell = map.next_value::<Cell>()?;
            let (cell, key) = match (cell, key) {
                (Cell::Text(text), Key::Column(c, name)) => {
                    if !bad.is_empty() {
                        bad.retain(|(k, _)| k != name);
                    }
                    *cell_mut(&mut raw, c) = text;
                    continue;
                }
                other => other,
            };
            let name = key.into_name();
            bad.retain(|(k, _)| *k != name);
            let error = match cell {
                Cell::Other => RecordError {
                    index: self.index,
                    field: name.clone(),
                    message: "must be a string or a number".into(),
                },
                Cell::Text(_) => RecordError {
                    index: self.index,
                    field: String::new(),
                    message: format!(
                        "unknown key (the keys are {}, {})",
                        COLUMNS.join(", "),
                        OPTIONAL_COLUMNS.join(", ")
                    ),
                },
            };
            bad.push((name, error));
        }
        if bad.is_empty() {
            return Ok(Some(raw));
        }
        // In key order, as a walk over the object's keys would give them.
        bad.sort_by(|a, b| a.0.cmp(&b.0));
        self.errors.extend(bad.into_iter().map(|(_, e)| e));
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(self.not_object())
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(self.not_object())
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(self.not_object())
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(self.not_object())
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(self.not_object())
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(self.not_object())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(self.not_object())
    }
}

/// A record's cell by column: [`COLUMNS`] then [`OPTIONAL_COLUMNS`], in their order.
fn cell_mut(raw: &mut RawRecord, column: usize) -> &mut String {
    match column {
        0 => &mut raw.account_type,
        1 => &mut raw.number,
        2 => &mut raw.verification,
        3 => &mut raw.expiry,
        4 => &mut raw.holder_name,
        5 => &mut raw.email,
        6 => &mut raw.phone,
        7 => &mut raw.product,
        8 => &mut raw.balance,
        9 => &mut raw.credit_limit,
        10 => &mut raw.payment_due_date,
        11 => &mut raw.minimum_due,
        12 => &mut raw.status,
        _ => &mut raw.replaces,
    }
}

/// A record's key: a column (its index for [`cell_mut`] and its name; no allocation) or
/// an unknown name.
enum Key {
    Column(usize, &'static str),
    Unknown(String),
}

impl Key {
    fn into_name(self) -> String {
        match self {
            Key::Column(_, name) => name.to_owned(),
            Key::Unknown(name) => name,
        }
    }
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }

            fn visit_str<E>(self, key: &str) -> Result<Key, E> {
                Ok(
                    match COLUMNS
                        .iter()
                        .chain(OPTIONAL_COLUMNS.iter())
                        .enumerate()
                        .find(|(_, c)| **c == key)
                    {
                        Some((c, name)) => Key::Column(c, name),
                        None => Key::Unknown(key.to_owned()),
                    },
                )
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A value: its text (a string as it is, a number as its JSON text, null as empty) or
/// anything else (an error).
enum Cell {
    Text(String),
    Other,
}

impl<'de> serde::Deserialize<'de> for Cell {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CellVisitor;
        impl<'de> Visitor<'de> for CellVisitor {
            type Value = Cell;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a number")
            }

            fn visit_str<E>(self, s: &str) -> Result<Cell, E> {
                Ok(Cell::Text(s.to_owned()))
            }

            fn visit_string<E>(self, s: String) -> Result<Cell, E> {
                Ok(Cell::Text(s))
            }

            fn visit_i64<E>(self, n: i64) -> Result<Cell, E> {
                Ok(Cell::Text(serde_json::Number::from(n).to_string()))
            }

            fn visit_u64<E>(self, n: u64) -> Result<Cell, E> {
                Ok(Cell::Text(serde_json::Number::from(n).to_string()))
            }

            fn visit_f64<E>(self, n: f64) -> Result<Cell, E> {
                // serde_json never hands a non-finite number over.
                Ok(serde_json::Number::from_f64(n)
                    .map_or(Cell::Other, |n| Cell::Text(n.to_string())))
            }

            fn visit_unit<E>(self) -> Result<Cell, E> {
                Ok(Cell::Text(String::new()))
            }

            fn visit_bool<E>(self, _: bool) -> Result<Cell, E> {
                Ok(Cell::Other)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Cell, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Cell::Other)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Cell, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Cell::Other)
            }
        }
        deserializer.deserialize_any(CellVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(body: &str) -> Vec<(usize, String, String)> {
        match decode(body.as_bytes()) {
            Err(Bad::Records(errors)) => errors
                .into_iter()
                .map(|e| (e.index, e.field, e.message))
                .collect(),
            Err(Bad::Body(detail)) => panic!("body error: {detail}"),
            Ok(_) => panic!("decoded"),
        }
    }

    #[test]
    fn values_land_in_their_cells() {
        let records = match decode(
            br#"[{"number": 4111111111111111, "balance": 12.5, "phone": null,
                 "holder_name": "A \"B\"", "status": "closed"}, {}]"#,
        ) {
            Ok(r) => r,
            Err(_) => panic!("not decoded"),
        };
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].number, "4111111111111111");
        assert_eq!(records[0].balance, "12.5");
        assert_eq!(records[0].phone, "");
        assert_eq!(records[0].holder_name, "A \"B\"");
        assert_eq!(records[0].status, "closed");
        assert_eq!(records[1].number, "");
    }

    #[test]
    fn bad_items_and_keys_are_named_in_key_order() {
        let got = errors(r#"[{"zz": "1", "number": true}, 3, {"number": [1], "number": "4"}]"#);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!((got[0].0, got[0].1.as_str()), (0, "number"));
        assert_eq!(got[0].2, "must be a string or a number");
        assert_eq!((got[1].0, got[1].1.as_str()), (0, ""));
        assert!(got[1].2.starts_with("unknown key"), "{}", got[1].2);
        assert_eq!((got[2].0, got[2].1.as_str()), (1, ""));
        assert!(got[2].2.starts_with("must be an object"), "{}", got[2].2);
    }

    #[test]
    fn not_an_array_or_not_json_is_a_body_error() {
        for body in [r#"{"a": [1]}"#, "3", "\"x\"", "[1,", "[] x"] {
            assert!(
                matches!(decode(body.as_bytes()), Err(Bad::Body(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn too_many_counts_them_all() {
        let body = format!("[{}{{}}]", "{},".repeat(MAX_PUSH_RECORDS + 2));
        let got = errors(&body);
        assert_eq!(got.len(), 1);
        assert!(
            got[0].2.ends_with(&format!("{}", MAX_PUSH_RECORDS + 3)),
            "{}",
            got[0].2
        );
    }
}
