//! The Salesforce adapter against the Salesforce simulator over HTTP: OAuth
//! (refresh, expiry, rotation, revocation, JWT bearer), upserts by email in
//! collections, the 300 multi-match, converted Leads, Tasks found by their
//! exact tag, limits, duplicate rules, schema drift.

mod common;

use std::sync::Arc;
use std::time::Duration;

use crm_sim::salesforce::{RunningSalesforceSim, SalesforceSimConfig};
use lb_crm::{SalesforceConfig, SalesforceCrm};
use lb_domain::{LeadEvent, QueuedLead};
use lb_pipeline::{ContactWrite, Crm, ErrorClass};
use reqwest::Method;
use serde_json::{json, Value};

use common::{eid, item, lead, person, GrantStore};

/// The test-only RSA key pair of `crates/crm-sim/testdata` (see its README):
/// the simulated connected app holds the certificate, JWT grants the key.
const TEST_CERT: &str = include_str!("../../crm-sim/testdata/jwt-test-cert.pem");
const TEST_KEY_PKCS1: &str = include_str!("../../crm-sim/testdata/jwt-test-key.pem");
const TEST_KEY_PKCS8: &str = include_str!("../../crm-sim/testdata/jwt-test-key.pkcs8.pem");
const OTHER_KEY: &str = include_str!("../../crm-sim/testdata/jwt-other-test-key.pem");

/// A PEM file's block alone (the test files start with a warning line), as
/// a user pastes a key into the secret.
fn pem_block(file: &str) -> &str {
    &file[file.find("-----BEGIN ").expect("a PEM block")..]
}

const V: &str = "/services/data/v60.0";
const UPSERT_ONE: &str = "PATCH /services/data/v60.0/sobjects/{sobject}/{field}/{value}";
const UPSERT_MANY: &str = "PATCH /services/data/v60.0/composite/sobjects/{sobject}/{field}";
const CREATE_MANY: &str = "POST /services/data/v60.0/composite/sobjects";
const UPDATE_MANY: &str = "PATCH /services/data/v60.0/composite/sobjects";

struct Harness {
    sim: RunningSalesforceSim,
    http: reqwest::Client,
}

impl Harness {
    async fn start() -> Harness {
        Harness::with(SalesforceSimConfig::default()).await
    }

    /// The connected app takes both grants: its certificate is the test key's.
    async fn with(cfg: SalesforceSimConfig) -> Harness {
        let cfg = SalesforceSimConfig {
            jwt_public_key: cfg.jwt_public_key.or(Some(TEST_CERT.to_owned())),
            ..cfg
        };
        let sim = RunningSalesforceSim::start("127.0.0.1:0".parse().expect("addr"), cfg)
            .await
            .expect("simulator starts");
        Harness {
            sim,
            http: reqwest::Client::new(),
        }
    }

    fn secret(&self) -> Value {
        json!({
            "client_id": self.sim.client_id,
            "client_secret": self.sim.client_secret,
            "refresh_token": self.sim.refresh_token,
            "login_url": self.sim.login_url,
        })
    }

    fn crm(&self) -> SalesforceCrm {
        self.crm_with(self.secret(), SalesforceConfig::default())
    }

    fn crm_with(&self, secret: Value, cfg: SalesforceConfig) -> SalesforceCrm {
        self.crm_on(Arc::new(GrantStore::new(secret.to_string())), cfg)
    }

    fn crm_on(&self, store: Arc<GrantStore>, cfg: SalesforceConfig) -> SalesforceCrm {
        let grant = store.cached("salesforce");
        SalesforceCrm::new(
            SalesforceConfig {
                login_url: "https://login.salesforce.invalid".into(),
                timeout: Duration::from_secs(5),
                allow_internal: true,
                ..cfg
            },
            grant,
        )
        .expect("client")
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        common::admin(&self.http, &self.sim.base_url, method, path, body).await
    }

    async fn calls(&self, route: &str) -> u64 {
        common::calls(&self.http, &self.sim.base_url, route).await
    }

    async fn refreshes(&self) -> u64 {
        self.admin(Method::GET, "oauth", None).await["refreshes"]
            .as_u64()
            .unwrap_or(0)
    }

    /// A token of the test's own, by the JWT bearer flow (so that a rotating
    /// refresh token is never touched by the test's reads).
    async fn own_token(&self) -> String {
        let claims = json!({"iss": self.sim.client_id, "sub": self.sim.username,
            "aud": self.sim.login_url, "exp": chrono::Utc::now().timestamp() + 120});
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(TEST_KEY_PKCS1.as_bytes()).expect("key");
        let jwt = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &key,
        )
        .expect("signed");
        let form = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={jwt}"
        );
        let t: Value = self
            .http
            .post(format!("{}/services/oauth2/token", self.sim.login_url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .expect("answered")
            .json()
            .await
            .expect("json");
        t["access_token"].as_str().expect("token").to_owned()
    }

    /// Calls the API the way a person inspecting the org would.
    async fn api(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let token = self.own_token().await;
        let mut req = self
            .http
            .request(method, format!("{}{V}{path}", self.sim.instance_url))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("answered");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn query(&self, q: &str) -> Vec<Value> {
        let token = self.own_token().await;
        let v: Value = self
            .http
            .get(format!("{}{V}/query", self.sim.instance_url))
            .query(&[("q", q)])
            .bearer_auth(token)
            .send()
            .await
            .expect("answered")
            .json()
            .await
            .expect("json");
        v["records"].as_array().cloned().unwrap_or_default()
    }

    async fn record(&self, sobject: &str, id: &str) -> Value {
        self.api(Method::GET, &format!("/sobjects/{sobject}/{id}"), None)
            .await
            .1
    }
}

#[tokio::test]
async fn a_new_person_becomes_one_lead_with_one_task() {
    let h = Harness::start().await;
    let crm = h.crm();
    let l = person("evt_new", "priya@acme.in", "Priya Anand Sharma");
    let c = crm
        .upsert_contact(&l, None, ContactWrite::Full)
        .await
        .expect("written");
    assert!(c.created);
    assert!(c.id.starts_with("00Q"), "{}", c.id);
    let task = crm.add_note(&c.id, &l).await.expect("task");

    let record = h.record("Lead", &c.id).await;
    assert_eq!(record["Email"], "priya@acme.in");
    assert_eq!(record["FirstName"], "Priya Anand");
    assert_eq!(record["LastName"], "Sharma");
    assert_eq!(record["Company"], "Acme");
    assert_eq!(record["Country"], "IN");
    assert_eq!(h.query("SELECT Id FROM Lead").await.len(), 1);
    let tasks = h
        .query(&format!(
            "SELECT Id, Subject, Description, Status FROM Task WHERE WhoId = '{}'",
            c.id
        ))
        .await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["Id"], task.as_str());
    assert_eq!(tasks[0]["Status"], "Completed");
    let description = tasks[0]["Description"].as_str().expect("description");
    assert!(
        description.contains("Summary: Asked about pricing"),
        "{description}"
    );
    assert!(!description.contains("<p>"), "plain text: {description}");
    assert!(
        description.ends_with("Ref: leadbridge-event:evt_new"),
        "{description}"
    );
    assert_eq!(
        crm.find_note(&c.id, &eid("evt_new")).await.expect("found"),
        Some(task)
    );
    assert_eq!(
        h.calls(UPSERT_ONE).await,
        1,
        "a batch of one: the single-row upsert"
    );
    assert_eq!(h.calls(CREATE_MANY).await, 1);
    assert_eq!(h.refreshes().await, 1);
}

#[tokio::test]
async fn the_same_email_in_another_case_is_the_same_record() {
    let h = Harness::start().await;
    let crm = h.crm();
    let first = crm
        .upsert_contact(
            &person("evt_a", "Priya.Sharma@AcmeCorp.in", "Priya Sharma"),
            None,
            ContactWrite::Full,
        )
        .await
        .expect("written");
    // A record someone typed in with capitals is matched too.
    let (status, typed) = h
        .api(
            Method::POST,
            "/sobjects/Lead",
            Some(json!({"LastName": "Ng", "Company": "X", "Email": "Bo.Ng@X.io"})),
        )
        .await;
    assert_eq!(status, 201);
    let again = crm
        .upsert_contacts(&[
            item(person("evt_b", "priya.sharma@acmecorp.in ", "Priya Sharma")),
            item(person("evt_c", "bo.ng@x.io", "Bo Ng")),
        ])
        .await;
    let again: Vec<_> = again.into_iter().map(|a| a.expect("written")).collect();
    assert_eq!(again[0].id, first.id);
    assert_eq!(again[1].id, typed["id"].as_str().expect("id"));
    assert!(first.created && !again[0].created && !again[1].created);
    assert_eq!(h.query("SELECT Id FROM Lead").await.len(), 2);
    assert_eq!(
        h.calls(UPSERT_MANY).await,
        1,
        "two people, one collections upsert"
    );
}

#[tokio::test]
async fn a_batch_of_five_with_one_refused_record_fails_that_item_alone() {
    let h = Harness::start().await;
    h.admin(
        Method::POST,
        "fields/Lead",
        Some(json!({"name": "FirstName", "length": 10})),
    )
    .await;
    let crm = h.crm();
    let answers = crm
        .upsert_contacts(&common::five_with_one_long_name())
        .await;
    common::only_the_long_name_refused(
        &answers,
        "STRING_TOO_LONG",
        200,
        &["field FirstName", "max length=10"],
    );
    assert_eq!(h.calls(UPSERT_MANY).await, 1, "one call for the batch");
    assert_eq!(h.query("SELECT Id FROM Lead").await.len(), 4);
}

#[tokio::test]
async fn several_records_holding_the_email_are_a_permanent_error_naming_them() {
    let h = Harness::start().await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (status, v) = h
            .api(
                Method::POST,
                "/sobjects/Lead",
                Some(json!({"LastName": "Twin", "Company": "X", "Email": "twin@x.io"})),
            )
            .await;
        assert_eq!(status, 201);
        ids.push(v["id"].as_str().expect("id").to_owned());
    }
    let crm = h.crm();
    let e = crm
        .upsert_contact(
            &person("evt_300", "twin@x.io", "Tom Twin"),
            None,
            ContactWrite::Full,
        )
        .await
        .expect_err("several");
    assert_eq!(e.class, ErrorClass::Permanent);
    assert_eq!(e.http_status, Some(300));
    assert_eq!(e.category.as_deref(), Some("MULTIPLE_CHOICES"));
    for id in &ids {
        assert!(e.message.contains(id.as_str()), "{}", e.message);
    }
    assert!(!e.message.contains("twin@x.io"), "{}", e.message);
    // In a collection: DUPLICATE_EXTERNAL_ID, the same answer for that item alone.
    let answers = crm
        .upsert_contacts(&[
            item(person("evt_301", "twin@x.io", "Tom Twin")),
            item(person("evt_302", "solo@x.io", "Sol O")),
        ])
        .await;
    let e = answers[0].as_ref().expect_err("several");
    assert_eq!(e.category.as_deref(), Some("DUPLICATE_EXTERNAL_ID"));
    assert!(
        ids.iter().all(|id| e.message.contains(id.as_str())),
        "{}",
        e.message
    );
    assert!(answers[1].is_ok());
    let twins = h
        .query("SELECT Id, FirstName FROM Lead WHERE Email = 'twin@x.io'")
        .await;
    assert!(
        twins.iter().all(|r| r["FirstName"].is_null()),
        "nothing written to either"
    );
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_once_and_the_write_succeeds() {
    let h = Harness::start().await;
    let crm = h.crm();
    crm.upsert_contact(
        &person("evt_e1", "e@x.io", "Eve Li"),
        None,
        ContactWrite::Full,
    )
    .await
    .expect("written");
    assert_eq!(h.refreshes().await, 1);
    h.admin(Method::POST, "oauth/expire", None).await;
    let c = crm
        .upsert_contact(
            &person("evt_e2", "e@x.io", "Eve Li"),
            None,
            ContactWrite::Full,
        )
        .await
        .expect("written after one refresh");
    assert!(!c.created);
    assert_eq!(h.refreshes().await, 2, "exactly one refresh");
    assert_eq!(
        h.calls(UPSERT_ONE).await,
        3,
        "the refused call, then its retry"
    );
}

#[tokio::test]
async fn a_rotating_refresh_token_is_used_for_the_next_refresh() {
    let h = Harness::with(SalesforceSimConfig {
        rotate_refresh_tokens: true,
        ..SalesforceSimConfig::default()
    })
    .await;
    let crm = h.crm();
    crm.warm_up().await;
    assert_eq!(h.refreshes().await, 1);
    for i in 0..2 {
        h.admin(Method::POST, "oauth/expire", None).await;
        crm.upsert_contact(
            &person(&format!("evt_rot{i}"), "rot@x.io", "Ro Tate"),
            None,
            ContactWrite::Full,
        )
        .await
        .expect("written with the rotated grant");
    }
    let o = h.admin(Method::GET, "oauth", None).await;
    assert_eq!(
        o["refreshes"], 3,
        "each refresh used the newest refresh token"
    );
    assert_eq!(o["reuse_detected"], false, "{o}");
    assert_eq!(o["revoked"], false);
}

#[tokio::test]
async fn a_rotated_refresh_token_is_written_back_so_a_cold_start_uses_it_without_revoking_the_grant(
) {
    let h = Harness::with(SalesforceSimConfig {
        rotate_refresh_tokens: true,
        ..SalesforceSimConfig::default()
    })
    .await;
    let store = Arc::new(GrantStore::new(h.secret().to_string()));
    let first = h.crm_on(store.clone(), SalesforceConfig::default());
    first.warm_up().await;
    let written: Value = serde_json::from_str(&store.value()).unwrap();
    assert_ne!(
        written["refresh_token"], h.sim.refresh_token,
        "the rotated token is in the secret"
    );
    assert_eq!(
        written["client_id"], h.sim.client_id,
        "the rest of the grant is kept"
    );
    // Another instance (a cold start) reads the secret and refreshes with the new token.
    let second = h.crm_on(store.clone(), SalesforceConfig::default());
    second
        .upsert_contact(
            &person("evt_cold", "cold@x.io", "Cole Start"),
            None,
            ContactWrite::Full,
        )
        .await
        .expect("written by the second instance");
    let o = h.admin(Method::GET, "oauth", None).await;
    assert_eq!(o["reuse_detected"], false, "{o}");
    assert_eq!(o["revoked"], false, "{o}");
}

#[tokio::test]
async fn a_revoked_grant_is_auth_revoked_after_exactly_one_refresh_attempt() {
    let h = Harness::start().await;
    let crm = Arc::new(h.crm());
    crm.warm_up().await;
    h.admin(Method::POST, "oauth/revoke", None).await;
    let e = crm
        .upsert_contact(
            &person("evt_r", "r@x.io", "Ray Wu"),
            None,
            ContactWrite::Full,
        )
        .await
        .expect_err("revoked");
    assert_eq!(e.class, ErrorClass::Permanent);
    assert_eq!(e.code.as_deref(), Some("auth_revoked"));
    assert_eq!(e.reason().code, "auth_revoked");
    assert_eq!(e.category.as_deref(), Some("invalid_grant"));
    assert!(!e.message.contains(&h.sim.refresh_token), "{}", e.message);
    let token_calls = h.calls("POST /services/oauth2/token").await;
    assert_eq!(token_calls, 2, "the first refresh, then one attempt");
    let mut tasks = Vec::new();
    for i in 0..6 {
        let crm = crm.clone();
        tasks.push(tokio::spawn(async move {
            crm.upsert_contact(
                &person(&format!("evt_r{i}"), "r@x.io", "Ray Wu"),
                None,
                ContactWrite::Full,
            )
            .await
        }));
    }
    for t in tasks {
        let e = t.await.expect("task").expect_err("revoked");
        assert_eq!(e.code.as_deref(), Some("auth_revoked"));
    }
    assert_eq!(
        h.calls("POST /services/oauth2/token").await,
        token_calls,
        "no refresh storm"
    );
}

#[tokio::test]
async fn a_spent_daily_allocation_is_rate_limited_for_an_hour_and_not_asked_again() {
    let h = Harness::start().await;
    let crm = h.crm();
    crm.warm_up().await;
    h.admin(
        Method::POST,
        "config",
        Some(json!({"daily_api_limit": 1000, "api_used": 1000})),
    )
    .await;
    let e = crm
        .upsert_contact(
            &person("evt_lim", "lim@x.io", "Li Mit"),
            None,
            ContactWrite::Full,
        )
        .await
        .expect_err("limited");
    assert_eq!(e.class, ErrorClass::RateLimited, "{e:?}");
    assert_eq!(e.category.as_deref(), Some("REQUEST_LIMIT_EXCEEDED"));
    assert_eq!(e.http_status, Some(403));
    assert_eq!(e.retry_after, Some(Duration::from_secs(3600)));
    let before = h.calls(UPSERT_ONE).await;
    let e = crm
        .upsert_contact(
            &person("evt_lim2", "lim@x.io", "Li Mit"),
            None,
            ContactWrite::Full,
        )
        .await
        .expect_err("still limited");
    assert_eq!(e.class, ErrorClass::RateLimited);
    assert!(e
        .retry_after
        .is_some_and(|d| d <= Duration::from_secs(3600)));
    assert_eq!(
        h.calls(UPSERT_ONE).await,
        before,
        "not asked again within the hour"
    );
}

#[tokio::test]
async fn usage_past_seventy_percent_is_warned_once() {
    let h = Harness::start().await;
    let crm = h.crm();
    h.admin(
        Method::POST,
        "config",
        Some(json!({"daily_api_limit": 100, "api_used": 60})),
    )
    .await;
    crm.warm_up().await;
    assert_eq!(crm.take_quota_warning(), None, "61 of 100");
    h.admin(Method::POST, "config", Some(json!({"api_used": 75})))
        .await;
    crm.upsert_contact(
        &person("evt_q", "q@x.io", "Qi Lu"),
        None,
        ContactWrite::Full,
    )
    .await
    .expect("written");
    let w = crm.take_quota_warning().expect("warned");
    assert_eq!((w.used, w.limit), (76, 100));
    assert_eq!(crm.take_quota_warning(), None, "once a day");
}

#[tokio::test]
async fn a_converted_leads_event_lands_on_its_contact() {
    let h = Harness::start().await;
    let crm = h.crm();
    let l1 = person("evt_cv1", "conv@x.io", "Cora Vance");
    let lead_ref = crm
        .upsert_contact(&l1, None, ContactWrite::Full)
        .await
        .expect("lead");
    crm.add_note(&lead_ref.id, &l1).await.expect("task");
    let converted = h
        .admin(
            Method::POST,
            &format!("leads/{}/convert", lead_ref.id),
            None,
        )
        .await;
    let contact = converted["contact_id"]
        .as_str()
        .expect("contact")
        .to_owned();
    // By email, and by the remembered Lead id: both reach the Contact.
    let l2 = lead(
        "evt_cv2",
        json!({"email": "conv@x.io", "name": "Cora Vance-Li", "country": "DE"}),
    );
    let c = crm
        .upsert_contact(&l2, None, ContactWrite::Full)
        .await
        .expect("written");
    assert_eq!((c.id.as_str(), c.created), (contact.as_str(), false));
    let c = crm
        .upsert_contact(&l2, Some(&lead_ref.id), ContactWrite::Full)
        .await
        .expect("written");
    assert_eq!(c.id, contact);
    let task = crm.add_note(&c.id, &l2).await.expect("task");
    let record = h.record("Contact", &contact).await;
    assert_eq!(record["LastName"], "Vance-Li");
    assert_eq!(record["MailingCountry"], "DE");
    assert_eq!(
        crm.find_note(&contact, &eid("evt_cv2"))
            .await
            .expect("read"),
        Some(task)
    );
    assert!(
        crm.find_note(&contact, &eid("evt_cv1"))
            .await
            .expect("read")
            .is_some(),
        "the Lead's Task moved with it"
    );
    assert_eq!(h.query("SELECT Id FROM Contact").await.len(), 1);
    assert_eq!(h.query("SELECT Id FROM Lead").await.len(), 1, "no new Lead");
}

#[tokio::test]
async fn a_task_is_found_by_its_exact_tag() {
    let h = Harness::start().await;
    let crm = h.crm();
    let l10 = person("evt_10", "tag@x.io", "Tia Go");
    let c = crm
        .upsert_contact(&l10, None, ContactWrite::Full)
        .await
        .expect("written");
    let t10 = crm.add_note(&c.id, &l10).await.expect("task");
    assert_eq!(
        crm.find_note(&c.id, &eid("evt_1")).await.expect("read"),
        None,
        "evt_1 is not evt_10"
    );
    let l1 = person("evt_1", "tag@x.io", "Tia Go");
    let t1 = crm.add_note(&c.id, &l1).await.expect("task");
    assert_eq!(
        crm.find_note(&c.id, &eid("evt_1")).await.expect("read"),
        Some(t1)
    );
    assert_eq!(
        crm.find_note(&c.id, &eid("evt_10")).await.expect("read"),
        Some(t10)
    );
}

#[tokio::test]
async fn tasks_of_a_batch_go_in_one_call_and_a_lead_connection_refuses_deals() {
    let h = Harness::start().await;
    let crm = h.crm();
    let leads: Vec<QueuedLead> = (0..5)
        .map(|i| {
            person(
                &format!("evt_n{i}"),
                &format!("n{i}@x.io"),
                &format!("Nia Number{i}"),
            )
        })
        .collect();
    let contacts = crm
        .upsert_contacts(&leads.iter().cloned().map(item).collect::<Vec<_>>())
        .await;
    let mut pairs: Vec<(String, QueuedLead)> = contacts
        .iter()
        .zip(&leads)
        .map(|(c, l)| (c.as_ref().expect("written").id.clone(), l.clone()))
        .collect();
    pairs.push(("not-an-id".into(), leads[0].clone()));
    let tasks = crm.add_notes(&pairs).await;
    assert_eq!(tasks.len(), 6);
    assert!(tasks[5].is_err(), "a bad id fails alone");
    assert_eq!(h.calls(CREATE_MANY).await, 1);
    for ((contact, l), t) in pairs.iter().zip(&tasks).take(5) {
        assert_eq!(
            crm.find_note(contact, &l.event.event_id)
                .await
                .expect("read")
                .as_ref(),
            Some(t.as_ref().expect("task"))
        );
    }
    let e = crm
        .create_deal(&pairs[0].0, &leads[0])
        .await
        .expect_err("a Lead has no Opportunity until it is converted");
    assert_eq!(
        (e.class, e.code.as_deref()),
        (ErrorClass::Permanent, Some("deals_need_contacts"))
    );
    assert_eq!(
        crm.find_deal(&pairs[0].0, &leads[0].event.event_id)
            .await
            .expect("read"),
        None
    );
    assert_eq!(crm.batch_limit(), 200);
}

#[tokio::test]
async fn phone_only_people_are_found_by_soql_and_created_with_placeholders() {
    let h = Harness::start().await;
    let crm = h.crm();
    let by_phone = lead("evt_p1", json!({"phone": "+14155552671"}));
    assert!(crm
        .find_contacts(&by_phone)
        .await
        .expect("searched")
        .is_empty());
    let c = crm
        .upsert_contact(&by_phone, None, ContactWrite::Full)
        .await
        .expect("written");
    assert!(c.created);
    let record = h.record("Lead", &c.id).await;
    assert_eq!(record["LastName"], "+14155552671");
    assert_eq!(record["Company"], "[not provided]");
    assert_eq!(record["Phone"], "+14155552671");
    let wa = lead(
        "evt_w1",
        json!({"wa_id": "919876543210", "name": "Wen Ade"}),
    );
    let w = crm
        .upsert_contact(&wa, None, ContactWrite::Full)
        .await
        .expect("written");
    assert_eq!(
        h.record("Lead", &w.id).await["MobilePhone"],
        "+919876543210"
    );
    let both = crm
        .find_contacts_batch(&[
            lead(
                "evt_p2",
                json!({"phone": "+1 (415) 555-2671", "email": "p2@x.io"}),
            ),
            lead("evt_w2", json!({"wa_id": "919876543210"})),
            lead("evt_none", json!({"phone": "+12025550123"})),
        ])
        .await;
    assert_eq!(both[0].as_ref().expect("ok"), &vec![(1, c.id.clone())]);
    assert_eq!(
        both[1].as_ref().expect("ok"),
        &vec![(0, w.id.clone()), (1, w.id.clone())]
    );
    assert!(both[2].as_ref().expect("ok").is_empty());
    assert_eq!(
        h.calls("GET /services/data/v60.0/query").await,
        2,
        "one query per batch"
    );
}

#[tokio::test]
async fn a_person_known_only_by_email_is_named_only_when_salesforce_needs_it() {
    let h = Harness::start().await;
    let crm = h.crm();
    let c = crm
        .upsert_contact(
            &lead("evt_m1", json!({"email": "mona.k@x.io"})),
            None,
            ContactWrite::Full,
        )
        .await
        .expect("written");
    assert!(c.created);
    let record = h.record("Lead", &c.id).await;
    assert_eq!(
        (record["LastName"].clone(), record["Company"].clone()),
        (json!("mona.k"), json!("[not provided]"))
    );
    assert_eq!(
        h.calls(UPSERT_ONE).await,
        2,
        "REQUIRED_FIELD_MISSING, then named"
    );
    crm.upsert_contact(
        &person("evt_m2", "mona.k@x.io", "Mona Kaur"),
        None,
        ContactWrite::Full,
    )
    .await
    .expect("named");
    crm.upsert_contact(
        &lead("evt_m3", json!({"email": "mona.k@x.io"})),
        None,
        ContactWrite::Full,
    )
    .await
    .expect("written");
    let record = h.record("Lead", &c.id).await;
    assert_eq!(
        (record["LastName"].clone(), record["Company"].clone()),
        (json!("Kaur"), json!("Acme"))
    );
}

#[tokio::test]
async fn a_remembered_record_is_updated_by_id_or_written_as_unknown_when_gone() {
    let h = Harness::start().await;
    let crm = h.crm();
    let phone_only = crm
        .upsert_contact(
            &lead("evt_k1", json!({"phone": "+14155550199"})),
            None,
            ContactWrite::Full,
        )
        .await
        .expect("written");
    let l = lead(
        "evt_k2",
        json!({"phone": "+14155550199", "email": "k@x.io", "name": "Kim Oh"}),
    );
    let c = crm
        .upsert_contact(&l, Some(&phone_only.id), ContactWrite::Full)
        .await
        .expect("written");
    assert_eq!((c.id.as_str(), c.created), (phone_only.id.as_str(), false));
    assert_eq!(h.record("Lead", &c.id).await["Email"], "k@x.io");
    assert_eq!(h.calls(UPDATE_MANY).await, 1);
    let before = h.admin(Method::GET, "stats", None).await["total"].clone();
    let same = crm
        .upsert_contact(&l, Some(&c.id), ContactWrite::IdentityOnly)
        .await
        .expect("known");
    assert_eq!(same.id, c.id);
    assert_eq!(
        h.admin(Method::GET, "stats", None).await["total"],
        before,
        "no call"
    );
    let gone = crm
        .upsert_contact(
            &person("evt_k3", "gone@x.io", "Gus Lo"),
            Some("00Q5g000009zzzzAAA"),
            ContactWrite::Full,
        )
        .await
        .expect("written");
    assert!(gone.created);
    assert_ne!(gone.id, "00Q5g000009zzzzAAA");
}

#[tokio::test]
async fn duplicate_rules_refuse_unless_allowed_and_row_locks_are_transient() {
    let h = Harness::start().await;
    h.api(
        Method::POST,
        "/sobjects/Contact",
        Some(json!({"LastName": "Dup", "Email": "dup@x.io"})),
    )
    .await;
    h.admin(
        Method::POST,
        "duplicate_rules",
        Some(json!({"sobject": "Lead", "action": "alert"})),
    )
    .await;
    let crm = h.crm();
    let e = crm
        .upsert_contact(
            &person("evt_d1", "dup@x.io", "Dee Up"),
            None,
            ContactWrite::Full,
        )
        .await
        .expect_err("duplicate");
    assert_eq!(
        (e.class, e.category.as_deref()),
        (ErrorClass::Permanent, Some("DUPLICATES_DETECTED"))
    );
    let allowing = h.crm_with(
        h.secret(),
        SalesforceConfig {
            allow_duplicates: true,
            ..SalesforceConfig::default()
        },
    );
    allowing
        .upsert_contact(
            &person("evt_d2", "dup@x.io", "Dee Up"),
            None,
            ContactWrite::Full,
        )
        .await
        .expect("saved with allowSave");
    h.admin(Method::POST, "lock_rows", Some(json!({"count": 1})))
        .await;
    let answers = crm
        .upsert_contacts(&[
            item(person("evt_l1", "l1@x.io", "Al One")),
            item(person("evt_l2", "l2@x.io", "Al Two")),
        ])
        .await;
    let e = answers[0].as_ref().expect_err("locked");
    assert_eq!(
        (e.class, e.category.as_deref()),
        (ErrorClass::Transient, Some("UNABLE_TO_LOCK_ROW"))
    );
    assert!(answers[1].is_ok());
    h.admin(
        Method::POST,
        "faults",
        Some(json!({"kind": "error", "status": 409, "count": 1, "route": UPSERT_ONE})),
    )
    .await;
    let e = crm
        .upsert_contact(
            &person("evt_l3", "l3@x.io", "Al Three"),
            None,
            ContactWrite::Full,
        )
        .await
        .expect_err("locked");
    assert_eq!(e.class, ErrorClass::Transient, "{e:?}");
    h.admin(
        Method::POST,
        "faults",
        Some(json!({"kind": "error", "status": 503, "count": 1, "route": UPSERT_MANY})),
    )
    .await;
    let answers = crm
        .upsert_contacts(&[
            item(person("evt_5a", "a5@x.io", "A B")),
            item(person("evt_5b", "b5@x.io", "C D")),
        ])
        .await;
    assert!(answers
        .iter()
        .all(|a| a.as_ref().is_err_and(|e| e.class == ErrorClass::Transient)));
}

#[tokio::test]
async fn a_removed_field_stops_the_write_as_schema_drift() {
    let h = Harness::start().await;
    h.admin(Method::DELETE, "fields/Lead/MobilePhone", None)
        .await;
    let crm = h.crm();
    let e = crm
        .upsert_contact(
            &lead(
                "evt_sd",
                json!({"wa_id": "919876543211", "name": "Dee Fox"}),
            ),
            None,
            ContactWrite::Full,
        )
        .await
        .expect_err("drift");
    assert_eq!(e.code.as_deref(), Some("schema_drift"));
    assert!(e.message.contains("\"MobilePhone\""), "{}", e.message);
    h.admin(
        Method::POST,
        "fields/Lead",
        Some(json!({"name": "Email", "idLookup": false})),
    )
    .await;
    let crm = h.crm();
    let e = crm
        .upsert_contact(
            &person("evt_sd2", "sd@x.io", "Sid Do"),
            None,
            ContactWrite::Full,
        )
        .await
        .expect_err("drift");
    assert!(e.message.contains("idLookup"), "{}", e.message);
    assert_eq!(
        h.calls(CREATE_MANY).await + h.calls(UPSERT_ONE).await,
        0,
        "nothing written"
    );
}

#[tokio::test]
async fn a_conversation_is_one_task_that_grows() {
    let h = Harness::start().await;
    let crm = h.crm();
    assert!(crm.keeps_conversations());
    let c = crm
        .upsert_contact(
            &person("evt_v", "v@x.io", "Vi Tran"),
            None,
            ContactWrite::Full,
        )
        .await
        .expect("written");
    let tag = lb_domain::conversation::tag("conv_1");
    let body = format!("<p>hello</p><p>{tag}</p>");
    let note = crm
        .add_note_body(&c.id, &body, chrono::Utc::now())
        .await
        .expect("task");
    crm.add_note(&c.id, &person("evt_v2", "v@x.io", "Vi Tran"))
        .await
        .expect("other task");
    assert_eq!(
        crm.conversation_notes(&c.id, &tag).await.expect("read"),
        vec![(note.clone(), body)]
    );
    let longer = format!("<p>hello</p><p>again</p><p>{tag}</p>");
    crm.update_note(&note, &longer).await.expect("updated");
    assert_eq!(
        crm.conversation_notes(&c.id, &tag).await.expect("read"),
        vec![(note, longer)]
    );
    assert_eq!(crm.note_max_chars(), 32_000);
}

fn jwt_secret(h: &Harness, private_key: &str) -> Value {
    json!({
        "client_id": h.sim.client_id,
        "username": h.sim.username,
        "private_key": private_key,
        "login_url": h.sim.login_url,
    })
}

#[tokio::test]
async fn a_jwt_bearer_grant_signs_its_assertion_with_a_pkcs1_or_pkcs8_key() {
    let h = Harness::start().await;
    for (n, key) in [TEST_KEY_PKCS1, TEST_KEY_PKCS8].into_iter().enumerate() {
        let crm = h.crm_with(jwt_secret(&h, pem_block(key)), SalesforceConfig::default());
        let l = person(&format!("evt_j{n}"), &format!("j{n}@x.io"), "Jo Wt");
        let c = crm
            .upsert_contact(&l, None, ContactWrite::Full)
            .await
            .expect("written");
        assert!(c.created);
        crm.add_note(&c.id, &l).await.expect("task");
        assert_eq!(h.record("Lead", &c.id).await["Email"], format!("j{n}@x.io"));
    }
    let o = h.admin(Method::GET, "oauth", None).await;
    assert_eq!(
        o["jwt_grants"].as_u64(),
        Some(2 + 2),
        "the two grants and the test's reads"
    );
    assert_eq!(o["refreshes"], 0);
}

#[tokio::test]
async fn a_jwt_bearer_grant_with_a_key_the_app_does_not_hold_is_revoked() {
    let h = Harness::start().await;
    let crm = h.crm_with(
        jwt_secret(&h, pem_block(OTHER_KEY)),
        SalesforceConfig::default(),
    );
    let e = crm
        .upsert_contact(
            &person("evt_jx", "jx@x.io", "Jo Wt"),
            None,
            ContactWrite::Full,
        )
        .await
        .expect_err("the signature does not verify");
    assert_eq!(e.class, ErrorClass::Permanent);
    assert_eq!(
        e.code.as_deref(),
        Some(lb_crm::salesforce::AUTH_REVOKED),
        "{e:?}"
    );
    assert_eq!(e.category.as_deref(), Some("invalid_grant"));
    assert_eq!(h.admin(Method::GET, "oauth", None).await["jwt_grants"], 0);
}

#[tokio::test]
async fn a_jwt_bearer_key_that_does_not_parse_is_permanent_and_never_quoted() {
    let h = Harness::start().await;
    let pkcs1 = pem_block(TEST_KEY_PKCS1);
    let body = |pem: &str| {
        pem.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>()
    };
    // A key cut short, a key without its PEM lines, a public key, not a key.
    let cut = &pkcs1[..pkcs1.len() / 2];
    let bare = body(pkcs1);
    let cases = [
        format!("{cut}\n-----END RSA PRIVATE KEY-----\n"),
        bare.clone(),
        TEST_CERT.to_owned(),
        "private-key-goes-here".to_owned(),
    ];
    for key in &cases {
        let crm = h.crm_with(jwt_secret(&h, key), SalesforceConfig::default());
        let e = crm
            .upsert_contact(
                &person("evt_jk", "jk@x.io", "Jo Wt"),
                None,
                ContactWrite::Full,
            )
            .await
            .expect_err("no usable key");
        assert_eq!(e.class, ErrorClass::Permanent, "{}", e.message);
        assert!(e.message.contains("private_key"), "{}", e.message);
        assert!(e.message.contains("BEGIN RSA PRIVATE KEY"), "{}", e.message);
        for line in key
            .lines()
            .filter(|l| l.len() > 8 && !l.starts_with("-----"))
        {
            assert!(
                !e.message.contains(line),
                "the message quotes the key: {}",
                e.message
            );
        }
        assert!(!e.message.contains(&bare[..40]), "{}", e.message);
    }
    assert_eq!(h.admin(Method::GET, "oauth", None).await["jwt_grants"], 0);
}

#[tokio::test]
async fn a_contact_connection_writes_contacts() {
    let h = Harness::start().await;
    let crm = h.crm_with(
        h.secret(),
        SalesforceConfig {
            object: "Contact".into(),
            ..SalesforceConfig::default()
        },
    );
    let l = person("evt_ct", "ct@x.io", "Cal Tan");
    let c = crm
        .upsert_contact(&l, None, ContactWrite::Full)
        .await
        .expect("written");
    assert!(c.id.starts_with("003"));
    let record = h.record("Contact", &c.id).await;
    assert_eq!(
        (record["LastName"].clone(), record["MailingCountry"].clone()),
        (json!("Tan"), json!("IN"))
    );
    assert_eq!(
        h.calls("PATCH /services/data/v60.0/sobjects/{sobject}/{field}/{value}")
            .await,
        1
    );
}

/// A connection's `fields`/`static`: mapped fields are written with the
/// adapter's own; one `describe` does not list stops the write as schema drift.
#[tokio::test]
async fn mapped_and_static_fields_are_written_and_a_missing_one_is_schema_drift() {
    let h = Harness::start().await;
    h.admin(
        Method::POST,
        "fields/Lead",
        Some(json!({"name": "Chat_Intent__c", "type": "string", "length": 255})),
    )
    .await;
    let mapping = |extra: &str| {
        lb_config::Config::parse(&format!(
            "version = 1\n[connections.s]\nkind = \"salesforce\"\nsecret = \"s\"\n\
             [connections.s.fields]\n\"intent.primary\" = \"Chat_Intent__c\"\n{extra}\
             [connections.s.static]\nLeadSource = \"Chatbot\"\n\
             [[routes]]\nbot_id = \"*\"\nconnections = [\"s\"]\n"
        ))
        .expect("config")
        .connection("s")
        .and_then(|c| c.mapping.clone())
    };
    let crm = h.crm_with(
        h.secret(),
        SalesforceConfig {
            mapping: mapping(""),
            ..SalesforceConfig::default()
        },
    );
    let c = crm
        .upsert_contact(
            &person("evt_map", "map@acme.in", "Ada Lovelace"),
            None,
            ContactWrite::Full,
        )
        .await
        .expect("written");
    let record = h.record("Lead", &c.id).await;
    assert_eq!(record["Chat_Intent__c"], "pricing", "{record}");
    assert_eq!(record["LeadSource"], "Chatbot", "{record}");
    assert_eq!(
        record["LastName"], "Lovelace",
        "the adapter's own fields stay"
    );

    assert_eq!(
        crm.schema_findings().await.expect("read"),
        Vec::<String>::new()
    );
    let drifted = h.crm_with(
        h.secret(),
        SalesforceConfig {
            mapping: mapping("\"context.utm_source\" = \"Utm_Source__c\"\n"),
            ..SalesforceConfig::default()
        },
    );
    // The hourly check finds it before a lead does.
    let found = drifted.schema_findings().await.expect("read");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("\"Utm_Source__c\": the field does not exist"),
        "{found:?}"
    );
    let e = drifted
        .upsert_contact(
            &person("evt_drift", "drift@acme.in", "Alan Turing"),
            None,
            ContactWrite::Full,
        )
        .await
        .expect_err("no such field");
    assert_eq!(e.code.as_deref(), Some("schema_drift"));
    assert!(e.message.contains("Utm_Source__c"), "{}", e.message);
}

const COMPOSITE: &str = "POST /services/data/v60.0/composite";
const DESCRIBE: &str = "GET /services/data/v60.0/sobjects/{sobject}/describe";

/// An event that asks for a deal (`crm_target` as the payload carries it).
fn deal_lead(
    event_id: &str,
    email: &str,
    stage: Option<&str>,
    pipeline: Option<&str>,
) -> QueuedLead {
    let mut target = json!({"object": "contact", "create_deal": true});
    if let Some(s) = stage {
        target["deal_stage"] = json!(s);
    }
    if let Some(p) = pipeline {
        target["deal_pipeline"] = json!(p);
    }
    let event: LeadEvent = serde_json::from_value(json!({
        "event_id": event_id,
        "event_type": "lead.created",
        "occurred_at": "2026-05-04T11:23:45Z",
        "bot_id": "bot_acme",
        "visitor": {"email": email, "name": "Dev Rao", "company": "Acme"},
        "transcript": {"summary": "Wants a quote"},
        "crm_target": target,
    }))
    .expect("event");
    QueuedLead::new(event, chrono::Utc::now()).expect("identity")
}

fn contact_crm(h: &Harness) -> SalesforceCrm {
    h.crm_with(
        h.secret(),
        SalesforceConfig {
            object: "Contact".into(),
            ..SalesforceConfig::default()
        },
    )
}

/// The org's Opportunities, as an admin would list them.
async fn opportunities(h: &Harness) -> Vec<Value> {
    h.query("SELECT Id, Name, StageName, CloseDate, LeadSource, Description FROM Opportunity")
        .await
}

#[tokio::test]
async fn a_deal_is_one_tagged_opportunity_with_a_primary_contact_role_and_a_retry_finds_it() {
    let h = Harness::start().await;
    let crm = contact_crm(&h);
    let l = deal_lead("evt_d10", "dev@acme.in", Some("Qualification"), None);
    crm.check_deal(&l).await.expect("a stage the org has");
    let c = crm
        .upsert_contact(&l, None, ContactWrite::Full)
        .await
        .expect("written");
    assert!(c.id.starts_with("003"), "{}", c.id);
    let deal = crm.create_deal(&c.id, &l).await.expect("deal");
    assert!(deal.starts_with("006"), "{deal}");
    assert_eq!(h.calls(COMPOSITE).await, 1, "one request for both records");

    let opps = opportunities(&h).await;
    assert_eq!(opps.len(), 1);
    let o = &opps[0];
    assert_eq!(o["Id"], deal.as_str());
    assert_eq!(o["Name"], "Acme (chatbot bot_acme)");
    assert_eq!(o["StageName"], "Qualification");
    assert_eq!(
        o["LeadSource"], "Chat",
        "the org's Lead Source picklist is open"
    );
    let close =
        chrono::NaiveDate::parse_from_str(o["CloseDate"].as_str().expect("date"), "%Y-%m-%d")
            .expect("a date");
    assert_eq!(
        close - chrono::Utc::now().date_naive(),
        chrono::Duration::days(30)
    );
    let description = o["Description"].as_str().expect("description");
    assert!(
        lb_domain::note::carries_tag(description, &eid("evt_d10")),
        "{description}"
    );
    let roles = h
        .query(&format!(
            "SELECT Id, ContactId, IsPrimary FROM OpportunityContactRole WHERE OpportunityId = '{deal}'"
        ))
        .await;
    assert_eq!(roles.len(), 1);
    assert_eq!(
        (roles[0]["ContactId"].clone(), roles[0]["IsPrimary"].clone()),
        (json!(c.id), json!(true))
    );

    // The retry looks first, and finds it by its exact tag.
    assert_eq!(
        crm.find_deal(&c.id, &eid("evt_d10")).await.expect("read"),
        Some(deal.clone())
    );
    assert_eq!(
        crm.find_deal(&c.id, &eid("evt_d1")).await.expect("read"),
        None,
        "evt_d1 is not evt_d10"
    );
    assert_eq!(
        opportunities(&h).await.len(),
        1,
        "nothing created by looking"
    );

    // Another event of the same person: its own Opportunity, at the default stage.
    let l2 = deal_lead("evt_d1", "dev@acme.in", None, None);
    crm.check_deal(&l2).await.expect("Prospecting");
    let deal2 = crm
        .create_deals(&[(c.id.clone(), l2)])
        .await
        .pop()
        .expect("one")
        .expect("deal");
    assert_ne!(deal2, deal);
    assert_eq!(
        crm.find_deal(&c.id, &eid("evt_d1")).await.expect("read"),
        Some(deal2.clone())
    );
    assert_eq!(
        h.record("Opportunity", &deal2).await["StageName"],
        "Prospecting"
    );
    assert_eq!(
        h.calls(DESCRIBE).await,
        2,
        "Contact and Opportunity, each read once"
    );
}

#[tokio::test]
async fn a_stage_the_org_does_not_have_is_refused_before_anything_is_written() {
    let h = Harness::start().await;
    let crm = contact_crm(&h);
    let e = crm
        .check_deal(&deal_lead("evt_bs", "bs@x.io", Some("Closed Maybe"), None))
        .await
        .expect_err("not a stage");
    assert_eq!(
        (e.class, e.code.as_deref()),
        (ErrorClass::Permanent, Some("bad_deal_stage"))
    );
    assert!(e.message.contains("\"Closed Maybe\""), "{}", e.message);
    assert!(
        e.message
            .contains("Prospecting, Qualification, Needs Analysis"),
        "{}",
        e.message
    );
    assert!(e.message.ends_with("nothing was written"), "{}", e.message);
    let e = crm
        .check_deal(&deal_lead(
            "evt_bp",
            "bs@x.io",
            Some("Prospecting"),
            Some("default"),
        ))
        .await
        .expect_err("no pipelines");
    assert_eq!(e.code.as_deref(), Some("bad_deal_stage"));
    assert!(
        e.message.contains("deal pipeline \"default\""),
        "{}",
        e.message
    );
    assert!(opportunities(&h).await.is_empty());
    assert!(h.query("SELECT Id FROM Contact").await.is_empty());
    assert_eq!(h.calls(DESCRIBE).await, 1, "the stages are read once");
}

#[tokio::test]
async fn a_lead_connection_refuses_deals_before_calling_salesforce() {
    let h = Harness::start().await;
    let crm = h.crm();
    let e = crm
        .check_deal(&deal_lead("evt_ld", "ld@x.io", None, None))
        .await
        .expect_err("Leads have no Opportunities");
    assert_eq!(
        (e.class, e.code.as_deref()),
        (ErrorClass::Permanent, Some("deals_need_contacts"))
    );
    assert!(
        e.message.contains("Opportunities link to Contacts"),
        "{}",
        e.message
    );
    assert!(e.message.contains("nothing was written"), "{}", e.message);
    let stats = h.admin(Method::GET, "stats", None).await;
    assert_eq!(stats["total"], 0, "{stats}");
}

/// The stage list with `inactive` switched off (as an admin would in Setup).
async fn deactivate_stage(h: &Harness, inactive: &str) {
    let stages = [
        "Prospecting",
        "Qualification",
        "Needs Analysis",
        "Value Proposition",
        "Id. Decision Makers",
        "Perception Analysis",
        "Proposal/Price Quote",
        "Negotiation/Review",
        "Closed Won",
        "Closed Lost",
    ];
    let values: Vec<Value> = stages
        .iter()
        .map(|v| json!({"value": v, "active": *v != inactive}))
        .collect();
    h.admin(
        Method::POST,
        "fields/Opportunity",
        Some(json!({"name": "StageName", "picklistValues": values})),
    )
    .await;
}

#[tokio::test]
async fn an_inactive_stage_is_refused_and_one_deactivated_after_the_check_writes_nothing() {
    let h = Harness::start().await;
    deactivate_stage(&h, "Prospecting").await;
    let crm = contact_crm(&h);
    let e = crm
        .check_deal(&deal_lead("evt_in", "in@x.io", None, None))
        .await
        .expect_err("inactive");
    assert_eq!(e.code.as_deref(), Some("bad_deal_stage"));
    assert!(
        e.message.contains("\"Prospecting\" is not an active")
            && e.message.contains("(active stages: Qualification, "),
        "{}",
        e.message
    );

    // Checked while active, deactivated before the write: Salesforce refuses,
    // nothing stays, and the next check reads the stages again.
    let l = deal_lead("evt_in2", "in@x.io", Some("Qualification"), None);
    crm.check_deal(&l).await.expect("active");
    let c = crm
        .upsert_contact(&l, None, ContactWrite::Full)
        .await
        .expect("written");
    deactivate_stage(&h, "Qualification").await;
    let e = crm.create_deal(&c.id, &l).await.expect_err("refused");
    assert_eq!(
        (e.class, e.code.as_deref(), e.category.as_deref()),
        (
            ErrorClass::Permanent,
            Some("bad_deal_stage"),
            Some("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")
        )
    );
    assert!(e.message.contains("StageName"), "{}", e.message);
    assert!(opportunities(&h).await.is_empty());
    assert!(h
        .query("SELECT Id FROM OpportunityContactRole")
        .await
        .is_empty());
    let e = crm.check_deal(&l).await.expect_err("read again");
    assert_eq!(e.code.as_deref(), Some("bad_deal_stage"));
}

#[tokio::test]
async fn a_refused_contact_role_rolls_the_opportunity_back_and_a_row_lock_is_transient() {
    let h = Harness::start().await;
    let crm = contact_crm(&h);
    let l = deal_lead("evt_rb", "rb@x.io", None, None);
    let e = crm
        .create_deal("0035g000009zzzz", &l)
        .await
        .expect_err("no such Contact");
    assert_eq!(
        (e.class, e.category.as_deref()),
        (ErrorClass::Permanent, Some("INVALID_CROSS_REFERENCE_KEY"))
    );
    assert!(e.message.contains("contact role"), "{}", e.message);
    assert!(e.message.contains("ContactId"), "{}", e.message);
    assert!(opportunities(&h).await.is_empty(), "rolled back");

    let c = crm
        .upsert_contact(&l, None, ContactWrite::Full)
        .await
        .expect("written");
    h.admin(Method::POST, "lock_rows", Some(json!({"count": 1})))
        .await;
    let e = crm.create_deal(&c.id, &l).await.expect_err("locked");
    assert_eq!(
        (e.class, e.category.as_deref()),
        (ErrorClass::Transient, Some("UNABLE_TO_LOCK_ROW"))
    );
    assert!(opportunities(&h).await.is_empty());
    assert_eq!(
        crm.find_deal(&c.id, &eid("evt_rb")).await.expect("read"),
        None
    );
    let deal = crm
        .create_deal(&c.id, &l)
        .await
        .expect("the retry writes it");
    assert_eq!(
        crm.find_deal(&c.id, &eid("evt_rb")).await.expect("read"),
        Some(deal)
    );
}
