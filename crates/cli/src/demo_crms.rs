//! `make demo`, part three: one lead routed to HubSpot, Pipedrive, Zoho CRM and Salesforce
//! at once (a config file's fan-out), delivered twice, and what each CRM made
//! of it: one record, one note.

use std::time::Duration;

use lb_local::client::{eventually, StackClient};
use lb_local::{LocalStack, StackOptions};
use lb_pipeline::LedgerStatus;
use serde_json::{json, Value};

/// The routed stack's config: one route, four CRMs.
const CONFIG: &str = r#"
version = 1

[connections.hubspot]
kind = "hubspot"
secret = "{hs_secret}"
base_url = "{hubspot_url}"

[connections.pipedrive]
kind = "pipedrive"
secret = "{pipedrive_secret}"
base_url = "{pipedrive_url}"

[connections.zoho]
kind = "zoho"
secret = "{zoho_secret}"
accounts_url = "{zoho_accounts_url}"

[connections.salesforce]
kind = "salesforce"
secret = "{salesforce_secret}"
login_url = "{salesforce_login_url}"

[[routes]]
bot_id = "*"
connections = ["hubspot", "pipedrive", "zoho", "salesforce"]
"#;

pub async fn run(first: &LocalStack) -> anyhow::Result<()> {
    println!("\n== 7. One lead, four CRMs (a route fanned out to HubSpot, Pipedrive, Zoho and Salesforce) ==");
    let prefix = "leadbridge-demo-crms";
    let hs_secret = format!("{prefix}/hubspot-token");
    let mut opts = StackOptions {
        prefix: prefix.into(),
        moto: Some(first.moto.clone()),
        ..StackOptions::default()
    };
    opts.secrets = vec![(hs_secret.clone(), opts.sim.token.clone())];
    opts.config_toml = Some(CONFIG.replace("{hs_secret}", &hs_secret));
    let stack = LocalStack::start(opts).await?;
    let client = StackClient::new(stack.info.clone());
    let lead = json!({
        "event_id": "evt_demo_four_crms",
        "event_type": "lead.created",
        "occurred_at": chrono::Utc::now().to_rfc3339(),
        "bot_id": "bot_demo",
        "conversation_id": "conv_four",
        "visitor": {"email": "Lucia.Romero@Example.es", "phone": "+34 612 345 678", "name": "Lucía Romero"},
        "transcript": {"summary": "Wants a demo for a team of 40", "messages": 9}
    });
    for attempt in ["sent", "sent again (a vendor retry)"] {
        let (status, answer) = client.post(&lead).await?;
        println!("  POST /v1/events {attempt}: {status} {answer}");
    }
    let ledger = stack.ledger();
    for connection in ["hubspot", "pipedrive", "zoho", "salesforce"] {
        let id = format!("evt_demo_four_crms@{connection}");
        let rec =
            eventually(
                &format!("{id} to be synced"),
                Duration::from_secs(60),
                || {
                    let (ledger, id) = (ledger.clone(), id.clone());
                    async move {
                        ledger.get(&id).await.ok().flatten().filter(|r| {
                            matches!(r.status, LedgerStatus::Synced | LedgerStatus::Dead)
                        })
                    }
                },
            )
            .await?;
        let outcome = rec.outcome.clone();
        println!(
            "  {connection:<10} {:<7} record {:<22} note {}",
            rec.status.as_str(),
            outcome
                .as_ref()
                .map_or("-".into(), |o| o.contact_id.clone()),
            outcome
                .as_ref()
                .and_then(|o| o.note_id.clone())
                .unwrap_or_else(|| "-".into())
        );
    }
    // What each CRM holds, read through its own API.
    let http = reqwest::Client::new();
    let hubspot = client.hubspot_all("contacts", "").await?.len();
    let pd = stack.info.crm.pipedrive.clone().expect("pipedrive sim");
    let persons: Value = http
        .get(format!("{}/api/v2/persons", pd.base_url))
        .header("x-api-token", &pd.token)
        .send()
        .await?
        .json()
        .await?;
    let zoho_stats: Value = http
        .get(format!(
            "{}/__admin/stats",
            stack.info.crm.zoho.as_ref().expect("zoho sim").base_url
        ))
        .send()
        .await?
        .json()
        .await?;
    println!(
        "  HubSpot contacts: {hubspot}; Pipedrive persons: {}; Zoho upsert calls: {} — one person in each \
         CRM; the second delivery was answered as a duplicate and written nowhere",
        persons["data"].as_array().map_or(0, Vec::len),
        zoho_stats["by_route"]["POST /crm/v8/Contacts/upsert"]
    );
    stack.shutdown().await;
    Ok(())
}
