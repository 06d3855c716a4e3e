//! The webhook target simulator over HTTP.

use std::time::Duration;

use crm_sim::RunningWebhookSim;
use serde_json::{json, Value};

struct Harness {
    sim: RunningWebhookSim,
    http: reqwest::Client,
}

/// Status, `Retry-After` and JSON body of one answer.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

impl Harness {
    async fn start() -> Harness {
        let addr = "127.0.0.1:0".parse().expect("socket address");
        Harness {
            sim: RunningWebhookSim::start(addr)
                .await
                .expect("simulator starts"),
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("request is answered");
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.expect("body");
        let body =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body, got {text:?}"));
        Answer {
            status,
            retry_after,
            body,
        }
    }

    async fn hook(&self, path: &str, body: &Value) -> Answer {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    async fn received(&self) -> Vec<Value> {
        let answer = self
            .admin(reqwest::Method::GET, "/__admin/received", None)
            .await;
        answer.body["requests"]
            .as_array()
            .expect("a requests array")
            .clone()
    }

    async fn stats(&self) -> Value {
        self.admin(reqwest::Method::GET, "/__admin/stats", None)
            .await
            .body
    }

    async fn add_fault(&self, fault: Value) {
        let answer = self
            .admin(reqwest::Method::POST, "/__admin/faults", Some(fault))
            .await;
        assert_eq!(answer.status, 201, "{}", answer.body);
    }
}

#[tokio::test]
async fn a_post_is_recorded_with_its_body_headers_and_query_and_answered_with_an_id() {
    let h = Harness::start().await;
    let answer = h
        .send(
            h.http
                .post(h.url("/hooks/catch/123/abc?src=lb"))
                .header("X-Custom", "yes")
                .header("Idempotency-Key", "evt_1")
                .json(&json!({"email": "jane@example.com", "n": 2})),
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, json!({"ok": true, "id": "wh_1"}));

    let text = h
        .send(
            h.http
                .post(h.url("/plain"))
                .header("content-type", "text/plain")
                .body("hello=world"),
        )
        .await;
    assert_eq!(text.body["id"], "wh_2");

    let got = h.received().await;
    assert_eq!(got.len(), 2);
    let first = &got[0];
    assert_eq!(first["seq"], 1);
    assert_eq!(first["method"], "POST");
    assert_eq!(first["path"], "/hooks/catch/123/abc");
    assert_eq!(first["query"], "src=lb");
    assert_eq!(first["headers"]["x-custom"], "yes");
    assert_eq!(first["headers"]["idempotency-key"], "evt_1");
    assert_eq!(first["headers"]["content-type"], "application/json");
    assert_eq!(first["body"], json!({"email": "jane@example.com", "n": 2}));
    assert_eq!(first["status"], 200);
    assert!(first["received_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert_eq!(got[1]["body"], json!("hello=world"));
    assert_eq!(got[1]["query"], Value::Null);

    assert_eq!(
        h.stats().await,
        json!({"total": 2, "by_status": {"200": 2}, "faulted": 0})
    );
}

#[tokio::test]
async fn other_methods_and_unknown_admin_paths_are_not_recorded() {
    let h = Harness::start().await;
    assert_eq!(h.send(h.http.get(h.url("/hook"))).await.status, 405);
    assert_eq!(
        h.admin(reqwest::Method::POST, "/__admin/nope", Some(json!({})))
            .await
            .status,
        404
    );
    assert!(h.received().await.is_empty());
}

#[tokio::test]
async fn a_required_header_turns_away_requests_without_that_exact_value() {
    let h = Harness::start().await;
    let config = h
        .admin(
            reqwest::Method::POST,
            "/__admin/config",
            Some(json!({"require_header": {"name": "Authorization", "value": "Bearer s3cret"}})),
        )
        .await;
    assert_eq!(config.status, 200);
    assert_eq!(
        config.body["require_header"],
        json!({"name": "authorization", "value": "Bearer s3cret"})
    );

    let missing = h.hook("/hook", &json!({"a": 1})).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.body, json!({"error": "unauthorized"}));
    let wrong = h
        .send(
            h.http
                .post(h.url("/hook"))
                .bearer_auth("nope")
                .json(&json!({"a": 2})),
        )
        .await;
    assert_eq!(wrong.status, 401);
    let right = h
        .send(
            h.http
                .post(h.url("/hook"))
                .bearer_auth("s3cret")
                .json(&json!({"a": 3})),
        )
        .await;
    assert_eq!(right.status, 200);
    assert_eq!(right.body["id"], "wh_3");

    let got = h.received().await;
    let statuses: Vec<&Value> = got.iter().map(|r| &r["status"]).collect();
    assert_eq!(statuses, [&json!(401), &json!(401), &json!(200)]);
    assert_eq!(got[1]["headers"]["authorization"], "Bearer nope");
    assert_eq!(h.stats().await["by_status"], json!({"200": 1, "401": 2}));

    let cleared = h
        .admin(
            reqwest::Method::POST,
            "/__admin/config",
            Some(json!({"require_header": null})),
        )
        .await;
    assert_eq!(cleared.body, json!({"require_header": null}));
    assert_eq!(h.hook("/hook", &json!({})).await.status, 200);
}

#[tokio::test]
async fn an_error_fault_with_a_count_and_retry_after_fails_that_many_requests_then_clears() {
    let h = Harness::start().await;
    h.add_fault(json!({"kind":"error","status":503,"probability":1.0,"count":2,"retry_after":3}))
        .await;
    for _ in 0..2 {
        let answer = h.hook("/hook", &json!({"a": 1})).await;
        assert_eq!(answer.status, 503);
        assert_eq!(answer.retry_after.as_deref(), Some("3"));
        assert_eq!(answer.body, json!({"error": "Service Unavailable"}));
    }
    let ok = h.hook("/hook", &json!({"a": 1})).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.retry_after, None);

    let faults = h.admin(reqwest::Method::GET, "/__admin/faults", None).await;
    assert_eq!(faults.body, json!({"faults": []}));
    assert_eq!(
        h.stats().await,
        json!({"total": 3, "by_status": {"200": 1, "503": 2}, "faulted": 2})
    );
}

#[tokio::test]
async fn a_429_fault_without_retry_after_has_no_header_and_faults_can_be_cleared() {
    let h = Harness::start().await;
    h.add_fault(json!({"kind":"error","status":429})).await;
    let limited = h.hook("/hook", &json!({})).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.retry_after, None);
    let cleared = h
        .admin(reqwest::Method::DELETE, "/__admin/faults", None)
        .await;
    assert_eq!(cleared.body, json!({"cleared": 1}));
    assert_eq!(h.hook("/hook", &json!({})).await.status, 200);
}

#[tokio::test]
async fn invalid_faults_are_refused_with_400() {
    let h = Harness::start().await;
    for bad in [
        json!({"kind":"error"}),
        json!({"kind":"latency","ms":10,"retry_after":1}),
        json!({"kind":"explode"}),
        json!({"kind":"error","status":503,"colour":"red"}),
    ] {
        let answer = h
            .admin(reqwest::Method::POST, "/__admin/faults", Some(bad.clone()))
            .await;
        assert_eq!(answer.status, 400, "{bad}");
        assert!(answer.body["error"].is_string(), "{bad}");
    }
}

#[tokio::test]
async fn a_timeout_fault_holds_the_request_until_the_client_gives_up() {
    let h = Harness::start().await;
    h.add_fault(json!({"kind":"timeout","count":1})).await;
    let err = h
        .http
        .post(h.url("/hook"))
        .timeout(Duration::from_millis(300))
        .json(&json!({"a": 1}))
        .send()
        .await
        .expect_err("never answered");
    assert!(err.is_timeout(), "{err}");
    assert_eq!(h.hook("/hook", &json!({})).await.status, 200);
    let got = h.received().await;
    assert_eq!(got[0]["status"], Value::Null);
    assert_eq!(got[1]["status"], 200);
}

#[tokio::test]
async fn a_latency_fault_delays_the_answer() {
    let h = Harness::start().await;
    h.add_fault(json!({"kind":"latency","ms":200})).await;
    let started = std::time::Instant::now();
    assert_eq!(h.hook("/hook", &json!({})).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn reset_empties_requests_counters_faults_and_the_required_header() {
    let h = Harness::start().await;
    h.hook("/hook", &json!({"a": 1})).await;
    h.add_fault(json!({"kind":"error","status":500})).await;
    h.admin(
        reqwest::Method::POST,
        "/__admin/config",
        Some(json!({"require_header": {"name": "x-key", "value": "k"}})),
    )
    .await;

    let reset = h.admin(reqwest::Method::POST, "/__admin/reset", None).await;
    assert_eq!(reset.body, json!({"reset": true}));
    assert!(h.received().await.is_empty());
    assert_eq!(
        h.stats().await,
        json!({"total": 0, "by_status": {}, "faulted": 0})
    );

    let answer = h.hook("/hook", &json!({"b": 2})).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["id"], "wh_1");
}
