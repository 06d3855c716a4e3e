//! The operators' console over HTTP: `GET /console` (one self-contained page,
//! `console/index.html`, embedded) and its JSON API, authenticated with a status
//! API key (`x-api-key` or `Authorization: Bearer`; a key limited to bots sees
//! and replays only theirs):
//! `GET /v1/console/flow?hours=`, `GET /v1/console/events?status=&bot=&q=&limit=`,
//! `GET /v1/console/events/{id}`, `POST /v1/console/replay`.
//! The use cases are `lb_pipeline::console`'s; this module routes, checks the
//! key and renders JSON.

use std::sync::OnceLock;

use base64::Engine;
use chrono::{DateTime, Utc};
use lb_config::ConnectionKind;
use lb_pipeline::console::{
    self as use_case, ConsoleError, CrmLinks, EventQuery, RecordLinks, ReplayRequest,
};
use lb_pipeline::status::{KeyScope, StatusKeys};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::{presented_api_key, problem, unavailable, Ingest, WebhookRequest, WebhookResponse};

/// The page: inline CSS and vanilla JS, nothing fetched from anywhere else.
pub(crate) const PAGE: &str = include_str!("../console/index.html");
pub(crate) const HTML: &str = "text/html; charset=utf-8";
/// A replay request is a list of ids or a filter: small.
const MAX_REPLAY_BODY: usize = 64 * 1024;

/// Serves the console's routes; `None` for any other path.
pub(crate) async fn serve(
    app: &Ingest,
    req: &WebhookRequest,
    path: &str,
    now: DateTime<Utc>,
) -> Option<WebhookResponse> {
    if path == "/console" {
        return Some(page(req));
    }
    let route = path.strip_prefix("/v1/console/")?;
    Some(api(app, req, route, now).await)
}

/// Headers on every answer: nothing is cached, sniffed or referred; the page
/// also gets a Content-Security-Policy that allows only its own inline script
/// and style (by hash) and requests to its own origin.
pub(crate) fn headers(content_type: &str) -> Vec<(&'static str, String)> {
    let mut h = vec![
        ("cache-control", "no-store".to_string()),
        ("x-content-type-options", "nosniff".to_string()),
        ("referrer-policy", "no-referrer".to_string()),
    ];
    if content_type == HTML {
        h.push(("content-security-policy", csp().to_string()));
        h.push(("x-frame-options", "DENY".to_string()));
    }
    h
}

/// `default-src 'none'`, the page's one `<script>` and one `<style>` by their
/// SHA-256, `connect-src 'self'` for its API calls.
fn csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let hash = |open: &str, close: &str| {
            let body = PAGE
                .split_once(open)
                .and_then(|(_, rest)| rest.split_once(close))
                .map(|(body, _)| body)
                .unwrap_or_default();
            format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body.as_bytes()))
            )
        };
        format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self' data:; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            hash("<script>", "</script>"),
            hash("<style>", "</style>"),
        )
    })
}

fn page(req: &WebhookRequest) -> WebhookResponse {
    if req.method != "GET" {
        return problem(
            405,
            "method_not_allowed",
            "Method Not Allowed",
            "use GET /console",
            &[],
        );
    }
    WebhookResponse {
        status: 200,
        content_type: HTML,
        body: PAGE.to_string(),
        retry_after: None,
    }
}

enum Route<'a> {
    Flow,
    Events,
    Story(&'a str),
    Replay,
}

async fn api(
    app: &Ingest,
    req: &WebhookRequest,
    route: &str,
    now: DateTime<Utc>,
) -> WebhookResponse {
    let (method, what) = match route {
        "flow" => ("GET", Route::Flow),
        "events" => ("GET", Route::Events),
        "replay" => ("POST", Route::Replay),
        other => match other
            .strip_prefix("events/")
            .filter(|id| !id.is_empty() && !id.contains('/'))
        {
            Some(id) => ("GET", Route::Story(id)),
            None => return problem(404, "not_found", "Not Found", "no such console route", &[]),
        },
    };
    if req.method != method {
        return problem(
            405,
            "method_not_allowed",
            "Method Not Allowed",
            format!("use {method} /v1/console/{route}"),
            &[],
        );
    }
    let scope = match authorize(app, req).await {
        Ok(scope) => scope,
        Err(r) => return r,
    };
    let query = query_pairs(req.query.as_deref());
    let param = |name: &str| {
        query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    match what {
        Route::Flow => {
            let hours = match param("hours").map(|h| h.parse::<u32>()) {
                None => use_case::DEFAULT_HOURS,
                Some(Ok(h)) if (1..=use_case::MAX_HOURS).contains(&h) => h,
                Some(_) => {
                    return bad_request(format!(
                        "hours must be a whole number from 1 to {}",
                        use_case::MAX_HOURS
                    ))
                }
            };
            answer(
                "flow",
                use_case::flow(app.ledger.as_ref(), &scope, hours, now).await,
            )
        }
        Route::Events => {
            let status = match param("status").map(|s| (use_case::parse_status(&s), s)) {
                None => None,
                Some((Some(s), _)) => Some(s),
                Some((None, _)) => {
                    return bad_request(
                        "status must be one of not_queued, queued, processing, retrying, synced, dead, rejected",
                    )
                }
            };
            let limit = match param("limit").map(|l| l.parse::<usize>()) {
                None => None,
                Some(Ok(l)) if (1..=use_case::MAX_LIMIT).contains(&l) => Some(l),
                Some(_) => {
                    return bad_request(format!(
                        "limit must be a whole number from 1 to {}",
                        use_case::MAX_LIMIT
                    ))
                }
            };
            let q = EventQuery {
                status,
                bot: param("bot"),
                q: param("q"),
                limit,
            };
            answer(
                "events",
                use_case::events(app.ledger.as_ref(), &scope, &q).await,
            )
        }
        Route::Story(raw) => {
            let id = percent_encoding::percent_decode_str(raw)
                .decode_utf8_lossy()
                .into_owned();
            let links = record_links(app);
            match use_case::story(app.ledger.as_ref(), &scope, &id, &links).await {
                Ok(Some(story)) => answer("story", Ok(story)),
                // Unknown, or another bot's: the same answer.
                Ok(None) => problem(
                    404,
                    "event_not_found",
                    "Not Found",
                    format!(
                        "no event {} in the ledger",
                        id.chars().take(128).collect::<String>()
                    ),
                    &[],
                ),
                Err(e) => answer::<()>("story", Err(e)),
            }
        }
        Route::Replay => {
            if !crate::is_json_content_type(req.header("content-type")) {
                return problem(
                    400,
                    "unsupported_content_type",
                    "Bad Request",
                    "Content-Type must be application/json",
                    &[],
                );
            }
            if req.body.len() > MAX_REPLAY_BODY {
                return problem(
                    413,
                    "payload_too_large",
                    "Payload Too Large",
                    format!("the limit is {MAX_REPLAY_BODY} bytes"),
                    &[],
                );
            }
            let request: ReplayRequest = match serde_json::from_slice(&req.body) {
                Ok(r) => r,
                Err(e) => {
                    return problem(
                        400,
                        "invalid_json",
                        "Bad Request",
                        format!("not a replay request: {e}"),
                        &[],
                    )
                }
            };
            match use_case::replay(
                app.ledger.as_ref(),
                app.queue.as_ref(),
                &scope,
                &request,
                now,
            )
            .await
            {
                Ok(a) => answer("replay", Ok(a)),
                Err(ConsoleError::BadRequest(m)) => bad_request(m),
                Err(ConsoleError::Unavailable(e)) => answer::<()>("replay", Err(e)),
            }
        }
    }
}

/// The key's scope, or the answer to give: 401 (the status API's words) or 503.
async fn authorize(app: &Ingest, req: &WebhookRequest) -> Result<KeyScope, WebhookResponse> {
    let keys = match app.status_api_key.get().await {
        Ok(s) => StatusKeys::parse(s.expose()),
        Err(e) => {
            warn!(error = %e, "status API key secret unavailable");
            return Err(unavailable("try again shortly"));
        }
    };
    if keys.is_empty() {
        warn!("the status API key secret holds no key; rejecting every console request");
    }
    presented_api_key(req)
        .and_then(|k| keys.scope_of(k))
        .ok_or_else(|| {
            info!(
                status = 401,
                "console request rejected: missing or wrong API key"
            );
            problem(
                401,
                "unauthorized",
                "Unauthorized",
                "send a valid API key as `x-api-key: <key>` or `Authorization: Bearer <key>`",
                &[],
            )
        })
}

fn bad_request(detail: impl Into<String>) -> WebhookResponse {
    problem(400, "invalid_request", "Bad Request", detail, &[])
}

fn answer<T: Serialize>(
    route: &'static str,
    result: Result<T, lb_pipeline::PortError>,
) -> WebhookResponse {
    match result.map(|v| serde_json::to_string(&v)) {
        Ok(Ok(body)) => {
            info!(route, status = 200, "console request served");
            WebhookResponse {
                status: 200,
                content_type: "application/json",
                body,
                retry_after: None,
            }
        }
        Ok(Err(e)) => {
            warn!(route, error = %e, "console answer not serializable");
            unavailable("try again shortly")
        }
        Err(e) => {
            warn!(route, status = 503, error = %e, "ledger unavailable for a console request");
            unavailable("the ledger is unavailable; try again shortly")
        }
    }
}

/// Where each connection's records are seen: HubSpot's app, or the read URL of
/// another HubSpot API base (the local stack's simulator).
fn record_links(app: &Ingest) -> RecordLinks {
    let connections = app
        .config
        .iter()
        .flat_map(|c| c.connections.values())
        .map(|c| {
            let links = match &c.kind {
                ConnectionKind::HubSpot(h)
                    if h.base_url.trim_end_matches('/') == lb_config::HUBSPOT_BASE_URL =>
                {
                    CrmLinks::HubSpotApp
                }
                ConnectionKind::HubSpot(h) => CrmLinks::HubSpotApi {
                    base_url: h.base_url.clone(),
                },
                _ => CrmLinks::None,
            };
            (c.name.clone(), links)
        })
        .collect();
    RecordLinks {
        connections,
        single: CrmLinks::HubSpotApp,
    }
}

/// `a=1&b=x%20y` → `[("a", "1"), ("b", "x y")]` (`+` is a space).
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handle;
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use lb_pipeline::fakes::{
        permanent, sample_lead, InMemoryLedger, InMemoryQueue, RecordingAlerts, StaticSecrets,
    };
    use lb_pipeline::secrets::CachedSecret;
    use lb_pipeline::Ledger as _;
    use lb_pipeline::{LedgerStatus, SyncOutcome};
    use serde_json::{json, Value};

    struct T {
        app: Ingest,
        ledger: Arc<InMemoryLedger>,
        queue: Arc<InMemoryQueue>,
    }

    fn app() -> T {
        let secrets = Arc::new(StaticSecrets::default());
        secrets.set("wh", r#"{"secrets":["s1"]}"#);
        secrets.set(
            "status",
            r#"{"keys":["admin-key"],"bots":{"bot_other":["other-key"]}}"#,
        );
        let ledger = Arc::new(InMemoryLedger::default());
        let queue = Arc::new(InMemoryQueue::default());
        let ttl = Duration::from_secs(60);
        let app = Ingest {
            ledger: ledger.clone(),
            queue: queue.clone(),
            webhook_secret: CachedSecret::new(secrets.clone(), "wh", ttl),
            status_api_key: CachedSecret::new(secrets.clone(), "status", ttl),
            alerts: Arc::new(RecordingAlerts::default()),
            rejection_window: Duration::from_secs(900),
            config: None,
            sources: BTreeMap::new(),
            source_secrets: BTreeMap::new(),
            secrets,
            secret_ttl: ttl,
        };
        T { app, ledger, queue }
    }

    async fn seed(t: &T) {
        let now = Utc::now();
        let dead = sample_lead("evt_dead", "priya.sharma@acmecorp.in");
        t.ledger
            .record_received(&dead, &dead.to_json(), now)
            .await
            .unwrap();
        t.ledger
            .mark_dead(
                "evt_dead",
                &lb_pipeline::FailureReason {
                    message: "email priya.sharma@acmecorp.in is invalid".into(),
                    ..permanent("x").reason()
                },
                None,
                now,
            )
            .await
            .unwrap();
        let ok = sample_lead("evt_ok", "ok@x.io");
        t.ledger
            .record_received(&ok, &ok.to_json(), now)
            .await
            .unwrap();
        t.ledger
            .complete(
                "evt_ok",
                &SyncOutcome {
                    crm: "hubspot".into(),
                    contact_id: "901".into(),
                    ..SyncOutcome::default()
                },
                now,
            )
            .await
            .unwrap();
    }

    fn req(method: &str, path_and_query: &str, key: Option<&str>, body: &str) -> WebhookRequest {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (path_and_query, None),
        };
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if let Some(k) = key {
            headers.push(("x-api-key".into(), k.into()));
        }
        WebhookRequest {
            method: method.into(),
            scheme: "https",
            path: path.into(),
            query,
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    async fn call(t: &T, r: WebhookRequest) -> (u16, Value) {
        let resp = handle(&t.app, &r, Utc::now()).await;
        let v = serde_json::from_str(&resp.body).unwrap_or(Value::Null);
        (resp.status, v)
    }

    #[tokio::test]
    async fn the_page_is_served_with_a_strict_policy_and_nothing_from_elsewhere() {
        let t = app();
        let resp = handle(&t.app, &req("GET", "/console", None, ""), Utc::now()).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.content_type, HTML);
        assert!(resp.body.contains("<title>"), "the page itself");
        let http = resp.into_http();
        let h = |n: &str| {
            http.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let csp = h("content-security-policy");
        assert!(
            csp.starts_with("default-src 'none'; script-src 'sha256-"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(h("x-content-type-options"), "nosniff");
        assert_eq!(h("referrer-policy"), "no-referrer");
        assert_eq!(h("cache-control"), "no-store");

        // One inline script and one inline style, and no URL to fetch anything from.
        assert_eq!(PAGE.matches("<script").count(), 1);
        assert_eq!(PAGE.matches("<style").count(), 1);
        for banned in [
            "http://",
            "https://",
            "src=",
            "@import",
            "url(",
            "innerHTML",
        ] {
            let hits: Vec<&str> = PAGE
                .lines()
                .filter(|l| l.contains(banned) && !l.contains("http://www.w3.org/2000/svg"))
                .collect();
            assert!(hits.is_empty(), "{banned} in the page: {hits:?}");
        }
        let script = PAGE
            .split_once("<script>")
            .and_then(|(_, r)| r.split_once("</script>"))
            .unwrap()
            .0;
        let digest = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(script));
        assert!(
            csp.contains(&digest),
            "the policy allows the page's own script"
        );

        let (status, _) = call(&t, req("POST", "/console", None, "")).await;
        assert_eq!(status, 405);
    }

    #[tokio::test]
    async fn every_console_route_needs_a_status_api_key() {
        let t = app();
        seed(&t).await;
        for (method, path) in [
            ("GET", "/v1/console/flow"),
            ("GET", "/v1/console/events"),
            ("GET", "/v1/console/events/evt_dead"),
            ("POST", "/v1/console/replay"),
        ] {
            for key in [None, Some("wrong")] {
                let (status, v) = call(&t, req(method, path, key, r#"{"ids":["evt_dead"]}"#)).await;
                assert_eq!(status, 401, "{method} {path} with {key:?}: {v}");
            }
        }
        assert_eq!(
            t.ledger.record("evt_dead").unwrap().status,
            LedgerStatus::Dead
        );
        assert!(t.queue.enqueued().is_empty());
        let (status, _) = call(&t, req("GET", "/v1/console/nope", Some("admin-key"), "")).await;
        assert_eq!(status, 404);
        let (status, _) = call(&t, req("GET", "/v1/console/replay", Some("admin-key"), "")).await;
        assert_eq!(status, 405);
    }

    #[tokio::test]
    async fn flow_list_and_story_answer_masked_json() {
        let t = app();
        seed(&t).await;
        let key = Some("admin-key");
        let (status, flow) = call(&t, req("GET", "/v1/console/flow?hours=6", key, "")).await;
        assert_eq!(status, 200, "{flow}");
        assert_eq!(flow["hours"], 6);
        assert_eq!(flow["per_hour"].as_array().unwrap().len(), 6);
        assert_eq!(flow["totals"]["accepted"], 2);
        assert_eq!(flow["totals"]["dead"], 1);
        assert_eq!(flow["totals"]["synced"], 1);
        let (status, _) = call(&t, req("GET", "/v1/console/flow?hours=0", key, "")).await;
        assert_eq!(status, 400);

        let (status, list) = call(
            &t,
            req(
                "GET",
                "/v1/console/events?status=dead&q=evt_&limit=10",
                key,
                "",
            ),
        )
        .await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["events"].as_array().unwrap().len(), 1);
        assert_eq!(list["events"][0]["id"], "evt_dead");
        assert_eq!(list["events"][0]["replayable"], true);
        let (status, _) = call(&t, req("GET", "/v1/console/events?status=lost", key, "")).await;
        assert_eq!(status, 400);

        let (status, story) = call(&t, req("GET", "/v1/console/events/evt_dead", key, "")).await;
        assert_eq!(status, 200, "{story}");
        assert_eq!(story["status"], "dead");
        assert_eq!(story["deliveries"][0]["last_error"]["http_status"], 400);
        let all = format!("{list}{story}{flow}");
        assert!(!all.contains("priya.sharma"), "{all}");
        assert!(!all.contains("Priya"), "{all}");
        assert!(all.contains("p***@acmecorp.in"), "{all}");

        let (status, ok) = call(&t, req("GET", "/v1/console/events/evt_ok", key, "")).await;
        assert_eq!(status, 200);
        assert_eq!(
            ok["deliveries"][0]["crm"]["links"][0]["url"],
            "https://app.hubspot.com/contacts/_/contact/901"
        );
        let (status, _) = call(&t, req("GET", "/v1/console/events/evt_never", key, "")).await;
        assert_eq!(status, 404);
    }

    #[tokio::test]
    async fn a_key_limited_to_another_bot_sees_nothing_and_replays_nothing() {
        let t = app();
        seed(&t).await;
        let key = Some("other-key");
        let (_, list) = call(&t, req("GET", "/v1/console/events", key, "")).await;
        assert_eq!(list["events"], json!([]));
        let (status, _) = call(&t, req("GET", "/v1/console/events/evt_dead", key, "")).await;
        assert_eq!(status, 404);
        let (status, v) = call(
            &t,
            req(
                "POST",
                "/v1/console/replay",
                key,
                r#"{"filter":{},"confirm":true}"#,
            ),
        )
        .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["replayed"], 0);
        assert!(t.queue.enqueued().is_empty());
    }

    #[tokio::test]
    async fn replay_puts_a_dead_delivery_back_on_the_queue() {
        let t = app();
        seed(&t).await;
        let key = Some("admin-key");
        let (status, dry) = call(
            &t,
            req(
                "POST",
                "/v1/console/replay",
                key,
                r#"{"filter":{"status":"dead"}}"#,
            ),
        )
        .await;
        assert_eq!(status, 200, "{dry}");
        assert_eq!(
            (dry["dry_run"].clone(), dry["would_replay"].clone()),
            (json!(true), json!(1))
        );
        assert!(
            t.queue.enqueued().is_empty(),
            "without confirm nothing moves"
        );

        let (status, v) = call(
            &t,
            req("POST", "/v1/console/replay", key, r#"{"ids":["evt_dead"]}"#),
        )
        .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["replayed"], 1);
        assert_eq!(v["entries"][0]["action"], "replayed");
        assert_eq!(v["entries"][0]["who"], "p***@acmecorp.in");
        assert_eq!(t.queue.enqueued().len(), 1);
        assert_eq!(
            t.ledger.record("evt_dead").unwrap().status,
            LedgerStatus::Queued
        );

        for bad in [r#"{"ids":[]}"#, r#"{"nope":1}"#, "not json"] {
            let (status, v) = call(&t, req("POST", "/v1/console/replay", key, bad)).await;
            assert_eq!(status, 400, "{bad}: {v}");
        }
        let mut form = req("POST", "/v1/console/replay", key, r#"{"ids":["evt_dead"]}"#);
        form.headers[0].1 = "application/x-www-form-urlencoded".into();
        let (status, _) = call(&t, form).await;
        assert_eq!(status, 400, "a form post is not a replay");
    }

    #[tokio::test]
    async fn a_ledger_outage_is_503() {
        let t = app();
        t.ledger.set_failing(true);
        let (status, _) = call(&t, req("GET", "/v1/console/events", Some("admin-key"), "")).await;
        assert_eq!(status, 503);
    }

    #[test]
    fn query_strings_are_decoded() {
        assert_eq!(
            query_pairs(Some("q=evt%5F1&bot=bot+a&x")),
            vec![
                ("q".to_string(), "evt_1".to_string()),
                ("bot".to_string(), "bot a".to_string()),
                ("x".to_string(), String::new())
            ]
        );
        assert!(query_pairs(None).is_empty());
    }
}
