//! The simulator over HTTP: what a client sees.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use super::{RunningZohoSim, ZohoSimConfig};

/// An `application/x-www-form-urlencoded` body.
fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

struct Sim {
    sim: RunningZohoSim,
    http: reqwest::Client,
}

impl Sim {
    async fn start(cfg: ZohoSimConfig) -> Sim {
        let sim = RunningZohoSim::start("127.0.0.1:0".parse().expect("addr"), cfg)
            .await
            .expect("starts");
        Sim {
            sim,
            http: reqwest::Client::new(),
        }
    }

    async fn fresh() -> Sim {
        Sim::start(ZohoSimConfig {
            search_lag_ms: 0,
            ..ZohoSimConfig::default()
        })
        .await
    }

    async fn token_answer(&self, refresh: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/oauth/v2/token", self.sim.accounts_url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("grant_type", "refresh_token"),
                ("client_id", self.sim.client_id.as_str()),
                ("client_secret", self.sim.client_secret.as_str()),
                ("refresh_token", refresh),
            ]))
            .send()
            .await
            .expect("answered");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn token(&self) -> String {
        let (status, v) = self.token_answer(&self.sim.refresh_token).await;
        assert_eq!(status, 200, "{v}");
        v["access_token"].as_str().expect("token").to_owned()
    }

    async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.sim.base_url))
            .header("authorization", format!("Zoho-oauthtoken {token}"));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("answered");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}/__admin/{path}", self.sim.base_url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("answered");
        assert!(
            resp.status().as_u16() < 300,
            "admin {path}: {}",
            resp.status()
        );
        resp.json().await.unwrap_or(Value::Null)
    }

    async fn calls(&self, route: &str) -> u64 {
        self.admin(Method::GET, "stats", None).await["by_route"][route]
            .as_u64()
            .unwrap_or(0)
    }
}

#[tokio::test]
async fn the_token_endpoint_mints_for_the_grant_and_refuses_with_200_errors() {
    let s = Sim::fresh().await;
    let (status, v) = s.token_answer(&s.sim.refresh_token).await;
    assert_eq!(status, 200);
    assert_eq!(v["api_domain"], s.sim.base_url.as_str());
    assert_eq!(v["expires_in"], 3600);
    assert_eq!(v["token_type"], "Bearer");
    let (status, v) = s.token_answer("1000.wrong").await;
    assert_eq!((status, v), (200, json!({"error": "invalid_code"})));
    // Query parameters work as well as a form body.
    let url = format!(
        "{}/oauth/v2/token?grant_type=refresh_token&client_id={}&client_secret={}&refresh_token={}",
        s.sim.accounts_url, s.sim.client_id, s.sim.client_secret, s.sim.refresh_token
    );
    let v: Value = s
        .http
        .post(url)
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    assert!(v["access_token"].is_string());
    assert_eq!(s.calls("POST /oauth/v2/token").await, 3);
}

#[tokio::test]
async fn api_calls_need_a_live_zoho_oauthtoken() {
    let s = Sim::fresh().await;
    let path = "/crm/v8/settings/fields?module=Contacts";
    let resp = s
        .http
        .get(format!("{}{path}", s.sim.base_url))
        .send()
        .await
        .expect("answered");
    assert_eq!(resp.status().as_u16(), 401);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["code"], "AUTHENTICATION_FAILURE");
    let (status, v) = s.call("1000.made.up", Method::GET, path, None).await;
    assert_eq!((status, v["code"].as_str()), (401, Some("INVALID_TOKEN")));
    let token = s.token().await;
    let (status, v) = s.call(&token, Method::GET, path, None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = v["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["api_name"].as_str())
        .collect();
    assert!(names.contains(&"Last_Name") && names.contains(&"Email"));
    s.admin(Method::POST, "oauth/expire", None).await;
    let (status, v) = s.call(&token, Method::GET, path, None).await;
    assert_eq!((status, v["code"].as_str()), (401, Some("INVALID_TOKEN")));
}

#[tokio::test]
async fn access_tokens_expire_after_their_lifetime() {
    let s = Sim::start(ZohoSimConfig {
        access_token_ttl_s: 1,
        ..ZohoSimConfig::default()
    })
    .await;
    let token = s.token().await;
    let path = "/crm/v8/settings/fields?module=Deals";
    assert_eq!(s.call(&token, Method::GET, path, None).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(s.call(&token, Method::GET, path, None).await.0, 401);
}

#[tokio::test]
async fn a_revoked_grant_mints_nothing_and_its_tokens_stop_working() {
    let s = Sim::fresh().await;
    let token = s.token().await;
    s.admin(Method::POST, "oauth/revoke", None).await;
    assert_eq!(
        s.token_answer(&s.sim.refresh_token).await,
        (200, json!({"error": "invalid_code"}))
    );
    assert_eq!(
        s.call(
            &token,
            Method::GET,
            "/crm/v8/settings/fields?module=Leads",
            None
        )
        .await
        .0,
        401
    );
    s.admin(Method::POST, "oauth/restore", None).await;
    s.token().await;
    // Revoking through the accounts API works the same way.
    let v: Value = s
        .http
        .post(format!("{}/oauth/v2/token/revoke", s.sim.accounts_url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", s.sim.refresh_token.as_str())]))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    assert_eq!(v["status"], "success");
    assert_eq!(s.admin(Method::GET, "oauth", None).await["revoked"], true);
}

#[tokio::test]
async fn the_eleventh_mint_in_ten_minutes_is_access_denied() {
    let s = Sim::fresh().await;
    for _ in 0..10 {
        s.token().await;
    }
    let (status, v) = s.token_answer(&s.sim.refresh_token).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"], "Access Denied");
    assert_eq!(
        s.admin(Method::GET, "oauth", None).await["mints_in_window"],
        10
    );
}

#[tokio::test]
async fn upsert_notes_and_deals_over_http_with_zohos_statuses() {
    let s = Sim::fresh().await;
    let t = s.token().await;
    let (status, v) = s
        .call(
            &t,
            Method::POST,
            "/crm/v8/Contacts/upsert",
            Some(json!({
                "data": [{"Last_Name": "Sharma", "Email": "priya@acme.in"}, {"Email": "x@acme.in"}],
                "duplicate_check_fields": ["Email"],
            })),
        )
        .await;
    assert_eq!(status, 207, "{v}");
    let id = v["data"][0]["details"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(v["data"][1]["code"], "MANDATORY_NOT_FOUND");
    let (status, v) = s
        .call(
            &t,
            Method::POST,
            "/crm/v8/Contacts/upsert",
            Some(json!({"data": [{"Email": "PRIYA@acme.in", "Phone": "+91 98765 43210"}]})),
        )
        .await;
    assert_eq!(
        (status, v["data"][0]["action"].as_str()),
        (200, Some("update"))
    );
    let (status, v) = s
        .call(&t, Method::GET, &format!("/crm/v8/Contacts/{id}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["data"][0]["Full_Name"], "Sharma");
    assert_eq!(
        s.call(
            &t,
            Method::GET,
            "/crm/v8/Contacts/5725767000999999999",
            None
        )
        .await
        .0,
        204
    );

    // Notes: 201, listed with `fields`, 204 when there are none.
    let parent = json!({"module": {"api_name": "Contacts"}, "id": id});
    let (status, v) = s
        .call(
            &t,
            Method::POST,
            "/crm/v8/Notes",
            Some(json!({"data": [
                {"Note_Title": "t", "Note_Content": "first", "Parent_Id": parent},
                {"Note_Content": "second", "Parent_Id": parent},
            ]})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let note = v["data"][1]["details"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let notes = format!("/crm/v8/Contacts/{id}/Notes");
    assert_eq!(
        s.call(&t, Method::GET, &notes, None).await.1["code"],
        "REQUIRED_PARAM_MISSING"
    );
    let (_, v) = s
        .call(
            &t,
            Method::GET,
            &format!("{notes}?fields=Note_Content&per_page=1"),
            None,
        )
        .await;
    assert_eq!(v["data"][0]["Note_Content"], "first", "oldest first");
    assert_eq!(v["info"]["more_records"], true);
    let (status, _) = s
        .call(
            &t,
            Method::PUT,
            &format!("/crm/v8/Notes/{note}"),
            Some(json!({"data": [{"Note_Content": "changed"}]})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, v) = s
        .call(
            &t,
            Method::GET,
            &format!("{notes}?fields=Note_Content&sort_order=desc"),
            None,
        )
        .await;
    assert_eq!(v["data"][0]["Note_Content"], "changed");

    // Deals.
    let (status, v) = s
        .call(&t, Method::POST, "/crm/v8/Deals", Some(json!({"data": [{"Deal_Name": "D", "Stage": "Qualification", "Contact_Name": {"id": id}}]})))
        .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = s
        .call(
            &t,
            Method::GET,
            &format!("/crm/v8/Contacts/{id}/Deals?fields=Deal_Name"),
            None,
        )
        .await;
    assert_eq!(
        (status, v["data"][0]["Deal_Name"].as_str()),
        (200, Some("D"))
    );
    let (status, v) = s
        .call(
            &t,
            Method::GET,
            "/crm/v8/Contacts/1/Deals?fields=Deal_Name",
            None,
        )
        .await;
    assert_eq!(
        (status, v["message"].as_str()),
        (404, Some("The record does not exist"))
    );

    let stats = s.admin(Method::GET, "stats", None).await;
    assert_eq!(stats["by_route"]["POST /crm/v8/Contacts/upsert"], 2);
    assert_eq!(stats["by_route"]["PUT /crm/v8/Notes/{id}"], 1);
    assert_eq!(stats["by_route"]["GET /crm/v8/Contacts/{id}/Notes"], 3);
}

#[tokio::test]
async fn search_lags_writes_and_answers_204_until_indexed() {
    let s = Sim::start(ZohoSimConfig {
        search_lag_ms: 1_500,
        ..ZohoSimConfig::default()
    })
    .await;
    let t = s.token().await;
    s.call(&t, Method::POST, "/crm/v8/Contacts", Some(json!({"data": [{"Last_Name": "P", "Phone": "+14155552671", "Mobile": "+447700900123"}]})))
        .await;
    let by_phone = "/crm/v8/Contacts/search?phone=%2B14155552671";
    assert_eq!(s.call(&t, Method::GET, by_phone, None).await.0, 204);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (status, v) = loop {
        let (status, v) = s.call(&t, Method::GET, by_phone, None).await;
        if status != 204 || std::time::Instant::now() > deadline {
            break (status, v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (status, v["data"][0]["Last_Name"].as_str()),
        (200, Some("P"))
    );
    let criteria = "/crm/v8/Contacts/search?criteria=((Phone:in:%2B10000000000,%2B447700900123)or(Mobile:in:%2B447700900123))&fields=Phone,Mobile";
    let (status, v) = s.call(&t, Method::GET, criteria, None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"].as_array().expect("data").len(), 1);
    assert!(
        v["data"][0].get("Last_Name").is_none(),
        "only the asked fields"
    );
    let (status, v) = s
        .call(
            &t,
            Method::GET,
            "/crm/v8/Contacts/search?criteria=(Nope:equals:1)",
            None,
        )
        .await;
    assert_eq!((status, v["code"].as_str()), (400, Some("INVALID_QUERY")));
    assert_eq!(
        s.call(&t, Method::GET, "/crm/v8/Contacts/search", None)
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn a_field_changed_by_the_admin_refuses_one_record_of_a_batch() {
    let s = Sim::fresh().await;
    let t = s.token().await;
    let v = s
        .admin(
            Method::POST,
            "fields/Contacts",
            Some(json!({"api_name": "First_Name", "data_type": "text", "length": 5})),
        )
        .await;
    assert_eq!(v["length"], 5);
    let (status, v) = s
        .call(
            &t,
            Method::POST,
            "/crm/v8/Contacts/upsert",
            Some(json!({"data": [
                {"Last_Name": "A", "First_Name": "Ann"},
                {"Last_Name": "B", "First_Name": "Bartholomew"},
            ]})),
        )
        .await;
    assert_eq!(status, 207);
    assert_eq!(v["data"][1]["details"]["api_name"], "First_Name");
    assert_eq!(v["data"][1]["details"]["json_path"], "$.data[1].First_Name");
    s.http
        .delete(format!("{}/__admin/fields/Contacts/Mobile", s.sim.base_url))
        .send()
        .await
        .expect("answered");
    let (_, v) = s
        .call(
            &t,
            Method::GET,
            "/crm/v8/settings/fields?module=Contacts",
            None,
        )
        .await;
    assert!(!v["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .any(|f| f["api_name"] == "Mobile"));
}

#[tokio::test]
async fn faults_concurrency_and_credits_answer_429() {
    let s = Sim::start(ZohoSimConfig {
        concurrency_limit: 1,
        search_lag_ms: 0,
        ..ZohoSimConfig::default()
    })
    .await;
    let t = s.token().await;
    s.admin(Method::POST, "faults", Some(json!({"kind": "error", "status": 429, "retry_after": 4, "count": 1, "route": "POST /crm/v8/Notes"})))
        .await;
    let resp = s
        .http
        .post(format!("{}/crm/v8/Notes", s.sim.base_url))
        .header("authorization", format!("Zoho-oauthtoken {t}"))
        .json(&json!({"data": []}))
        .send()
        .await
        .expect("answered");
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "4");

    // One request held by latency holds the only slot: the next one is refused.
    s.admin(
        Method::POST,
        "faults",
        Some(json!({"kind": "latency", "ms": 3_000, "count": 1})),
    )
    .await;
    let path = "/crm/v8/settings/fields?module=Leads";
    let (slow, fast) = tokio::join!(s.call(&t, Method::GET, path, None), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.call(&t, Method::GET, path, None).await
    });
    assert_eq!(slow.0, 200);
    assert_eq!(
        (fast.0, fast.1["code"].as_str()),
        (429, Some("TOO_MANY_REQUESTS"))
    );

    s.admin(
        Method::POST,
        "config",
        Some(json!({"credits_limit": 10, "credits_used": 10})),
    )
    .await;
    let (status, v) = s.call(&t, Method::GET, path, None).await;
    assert_eq!((status, v["code"].as_str()), (429, Some("LIMIT_REACHED")));
    let stats = s.admin(Method::GET, "stats", None).await;
    assert_eq!(stats["rate_limited"], 3);
    assert_eq!(stats["faulted"], 2);

    s.admin(Method::POST, "reset", None).await;
    let stats = s.admin(Method::GET, "stats", None).await;
    assert_eq!(stats["total"], 0);
}

#[tokio::test]
async fn unknown_modules_and_paths_answer_like_zoho() {
    let s = Sim::fresh().await;
    let t = s.token().await;
    let (status, v) = s
        .call(&t, Method::GET, "/crm/v8/Widgets?fields=Name", None)
        .await;
    assert_eq!((status, v["code"].as_str()), (400, Some("INVALID_MODULE")));
    let (status, v) = s.call(&t, Method::GET, "/crm/v9/anything", None).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("INVALID_URL_PATTERN"))
    );
    let (status, v) = s
        .call(&t, Method::DELETE, "/crm/v8/Contacts/upsert", None)
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("INVALID_REQUEST_METHOD"))
    );
    let (status, v) = s
        .call(&t, Method::GET, "/crm/v8/Contacts?fields=Email", None)
        .await;
    assert_eq!((status, v), (204, Value::Null));
}
