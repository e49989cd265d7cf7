//! Business dates on the way in: only full ISO 8601 calendar dates (`YYYY-MM-DD`) are
//! accepted, and a refusal says what the value was, so that with the field's path in
//! front (the command decoder adds it) an error reads
//! "`concluded_on`: 2023-02-30 is not a valid date".

use serde::{Deserialize, Deserializer};

use crate::Date;

/// Parses `YYYY-MM-DD` strictly: four-digit year, two-digit month and day, a real day.
pub fn parse_iso(input: &str) -> Result<Date, String> {
    let shown: String = input.chars().take(40).collect();
    let b = input.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shaped {
        return Err(format!(
            "{shown} is not a valid date: only full ISO 8601 dates (YYYY-MM-DD) are accepted"
        ));
    }
    Date::parse_from_str(input, "%Y-%m-%d").map_err(|_| format!("{shown} is not a valid date"))
}

/// `#[serde(deserialize_with = "crate::date::iso")]` for a `Date` field.
pub fn iso<'de, D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
    let raw = String::deserialize(d)?;
    parse_iso(&raw).map_err(serde::de::Error::custom)
}

/// `#[serde(default, deserialize_with = "crate::date::iso_opt")]` for an `Option<Date>`.
pub fn iso_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(raw) => parse_iso(&raw).map(Some).map_err(serde::de::Error::custom),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_full_iso_dates_are_accepted_and_errors_show_the_value() {
        assert_eq!(parse_iso("2024-02-29").unwrap().to_string(), "2024-02-29");
        assert_eq!(
            parse_iso("2023-02-30").unwrap_err(),
            "2023-02-30 is not a valid date"
        );
        for bad in [
            "2023-2-3",
            "+2023-02-03",
            "2023-02-03T00:00",
            "20230203",
            "",
            "２０２３-02-03",
        ] {
            let e = parse_iso(bad).unwrap_err();
            assert!(e.contains("YYYY-MM-DD"), "{bad}: {e}");
        }
    }
}
