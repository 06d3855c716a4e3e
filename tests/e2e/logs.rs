use std::time::Duration;

use lb_pipeline::LedgerStatus;
use lb_tests::{capture_logs, eventually, lead, start};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_flow_logs_no_email_phone_name_token_or_secret() {
    let logs = capture_logs();
    let t = start("leak", |_| {}).await;
    let visitor = json!({"email": "Zara.Quill@LeakTest-Corp.example", "phone": "+44 20 7946 0958",
                         "name": "Zara Quillfeather", "company": "Quillfeather Holdings"});
    // Synced after a transient failure (retry path).
    t.admin(
        Method::POST,
        "faults",
        Some(json!({"kind": "error", "status": 503, "probability": 1.0, "count": 1})),
    )
    .await;
    let (s, _) = t.post(&lead("evt_leak_ok", visitor.clone())).await;
    assert_eq!(s, 202);
    t.wait_status("evt_leak_ok", LedgerStatus::Synced).await;
    // Rejected by HubSpot: dead letter, ledger, alert.
    let mut rejected = lead(
        "evt_leak_dead",
        json!({"email": "ignatius.vex@LeakTest-Corp.example",
        "phone": "+1 415 555 0199", "name": "Ignatius Vex"}),
    );
    rejected["answers"] = json!({"favourite_colour": "teal"});
    let (s, _) = t.post(&rejected).await;
    assert_eq!(s, 202);
    t.wait_status("evt_leak_dead", LedgerStatus::Dead).await;
    eventually("the alert", Duration::from_secs(20), || async {
        (!t.alerts().await.is_empty()).then_some(())
    })
    .await;
    // Rejected at the door: a bad signature and an invalid email.
    let body = serde_json::to_vec(&lead("evt_leak_401", visitor.clone())).unwrap();
    t.post_raw(
        body,
        &[
            ("content-type", "application/json"),
            ("leadbridge-signature", "t=1,v1=00"),
        ],
    )
    .await;
    let (s, _) = t
        .post(&lead(
            "evt_leak_422",
            json!({"email": "Zara.Quill@@LeakTest-Corp.example"}),
        ))
        .await;
    assert_eq!(s, 422);

    // The template's RejectionsMetricFilter counts this line:
    // `{ $.fields.message = "webhook rejected" && $.fields.status >= 400 && $.fields.status != 401 }`.
    let raw = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    let refused: Vec<serde_json::Value> = raw
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "webhook rejected")
        .collect();
    assert!(
        refused.iter().any(|v| v["fields"]["status"] == 422),
        "the rejection's log line has the shape the metric filter reads: {refused:?}"
    );
    assert!(refused.iter().any(|v| v["fields"]["status"] == 401));
    let text = raw.to_lowercase();
    assert!(
        text.contains("evt_leak_ok") && text.contains("evt_leak_dead"),
        "the flow's logs were captured"
    );
    let secrets = [
        t.secret().to_string(),
        t.stack.info.crm.hubspot.token.clone(),
    ];
    for needle in [
        "zara.quill",
        "leaktest-corp.example",
        "2079460958",
        "7946 0958",
        "4155550199",
        "zara",
        "quillfeather",
        "ignatius",
        "vex@",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(secrets)
    {
        assert!(
            !text.contains(&needle.to_lowercase()),
            "a log line contains {needle:?}"
        );
    }
}
