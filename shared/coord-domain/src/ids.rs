//! Identifiers and short validated strings. Each parses and validates on the way in, so
//! code that holds one never has to check it again.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// An identifier or reference that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} `{input}`: {reason}")]
pub struct ParseIdError {
    pub what: &'static str,
    pub input: String,
    pub reason: &'static str,
}

fn err(what: &'static str, input: &str, reason: &'static str) -> ParseIdError {
    ParseIdError {
        what,
        input: input.chars().take(80).collect(),
        reason,
    }
}

macro_rules! string_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                raw.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// An OpenAPI string schema for a newtype that travels as a string.
#[cfg(feature = "openapi")]
macro_rules! string_schema {
    ($t:ty, $format:expr, $desc:literal) => {
        impl utoipa::PartialSchema for $t {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .format($format)
                    .description(Some($desc))
                    .into()
            }
        }
        impl utoipa::ToSchema for $t {}
    };
}
#[cfg(not(feature = "openapi"))]
macro_rules! string_schema {
    ($($t:tt)*) => {};
}
pub(crate) use string_schema;

/// A JSON Schema (schemars) string schema for a newtype that travels as a string.
#[cfg(feature = "schema")]
macro_rules! json_string_schema {
    ($t:ty, $format:expr, $desc:expr) => {
        impl schemars::JsonSchema for $t {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($t).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let format: Option<&str> = $format;
                match format {
                    Some(format) => schemars::json_schema!({
                        "type": "string", "format": format, "description": $desc
                    }),
                    None => schemars::json_schema!({ "type": "string", "description": $desc }),
                }
            }
        }
    };
}
#[cfg(not(feature = "schema"))]
macro_rules! json_string_schema {
    ($($t:tt)*) => {};
}
pub(crate) use json_string_schema;

macro_rules! uuid_id {
    ($(#[$m:meta])* $name:ident, $what:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a UUID.
            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
            /// The UUID inside.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
            /// Parses the canonical hyphenated form; the nil UUID is refused.
            pub fn parse(input: &str) -> Result<Self, ParseIdError> {
                input.parse()
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(input: &str) -> Result<Self, ParseIdError> {
                let id = Uuid::try_parse(input).map_err(|_| err($what, input, "not a UUID"))?;
                if id.is_nil() {
                    return Err(err($what, input, "the nil UUID is not an identifier"));
                }
                Ok(Self(id))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        string_serde!($name);
        string_schema!(
            $name,
            Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(utoipa::openapi::schema::KnownFormat::Uuid)),
            $what
        );
        json_string_schema!($name, Some("uuid"), $what);
    };
}

uuid_id!(
    /// Identifies one inspection or supervision (chosen by the office that schedules it).
    InspectionId,
    "inspection id"
);
uuid_id!(
    /// Identifies one information exchange.
    ExchangeId,
    "exchange id"
);
uuid_id!(
    /// Identifies one discipline case.
    CaseId,
    "discipline case id"
);

/// A district-level unit's slug, e.g. `long-xuyen`: lowercase ASCII letters and digits
/// in hyphen-separated words, at most 48 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnitId(String);

impl UnitId {
    pub fn parse(input: &str) -> Result<Self, ParseIdError> {
        input.parse()
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for UnitId {
    type Err = ParseIdError;
    fn from_str(input: &str) -> Result<Self, ParseIdError> {
        let valid_chars = input
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if input.is_empty() || input.len() > 48 {
            return Err(err("unit id", input, "must be 1 to 48 characters"));
        }
        if !valid_chars || input.starts_with('-') || input.ends_with('-') || input.contains("--") {
            return Err(err(
                "unit id",
                input,
                "must be lowercase ASCII words joined by single hyphens",
            ));
        }
        Ok(Self(input.to_owned()))
    }
}

impl fmt::Display for UnitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_serde!(UnitId);
string_schema!(UnitId, None, "district-level unit slug, e.g. long-xuyen");
json_string_schema!(UnitId, None, "district-level unit slug, e.g. long-xuyen");

/// A Party congress term, written `2020-2025`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TermId {
    pub start_year: u16,
    pub end_year: u16,
}

impl TermId {
    pub fn parse(input: &str) -> Result<Self, ParseIdError> {
        input.parse()
    }
}

impl FromStr for TermId {
    type Err = ParseIdError;
    fn from_str(input: &str) -> Result<Self, ParseIdError> {
        let (a, b) = input
            .split_once('-')
            .ok_or_else(|| err("term", input, "expected YYYY-YYYY"))?;
        let year = |s: &str| -> Result<u16, ParseIdError> {
            if s.len() != 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err("term", input, "expected YYYY-YYYY"));
            }
            s.parse()
                .map_err(|_| err("term", input, "expected YYYY-YYYY"))
        };
        let (start_year, end_year) = (year(a)?, year(b)?);
        if end_year <= start_year {
            return Err(err(
                "term",
                input,
                "the end year must come after the start year",
            ));
        }
        Ok(Self {
            start_year,
            end_year,
        })
    }
}

impl fmt::Display for TermId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start_year, self.end_year)
    }
}
string_serde!(TermId);
string_schema!(TermId, None, "Party congress term, e.g. 2020-2025");
json_string_schema!(TermId, None, "Party congress term, e.g. 2020-2025");

macro_rules! text_ref {
    ($(#[$m:meta])* $name:ident, $what:literal, $max:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(input: &str) -> Result<Self, ParseIdError> {
                input.parse()
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(input: &str) -> Result<Self, ParseIdError> {
                let trimmed = input.trim();
                if trimmed.is_empty() {
                    return Err(err($what, input, "must not be empty"));
                }
                if trimmed.chars().count() > $max {
                    return Err(err($what, input, concat!("must be at most ", $max, " characters")));
                }
                if trimmed.chars().any(char::is_control) {
                    return Err(err($what, input, "must not contain control characters"));
                }
                Ok(Self(trimmed.to_owned()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        string_serde!($name);
        string_schema!($name, None, $what);
        json_string_schema!($name, None, $what);
    };
}

text_ref!(
    /// A document reference as printed on it, e.g. `125-KL/ĐUCA`.
    Reference,
    "document reference",
    120
);
text_ref!(
    /// Free text a person wrote: a topic line, a summary, a reason.
    Text,
    "text",
    4000
);
text_ref!(
    /// The name of a Party organization below the district police committee, e.g.
    /// `Chi bộ Đội Cảnh sát giao thông`.
    OrganizationName,
    "organization name",
    200
);
text_ref!(
    /// An opaque reference to a Party member (a file number, not a name: the log is
    /// read by analytics consumers and must not spread personal data).
    MemberRef,
    "member reference",
    64
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_ids_are_slugs() {
        assert!(UnitId::parse("long-xuyen").is_ok());
        assert!(UnitId::parse("tinh-bien").is_ok());
        for bad in [
            "",
            "Long-Xuyen",
            "long xuyen",
            "-a",
            "a-",
            "a--b",
            "châu-đốc",
        ] {
            assert!(UnitId::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn terms_parse_and_print() {
        let t = TermId::parse("2020-2025").unwrap();
        assert_eq!((t.start_year, t.end_year), (2020, 2025));
        assert_eq!(t.to_string(), "2020-2025");
        for bad in ["2020", "2025-2020", "20-25", "2020-2020", "abcd-2025"] {
            assert!(TermId::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn uuid_ids_refuse_nil_and_garbage() {
        assert!(InspectionId::parse("00000000-0000-0000-0000-000000000000").is_err());
        assert!(InspectionId::parse("not-a-uuid").is_err());
        let id = Uuid::now_v7();
        assert_eq!(InspectionId::parse(&id.to_string()).unwrap().as_uuid(), id);
    }

    #[test]
    fn references_are_trimmed_and_bounded() {
        assert_eq!(
            Reference::parse("  125-KL/ĐUCA ").unwrap().as_str(),
            "125-KL/ĐUCA"
        );
        assert!(Reference::parse("   ").is_err());
        assert!(Reference::parse(&"x".repeat(121)).is_err());
        assert!(Reference::parse("a\nb").is_err());
    }

    #[test]
    fn ids_round_trip_through_json() {
        let unit: UnitId = serde_json::from_str("\"chau-doc\"").unwrap();
        assert_eq!(serde_json::to_string(&unit).unwrap(), "\"chau-doc\"");
        let bad: Result<UnitId, _> = serde_json::from_str("\"Châu Đốc\"");
        assert!(bad.is_err());
    }
}
