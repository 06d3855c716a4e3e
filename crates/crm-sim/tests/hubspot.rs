//! The HubSpot simulator over HTTP, as the production adapter sees it.

use std::future::Future;
use std::time::{Duration, Instant};

use crm_sim::{RunningSim, SimConfig};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

/// A running simulator and a client for it.
struct Harness {
    sim: RunningSim,
    http: reqwest::Client,
}

/// Status, headers and JSON body (`Null` when empty) of one answer.
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
    async fn start(config: SimConfig) -> Harness {
        let addr = "127.0.0.1:0".parse().expect("socket address");
        let sim = RunningSim::start(addr, config)
            .await
            .expect("simulator starts");
        Harness {
            sim,
            http: reqwest::Client::new(),
        }
    }

    async fn with_defaults() -> Harness {
        Harness::start(SimConfig::default()).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("request is answered");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body, got {text:?}"))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    /// An authenticated business call.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.sim.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(body)).await
    }

    /// An unauthenticated `/__admin` call.
    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    async fn create_contact(&self, properties: Value) -> String {
        let answer = self
            .post(
                "/crm/v3/objects/contacts",
                json!({ "properties": properties }),
            )
            .await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        id_of(&answer.body)
    }

    async fn search_email(&self, email: &str) -> Answer {
        self.post(
            "/crm/v3/objects/contacts/search",
            json!({
                "filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}],
                "properties": ["email"],
                "limit": 1
            }),
        )
        .await
    }
}

fn id_of(record: &Value) -> String {
    record["id"].as_str().expect("record id").to_owned()
}

fn upsert_input(email: &str, trace: &str, properties: Value) -> Value {
    json!({"id": email, "idProperty": "email", "objectWriteTraceId": trace, "properties": properties})
}

fn note_for(contact_id: &str, body: &str) -> Value {
    json!({
        "properties": {"hs_timestamp": "2026-05-01T10:00:00Z", "hs_note_body": body},
        "associations": [{
            "to": {"id": contact_id},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]
        }]
    })
}

/// Polls `check` until it yields a value or `deadline` passes.
async fn eventually<T, F, Fut>(deadline: Duration, interval: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(interval).await;
    }
}

#[tokio::test]
async fn requests_without_a_valid_bearer_token_get_401_invalid_authentication() {
    let h = Harness::with_defaults().await;
    let missing = h.send(h.http.get(h.url("/crm/v3/objects/contacts"))).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.body["status"], "error");
    assert_eq!(missing.body["category"], "INVALID_AUTHENTICATION");
    assert!(missing.body["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("Authentication credentials not found.")));
    assert!(missing.body["correlationId"]
        .as_str()
        .is_some_and(|c| !c.is_empty()));
    assert!(missing.header("x-hubspot-ratelimit-max").is_none());

    let wrong = h
        .send(
            h.http
                .get(h.url("/crm/v3/objects/contacts"))
                .bearer_auth("nope"),
        )
        .await;
    assert_eq!(wrong.status, 401);
}

#[tokio::test]
async fn creating_a_contact_with_a_used_email_answers_409_with_the_existing_id() {
    let h = Harness::with_defaults().await;
    let id = h
        .create_contact(json!({"email": "jane@example.com", "firstname": "Jane"}))
        .await;
    let again = h
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "  JANE@example.com "}}),
        )
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(again.body["category"], "CONFLICT");
    assert_eq!(
        again.body["message"],
        format!("Contact already exists. Existing ID: {id}")
    );
}

#[tokio::test]
async fn a_created_contact_has_numeric_id_timestamps_and_sim_set_properties() {
    let h = Harness::with_defaults().await;
    let created = h
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "a@example.com", "leadbridge_qualification_score": 80}}),
        )
        .await;
    assert_eq!(created.status, 201);
    let id = id_of(&created.body);
    assert!(id.parse::<u64>().is_ok());
    let props = &created.body["properties"];
    assert_eq!(props["hs_object_id"], id.as_str());
    assert_eq!(props["leadbridge_qualification_score"], "80");
    assert!(props["createdate"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z') && t.len() == 24));
    assert!(props["lastmodifieddate"].is_string());
    assert_eq!(created.body["archived"], false);
    assert!(created.body["createdAt"].is_string() && created.body["updatedAt"].is_string());
}

#[tokio::test]
async fn batch_upsert_creates_then_updates_the_contact_matching_the_email_case_insensitively() {
    let h = Harness::with_defaults().await;
    let first = h
        .post(
            "/crm/v3/objects/contacts/batch/upsert",
            json!({"inputs": [upsert_input("Jane@X.com", "evt_1", json!({"firstname": "Jane"}))]}),
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["status"], "COMPLETE");
    let result = &first.body["results"][0];
    assert_eq!(result["new"], true);
    assert_eq!(result["objectWriteTraceId"], "evt_1");
    assert_eq!(result["properties"]["email"], "jane@x.com");
    let id = id_of(result);

    let second = h
        .post(
            "/crm/v3/objects/contacts/batch/upsert",
            json!({"inputs": [upsert_input("JANE@x.COM", "evt_2", json!({"lastname": "Doe"}))]}),
        )
        .await;
    assert_eq!(second.status, 200, "{}", second.body);
    let result = &second.body["results"][0];
    assert_eq!(result["new"], false);
    assert_eq!(id_of(result), id);
    assert_eq!(result["properties"]["firstname"], "Jane");
    assert_eq!(result["properties"]["lastname"], "Doe");
    assert!(second.body["startedAt"].is_string() && second.body["completedAt"].is_string());
}

#[tokio::test]
async fn batch_upsert_with_one_bad_input_answers_207_and_maps_the_error_to_its_trace_id() {
    let h = Harness::with_defaults().await;
    let answer = h
        .post(
            "/crm/v3/objects/contacts/batch/upsert",
            json!({"inputs": [
                upsert_input("ok@x.com", "evt_1", json!({"firstname": "Ok"})),
                upsert_input("bad@x.com", "evt_2", json!({"foo": "bar"})),
            ]}),
        )
        .await;
    assert_eq!(answer.status, 207, "{}", answer.body);
    assert_eq!(answer.body["status"], "COMPLETE");
    assert_eq!(answer.body["numErrors"], 1);
    assert_eq!(answer.body["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(answer.body["results"][0]["objectWriteTraceId"], "evt_1");
    let error = &answer.body["errors"][0];
    assert_eq!(error["status"], "error");
    assert_eq!(error["category"], "VALIDATION_ERROR");
    assert_eq!(error["message"], "Property \"foo\" does not exist");
    assert_eq!(error["context"]["objectWriteTraceId"], json!(["evt_2"]));
}

#[tokio::test]
async fn batch_upsert_rejects_the_whole_batch_for_duplicates_oversize_or_all_inputs_failing() {
    let h = Harness::with_defaults().await;
    let path = "/crm/v3/objects/contacts/batch/upsert";
    let duplicate = h
        .post(
            path,
            json!({"inputs": [upsert_input("a@x.com", "e1", json!({})), upsert_input("A@x.com", "e2", json!({}))]}),
        )
        .await;
    assert_eq!(duplicate.status, 400);
    assert_eq!(duplicate.body["category"], "VALIDATION_ERROR");

    let too_many: Vec<Value> = (0..101)
        .map(|i| upsert_input(&format!("u{i}@x.com"), &format!("e{i}"), json!({})))
        .collect();
    assert_eq!(
        h.post(path, json!({ "inputs": too_many })).await.status,
        400
    );

    let all_bad = h
        .post(
            path,
            json!({"inputs": [upsert_input("not-an-email", "e1", json!({}))]}),
        )
        .await;
    assert_eq!(all_bad.status, 400);
    assert_eq!(all_bad.body["category"], "VALIDATION_ERROR");
    assert!(all_bad.body["message"]
        .as_str()
        .is_some_and(|m| m.contains("not-an-email")));
}

#[tokio::test]
async fn writing_an_unknown_property_is_rejected_with_property_does_not_exist() {
    let h = Harness::with_defaults().await;
    let answer = h
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "a@x.com", "foo": "bar"}}),
        )
        .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body["category"], "VALIDATION_ERROR");
    let message = answer.body["message"].as_str().expect("message");
    assert!(
        message.starts_with("Property values were not valid: "),
        "{message}"
    );
    assert!(
        message.contains(r#"Property \"foo\" does not exist"#),
        "{message}"
    );
    assert!(message.contains("PROPERTY_DOESNT_EXIST"));
}

#[tokio::test]
async fn read_only_enumeration_number_and_email_values_are_validated_on_every_write() {
    let h = Harness::with_defaults().await;
    let cases = [
        (json!({"hs_object_id": "5"}), "is a read only property"),
        (json!({"lifecyclestage": "hot"}), "subscriber, lead"),
        (
            json!({"leadbridge_qualification_score": "high"}),
            "not a valid number",
        ),
        (json!({"email": "jane@"}), "INVALID_EMAIL"),
    ];
    for (properties, expected) in cases {
        let answer = h
            .post(
                "/crm/v3/objects/contacts",
                json!({ "properties": properties }),
            )
            .await;
        assert_eq!(answer.status, 400, "{properties}");
        assert_eq!(answer.body["category"], "VALIDATION_ERROR");
        let message = answer.body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(expected),
            "{message} should contain {expected}"
        );
    }
    let id = h.create_contact(json!({"email": "v@x.com"})).await;
    let patch = h
        .patch(
            &format!("/crm/v3/objects/contacts/{id}"),
            json!({"properties": {"createdate": "2020-01-01"}}),
        )
        .await;
    assert_eq!(patch.status, 400);
}

#[tokio::test]
async fn patch_by_id_or_email_merges_properties_and_an_empty_string_clears() {
    let h = Harness::with_defaults().await;
    let id = h
        .create_contact(json!({"email": "p@x.com", "firstname": "Pat", "city": "Berlin"}))
        .await;
    let by_email = h
        .patch(
            "/crm/v3/objects/contacts/P@X.com?idProperty=email",
            json!({"properties": {"lastname": "Lee", "city": ""}}),
        )
        .await;
    assert_eq!(by_email.status, 200, "{}", by_email.body);
    assert_eq!(id_of(&by_email.body), id);

    let read = h
        .get(&format!(
            "/crm/v3/objects/contacts/{id}?properties=firstname,lastname,city"
        ))
        .await;
    assert_eq!(read.status, 200);
    let props = &read.body["properties"];
    assert_eq!(props["firstname"], "Pat");
    assert_eq!(props["lastname"], "Lee");
    assert_eq!(props["city"], Value::Null);

    let missing = h
        .patch("/crm/v3/objects/contacts/999999", json!({"properties": {}}))
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["category"], "OBJECT_NOT_FOUND");
}

#[tokio::test]
async fn a_note_associated_to_a_contact_appears_in_the_contacts_associations() {
    let h = Harness::with_defaults().await;
    let contact = h.create_contact(json!({"email": "n@x.com"})).await;
    let note = h
        .post(
            "/crm/v3/objects/notes",
            note_for(&contact, "Asked for a demo"),
        )
        .await;
    assert_eq!(note.status, 201, "{}", note.body);
    let note_id = id_of(&note.body);
    assert_eq!(
        note.body["properties"]["hs_timestamp"],
        "2026-05-01T10:00:00.000Z"
    );

    let read = h
        .get("/crm/v3/objects/contacts/n@x.com?idProperty=email&associations=notes,deals")
        .await;
    assert_eq!(read.status, 200);
    assert_eq!(
        read.body["associations"]["notes"]["results"],
        json!([{"id": note_id, "type": "contact_to_note"}])
    );
    assert!(read.body["associations"].get("deals").is_none());

    let back = h
        .get(&format!(
            "/crm/v3/objects/notes/{note_id}?associations=contacts&properties=hs_note_body"
        ))
        .await;
    assert_eq!(back.body["properties"]["hs_note_body"], "Asked for a demo");
    assert_eq!(
        back.body["associations"]["contacts"]["results"][0]["id"],
        contact
    );
}

#[tokio::test]
async fn notes_need_a_timestamp_a_bounded_body_and_valid_associations() {
    let h = Harness::with_defaults().await;
    let contact = h.create_contact(json!({"email": "nb@x.com"})).await;
    let no_timestamp = h
        .post(
            "/crm/v3/objects/notes",
            json!({"properties": {"hs_note_body": "x"}}),
        )
        .await;
    assert_eq!(no_timestamp.status, 400);
    assert_eq!(no_timestamp.body["category"], "VALIDATION_ERROR");

    let huge = "x".repeat(65_537);
    assert_eq!(
        h.post("/crm/v3/objects/notes", note_for(&contact, &huge))
            .await
            .status,
        400
    );
    assert_eq!(
        h.post("/crm/v3/objects/notes", note_for("999999", "x"))
            .await
            .status,
        400
    );
    let mut wrong_type = note_for(&contact, "x");
    wrong_type["associations"][0]["types"][0]["associationTypeId"] = json!(999);
    assert_eq!(
        h.post("/crm/v3/objects/notes", wrong_type).await.status,
        400
    );
}

#[tokio::test]
async fn notes_batch_create_answers_201_and_batch_read_reports_missing_ids_with_207() {
    let h = Harness::with_defaults().await;
    let contact = h.create_contact(json!({"email": "b@x.com"})).await;
    let created = h
        .post(
            "/crm/v3/objects/notes/batch/create",
            json!({"inputs": [note_for(&contact, "one"), note_for(&contact, "two")]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["status"], "COMPLETE");
    let ids: Vec<String> = created.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(ids.len(), 2);

    let read = h
        .post(
            "/crm/v3/objects/notes/batch/read",
            json!({"inputs": [{"id": ids[0]}, {"id": ids[1]}], "properties": ["hs_note_body"]}),
        )
        .await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["results"][1]["properties"]["hs_note_body"], "two");

    let partial = h
        .post(
            "/crm/v3/objects/notes/batch/read",
            json!({"inputs": [{"id": ids[0]}, {"id": "424242"}], "properties": ["hs_note_body"]}),
        )
        .await;
    assert_eq!(partial.status, 207);
    assert_eq!(partial.body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(
        partial.body["errors"][0]["context"]["ids"],
        json!(["424242"])
    );
}

#[tokio::test]
async fn deals_require_a_name_and_stage_and_default_to_the_default_pipeline() {
    let h = Harness::with_defaults().await;
    let contact = h.create_contact(json!({"email": "d@x.com"})).await;
    let missing = h
        .post(
            "/crm/v3/objects/deals",
            json!({"properties": {"dealname": "Big"}}),
        )
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.body["category"], "VALIDATION_ERROR");

    let created = h
        .post(
            "/crm/v3/objects/deals",
            json!({
                "properties": {"dealname": "Big", "dealstage": "appointmentscheduled", "amount": "1500"},
                "associations": [{"to": {"id": contact}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]}]
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["properties"]["pipeline"], "default");
    let deal = id_of(&created.body);
    let read = h
        .get(&format!(
            "/crm/v3/objects/contacts/{contact}?associations=deals"
        ))
        .await;
    assert_eq!(
        read.body["associations"]["deals"]["results"],
        json!([{"id": deal, "type": "contact_to_deal"}])
    );
    let bad_amount = h
        .post(
            "/crm/v3/objects/deals",
            json!({"properties": {"dealname": "X", "dealstage": "closedwon", "amount": "lots"}}),
        )
        .await;
    assert_eq!(bad_amount.status, 400);
}

#[tokio::test]
async fn search_does_not_find_a_new_contact_until_the_lag_has_passed() {
    let h = Harness::start(SimConfig {
        search_lag_ms: 300,
        search_rate_per_s: 100,
        ..SimConfig::default()
    })
    .await;
    let created_at = Instant::now();
    let id = h.create_contact(json!({"email": "lag@x.com"})).await;
    let immediately = h.search_email("LAG@x.com").await;
    assert_eq!(immediately.status, 200);
    assert_eq!(immediately.body["total"], 0);
    assert_eq!(immediately.body["results"], json!([]));

    // Reads by id stay strongly consistent meanwhile.
    assert_eq!(
        h.get(&format!("/crm/v3/objects/contacts/{id}"))
            .await
            .status,
        200
    );

    let found = eventually(
        Duration::from_secs(5),
        Duration::from_millis(25),
        || async {
            let answer = h.search_email("lag@x.com").await;
            (answer.body["total"] == 1).then_some(answer.body)
        },
    )
    .await
    .expect("contact becomes searchable");
    assert!(created_at.elapsed() >= Duration::from_millis(300));
    assert_eq!(id_of(&found["results"][0]), id);
    assert!(found.get("paging").is_none());
}

#[tokio::test]
async fn search_has_its_own_per_second_limit_whose_429_has_no_rate_limit_headers() {
    let h = Harness::start(SimConfig {
        search_rate_per_s: 2,
        ..SimConfig::default()
    })
    .await;
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(h.search_email("x@x.com").await);
    }
    assert_eq!(answers[0].status, 200);
    assert!(answers[0].header("x-hubspot-ratelimit-max").is_none());
    let limited = answers
        .iter()
        .find(|a| a.status == 429)
        .expect("third search within a second is limited");
    assert_eq!(limited.body["errorType"], "RATE_LIMIT");
    assert!(limited.header("x-hubspot-ratelimit-remaining").is_none());
    assert!(limited.header("retry-after").is_none());
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_hubspot_body_and_headers_after_max_requests() {
    let h = Harness::start(SimConfig {
        rate_limit_max: 5,
        ..SimConfig::default()
    })
    .await;
    for expected_remaining in (0..5).rev() {
        let answer = h.get("/crm/v3/objects/contacts").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("x-hubspot-ratelimit-max"), Some("5"));
        assert_eq!(
            answer.header("x-hubspot-ratelimit-remaining"),
            Some(expected_remaining.to_string().as_str())
        );
        assert_eq!(
            answer.header("x-hubspot-ratelimit-interval-milliseconds"),
            Some("10000")
        );
    }
    let limited = h.get("/crm/v3/objects/contacts").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.body["status"], "error");
    assert_eq!(
        limited.body["message"],
        "You have reached your ten_secondly_rolling limit."
    );
    assert_eq!(limited.body["errorType"], "RATE_LIMIT");
    assert_eq!(limited.body["policyName"], "TEN_SECONDLY_ROLLING");
    assert!(limited.body["correlationId"].is_string());
    assert_eq!(limited.header("x-hubspot-ratelimit-max"), Some("5"));
    assert_eq!(limited.header("x-hubspot-ratelimit-remaining"), Some("0"));
    assert!(limited.header("retry-after").is_none());

    let stats = h.admin(Method::GET, "/__admin/stats", None).await;
    assert_eq!(stats.body["rate_limited"], 1);
}

#[tokio::test]
async fn the_daily_limit_counts_every_admitted_call_and_then_answers_429_daily_until_midnight() {
    let h = Harness::start(SimConfig {
        daily_limit: 3,
        ..SimConfig::default()
    })
    .await;
    for remaining in ["2", "1", "0"] {
        let answer = h.get("/crm/v3/objects/contacts").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("x-hubspot-ratelimit-daily"), Some("3"));
        assert_eq!(
            answer.header("x-hubspot-ratelimit-daily-remaining"),
            Some(remaining)
        );
    }
    let limited = h.get("/crm/v3/objects/contacts").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.body["policyName"], "DAILY");
    assert_eq!(limited.body["errorType"], "RATE_LIMIT");
    assert_eq!(
        limited.header("x-hubspot-ratelimit-daily-remaining"),
        Some("0")
    );
    // Search is not exempt from the daily quota.
    let search = h
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"filterGroups": [], "limit": 1}),
        )
        .await;
    assert_eq!(search.status, 429);
    // Midnight in the account's time zone.
    let config = h
        .admin(
            Method::POST,
            "/__admin/config",
            Some(json!({"daily_used": 0})),
        )
        .await;
    assert_eq!(config.body["daily_used"], 0);
    assert_eq!(h.get("/crm/v3/objects/contacts").await.status, 200);
}

#[tokio::test]
async fn the_rate_limit_window_can_be_changed_at_runtime() {
    let h = Harness::start(SimConfig {
        rate_limit_max: 1,
        ..SimConfig::default()
    })
    .await;
    assert_eq!(h.get("/crm/v3/objects/contacts").await.status, 200);
    assert_eq!(h.get("/crm/v3/objects/contacts").await.status, 429);
    let config = h
        .admin(
            Method::POST,
            "/__admin/config",
            Some(json!({"rate_limit_max": 3, "search_lag_ms": 0})),
        )
        .await;
    assert_eq!(config.status, 200);
    assert_eq!(config.body["rate_limit_max"], 3);
    assert_eq!(config.body["search_lag_ms"], 0);
    assert_eq!(config.body["rate_limit_window_ms"], 10_000);
    let answer = h.get("/crm/v3/objects/contacts").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-hubspot-ratelimit-remaining"), Some("1"));
}

#[tokio::test]
async fn an_error_fault_with_a_count_fails_that_many_requests_then_clears() {
    let h = Harness::with_defaults().await;
    let added = h
        .admin(
            Method::POST,
            "/__admin/faults",
            Some(json!({"kind": "error", "status": 503, "probability": 1.0, "count": 2})),
        )
        .await;
    assert_eq!(added.status, 201);
    assert!(added.body["id"].is_number());
    let listed = h.admin(Method::GET, "/__admin/faults", None).await;
    assert_eq!(listed.body["faults"][0]["count"], 2);

    for _ in 0..2 {
        let failed = h.get("/crm/v3/objects/contacts").await;
        assert_eq!(failed.status, 503);
        assert_eq!(failed.body["status"], "error");
        assert_eq!(failed.body["message"], "Service Unavailable");
        assert!(failed.body["category"].is_string());
    }
    assert_eq!(h.get("/crm/v3/objects/contacts").await.status, 200);
    let listed = h.admin(Method::GET, "/__admin/faults", None).await;
    assert_eq!(listed.body["faults"], json!([]));
    let stats = h.admin(Method::GET, "/__admin/stats", None).await;
    assert_eq!(stats.body["faulted"], 2);
    assert_eq!(stats.body["total"], 3);
}

#[tokio::test]
async fn an_error_fault_with_retry_after_sends_the_header() {
    let h = Harness::with_defaults().await;
    h.admin(
        Method::POST,
        "/__admin/faults",
        Some(json!({"kind": "error", "status": 502, "count": 1, "retry_after": 4})),
    )
    .await;
    let failed = h.get("/crm/v3/objects/contacts").await;
    assert_eq!(failed.status, 502);
    assert_eq!(failed.header("retry-after"), Some("4"));
    let ok = h.get("/crm/v3/objects/contacts").await;
    assert_eq!(ok.header("retry-after"), None);
}

#[tokio::test]
async fn faults_can_target_one_route_and_be_cleared() {
    let h = Harness::with_defaults().await;
    h.admin(
        Method::POST,
        "/__admin/faults",
        Some(json!({"kind": "error", "status": 429, "route": "POST /crm/v3/objects/notes"})),
    )
    .await;
    assert_eq!(h.get("/crm/v3/objects/contacts").await.status, 200);
    let contact = h.create_contact(json!({"email": "f@x.com"})).await;
    let limited = h
        .post("/crm/v3/objects/notes", note_for(&contact, "x"))
        .await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.body["errorType"], "RATE_LIMIT");
    assert_eq!(limited.header("x-hubspot-ratelimit-remaining"), Some("0"));

    let cleared = h.admin(Method::DELETE, "/__admin/faults", None).await;
    assert_eq!(cleared.body["cleared"], 1);
    assert_eq!(
        h.post("/crm/v3/objects/notes", note_for(&contact, "x"))
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn a_latency_fault_delays_the_answer() {
    let h = Harness::with_defaults().await;
    h.admin(
        Method::POST,
        "/__admin/faults",
        Some(json!({"kind": "latency", "ms": 200, "count": 1})),
    )
    .await;
    let started = Instant::now();
    assert_eq!(h.get("/crm/v3/objects/contacts").await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn a_timeout_fault_holds_the_request_until_the_client_gives_up() {
    let h = Harness::with_defaults().await;
    let added = h
        .admin(
            Method::POST,
            "/__admin/faults",
            Some(json!({"kind": "timeout", "probability": 1.0})),
        )
        .await;
    assert_eq!(added.status, 201);
    let error = h
        .http
        .get(h.url("/crm/v3/objects/contacts"))
        .bearer_auth(&h.sim.token)
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("the request is never answered");
    assert!(error.is_timeout(), "{error}");

    h.admin(Method::DELETE, "/__admin/faults", None).await;
    assert_eq!(h.get("/crm/v3/objects/contacts").await.status, 200);
}

#[tokio::test]
async fn invalid_faults_are_rejected() {
    let h = Harness::with_defaults().await;
    let answer = h
        .admin(
            Method::POST,
            "/__admin/faults",
            Some(json!({"kind": "error"})),
        )
        .await;
    assert_eq!(answer.status, 400);
}

#[tokio::test]
async fn stats_count_every_business_request_by_method_and_route_template() {
    let h = Harness::with_defaults().await;
    h.post(
        "/crm/v3/objects/contacts/batch/upsert",
        json!({"inputs": [upsert_input("s@x.com", "e1", json!({}))]}),
    )
    .await;
    let id = h.create_contact(json!({"email": "t@x.com"})).await;
    h.get(&format!("/crm/v3/objects/contacts/{id}")).await;
    h.get("/crm/v3/objects/contacts/s@x.com?idProperty=email")
        .await;
    h.send(h.http.get(h.url("/crm/v3/objects/contacts/1")))
        .await; // 401, still counted
    h.admin(Method::GET, "/__admin/faults", None).await; // admin is not counted

    let stats = h.admin(Method::GET, "/__admin/stats", None).await;
    assert_eq!(stats.status, 200);
    assert_eq!(stats.body["total"], 5);
    assert_eq!(
        stats.body["by_route"],
        json!({
            "POST /crm/v3/objects/contacts/batch/upsert": 1,
            "POST /crm/v3/objects/contacts": 1,
            "GET /crm/v3/objects/contacts/{id}": 3,
        })
    );
    assert_eq!(stats.body["rate_limited"], 0);
    assert_eq!(stats.body["faulted"], 0);
}

#[tokio::test]
async fn reset_empties_records_counters_faults_and_schema_changes() {
    let h = Harness::with_defaults().await;
    let id = h.create_contact(json!({"email": "r@x.com"})).await;
    h.admin(
        Method::POST,
        "/__admin/faults",
        Some(json!({"kind": "latency", "ms": 1})),
    )
    .await;
    h.admin(Method::DELETE, "/__admin/properties/contacts/budget", None)
        .await;

    let reset = h.admin(Method::POST, "/__admin/reset", None).await;
    assert_eq!(reset.status, 200);
    let stats = h.admin(Method::GET, "/__admin/stats", None).await;
    assert_eq!(
        stats.body,
        json!({"total": 0, "by_route": {}, "rate_limited": 0, "faulted": 0})
    );
    assert_eq!(
        h.admin(Method::GET, "/__admin/faults", None).await.body["faults"],
        json!([])
    );
    assert_eq!(
        h.get(&format!("/crm/v3/objects/contacts/{id}"))
            .await
            .status,
        404
    );
    let list = h.get("/crm/v3/objects/contacts").await;
    assert_eq!(list.body["results"], json!([]));
    let again = h
        .create_contact(json!({"email": "r@x.com", "budget": "10k"}))
        .await;
    assert_ne!(again, id);
}

#[tokio::test]
async fn deleting_a_property_from_the_schema_makes_writes_of_it_fail() {
    let h = Harness::with_defaults().await;
    let before = h.get("/crm/v3/properties/contacts/budget").await;
    assert_eq!(before.status, 200);
    assert_eq!(before.body["type"], "string");
    assert_eq!(before.body["groupName"], "leadbridge");
    assert_eq!(before.body["modificationMetadata"]["readOnlyValue"], false);

    let deleted = h
        .admin(Method::DELETE, "/__admin/properties/contacts/budget", None)
        .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(
        h.get("/crm/v3/properties/contacts/budget").await.status,
        404
    );
    let write = h
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "s@x.com", "budget": "10k"}}),
        )
        .await;
    assert_eq!(write.status, 400);
    assert!(write.body["message"]
        .as_str()
        .is_some_and(|m| m.contains(r#"Property \"budget\" does not exist"#)));
}

#[tokio::test]
async fn an_added_enumeration_property_is_listed_and_enforced() {
    let h = Harness::with_defaults().await;
    let added = h
        .admin(
            Method::POST,
            "/__admin/properties/contacts",
            Some(json!({
                "name": "leadbridge_tier", "type": "enumeration", "fieldType": "select",
                "options": [{"label": "Gold", "value": "gold"}, {"label": "Silver", "value": "silver"}]
            })),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    let all = h.get("/crm/v3/properties/contacts").await;
    let tier = all.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|p| p["name"] == "leadbridge_tier")
        .expect("listed")
        .clone();
    assert_eq!(tier["options"][0]["value"], "gold");
    assert_eq!(tier["options"][0]["hidden"], false);
    let bad = h
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "e@x.com", "leadbridge_tier": "bronze"}}),
        )
        .await;
    assert_eq!(bad.status, 400);
    let good = h
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "e@x.com", "leadbridge_tier": "gold"}}),
        )
        .await;
    assert_eq!(good.status, 201);
}

#[tokio::test]
async fn listing_contacts_pages_in_id_order_with_after_tokens_and_links() {
    let h = Harness::with_defaults().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            h.create_contact(json!({"email": format!("l{i}@x.com")}))
                .await,
        );
    }
    let mut seen = Vec::new();
    let mut path = "/crm/v3/objects/contacts?limit=2&properties=email".to_owned();
    for _ in 0..10 {
        let page = h.get(&path).await;
        assert_eq!(page.status, 200);
        for record in page.body["results"].as_array().expect("results") {
            assert!(record["properties"]["email"].is_string());
            seen.push(id_of(record));
        }
        match page.body["paging"]["next"]["after"].as_str() {
            Some(after) => {
                let link = page.body["paging"]["next"]["link"].as_str().expect("link");
                assert!(link.contains(&format!("after={after}")));
                path = format!("/crm/v3/objects/contacts?limit=2&properties=email&after={after}");
            }
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let default_page = h.get("/crm/v3/objects/contacts").await;
    assert_eq!(
        default_page.body["results"].as_array().map(Vec::len),
        Some(5)
    );
    assert!(default_page.body.get("paging").is_none());
}

#[tokio::test]
async fn bad_json_and_unknown_routes_get_hubspot_shaped_errors() {
    let h = Harness::with_defaults().await;
    let bad_json = h
        .send(
            h.http
                .post(h.url("/crm/v3/objects/contacts"))
                .bearer_auth(&h.sim.token)
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    assert_eq!(bad_json.status, 400);
    assert_eq!(bad_json.body["status"], "error");
    assert_eq!(bad_json.body["category"], "VALIDATION_ERROR");
    assert!(bad_json.body["correlationId"].is_string());

    let unknown = h.get("/crm/v3/objects/widgets").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body["status"], "error");
    assert!(unknown.body["category"].is_string());
}

#[tokio::test]
async fn the_embeddable_router_serves_the_same_api() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        axum::serve(listener, crm_sim::router(SimConfig::default()))
            .await
            .expect("serve");
    });
    let answer = reqwest::Client::new()
        .get(format!("http://{addr}/crm/v3/properties/deals"))
        .bearer_auth("sim-token")
        .send()
        .await
        .expect("answered");
    assert_eq!(answer.status().as_u16(), 200);
    server.abort();
}

#[tokio::test]
async fn shutting_down_stops_the_server() {
    let h = Harness::with_defaults().await;
    let url = h.url("/crm/v3/objects/contacts");
    let Harness { sim, http } = h;
    sim.shutdown();
    let stopped = eventually(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || async { http.get(&url).send().await.is_err().then_some(()) },
    )
    .await;
    assert!(stopped.is_some(), "server still answering after shutdown");
}

#[tokio::test]
async fn shutdown_and_wait_releases_requests_held_by_a_timeout_fault() {
    let h = Harness::with_defaults().await;
    h.admin(
        Method::POST,
        "/__admin/faults",
        Some(json!({"kind": "timeout"})),
    )
    .await;
    let held = tokio::spawn(
        h.http
            .get(h.url("/crm/v3/objects/contacts"))
            .bearer_auth(&h.sim.token)
            .send(),
    );
    // Wait until the simulator has received the held request.
    let received = eventually(
        Duration::from_secs(5),
        Duration::from_millis(10),
        || async {
            let stats = h.admin(Method::GET, "/__admin/stats", None).await;
            (stats.body["faulted"] == 1).then_some(())
        },
    )
    .await;
    assert!(received.is_some());
    let Harness { sim, .. } = h;
    tokio::time::timeout(Duration::from_secs(4), sim.shutdown_and_wait())
        .await
        .expect("shutdown finishes within the grace period");
    let answer = held.await.expect("task").expect("held request is answered");
    assert_eq!(answer.status().as_u16(), 503);
}

#[tokio::test]
async fn a_property_can_be_changed_in_place_options_type_and_read_only() {
    let h = Harness::with_defaults().await;
    let missing = h
        .admin(
            Method::PATCH,
            "/__admin/properties/contacts/nope",
            Some(json!({"label": "x"})),
        )
        .await;
    assert_eq!(missing.status, 404);

    let changed = h
        .admin(
            Method::PATCH,
            "/__admin/properties/contacts/hs_lead_status",
            Some(json!({"options": [{"value": "NEW", "label": "New"},
                                    {"value": "LEGACY", "hidden": true}]})),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(
        changed.body["fieldType"], "radio",
        "unchanged fields are kept"
    );
    assert_eq!(changed.body["options"][1]["hidden"], true);
    assert_eq!(changed.body["options"][1]["label"], "LEGACY");
    let listed = h.get("/crm/v3/properties/contacts/hs_lead_status").await;
    assert_eq!(listed.body["options"].as_array().map(Vec::len), Some(2));
    let write = |status: &'static str| json!({"properties": {"email": format!("{}@x.com", status.to_lowercase()), "hs_lead_status": status}});
    assert_eq!(
        h.post("/crm/v3/objects/contacts", write("OPEN"))
            .await
            .status,
        400
    );
    assert_eq!(
        h.post("/crm/v3/objects/contacts", write("LEGACY"))
            .await
            .status,
        201,
        "a hidden option is still a value the API takes"
    );

    let to_number = h
        .admin(
            Method::PATCH,
            "/__admin/properties/contacts/budget",
            Some(json!({"type": "number"})),
        )
        .await;
    assert_eq!(to_number.body["type"], "number");
    assert_eq!(to_number.body["fieldType"], "number");
    let bad = h
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "b@x.com", "budget": "10k"}}),
        )
        .await;
    assert_eq!(bad.status, 400);

    let read_only = h
        .admin(
            Method::PATCH,
            "/__admin/properties/contacts/timeline",
            Some(json!({"readOnly": true})),
        )
        .await;
    assert_eq!(
        read_only.body["modificationMetadata"]["readOnlyValue"],
        true
    );
    let refused = h
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "t@x.com", "timeline": "Q3"}}),
        )
        .await;
    assert_eq!(refused.status, 400);
    assert!(refused.body["message"]
        .as_str()
        .is_some_and(|m| m.contains("READ_ONLY_VALUE")));

    let unknown_field = h
        .admin(
            Method::PATCH,
            "/__admin/properties/contacts/timeline",
            Some(json!({"colour": "red"})),
        )
        .await;
    assert_eq!(unknown_field.status, 400);
}

#[tokio::test]
async fn an_added_bool_property_lists_hubspots_true_false_options() {
    let h = Harness::with_defaults().await;
    let added = h
        .admin(
            Method::POST,
            "/__admin/properties/contacts",
            Some(json!({"name": "leadbridge_opt_in", "type": "bool"})),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    assert_eq!(added.body["fieldType"], "booleancheckbox");
    assert_eq!(added.body["options"][0]["value"], "true");
    assert_eq!(added.body["options"][1]["value"], "false");
}

/// A simulator whose search sees writes at once and is not throttled.
async fn searchable() -> Harness {
    Harness::start(SimConfig {
        search_lag_ms: 0,
        search_rate_per_s: 1_000,
        ..SimConfig::default()
    })
    .await
}

/// `{"filterGroups":[{"filters":[filter]}]}` → the ids found.
async fn search_ids(h: &Harness, filter: Value) -> Vec<String> {
    let answer = h
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"filterGroups": [{"filters": [filter]}], "limit": 100}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(id_of)
        .collect()
}

#[tokio::test]
async fn phone_search_matches_the_national_number_and_not_the_country_code() {
    let h = searchable().await;
    let us = h
        .create_contact(json!({"firstname": "Ravi", "phone": "+14155552671"}))
        .await;
    let uk = h
        .create_contact(json!({"firstname": "Zara", "mobilephone": "+44 20 7946 0958"}))
        .await;
    let wa = h
        .create_contact(json!({"lastname": "Silva", "hs_whatsapp_phone_number": "+5511987654321"}))
        .await;
    let eq = |property: &str, value: &str| json!({"propertyName": property, "operator": "EQ", "value": value});

    assert_eq!(
        search_ids(&h, eq("phone", "4155552671")).await,
        [us.as_str()]
    );
    assert_eq!(
        search_ids(&h, eq("phone", "(415) 555-2671")).await,
        [us.as_str()]
    );
    assert!(
        search_ids(&h, eq("phone", "+14155552671")).await.is_empty(),
        "HubSpot ignores the country code, so a filter including it finds nothing"
    );
    assert!(search_ids(&h, eq("phone", "14155552671")).await.is_empty());
    assert_eq!(
        search_ids(
            &h,
            json!({"propertyName": "phone", "operator": "IN", "values": ["4155552671", "1"]})
        )
        .await,
        [us]
    );
    assert_eq!(
        search_ids(&h, eq("mobilephone", "2079460958")).await,
        [uk.as_str()]
    );
    assert!(search_ids(&h, eq("mobilephone", "+442079460958"))
        .await
        .is_empty());
    assert_eq!(
        search_ids(&h, eq("hs_whatsapp_phone_number", "11987654321")).await,
        [wa]
    );
    assert!(search_ids(&h, eq("phone", "2079460958")).await.is_empty());
}

#[tokio::test]
async fn additional_emails_are_searchable_and_identify_one_contact_only() {
    let h = searchable().await;
    let jane = h.create_contact(json!({"email": "jane@x.com"})).await;
    let other = h.create_contact(json!({"email": "other@x.com"})).await;
    let set = h
        .admin(
            Method::PUT,
            &format!("/__admin/contacts/{jane}/additional-emails"),
            Some(json!({"emails": ["Jane.Work@Example.com", "jane@old.example"]})),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(
        set.body["hs_additional_emails"],
        "jane.work@example.com;jane@old.example"
    );

    let additional = |operator: &str, value: &str| json!({"propertyName": "hs_additional_emails", "operator": operator, "value": value});
    assert_eq!(
        search_ids(&h, additional("CONTAINS_TOKEN", "JANE.WORK@example.com")).await,
        [jane.as_str()]
    );
    assert_eq!(
        search_ids(&h, additional("EQ", "jane@old.example")).await,
        [jane.as_str()]
    );
    assert_eq!(
        search_ids(&h, additional("CONTAINS_TOKEN", "*@old.example")).await,
        [jane.as_str()]
    );
    assert!(
        search_ids(&h, additional("CONTAINS_TOKEN", "old.example"))
            .await
            .is_empty(),
        "a token is a whole address, not a substring"
    );
    assert!(search_ids(&h, additional("EQ", "other@x.com"))
        .await
        .is_empty());
    let primary = json!({"propertyName": "email", "operator": "EQ", "value": "JANE@X.COM"});
    assert_eq!(search_ids(&h, primary).await, [jane.as_str()]);
    let not_primary =
        json!({"propertyName": "email", "operator": "EQ", "value": "jane.work@example.com"});
    assert!(search_ids(&h, not_primary).await.is_empty());

    let read = h
        .get(&format!(
            "/crm/v3/objects/contacts/{jane}?properties=email,hs_additional_emails"
        ))
        .await;
    assert_eq!(
        read.body["properties"]["hs_additional_emails"],
        "jane.work@example.com;jane@old.example"
    );

    // Unique identifiers: another contact cannot take them (D1).
    for taken in ["jane.work@example.com", "JANE@x.com"] {
        let clash = h
            .admin(
                Method::PUT,
                &format!("/__admin/contacts/{other}/additional-emails"),
                Some(json!({ "emails": [taken] })),
            )
            .await;
        assert_eq!(clash.status, 409, "{taken}: {}", clash.body);
        assert_eq!(clash.body["category"], "CONFLICT");
    }
    let unknown = h
        .admin(
            Method::PUT,
            "/__admin/contacts/999999/additional-emails",
            Some(json!({"emails": ["x@x.com"]})),
        )
        .await;
    assert_eq!(unknown.status, 404);

    // The API cannot write them.
    let patch = h
        .patch(
            &format!("/crm/v3/objects/contacts/{other}"),
            json!({"properties": {"hs_additional_emails": "mine@x.com"}}),
        )
        .await;
    assert_eq!(patch.status, 400);
    assert!(patch.body["message"]
        .as_str()
        .is_some_and(|m| m.contains("READ_ONLY_VALUE")));
}

#[tokio::test]
async fn patching_a_contacts_email_to_another_contacts_email_answers_409() {
    let h = Harness::with_defaults().await;
    let jane = h.create_contact(json!({"email": "jane@x.com"})).await;
    let joe = h.create_contact(json!({"email": "joe@x.com"})).await;
    let clash = h
        .patch(
            &format!("/crm/v3/objects/contacts/{joe}"),
            json!({"properties": {"email": " Jane@X.com"}}),
        )
        .await;
    assert_eq!(clash.status, 409, "{}", clash.body);
    assert_eq!(clash.body["status"], "error");
    assert_eq!(clash.body["category"], "CONFLICT");
    assert_eq!(
        clash.body["message"],
        format!("Contact already exists. Existing ID: {jane}")
    );
    assert!(clash.body["correlationId"].is_string());
    let unchanged = h
        .get(&format!("/crm/v3/objects/contacts/{joe}?properties=email"))
        .await;
    assert_eq!(unchanged.body["properties"]["email"], "joe@x.com");
    let own = h
        .patch(
            &format!("/crm/v3/objects/contacts/{jane}"),
            json!({"properties": {"email": "JANE@x.com", "firstname": "Jane"}}),
        )
        .await;
    assert_eq!(own.status, 200, "re-setting one's own email is no conflict");
}

/// Creates `n` notes on `contact` in batches of 100 and returns their ids in
/// creation order.
async fn create_notes(h: &Harness, contact: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let all: Vec<Value> = (0..n)
        .map(|i| note_for(contact, &format!("note {i}")))
        .collect();
    for chunk in all.chunks(100) {
        let created = h
            .post(
                "/crm/v3/objects/notes/batch/create",
                json!({ "inputs": chunk }),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
        ids.extend(
            created.body["results"]
                .as_array()
                .expect("results")
                .iter()
                .map(id_of),
        );
    }
    ids
}

#[tokio::test]
async fn a_v3_read_lists_100_associations_per_type_and_pages_the_rest() {
    let h = Harness::with_defaults().await;
    let contact = h.create_contact(json!({"email": "busy@x.com"})).await;
    let notes = create_notes(&h, &contact, 101).await;

    let read = h
        .get(&format!(
            "/crm/v3/objects/contacts/{contact}?associations=notes,deals"
        ))
        .await;
    assert_eq!(read.status, 200);
    let collection = &read.body["associations"]["notes"];
    let listed: Vec<String> = collection["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(listed, notes[..100]);
    assert_eq!(collection["results"][0]["type"], "contact_to_note");
    let after = collection["paging"]["next"]["after"]
        .as_str()
        .expect("an after cursor when there are more than 100");
    let link = collection["paging"]["next"]["link"].as_str().expect("link");
    assert!(
        link.contains(&format!(
            "/crm/v4/objects/contacts/{contact}/associations/notes?after="
        )),
        "{link}"
    );

    // The cursor continues where the v3 page stopped.
    let rest = h
        .send(
            h.http
                .get(h.url(&format!(
                    "/crm/v4/objects/contacts/{contact}/associations/notes"
                )))
                .query(&[("after", after)])
                .bearer_auth(&h.sim.token),
        )
        .await;
    assert_eq!(rest.status, 200, "{}", rest.body);
    assert_eq!(
        rest.body["results"][0]["toObjectId"].to_string(),
        notes[100]
    );
    assert!(rest.body.get("paging").is_none());

    // The list endpoint pages associations the same way.
    let list = h.get("/crm/v3/objects/contacts?associations=notes").await;
    assert!(
        list.body["results"][0]["associations"]["notes"]["paging"]["next"]["after"].is_string()
    );
}

#[tokio::test]
async fn the_v4_association_list_pages_through_250_notes_in_creation_order() {
    let h = Harness::with_defaults().await;
    let contact = h.create_contact(json!({"firstname": "Busy"})).await;
    let notes = create_notes(&h, &contact, 250).await;
    let path = format!("/crm/v4/objects/contacts/{contact}/associations/notes");

    let mut seen: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = vec![("limit", "100".to_owned())];
        if let Some(after) = &after {
            query.push(("after", after.clone()));
        }
        let page = h
            .send(
                h.http
                    .get(h.url(&path))
                    .query(&query)
                    .bearer_auth(&h.sim.token),
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.header("x-hubspot-ratelimit-max").is_some());
        pages += 1;
        for item in page.body["results"].as_array().expect("results") {
            assert!(
                item["toObjectId"].is_u64(),
                "toObjectId is a number: {item}"
            );
            assert_eq!(
                item["associationTypes"],
                json!([{"category": "HUBSPOT_DEFINED", "typeId": 201, "label": null}])
            );
            seen.push(item["toObjectId"].to_string());
        }
        match page.body["paging"]["next"]["after"].as_str() {
            Some(next) => {
                let link = page.body["paging"]["next"]["link"].as_str().expect("link");
                assert!(link.contains(&path) && link.contains("after="), "{link}");
                after = Some(next.to_owned());
            }
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, notes);

    // Default limit 500: one page; a larger limit is capped at 500.
    let all = h.get(&path).await;
    assert_eq!(all.body["results"].as_array().map(Vec::len), Some(250));
    assert!(all.body.get("paging").is_none());
    let capped = h.get(&format!("{path}?limit=1000")).await;
    assert_eq!(capped.status, 200);

    // Object types as singular names and ids; the reverse direction.
    let by_id = h
        .get(&format!(
            "/crm/v4/objects/0-1/{contact}/associations/note?limit=1"
        ))
        .await;
    assert_eq!(by_id.body["results"][0]["toObjectId"].to_string(), notes[0]);
    let back = h
        .get(&format!(
            "/crm/v4/objects/notes/{}/associations/contacts",
            notes[0]
        ))
        .await;
    assert_eq!(
        back.body["results"],
        json!([{"toObjectId": contact.parse::<u64>().expect("numeric id"),
                "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 202, "label": null}]}])
    );
    let none = h
        .get(&format!(
            "/crm/v4/objects/contacts/{contact}/associations/deals"
        ))
        .await;
    assert_eq!(none.body, json!({"results": []}));
    assert_eq!(
        h.get("/crm/v4/objects/contacts/999999/associations/notes")
            .await
            .status,
        404
    );
    assert_eq!(h.get(&format!("{path}?after=garbage!")).await.status, 400);

    let stats = h.admin(Method::GET, "/__admin/stats", None).await;
    assert_eq!(
        stats.body["by_route"]
            ["GET /crm/v4/objects/{fromObjectType}/{objectId}/associations/{toObjectType}"],
        10
    );
}

#[tokio::test]
async fn creating_a_contact_needs_an_email_a_first_name_or_a_last_name() {
    let h = Harness::with_defaults().await;
    let phone_only = h
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"phone": "+14155552671", "company": "Acme"}}),
        )
        .await;
    assert_eq!(phone_only.status, 400, "{}", phone_only.body);
    assert_eq!(phone_only.body["status"], "error");
    assert_eq!(phone_only.body["category"], "VALIDATION_ERROR");
    assert!(phone_only.body["correlationId"].is_string());
    assert!(phone_only.body["message"]
        .as_str()
        .is_some_and(|m| m.contains("email, firstname or lastname")));
    assert_eq!(phone_only.body["errors"][0]["code"], "REQUIRED_PROPERTY");
    let blank_name = h
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"phone": "+14155552671", "firstname": ""}}),
        )
        .await;
    assert_eq!(blank_name.status, 400, "an empty value is no value");

    let named = h
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"phone": "+14155552671", "firstname": "Ravi"}}),
        )
        .await;
    assert_eq!(named.status, 201, "{}", named.body);
    let id = id_of(&named.body);
    h.create_contact(json!({"lastname": "Kumar"})).await;

    let batch = h
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": [
                {"properties": {"firstname": "Ok"}},
                {"properties": {"phone": "+14155550100"}}
            ]}),
        )
        .await;
    assert_eq!(batch.status, 400, "{}", batch.body);
    assert_eq!(batch.body["category"], "VALIDATION_ERROR");
    assert_eq!(
        h.get("/crm/v3/objects/contacts").await.body["results"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "a failed batch/create writes nothing"
    );

    // An update is not a create: clearing the only name is allowed.
    let cleared = h
        .patch(
            &format!("/crm/v3/objects/contacts/{id}"),
            json!({"properties": {"firstname": "", "mobilephone": "+14155550101"}}),
        )
        .await;
    assert_eq!(cleared.status, 200, "{}", cleared.body);
}

#[tokio::test]
async fn a_token_without_a_required_scope_gets_403_missing_scopes_until_it_is_granted() {
    let without_read: std::collections::BTreeSet<String> = crm_sim::hubspot::SCOPES
        .iter()
        .filter(|s| **s != "crm.objects.contacts.read")
        .map(|s| (*s).to_owned())
        .collect();
    let h = Harness::start(SimConfig {
        scopes: without_read,
        search_lag_ms: 0,
        ..SimConfig::default()
    })
    .await;
    let id = h.create_contact(json!({"firstname": "Ravi"})).await;

    let denied = h.search_email("ravi@x.com").await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert_eq!(
        denied.body,
        json!({
            "status": "error",
            "message": "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
            "correlationId": denied.body["correlationId"],
            "errors": [{
                "message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": ["crm.objects.contacts.read"]}
            }],
            "links": {"scopes": "https://developers.hubspot.com/scopes"},
            "category": "MISSING_SCOPES"
        })
    );
    assert!(denied.body["correlationId"]
        .as_str()
        .is_some_and(|c| c.len() == 36));
    assert!(denied.header("x-hubspot-ratelimit-max").is_none());
    for path in [
        format!("/crm/v3/objects/contacts/{id}"),
        format!("/crm/v4/objects/contacts/{id}/associations/notes"),
        "/crm/v3/objects/contacts".to_owned(),
    ] {
        assert_eq!(h.get(&path).await.status, 403, "{path}");
    }
    let read_notes = h
        .post(
            "/crm/v3/objects/notes/batch/read",
            json!({"inputs": [{"id": "1"}]}),
        )
        .await;
    assert_eq!(
        read_notes.status, 403,
        "notes are read with the contacts scope"
    );
    assert_eq!(h.get("/crm/v3/properties/contacts").await.status, 200);

    let granted = h
        .admin(
            Method::POST,
            "/__admin/config",
            Some(json!({"scopes": crm_sim::hubspot::SCOPES})),
        )
        .await;
    assert_eq!(granted.status, 200, "{}", granted.body);
    assert!(granted.body["scopes"]
        .as_array()
        .is_some_and(|s| s.contains(&json!("crm.objects.contacts.read"))));
    assert_eq!(
        granted.body["rate_limit_max"], 100,
        "other settings are kept"
    );
    let allowed = h.search_email("ravi@x.com").await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);

    let stats = h.admin(Method::GET, "/__admin/stats", None).await;
    assert_eq!(
        stats.body["by_route"]["POST /crm/v3/objects/contacts/search"], 2,
        "a 403 is counted"
    );
}

#[tokio::test]
async fn scopes_set_through_the_admin_api_are_enforced_per_endpoint() {
    let h = Harness::with_defaults().await;
    let config = h.admin(Method::GET, "/__admin/config", None).await;
    let mut listed: Vec<String> = config.body["scopes"]
        .as_array()
        .expect("scopes listed")
        .iter()
        .map(|s| s.as_str().expect("name").to_owned())
        .collect();
    listed.sort();
    let mut known: Vec<String> = crm_sim::hubspot::SCOPES
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    known.sort();
    assert_eq!(listed, known, "every known scope is granted by default");

    let only_contacts = h
        .admin(
            Method::POST,
            "/__admin/config",
            Some(json!({"scopes": ["crm.objects.contacts.write", "crm.objects.contacts.read"]})),
        )
        .await;
    assert_eq!(only_contacts.status, 200);
    let contact = h.create_contact(json!({"email": "s@x.com"})).await;
    assert_eq!(
        h.post("/crm/v3/objects/notes", note_for(&contact, "x"))
            .await
            .status,
        201,
        "notes are written with the contacts scope"
    );
    let deal = h
        .post(
            "/crm/v3/objects/deals",
            json!({"properties": {"dealname": "D", "dealstage": "closedwon"}}),
        )
        .await;
    assert_eq!(deal.status, 403);
    assert_eq!(
        deal.body["errors"][0]["context"]["requiredGranularScopes"],
        json!(["crm.objects.deals.write"])
    );
    let deals_read = h
        .post("/crm/v3/objects/deals/batch/read", json!({"inputs": []}))
        .await;
    assert_eq!(deals_read.status, 403);
    assert!(
        deals_read.body["errors"][0]["context"]["requiredGranularScopes"]
            .as_array()
            .is_some_and(|s| s.contains(&json!("crm.objects.deals.read")))
    );
    let properties = h.get("/crm/v3/properties/contacts").await;
    assert_eq!(properties.status, 403);
    assert_eq!(
        properties.body["errors"][0]["context"]["requiredGranularScopes"],
        json!(["crm.schemas.contacts.read"])
    );

    let empty = h
        .admin(
            Method::POST,
            "/__admin/config",
            Some(json!({"scopes": [""]})),
        )
        .await;
    assert_eq!(empty.status, 400);
    // A reset keeps the config, scopes included.
    h.admin(Method::POST, "/__admin/reset", None).await;
    assert_eq!(h.get("/crm/v3/properties/contacts").await.status, 403);
}

#[tokio::test]
async fn the_binary_grants_only_the_scopes_given_with_the_scopes_flag() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_crm-sim"))
        .args([
            "hubspot",
            "--port",
            "0",
            "--scopes",
            "crm.objects.contacts.write,crm.schemas.contacts.read",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("crm-sim starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(30),
        tokio::io::BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .expect("ready line in time")
    .expect("ready line");
    let ready: Value = serde_json::from_str(&line).expect("JSON ready line");
    let base = ready["base_url"].as_str().expect("base_url");
    let token = ready["token"].as_str().expect("token");
    let http = reqwest::Client::new();
    let config: Value = http
        .get(format!("{base}/__admin/config"))
        .send()
        .await
        .expect("config")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        config["scopes"],
        json!(["crm.objects.contacts.write", "crm.schemas.contacts.read"])
    );
    let search = http
        .post(format!("{base}/crm/v3/objects/contacts/search"))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .expect("search");
    assert_eq!(search.status().as_u16(), 403);
    child.start_kill().expect("stop crm-sim");
    child.wait().await.expect("crm-sim exits");
}

#[tokio::test]
async fn batch_update_writes_by_id_answers_207_for_a_missing_one_and_refuses_duplicates_whole() {
    let h = Harness::with_defaults().await;
    let path = "/crm/v3/objects/contacts/batch/update";
    let a = h.create_contact(json!({"email": "a@x.com"})).await;
    let b = h.create_contact(json!({"email": "b@x.com"})).await;
    let both = h
        .post(
            path,
            json!({"inputs": [
                {"id": a, "objectWriteTraceId": "e1", "properties": {"company": "A Co"}},
                {"id": b, "objectWriteTraceId": "e2", "properties": {"company": "B Co"}},
            ]}),
        )
        .await;
    assert_eq!(both.status, 200, "{}", both.body);
    assert_eq!(both.body["results"][0]["objectWriteTraceId"], "e1");
    assert_eq!(both.body["results"][1]["properties"]["company"], "B Co");

    let partial = h
        .post(
            path,
            json!({"inputs": [
                {"id": a, "objectWriteTraceId": "e3", "properties": {"company": "A2"}},
                {"id": "990099", "objectWriteTraceId": "e4", "properties": {"company": "Nobody"}},
                {"id": b, "objectWriteTraceId": "e5", "properties": {"email": "a@x.com"}},
            ]}),
        )
        .await;
    assert_eq!(partial.status, 207, "{}", partial.body);
    assert_eq!(partial.body["numErrors"], 2);
    let errors = partial.body["errors"].as_array().expect("errors");
    assert_eq!(errors[0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(errors[0]["context"]["objectWriteTraceId"][0], "e4");
    assert_eq!(errors[1]["category"], "CONFLICT", "b cannot take a's email");
    assert_eq!(
        h.get(&format!("/crm/v3/objects/contacts/{a}?properties=company"))
            .await
            .body["properties"]["company"],
        "A2"
    );

    let duplicate = h
        .post(
            path,
            json!({"inputs": [
                {"id": a, "properties": {"company": "X"}},
                {"id": a, "properties": {"company": "Y"}},
            ]}),
        )
        .await;
    assert_eq!(duplicate.status, 400);
    assert_eq!(
        h.get(&format!("/crm/v3/objects/contacts/{a}?properties=company"))
            .await
            .body["properties"]["company"],
        "A2",
        "nothing of a refused batch is written"
    );
    let by_email = h
        .post(
            path,
            json!({"inputs": [{"id": "a@x.com", "idProperty": "email", "properties": {"company": "Z"}}]}),
        )
        .await;
    assert_eq!(
        by_email.status, 400,
        "email is not a unique idProperty for update"
    );
    assert!(by_email.body["message"]
        .as_str()
        .is_some_and(|m| m.contains("non-unique")));
    let none = h
        .post(
            path,
            json!({"inputs": [{"id": "990099", "properties": {}}]}),
        )
        .await;
    assert_eq!(none.status, 404, "{}", none.body);
    assert_eq!(none.body["category"], "OBJECT_NOT_FOUND");
}
