//! Business dates on the way in: only full ISO 8601 calendar dates (`YYYY-MM-DD`) are
//! accepted, and a refusal says what the value was, so that with the field's path in
//! front (the command decoder adds it) an error reads
//! "`concluded_on`: 2023-02-30 is not a valid date".

use serde::{Deserialize, Deserializer};

use crate::Date;

/// Parses `YYYY-MM-DD` strictly: four-digit year, two-digit month and day, a real day.
pub fn parse_iso(input: &str) -> Result<Date, String> {
    let shown = || input.chars().take(40).collect::<String>();
    let b = input.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shaped {
        return Err(format!(
            "{} is not a valid date: only full ISO 8601 dates (YYYY-MM-DD) are accepted",
            shown()
        ));
    }
    // Shaped: every field is ASCII digits (every event read back parses its dates here,
    // so no format string is interpreted).
    let number = |digits: &[u8]| digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'));
    let year = number(&b[..4]) as i32;
    Date::from_ymd_opt(year, number(&b[5..7]), number(&b[8..]))
        .ok_or_else(|| format!("{} is not a valid date", shown()))
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
        // well shaped: the same dates as chrono's own parser, and no others
        for input in [
            "2023-12-31",
            "1999-01-01",
            "0001-01-01",
            "2023-13-01",
            "2023-00-10",
            "2023-04-31",
            "2023-04-00",
            "2100-02-29",
            "2000-02-29",
            "9999-12-31",
        ] {
            assert_eq!(
                parse_iso(input).ok(),
                Date::parse_from_str(input, "%Y-%m-%d").ok(),
                "{input}"
            );
        }
    }
}
