//! The route table. `MatchedPath` names each route by its template
//! (`GET /api/v2/persons/{id}`) for stats keys and fault targeting.
//!
//! An unknown path or a wrong method answers the gateway's 401 when the
//! request has no valid token (checked live: "an unrouted path, and a wrong
//! method all answer" the same 401, an integrator's notes [D]); with one, 404
//! and 405 in the error envelope (readme, "HTTP status codes" [V]).

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::{unauthorized, PdError};
use super::gate::{gate, token_of};
use super::state::App;
use super::{admin, deals, fields, notes, persons};

/// Room for a note of 100,000 four-byte characters, JSON-escaped.
const BODY_LIMIT_BYTES: usize = 2 * 1024 * 1024;

pub(crate) fn build(app: App) -> Router {
    let business: Router<App> = Router::new()
        .route("/api/v2/persons", get(persons::list).post(persons::create))
        .route("/api/v2/persons/search", get(persons::search))
        .route(
            "/api/v2/persons/{id}",
            get(persons::read)
                .patch(persons::update)
                .delete(persons::delete),
        )
        .route("/api/v2/deals", get(deals::list).post(deals::create))
        .route("/api/v2/deals/{id}", get(deals::read))
        .route("/api/v2/pipelines", get(deals::pipelines))
        .route("/api/v2/stages", get(deals::stages))
        .route("/v1/notes", get(notes::list).post(notes::create))
        .route("/v1/notes/{id}", get(notes::read).put(notes::update))
        .route("/v1/personFields", get(fields::list))
        .route_layer(middleware::from_fn_with_state(app.clone(), gate));

    Router::new()
        .merge(business)
        .merge(admin::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .with_state(app)
}

fn authorized(app: &App, headers: &HeaderMap, uri: &Uri) -> bool {
    token_of(headers, uri).as_deref() == Some(app.lock().config.token.as_str())
}

async fn not_found(State(app): State<App>, headers: HeaderMap, uri: Uri) -> Response {
    if !authorized(&app, &headers, &uri) {
        return unauthorized();
    }
    PdError::new(StatusCode::NOT_FOUND, "Not found").into_response()
}

async fn method_not_allowed(State(app): State<App>, headers: HeaderMap, uri: Uri) -> Response {
    if !authorized(&app, &headers, &uri) {
        return unauthorized();
    }
    PdError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed").into_response()
}
