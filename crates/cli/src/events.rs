//! Sample Lambda events for `cargo lambda invoke --data-file`: an API Gateway
//! (HTTP API) request for ingest, an SQS batch for the worker, a dead-letter batch
//! for the dlq-alerter. Built from the canonical samples in events/leads/.

use std::path::Path;

use anyhow::Context;
use lb_domain::QueuedLead;
use serde_json::{json, Value};

fn apigw(body: &[u8], signature: &str) -> Value {
    let now = chrono::Utc::now();
    json!({
        "version": "2.0",
        "routeKey": "POST /v1/events",
        "rawPath": "/v1/events",
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "content-length": body.len().to_string(),
            "host": "abc123.execute-api.us-east-1.amazonaws.com",
            "leadbridge-signature": signature,
            "user-agent": "acme-chatbot/2.3"
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {"method": "POST", "path": "/v1/events", "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.10", "userAgent": "acme-chatbot/2.3"},
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "POST /v1/events",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.timestamp_millis()
        },
        "body": String::from_utf8_lossy(body),
        "isBase64Encoded": false
    })
}

fn sqs_record(
    i: usize,
    queue: &str,
    body: String,
    group: &str,
    dedup: &str,
    attrs: Value,
) -> Value {
    let now = chrono::Utc::now().timestamp_millis().to_string();
    json!({
        "messageId": format!("059f36b4-87a3-44ab-83d2-66197590{i:04}"),
        "receiptHandle": format!("AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a-sample-{i}"),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": now,
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": now,
            "MessageGroupId": group,
            "MessageDeduplicationId": dedup,
            "SequenceNumber": format!("1878765183637383{i:04}")
        },
        "messageAttributes": attrs,
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": format!("arn:aws:sqs:us-east-1:123456789012:{queue}"),
        "awsRegion": "us-east-1"
    })
}

fn queued(path: &Path) -> anyhow::Result<QueuedLead> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let event = lb_vendors::canonical::parse(&raw)
        .map_err(|e| anyhow::anyhow!("{}: {e:?}", path.display()))?;
    QueuedLead::new(event, chrono::Utc::now()).context("sample has no identity")
}

pub fn write_all(leads: &Path, out: &Path, secret: &str) -> anyhow::Result<()> {
    write_all_as(leads, out, secret, true)
}

/// [`write_all`], saying what it wrote when `announce`.
pub fn write_all_as(leads: &Path, out: &Path, secret: &str, announce: bool) -> anyhow::Result<()> {
    let write = |path: &Path, v: &Value| -> anyhow::Result<()> {
        std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
        std::fs::write(path, serde_json::to_string_pretty(v)? + "\n")?;
        if announce {
            println!("wrote {}", path.display());
        }
        Ok(())
    };
    let now = chrono::Utc::now().timestamp();
    for (sample, name) in [
        ("01-new-lead.json", "post-new-lead.json"),
        ("06-invalid-no-identity.json", "post-invalid-lead.json"),
    ] {
        let body = std::fs::read(leads.join(sample))?;
        let sig = lb_vendors::signature::sign(secret, now, &body);
        write(&out.join("apigw").join(name), &apigw(&body, &sig))?;
    }
    let body = std::fs::read(leads.join("01-new-lead.json"))?;
    write(
        &out.join("apigw/post-bad-signature.json"),
        &apigw(&body, &format!("t={now},v1={}", "0".repeat(64))),
    )?;

    let records: Vec<Value> = [
        "01-new-lead.json",
        "02-whatsapp-lead.json",
        "03-same-person-again.json",
    ]
    .iter()
    .enumerate()
    .map(|(i, f)| {
        let q = queued(&leads.join(f))?;
        let group = q.contact_key.hashed();
        Ok(sqs_record(
            i,
            "leadbridge-leads.fifo",
            q.to_json(),
            &group,
            q.event.event_id.as_str(),
            json!({}),
        ))
    })
    .collect::<anyhow::Result<_>>()?;
    write(
        &out.join("sqs/worker-batch.json"),
        &json!({"Records": records}),
    )?;

    let q = queued(&leads.join("05-rejected-by-crm.json"))?;
    let s = |v: &str| json!({"stringValue": v, "stringListValues": [], "binaryListValues": [], "dataType": "String"});
    let attrs = json!({
        "leadbridge-event-id": s(q.event.event_id.as_str()),
        "leadbridge-error-class": s("permanent"),
        "leadbridge-error-code": s("crm_rejected"),
        "leadbridge-error-message": s("Property values were not valid: [{\"isValid\":false,\"message\":\"Property \\\"favourite_colour\\\" does not exist\",\"error\":\"PROPERTY_DOESNT_EXIST\",\"name\":\"favourite_colour\"}]"),
        "leadbridge-crm": s("hubspot"),
        "leadbridge-http-status": s("400"),
        "leadbridge-attempts": s("1")
    });
    let group = q.contact_key.hashed();
    let dedup = format!("{}-1", q.event.event_id);
    let dlq = vec![sqs_record(
        0,
        "leadbridge-leads-dlq.fifo",
        q.to_json(),
        &group,
        &dedup,
        attrs,
    )];
    write(&out.join("sqs/dlq-batch.json"), &json!({"Records": dlq}))?;
    // The template's hourly schedule, as EventBridge invokes the worker.
    write(
        &out.join("schedule/hourly-check.json"),
        &json!({
            "version": "0",
            "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": "2026-11-29T22:00:00Z",
            "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/leadbridge-HourlyCheck"],
            "detail": {}
        }),
    )?;
    Ok(())
}
