//! Query parameters shared by the list endpoints: `fields`, `page`,
//! `per_page`, `sort_by`, `sort_order`, and the paged answer.
//!
//! - `per_page`: default and maximum 200; `page` starts at 1; only the first
//!   2000 records are reachable with `page` ("DISCRETE_PAGINATION_LIMIT_EXCEEDED
//!   … You can only get the first 2000 records without using page_token
//!   param", [V] get-records page v7). `page_token` is not modelled.
//! - `fields` is mandatory on list and related-list reads
//!   (`REQUIRED_PARAM_MISSING`, `details.param_name: "fields"`, [V] crm-oas v8
//!   getRecords example; "fields … mandatory", [V] get-related-records and
//!   get-notes pages) and holds at most 50 names (`LIMIT_EXCEEDED`, [V]).
//! - An empty list is `204 No Content` without a body ([D] the official SDK
//!   checks `NO_CONTENT_STATUS_CODE = 204` on list answers; the search page
//!   names 204 for "nothing found yet", [V]).
//! - `info`: `{per_page, count, page, sort_by, sort_order, more_records,
//!   next_page_token, previous_page_token, page_token_expiry}` ([V] crm-oas v8
//!   `Info`, samples on the get-records and search pages).
//!
//! Unconfirmed: a `per_page` over 200 or a `page` below 1 is refused with
//! `INVALID_DATA` (Zoho may clamp it).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::error::ZohoError;

pub(crate) const MAX_PER_PAGE: usize = 200;
pub(crate) const MAX_REACHABLE: usize = 2000;
const MAX_FIELDS: usize = 50;

pub(crate) type Query = [(String, String)];

pub(crate) fn param<'a>(q: &'a Query, name: &str) -> Option<&'a str> {
    q.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The `fields` parameter: `Ok(None)` when absent and not `required`.
pub(crate) fn fields(q: &Query, required: bool) -> Result<Option<Vec<String>>, ZohoError> {
    let Some(raw) = param(q, "fields") else {
        return if required {
            Err(ZohoError::required_param("fields"))
        } else {
            Ok(None)
        };
    };
    let names: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        return Err(ZohoError::required_param("fields"));
    }
    if names.len() > MAX_FIELDS {
        return Err(ZohoError::new(
            StatusCode::BAD_REQUEST,
            "LIMIT_EXCEEDED",
            "Fields limit exceeded",
        )
        .with_details(json!({"param_name": "fields", "maximum_length": MAX_FIELDS})));
    }
    Ok(Some(names))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SortBy {
    Id,
    CreatedTime,
    ModifiedTime,
}

impl SortBy {
    fn as_str(self) -> &'static str {
        match self {
            SortBy::Id => "id",
            SortBy::CreatedTime => "Created_Time",
            SortBy::ModifiedTime => "Modified_Time",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Paging {
    pub page: usize,
    pub per_page: usize,
    pub sort_by: SortBy,
    pub desc: bool,
}

fn invalid_param(name: &str) -> ZohoError {
    ZohoError::invalid_data("invalid data", json!({"param_name": name}))
}

/// Reads the paging parameters; `default_desc` is the endpoint's default order.
pub(crate) fn paging(q: &Query, default_desc: bool) -> Result<Paging, ZohoError> {
    let number = |name: &str, default: usize| -> Result<usize, ZohoError> {
        match param(q, name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| invalid_param(name)),
        }
    };
    let page = number("page", 1)?;
    let per_page = number("per_page", MAX_PER_PAGE)?;
    if per_page > MAX_PER_PAGE {
        return Err(invalid_param("per_page"));
    }
    let sort_by = match param(q, "sort_by") {
        None | Some("id") => SortBy::Id,
        Some("Created_Time") => SortBy::CreatedTime,
        Some("Modified_Time") => SortBy::ModifiedTime,
        Some(_) => return Err(invalid_param("sort_by")),
    };
    let desc = match param(q, "sort_order") {
        None => default_desc,
        Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(invalid_param("sort_order")),
    };
    Ok(Paging {
        page,
        per_page,
        sort_by,
        desc,
    })
}

/// Whether the page lies beyond what `page` can reach.
pub(crate) fn beyond_reach(p: &Paging) -> bool {
    (p.page - 1) * p.per_page >= MAX_REACHABLE
}

pub(crate) fn discrete_limit() -> ZohoError {
    ZohoError::new(
        StatusCode::BAD_REQUEST,
        "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
        "You can only get the first 2000 records without using page_token param.",
    )
}

/// One page of `items` (already sorted): 204 when there is nothing at all.
pub(crate) fn page_of(items: Vec<Value>, p: &Paging) -> Response {
    if items.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let start = (p.page - 1) * p.per_page;
    let reachable = items.len().min(MAX_REACHABLE);
    let end = (start + p.per_page).min(reachable);
    let data: Vec<Value> = if start < end {
        items[start..end].to_vec()
    } else {
        Vec::new()
    };
    let more = end < items.len();
    Json(json!({
        "data": data,
        "info": {
            "per_page": p.per_page,
            "count": data.len(),
            "page": p.page,
            "sort_by": p.sort_by.as_str(),
            "sort_order": if p.desc { "desc" } else { "asc" },
            "more_records": more,
            "next_page_token": null,
            "previous_page_token": null,
            "page_token_expiry": null,
        },
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn paging_reads_defaults_and_refuses_bad_values() {
        let p = paging(&q(&[]), true).expect("defaults");
        assert_eq!(
            (p.page, p.per_page, p.sort_by, p.desc),
            (1, 200, SortBy::Id, true)
        );
        let p = paging(
            &q(&[
                ("page", "3"),
                ("per_page", "5"),
                ("sort_by", "Created_Time"),
                ("sort_order", "asc"),
            ]),
            true,
        )
        .expect("given");
        assert_eq!(
            (p.page, p.per_page, p.sort_by, p.desc),
            (3, 5, SortBy::CreatedTime, false)
        );
        assert!(paging(&q(&[("per_page", "201")]), true).is_err());
        assert!(paging(&q(&[("page", "0")]), true).is_err());
        assert!(paging(&q(&[("sort_order", "up")]), true).is_err());
        assert!(beyond_reach(
            &paging(&q(&[("page", "11")]), true).expect("page")
        ));
        assert!(!beyond_reach(
            &paging(&q(&[("page", "10")]), true).expect("page")
        ));
    }

    #[test]
    fn fields_are_mandatory_where_documented() {
        assert_eq!(
            fields(&q(&[]), true).expect_err("missing").code,
            "REQUIRED_PARAM_MISSING"
        );
        assert_eq!(fields(&q(&[]), false).expect("optional"), None);
        assert_eq!(
            fields(&q(&[("fields", "Email, Phone")]), true).expect("given"),
            Some(vec!["Email".to_owned(), "Phone".to_owned()])
        );
        let many = (0..51)
            .map(|i| format!("F{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            fields(&q(&[("fields", &many)]), true)
                .expect_err("too many")
                .code,
            "LIMIT_EXCEEDED"
        );
    }
}
