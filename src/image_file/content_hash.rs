//! The identity of an image's content: what scores, ratings, comparisons and favorites are keyed
//! by, so they follow a file through moves and renames. One hashing function for the whole app.

use std::fmt;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Serialize};

/// BLAKE3 of a file's bytes as 64 lowercase hex digits (the form stored since schema v1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContentHash(String);

/// Hex digits in a content hash.
const HEX_LEN: usize = 64;

impl ContentHash {
    /// The hash of a file's whole content: the one place content is hashed.
    pub fn of(bytes: &[u8]) -> Self {
        Self(blake3::hash(bytes).to_hex().to_string())
    }

    /// Parses a stored or typed hash; `None` unless it is 64 hex digits (case folded).
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == HEX_LEN && text.bytes().all(|b| b.is_ascii_hexdigit())).then(|| Self(text.to_ascii_lowercase()))
    }

    /// The hex text, as stored in the database and shown to users.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ContentHash {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text).ok_or_else(|| format!("not a content hash: {text:?}"))
    }
}

impl From<ContentHash> for String {
    fn from(hash: ContentHash) -> Self {
        hash.0
    }
}

impl ToSql for ContentHash {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0.as_str()))
    }
}

impl FromSql for ContentHash {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        Self::parse(text).ok_or_else(|| FromSqlError::Other(format!("not a content hash: {text:?}").into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_blake3_hex_and_parse_back() {
        let hash = ContentHash::of(b"abc");
        assert_eq!(hash.as_str(), blake3::hash(b"abc").to_hex().as_str());
        assert_eq!(ContentHash::parse(&hash.as_str().to_uppercase()), Some(hash.clone()));
        assert_eq!(ContentHash::parse("xyz"), None);
        assert_eq!(ContentHash::parse(&"g".repeat(64)), None);
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(serde_json::from_str::<ContentHash>(&json).unwrap(), hash);
        assert!(serde_json::from_str::<ContentHash>("\"nope\"").is_err());
    }

    #[test]
    fn hashes_round_trip_through_sqlite() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let hash = ContentHash::of(b"image");
        let back: ContentHash = conn.query_row("SELECT ?1", [&hash], |r| r.get(0)).unwrap();
        assert_eq!(back, hash);
        let bad: rusqlite::Result<ContentHash> = conn.query_row("SELECT 'nope'", [], |r| r.get(0));
        assert!(bad.is_err());
    }
}
