//! Behaviour tests of the Pipedrive simulator over HTTP, as a client sees it.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

use super::{PipedriveSimConfig, RunningPipedriveSim};

struct Harness {
    sim: RunningPipedriveSim,
    http: reqwest::Client,
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Harness {
    async fn start(config: PipedriveSimConfig) -> Harness {
        let sim = RunningPipedriveSim::start("127.0.0.1:0".parse().expect("addr"), config)
            .await
            .expect("simulator starts");
        Harness {
            sim,
            http: reqwest::Client::new(),
        }
    }

    async fn with_defaults() -> Harness {
        Harness::start(PipedriveSimConfig::default()).await
    }

    async fn raw(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.expect("answered");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    /// A call with the valid token in `x-api-token`.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.sim.base_url))
            .header("x-api-token", &self.sim.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.raw(req).await
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}/__admin/{path}", self.sim.base_url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let a = self.raw(req).await;
        assert!(a.status < 300, "admin {path}: {} {}", a.status, a.body);
        a.body
    }

    async fn person(&self, body: Value) -> u64 {
        let a = self.call(Method::POST, "/api/v2/persons", Some(body)).await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body["data"]["id"].as_u64().expect("person id")
    }

    /// Polls the search until it finds `id` (after the index lag), within 10 s.
    async fn searchable(&self, field: &str, term: &str, id: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.search(field, term).await != vec![id] {
            assert!(
                std::time::Instant::now() < deadline,
                "{term} never became searchable"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn search(&self, field: &str, term: &str) -> Vec<u64> {
        let term: String = term
            .bytes()
            .map(|b| match b {
                b'+' => "%2B".to_owned(),
                b'@' => "%40".to_owned(),
                b => (b as char).to_string(),
            })
            .collect();
        let a = self
            .call(
                Method::GET,
                &format!("/api/v2/persons/search?term={term}&fields={field}&exact_match=true"),
                None,
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body["data"]["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["item"]["id"].as_u64().expect("id"))
            .collect()
    }
}

#[tokio::test]
async fn pipedrive_requests_without_the_token_get_the_gateways_401() {
    let h = Harness::with_defaults().await;
    let url = format!("{}/api/v2/persons", h.sim.base_url);
    let none = h.raw(h.http.get(&url)).await;
    assert_eq!(none.status, 401);
    assert_eq!(
        none.body,
        json!({"success": false, "error": "unauthorized access", "errorCode": 401,
               "error_info": "Please check developers.pipedrive.com"})
    );
    assert!(none.header("x-ratelimit-limit").is_none());
    let wrong = h
        .raw(h.http.get(&url).header("x-api-token", "revoked"))
        .await;
    assert_eq!(wrong.status, 401);
    // An unknown path without a token is the same 401; with one, a 404.
    let stray = h
        .raw(h.http.get(format!("{}/api/v2/nothing", h.sim.base_url)))
        .await;
    assert_eq!(stray.status, 401);
    assert_eq!(
        h.call(Method::GET, "/api/v2/nothing", None).await.status,
        404
    );
    // The legacy query parameter is accepted too.
    let legacy = h
        .raw(h.http.get(format!("{url}?api_token={}", h.sim.token)))
        .await;
    assert_eq!(legacy.status, 200, "{}", legacy.body);
    assert_eq!(legacy.body["additional_data"]["next_cursor"], Value::Null);
}

#[tokio::test]
async fn pipedrive_person_writes_are_validated_like_v2() {
    let h = Harness::with_defaults().await;
    let no_name = h
        .call(
            Method::POST,
            "/api/v2/persons",
            Some(json!({"emails": [{"value": "a@x.io"}]})),
        )
        .await;
    assert_eq!(no_name.status, 400);
    assert_eq!(no_name.body["success"], json!(false));
    assert_eq!(no_name.body["error"], "Name must be given.");
    assert!(no_name.body["error_info"].is_string());
    assert_eq!(no_name.body["data"], Value::Null);

    let unknown_param = h
        .call(
            Method::POST,
            "/api/v2/persons",
            Some(json!({"name": "A", "email": "a@x.io"})),
        )
        .await;
    assert_eq!(unknown_param.status, 400);
    assert_eq!(
        unknown_param.body["error"],
        "Validation failed: email: Parameter 'email' is not allowed for this request"
    );
    assert_eq!(unknown_param.body["code"], "ERR_SCHEMA_VALIDATION_FAILED");

    let key = "0123456789abcdef0123456789abcdef01234567";
    let unknown_field = h
        .call(
            Method::POST,
            "/api/v2/persons",
            Some(json!({"name": "A", "custom_fields": {key: "x"}})),
        )
        .await;
    assert_eq!(unknown_field.status, 400);
    assert!(
        unknown_field.body["error"]
            .as_str()
            .is_some_and(|e| e.contains(key) && e.contains("does not exist")),
        "{}",
        unknown_field.body
    );

    // An admin adds the field: the same write goes through, and the field is listed.
    let field = h
        .admin(
            Method::POST,
            "person-fields",
            Some(json!({"name": "Budget", "field_type": "varchar"})),
        )
        .await;
    let key = field["key"].as_str().expect("key").to_owned();
    assert_eq!(key.len(), 40);
    let id = h
        .person(json!({"name": "A", "custom_fields": {key.clone(): "10k"}}))
        .await;
    let got = h
        .call(Method::GET, &format!("/api/v2/persons/{id}"), None)
        .await;
    assert_eq!(got.body["data"]["custom_fields"][&key], "10k");
    let fields = h.call(Method::GET, "/v1/personFields", None).await;
    let listed = fields.body["data"].as_array().expect("fields");
    assert!(listed
        .iter()
        .any(|f| f["key"] == key.as_str() && f["edit_flag"] == json!(true)));
    assert!(listed
        .iter()
        .any(|f| f["key"] == "email" && f["edit_flag"] == json!(false)));

    // Strict v2 types: an id as a string, a boolean as 1.
    let loose = h
        .call(
            Method::POST,
            "/api/v2/persons",
            Some(json!({"name": "A", "emails": [{"value": "a@x.io", "primary": 1}]})),
        )
        .await;
    assert_eq!(loose.status, 400, "{}", loose.body);
    let contact_sync = h
        .call(
            Method::POST,
            "/api/v2/persons",
            Some(json!({"name": "A", "job_title": "CTO"})),
        )
        .await;
    assert_eq!(contact_sync.status, 403);
}

#[tokio::test]
async fn pipedrive_a_patch_replaces_the_email_and_phone_arrays() {
    let h = Harness::with_defaults().await;
    let id = h
        .person(json!({"name": "Priya", "emails": [{"value": "a@x.io", "primary": true, "label": "home"}],
                       "phones": [{"value": "+14155552671"}]}))
        .await;
    let path = format!("/api/v2/persons/{id}");
    let patched = h
        .call(
            Method::PATCH,
            &path,
            Some(json!({"emails": [{"value": "b@x.io"}]})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let data = &patched.body["data"];
    assert_eq!(
        data["emails"],
        json!([{"value": "b@x.io", "primary": true, "label": "work"}])
    );
    assert_eq!(data["phones"][0]["value"], "+14155552671");
    assert_eq!(data["name"], "Priya");
    let empty_name = h
        .call(Method::PATCH, &path, Some(json!({"name": " "})))
        .await;
    assert_eq!(empty_name.status, 400);
    let missing = h
        .call(
            Method::PATCH,
            "/api/v2/persons/999999",
            Some(json!({"name": "X"})),
        )
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"], "Person not found");
    let deleted = h.call(Method::DELETE, &path, None).await;
    assert_eq!(deleted.body["data"]["id"], json!(id));
    assert_eq!(h.call(Method::GET, &path, None).await.status, 404);
}

#[tokio::test]
async fn pipedrive_exact_search_ignores_case_and_lags_behind_writes() {
    let h = Harness::start(PipedriveSimConfig {
        // Long enough that the reads right after a write are inside it on a busy machine.
        search_lag_ms: 1_500,
        search_rate_max: 100,
        ..PipedriveSimConfig::default()
    })
    .await;
    let id = h
        .person(
            json!({"name": "Priya", "emails": [{"value": "Priya@Acme.in"}],
                       "phones": [{"value": "+14155552671"}]}),
        )
        .await;
    assert!(
        h.search("email", "priya@acme.in").await.is_empty(),
        "not yet indexed"
    );
    h.searchable("email", "priya@acme.in", id).await;
    assert_eq!(h.search("email", "PRIYA@ACME.IN").await, vec![id]);
    assert_eq!(h.search("phone", "+14155552671").await, vec![id]);
    assert!(
        h.search("email", "priya@acme").await.is_empty(),
        "exact only"
    );
    assert!(
        h.search("phone", "priya@acme.in").await.is_empty(),
        "field limited"
    );

    // A change is searchable only after the lag, too: the old address is found meanwhile.
    h.call(
        Method::PATCH,
        &format!("/api/v2/persons/{id}"),
        Some(json!({"emails": [{"value": "new@acme.in"}]})),
    )
    .await;
    assert_eq!(h.search("email", "priya@acme.in").await, vec![id]);
    assert!(h.search("email", "new@acme.in").await.is_empty());
    h.searchable("email", "new@acme.in", id).await;

    let item = h
        .call(
            Method::GET,
            "/api/v2/persons/search?term=new%40acme.in&fields=email&exact_match=true",
            None,
        )
        .await;
    let first = &item.body["data"]["items"][0];
    assert_eq!(first["item"]["type"], "person");
    assert_eq!(first["item"]["emails"], json!(["new@acme.in"]));
    assert!(first["result_score"].is_number());

    let short = h
        .call(Method::GET, "/api/v2/persons/search?term=a", None)
        .await;
    assert_eq!(short.status, 400);
    assert_eq!(short.body["error"]["failed_fields"], json!(["term"]));
}

#[tokio::test]
async fn pipedrive_persons_and_deals_list_by_cursor() {
    let h = Harness::with_defaults().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(h.person(json!({"name": format!("P{n}")})).await);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v2/persons?limit=2&cursor={c}"),
            None => "/api/v2/persons?limit=2".to_owned(),
        };
        let page = h.call(Method::GET, &path, None).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for p in page.body["data"].as_array().expect("data") {
            seen.push(p["id"].as_u64().expect("id"));
        }
        match page.body["additional_data"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    let no_title = h
        .call(
            Method::POST,
            "/api/v2/deals",
            Some(json!({"person_id": ids[0]})),
        )
        .await;
    assert_eq!(no_title.status, 400);
    let bad_stage = h
        .call(
            Method::POST,
            "/api/v2/deals",
            Some(json!({"title": "D", "person_id": ids[0], "stage_id": 99})),
        )
        .await;
    assert_eq!(bad_stage.status, 400);
    assert_eq!(bad_stage.body["error"], "Stage not found");
    let string_id = h
        .call(
            Method::POST,
            "/api/v2/deals",
            Some(json!({"title": "D", "person_id": ids[0].to_string()})),
        )
        .await;
    assert_eq!(string_id.status, 400, "v2 does not convert strings");
    let deal = h
        .call(
            Method::POST,
            "/api/v2/deals",
            Some(json!({"title": "D", "person_id": ids[0], "stage_id": 2})),
        )
        .await;
    assert_eq!(deal.status, 200, "{}", deal.body);
    assert_eq!(deal.body["data"]["pipeline_id"], json!(1));
    let listed = h
        .call(
            Method::GET,
            &format!("/api/v2/deals?person_id={}", ids[0]),
            None,
        )
        .await;
    assert_eq!(listed.body["data"][0]["title"], "D");
    let other = h
        .call(
            Method::GET,
            &format!("/api/v2/deals?person_id={}", ids[1]),
            None,
        )
        .await;
    assert_eq!(other.body["data"], json!([]));
}

#[tokio::test]
async fn pipedrive_notes_need_one_existing_parent_and_page_by_offset() {
    let h = Harness::with_defaults().await;
    let person = h.person(json!({"name": "P"})).await;
    let orphan = h
        .call(Method::POST, "/v1/notes", Some(json!({"content": "x"})))
        .await;
    assert_eq!(orphan.status, 400);
    let unknown = h
        .call(
            Method::POST,
            "/v1/notes",
            Some(json!({"content": "x", "person_id": 999_999})),
        )
        .await;
    assert_eq!(unknown.status, 400);
    assert_eq!(
        unknown.body["error"],
        "Cannot add/update note because person does not exist or you have no permissions to access this person."
    );
    let empty = h
        .call(
            Method::POST,
            "/v1/notes",
            Some(json!({"content": " ", "person_id": person})),
        )
        .await;
    assert_eq!(empty.status, 400);
    let too_long = h
        .call(
            Method::POST,
            "/v1/notes",
            Some(json!({"content": "x".repeat(100_001), "person_id": person})),
        )
        .await;
    assert_eq!(too_long.status, 400);

    let none = h
        .call(Method::GET, &format!("/v1/notes?person_id={person}"), None)
        .await;
    assert_eq!(none.body["data"], Value::Null);
    assert_eq!(
        none.body["additional_data"]["pagination"]["more_items_in_collection"],
        json!(false)
    );

    let mut ids = Vec::new();
    for n in 0..3 {
        let a = h
            .call(
                Method::POST,
                "/v1/notes",
                Some(
                    json!({"content": format!("<p>n{n}</p>"), "person_id": person,
                            "add_time": "2026-05-04 11:23:45"}),
                ),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        assert_eq!(a.body["data"]["add_time"], "2026-05-04 11:23:45");
        ids.push(a.body["data"]["id"].as_u64().expect("id"));
    }
    let first = h
        .call(
            Method::GET,
            &format!("/v1/notes?person_id={person}&start=0&limit=2"),
            None,
        )
        .await;
    let pagination = &first.body["additional_data"]["pagination"];
    assert_eq!(pagination["more_items_in_collection"], json!(true));
    assert_eq!(pagination["next_start"], json!(2));
    assert_eq!(first.body["data"].as_array().map(Vec::len), Some(2));
    let rest = h
        .call(
            Method::GET,
            &format!("/v1/notes?person_id={person}&start=2&limit=2"),
            None,
        )
        .await;
    assert_eq!(rest.body["data"][0]["id"], json!(ids[2]));
    assert_eq!(
        rest.body["additional_data"]["pagination"]["more_items_in_collection"],
        json!(false)
    );

    let path = format!("/v1/notes/{}", ids[0]);
    let put = h
        .call(
            Method::PUT,
            &path,
            Some(json!({"content": "<p>edited</p>"})),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    let got = h.call(Method::GET, &path, None).await;
    assert_eq!(got.body["data"]["content"], "<p>edited</p>");
    assert_eq!(got.body["data"]["person_id"], json!(person));
    assert_eq!(
        h.call(Method::GET, "/v1/notes/999999", None).await.status,
        404
    );
}

#[tokio::test]
async fn pipedrive_the_burst_window_answers_429_with_its_headers() {
    let h = Harness::start(PipedriveSimConfig {
        rate_limit_max: 3,
        rate_limit_window_ms: 2_000,
        ..PipedriveSimConfig::default()
    })
    .await;
    for remaining in (0..3).rev() {
        let a = h.call(Method::GET, "/v1/personFields", None).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(
            a.header("x-ratelimit-remaining"),
            Some(remaining.to_string().as_str())
        );
        assert_eq!(a.header("x-ratelimit-reset"), Some("2"));
    }
    let refused = h.call(Method::GET, "/v1/personFields", None).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body["success"], json!(false));
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
    assert!(refused.header("x-ratelimit-reset").is_some());
    // The window passing (a duration, not a condition): the next call is admitted.
    tokio::time::sleep(Duration::from_millis(2_050)).await;
    assert_eq!(
        h.call(Method::GET, "/v1/personFields", None).await.status,
        200
    );
    let stats = h.admin(Method::GET, "stats", None).await;
    assert_eq!(stats["rate_limited"], json!(1));
    assert_eq!(stats["by_route"]["GET /v1/personFields"], json!(5));
    assert_eq!(stats["total"], json!(5));
}

#[tokio::test]
async fn pipedrive_search_has_its_own_window_of_ten() {
    let h = Harness::with_defaults().await;
    for _ in 0..10 {
        let a = h
            .call(Method::GET, "/api/v2/persons/search?term=zz", None)
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.header("x-ratelimit-limit"), Some("10"));
    }
    let refused = h
        .call(Method::GET, "/api/v2/persons/search?term=zz", None)
        .await;
    assert_eq!(refused.status, 429);
    // Other routes still have room in the general window.
    assert_eq!(
        h.call(Method::GET, "/api/v2/persons", None).await.status,
        200
    );
}

#[tokio::test]
async fn pipedrive_the_daily_budget_is_spent_by_cost_and_then_refuses_everything() {
    let h = Harness::start(PipedriveSimConfig {
        daily_budget: 50,
        ..PipedriveSimConfig::default()
    })
    .await;
    let created = h
        .call(Method::POST, "/api/v2/persons", Some(json!({"name": "P"})))
        .await;
    assert_eq!(created.header("x-daily-ratelimit-token-limit"), Some("50"));
    assert_eq!(
        created.header("x-daily-ratelimit-token-remaining"),
        Some("40")
    );
    assert_eq!(created.header("x-daily-requests-left"), Some("40"));
    let list = h.call(Method::GET, "/api/v2/persons", None).await;
    assert_eq!(list.header("x-daily-ratelimit-token-remaining"), Some("20"));
    assert!(
        list.header("x-daily-requests-left").is_none(),
        "POST/PUT only"
    );
    let search = h
        .call(Method::GET, "/api/v2/persons/search?term=zz", None)
        .await;
    assert_eq!(search.status, 429, "a search costs 40");
    assert_eq!(
        search.header("x-daily-ratelimit-token-remaining"),
        Some("20")
    );
    h.admin(Method::POST, "config", Some(json!({"daily_used": 0})))
        .await;
    assert_eq!(
        h.call(Method::GET, "/api/v2/persons/search?term=zz", None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn pipedrive_admin_faults_reset_and_token_rotation() {
    let h = Harness::with_defaults().await;
    h.admin(
        Method::POST,
        "faults",
        Some(
            json!({"kind": "error", "status": 429, "count": 1, "retry_after": 7,
                    "route": "POST /api/v2/persons"}),
        ),
    )
    .await;
    let limited = h
        .call(Method::POST, "/api/v2/persons", Some(json!({"name": "P"})))
        .await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("7"));
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    h.admin(
        Method::POST,
        "faults",
        Some(json!({"kind": "error", "status": 503, "route": "/v1/notes"})),
    )
    .await;
    let down = h.call(Method::GET, "/v1/notes", None).await;
    assert_eq!(down.status, 503);
    assert_eq!(down.body["success"], json!(false));
    assert!(down.header("x-ratelimit-limit").is_some());
    h.admin(Method::DELETE, "faults", None).await;
    assert_eq!(h.call(Method::GET, "/v1/notes", None).await.status, 200);

    let id = h.person(json!({"name": "P"})).await;
    h.admin(Method::POST, "reset", None).await;
    assert_eq!(
        h.call(Method::GET, &format!("/api/v2/persons/{id}"), None)
            .await
            .status,
        404
    );
    let stats = h.admin(Method::GET, "stats", None).await;
    assert_eq!(stats["total"], json!(1));

    let config = h
        .admin(Method::POST, "config", Some(json!({"token": "rotated"})))
        .await;
    assert_eq!(config["token"], "rotated");
    assert_eq!(
        h.call(Method::GET, "/api/v2/persons", None).await.status,
        401
    );
}
