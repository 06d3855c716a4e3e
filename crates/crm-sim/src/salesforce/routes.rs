//! The route table. Every REST route is registered by its template (so that
//! `MatchedPath` — the stats key and fault target — names it, e.g.
//! `"PATCH /services/data/v60.0/composite/sobjects/{sobject}/{field}"`) and
//! handled by `api::dispatch`, which Composite's subrequests use too.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::{Json, Router};
use serde_json::Value;

use super::admin;
use super::api::{self, Ctx};
use super::error::{form_pairs, SfError};
use super::gate::{api_gate, login_gate};
use super::state::App;
use super::API_VERSION;

/// 200 records of a few KB each, with room to spare (Salesforce's own cap
/// on a REST request body is larger and not modelled).
const BODY_LIMIT_BYTES: usize = 32 * 1024 * 1024;

pub(crate) fn build(app: App) -> Router {
    let p = format!("/services/data/{API_VERSION}");
    let api_routes = [
        "/query",
        "/composite",
        "/composite/sobjects",
        "/composite/sobjects/{sobject}/{field}",
        "/sobjects/{sobject}",
        "/sobjects/{sobject}/describe",
        "/sobjects/{sobject}/{id}",
        "/sobjects/{sobject}/{field}/{value}",
    ];
    let mut api_router: Router<App> = Router::new();
    for r in api_routes {
        api_router = api_router.route(&format!("{p}{r}"), any(rest));
    }
    let api_router = api_router.route_layer(middleware::from_fn_with_state(app.clone(), api_gate));
    let login = Router::new()
        .route("/services/oauth2/token", post(token))
        .route_layer(middleware::from_fn_with_state(app.clone(), login_gate));
    Router::new()
        .merge(api_router)
        .merge(login)
        .merge(admin::routes())
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .with_state(app)
}

/// Every REST route.
async fn rest(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let prefix = format!("/services/data/{API_VERSION}");
    let rest = uri
        .path()
        .strip_prefix(&prefix)
        .unwrap_or_default()
        .to_owned();
    let query = form_pairs(uri.query().unwrap_or_default());
    let json: Option<Value> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => Some(v),
            Err(e) => {
                return SfError::bad_request(
                    "JSON_PARSER_ERROR",
                    format!(
                        "Unexpected character at [line:{},column:{}]",
                        e.line(),
                        e.column()
                    ),
                )
                .into_response()
            }
        }
    };
    let ctx = Ctx::from_headers(&headers);
    let answer = {
        let mut state = app.lock();
        api::dispatch(
            &mut state,
            &ctx,
            &method,
            &rest,
            &query,
            json.as_ref(),
            false,
        )
    };
    answer.into_response()
}

/// `POST /services/oauth2/token` (see `oauth`): a form body, or the query.
async fn token(State(app): State<App>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut params = form_pairs(uri.query().unwrap_or_default());
    params.extend(form_pairs(&String::from_utf8_lossy(&body)));
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("http://{h}"));
    let mut state = app.lock();
    let instance = state
        .instance_url
        .clone()
        .or(host)
        .unwrap_or_else(|| "http://127.0.0.1".to_owned());
    let config = state.config.clone();
    let answer = state
        .oauth
        .token(&config, &params, &instance, &instance, Instant::now());
    drop(state);
    let minted = answer.body.get("access_token").is_some();
    tracing::info!(minted, status = answer.status.as_u16(), "token request");
    (answer.status, Json(answer.body)).into_response()
}

async fn fallback() -> Response {
    SfError::not_found().into_response()
}
