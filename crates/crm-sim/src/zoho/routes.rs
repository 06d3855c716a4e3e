//! The route table. Record routes are registered per module with the module
//! in the path literally (`/crm/v8/Contacts/upsert`), so `MatchedPath` — the
//! stats key and fault target — names the route as Zoho's docs do.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::admin;
use super::error::{form_pairs, ZohoError};
use super::gate::{accounts_gate, api_gate};
use super::notes;
use super::records::{self, WriteMode};
use super::schema::Module;
use super::search;
use super::state::App;

/// 100 notes of 65,535 characters (4 bytes each at most), with room to spare.
const BODY_LIMIT_BYTES: usize = 32 * 1024 * 1024;

type Q = Query<Vec<(String, String)>>;

pub(crate) fn build(app: App) -> Router {
    let mut api: Router<App> = Router::new();
    for module in Module::RECORDS {
        let base = format!("/crm/v8/{}", module.api_name());
        api = api
            .route(
                &base,
                get(move |State(app): State<App>, q: Q| records::list(app, module, q))
                    .post(move |State(app): State<App>, body: Bytes| {
                        records::write_handler(app, module, WriteMode::Insert, body)
                    })
                    .put(move |State(app): State<App>, body: Bytes| {
                        records::write_handler(
                            app,
                            module,
                            WriteMode::Update { path_id: None },
                            body,
                        )
                    }),
            )
            .route(
                &format!("{base}/upsert"),
                post(move |State(app): State<App>, body: Bytes| {
                    records::write_handler(app, module, WriteMode::Upsert, body)
                }),
            )
            .route(
                &format!("{base}/search"),
                get(move |State(app): State<App>, q: Q| search::search(app, module, q)),
            )
            .route(
                &format!("{base}/{{id}}"),
                get(move |State(app): State<App>, id: Path<String>, q: Q| {
                    records::get_one(app, module, id, q)
                })
                .put(
                    move |State(app): State<App>, Path(id): Path<String>, body: Bytes| {
                        records::write_handler(
                            app,
                            module,
                            WriteMode::Update { path_id: Some(id) },
                            body,
                        )
                    },
                ),
            )
            .route(
                &format!("{base}/{{id}}/Notes"),
                get(move |State(app): State<App>, id: Path<String>, q: Q| {
                    notes::related(app, module, id, q)
                })
                .post(
                    move |State(app): State<App>, Path(id): Path<String>, body: Bytes| {
                        notes::create_handler(app, Some((module, id)), body)
                    },
                ),
            );
    }
    let api = api
        .route(
            "/crm/v8/Contacts/{id}/Deals",
            get(|State(app): State<App>, id: Path<String>, q: Q| {
                records::contact_deals(app, id, q)
            }),
        )
        .route(
            "/crm/v8/Notes",
            get(|State(app): State<App>, q: Q| notes::all(app, q))
                .post(|State(app): State<App>, body: Bytes| notes::create_handler(app, None, body)),
        )
        .route(
            "/crm/v8/Notes/{id}",
            get(|State(app): State<App>, id: Path<String>, q: Q| notes::get_one(app, id, q)).put(
                |State(app): State<App>, id: Path<String>, body: Bytes| {
                    notes::update_handler(app, id, body)
                },
            ),
        )
        .route("/crm/v8/settings/fields", get(records::fields_meta))
        .route_layer(middleware::from_fn_with_state(app.clone(), api_gate));

    let accounts = Router::new()
        .route("/oauth/v2/token", post(token))
        .route("/oauth/v2/token/revoke", post(revoke))
        .route_layer(middleware::from_fn_with_state(app.clone(), accounts_gate));

    Router::new()
        .merge(api)
        .merge(accounts)
        .merge(admin::routes())
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .with_state(app)
}

/// The query string's and the form body's parameters, body last (it wins).
fn params(uri: &Uri, body: &[u8]) -> Vec<(String, String)> {
    let mut p = form_pairs(uri.query().unwrap_or_default());
    p.extend(form_pairs(&String::from_utf8_lossy(body)));
    p
}

/// `POST /oauth/v2/token` (see `oauth`).
async fn token(State(app): State<App>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let params = params(&uri, &body);
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("http://{h}"));
    let mut state = app.lock();
    let api_domain = state
        .api_domain
        .clone()
        .or(host)
        .unwrap_or_else(|| "http://127.0.0.1".to_owned());
    let config = state.config.clone();
    let answer = state
        .oauth
        .token(&config, &params, &api_domain, Instant::now());
    drop(state);
    let minted = answer.body.get("access_token").is_some();
    tracing::info!(minted, status = answer.status.as_u16(), "token request");
    (answer.status, Json(answer.body)).into_response()
}

/// `POST /oauth/v2/token/revoke`.
async fn revoke(State(app): State<App>, uri: Uri, body: Bytes) -> Response {
    let params = params(&uri, &body);
    let mut state = app.lock();
    let config = state.config.clone();
    let answer = state.oauth.revoke_request(&config, &params);
    tracing::info!(status = %answer["status"], "revoke request");
    Json(answer).into_response()
}

/// An unknown module is `INVALID_MODULE`; any other unknown path
/// `INVALID_URL_PATTERN` ([V] upsert page, "Possible Errors").
async fn fallback(uri: Uri) -> Response {
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    if let ["crm", "v8", module, ..] = segments.as_slice() {
        if *module != "settings" && Module::parse(module).is_none() {
            return ZohoError::invalid_module(0).into_response();
        }
    }
    ZohoError::invalid_url().into_response()
}

async fn method_not_allowed(method: Method) -> Response {
    tracing::debug!(%method, "method not allowed");
    ZohoError::new(
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST_METHOD",
        "The http request method type is not a valid one",
    )
    .into_response()
}
