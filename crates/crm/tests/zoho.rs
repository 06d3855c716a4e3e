//! The Zoho adapter against the Zoho simulator over HTTP: OAuth (refresh,
//! expiry, revocation, single-flight), batched upserts and notes, search by
//! phone, tagged notes and deals, conversations, limits.

mod common;

use std::sync::Arc;
use std::time::Duration;

use crm_sim::zoho::{RunningZohoSim, ZohoSimConfig};
use lb_crm::{ZohoConfig, ZohoCrm};
use lb_domain::{EventId, QueuedLead};
use lb_pipeline::{ContactWrite, Crm, ErrorClass};
use reqwest::Method;
use serde_json::{json, Value};

use common::{eid, item, lead, person, GrantStore};

const UPSERT: &str = "POST /crm/v8/Contacts/upsert";
const NOTES: &str = "POST /crm/v8/Notes";
const DEALS: &str = "POST /crm/v8/Deals";
const TOKEN: &str = "POST /oauth/v2/token";

struct Harness {
    sim: RunningZohoSim,
    http: reqwest::Client,
}

impl Harness {
    async fn start() -> Harness {
        Harness::with(ZohoSimConfig {
            search_lag_ms: 0,
            ..ZohoSimConfig::default()
        })
        .await
    }

    async fn with(cfg: ZohoSimConfig) -> Harness {
        let sim = RunningZohoSim::start("127.0.0.1:0".parse().expect("addr"), cfg)
            .await
            .expect("simulator starts");
        Harness {
            sim,
            http: reqwest::Client::new(),
        }
    }

    fn crm(&self) -> ZohoCrm {
        self.crm_for("Contacts")
    }

    fn crm_for(&self, module: &str) -> ZohoCrm {
        self.crm_mapped(module, None)
    }

    fn crm_mapped(&self, module: &str, mapping: Option<lb_domain::mapping::Mapping>) -> ZohoCrm {
        let secret = json!({
            "client_id": self.sim.client_id,
            "client_secret": self.sim.client_secret,
            "refresh_token": self.sim.refresh_token,
            "accounts_url": self.sim.accounts_url,
        })
        .to_string();
        let grant = Arc::new(GrantStore::new(secret)).cached("zoho");
        ZohoCrm::new(
            ZohoConfig {
                accounts_url: "https://accounts.zoho.invalid".into(),
                module: module.into(),
                timeout: Duration::from_secs(5),
                allow_internal: true,
                mapping,
                ..ZohoConfig::default()
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

    /// Reads the API the way a person inspecting the org would (its own token).
    async fn read(&self, path: &str) -> Value {
        let form = format!(
            "grant_type=refresh_token&client_id={}&client_secret={}&refresh_token={}",
            self.sim.client_id, self.sim.client_secret, self.sim.refresh_token
        );
        let t: Value = self
            .http
            .post(format!("{}/oauth/v2/token", self.sim.accounts_url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .expect("answered")
            .json()
            .await
            .expect("json");
        let token = t["access_token"].as_str().expect("token");
        let resp = self
            .http
            .get(format!("{}/crm/v8{path}", self.sim.base_url))
            .header("authorization", format!("Zoho-oauthtoken {token}"))
            .send()
            .await
            .expect("answered");
        resp.json().await.unwrap_or(Value::Null)
    }

    async fn contact(&self, id: &str) -> Value {
        self.read(&format!("/Contacts/{id}")).await["data"][0].clone()
    }
}

#[tokio::test]
async fn a_new_person_becomes_one_record_with_one_note() {
    let h = Harness::start().await;
    let crm = h.crm();
    let l = person("evt_new", "priya@acme.in", "Priya Anand Sharma");
    let c = crm
        .upsert_contact(&l, None, ContactWrite::Full)
        .await
        .expect("written");
    assert!(c.created);
    let note = crm.add_note(&c.id, &l).await.expect("note");

    let record = h.contact(&c.id).await;
    assert_eq!(record["Email"], "priya@acme.in");
    assert_eq!(record["First_Name"], "Priya Anand");
    assert_eq!(record["Last_Name"], "Sharma");
    assert_eq!(record["Mailing_Country"], "IN");
    assert_eq!(
        h.read("/Contacts?fields=Email").await["data"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let notes = h
        .read(&format!(
            "/Contacts/{}/Notes?fields=Note_Content,Note_Title",
            c.id
        ))
        .await;
    let notes = notes["data"].as_array().expect("notes").clone();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["id"], note.as_str());
    assert!(notes[0]["Note_Content"]
        .as_str()
        .expect("content")
        .contains("leadbridge-event:evt_new"));
    assert_eq!(
        crm.find_note(&c.id, &eid("evt_new")).await.expect("found"),
        Some(note)
    );
    assert_eq!(h.calls(UPSERT).await, 1);
    assert_eq!(
        h.calls(TOKEN).await - 3,
        1,
        "one refresh for the adapter (the rest are the test's reads)"
    );
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
    let again = crm
        .upsert_contact(
            &person("evt_b", "priya.sharma@acmecorp.in ", "Priya Sharma"),
            None,
            ContactWrite::Full,
        )
        .await
        .expect("written");
    assert_eq!(again.id, first.id);
    assert!(first.created && !again.created);
    assert_eq!(
        h.read("/Contacts?fields=Email").await["data"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn a_batch_of_five_with_one_refused_record_fails_that_item_alone() {
    let h = Harness::start().await;
    h.admin(
        Method::POST,
        "fields/Contacts",
        Some(json!({"api_name": "First_Name", "data_type": "text", "length": 10})),
    )
    .await;
    let crm = h.crm();
    let answers = crm
        .upsert_contacts(&common::five_with_one_long_name())
        .await;
    common::only_the_long_name_refused(
        &answers,
        "INVALID_DATA",
        207,
        &["First_Name", "at most 10"],
    );
    assert_eq!(h.calls(UPSERT).await, 1, "one call for the batch");
}

#[tokio::test]
async fn notes_and_deals_of_a_batch_go_in_one_call_each() {
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
    let pairs: Vec<(String, QueuedLead)> = contacts
        .iter()
        .zip(&leads)
        .map(|(c, l)| (c.as_ref().expect("written").id.clone(), l.clone()))
        .collect();
    let notes: Vec<String> = crm
        .add_notes(&pairs)
        .await
        .into_iter()
        .map(|n| n.expect("note"))
        .collect();
    assert_eq!(h.calls(NOTES).await, 1);
    for ((contact, l), note) in pairs.iter().zip(&notes) {
        assert_eq!(
            crm.find_note(contact, &l.event.event_id)
                .await
                .expect("read")
                .as_ref(),
            Some(note)
        );
    }
    let deals: Vec<String> = crm
        .create_deals(&pairs)
        .await
        .into_iter()
        .map(|d| d.expect("deal"))
        .collect();
    assert_eq!(h.calls(DEALS).await, 1);
    let (contact, l) = &pairs[3];
    assert_eq!(
        crm.find_deal(contact, &l.event.event_id)
            .await
            .expect("read")
            .as_ref(),
        Some(&deals[3])
    );
    assert_eq!(
        crm.find_deal(contact, &eid("evt_n4")).await.expect("read"),
        None
    );
    let deal = h.read(&format!("/Deals/{}", deals[3])).await["data"][0].clone();
    assert_eq!(deal["Stage"], "Qualification");
    assert_eq!(deal["Contact_Name"]["id"], contact.as_str());
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
    assert_eq!(h.calls(TOKEN).await, 1);
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
    assert_eq!(h.calls(TOKEN).await, 2, "exactly one refresh");
    assert_eq!(h.calls(UPSERT).await, 3, "the refused call, then its retry");
}

#[tokio::test]
async fn a_token_near_its_end_is_refreshed_before_zoho_refuses_it() {
    let h = Harness::with(ZohoSimConfig {
        access_token_ttl_s: 2,
        search_lag_ms: 0,
        ..ZohoSimConfig::default()
    })
    .await;
    let crm = h.crm();
    crm.warm_up().await;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    crm.upsert_contact(
        &person("evt_t", "t@x.io", "Tom Ng"),
        None,
        ContactWrite::Full,
    )
    .await
    .expect("written");
    assert_eq!(h.calls(TOKEN).await, 2);
    assert_eq!(h.calls(UPSERT).await, 1, "no call was refused");
}

#[tokio::test]
async fn a_revoked_grant_is_auth_revoked_after_exactly_one_refresh_attempt() {
    let h = Harness::start().await;
    let crm = Arc::new(h.crm());
    crm.warm_up().await;
    assert_eq!(h.calls(TOKEN).await, 1);
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
    assert_eq!(e.category.as_deref(), Some("invalid_code"));
    assert!(!e.message.contains(&h.sim.refresh_token), "{}", e.message);
    assert_eq!(h.calls(TOKEN).await, 2, "one refresh attempt");
    // Later and concurrent callers get the same answer without asking again.
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
    assert_eq!(h.calls(TOKEN).await, 2, "no refresh storm");
}

#[tokio::test]
async fn concurrent_callers_after_expiry_cause_one_refresh() {
    let h = Harness::start().await;
    let crm = Arc::new(h.crm());
    let contact = crm
        .upsert_contact(
            &person("evt_c", "c@x.io", "Cy Po"),
            None,
            ContactWrite::Full,
        )
        .await
        .expect("written")
        .id;
    assert_eq!(h.calls(TOKEN).await, 1);
    h.admin(Method::POST, "oauth/expire", None).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (crm, contact) = (crm.clone(), contact.clone());
        tasks.push(tokio::spawn(async move {
            crm.find_note(&contact, &EventId::parse(&format!("evt_x{i}")).expect("id"))
                .await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task").expect("read"), None);
    }
    assert_eq!(h.calls(TOKEN).await, 2, "one refresh for all eight callers");
}

#[tokio::test]
async fn concurrent_callers_after_the_lifetime_ends_cause_one_refresh() {
    let h = Harness::with(ZohoSimConfig {
        access_token_ttl_s: 1,
        search_lag_ms: 0,
        ..ZohoSimConfig::default()
    })
    .await;
    let crm = Arc::new(h.crm());
    crm.warm_up().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let crm = crm.clone();
        tasks.push(tokio::spawn(async move {
            crm.upsert_contact(
                &person(&format!("evt_l{i}"), &format!("l{i}@x.io"), "Lu Ma"),
                None,
                ContactWrite::Full,
            )
            .await
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("written");
    }
    assert_eq!(h.calls(TOKEN).await, 2);
}

#[tokio::test]
async fn an_injected_429_is_rate_limited_with_retry_after() {
    let h = Harness::start().await;
    let crm = h.crm();
    h.admin(
        Method::POST,
        "faults",
        Some(
            json!({"kind": "error", "status": 429, "retry_after": 7, "count": 1, "route": UPSERT}),
        ),
    )
    .await;
    let e = crm
        .upsert_contact(
            &person("evt_429", "q@x.io", "Quinn Ho"),
            None,
            ContactWrite::Full,
        )
        .await
        .expect_err("throttled");
    assert_eq!(e.class, ErrorClass::RateLimited);
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
    assert_eq!(e.category.as_deref(), Some("TOO_MANY_REQUESTS"));
    // Without Retry-After (Zoho documents none): a default wait.
    h.admin(
        Method::POST,
        "faults",
        Some(json!({"kind": "error", "status": 429, "count": 1, "route": NOTES})),
    )
    .await;
    let e = crm
        .add_note(
            "5725767000000100001",
            &person("evt_429", "q@x.io", "Quinn Ho"),
        )
        .await
        .expect_err("throttled");
    assert_eq!(
        (e.class, e.retry_after),
        (ErrorClass::RateLimited, Some(Duration::from_secs(30)))
    );
    // A 5xx is transient; every item of a failed batch gets the failure.
    h.admin(
        Method::POST,
        "faults",
        Some(json!({"kind": "error", "status": 503, "count": 1, "route": UPSERT})),
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
async fn a_note_is_found_by_its_exact_tag() {
    let h = Harness::start().await;
    let crm = h.crm();
    let l10 = person("evt_10", "tag@x.io", "Tia Go");
    let c = crm
        .upsert_contact(&l10, None, ContactWrite::Full)
        .await
        .expect("written");
    let n10 = crm.add_note(&c.id, &l10).await.expect("note");
    assert_eq!(
        crm.find_note(&c.id, &eid("evt_1")).await.expect("read"),
        None,
        "evt_1 is not evt_10"
    );
    let l1 = person("evt_1", "tag@x.io", "Tia Go");
    let n1 = crm.add_note(&c.id, &l1).await.expect("note");
    assert_eq!(
        crm.find_note(&c.id, &eid("evt_1")).await.expect("read"),
        Some(n1)
    );
    assert_eq!(
        crm.find_note(&c.id, &eid("evt_10")).await.expect("read"),
        Some(n10)
    );
}

#[tokio::test]
async fn phone_only_people_are_named_after_their_number_and_found_by_search() {
    let h = Harness::start().await;
    let crm = h.crm();
    let by_phone = lead("evt_p1", json!({"phone": "+14155552671"}));
    let c = crm
        .upsert_contact(&by_phone, None, ContactWrite::Full)
        .await
        .expect("written");
    assert!(c.created);
    let record = h.contact(&c.id).await;
    assert_eq!(record["Last_Name"], "+14155552671");
    assert_eq!(record["Phone"], "+14155552671");
    let wa = lead(
        "evt_w1",
        json!({"wa_id": "919876543210", "name": "Wen Ade"}),
    );
    let w = crm
        .upsert_contact(&wa, None, ContactWrite::Full)
        .await
        .expect("written");
    assert_eq!(h.contact(&w.id).await["Mobile"], "+919876543210");

    let again = lead(
        "evt_p2",
        json!({"phone": "+1 (415) 555-2671", "email": "p2@x.io"}),
    );
    assert_eq!(
        crm.find_contacts(&again).await.expect("searched"),
        vec![(1, c.id.clone())]
    );
    let both = crm
        .find_contacts_batch(&[
            again.clone(),
            lead("evt_w2", json!({"wa_id": "919876543210"})),
            lead("evt_none", json!({"phone": "+12025550123"})),
        ])
        .await;
    assert_eq!(both[0].as_ref().expect("ok"), &vec![(1, c.id.clone())]);
    // A WhatsApp id is two identities (the number as a phone, and the id): both found.
    assert_eq!(
        both[1].as_ref().expect("ok"),
        &vec![(0, w.id.clone()), (1, w.id.clone())]
    );
    assert!(both[2].as_ref().expect("ok").is_empty());
    assert_eq!(
        h.calls("GET /crm/v8/Contacts/search").await,
        2,
        "one search per batch"
    );
}

#[tokio::test]
async fn a_person_known_only_by_email_is_named_when_zoho_needs_a_name() {
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
    assert_eq!(h.contact(&c.id).await["Last_Name"], "mona.k");
    assert_eq!(h.calls(UPSERT).await, 2, "MANDATORY_NOT_FOUND, then named");
    // An existing record keeps its name when the event has none.
    crm.upsert_contact(
        &person("evt_m2", "mona.k@x.io", "Mona Kaur"),
        None,
        ContactWrite::Full,
    )
    .await
    .expect("named");
    let again = crm
        .upsert_contact(
            &lead("evt_m3", json!({"email": "mona.k@x.io"})),
            None,
            ContactWrite::Full,
        )
        .await
        .expect("written");
    assert_eq!(again.id, c.id);
    assert_eq!(h.contact(&c.id).await["Last_Name"], "Kaur");
    assert_eq!(h.calls(UPSERT).await, 4);
}

#[tokio::test]
async fn a_remembered_record_is_written_by_id_or_as_unknown_when_gone() {
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
    // The identity rule chose the phone's record for an event that adds an email.
    let l = lead(
        "evt_k2",
        json!({"phone": "+14155550199", "email": "k@x.io", "name": "Kim Oh"}),
    );
    let c = crm
        .upsert_contact(&l, Some(&phone_only.id), ContactWrite::Full)
        .await
        .expect("written");
    assert_eq!((c.id.as_str(), c.created), (phone_only.id.as_str(), false));
    assert_eq!(h.contact(&c.id).await["Email"], "k@x.io");
    // Identity-only for a known record: nothing to send.
    let before = h.calls(UPSERT).await;
    let same = crm
        .upsert_contact(&l, Some(&c.id), ContactWrite::IdentityOnly)
        .await
        .expect("known");
    assert_eq!(same.id, c.id);
    assert_eq!(h.calls(UPSERT).await, before);
    // A remembered id Zoho no longer has: written as a person not yet known.
    let gone = crm
        .upsert_contact(
            &person("evt_k3", "gone@x.io", "Gus Lo"),
            Some("5725767000999999999"),
            ContactWrite::Full,
        )
        .await
        .expect("written");
    assert!(gone.created);
    assert_ne!(gone.id, "5725767000999999999");
}

#[tokio::test]
async fn a_unique_email_held_by_another_record_names_it_in_taken_by() {
    let h = Harness::start().await;
    h.admin(
        Method::POST,
        "fields/Contacts",
        Some(json!({"api_name": "Email", "data_type": "email", "unique": true})),
    )
    .await;
    let crm = h.crm();
    let a = crm
        .upsert_contact(
            &person("evt_u1", "a@x.io", "Al Ko"),
            None,
            ContactWrite::Full,
        )
        .await
        .expect("a");
    let b = crm
        .upsert_contact(
            &lead("evt_u2", json!({"phone": "+14155550111"})),
            None,
            ContactWrite::Full,
        )
        .await
        .expect("b");
    let e = crm
        .upsert_contact(
            &person("evt_u3", "a@x.io", "Al Ko"),
            Some(&b.id),
            ContactWrite::Full,
        )
        .await
        .expect_err("the email belongs to a");
    assert_eq!(e.category.as_deref(), Some("DUPLICATE_DATA"));
    assert_eq!(e.taken_by.as_deref(), Some(a.id.as_str()));
    assert_eq!(e.class, ErrorClass::Permanent);
}

#[tokio::test]
async fn a_removed_field_stops_the_write_as_schema_drift() {
    let h = Harness::start().await;
    reqwest::Client::new()
        .delete(format!("{}/__admin/fields/Contacts/Mobile", h.sim.base_url))
        .send()
        .await
        .expect("answered");
    let crm = h.crm();
    let e = crm
        .upsert_contact(
            &lead("evt_d", json!({"wa_id": "919876543211", "name": "Dee Fox"})),
            None,
            ContactWrite::Full,
        )
        .await
        .expect_err("drift");
    assert_eq!(e.code.as_deref(), Some("schema_drift"));
    assert!(e.message.contains("\"Mobile\""), "{}", e.message);
    assert_eq!(h.calls(UPSERT).await, 0, "nothing written");
}

#[tokio::test]
async fn a_conversation_is_one_note_that_grows() {
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
        .expect("note");
    crm.add_note(&c.id, &person("evt_v2", "v@x.io", "Vi Tran"))
        .await
        .expect("other note");
    let found = crm.conversation_notes(&c.id, &tag).await.expect("read");
    assert_eq!(found, vec![(note.clone(), body.clone())]);
    let longer = format!("<p>hello</p><p>again</p><p>{tag}</p>");
    crm.update_note(&note, &longer).await.expect("updated");
    assert_eq!(
        crm.conversation_notes(&c.id, &tag).await.expect("read"),
        vec![(note, longer)]
    );
    assert_eq!(crm.note_max_chars(), 65_535);
    assert_eq!(crm.batch_limit(), 100);
}

#[tokio::test]
async fn a_throttled_refresh_is_rate_limited_and_not_repeated() {
    let h = Harness::start().await;
    let crm = h.crm();
    crm.warm_up().await;
    h.admin(Method::POST, "config", Some(json!({"token_mint_limit": 1})))
        .await;
    h.admin(Method::POST, "oauth/expire", None).await;
    let l = person("evt_th", "th@x.io", "Thi Vo");
    let e = crm
        .upsert_contact(&l, None, ContactWrite::Full)
        .await
        .expect_err("throttled");
    assert_eq!(e.class, ErrorClass::RateLimited, "{e:?}");
    assert_eq!(e.category.as_deref(), Some("Access Denied"));
    assert!(e.retry_after.is_some());
    crm.upsert_contact(&l, None, ContactWrite::Full)
        .await
        .expect_err("still throttled");
    assert_eq!(h.calls(TOKEN).await, 2, "the refusal is remembered");
}

#[tokio::test]
async fn a_leads_connection_writes_leads_and_creates_no_deals() {
    let h = Harness::start().await;
    let crm = h.crm_for("Leads");
    let l = person("evt_ld", "ld@x.io", "Lea Dunn");
    let c = crm
        .upsert_contact(&l, None, ContactWrite::Full)
        .await
        .expect("written");
    let record = h.read(&format!("/Leads/{}", c.id)).await["data"][0].clone();
    assert_eq!(record["Company"], "Acme");
    assert_eq!(record["Country"], "IN");
    assert_eq!(h.calls("POST /crm/v8/Leads/upsert").await, 1);
    let note = crm.add_note(&c.id, &l).await.expect("note");
    assert_eq!(
        crm.find_note(&c.id, &l.event.event_id).await.expect("read"),
        Some(note)
    );
    let e = crm
        .create_deal(&c.id, &l)
        .await
        .expect_err("no deals for leads");
    assert_eq!(e.class, ErrorClass::Permanent);
    // And it is said before anything is written for an event that asks for one.
    let e = crm.check_deal(&l).await.expect_err("no deals for leads");
    assert_eq!(e.reason().code, "deals_need_contacts", "{e:?}");
    assert!(e.message.contains("nothing was written"), "{e:?}");
    assert_eq!(
        crm.find_deal(&c.id, &l.event.event_id).await.expect("read"),
        None
    );
}

/// A connection's `fields`/`static`: mapped fields are written with the
/// adapter's own; one the module does not have stops the write as schema drift
/// naming it, before anything is written.
#[tokio::test]
async fn mapped_and_static_fields_are_written_and_a_missing_one_is_schema_drift() {
    let h = Harness::start().await;
    h.admin(
        Method::POST,
        "fields/Contacts",
        Some(json!({"api_name": "Chat_Intent", "data_type": "text", "length": 255})),
    )
    .await;
    h.admin(
        Method::POST,
        "fields/Contacts",
        Some(json!({"api_name": "Lead_Channel", "data_type": "text", "length": 255})),
    )
    .await;
    let mapping = |extra: &str| {
        lb_config::Config::parse(&format!(
            "version = 1\n[connections.z]\nkind = \"zoho\"\nsecret = \"s\"\n\
             [connections.z.fields]\n\"intent.primary\" = {{ property = \"Chat_Intent\", case = \"upper\" }}\n{extra}\
             [connections.z.static]\nLead_Channel = \"chatbot\"\n\
             [[routes]]\nbot_id = \"*\"\nconnections = [\"z\"]\n"
        ))
        .expect("config")
        .connection("z")
        .and_then(|c| c.mapping.clone())
    };
    let crm = h.crm_mapped("Contacts", mapping(""));
    let c = crm
        .upsert_contact(
            &person("evt_map", "map@acme.in", "Ada Lovelace"),
            None,
            ContactWrite::Full,
        )
        .await
        .expect("written");
    let record = h.contact(&c.id).await;
    assert_eq!(record["Chat_Intent"], "PRICING");
    assert_eq!(record["Lead_Channel"], "chatbot");
    assert_eq!(
        record["Last_Name"], "Lovelace",
        "the adapter's own fields stay"
    );

    assert_eq!(
        crm.schema_findings().await.expect("read"),
        Vec::<String>::new()
    );
    let drifted = h.crm_mapped(
        "Contacts",
        mapping("\"context.utm_source\" = \"Utm_Source\"\n"),
    );
    // The hourly check finds it before a lead does.
    let found = drifted.schema_findings().await.expect("read");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("\"Utm_Source\": the field does not exist"),
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
    assert!(e.message.contains("Utm_Source"), "{}", e.message);
    assert_eq!(
        h.read("/Contacts?fields=Email").await["data"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "nothing written for the drifted one"
    );
}

fn with_deal(event_id: &str, crm_target: Value) -> QueuedLead {
    let mut l = person(event_id, "deal@x.io", "Dee Al");
    l.event.crm_target = serde_json::from_value(crm_target).expect("crm_target");
    l
}

/// A deal's stage and pipeline are checked against the Deals module's
/// picklists (read once, cached) before anything is written for the event.
#[tokio::test]
async fn a_deal_stage_or_pipeline_the_org_does_not_have_is_refused_before_anything_is_written() {
    let h = Harness::start().await;
    let crm = h.crm();
    for stage in [None, Some("Closed Won")] {
        let l = with_deal(
            "evt_ds1",
            json!({"object": "contact", "create_deal": true, "deal_stage": stage}),
        );
        crm.check_deal(&l).await.expect("a stage of the org");
    }
    let l = with_deal(
        "evt_ds2",
        json!({"object": "contact", "create_deal": true, "deal_stage": "appointmentscheduled"}),
    );
    let e = crm.check_deal(&l).await.expect_err("not a Zoho stage");
    assert_eq!(
        (e.class, e.reason().code.as_str()),
        (ErrorClass::Permanent, "bad_deal_stage"),
        "{e:?}"
    );
    assert!(
        e.message.contains("\"appointmentscheduled\"") && e.message.contains("Needs Analysis"),
        "{e:?}"
    );
    let l = with_deal(
        "evt_ds3",
        json!({"object": "contact", "create_deal": true, "deal_pipeline": "Enterprise"}),
    );
    let e = crm.check_deal(&l).await.expect_err("no Pipeline field");
    assert_eq!(e.reason().code, "bad_deal_stage");
    assert!(e.message.contains("\"Enterprise\""), "{e:?}");
    assert_eq!(
        h.calls("GET /crm/v8/settings/fields").await,
        1,
        "the Deals fields were read once"
    );
    assert_eq!(h.calls(DEALS).await, 0, "nothing was written");
}
