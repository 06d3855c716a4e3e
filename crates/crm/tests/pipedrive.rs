//! The Pipedrive adapter against the Pipedrive simulator over HTTP.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crm_sim::pipedrive::{PipedriveSimConfig, RunningPipedriveSim};
use lb_crm::{PipedriveConfig, PipedriveCrm};
use lb_domain::QueuedLead;
use lb_pipeline::secrets::CachedSecret;
use lb_pipeline::{ContactWrite, Crm, ErrorClass, PortError, SecretStore};
use reqwest::Method;
use serde_json::{json, Value};

use common::eid;

/// Hands out the simulator's token (as `{"api_token": …}`, or plain); the
/// first `bad` reads get a revoked one.
struct Tokens {
    good: String,
    bad: usize,
    plain: bool,
    reads: AtomicUsize,
}

#[async_trait]
impl SecretStore for Tokens {
    async fn get_secret(&self, _: &str) -> Result<String, PortError> {
        let n = self.reads.fetch_add(1, Ordering::SeqCst);
        Ok(if n < self.bad {
            "revoked-token".into()
        } else if self.plain {
            self.good.clone()
        } else {
            json!({"api_token": self.good}).to_string()
        })
    }
}

struct Harness {
    sim: RunningPipedriveSim,
    http: reqwest::Client,
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

    fn crm_with(&self, store: Arc<Tokens>) -> PipedriveCrm {
        self.crm_mapped(store, None)
    }

    fn crm_mapped(
        &self,
        store: Arc<Tokens>,
        mapping: Option<lb_domain::mapping::Mapping>,
    ) -> PipedriveCrm {
        let token = Arc::new(CachedSecret::new(
            store,
            "pipedrive",
            Duration::from_secs(300),
        ));
        PipedriveCrm::new(
            PipedriveConfig {
                base_url: self.sim.base_url.clone(),
                timeout: Duration::from_secs(5),
                allow_internal: true,
                mapping,
                ..PipedriveConfig::default()
            },
            token,
        )
        .expect("client")
    }

    fn tokens(&self, bad: usize) -> Arc<Tokens> {
        Arc::new(Tokens {
            good: self.sim.token.clone(),
            bad,
            plain: false,
            reads: AtomicUsize::new(0),
        })
    }

    fn crm(&self) -> PipedriveCrm {
        self.crm_with(self.tokens(0))
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.sim.base_url))
            .header("x-api-token", &self.sim.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("answered");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        common::admin(&self.http, &self.sim.base_url, method, path, body).await
    }

    async fn calls(&self, route: &str) -> u64 {
        common::calls(&self.http, &self.sim.base_url, route).await
    }

    async fn persons(&self) -> Vec<Value> {
        let (status, v) = self
            .send(Method::GET, "/api/v2/persons?limit=500", None)
            .await;
        assert_eq!(status, 200, "{v}");
        v["data"].as_array().cloned().unwrap_or_default()
    }

    async fn person(&self, id: &str) -> Value {
        let (status, v) = self
            .send(Method::GET, &format!("/api/v2/persons/{id}"), None)
            .await;
        assert_eq!(status, 200, "{v}");
        v["data"].clone()
    }

    async fn notes_of(&self, person: &str) -> Vec<Value> {
        let (status, v) = self
            .send(
                Method::GET,
                &format!("/v1/notes?person_id={person}&limit=500"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{v}");
        v["data"].as_array().cloned().unwrap_or_default()
    }
}

fn lead(event_id: &str, visitor: Value) -> QueuedLead {
    common::lead(event_id, visitor)
}

fn lead_with(event_id: &str, visitor: Value, crm_target: Value) -> QueuedLead {
    common::lead_with(event_id, visitor, json!({"crm_target": crm_target}))
}

#[tokio::test]
async fn a_new_person_becomes_one_person_with_one_note() {
    let h = Harness::with_defaults().await;
    let crm = h.crm();
    crm.warm_up().await;
    assert_eq!(h.calls("GET /v1/personFields").await, 1);
    let l = lead(
        "evt_new",
        json!({"email": "priya@acme.in", "name": "Priya Sharma", "phone": "+14155552671"}),
    );
    let c = crm
        .upsert_contact(&l, None, ContactWrite::Full)
        .await
        .expect("written");
    assert!(c.created);
    assert_eq!(
        crm.find_note(&c.id, &l.event.event_id).await.expect("read"),
        None
    );
    let note = crm.add_note(&c.id, &l).await.expect("note");
    assert_eq!(
        crm.find_note(&c.id, &l.event.event_id).await.expect("read"),
        Some(note.clone())
    );

    assert_eq!(h.persons().await.len(), 1);
    let p = h.person(&c.id).await;
    assert_eq!(p["name"], "Priya Sharma");
    assert_eq!(
        p["emails"],
        json!([{"value": "priya@acme.in", "primary": true, "label": "work"}])
    );
    assert_eq!(p["phones"][0]["value"], "+14155552671");
    let notes = h.notes_of(&c.id).await;
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["id"].to_string(), note);
    assert!(notes[0]["content"].as_str().is_some_and(
        |n| n.contains("leadbridge-event:evt_new") && n.contains("Asked about pricing")
    ));
    assert_eq!(notes[0]["add_time"], "2026-05-04 11:23:45");
    assert!(crm.keeps_conversations());
    assert_eq!(crm.batch_limit(), 1);
}

#[tokio::test]
async fn the_same_email_in_another_case_updates_the_same_person_and_keeps_its_entries() {
    let h = Harness::with_defaults().await;
    // Someone typed the person in by hand: upper-case address, a home label, another number.
    let (status, v) = h
        .send(
            Method::POST,
            "/api/v2/persons",
            Some(json!({"name": "Priya S.",
                "emails": [{"value": "PRIYA@ACME.IN", "primary": true, "label": "home"}],
                "phones": [{"value": "+91 98765 43210", "primary": true, "label": "work"}]})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let existing = v["data"]["id"].to_string();
    let crm = h.crm();
    let first = lead(
        "evt_a",
        json!({"email": "Priya@Acme.in", "name": "Priya Sharma"}),
    );
    let c = crm
        .upsert_contact(&first, None, ContactWrite::Full)
        .await
        .expect("written");
    assert_eq!((c.id.as_str(), c.created), (existing.as_str(), false));
    let again = lead(
        "evt_b",
        json!({"email": "PRIYA@acme.IN", "phone": "+14155552671"}),
    );
    let c2 = crm
        .upsert_contact(&again, None, ContactWrite::Full)
        .await
        .expect("written");
    assert_eq!((c2.id.as_str(), c2.created), (existing.as_str(), false));
    assert_eq!(h.persons().await.len(), 1, "one person");
    let p = h.person(&existing).await;
    assert_eq!(
        p["name"], "Priya Sharma",
        "the name of the first event; the second had none"
    );
    assert_eq!(
        p["emails"],
        json!([{"value": "PRIYA@ACME.IN", "primary": true, "label": "home"}]),
        "the address is held already: not added twice, label kept"
    );
    assert_eq!(
        p["phones"],
        json!([{"value": "+91 98765 43210", "primary": true, "label": "work"},
               {"value": "+14155552671", "primary": false, "label": "mobile"}])
    );
    // Nothing new: no PATCH at all.
    let patches = h.calls("PATCH /api/v2/persons/{id}").await;
    crm.upsert_contact(&again, Some(&existing), ContactWrite::Full)
        .await
        .expect("written");
    assert_eq!(h.calls("PATCH /api/v2/persons/{id}").await, patches);
    // An older event for a known person writes nothing, not even a read.
    let total = h.admin(Method::GET, "stats", None).await["total"].clone();
    let c3 = crm
        .upsert_contact(&again, Some(&existing), ContactWrite::IdentityOnly)
        .await
        .expect("nothing to write");
    assert_eq!(c3.id, existing);
    assert_eq!(h.admin(Method::GET, "stats", None).await["total"], total);
}

#[tokio::test]
async fn a_phone_only_person_is_found_by_its_number() {
    let h = Harness::with_defaults().await;
    let crm = h.crm();
    let first = lead(
        "evt_p1",
        json!({"phone": "+14155552671", "wa_id": "14155552671"}),
    );
    let c = crm
        .upsert_contact(&first, None, ContactWrite::Full)
        .await
        .expect("written");
    assert!(c.created);
    let p = h.person(&c.id).await;
    assert_eq!(p["name"], "+14155552671", "named after the number");
    assert_eq!(p["phones"].as_array().map(Vec::len), Some(1));

    let next = lead(
        "evt_p2",
        json!({"phone": "+1 415 555 2671", "wa_id": "14155552671"}),
    );
    let found = crm.find_contacts(&next).await.expect("searched");
    assert_eq!(found, vec![(0, c.id.clone()), (1, c.id.clone())]);
    assert_eq!(
        h.calls("GET /api/v2/persons/search").await,
        1,
        "one search for the one number"
    );
    let stranger = lead("evt_p3", json!({"phone": "+14155550000"}));
    assert!(crm
        .find_contacts(&stranger)
        .await
        .expect("searched")
        .is_empty());
    let email_only = lead("evt_p4", json!({"email": "x@acme.in"}));
    assert!(crm
        .find_contacts(&email_only)
        .await
        .expect("no search")
        .is_empty());
}

#[tokio::test]
async fn an_events_note_and_deal_are_found_by_their_exact_tag_on_every_page() {
    let h = Harness::start(PipedriveSimConfig {
        rate_limit_max: 100_000,
        daily_budget: 100_000_000,
        ..PipedriveSimConfig::default()
    })
    .await;
    let crm = h.crm();
    let ten = lead("evt_10", json!({"email": "tag@acme.in", "name": "Tag"}));
    let c = crm
        .upsert_contact(&ten, None, ContactWrite::Full)
        .await
        .expect("written");
    let ten_note = crm.add_note(&c.id, &ten).await.expect("note");
    let person: u64 = c.id.parse().expect("numeric id");
    // More than one page of other notes, so the event's own note is on the second page.
    for n in 0..500 {
        let (status, v) = h
            .send(
                Method::POST,
                "/v1/notes",
                Some(json!({"content": format!("<p>call {n}</p>"), "person_id": person})),
            )
            .await;
        assert_eq!(status, 201, "{v}");
    }
    let one = lead("evt_1", json!({"email": "tag@acme.in"}));
    assert_eq!(
        crm.find_note(&c.id, &one.event.event_id)
            .await
            .expect("read"),
        None,
        "evt_1 never matches evt_10"
    );
    let one_note = crm.add_note(&c.id, &one).await.expect("note");
    assert_ne!(one_note, ten_note);
    assert_eq!(
        crm.find_note(&c.id, &eid("evt_1")).await.expect("read"),
        Some(one_note)
    );
    assert_eq!(
        crm.find_note(&c.id, &eid("evt_10")).await.expect("read"),
        Some(ten_note)
    );

    assert_eq!(
        crm.find_deal(&c.id, &eid("evt_10")).await.expect("read"),
        None
    );
    let deal = crm.create_deal(&c.id, &ten).await.expect("deal");
    assert_eq!(
        crm.find_deal(&c.id, &eid("evt_1")).await.expect("read"),
        None
    );
    assert_eq!(
        crm.find_deal(&c.id, &eid("evt_10")).await.expect("read"),
        Some(deal.clone())
    );
    let (_, d) = h
        .send(Method::GET, &format!("/api/v2/deals/{deal}"), None)
        .await;
    assert_eq!(
        d["data"]["title"],
        "Tag (chatbot bot_acme) leadbridge-event:evt_10"
    );
    assert_eq!(d["data"]["person_id"], json!(person));
}

#[tokio::test]
async fn a_conversation_keeps_one_note_that_is_updated() {
    let h = Harness::with_defaults().await;
    let crm = h.crm();
    let l = lead("evt_c1", json!({"wa_id": "14155552671"}));
    let c = crm
        .upsert_contact(&l, None, ContactWrite::Full)
        .await
        .expect("written");
    let tag = "leadbridge-conversation:abc123";
    assert!(crm
        .conversation_notes(&c.id, tag)
        .await
        .expect("read")
        .is_empty());
    let at = "2026-05-04T11:20:00Z".parse().expect("time");
    let first = crm
        .add_note_body(&c.id, &format!("<p>hi</p><p>{tag}</p>"), at)
        .await
        .expect("note");
    crm.add_note_body(&c.id, "<p>another conversation</p>", at)
        .await
        .expect("note");
    crm.update_note(&first, &format!("<p>hi</p><p>price?</p><p>{tag}</p>"))
        .await
        .expect("updated");
    let notes = crm.conversation_notes(&c.id, tag).await.expect("read");
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].0, first);
    assert!(notes[0].1.contains("price?"));
    assert_eq!(h.calls("PUT /v1/notes/{id}").await, 1);
}

#[tokio::test]
async fn a_refused_write_is_permanent_with_pipedrives_own_text() {
    let h = Harness::with_defaults().await;
    let crm = h.crm();
    let l = lead_with(
        "evt_r",
        json!({"email": "refused@acme.in", "name": "R"}),
        json!({"object": "contact", "create_deal": true, "deal_stage": "99"}),
    );
    let c = crm
        .upsert_contact(&l, None, ContactWrite::Full)
        .await
        .expect("written");
    // A stage the company does not have is refused before the deal call, naming it.
    let e = crm.check_deal(&l).await.expect_err("refused");
    assert_eq!(e.class, ErrorClass::Permanent, "{e:?}");
    assert_eq!(e.reason().code, "bad_deal_stage");
    assert!(
        e.message.contains("\"99\"") && e.message.contains("Qualified (1)"),
        "{e:?}"
    );
    assert_eq!(e.crm, "pipedrive");
    let e = crm.create_deal(&c.id, &l).await.expect_err("refused");
    assert_eq!(e.reason().code, "bad_deal_stage");
    assert_eq!(
        h.calls("POST /api/v2/deals").await,
        0,
        "no deal call was made"
    );

    // A refusal of the person write: Pipedrive's words, never what was sent.
    h.admin(
        Method::POST,
        "faults",
        Some(json!({"kind": "error", "status": 400, "count": 1, "route": "POST /api/v2/persons"})),
    )
    .await;
    let other = lead(
        "evt_r2",
        json!({"email": "secret.person@acme.in", "name": "Secret Person"}),
    );
    let e = crm
        .upsert_contact(&other, None, ContactWrite::Full)
        .await
        .expect_err("refused");
    assert_eq!(e.class, ErrorClass::Permanent);
    assert_eq!(e.message, "Bad request");
    assert!(!e.to_string().contains("secret.person"), "{e}");

    // A stage named as the admin sees it is found by its name, in any case;
    // another CRM's stage name is refused, not sent to the default stage.
    let named = lead_with(
        "evt_r3",
        json!({"email": "refused@acme.in"}),
        json!({"object": "contact", "create_deal": true,
               "deal_stage": "demo scheduled", "deal_pipeline": "Pipeline"}),
    );
    crm.check_deal(&named)
        .await
        .expect("a stage of the pipeline");
    let deal = crm.create_deal(&c.id, &named).await.expect("deal");
    let (_, d) = h
        .send(Method::GET, &format!("/api/v2/deals/{deal}"), None)
        .await;
    assert_eq!(
        (
            d["data"]["stage_id"].clone(),
            d["data"]["pipeline_id"].clone()
        ),
        (json!(3), json!(1))
    );
    let foreign = lead_with(
        "evt_r4",
        json!({"email": "refused@acme.in"}),
        json!({"object": "contact", "create_deal": true, "deal_stage": "appointmentscheduled"}),
    );
    let e = crm
        .check_deal(&foreign)
        .await
        .expect_err("not a Pipedrive stage");
    assert!(e.message.contains("\"appointmentscheduled\""), "{e:?}");
    let other_pipeline = lead_with(
        "evt_r5",
        json!({"email": "refused@acme.in"}),
        json!({"object": "contact", "create_deal": true, "deal_pipeline": "Partners"}),
    );
    let e = crm
        .check_deal(&other_pipeline)
        .await
        .expect_err("no such pipeline");
    assert!(
        e.message.contains("\"Partners\"") && e.message.contains("Pipeline (1)"),
        "{e:?}"
    );
    // The pipelines were read once for all of it (cached).
    assert_eq!(h.calls("GET /api/v2/stages").await, 1);
}

#[tokio::test]
async fn an_injected_429_is_rate_limited_with_a_retry_after() {
    let h = Harness::with_defaults().await;
    let crm = h.crm();
    h.admin(
        Method::POST,
        "faults",
        Some(json!({"kind": "error", "status": 429, "retry_after": 30,
                    "route": "GET /api/v2/persons/search"})),
    )
    .await;
    let l = lead("evt_429", json!({"email": "busy@acme.in"}));
    let e = crm
        .upsert_contact(&l, None, ContactWrite::Full)
        .await
        .expect_err("throttled");
    assert_eq!(e.class, ErrorClass::RateLimited, "{e:?}");
    assert_eq!(e.retry_after, Some(Duration::from_secs(30)));
    assert_eq!(e.http_status, Some(429));
    assert_eq!(e.reason().code, "crm_rate_limited");
    h.admin(Method::DELETE, "faults", None).await;

    // A burst refusal that frees up within the window is waited out inside the call.
    h.admin(
        Method::POST,
        "faults",
        Some(json!({"kind": "error", "status": 429, "count": 1,
                    "route": "GET /api/v2/persons/search"})),
    )
    .await;
    let c = crm
        .upsert_contact(&l, None, ContactWrite::Full)
        .await
        .expect("waited and written");
    assert!(c.created);
}

#[tokio::test]
async fn a_spent_daily_budget_waits_and_a_warning_comes_once() {
    let h = Harness::start(PipedriveSimConfig {
        daily_budget: 1_000,
        daily_used: 600,
        ..PipedriveSimConfig::default()
    })
    .await;
    let crm = h.crm();
    assert_eq!(crm.take_quota_warning(), None, "nothing seen yet");
    crm.warm_up().await; // 20 tokens: 620 of 1000
    assert_eq!(crm.take_quota_warning(), None, "62%");
    let l = lead("evt_q", json!({"email": "quota@acme.in", "name": "Q"}));
    crm.upsert_contact(&l, None, ContactWrite::Full)
        .await
        .expect("search 40 + create 10: 670");
    crm.warm_up().await; // 690
    crm.warm_up().await; // 710
    let w = crm.take_quota_warning().expect("past 70%");
    assert_eq!((w.used, w.limit), (710, 1_000));
    assert_eq!(crm.take_quota_warning(), None, "once a day");

    h.admin(Method::POST, "config", Some(json!({"daily_used": 990})))
        .await;
    let e = crm
        .find_note("1", &eid("evt_q"))
        .await
        .expect_err("budget spent");
    assert_eq!(e.class, ErrorClass::RateLimited);
    let wait = e.retry_after.expect("a wait");
    assert!(
        wait <= Duration::from_secs(3600) && wait > Duration::ZERO,
        "{wait:?}"
    );
    let before = h.admin(Method::GET, "stats", None).await["total"].clone();
    let again = crm
        .find_note("1", &eid("evt_q"))
        .await
        .expect_err("still spent");
    assert_eq!(again.class, ErrorClass::RateLimited);
    assert_eq!(
        h.admin(Method::GET, "stats", None).await["total"],
        before,
        "answered without asking Pipedrive until the next check"
    );
}

#[tokio::test]
async fn a_revoked_token_is_auth_revoked_and_a_rotated_one_is_reread() {
    let h = Harness::with_defaults().await;
    let revoked = h.tokens(usize::MAX);
    let crm = h.crm_with(revoked.clone());
    let l = lead("evt_auth", json!({"email": "auth@acme.in"}));
    let e = crm
        .upsert_contact(&l, None, ContactWrite::Full)
        .await
        .expect_err("revoked");
    assert_eq!(e.class, ErrorClass::Permanent);
    assert_eq!(e.http_status, Some(401));
    assert_eq!(e.code.as_deref(), Some("auth_revoked"));
    assert_eq!(e.reason().code, "auth_revoked");
    assert!(e.message.contains("unauthorized access"), "{}", e.message);
    assert!(!e.message.contains("revoked-token"), "never the token");
    assert_eq!(revoked.reads.load(Ordering::SeqCst), 2, "read again once");

    // Rotated: the cached value is stale, the re-read one works. A plain-string secret.
    let rotated = Arc::new(Tokens {
        good: h.sim.token.clone(),
        bad: 1,
        plain: true,
        reads: AtomicUsize::new(0),
    });
    let crm = h.crm_with(rotated.clone());
    let c = crm
        .upsert_contact(&l, None, ContactWrite::Full)
        .await
        .expect("re-read token works");
    assert!(c.created);
    assert_eq!(rotated.reads.load(Ordering::SeqCst), 2);
}

/// Search lags writes (the simulator's `search_lag_ms`, as Pipedrive's index
/// does): a person created a moment ago is not found by search, so a second
/// event of the same person a moment later creates a second person unless
/// the record id is known. The worker's ledger remembers it (`known_id`),
/// which is what keeps one person; this test documents the behaviour.
#[tokio::test]
async fn search_lag_hides_a_person_created_a_moment_ago() {
    let h = Harness::start(PipedriveSimConfig {
        search_lag_ms: 1_500,
        ..PipedriveSimConfig::default()
    })
    .await;
    let crm = h.crm();
    let first = lead(
        "evt_lag1",
        json!({"email": "lag@acme.in", "phone": "+14155552671", "name": "Lag"}),
    );
    let c = crm
        .upsert_contact(&first, None, ContactWrite::Full)
        .await
        .expect("created");
    let second = lead(
        "evt_lag2",
        json!({"email": "lag@acme.in", "phone": "+14155552671"}),
    );
    assert!(
        crm.find_contacts(&second)
            .await
            .expect("searched")
            .is_empty(),
        "not searchable yet"
    );
    // With the ledger's memory: the same person.
    let known = crm
        .upsert_contact(&second, Some(&c.id), ContactWrite::Full)
        .await
        .expect("updated");
    assert_eq!((known.id.as_str(), known.created), (c.id.as_str(), false));
    // Without it, the lagging search misses the person: a duplicate.
    let blind = crm
        .upsert_contact(&second, None, ContactWrite::Full)
        .await
        .expect("written");
    assert!(blind.created);
    assert_ne!(blind.id, c.id);
    // Once the index caught up, search finds the (first) holder of the number
    // (identity 1: the email is identity 0, matched by the upsert itself).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = crm.find_contacts(&second).await.expect("searched");
        if found == vec![(1, c.id.clone())] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the index never caught up: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_remembered_person_that_is_gone_is_found_or_created_again() {
    let h = Harness::with_defaults().await;
    let crm = h.crm();
    let l = lead("evt_gone", json!({"email": "gone@acme.in", "name": "Gone"}));
    let c = crm
        .upsert_contact(&l, None, ContactWrite::Full)
        .await
        .expect("created");
    let (status, _) = h
        .send(Method::DELETE, &format!("/api/v2/persons/{}", c.id), None)
        .await;
    assert_eq!(status, 200);
    let again = crm
        .upsert_contact(&l, Some(&c.id), ContactWrite::Full)
        .await
        .expect("written");
    assert!(again.created);
    assert_ne!(again.id, c.id);
    let e = crm
        .upsert_contact(&l, Some("not-a-number"), ContactWrite::Full)
        .await
        .expect_err("not a Pipedrive id");
    assert_eq!(e.class, ErrorClass::Permanent);
}

#[tokio::test]
async fn transient_failures_are_transient() {
    let h = Harness::with_defaults().await;
    let crm = h.crm();
    h.admin(
        Method::POST,
        "faults",
        Some(json!({"kind": "error", "status": 503, "retry_after": 4, "route": "/v1/notes"})),
    )
    .await;
    let e = crm.find_note("1", &eid("evt_t")).await.expect_err("down");
    assert_eq!(e.class, ErrorClass::Transient);
    assert_eq!(e.http_status, Some(503));
    assert_eq!(e.retry_after, Some(Duration::from_secs(4)));
    h.admin(Method::DELETE, "faults", None).await;
    h.admin(
        Method::POST,
        "faults",
        Some(json!({"kind": "timeout", "route": "/v1/notes"})),
    )
    .await;
    let slow = PipedriveCrm::new(
        PipedriveConfig {
            base_url: h.sim.base_url.clone(),
            timeout: Duration::from_millis(300),
            allow_internal: true,
            ..PipedriveConfig::default()
        },
        Arc::new(CachedSecret::new(
            h.tokens(0),
            "pipedrive",
            Duration::from_secs(300),
        )),
    )
    .expect("client");
    let e = slow
        .find_note("1", &eid("evt_t"))
        .await
        .expect_err("timed out");
    assert_eq!(e.class, ErrorClass::Transient);
    assert_eq!(e.http_status, None);
}

/// A connection's `fields`/`static` on Pipedrive: person custom fields found
/// by their name, values shaped per field type (an option's id for a
/// single-option field); a target that names no custom field stops the write
/// as schema drift naming it, before anything is written, and the hourly
/// check finds it first.
#[tokio::test]
async fn mapped_and_static_custom_fields_are_written_and_a_missing_one_is_schema_drift() {
    let h = Harness::with_defaults().await;
    let intent = h
        .admin(
            Method::POST,
            "person-fields",
            Some(json!({"name": "Chat intent", "field_type": "varchar"})),
        )
        .await;
    let channel = h
        .admin(
            Method::POST,
            "person-fields",
            Some(json!({"name": "Lead channel", "field_type": "enum", "options": ["Chatbot", "Form"]})),
        )
        .await;
    let mapping = |extra: &str| {
        lb_config::Config::parse(&format!(
            "version = 1\n[connections.p]\nkind = \"pipedrive\"\nsecret = \"s\"\n\
             [connections.p.fields]\n\"intent.primary\" = {{ property = \"Chat intent\", case = \"upper\" }}\n{extra}\
             [connections.p.static]\n\"lead channel\" = \"chatbot\"\n\
             [[routes]]\nbot_id = \"*\"\nconnections = [\"p\"]\n"
        ))
        .expect("config")
        .connection("p")
        .and_then(|c| c.mapping.clone())
    };
    let crm = h.crm_mapped(h.tokens(0), mapping(""));
    let mut l = lead(
        "evt_map",
        json!({"email": "map@acme.in", "name": "Ada Lovelace"}),
    );
    l.event.intent = serde_json::from_value(json!({"primary": "pricing"})).expect("intent");
    let c = crm
        .upsert_contact(&l, None, ContactWrite::Full)
        .await
        .expect("written");
    let person = h.person(&c.id).await;
    let chatbot = channel["options"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["label"] == "Chatbot"))
        .map(|o| o["id"].clone())
        .expect("an option");
    assert_eq!(
        person["custom_fields"][intent["key"].as_str().expect("key")],
        "PRICING"
    );
    assert_eq!(
        person["custom_fields"][channel["key"].as_str().expect("key")],
        chatbot
    );
    assert_eq!(
        person["name"], "Ada Lovelace",
        "the adapter's own fields stay"
    );
    assert_eq!(
        crm.schema_findings().await.expect("read"),
        Vec::<String>::new()
    );

    let drifted = h.crm_mapped(
        h.tokens(0),
        mapping("\"context.utm_source\" = \"Utm source\"\n"),
    );
    let found = drifted.schema_findings().await.expect("read");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("\"Utm source\""), "{found:?}");
    let mut other = lead(
        "evt_drift",
        json!({"email": "drift@acme.in", "name": "Alan Turing"}),
    );
    other.event.context = serde_json::from_value(json!({"utm_source": "google"})).expect("context");
    let persons_before = h.persons().await.len();
    let e = drifted
        .upsert_contact(&other, None, ContactWrite::Full)
        .await
        .expect_err("drift");
    assert_eq!(
        (e.class, e.reason().code.as_str()),
        (ErrorClass::Permanent, "schema_drift"),
        "{e:?}"
    );
    assert!(e.message.contains("\"Utm source\""), "{e:?}");
    assert_eq!(
        h.persons().await.len(),
        persons_before,
        "nothing was written"
    );
}
