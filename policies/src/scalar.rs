//! Validating deserializers that raise their error *while* the parser stands on the value, so
//! it stamps the value's own line, column and field path on the message (an error raised after
//! `String::deserialize` returns would be stamped with the enclosing mapping's position).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, SeqAccess, Visitor};

/// Deserializes a string and checks it with `parse`.
pub(crate) fn string<'de, D, T>(
    deserializer: D,
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    deserializer.deserialize_str(StrVisitor { expecting, parse })
}

struct StrVisitor<T> {
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
}

impl<'de, T> Visitor<'de> for StrVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.parse)(v).map_err(E::custom)
    }
}

/// Deserializes an integer and checks it with `check`.
pub(crate) fn integer<'de, D, T>(
    deserializer: D,
    expecting: &'static str,
    check: fn(i128) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let visitor = NumberVisitor {
        expecting,
        check: Check::Integer(check),
    };
    deserializer.deserialize_i64(visitor)
}

/// Deserializes a number (an integer is taken as its value) and checks it with `check`.
pub(crate) fn number<'de, D, T>(
    deserializer: D,
    expecting: &'static str,
    check: fn(f64) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let visitor = NumberVisitor {
        expecting,
        check: Check::Number(check),
    };
    deserializer.deserialize_f64(visitor)
}

/// What a number is checked with: integers only, or any number.
enum Check<T> {
    Integer(fn(i128) -> Result<T, String>),
    Number(fn(f64) -> Result<T, String>),
}

struct NumberVisitor<T> {
    expecting: &'static str,
    check: Check<T>,
}

impl<T> NumberVisitor<T> {
    // Integers are exact in f64 far beyond any bound a policy writes.
    #[allow(clippy::cast_precision_loss)]
    fn integer<E: de::Error>(&self, v: i128) -> Result<T, E> {
        match self.check {
            Check::Integer(check) => check(v),
            Check::Number(check) => check(v as f64),
        }
        .map_err(E::custom)
    }
}

impl<'de, T> Visitor<'de> for NumberVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        self.integer(i128::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        self.integer(i128::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        match self.check {
            Check::Number(check) => check(v).map_err(E::custom),
            Check::Integer(_) => Err(E::invalid_type(de::Unexpected::Float(v), &self)),
        }
    }
}

/// Deserializes a sequence of `T`, refusing an empty one with `empty_message`.
pub(crate) fn non_empty_seq<'de, D, T>(
    deserializer: D,
    expecting: &'static str,
    empty_message: &'static str,
) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: de::Deserialize<'de>,
{
    deserializer.deserialize_seq(SeqVisitor {
        expecting,
        empty_message,
        item: PhantomData,
    })
}

struct SeqVisitor<T> {
    expecting: &'static str,
    empty_message: &'static str,
    item: PhantomData<T>,
}

impl<'de, T: de::Deserialize<'de>> Visitor<'de> for SeqVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element()? {
            out.push(item);
        }
        if out.is_empty() {
            Err(de::Error::custom(self.empty_message))
        } else {
            Ok(out)
        }
    }
}
