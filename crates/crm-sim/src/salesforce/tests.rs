//! The simulator over HTTP: what a client sees.

use reqwest::Method;
use serde_json::{json, Value};

use super::{RunningSalesforceSim, SalesforceSimConfig};

const V: &str = "/services/data/v60.0";

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
    sim: RunningSalesforceSim,
    http: reqwest::Client,
}

struct Reply {
    status: u16,
    limit_info: Option<String>,
    body: Value,
}

impl Sim {
    async fn start(cfg: SalesforceSimConfig) -> Sim {
        let sim = RunningSalesforceSim::start("127.0.0.1:0".parse().expect("addr"), cfg)
            .await
            .expect("starts");
        Sim {
            sim,
            http: reqwest::Client::new(),
        }
    }

    async fn fresh() -> Sim {
        Sim::start(SalesforceSimConfig::default()).await
    }

    async fn token_answer(&self, refresh: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/services/oauth2/token", self.sim.login_url))
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

    async fn call_with(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        header: Option<(&str, &str)>,
    ) -> Reply {
        let mut req = self
            .http
            .request(method, format!("{}{V}{path}", self.sim.instance_url))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        if let Some((k, v)) = header {
            req = req.header(k, v);
        }
        let resp = req.send().await.expect("answered");
        let status = resp.status().as_u16();
        let limit_info = resp
            .headers()
            .get("sforce-limit-info")
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        let text = resp.text().await.expect("body");
        Reply {
            status,
            limit_info,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    async fn call(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call_with(token, method, path, body, None).await
    }

    async fn query(&self, token: &str, q: &str) -> Reply {
        let resp = self
            .http
            .get(format!("{}{V}/query", self.sim.instance_url))
            .query(&[("q", q)])
            .bearer_auth(token)
            .send()
            .await
            .expect("answered");
        Reply {
            status: resp.status().as_u16(),
            limit_info: None,
            body: resp.json().await.unwrap_or(Value::Null),
        }
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

fn lead(email: &str) -> Value {
    json!({"LastName": "Sharma", "Company": "Acme", "Email": email})
}

#[tokio::test]
async fn tokens_expire_and_an_expired_session_is_invalid_session_id_with_usage() {
    let s = Sim::fresh().await;
    let t = s.token().await;
    let ok = s
        .call(&t, Method::GET, "/sobjects/Lead/describe", None)
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.limit_info.as_deref(), Some("api-usage=1/100000"));
    s.admin(Method::POST, "oauth/expire", None).await;
    let r = s
        .call(&t, Method::GET, "/sobjects/Lead/describe", None)
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.body,
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );
    assert_eq!(
        r.limit_info.as_deref(),
        Some("api-usage=1/100000"),
        "a 401 uses no call"
    );
    s.admin(Method::POST, "oauth/revoke", None).await;
    let (status, v) = s.token_answer(&s.sim.refresh_token).await;
    assert_eq!(
        (status, v),
        (
            400,
            json!({"error": "invalid_grant", "error_description": "expired access/refresh token"})
        )
    );
    s.admin(Method::POST, "oauth/restore", None).await;
    assert_eq!(s.token_answer(&s.sim.refresh_token).await.0, 200);
}

#[tokio::test]
async fn rotation_hands_out_a_new_refresh_token_and_reuse_revokes_the_grant() {
    let s = Sim::start(SalesforceSimConfig {
        rotate_refresh_tokens: true,
        ..SalesforceSimConfig::default()
    })
    .await;
    let (_, first) = s.token_answer(&s.sim.refresh_token).await;
    let r2 = first["refresh_token"].as_str().expect("rotated").to_owned();
    let (status, second) = s.token_answer(&r2).await;
    assert_eq!(status, 200);
    let r3 = second["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    assert_ne!(r2, r3);
    let (status, _) = s.token_answer(&r2).await;
    assert_eq!(status, 400, "a rotated-out token is refused");
    let o = s.admin(Method::GET, "oauth", None).await;
    assert_eq!(
        (o["revoked"].clone(), o["reuse_detected"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(
        s.token_answer(&r3).await.0,
        400,
        "…and takes the grant with it"
    );
}

#[tokio::test]
async fn upsert_by_email_creates_updates_and_answers_300_for_several() {
    let s = Sim::fresh().await;
    let t = s.token().await;
    let path = "/sobjects/Lead/Email/priya%2Bx@acme.in";
    let body = json!({"LastName": "Sharma", "Company": "Acme"});
    let a = s.call(&t, Method::PATCH, path, Some(body.clone())).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["created"], true);
    let id = a.body["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("00Q") && id.len() == 18);
    let b = s
        .call(
            &t,
            Method::PATCH,
            "/sobjects/Lead/Email/PRIYA%2BX@ACME.IN",
            Some(body.clone()),
        )
        .await;
    assert_eq!(
        (b.status, b.body["created"].clone(), b.body["id"].clone()),
        (200, json!(false), json!(id))
    );
    let bad = s
        .call(
            &t,
            Method::PATCH,
            path,
            Some(json!({"Email": "priya+x@acme.in", "LastName": "S"})),
        )
        .await;
    assert_eq!(bad.status, 400, "the path field is not in the body");
    // A second record with the email (created, not upserted): several matches.
    let c = s
        .call(
            &t,
            Method::POST,
            "/sobjects/Lead",
            Some(lead("priya+x@acme.in")),
        )
        .await;
    assert_eq!(c.status, 201);
    let multi = s.call(&t, Method::PATCH, path, Some(body)).await;
    assert_eq!(multi.status, 300);
    let urls = multi.body.as_array().expect("urls");
    assert_eq!(urls.len(), 2);
    assert!(urls[0].as_str().expect("url").ends_with(&id));
    let count = s.query(&t, "SELECT Id FROM Lead").await;
    assert_eq!(count.body["totalSize"], 2, "nothing written by the 300");
    let missing = s
        .call(
            &t,
            Method::PATCH,
            "/sobjects/Lead/Email/new@x.io",
            Some(json!({"LastName": "X"})),
        )
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.body[0]["errorCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(missing.body[0]["fields"], json!(["Company"]));
    let not_lookup = s
        .call(
            &t,
            Method::PATCH,
            "/sobjects/Lead/LastName/x",
            Some(json!({})),
        )
        .await;
    assert_eq!(not_lookup.status, 404);
}

#[tokio::test]
async fn collections_upsert_answers_in_order_with_per_record_status_codes() {
    let s = Sim::fresh().await;
    let t = s.token().await;
    s.admin(
        Method::POST,
        "fields/Lead",
        Some(json!({"name": "FirstName", "length": 5})),
    )
    .await;
    let rec = |email: &str, first: &str| json!({"attributes": {"type": "Lead"}, "Email": email, "FirstName": first, "LastName": "L", "Company": "C"});
    let body = json!({"allOrNone": false, "records": [
        rec("a@x.io", "Ann"), rec("b@x.io", "Bartholomew"), rec("c@x.io", "Cy"),
        rec("d@x.io", "Di"), rec("D@x.io", "Do"),
    ]});
    let r = s
        .call(
            &t,
            Method::PATCH,
            "/composite/sobjects/Lead/Email",
            Some(body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let items = r.body.as_array().expect("results").clone();
    assert_eq!(items.len(), 5);
    assert_eq!(items[0]["success"], true);
    assert_eq!(items[0]["created"], true);
    assert_eq!(items[1]["success"], false);
    assert_eq!(items[1]["errors"][0]["statusCode"], "STRING_TOO_LONG");
    assert_eq!(items[1]["errors"][0]["fields"], json!(["FirstName"]));
    assert_eq!(items[3]["errors"][0]["statusCode"], "DUPLICATE_VALUE");
    assert_eq!(items[4]["errors"][0]["statusCode"], "DUPLICATE_VALUE");
    // Again, all or none: one bad record rolls the rest back.
    let again =
        json!({"allOrNone": true, "records": [rec("a@x.io", "Ann"), rec("e@x.io", "Bartholomew")]});
    let r = s
        .call(
            &t,
            Method::PATCH,
            "/composite/sobjects/Lead/Email",
            Some(again),
        )
        .await;
    let items = r.body.as_array().expect("results").clone();
    assert_eq!(
        items[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(
        s.query(&t, "SELECT Id FROM Lead").await.body["totalSize"],
        2
    );
    // Several matches for one record.
    s.call(&t, Method::POST, "/sobjects/Lead", Some(lead("a@x.io")))
        .await;
    let r = s
        .call(
            &t,
            Method::PATCH,
            "/composite/sobjects/Lead/Email",
            Some(json!({"records": [rec("a@x.io", "A")]})),
        )
        .await;
    assert_eq!(
        r.body[0]["errors"][0]["statusCode"],
        "DUPLICATE_EXTERNAL_ID"
    );
    // An unknown field refuses the whole request; more than 200 records too.
    let r = s
        .call(&t, Method::PATCH, "/composite/sobjects/Lead/Email", Some(json!({"records": [{"attributes": {"type": "Lead"}, "Email": "z@x.io", "Nope__c": 1}]})))
        .await;
    assert_eq!(
        (r.status, r.body[0]["errorCode"].clone()),
        (400, json!("INVALID_FIELD"))
    );
    let many: Vec<Value> = (0..201).map(|i| rec(&format!("m{i}@x.io"), "M")).collect();
    let r = s
        .call(
            &t,
            Method::PATCH,
            "/composite/sobjects/Lead/Email",
            Some(json!({"records": many})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        s.calls("PATCH /services/data/v60.0/composite/sobjects/{sobject}/{field}")
            .await,
        5
    );
}

#[tokio::test]
async fn tasks_are_created_by_collections_and_found_by_who_id() {
    let s = Sim::fresh().await;
    let t = s.token().await;
    let l = s
        .call(&t, Method::POST, "/sobjects/Lead", Some(lead("t@x.io")))
        .await;
    let id = l.body["id"].as_str().expect("id").to_owned();
    let task = |d: &str| json!({"attributes": {"type": "Task"}, "WhoId": id, "Subject": "Chat", "Description": d, "Status": "Completed"});
    let r = s
        .call(
            &t,
            Method::POST,
            "/composite/sobjects",
            Some(json!({"records": [task("one"), task("two"),
            {"attributes": {"type": "Task"}, "WhoId": "00Q5g000009zzzzZZZ", "Subject": "x"}]})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body[0]["success"], true);
    assert_eq!(r.body[2]["errors"][0]["statusCode"], "MALFORMED_ID");
    let q = s
        .query(
            &t,
            &format!(
                "SELECT Id, Description FROM Task WHERE WhoId = '{}' ORDER BY CreatedDate ASC",
                &id[..15]
            ),
        )
        .await;
    assert_eq!(q.status, 200, "{}", q.body);
    assert_eq!(q.body["totalSize"], 2);
    assert_eq!(q.body["records"][1]["Description"], "two");
    let refused = s
        .query(&t, "SELECT Id FROM Task WHERE Description = 'one'")
        .await;
    assert_eq!(refused.body[0]["errorCode"], "INVALID_FIELD");
}

#[tokio::test]
async fn composite_resolves_references_and_rolls_back_all_or_none() {
    let s = Sim::fresh().await;
    let t = s.token().await;
    let body = json!({"allOrNone": true, "compositeRequest": [
        {"method": "PATCH", "url": format!("{V}/sobjects/Lead/Email/c@x.io"), "referenceId": "lead",
         "body": {"LastName": "C", "Company": "Acme"}},
        {"method": "POST", "url": format!("{V}/sobjects/Task"), "referenceId": "task",
         "body": {"WhoId": "@{lead.id}", "Subject": "Chat"}},
    ]});
    let r = s.call(&t, Method::POST, "/composite", Some(body)).await;
    assert_eq!(r.status, 200);
    let resp = r.body["compositeResponse"]
        .as_array()
        .expect("answers")
        .clone();
    assert_eq!(resp[0]["httpStatusCode"], 201);
    assert_eq!(resp[1]["httpStatusCode"], 201, "{}", resp[1]);
    let bad = json!({"allOrNone": true, "compositeRequest": [
        {"method": "PATCH", "url": format!("{V}/sobjects/Lead/Email/d@x.io"), "referenceId": "lead",
         "body": {"LastName": "D", "Company": "Acme"}},
        {"method": "POST", "url": format!("{V}/sobjects/Task"), "referenceId": "task",
         "body": {"WhoId": "@{nope.id}"}},
    ]});
    let r = s.call(&t, Method::POST, "/composite", Some(bad)).await;
    let resp = r.body["compositeResponse"]
        .as_array()
        .expect("answers")
        .clone();
    assert_eq!(resp[0]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(
        s.query(&t, "SELECT Id FROM Lead").await.body["totalSize"],
        1,
        "rolled back"
    );
    let too_many: Vec<Value> = (0..26)
        .map(|i| json!({"method": "GET", "url": format!("{V}/sobjects/Lead/describe"), "referenceId": format!("r{i}")}))
        .collect();
    let r = s
        .call(
            &t,
            Method::POST,
            "/composite",
            Some(json!({"compositeRequest": too_many})),
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn describe_lists_the_field_properties_adapters_check() {
    let s = Sim::fresh().await;
    let t = s.token().await;
    let d = s
        .call(&t, Method::GET, "/sobjects/Lead/describe", None)
        .await
        .body;
    let field = |n: &str| {
        d["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .find(|f| f["name"] == n)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let email = field("Email");
    for k in [
        "name",
        "type",
        "length",
        "createable",
        "updateable",
        "idLookup",
        "externalId",
        "nillable",
        "picklistValues",
    ] {
        assert!(email.get(k).is_some(), "{k}");
    }
    assert_eq!(email["idLookup"], true);
    assert_eq!(field("IsConverted")["createable"], false);
    assert_eq!(field("LastName")["nillable"], false);
    s.admin(Method::DELETE, "fields/Lead/MobilePhone", None)
        .await;
    let d = s
        .call(&t, Method::GET, "/sobjects/Lead/describe", None)
        .await
        .body;
    assert!(!d["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .any(|f| f["name"] == "MobilePhone"));
}

#[tokio::test]
async fn a_converted_lead_refuses_writes_and_points_at_its_contact() {
    let s = Sim::fresh().await;
    let t = s.token().await;
    let l = s
        .call(
            &t,
            Method::PATCH,
            "/sobjects/Lead/Email/v@x.io",
            Some(json!({"LastName": "V", "Company": "A"})),
        )
        .await;
    let id = l.body["id"].as_str().expect("id").to_owned();
    s.call(
        &t,
        Method::POST,
        "/sobjects/Task",
        Some(json!({"WhoId": id, "Subject": "Chat"})),
    )
    .await;
    let c = s
        .admin(Method::POST, &format!("leads/{id}/convert"), None)
        .await;
    let contact = c["contact_id"].as_str().expect("contact").to_owned();
    assert!(contact.starts_with("003"));
    let again = s
        .call(
            &t,
            Method::PATCH,
            "/sobjects/Lead/Email/v@x.io",
            Some(json!({"FirstName": "Vi"})),
        )
        .await;
    assert_eq!(
        (again.status, again.body[0]["errorCode"].clone()),
        (400, json!("CANNOT_UPDATE_CONVERTED_LEAD"))
    );
    let q = s
        .query(
            &t,
            &format!("SELECT Id, IsConverted, ConvertedContactId FROM Lead WHERE Id = '{id}'"),
        )
        .await;
    assert_eq!(q.body["records"][0]["ConvertedContactId"], contact.as_str());
    let task = s
        .call(
            &t,
            Method::POST,
            "/sobjects/Task",
            Some(json!({"WhoId": id})),
        )
        .await;
    assert_eq!(task.body[0]["errorCode"], "CANNOT_UPDATE_CONVERTED_LEAD");
    let moved = s
        .query(
            &t,
            &format!("SELECT Id FROM Task WHERE WhoId = '{contact}'"),
        )
        .await;
    assert_eq!(moved.body["totalSize"], 1, "activities move to the contact");
    let upd = s
        .call(
            &t,
            Method::PATCH,
            &format!("/sobjects/Contact/{contact}"),
            Some(json!({"FirstName": "Vi"})),
        )
        .await;
    assert_eq!(upd.status, 204);
}

#[tokio::test]
async fn duplicate_rules_refuse_unless_allow_save_and_limits_locks_refuse_too() {
    let s = Sim::fresh().await;
    let t = s.token().await;
    s.call(
        &t,
        Method::POST,
        "/sobjects/Contact",
        Some(json!({"LastName": "K", "Email": "k@x.io"})),
    )
    .await;
    s.admin(
        Method::POST,
        "duplicate_rules",
        Some(json!({"sobject": "Lead", "action": "alert"})),
    )
    .await;
    let r = s
        .call(
            &t,
            Method::PATCH,
            "/sobjects/Lead/Email/k@x.io",
            Some(json!({"LastName": "K", "Company": "A"})),
        )
        .await;
    assert_eq!(r.body[0]["errorCode"], "DUPLICATES_DETECTED");
    let r = s
        .call_with(
            &t,
            Method::PATCH,
            "/sobjects/Lead/Email/k@x.io",
            Some(json!({"LastName": "K", "Company": "A"})),
            Some((
                "Sforce-Duplicate-Rule-Header",
                "allowSave=true; includeRecordDetails=false",
            )),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    s.admin(
        Method::POST,
        "duplicate_rules",
        Some(json!({"sobject": "Lead", "action": "block"})),
    )
    .await;
    let r = s
        .call_with(
            &t,
            Method::POST,
            "/sobjects/Lead",
            Some(lead("k@x.io")),
            Some(("Sforce-Duplicate-Rule-Header", "allowSave=true")),
        )
        .await;
    assert_eq!(
        r.body[0]["errorCode"], "DUPLICATES_DETECTED",
        "a blocking rule is not bypassed"
    );
    // Row locks: per record in collections, and through an injected 409.
    s.admin(Method::POST, "lock_rows", Some(json!({"count": 1})))
        .await;
    let r = s
        .call(&t, Method::PATCH, "/composite/sobjects/Lead/Email", Some(json!({"records": [
            {"attributes": {"type": "Lead"}, "Email": "l1@x.io", "LastName": "L", "Company": "C"},
            {"attributes": {"type": "Lead"}, "Email": "l2@x.io", "LastName": "L", "Company": "C"}]})))
        .await;
    assert_eq!(r.body[0]["errors"][0]["statusCode"], "UNABLE_TO_LOCK_ROW");
    assert_eq!(r.body[1]["success"], true);
    s.admin(
        Method::POST,
        "faults",
        Some(json!({"kind": "error", "status": 409, "count": 1})),
    )
    .await;
    let r = s
        .call(&t, Method::GET, "/sobjects/Lead/describe", None)
        .await;
    assert_eq!(
        (r.status, r.body[0]["errorCode"].clone()),
        (409, json!("UNABLE_TO_LOCK_ROW"))
    );
    // The daily allocation.
    s.admin(
        Method::POST,
        "config",
        Some(json!({"daily_api_limit": 20, "api_used": 20})),
    )
    .await;
    let r = s
        .call(&t, Method::GET, "/sobjects/Lead/describe", None)
        .await;
    assert_eq!(
        (r.status, r.body[0]["errorCode"].clone()),
        (403, json!("REQUEST_LIMIT_EXCEEDED"))
    );
    assert_eq!(r.limit_info.as_deref(), Some("api-usage=20/20"));
    let stats = s.admin(Method::GET, "stats", None).await;
    assert!(stats["rate_limited"].as_u64().expect("n") >= 1);
    assert!(
        stats["by_route"]["GET /services/data/v60.0/sobjects/{sobject}/describe"]
            .as_u64()
            .is_some()
    );
    s.admin(Method::POST, "reset", None).await;
    let t = s.token().await;
    assert_eq!(
        s.query(&t, "SELECT Id FROM Contact").await.body["totalSize"],
        0
    );
}

fn opportunity(stage: &str) -> Value {
    json!({"Name": "Acme (chatbot bot_acme)", "StageName": stage, "CloseDate": "2026-06-03"})
}

#[tokio::test]
async fn opportunities_and_contact_roles_are_checked_created_and_queried() {
    let s = Sim::fresh().await;
    let t = s.token().await;
    let d = s
        .call(&t, Method::GET, "/sobjects/Opportunity/describe", None)
        .await;
    assert_eq!((d.status, d.body["keyPrefix"].clone()), (200, json!("006")));
    let field = |n: &str| {
        d.body["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .find(|f| f["name"] == n)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let stage = field("StageName");
    assert_eq!(
        (stage["type"].clone(), stage["restrictedPicklist"].clone()),
        (json!("picklist"), json!(true))
    );
    let values = stage["picklistValues"].as_array().expect("values");
    assert_eq!(values.len(), 10);
    assert_eq!(values[0]["value"], "Prospecting");
    assert!(values.iter().all(|v| v["active"] == true));
    for f in ["Name", "StageName", "CloseDate"] {
        assert_eq!(field(f)["nillable"], false, "{f}");
    }
    assert_eq!(field("Amount")["type"], "currency");

    let missing = s
        .call(
            &t,
            Method::POST,
            "/sobjects/Opportunity",
            Some(json!({"Description": "x"})),
        )
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.body[0]["errorCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(
        missing.body[0]["fields"],
        json!(["Name", "StageName", "CloseDate"])
    );
    let bad = s
        .call(
            &t,
            Method::POST,
            "/sobjects/Opportunity",
            Some(opportunity("Won-ish")),
        )
        .await;
    assert_eq!(
        bad.body[0]["errorCode"], "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "{}",
        bad.body
    );
    assert_eq!(bad.body[0]["fields"], json!(["StageName"]));
    let mut with_amount = opportunity("Qualification");
    with_amount["Amount"] = json!("a lot");
    let r = s
        .call(
            &t,
            Method::POST,
            "/sobjects/Opportunity",
            Some(with_amount.clone()),
        )
        .await;
    assert_eq!(r.body[0]["errorCode"], "INVALID_TYPE_ON_FIELD_IN_RECORD");
    with_amount["Amount"] = json!(1250.5);
    let o = s
        .call(&t, Method::POST, "/sobjects/Opportunity", Some(with_amount))
        .await;
    assert_eq!(o.status, 201, "{}", o.body);
    let opp = o.body["id"].as_str().expect("id").to_owned();
    assert!(opp.starts_with("006"), "{opp}");
    let read = s
        .call(
            &t,
            Method::GET,
            &format!("/sobjects/Opportunity/{opp}"),
            None,
        )
        .await;
    assert_eq!(
        (read.body["StageName"].clone(), read.body["Amount"].clone()),
        (json!("Qualification"), json!(1250.5))
    );

    let contact = s
        .call(
            &t,
            Method::POST,
            "/sobjects/Contact",
            Some(json!({"LastName": "K"})),
        )
        .await
        .body["id"]
        .as_str()
        .expect("contact")
        .to_owned();
    let lead_id = s
        .call(&t, Method::POST, "/sobjects/Lead", Some(lead("r@x.io")))
        .await
        .body["id"]
        .as_str()
        .expect("lead")
        .to_owned();
    let role = |contact: &str, primary: bool| json!({"OpportunityId": opp, "ContactId": contact, "IsPrimary": primary});
    let code = |r: &Reply| r.body[0]["errorCode"].clone();
    let r = s
        .call(
            &t,
            Method::POST,
            "/sobjects/OpportunityContactRole",
            Some(role("0035g000009zzzz", true)),
        )
        .await;
    assert_eq!(
        code(&r),
        json!("INVALID_CROSS_REFERENCE_KEY"),
        "no such Contact"
    );
    let r = s
        .call(
            &t,
            Method::POST,
            "/sobjects/OpportunityContactRole",
            Some(role(&lead_id, true)),
        )
        .await;
    assert_eq!(
        code(&r),
        json!("FIELD_INTEGRITY_EXCEPTION"),
        "a Lead is not a Contact"
    );
    assert_eq!(r.body[0]["fields"], json!(["ContactId"]));
    let r = s
        .call(
            &t,
            Method::POST,
            "/sobjects/OpportunityContactRole",
            Some(json!({"ContactId": contact})),
        )
        .await;
    assert_eq!(code(&r), json!("REQUIRED_FIELD_MISSING"));
    let first = s
        .call(
            &t,
            Method::POST,
            "/sobjects/OpportunityContactRole",
            Some(role(&contact, true)),
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let first = first.body["id"].as_str().expect("role").to_owned();
    assert!(first.starts_with("00K"), "{first}");
    let other = s
        .call(
            &t,
            Method::POST,
            "/sobjects/Contact",
            Some(json!({"LastName": "L"})),
        )
        .await
        .body["id"]
        .as_str()
        .expect("contact")
        .to_owned();
    let second = s
        .call(
            &t,
            Method::POST,
            "/sobjects/OpportunityContactRole",
            Some(role(&other, true)),
        )
        .await;
    assert_eq!(second.status, 201);
    let roles = s
        .query(
            &t,
            &format!("SELECT Id, IsPrimary FROM OpportunityContactRole WHERE OpportunityId = '{opp}' ORDER BY CreatedDate ASC"),
        )
        .await;
    assert_eq!(roles.body["totalSize"], 2, "{}", roles.body);
    assert_eq!(
        (
            roles.body["records"][0]["IsPrimary"].clone(),
            roles.body["records"][1]["IsPrimary"].clone()
        ),
        (json!(false), json!(true)),
        "one primary contact per Opportunity"
    );
    let moved = s
        .call(
            &t,
            Method::PATCH,
            &format!("/sobjects/OpportunityContactRole/{first}"),
            Some(json!({"OpportunityId": opp})),
        )
        .await;
    assert_eq!(
        code(&moved),
        json!("INVALID_FIELD_FOR_INSERT_UPDATE"),
        "OpportunityId is not updateable"
    );

    let by_contact = s
        .query(
            &t,
            &format!(
                "SELECT OpportunityId FROM OpportunityContactRole WHERE ContactId = '{}'",
                &contact[..15]
            ),
        )
        .await;
    assert_eq!(by_contact.body["records"][0]["OpportunityId"], opp.as_str());
    let opps = s
        .query(
            &t,
            &format!("SELECT Id, Description FROM Opportunity WHERE Id IN ('{opp}')"),
        )
        .await;
    assert_eq!(opps.body["totalSize"], 1, "{}", opps.body);
    let refused = s
        .query(&t, "SELECT Id FROM Opportunity WHERE Description = 'x'")
        .await;
    assert_eq!(
        refused.body[0]["errorCode"], "INVALID_FIELD",
        "a long text area"
    );
}

#[tokio::test]
async fn composite_creates_an_opportunity_with_its_contact_role_or_nothing() {
    let s = Sim::fresh().await;
    let t = s.token().await;
    let contact = s
        .call(
            &t,
            Method::POST,
            "/sobjects/Contact",
            Some(json!({"LastName": "K"})),
        )
        .await
        .body["id"]
        .as_str()
        .expect("contact")
        .to_owned();
    let request = |contact: &str| {
        json!({"allOrNone": true, "compositeRequest": [
            {"method": "POST", "url": format!("{V}/sobjects/Opportunity"), "referenceId": "opp",
             "body": opportunity("Prospecting")},
            {"method": "POST", "url": format!("{V}/sobjects/OpportunityContactRole"), "referenceId": "role",
             "body": {"OpportunityId": "@{opp.id}", "ContactId": contact, "IsPrimary": true}},
        ]})
    };
    let r = s
        .call(&t, Method::POST, "/composite", Some(request(&contact)))
        .await;
    assert_eq!(r.status, 200);
    let resp = r.body["compositeResponse"]
        .as_array()
        .expect("answers")
        .clone();
    assert_eq!(
        (
            resp[0]["httpStatusCode"].clone(),
            resp[0]["referenceId"].clone()
        ),
        (json!(201), json!("opp"))
    );
    assert_eq!(resp[1]["httpStatusCode"], 201, "{}", resp[1]);
    let opp = resp[0]["body"]["id"].as_str().expect("opp").to_owned();
    let role = resp[1]["body"]["id"].as_str().expect("role").to_owned();
    let read = s
        .call(
            &t,
            Method::GET,
            &format!("/sobjects/OpportunityContactRole/{role}"),
            None,
        )
        .await;
    assert_eq!(
        (
            read.body["OpportunityId"].clone(),
            read.body["IsPrimary"].clone()
        ),
        (json!(opp), json!(true))
    );

    // The role fails: the Opportunity is rolled back with it.
    let r = s
        .call(
            &t,
            Method::POST,
            "/composite",
            Some(request("0035g000009zzzz")),
        )
        .await;
    assert_eq!(r.status, 200);
    let resp = r.body["compositeResponse"]
        .as_array()
        .expect("answers")
        .clone();
    assert_eq!(
        (
            resp[0]["httpStatusCode"].clone(),
            resp[0]["body"][0]["errorCode"].clone()
        ),
        (json!(400), json!("PROCESSING_HALTED"))
    );
    assert_eq!(
        (
            resp[1]["httpStatusCode"].clone(),
            resp[1]["body"][0]["errorCode"].clone()
        ),
        (json!(400), json!("INVALID_CROSS_REFERENCE_KEY"))
    );
    assert_eq!(
        s.query(&t, "SELECT Id FROM Opportunity").await.body["totalSize"],
        1,
        "only the first one"
    );
    assert_eq!(
        s.calls("POST /services/data/v60.0/composite").await,
        2,
        "a Composite request is one call"
    );
}

#[tokio::test]
async fn an_inactive_stage_is_described_inactive_and_refused() {
    let s = Sim::fresh().await;
    let t = s.token().await;
    let stages: Vec<Value> = super::schema::OPPORTUNITY_STAGES
        .iter()
        .map(|v| json!({"value": v, "active": *v != "Prospecting"}))
        .collect();
    let described = s
        .admin(
            Method::POST,
            "fields/Opportunity",
            Some(json!({"name": "StageName", "picklistValues": stages})),
        )
        .await;
    assert_eq!(described["picklistValues"][0]["active"], false);
    assert_eq!(
        described["nillable"], false,
        "the rest of the field is kept"
    );
    let d = s
        .call(&t, Method::GET, "/sobjects/Opportunity/describe", None)
        .await;
    let stage = d.body["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["name"] == "StageName")
        .cloned()
        .expect("StageName");
    assert_eq!(stage["picklistValues"][0]["active"], false);
    assert_eq!(stage["picklistValues"][1]["active"], true);
    let r = s
        .call(
            &t,
            Method::POST,
            "/sobjects/Opportunity",
            Some(opportunity("Prospecting")),
        )
        .await;
    assert_eq!(
        r.body[0]["errorCode"],
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    );
    let r = s
        .call(
            &t,
            Method::POST,
            "/sobjects/Opportunity",
            Some(opportunity("Qualification")),
        )
        .await;
    assert_eq!(r.status, 201);
}
