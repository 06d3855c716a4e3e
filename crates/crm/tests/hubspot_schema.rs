//! The HubSpot adapter against the simulator over HTTP: mapping-driven
//! properties, schema-drift detection, and the behaviours around them.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crm_sim::{RunningSim, SimConfig};
use lb_crm::{default_mapping, render_schema_table, HubSpotConfig, HubSpotCrm, SchemaStatus};
use lb_domain::mapping::Mapping;
use lb_domain::QueuedLead;
use lb_pipeline::secrets::CachedSecret;
use lb_pipeline::{ContactUpsert, ContactWrite, Crm, CrmError, ErrorClass, PortError, SecretStore};
use reqwest::Method;
use serde_json::{json, Value};

/// Hands out the simulator's token; the first `bad` reads get a revoked one.
struct Tokens {
    good: String,
    bad: usize,
    reads: AtomicUsize,
}

#[async_trait]
impl SecretStore for Tokens {
    async fn get_secret(&self, _: &str) -> Result<String, PortError> {
        let n = self.reads.fetch_add(1, Ordering::SeqCst);
        Ok(if n < self.bad {
            "pat-revoked".into()
        } else {
            json!({"token": self.good}).to_string()
        })
    }
}

struct Harness {
    sim: RunningSim,
    http: reqwest::Client,
}

impl Harness {
    async fn start() -> Harness {
        let config = SimConfig {
            search_lag_ms: 0,
            ..SimConfig::default()
        };
        let sim = RunningSim::start("127.0.0.1:0".parse().expect("addr"), config)
            .await
            .expect("simulator starts");
        Harness {
            sim,
            http: reqwest::Client::new(),
        }
    }

    fn crm_with(&self, cfg: HubSpotConfig, bad_tokens: usize) -> HubSpotCrm {
        let store = Arc::new(Tokens {
            good: self.sim.token.clone(),
            bad: bad_tokens,
            reads: AtomicUsize::new(0),
        });
        let token = Arc::new(CachedSecret::new(
            store,
            "hubspot",
            Duration::from_secs(300),
        ));
        HubSpotCrm::new(
            HubSpotConfig {
                base_url: self.sim.base_url.clone(),
                timeout: Duration::from_secs(5),
                ..cfg
            },
            token,
        )
        .expect("client")
    }

    fn crm(&self, schema_ttl: Duration) -> HubSpotCrm {
        self.crm_with(
            HubSpotConfig {
                schema_ttl,
                ..HubSpotConfig::default()
            },
            0,
        )
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        auth: bool,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.sim.base_url));
        if auth {
            req = req.bearer_auth(&self.sim.token);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("answered");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self
            .send(method, &format!("/__admin/{path}"), body, false)
            .await;
        assert!(status < 300, "admin {path}: {status} {v}");
        v
    }

    /// How many calls each route took (`"GET /crm/v3/properties/contacts"` → n).
    async fn calls(&self, route: &str) -> u64 {
        let stats = self.admin(Method::GET, "stats", None).await;
        stats["by_route"][route].as_u64().unwrap_or(0)
    }

    async fn contact(&self, email: &str, props: &str) -> Option<Value> {
        let (status, v) = self
            .send(
                Method::GET,
                &format!("/crm/v3/objects/contacts/{email}?idProperty=email&properties={props}"),
                None,
                true,
            )
            .await;
        (status == 200).then(|| v["properties"].clone())
    }
}

const PROPERTIES: &str = "GET /crm/v3/properties/contacts";
const UPSERT: &str = "POST /crm/v3/objects/contacts/batch/upsert";

fn lead(event_id: &str, visitor: Value, answers: Value) -> QueuedLead {
    common::lead_with(
        event_id,
        visitor,
        json!({"answers": answers,
               "consent": {"given_at": "2026-05-04T11:20:00Z", "text_version": "v3"}}),
    )
}

fn email_lead(event_id: &str, email: &str, answers: Value) -> QueuedLead {
    lead(
        event_id,
        json!({"email": email, "name": "Priya Sharma", "company": "Acme", "state": "IN-MH"}),
        answers,
    )
}

fn assert_drift(e: &CrmError, needles: &[&str]) {
    assert_eq!(e.class, ErrorClass::Permanent, "{e:?}");
    assert_eq!(e.code.as_deref(), Some("schema_drift"), "{e:?}");
    assert_eq!(e.reason().code, "schema_drift");
    assert_eq!(e.http_status, None);
    assert_eq!(e.crm, "hubspot");
    for n in needles {
        assert!(e.message.contains(n), "{n:?} not in {:?}", e.message);
    }
}

#[tokio::test]
async fn the_default_mapping_writes_every_property_including_state() {
    let h = Harness::start().await;
    let crm = h.crm(Duration::from_secs(300));
    let l = email_lead(
        "evt_full",
        "priya@acme.in",
        json!({"Company Size": "51-200", "budget": "10k"}),
    );
    let c = crm
        .upsert_contact(&l, None, ContactWrite::Full)
        .await
        .expect("synced");
    assert!(c.created);
    let p = h
        .contact(
            "priya@acme.in",
            "firstname,lastname,company,state,leadbridge_source,leadbridge_entry_page,\
             leadbridge_utm_source,leadbridge_intent,leadbridge_qualification_score,\
             leadbridge_consent_given_at,leadbridge_consent_text_version,company_size,budget",
        )
        .await
        .expect("contact");
    assert_eq!(p["firstname"], "Priya");
    assert_eq!(p["lastname"], "Sharma");
    assert_eq!(p["company"], "Acme");
    assert_eq!(p["state"], "IN-MH");
    assert_eq!(p["leadbridge_source"], "chatbot:bot_acme");
    assert_eq!(p["leadbridge_entry_page"], "https://acme.in/pricing");
    assert_eq!(p["leadbridge_utm_source"], "google");
    assert_eq!(p["leadbridge_intent"], "pricing");
    assert_eq!(p["leadbridge_qualification_score"], "80");
    assert_eq!(p["leadbridge_consent_given_at"], "2026-05-04T11:20:00Z");
    assert_eq!(p["leadbridge_consent_text_version"], "v3");
    assert_eq!(p["company_size"], "51-200");
    assert_eq!(p["budget"], "10k");
}

#[tokio::test]
async fn a_deleted_property_stops_the_next_event_before_anything_is_written() {
    let h = Harness::start().await;
    let crm = h.crm(Duration::ZERO);
    let first = email_lead("evt_1", "jane@x.io", json!({"company_size": "1-10"}));
    crm.upsert_contact(&first, None, ContactWrite::Full)
        .await
        .expect("the property exists");

    h.admin(Method::DELETE, "properties/contacts/company_size", None)
        .await;
    let mut second = email_lead("evt_2", "jane@x.io", json!({"company_size": "51-200"}));
    second.event.visitor.company = Some("Changed Inc".into());
    let e = crm
        .upsert_contact(&second, None, ContactWrite::Full)
        .await
        .expect_err("schema drift");
    assert_drift(
        &e,
        &[
            "schema drift on HubSpot contact property \"company_size\": the property does not \
           exist (mapped from answers.company_size)",
        ],
    );
    assert!(
        !e.message.contains("51-200"),
        "no visitor values: {}",
        e.message
    );
    assert_eq!(h.calls(UPSERT).await, 1, "the second event wrote nothing");
    assert_eq!(
        h.calls(PROPERTIES).await,
        2,
        "ttl 0 reads the schema every time"
    );
    let p = h.contact("jane@x.io", "company").await.expect("contact");
    assert_eq!(p["company"], "Acme", "the contact is untouched");
    let third = email_lead("evt_3", "new@x.io", json!({"company_size": "1-10"}));
    assert!(crm
        .upsert_contact(&third, None, ContactWrite::Full)
        .await
        .is_err());
    assert!(
        h.contact("new@x.io", "email").await.is_none(),
        "no contact created"
    );

    // An identity-only write sends the identities only: it is not stopped.
    let c = crm
        .upsert_contact(&second, None, ContactWrite::IdentityOnly)
        .await
        .expect("identities exist");
    assert!(!c.created);
}

#[tokio::test]
async fn changed_options_and_a_read_only_property_are_reported_as_such() {
    let h = Harness::start().await;
    let crm = h.crm(Duration::ZERO);
    h.admin(
        Method::POST,
        "properties/contacts",
        Some(
            json!({"name": "tier", "type": "enumeration", "fieldType": "select",
                    "options": [{"value": "small"}, {"value": "large"}]}),
        ),
    )
    .await;
    h.admin(
        Method::POST,
        "properties/contacts",
        Some(json!({"name": "interests", "type": "enumeration", "fieldType": "checkbox",
                    "options": [{"value": "crm"}, {"value": "ads"}, {"value": "seo", "hidden": true}]})),
    )
    .await;
    let l = email_lead(
        "evt_opt_1",
        "o@x.io",
        json!({"tier": "small", "interests": "crm;seo"}),
    );
    crm.upsert_contact(&l, None, ContactWrite::Full)
        .await
        .expect("valid options (a hidden option still counts)");

    let changed = h
        .admin(
            Method::PATCH,
            "properties/contacts/tier",
            Some(json!({"options": [{"value": "S", "label": "Small"}, {"value": "L"}]})),
        )
        .await;
    assert_eq!(changed["options"][0]["value"], "S");
    assert_eq!(changed["type"], "enumeration");
    let e = crm
        .upsert_contact(
            &email_lead(
                "evt_opt_2",
                "o@x.io",
                json!({"tier": "small", "interests": "crm;tv"}),
            ),
            None,
            ContactWrite::Full,
        )
        .await
        .expect_err("bad options");
    assert_drift(
        &e,
        &[
            "schema drift on HubSpot contact property \"interests\": the value for \
             answers.interests is not a ;-separated list of the options: crm, ads, seo \
             (mapped from answers.interests); schema drift on HubSpot contact property \"tier\": \
             the value for answers.tier is not one of the options: S, L (mapped from answers.tier)",
        ],
    );
    assert!(!e.message.contains("small") && !e.message.contains("tv"));

    h.admin(
        Method::POST,
        "properties/contacts",
        Some(json!({"name": "budget", "type": "string", "readOnly": true})),
    )
    .await;
    let e = crm
        .upsert_contact(
            &email_lead("evt_ro", "o@x.io", json!({"budget": "10k"})),
            None,
            ContactWrite::Full,
        )
        .await
        .expect_err("read-only");
    assert_drift(
        &e,
        &["\"budget\": the property is read-only (mapped from answers.budget)"],
    );
    assert_eq!(h.calls(UPSERT).await, 1);
}

#[tokio::test]
async fn a_type_change_is_wrong_type() {
    let h = Harness::start().await;
    let crm = h.crm(Duration::ZERO);
    h.admin(
        Method::PATCH,
        "properties/contacts/leadbridge_consent_given_at",
        Some(json!({"type": "date"})),
    )
    .await;
    h.admin(
        Method::PATCH,
        "properties/contacts/budget",
        Some(json!({"type": "number"})),
    )
    .await;
    let e = crm
        .upsert_contact(
            &email_lead("evt_type", "t@x.io", json!({"budget": "about 10k"})),
            None,
            ContactWrite::Full,
        )
        .await
        .expect_err("wrong type");
    assert_drift(
        &e,
        &[
            "\"budget\": the value for answers.budget is not a number",
            "\"leadbridge_consent_given_at\": consent.given_at holds date-time values, which a \
             date property cannot hold",
        ],
    );
    let ok = email_lead("evt_type_ok", "t2@x.io", json!({"budget": "10000"}));
    let mut ok = ok;
    ok.event.consent = None;
    crm.upsert_contact(&ok, None, ContactWrite::Full)
        .await
        .expect("a number fits");
}

#[tokio::test]
async fn a_long_ttl_rereads_the_schema_after_hubspot_says_a_property_is_gone() {
    let h = Harness::start().await;
    let crm = h.crm(Duration::from_secs(3600));
    crm.upsert_contact(
        &email_lead("evt_l1", "l@x.io", json!({"timeline": "Q3"})),
        None,
        ContactWrite::Full,
    )
    .await
    .expect("synced");
    assert_eq!(h.calls(PROPERTIES).await, 1);
    h.admin(Method::DELETE, "properties/contacts/timeline", None)
        .await;

    // The cached schema still has it: HubSpot refuses the write, the schema is read again.
    let e = crm
        .upsert_contact(
            &email_lead("evt_l2", "l@x.io", json!({"timeline": "Q4"})),
            None,
            ContactWrite::Full,
        )
        .await
        .expect_err("refused");
    assert_drift(&e, &["\"timeline\": the property does not exist"]);
    assert_eq!(h.calls(UPSERT).await, 2);
    assert_eq!(h.calls(PROPERTIES).await, 2, "read again once");

    // The next event is stopped up front, from the refreshed cache.
    let e = crm
        .upsert_contact(
            &email_lead("evt_l3", "l3@x.io", json!({"timeline": "Q1"})),
            None,
            ContactWrite::Full,
        )
        .await
        .expect_err("stopped");
    assert_drift(&e, &["\"timeline\""]);
    assert_eq!(h.calls(UPSERT).await, 2, "nothing sent");
    assert_eq!(
        h.calls(PROPERTIES).await,
        2,
        "the refreshed schema is cached"
    );

    // Other events are unaffected.
    crm.upsert_contact(
        &email_lead("evt_l4", "l4@x.io", json!({})),
        None,
        ContactWrite::Full,
    )
    .await
    .expect("synced");
    assert_eq!(h.calls(PROPERTIES).await, 2);
}

#[tokio::test]
async fn a_schema_read_failure_is_classified_like_any_call() {
    let h = Harness::start().await;
    let crm = h.crm(Duration::from_secs(300));
    h.admin(
        Method::POST,
        "faults",
        Some(
            json!({"kind": "error", "status": 503, "probability": 1.0, "count": 1,
                    "route": "GET /crm/v3/properties/contacts"}),
        ),
    )
    .await;
    let l = email_lead("evt_503", "f@x.io", json!({}));
    let e = crm
        .upsert_contact(&l, None, ContactWrite::Full)
        .await
        .expect_err("transient");
    assert_eq!(e.class, ErrorClass::Transient);
    assert_eq!(e.http_status, Some(503));
    assert_eq!(e.code, None);
    assert_eq!(h.calls(UPSERT).await, 0, "no unchecked write");
    crm.upsert_contact(&l, None, ContactWrite::Full)
        .await
        .expect("the retry syncs");
}

#[tokio::test]
async fn a_rotated_token_is_reread_on_401_and_the_name_is_the_connections() {
    let h = Harness::start().await;
    let crm = h.crm_with(
        HubSpotConfig {
            name: "hubspot_eu".into(),
            ..HubSpotConfig::default()
        },
        1,
    );
    assert_eq!(crm.name(), "hubspot_eu");
    let c = crm
        .upsert_contact(
            &email_lead("evt_401", "r@x.io", json!({})),
            None,
            ContactWrite::Full,
        )
        .await
        .expect("the second token works");
    assert!(c.created);
}

#[tokio::test]
async fn phone_only_leads_are_checked_and_notes_and_deals_still_find_their_tags() {
    let h = Harness::start().await;
    let crm = h.crm(Duration::from_secs(300));
    let l = lead(
        "evt_phone",
        json!({"phone": "+14155552671", "name": "Ravi Kumar", "company": "Kumar & Co"}),
        json!({"budget": "5k"}),
    );
    let c = crm
        .upsert_contact(&l, None, ContactWrite::Full)
        .await
        .expect("created");
    assert!(c.created);
    let total = h.admin(Method::GET, "stats", None).await["total"].clone();
    let again = crm
        .upsert_contact(&l, Some(&c.id), ContactWrite::IdentityOnly)
        .await
        .expect("known");
    assert_eq!(again.id, c.id);
    assert_eq!(
        h.admin(Method::GET, "stats", None).await["total"],
        total,
        "a known record and nothing to write: no call"
    );
    let patched = crm
        .upsert_contact(&l, Some(&c.id), ContactWrite::Full)
        .await
        .expect("patched");
    assert_eq!(patched.id, c.id);

    assert_eq!(crm.find_note(&c.id, &l.event.event_id).await.unwrap(), None);
    let note = crm.add_note(&c.id, &l).await.expect("note");
    assert_eq!(
        crm.find_note(&c.id, &l.event.event_id).await.unwrap(),
        Some(note)
    );
    let deal = crm.create_deal(&c.id, &l).await.expect("deal");
    assert_eq!(
        crm.find_deal(&c.id, &l.event.event_id).await.unwrap(),
        Some(deal)
    );

    h.admin(Method::DELETE, "properties/contacts/budget", None)
        .await;
    let crm = h.crm(Duration::ZERO);
    let e = crm
        .upsert_contact(&l, Some(&c.id), ContactWrite::Full)
        .await
        .expect_err("drift on the phone path too");
    assert_drift(&e, &["\"budget\""]);
}

#[tokio::test]
async fn the_schema_report_lists_every_mapped_property() {
    let h = Harness::start().await;
    let mut mapping: Mapping = default_mapping(Some("leadbridge_source"), true, true);
    mapping.statics = BTreeMap::from([
        ("hs_lead_status".to_string(), "NEW".to_string()),
        ("lifecyclestage".to_string(), "hot".to_string()),
        ("hs_analytics_source".to_string(), "OFFLINE".to_string()),
    ]);
    let crm = h.crm_with(
        HubSpotConfig {
            mapping,
            schema_ttl: Duration::from_secs(3600),
            ..HubSpotConfig::default()
        },
        0,
    );
    let rows = crm.schema_report().await.expect("report");
    let status = |p: &str| {
        rows.iter()
            .find(|r| r.property == p)
            .unwrap_or_else(|| panic!("row {p}"))
            .status
    };
    assert!(
        rows.iter()
            .filter(|r| r.property != "lifecyclestage" && r.property != "hs_analytics_source")
            .all(|r| r.status == SchemaStatus::Ok),
        "{rows:#?}"
    );
    assert_eq!(status("lifecyclestage"), SchemaStatus::BadOption);
    assert_eq!(status("hs_analytics_source"), SchemaStatus::ReadOnly);
    assert_eq!(&rows[0].property, "email");
    assert_eq!(&rows[0].source, "visitor.email");
    let answers = rows.last().expect("rows");
    assert_eq!(
        (answers.property.as_str(), answers.source.as_str()),
        ("{key}", "answers.*")
    );

    h.admin(Method::DELETE, "properties/contacts/state", None)
        .await;
    let rows = crm.schema_report().await.expect("report reads afresh");
    let state = rows.iter().find(|r| r.property == "state").expect("state");
    assert_eq!(state.status, SchemaStatus::Missing);
    assert_eq!(state.crm_type, None);
    let table = render_schema_table(&rows);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("PROPERTY"), "{table}");
    assert!(
        lines.iter().any(|l| l.starts_with("state ")
            && l.contains("visitor.state")
            && l.contains("missing")
            && l.contains("the property does not exist")),
        "{table}"
    );
    assert!(
        lines.iter().any(|l| l.contains("static \"hot\"")
            && l.contains("bad_option")
            && l.contains("the value \"hot\" is not one of the options: subscriber, lead")),
        "{table}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("leadbridge_qualification_score")
                && l.contains("intent.qualification_score")
                && l.contains("number")),
        "{table}"
    );
    assert_eq!(lines.len(), rows.len() + 1);
}

/// HubSpot's search allows 5 requests a second per token: a search refused for
/// that is waited out inside the call (the limit frees within a second) rather
/// than failing the lead back to the queue.
#[tokio::test]
async fn a_search_over_its_per_second_limit_waits_in_the_call_instead_of_failing() {
    let h = Harness::start().await;
    let (status, _) = h
        .send(
            Method::POST,
            "/__admin/config",
            Some(json!({"search_rate_per_s": 1})),
            false,
        )
        .await;
    assert_eq!(status, 200);
    let crm = h.crm(Duration::from_secs(300));
    let a = lead("evt_s1", json!({"phone": "+14155552671"}), json!({}));
    let b = lead("evt_s2", json!({"phone": "+14155552672"}), json!({}));
    crm.find_contacts(&a).await.expect("the first search");
    crm.find_contacts(&b)
        .await
        .expect("the second search waits out the limit");
    let (_, stats) = h.send(Method::GET, "/__admin/stats", None, false).await;
    assert!(
        stats["rate_limited"].as_u64() >= Some(1),
        "the limit did refuse a search: {stats}"
    );
}

#[tokio::test]
async fn a_batch_hubspot_refuses_as_a_whole_is_sent_again_one_input_at_a_time() {
    let h = Harness::start().await;
    let crm = h.crm(Duration::from_secs(300));
    crm.warm_up().await;
    // One whole-batch 400 (as HubSpot answers a batch it refuses outright).
    h.admin(
        Method::POST,
        "faults",
        Some(
            json!({"kind": "error", "status": 400, "probability": 1.0, "count": 1,
                    "route": UPSERT}),
        ),
    )
    .await;
    let items: Vec<ContactUpsert> = (0..3)
        .map(|i| ContactUpsert {
            lead: email_lead(
                &format!("evt_whole{i}"),
                &format!("w{i}@acme.in"),
                json!({}),
            ),
            known_id: None,
            write: ContactWrite::Full,
        })
        .collect();
    let answers = crm.upsert_contacts(&items).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    assert_eq!(
        h.calls(UPSERT).await,
        4,
        "the batch, then one call per input"
    );
    for i in 0..3 {
        assert!(h.contact(&format!("w{i}@acme.in"), "email").await.is_some());
    }
}

/// Remembered records go in one `batch/update` by id; an input it does not
/// write (an id HubSpot no longer has) is written on its own, where its 404
/// sends it back to the upsert by email, and each item keeps its own answer.
#[tokio::test]
async fn remembered_records_are_updated_in_one_batch_and_a_vanished_one_alone() {
    let h = Harness::start().await;
    let crm = h.crm(Duration::from_secs(300));
    let first: Vec<ContactUpsert> = (0..4)
        .map(|i| ContactUpsert {
            lead: email_lead(&format!("evt_b{i}"), &format!("b{i}@acme.in"), json!({})),
            known_id: None,
            write: ContactWrite::Full,
        })
        .collect();
    let ids: Vec<String> = crm
        .upsert_contacts(&first)
        .await
        .into_iter()
        .map(|c| c.expect("written").id)
        .collect();
    let mut again: Vec<ContactUpsert> = (0..4)
        .map(|i| {
            let mut lead = email_lead(&format!("evt_c{i}"), &format!("b{i}@acme.in"), json!({}));
            lead.event.visitor.company = Some(format!("Acme {i}"));
            ContactUpsert {
                lead,
                // The fourth is remembered under an id HubSpot does not have.
                known_id: Some(if i < 3 {
                    ids[i].clone()
                } else {
                    "990099".into()
                }),
                write: ContactWrite::Full,
            }
        })
        .collect();
    // The fifth gives b3's record the email b0's record holds: HubSpot refuses
    // that input, and on its own its 409 names the email's record.
    again.push(ContactUpsert {
        lead: email_lead("evt_c4", "b0@acme.in", json!({})),
        known_id: Some(ids[3].clone()),
        write: ContactWrite::Full,
    });
    let mut answers = crm.upsert_contacts(&again).await;
    assert_eq!(
        h.calls("POST /crm/v3/objects/contacts/batch/update").await,
        1
    );
    assert_eq!(
        h.calls("PATCH /crm/v3/objects/contacts/{id}").await,
        2,
        "only the vanished one and the refused one on their own"
    );
    let taken = answers
        .pop()
        .expect("five answers")
        .expect_err("email taken");
    assert_eq!(
        taken.taken_by.as_deref(),
        Some(ids[0].as_str()),
        "{taken:?}"
    );
    for (i, a) in answers.iter().enumerate() {
        let c = a.as_ref().expect("written");
        if i < 3 {
            assert_eq!((c.id.as_str(), c.created), (ids[i].as_str(), false));
        } else {
            // Its 404 sent it to the upsert by email, which found b3's record.
            assert_eq!(c.id, ids[3], "{c:?}");
        }
        let props = h
            .contact(&format!("b{i}@acme.in"), "company")
            .await
            .expect("contact");
        assert_eq!(props["company"], format!("Acme {i}"));
    }
}
