//! `make demo`, part two: leads arriving natively, as the vendors send them — a
//! WhatsApp conversation (the first message from a click-to-WhatsApp ad, one
//! message redelivered by Meta) and an Intercom lead — and what HubSpot made of them.

use std::time::Duration;

use lb_local::client::{eventually, StackClient};
use lb_local::LocalStack;
use lb_pipeline::LedgerStatus;
use lb_vendors::source::{read_signed, Parsed, Sample, SourceContext, SourceOptions};
use serde_json::{json, Value};

/// One vendor delivery sent: what, to which source, the answer, its event id.
struct Delivery {
    source: &'static str,
    label: String,
    status: u16,
    event_id: String,
}

async fn send(
    client: &StackClient,
    source: &'static str,
    label: String,
    content_type: &str,
    body: Vec<u8>,
) -> anyhow::Result<Delivery> {
    let (kind, url, secret) = client.source(source)?;
    let options = SourceOptions::default();
    let cx = SourceContext {
        source,
        bot_id: "demo",
        now: chrono::Utc::now(),
        options: &options,
    };
    let event_id = match read_signed(kind, &cx, &url, &secret, content_type, &body) {
        Ok(Parsed::Leads(l)) => l[0]["event_id"].as_str().unwrap_or("?").to_string(),
        _ => "?".into(),
    };
    let (status, _, _) = client
        .send_signed(source, kind, &url, &secret, content_type, body)
        .await?;
    Ok(Delivery {
        source,
        label,
        status,
        event_id,
    })
}

pub async fn run(stack: &LocalStack, client: &StackClient) -> anyhow::Result<()> {
    let now = chrono::Utc::now() - chrono::Duration::seconds(120);
    let phone = "+16505550123";
    let (wa, _, _) = client.source("whatsapp")?;
    let messages = [
        "Hi! I saw your ad. Is the Pro plan available in Lisbon?",
        "How much is it per seat?",
        "Great, can someone call me tomorrow?",
    ];
    let mut sent = Vec::new();
    for (i, text) in messages.iter().enumerate() {
        let id = format!("wamid.demo-{i}");
        let (ct, body) = wa.sample(
            &Sample {
                vendor_id: &id,
                name: "Sheena Nelson",
                email: "",
                phone,
                text,
                at: now + chrono::Duration::seconds(20 * i as i64),
            },
            &SourceOptions::default(),
        );
        let mut body: Value = serde_json::from_slice(&body)?;
        let mut label = format!("WhatsApp message {}", i + 1);
        if i == 0 {
            // Meta's referral object: the visitor came from a click-to-WhatsApp ad.
            body["entry"][0]["changes"][0]["value"]["messages"][0]["referral"] = json!({
                "source_url": "https://fb.me/3cr4Wqqkv",
                "source_id": "120214388876350123",
                "source_type": "ad",
                "headline": "Pro plan: 30 days free",
                "body": "Chat with us on WhatsApp",
                "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4XvnO2E4Nx0-eM-GABDLOPaOdRMv-_zfUQ2a",
            });
            label.push_str(" (from an ad)");
        }
        let body = serde_json::to_vec(&body)?;
        sent.push(send(client, "whatsapp", label, &ct, body.clone()).await?);
        if i == 1 {
            sent.push(
                send(
                    client,
                    "whatsapp",
                    "WhatsApp message 2 (redelivered by Meta)".into(),
                    &ct,
                    body,
                )
                .await?,
            );
        }
    }
    let (ic, _, _) = client.source("intercom")?;
    let (ct, body) = ic.sample(
        &Sample {
            vendor_id: "notif_demo-0001",
            name: "Grace Hopper",
            email: "grace@example.com",
            phone: "+14155550188",
            text: "",
            at: now,
        },
        &SourceOptions::default(),
    );
    sent.push(
        send(
            client,
            "intercom",
            "Intercom contact.lead.created".into(),
            &ct,
            body,
        )
        .await?,
    );

    for d in &sent {
        let ledger = stack.ledger();
        let id = d.event_id.clone();
        eventually(
            &format!("{} to be synced", d.event_id),
            Duration::from_secs(90),
            || {
                let ledger = ledger.clone();
                let id = id.clone();
                async move {
                    let recs = ledger.deliveries(&id).await.ok()?;
                    recs.iter()
                        .any(|r| matches!(r.status, LedgerStatus::Synced | LedgerStatus::Dead))
                        .then_some(())
                }
            },
        )
        .await?;
    }

    println!("\n== 6. Native sources: the vendors' own webhooks ==");
    for d in &sent {
        println!(
            "  POST /v1/sources/{:<9} {:<42} {}",
            d.source, d.label, d.status
        );
    }
    let contacts = client
        .hubspot_all(
            "contacts",
            "&associations=notes&properties=email,phone,firstname,lastname,leadbridge_channel,leadbridge_ad_click_id,leadbridge_ad_headline,leadbridge_last_inbound_at",
        )
        .await?;
    for c in contacts.iter().filter(|c| {
        c["properties"]["phone"] == phone || c["properties"]["email"] == "grace@example.com"
    }) {
        let p = &c["properties"];
        let s = |k: &str| p[k].as_str().unwrap_or("-").to_string();
        let notes: Vec<String> = c["associations"]["notes"]["results"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|n| n["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "  contact {} {} {} ({}), channel {}, {} note(s)",
            c["id"].as_str().unwrap_or(""),
            s("firstname"),
            s("lastname"),
            if s("email") == "-" {
                s("phone")
            } else {
                s("email")
            },
            s("leadbridge_channel"),
            notes.len()
        );
        if s("leadbridge_ad_click_id") != "-" {
            println!(
                "    from ad {:?} (ctwa_clid {}…), last message {}",
                s("leadbridge_ad_headline"),
                &s("leadbridge_ad_click_id")[..12.min(s("leadbridge_ad_click_id").len())],
                s("leadbridge_last_inbound_at")
            );
        }
        for id in notes {
            let note = client
                .hubspot(&format!(
                    "/crm/v3/objects/notes/{id}?properties=hs_note_body"
                ))
                .await?;
            let body = note["properties"]["hs_note_body"].as_str().unwrap_or("");
            for line in note_lines(body) {
                println!("    | {line}");
            }
        }
    }
    Ok(())
}

/// A note's paragraphs as plain text lines (the footer's tags left out).
fn note_lines(html: &str) -> Vec<String> {
    html.split("</p>")
        .map(|p| {
            let mut out = String::new();
            let mut in_tag = false;
            for c in p.chars() {
                match c {
                    '<' => in_tag = true,
                    '>' => in_tag = false,
                    c if !in_tag => out.push(c),
                    _ => {}
                }
            }
            out.replace("&amp;", "&")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
        })
        .filter(|l| !l.trim().is_empty() && !l.starts_with("Ref: "))
        .collect()
}
