//! `GET /crm/v8/{module}/search` with `criteria`, `email`, `phone` or `word`
//! ([V] search-records page v7 and crm-oas v8 `record.json`).
//!
//! - One of the four is used, in the order criteria, email, phone, word;
//!   none is 400 `EXPECTED_PARAM_MISSING` "mandatory param missing" ([V]).
//! - `email`: "All the email fields of a particular module will be searched";
//!   `phone`: "All the phone fields … will be searched" ([V]). How Zoho
//!   compares phone numbers is unconfirmed: here, by their digits.
//! - `criteria`: `((api_name:operator:value)and/or(…))`, at most 10
//!   conditions; `,` `(` `)` in a value are escaped with `\` ([V]). Supported
//!   here: `equals`, `not_equal`, `starts_with`, `in` (at most 100 values,
//!   [V]); other documented operators answer `INVALID_QUERY` (a simulator
//!   limit). "When you use equals in Search API, it behaves like contains"
//!   ([V]) — so `equals` matches part of a value; `in` matches whole values.
//!   Text compares ignoring case (unconfirmed).
//! - `word`: at least two characters (`INVALID_DATA`, [V]); any text field
//!   containing it.
//! - "When you create or edit a record, and search for it immediately, you may
//!   face the 204 NO CONTENT error due to a delay in indexing" ([V]): search
//!   reads each record as it was `search_lag_ms` ago.
//! - At most 2000 results are reachable: past them `LIMIT_REACHED`
//!   "Maximum response iteration limit reached" ([V]). Order: `id` desc.

use std::time::Instant;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::error::ZohoError;
use super::paging;
use super::schema::{lookup_id, DataType, Module, Schema};
use super::state::App;

const MAX_CONDITIONS: usize = 10;

/// Whether a record (its id and the values search sees) is a hit.
type Matcher<'a> = Box<dyn Fn(&str, &Map<String, Value>) -> bool + 'a>;
const MAX_IN_VALUES: usize = 100;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Expr {
    Cond {
        field: String,
        op: Op,
        values: Vec<String>,
    },
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Equals,
    NotEqual,
    StartsWith,
    In,
}

fn invalid_query(details: Value) -> ZohoError {
    ZohoError::new(
        StatusCode::BAD_REQUEST,
        "INVALID_QUERY",
        "invalid query formed",
    )
    .with_details(details)
}

/// Parses a `criteria` value.
pub(crate) fn parse(criteria: &str) -> Result<Expr, ZohoError> {
    let chars: Vec<char> = criteria.trim().chars().collect();
    let mut pos = 0;
    let mut conditions = 0;
    let expr = parse_expr(&chars, &mut pos, &mut conditions)?;
    if pos != chars.len() {
        return Err(invalid_query(json!({"position": pos})));
    }
    if conditions > MAX_CONDITIONS {
        return Err(invalid_query(json!({"maximum_length": MAX_CONDITIONS})));
    }
    Ok(expr)
}

fn parse_expr(c: &[char], pos: &mut usize, n: &mut usize) -> Result<Expr, ZohoError> {
    let mut left = parse_group(c, pos, n)?;
    loop {
        let rest: String = c[*pos..]
            .iter()
            .take(3)
            .collect::<String>()
            .to_ascii_lowercase();
        if rest.starts_with("and") {
            *pos += 3;
            let right = parse_group(c, pos, n)?;
            left = Expr::And(Box::new(left), Box::new(right));
        } else if rest.starts_with("or") {
            *pos += 2;
            let right = parse_group(c, pos, n)?;
            left = Expr::Or(Box::new(left), Box::new(right));
        } else {
            return Ok(left);
        }
    }
}

fn parse_group(c: &[char], pos: &mut usize, n: &mut usize) -> Result<Expr, ZohoError> {
    if c.get(*pos) != Some(&'(') {
        return Err(invalid_query(json!({"position": *pos})));
    }
    *pos += 1;
    let inner = if c.get(*pos) == Some(&'(') {
        parse_expr(c, pos, n)?
    } else {
        *n += 1;
        parse_condition(c, pos)?
    };
    if c.get(*pos) != Some(&')') {
        return Err(invalid_query(json!({"position": *pos})));
    }
    *pos += 1;
    Ok(inner)
}

fn parse_condition(c: &[char], pos: &mut usize) -> Result<Expr, ZohoError> {
    let mut field = String::new();
    while let Some(&ch) = c.get(*pos) {
        if ch == ':' {
            break;
        }
        field.push(ch);
        *pos += 1;
    }
    *pos += 1;
    let mut op = String::new();
    while let Some(&ch) = c.get(*pos) {
        if ch == ':' {
            break;
        }
        op.push(ch);
        *pos += 1;
    }
    *pos += 1;
    // The value runs to the first unescaped ')'; unescaped ',' separate values.
    let mut values = vec![String::new()];
    while let Some(&ch) = c.get(*pos) {
        match ch {
            '\\' => {
                if let Some(&next) = c.get(*pos + 1) {
                    values.last_mut().expect("one value").push(next);
                    *pos += 2;
                    continue;
                }
                values.last_mut().expect("one value").push(ch);
            }
            ')' => break,
            ',' => values.push(String::new()),
            _ => values.last_mut().expect("one value").push(ch),
        }
        *pos += 1;
    }
    let field = field.trim().to_owned();
    if field.is_empty() || *pos > c.len() {
        return Err(invalid_query(json!({"api_name": field})));
    }
    let op = match op.trim() {
        "equals" => Op::Equals,
        "not_equal" => Op::NotEqual,
        "starts_with" => Op::StartsWith,
        "in" => Op::In,
        other => {
            return Err(invalid_query(
                json!({"operator": other, "message": "not supported by the simulator"}),
            ))
        }
    };
    if op != Op::In && values.len() > 1 {
        // An unescaped comma outside `in` is part of the value as Zoho reads it
        // only when escaped; refuse it like a malformed query.
        return Err(invalid_query(json!({"api_name": field})));
    }
    if values.len() > MAX_IN_VALUES {
        return Err(invalid_query(
            json!({"api_name": field, "maximum_length": MAX_IN_VALUES}),
        ));
    }
    Ok(Expr::Cond { field, op, values })
}

/// Every field a criteria names must exist in the module.
fn check_fields(expr: &Expr, schema: &Schema, module: Module) -> Result<(), ZohoError> {
    match expr {
        Expr::Cond { field, .. } => {
            if field == "id" || schema.get(module, field).is_some() {
                Ok(())
            } else {
                Err(invalid_query(json!({"api_name": field})))
            }
        }
        Expr::And(a, b) | Expr::Or(a, b) => {
            check_fields(a, schema, module)?;
            check_fields(b, schema, module)
        }
    }
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// The text of a stored value for comparisons.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Object(_) => lookup_id(v).map(str::to_owned),
        _ => None,
    }
}

fn matches_value(stored: &str, wanted: &str, op: Op, phone: bool) -> bool {
    let (s, w) = if phone {
        (digits(stored), digits(wanted))
    } else {
        (stored.trim().to_lowercase(), wanted.trim().to_lowercase())
    };
    if w.is_empty() {
        return false;
    }
    match op {
        Op::Equals => s.contains(&w),
        Op::NotEqual => !s.contains(&w),
        Op::StartsWith => s.starts_with(&w),
        Op::In => s == w,
    }
}

pub(crate) fn eval(
    expr: &Expr,
    id: &str,
    values: &Map<String, Value>,
    schema: &Schema,
    module: Module,
) -> bool {
    match expr {
        Expr::And(a, b) => {
            eval(a, id, values, schema, module) && eval(b, id, values, schema, module)
        }
        Expr::Or(a, b) => {
            eval(a, id, values, schema, module) || eval(b, id, values, schema, module)
        }
        Expr::Cond {
            field,
            op,
            values: wanted,
        } => {
            let stored = if field == "id" {
                Some(id.to_owned())
            } else {
                values.get(field).and_then(text_of)
            };
            let phone = schema
                .get(module, field)
                .is_some_and(|f| f.data_type == DataType::Phone);
            match (stored, op) {
                (None, Op::NotEqual) => true,
                (None, _) => false,
                (Some(s), Op::In) => wanted.iter().any(|w| matches_value(&s, w, Op::In, phone)),
                (Some(s), op) => matches_value(&s, &wanted[0], *op, phone),
            }
        }
    }
}

/// `GET /crm/v8/{module}/search`.
pub(crate) async fn search(
    app: App,
    module: Module,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let result = (|| -> Result<Response, ZohoError> {
        let only = paging::fields(&q, false)?;
        let p = paging::paging(&q, true)?;
        if paging::beyond_reach(&p) {
            return Err(ZohoError::new(
                StatusCode::BAD_REQUEST,
                "LIMIT_REACHED",
                "Maximum response iteration limit reached",
            ));
        }
        let state = app.lock();
        let schema = &state.schema;
        let of_type = |t: DataType| -> Vec<String> {
            schema
                .fields(module)
                .iter()
                .filter(|f| f.data_type == t)
                .map(|f| f.api_name.clone())
                .collect()
        };
        let matcher: Matcher<'_> = if let Some(c) = paging::param(&q, "criteria") {
            let expr = parse(c)?;
            check_fields(&expr, schema, module)?;
            Box::new(move |id, v| eval(&expr, id, v, schema, module))
        } else if let Some(email) = paging::param(&q, "email") {
            let fields = of_type(DataType::Email);
            let email = email.trim().to_lowercase();
            Box::new(move |_, v| {
                fields.iter().any(|f| {
                    v.get(f)
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.trim().to_lowercase() == email)
                })
            })
        } else if let Some(phone) = paging::param(&q, "phone") {
            let fields = of_type(DataType::Phone);
            let wanted = digits(phone);
            if wanted.is_empty() {
                return Err(ZohoError::invalid_data(
                    "invalid data",
                    json!({"param_name": "phone"}),
                ));
            }
            Box::new(move |_, v| {
                fields.iter().any(|f| {
                    v.get(f)
                        .and_then(Value::as_str)
                        .is_some_and(|s| digits(s) == wanted)
                })
            })
        } else if let Some(word) = paging::param(&q, "word") {
            let word = word.trim().to_lowercase();
            if word.chars().count() < 2 {
                return Err(ZohoError::invalid_data(
                        "The search value contains special characters or does not contain at least two characters",
                        json!({"param_name": "word"}),
                    ));
            }
            let fields: Vec<String> = schema
                .fields(module)
                .iter()
                .filter(|f| f.data_type.is_textual())
                .map(|f| f.api_name.clone())
                .collect();
            Box::new(move |_, v| {
                fields.iter().any(|f| {
                    v.get(f)
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.to_lowercase().contains(&word))
                })
            })
        } else {
            return Err(ZohoError::new(
                StatusCode::BAD_REQUEST,
                "EXPECTED_PARAM_MISSING",
                "mandatory param missing",
            )
            .with_details(json!({"param_name": "criteria"})));
        };
        let cutoff = state.search_cutoff(Instant::now());
        let mut hits: Vec<Value> = state
            .store
            .of(module)
            .filter_map(|r| {
                let seen = r.as_of(cutoff)?;
                matcher(&r.id, seen).then(|| {
                    // The record as search saw it.
                    let mut indexed = r.clone();
                    indexed.fields = seen.clone();
                    indexed.render(only.as_deref())
                })
            })
            .collect();
        hits.reverse();
        Ok(paging::page_of(hits, &p))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(field: &str, op: Op, values: &[&str]) -> Expr {
        Expr::Cond {
            field: field.into(),
            op,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    #[test]
    fn criteria_parse_with_escapes_groups_and_in_lists() {
        assert_eq!(
            parse("(Phone:in:+14155552671,4155552671)").expect("in"),
            cond("Phone", Op::In, &["+14155552671", "4155552671"])
        );
        assert_eq!(
            parse(r"((Last_Name:equals:Burns\,B)and(First_Name:starts_with:M))").expect("and"),
            Expr::And(
                Box::new(cond("Last_Name", Op::Equals, &["Burns,B"])),
                Box::new(cond("First_Name", Op::StartsWith, &["M"]))
            )
        );
        assert!(matches!(
            parse("((Phone:in:1)or(Mobile:in:1))").expect("or"),
            Expr::Or(..)
        ));
        assert!(parse("Phone:equals:1").is_err());
        assert!(parse("(Phone:between:1,2)").is_err());
        assert!(parse("(Phone:equals:1").is_err());
        let eleven = (0..11)
            .map(|i| format!("(F:equals:{i})"))
            .collect::<Vec<_>>()
            .join("or");
        assert!(parse(&format!("({eleven})")).is_err());
    }

    #[test]
    fn equals_behaves_like_contains_and_phones_compare_by_digits() {
        let schema = Schema::default();
        let mut v = Map::new();
        v.insert("Last_Name".into(), json!("ABC Inc"));
        v.insert("Phone".into(), json!("+1 (415) 555-2671"));
        let m = Module::Contacts;
        assert!(eval(
            &cond("Last_Name", Op::Equals, &["abc"]),
            "1",
            &v,
            &schema,
            m
        ));
        assert!(!eval(
            &cond("Last_Name", Op::In, &["abc"]),
            "1",
            &v,
            &schema,
            m
        ));
        assert!(eval(
            &cond("Phone", Op::In, &["+14155552671"]),
            "1",
            &v,
            &schema,
            m
        ));
        assert!(!eval(
            &cond("Phone", Op::In, &["4155552671"]),
            "1",
            &v,
            &schema,
            m
        ));
        assert!(eval(
            &cond("Mobile", Op::NotEqual, &["1"]),
            "1",
            &v,
            &schema,
            m
        ));
        assert!(eval(&cond("id", Op::Equals, &["1"]), "1", &v, &schema, m));
    }
}
