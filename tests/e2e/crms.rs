//! Pipedrive, Zoho CRM and Salesforce as connections of a routed stack: one
//! lead fans out to HubSpot, Pipedrive, Zoho and Salesforce, and each CRM keeps
//! one record per person with one note (Salesforce: one Task) per event,
//! through redeliveries, spellings, refusals and its auth.

use std::time::Duration;

use lb_pipeline::LedgerStatus;
use lb_tests::{eventually, lead, start, TestStack};
use serde_json::{json, Value};

/// `make dev CONFIG=config/local.example.toml`: every CRM simulator and the
/// webhook target, through the stack's own placeholders.
const CONFIG: &str = include_str!("../../config/local.example.toml");

async fn three_crms(name: &str) -> TestStack {
    start(name, |o| o.config_toml = Some(CONFIG.to_string())).await
}

/// A CRM simulator's REST API, read with credentials of our own.
struct Rest {
    http: reqwest::Client,
    base: String,
    header: (&'static str, String),
}

impl Rest {
    /// `GET base+path` as JSON (`null` for 204 No Content).
    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header(self.header.0, &self.header.1)
            .send()
            .await
            .expect("the CRM answers");
        if r.status().as_u16() == 204 {
            return Value::Null;
        }
        r.json().await.expect("json")
    }

    /// Salesforce: the records a SOQL query selects.
    async fn soql(&self, soql: &str) -> Vec<Value> {
        let q: String = form_urlencoded::byte_serialize(soql.as_bytes()).collect();
        let v = self.get(&format!("/query?q={q}")).await;
        v["records"].as_array().cloned().unwrap_or_default()
    }

    async fn pipedrive(t: &TestStack) -> Rest {
        let p = t.stack.info.crm.pipedrive.clone().expect("pipedrive sim");
        Rest {
            http: reqwest::Client::new(),
            base: p.base_url,
            header: ("x-api-token", p.token),
        }
    }

    /// A token of our own: the refresh-token grant at `url`.
    async fn token(
        http: &reqwest::Client,
        url: String,
        (client_id, client_secret, refresh_token): (&str, &str, &str),
    ) -> Value {
        http.post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=refresh_token&client_id={client_id}&client_secret={client_secret}\
                 &refresh_token={refresh_token}"
            ))
            .send()
            .await
            .expect("the token endpoint answers")
            .json()
            .await
            .expect("json")
    }

    async fn zoho(t: &TestStack) -> Rest {
        let z = t.stack.info.crm.zoho.clone().expect("zoho sim");
        let http = reqwest::Client::new();
        let token = Self::token(
            &http,
            format!("{}/oauth/v2/token", z.accounts_url),
            (&z.client_id, &z.client_secret, &z.refresh_token),
        )
        .await;
        let auth = format!(
            "Zoho-oauthtoken {}",
            token["access_token"].as_str().expect("a token")
        );
        Rest {
            http,
            base: format!("{}/crm/v8", z.base_url),
            header: ("authorization", auth),
        }
    }

    async fn salesforce(t: &TestStack) -> Rest {
        let f = t.stack.info.crm.salesforce.clone().expect("salesforce sim");
        let http = reqwest::Client::new();
        let token = Self::token(
            &http,
            format!("{}/services/oauth2/token", f.login_url),
            (&f.client_id, &f.client_secret, &f.refresh_token),
        )
        .await;
        let instance = token["instance_url"].as_str().unwrap_or(&f.instance_url);
        let bearer = format!(
            "Bearer {}",
            token["access_token"].as_str().expect("a token")
        );
        Rest {
            base: format!("{instance}/services/data/v60.0"),
            http,
            header: ("authorization", bearer),
        }
    }
}

/// Pipedrive's persons as `(emails, phones, notes)`, read through its API.
async fn pipedrive_people(t: &TestStack) -> Vec<(Vec<String>, Vec<String>, usize)> {
    let api = Rest::pipedrive(t).await;
    let persons = api.get("/api/v2/persons?limit=500").await;
    let mut out = Vec::new();
    for person in persons["data"].as_array().cloned().unwrap_or_default() {
        let values = |k: &str| -> Vec<String> {
            person[k]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["value"].as_str().map(str::to_string))
                .collect()
        };
        let notes = api
            .get(&format!("/v1/notes?person_id={}&limit=500", person["id"]))
            .await;
        let n = notes["data"].as_array().map_or(0, Vec::len);
        out.push((values("emails"), values("phones"), n));
    }
    out.sort();
    out
}

/// Zoho's Contacts as `(email, notes)`, read through its API with a token of our own.
async fn zoho_people(t: &TestStack) -> Vec<(String, usize)> {
    let api = Rest::zoho(t).await;
    let contacts = api
        .get("/Contacts?fields=Email,Last_Name&per_page=200")
        .await;
    let mut out = Vec::new();
    for c in contacts["data"].as_array().cloned().unwrap_or_default() {
        let id = c["id"].as_str().unwrap_or_default().to_string();
        let notes = api
            .get(&format!(
                "/Contacts/{id}/Notes?fields=Note_Content&per_page=200"
            ))
            .await;
        out.push((
            c["Email"].as_str().unwrap_or_default().to_string(),
            notes["data"].as_array().map_or(0, Vec::len),
        ));
    }
    out.sort();
    out
}

/// Salesforce's Leads holding `email`, each with its Tasks, through its REST API
/// with a token of our own.
async fn salesforce_people(t: &TestStack, email: &str) -> Vec<usize> {
    let api = Rest::salesforce(t).await;
    let mut out = Vec::new();
    for l in api
        .soql(&format!("SELECT Id FROM Lead WHERE Email = '{email}'"))
        .await
    {
        let id = l["Id"].as_str().unwrap_or_default();
        let tasks = api
            .soql(&format!(
                "SELECT Id, Description FROM Task WHERE WhoId = '{id}'"
            ))
            .await;
        out.push(tasks.len());
    }
    out
}

async fn synced_everywhere(t: &TestStack, event_id: &str) {
    for c in ["hubspot", "pipedrive", "zoho", "salesforce", "hook"] {
        let id = format!("{event_id}@{c}");
        eventually(&format!("{id} synced"), Duration::from_secs(40), || async {
            t.ledger(&id)
                .await
                .filter(|r| r.status == LedgerStatus::Synced)
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_lands_in_hubspot_pipedrive_zoho_and_salesforce_as_one_record_with_one_note_each() {
    let t = three_crms("three").await;
    let first = lead(
        "evt_p1",
        json!({"email": "Ana.Silva@Example.pt", "phone": "+351912345678", "name": "Ana Silva"}),
    );
    let (status, body) = t.post(&first).await;
    assert_eq!(status, 202, "{body}");
    synced_everywhere(&t, "evt_p1").await;
    // The same event again (a redelivery) and concurrently: nothing new anywhere.
    let (a, b) = tokio::join!(t.post(&first), t.post(&first));
    assert_eq!((a.0, b.0), (202, 202));
    // The same person spelled differently, a second event: the same records, a second note.
    let (status, body) = t
        .post(&lead(
            "evt_p2",
            json!({"email": " ana.silva@EXAMPLE.pt", "name": "Ana Silva"}),
        ))
        .await;
    assert_eq!(status, 202, "{body}");
    synced_everywhere(&t, "evt_p2").await;

    assert_eq!(
        pipedrive_people(&t).await,
        [(
            vec!["ana.silva@example.pt".to_string()],
            vec!["+351912345678".to_string()],
            2
        )],
        "one Pipedrive person with both notes"
    );
    assert_eq!(
        zoho_people(&t).await,
        [("ana.silva@example.pt".to_string(), 2)],
        "one Zoho contact with both notes"
    );
    assert_eq!(
        salesforce_people(&t, "ana.silva@example.pt").await,
        [2],
        "one Salesforce Lead with both Tasks"
    );
    let hubspot = t.hubspot_all("contacts", "").await;
    assert_eq!(hubspot.len(), 1, "{hubspot:?}");
    // The webhook target got one POST per event.
    let hook = &t
        .stack
        .info
        .crm
        .webhook
        .as_ref()
        .expect("webhook target")
        .base_url;
    let received: Value = reqwest::get(format!("{hook}/__admin/received"))
        .await
        .expect("webhook admin")
        .json()
        .await
        .expect("json");
    let mut events: Vec<&str> = received["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter(|r| r["status"] == 200 && r["path"] == "/leads")
        .filter_map(|r| r["body"]["leadbridge"]["event_id"].as_str())
        .collect();
    events.sort();
    assert_eq!(events, ["evt_p1", "evt_p2"], "{received}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoho_refreshes_an_expired_token_once_and_a_revoked_grant_dead_letters_with_auth_revoked_and_an_alert(
) {
    let t = three_crms("auth").await;
    let http = reqwest::Client::new();
    let p = t.stack.info.crm.pipedrive.clone().unwrap();
    let z = t.stack.info.crm.zoho.clone().unwrap();
    let token_calls = || async {
        let stats: Value = http
            .get(format!("{}/__admin/stats", z.base_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["by_route"]["POST /oauth/v2/token"]
            .as_u64()
            .unwrap_or(0)
    };

    // Every access token expired: the next lead refreshes once, and syncs.
    let before = token_calls().await;
    http.post(format!("{}/__admin/oauth/expire", z.base_url))
        .send()
        .await
        .unwrap();
    let (status, body) = t
        .post(&lead("evt_a0", json!({"email": "fresh@x.io"})))
        .await;
    assert_eq!(status, 202, "{body}");
    t.wait_status("evt_a0@zoho", LedgerStatus::Synced).await;
    assert_eq!(
        token_calls().await,
        before + 1,
        "one refresh for an expired access token"
    );

    // Pipedrive answers 429 twice; Zoho's grant is revoked.
    http.post(format!("{}/__admin/faults", p.base_url))
        .json(&json!({"kind": "error", "status": 429, "probability": 1.0, "count": 2, "retry_after": 1}))
        .send()
        .await
        .unwrap();
    http.post(format!("{}/__admin/oauth/revoke", z.base_url))
        .send()
        .await
        .unwrap();
    let revoked_at = token_calls().await;
    let (status, body) = t.post(&lead("evt_a1", json!({"email": "rate@x.io"}))).await;
    assert_eq!(status, 202, "{body}");
    // Rate limits delay a lead; they never kill it.
    t.wait_status("evt_a1@pipedrive", LedgerStatus::Synced)
        .await;
    let dead = t.wait_status("evt_a1@zoho", LedgerStatus::Dead).await;
    let reason = dead.last_error.expect("a reason");
    assert_eq!(reason.code, "auth_revoked", "{reason:?}");
    let (subject, message) = t
        .alert_where("the dead letter's alert", |_, m| m.contains("auth_revoked"))
        .await;
    assert!(
        subject.contains("zoho") || message.contains("zoho"),
        "the alert names the connection: {subject}\n{message}"
    );
    // A second lead meets the remembered refusal: no new refresh attempt.
    let (status, _) = t
        .post(&lead("evt_a2", json!({"email": "again@x.io"})))
        .await;
    assert_eq!(status, 202);
    t.wait_status("evt_a2@zoho", LedgerStatus::Dead).await;
    let asked = token_calls().await - revoked_at;
    assert!(
        asked <= 1,
        "a revoked grant is asked once, not stormed: {asked} token calls"
    );
    // HubSpot, on the same route, was not held up.
    t.wait_status("evt_a1@hubspot", LedgerStatus::Synced).await;
}

/// Zoho lets one refresh token mint 10 access tokens per 10 minutes: the
/// worker instances (the stack's, and three more adapters, as more Lambda
/// instances have) share one access token through the ledger table and mint
/// it once between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_instances_share_one_zoho_access_token_through_the_ledger() {
    use lb_pipeline::Connections;
    let t = three_crms("zohoshare").await;
    let z = t.stack.info.crm.zoho.clone().expect("zoho sim");
    let config = lb_config::Config::parse_local(&format!(
        "version = 1\n\n[connections.zoho]\nkind = \"zoho\"\nsecret = \"{}\"\n\
         accounts_url = \"{}\"\n\n[[routes]]\nbot_id = \"*\"\nconnections = [\"zoho\"]\n",
        z.secret_id, z.accounts_url
    ))
    .expect("config");
    let before: Value = reqwest::get(format!("{}/__admin/oauth", z.base_url))
        .await
        .expect("zoho admin")
        .json()
        .await
        .expect("json");
    let instance = || t.stack.another_instance(&config).expect("connections");
    let instances: Vec<lb_pipeline::CrmSet> = (0..3).map(|_| instance()).collect();
    async fn probe(set: &lb_pipeline::CrmSet) {
        let crm = set.crm_for(Some("zoho")).expect("zoho");
        for _ in 0..3 {
            lb_crm::connections::probe(crm).await.expect("zoho answers");
        }
    }
    tokio::join!(
        probe(&instances[0]),
        probe(&instances[1]),
        probe(&instances[2])
    );
    let after: Value = reqwest::get(format!("{}/__admin/oauth", z.base_url))
        .await
        .expect("zoho admin")
        .json()
        .await
        .expect("json");
    // The stack's own worker minted one at its start and shared it; the three
    // new instances took it from the ledger instead of minting their own.
    assert!(before["mints_in_window"].as_u64().unwrap() <= 1, "{before}");
    assert_eq!(
        after["mints_in_window"], 1,
        "four instances, one access token: {before} → {after}"
    );
}

/// A deal the CRM's admin did not set up for is refused on each CRM before
/// the person or the note is written, with a reason naming the stage (or, for
/// Salesforce Leads, why no Opportunity can be made); the webhook target,
/// which keeps no deals, still gets the lead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deal_stage_a_crm_does_not_have_is_refused_on_every_crm_before_anything_is_written() {
    let t = three_crms("stages").await;
    let mut ev = lead(
        "evt_stg",
        json!({"email": "stage.less@example.pt", "phone": "+351912000111", "name": "Stella Ge"}),
    );
    ev["crm_target"] = json!({"create_deal": true, "deal_stage": "Signed Contract"});
    let (status, body) = t.post(&ev).await;
    assert_eq!(status, 202, "{body}");
    for (crm, code) in [
        ("hubspot", "bad_deal_stage"),
        ("pipedrive", "bad_deal_stage"),
        ("zoho", "bad_deal_stage"),
        ("salesforce", "deals_need_contacts"),
    ] {
        let dead = t
            .wait_status(&format!("evt_stg@{crm}"), LedgerStatus::Dead)
            .await;
        let reason = dead.last_error.expect("a reason");
        assert_eq!(reason.code, code, "{crm}: {reason:?}");
        assert!(
            reason.message.contains("nothing was written"),
            "{crm}: {reason:?}"
        );
        if code == "bad_deal_stage" {
            assert!(
                reason.message.contains("\"Signed Contract\""),
                "{crm} names the stage: {reason:?}"
            );
        }
    }
    t.wait_status("evt_stg@hook", LedgerStatus::Synced).await;
    assert!(t.hubspot_all("contacts", "").await.is_empty(), "HubSpot");
    assert!(pipedrive_people(&t).await.is_empty(), "Pipedrive");
    assert!(zoho_people(&t).await.is_empty(), "Zoho");
    assert!(
        salesforce_people(&t, "stage.less@example.pt")
            .await
            .is_empty(),
        "Salesforce"
    );
}

/// The deal an event asks for carries its amount and close date into every
/// CRM's own fields (HubSpot `amount`/`closedate`, Pipedrive
/// `value`/`expected_close_date`, Zoho `Amount`/`Closing_Date`, Salesforce
/// `Amount`/`CloseDate`), read back through each CRM's API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deal_carries_its_amount_and_close_date_into_every_crm() {
    let config = CONFIG.replace(
        "login_url = \"{salesforce_login_url}\"\n",
        "login_url = \"{salesforce_login_url}\"\nobject = \"Contact\"\n",
    );
    assert_ne!(config, CONFIG, "the Salesforce connection writes Contacts");
    let t = start("dealvalue", |o| o.config_toml = Some(config)).await;
    let email = "deal.maker@example.pt";
    let mut ev = lead(
        "evt_amt",
        json!({"email": email, "name": "Dora Maker", "company": "Maker Lda"}),
    );
    ev["crm_target"] = json!({
        "create_deal": true, "deal_amount": "1250.50", "deal_close_date": "2026-12-31"
    });
    let (status, body) = t.post(&ev).await;
    assert_eq!(status, 202, "{body}");
    synced_everywhere(&t, "evt_amt").await;

    let deals = t
        .hubspot_all("deals", "&properties=amount,closedate,dealname")
        .await;
    assert_eq!(deals.len(), 1, "{deals:?}");
    assert_eq!(deals[0]["properties"]["amount"], "1250.5", "{deals:?}");
    assert!(
        deals[0]["properties"]["closedate"]
            .as_str()
            .is_some_and(|d| d.starts_with("2026-12-31T00:00:00")),
        "{deals:?}"
    );

    let pipedrive = Rest::pipedrive(&t).await.get("/api/v2/deals").await;
    let d = &pipedrive["data"][0];
    assert_eq!(
        pipedrive["data"].as_array().map(Vec::len),
        Some(1),
        "{pipedrive}"
    );
    assert_eq!(
        (d["value"].as_f64(), d["expected_close_date"].as_str()),
        (Some(1250.5), Some("2026-12-31")),
        "{d}"
    );

    let zoho = Rest::zoho(&t)
        .await
        .get("/Deals?fields=Deal_Name,Amount,Closing_Date&per_page=200")
        .await;
    let d = &zoho["data"][0];
    assert_eq!(zoho["data"].as_array().map(Vec::len), Some(1), "{zoho}");
    assert_eq!(
        (d["Amount"].as_f64(), d["Closing_Date"].as_str()),
        (Some(1250.5), Some("2026-12-31")),
        "{d}"
    );

    let opportunities = Rest::salesforce(&t)
        .await
        .soql("SELECT Id, Amount, CloseDate FROM Opportunity")
        .await;
    assert_eq!(opportunities.len(), 1, "{opportunities:?}");
    let o = &opportunities[0];
    assert_eq!(
        (o["Amount"].as_f64(), o["CloseDate"].as_str()),
        (Some(1250.5), Some("2026-12-31")),
        "{o}"
    );
}
