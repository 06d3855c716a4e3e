//! What the sender says a deal is worth and when it should close
//! (`crm_target.deal_amount`, `crm_target.deal_close_date`).
//!
//! The amount's grammar is written here rather than taken from a decimal
//! crate: it is one check (digits, an optional point, at most two decimals)
//! and the value is only ever passed on, never computed with.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::FieldError;

/// A non-negative amount in the CRM account's currency, at most 13 digits
/// before the point and 2 after: every CRM's number (an IEEE double behind a
/// JSON number) then carries it exactly. Kept in a canonical form: no leading
/// zeros, no trailing zero decimals (`"0012.50"` is `"12.5"`).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DealAmount(String);

impl DealAmount {
    pub const MAX_INTEGER_DIGITS: usize = 13;
    pub const MAX_DECIMALS: usize = 2;

    /// `raw` is the amount as text (a JSON number's own digits, or a string);
    /// `Ok(None)` when it is blank (the field counts as absent).
    pub fn parse(field: &str, raw: &str) -> Result<Option<Self>, FieldError> {
        if raw.trim().is_empty() {
            return Ok(None);
        }
        Self::parse_present(field, raw).map(Some)
    }

    fn parse_present(field: &str, raw: &str) -> Result<Self, FieldError> {
        let invalid = || {
            FieldError::new(
                field,
                "invalid_amount",
                format!(
                    "{field} must be an amount from 0 to 9999999999999.99 with at most \
                     {} decimals, such as 1250.50",
                    Self::MAX_DECIMALS
                ),
            )
        };
        let t = raw.trim();
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty()
            || !digits(int)
            || !digits(frac)
            || frac.len() > Self::MAX_DECIMALS
            || (t.contains('.') && frac.is_empty())
        {
            return Err(invalid());
        }
        let int = int.trim_start_matches('0');
        if int.len() > Self::MAX_INTEGER_DIGITS {
            return Err(invalid());
        }
        let int = if int.is_empty() { "0" } else { int };
        let frac = frac.trim_end_matches('0');
        Ok(Self(if frac.is_empty() {
            int.to_string()
        } else {
            format!("{int}.{frac}")
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The amount as the JSON number a CRM's API takes (exact: see the type).
    pub fn to_json(&self) -> serde_json::Value {
        match self.0.parse::<u64>() {
            Ok(n) => serde_json::Value::from(n),
            Err(_) => serde_json::Value::from(self.0.parse::<f64>().unwrap_or(0.0)),
        }
    }
}

impl TryFrom<String> for DealAmount {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse_present("deal_amount", &s).map_err(|e| e.message)
    }
}

impl From<DealAmount> for String {
    fn from(a: DealAmount) -> String {
        a.0
    }
}

impl fmt::Debug for DealAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DealAmount({})", self.0)
    }
}

impl fmt::Display for DealAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A deal's expected close date: `YYYY-MM-DD`, a calendar date; `Ok(None)`
/// when blank (the field counts as absent).
pub fn parse_close_date(field: &str, raw: &str) -> Result<Option<NaiveDate>, FieldError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .filter(|_| raw.len() == 10)
        .map(Some)
        .ok_or_else(|| {
            FieldError::new(
                field,
                "invalid_date",
                format!("{field} must be a date such as 2026-06-30"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(raw: &str) -> Result<String, String> {
        DealAmount::parse("crm_target.deal_amount", raw)
            .map(|a| a.expect("not blank").as_str().to_string())
            .map_err(|e| e.code)
    }

    #[test]
    fn amounts_are_kept_in_one_canonical_form() {
        assert_eq!(amount("1250.50"), Ok("1250.5".into()));
        assert_eq!(amount(" 0012.00 "), Ok("12".into()));
        assert_eq!(amount("0"), Ok("0".into()));
        assert_eq!(amount("0.05"), Ok("0.05".into()));
        assert_eq!(amount("9999999999999.99"), Ok("9999999999999.99".into()));
    }

    #[test]
    fn anything_but_a_plain_non_negative_amount_is_refused() {
        assert_eq!(DealAmount::parse("f", "  "), Ok(None), "blank is absent");
        for bad in [
            "-5",
            "+5",
            "1.005",
            "1e6",
            "1,000",
            "12.",
            ".5",
            "NaN",
            "inf",
            "10000000000000",
            "$10",
            "1 000",
        ] {
            assert_eq!(amount(bad), Err("invalid_amount".into()), "{bad:?}");
        }
    }

    #[test]
    fn the_json_number_a_crm_gets_is_the_amount_exactly() {
        for (raw, json) in [
            ("1250.50", "1250.5"),
            ("12", "12"),
            ("9999999999999.99", "9999999999999.99"),
            ("0.1", "0.1"),
        ] {
            let a = DealAmount::parse("f", raw).unwrap().unwrap();
            assert_eq!(a.to_json().to_string(), json);
        }
    }

    #[test]
    fn an_amount_read_back_from_the_queue_is_checked_again() {
        let a: DealAmount = serde_json::from_str("\"1250.50\"").unwrap();
        assert_eq!(a.as_str(), "1250.5");
        assert!(serde_json::from_str::<DealAmount>("\"-1\"").is_err());
    }

    #[test]
    fn close_dates_are_calendar_dates() {
        assert_eq!(
            parse_close_date("d", " 2026-06-30 ").unwrap(),
            NaiveDate::from_ymd_opt(2026, 6, 30)
        );
        assert_eq!(parse_close_date("d", " "), Ok(None), "blank is absent");
        for bad in [
            "2026-02-30",
            "30/06/2026",
            "2026-6-30",
            "2026-06-30T00:00:00Z",
        ] {
            assert_eq!(parse_close_date("d", bad).unwrap_err().code, "invalid_date");
        }
    }
}
