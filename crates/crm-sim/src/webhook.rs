//! A webhook target simulator: stands in for a Zapier / Make / n8n catch hook
//! or a customer's own endpoint, so the webhook connection is tested over real
//! HTTP.
//!
//! - Every `POST` to a path outside `/__admin` is recorded (`seq`, `method`,
//!   `path`, `query`, every header with its name lowercased, the body parsed as
//!   JSON or else kept as text, `received_at`, and the `status` it was answered
//!   with: `null` for a request held by a timeout fault) and answered
//!   `200 {"ok": true, "id": "wh_<seq>"}`. Other methods get 405 and are not
//!   recorded.
//! - In order: record → required header (401 `{"error":"unauthorized"}`) →
//!   injected faults (contracts.md §3, shared with the HubSpot simulator) → 200.
//!
//! `/__admin` (no authentication):
//! - `POST /__admin/config` `{"require_header": {"name": "authorization", "value": "Bearer s3cret"}}`
//!   expects that exact header value on every request; `{"require_header": null}`
//!   clears it. `GET /__admin/config` reads it.
//! - `POST /__admin/faults` `{"kind":"error","status":503,"probability":1.0,"count":2,"retry_after":3}`
//!   (`retry_after`: seconds for a `Retry-After` header), `{"kind":"latency","ms":…}`,
//!   `{"kind":"timeout"}`, each with optional `probability`, `count` and `route`
//!   (`"/hooks/a"` or `"POST /hooks/a"`); `GET` lists them, `DELETE` clears them.
//! - `GET /__admin/received` → `{"requests": [...]}`, oldest first.
//! - `GET /__admin/stats` → `{"total": n, "by_status": {"200": n, …}, "faulted": n}`
//!   (`total` counts recorded requests; a held request has no status yet).
//! - `POST /__admin/reset` back to the state at start: no requests, counters,
//!   faults or required header; `seq` starts again at 1.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::faults::{FaultAction, FaultOutcome, FaultSpec, Faults, Played};
use crate::server::{Server, ShutdownSignal};

/// Bodies larger than this are refused with 413 before they are recorded.
const BODY_LIMIT_BYTES: usize = 16 * 1024 * 1024;

/// The simulator's router, for embedding in another server. Its timeout
/// faults hold requests until the client gives up.
pub fn router() -> Router {
    build(Arc::new(Shared::default()))
}

/// A webhook target serving on a local port. Dropping it stops the server too.
pub struct RunningWebhookSim {
    /// `http://127.0.0.1:PORT`, without a trailing slash. Any path under it
    /// (but `/__admin`) is a hook.
    pub base_url: String,
    server: Server,
}

impl std::fmt::Debug for RunningWebhookSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningWebhookSim")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl RunningWebhookSim {
    /// Binds `addr` (port 0 picks a free port) and serves on a spawned task.
    pub async fn start(addr: SocketAddr) -> std::io::Result<RunningWebhookSim> {
        let app = Arc::new(Shared::default());
        let shutdown = app.shutdown.clone();
        let server = Server::start(addr, build(app), shutdown, "webhook target").await?;
        Ok(RunningWebhookSim {
            base_url: server.base_url.clone(),
            server,
        })
    }

    /// Stops accepting connections, finishes in-flight requests (requests held
    /// by timeout faults are released) and ends the server task.
    pub fn shutdown(self) {
        // Dropping the server does the work.
    }

    /// Like [`RunningWebhookSim::shutdown`], and waits until the server task
    /// has ended (in-flight requests answered, or after a 5 s grace period).
    pub async fn shutdown_and_wait(self) {
        self.server.shutdown_and_wait().await;
    }
}

/// A header every request must carry with exactly this value.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RequiredHeader {
    name: String,
    value: String,
}

/// One recorded request, as `GET /__admin/received` lists it.
#[derive(Clone, Debug, Serialize)]
struct Received {
    seq: u64,
    method: String,
    path: String,
    query: Option<String>,
    /// Every header, name lowercased; repeated headers joined with `, `.
    headers: BTreeMap<String, String>,
    /// The parsed JSON body, or the raw text as a string when it is not JSON.
    body: Value,
    received_at: String,
    /// What it was answered with; `None` while a timeout fault holds it.
    status: Option<u16>,
}

#[derive(Debug)]
struct WebhookState {
    require_header: Option<RequiredHeader>,
    faults: Faults,
    received: Vec<Received>,
    next_seq: u64,
    by_status: BTreeMap<u16, u64>,
    faulted: u64,
}

impl Default for WebhookState {
    fn default() -> Self {
        WebhookState {
            require_header: None,
            faults: Faults::default(),
            received: Vec::new(),
            next_seq: 1,
            by_status: BTreeMap::new(),
            faulted: 0,
        }
    }
}

impl WebhookState {
    fn record(&mut self, mut request: Received, status: Option<u16>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        request.seq = seq;
        request.status = status;
        if let Some(s) = status {
            *self.by_status.entry(s).or_default() += 1;
        }
        self.received.push(request);
        seq
    }

    fn stats(&self) -> Value {
        let by_status: BTreeMap<String, u64> = self
            .by_status
            .iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect();
        json!({
            "total": self.received.len(),
            "by_status": by_status,
            "faulted": self.faulted,
        })
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        self.require_header.as_ref().is_none_or(|r| {
            headers
                .get_all(r.name.as_str())
                .iter()
                .any(|v| v.as_bytes() == r.value.as_bytes())
        })
    }
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<WebhookState>,
    shutdown: ShutdownSignal,
}

type App = Arc<Shared>;

impl Shared {
    /// Locks the state; never held across an await. Poisoning is ignored: a
    /// panic cannot leave a simulator's state half-updated in a way that matters.
    fn lock(&self) -> MutexGuard<'_, WebhookState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn build(app: App) -> Router {
    Router::new()
        .route(
            "/__admin/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .route("/__admin/received", get(received))
        .route("/__admin/stats", get(stats))
        .route("/__admin/reset", post(reset))
        .route("/__admin/config", get(read_config).post(update_config))
        .fallback(hook)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .with_state(app)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Any request outside the admin routes.
async fn hook(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path() == "/__admin" || uri.path().starts_with("/__admin/") {
        return error(StatusCode::NOT_FOUND, "no such admin endpoint");
    }
    if method != Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, "a webhook takes POST only");
    }
    let route = format!("POST {}", uri.path());
    let request = Received {
        seq: 0,
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: header_map(&headers),
        body: body_value(&body),
        received_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        status: None,
    };

    // Record, authenticate and roll the faults under one lock.
    let (seq, outcome) = {
        let mut state = app.lock();
        if !state.authorized(&headers) {
            let seq = state.record(request, Some(401));
            tracing::info!(seq, %route, "rejected: required header missing or wrong");
            return error(StatusCode::UNAUTHORIZED, "unauthorized");
        }
        let outcome = state.faults.roll(&route, rand::random::<f64>);
        if outcome.is_faulted() {
            state.faulted += 1;
        }
        let status = match outcome.action {
            Some(FaultAction::Error { status, .. }) => Some(status.as_u16()),
            Some(FaultAction::Timeout) => None,
            None => Some(200),
        };
        (state.record(request, status), outcome)
    };
    if let Some(response) = apply_fault(&app, &route, outcome).await {
        return response;
    }
    tracing::debug!(seq, %route, "hook received");
    Json(json!({ "ok": true, "id": format!("wh_{seq}") })).into_response()
}

/// Sleeps the injected latency, then answers for an error or timeout fault.
async fn apply_fault(app: &App, route: &str, outcome: FaultOutcome) -> Option<Response> {
    // A held request waits until the client gives up (this future is then
    // dropped) or shutdown.
    Some(match outcome.play(&app.shutdown, route).await? {
        Played::Error {
            status,
            retry_after,
        } => crate::faults::with_retry_after(
            error(status, status.canonical_reason().unwrap_or("error")),
            retry_after,
        ),
        Played::Held => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
    })
}

fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        out.entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    out
}

/// The body as JSON, or as a string of its (lossily decoded) text.
fn body_value(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// Parses an admin request body, or says why not (for a 400).
fn admin_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid body: {e}"))
}

/// `POST /__admin/faults` → 201 `{"id": n}`.
async fn add_fault(State(app): State<App>, body: Bytes) -> Response {
    let spec: FaultSpec = match admin_body(&body) {
        Ok(spec) => spec,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    match app.lock().faults.add(spec) {
        Ok(id) => {
            tracing::info!(fault_id = id, "fault added");
            (StatusCode::CREATED, Json(json!({ "id": id }))).into_response()
        }
        Err(message) => error(StatusCode::BAD_REQUEST, message),
    }
}

async fn list_faults(State(app): State<App>) -> Json<Value> {
    Json(json!({ "faults": app.lock().faults.list() }))
}

async fn clear_faults(State(app): State<App>) -> Json<Value> {
    Json(json!({ "cleared": app.lock().faults.clear() }))
}

async fn received(State(app): State<App>) -> Json<Value> {
    Json(json!({ "requests": app.lock().received }))
}

async fn stats(State(app): State<App>) -> Json<Value> {
    Json(app.lock().stats())
}

async fn reset(State(app): State<App>) -> Json<Value> {
    *app.lock() = WebhookState::default();
    tracing::info!("state reset");
    Json(json!({ "reset": true }))
}

fn config_json(state: &WebhookState) -> Value {
    json!({ "require_header": state.require_header })
}

async fn read_config(State(app): State<App>) -> Json<Value> {
    Json(config_json(&app.lock()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigUpdate {
    /// Absent: unchanged; `null`: cleared.
    #[serde(default, deserialize_with = "present")]
    require_header: Option<Option<RequiredHeader>>,
}

/// A field that is present (maybe `null`), as opposed to absent (`None` via `default`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `POST /__admin/config` → the whole config.
async fn update_config(State(app): State<App>, body: Bytes) -> Response {
    let update: ConfigUpdate = match admin_body(&body) {
        Ok(update) => update,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    if let Some(required) = update.require_header {
        let required = match required {
            None => None,
            Some(r) => match HeaderName::from_bytes(r.name.trim().as_bytes()) {
                Ok(name) => Some(RequiredHeader {
                    name: name.as_str().to_owned(),
                    value: r.value,
                }),
                Err(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("{:?} is not a header name", r.name),
                    )
                }
            },
        };
        tracing::info!(
            header = required.as_ref().map(|r| r.name.as_str()),
            "required header changed"
        );
        app.lock().require_header = required;
    }
    Json(config_json(&app.lock())).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_that_is_not_json_is_kept_as_text() {
        assert_eq!(body_value(br#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(body_value(b"a=1&b=2"), json!("a=1&b=2"));
        assert_eq!(body_value(b""), json!(""));
    }

    #[test]
    fn repeated_headers_are_joined() {
        let mut h = HeaderMap::new();
        h.append("x-a", axum::http::HeaderValue::from_static("1"));
        h.append("x-a", axum::http::HeaderValue::from_static("2"));
        assert_eq!(header_map(&h)["x-a"], "1, 2");
    }

    #[test]
    fn a_config_update_tells_a_null_from_an_absent_requirement() {
        let absent: ConfigUpdate = serde_json::from_str("{}").expect("parses");
        assert!(absent.require_header.is_none());
        let null: ConfigUpdate =
            serde_json::from_str(r#"{"require_header":null}"#).expect("parses");
        assert!(matches!(null.require_header, Some(None)));
    }
}
