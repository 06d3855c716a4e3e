//! `leadbridge doctor` against a running local stack: healthy, then with the
//! mistakes a first deployment makes (a placeholder HubSpot token, a WhatsApp
//! source without its verify token), each found with its fix.

use lb_local::doctor::{examine, render, Patient, Severity};
use lb_tests::{start, TestStack};

fn patient(t: &TestStack) -> Patient {
    let info = &t.stack.info;
    let prefix = info.table_name.strip_suffix("-ledger").unwrap().to_string();
    let mut config = lb_config::Config::parse_local(&info.default_config()).unwrap();
    config.sources = lb_local::sources::defaults(&prefix);
    Patient {
        sdk: t.stack.sdk.clone(),
        deployed: false,
        prefix,
        config,
        topic_arn: Some(info.topic_arn.clone()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_finds_a_placeholder_token_and_a_missing_verify_token_with_their_fixes() {
    let t = start("doctor", |_| {}).await;
    let healthy = examine(&patient(&t)).await;
    let (text, failed) = render(&healthy);
    assert!(!failed, "a fresh local stack is healthy:\n{text}");
    assert!(text.contains("the token is accepted"), "{text}");
    assert!(
        text.contains("source whatsapp (whatsapp): its secret is set"),
        "{text}"
    );

    // What the template generates until someone puts the real token in.
    lb_local::resources::put_secret(
        &t.stack.sdk,
        &t.stack.info.hubspot_secret_id,
        r#"{"token": "Xk3v9QmZr2LpT8wYc4NbH7dFs6GjK1aE5uVoR0iWqB2xMnPe"}"#,
    )
    .await
    .unwrap();
    let wa = format!(
        "{}/sources/whatsapp",
        t.stack.info.table_name.strip_suffix("-ledger").unwrap()
    );
    lb_local::resources::put_secret(&t.stack.sdk, &wa, r#"{"secrets": ["app-secret"]}"#)
        .await
        .unwrap();
    let sick = examine(&patient(&t)).await;
    let (text, failed) = render(&sick);
    assert!(failed, "{text}");
    let errors: Vec<_> = sick
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert_eq!(errors.len(), 2, "{text}");
    assert!(errors[0].what.contains("generated placeholder"), "{text}");
    assert!(errors[0].fix.contains("pat-"), "{text}");
    assert!(errors[1].what.contains("no verify_token"), "{text}");
    assert!(
        !text.contains("Xk3v9QmZ"),
        "the doctor never prints a secret:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_finds_a_missing_scope_and_a_schema_drift() {
    let t = start("doctor2", |o| {
        o.sim.scopes = crm_sim::hubspot::SCOPES
            .iter()
            .filter(|s| **s != "crm.schemas.contacts.read")
            .map(|s| s.to_string())
            .collect();
    })
    .await;
    let (text, failed) = render(&examine(&patient(&t)).await);
    assert!(failed, "{text}");
    assert!(
        text.contains("the token lacks a scope") && text.contains("crm.schemas.contacts.read"),
        "{text}"
    );

    let t = start("doctor3", |_| {}).await;
    // A property the built-in mapping writes is deleted in HubSpot.
    t.admin(
        reqwest::Method::DELETE,
        "properties/contacts/leadbridge_source",
        None,
    )
    .await;
    let findings = examine(&patient(&t)).await;
    let (text, failed) = render(&findings);
    assert!(failed, "{text}");
    let drift = findings
        .iter()
        .find(|f| f.severity == Severity::Error)
        .expect("an error");
    assert!(
        drift.what.contains("would be refused") && drift.what.contains("leadbridge_source"),
        "{text}"
    );
    assert!(
        drift
            .fix
            .contains("leadbridge schema-check --connection hubspot"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_finds_alerts_nobody_reads_and_dead_letters_waiting() {
    let t = start("doctor4", |_| {}).await;
    let mut p = patient(&t);
    let sdk = t.stack.sdk.clone();
    let info = t.stack.info.clone();
    // The dlq-alerter stops (as when it keeps failing): dead letters pile up.
    t.stack.shutdown().await;
    let lead = lb_pipeline::fakes::sample_lead("evt_waiting", "waiting@example.com");
    aws_sdk_sqs::Client::new(&sdk)
        .send_message()
        .queue_url(&info.dlq_url)
        .message_body(lead.to_json())
        .message_group_id(lead.group_id())
        .message_deduplication_id("waiting-1")
        .send()
        .await
        .unwrap();
    // An alerts topic nobody subscribed to.
    let sns = lb_aws::aws_sdk_sns::Client::new(&sdk);
    let topic = sns
        .create_topic()
        .name(format!("{}-unread", p.prefix))
        .send()
        .await
        .unwrap();
    p.topic_arn = topic.topic_arn().map(str::to_string);
    let findings = examine(&p).await;
    let (text, failed) = render(&findings);
    assert!(failed, "{text}");
    assert!(
        findings.iter().any(|f| f.severity == Severity::Error
            && f.what.contains("no confirmed subscription")
            && f.fix.contains("aws sns subscribe")),
        "{text}"
    );
    assert!(
        findings.iter().any(|f| f.severity == Severity::Warning
            && f.what.contains("dead-letter queue: 1 message(s)")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_checks_pipedrive_zoho_and_salesforce_connections_with_their_own_credentials() {
    let t = start("doctor-crms", |_| {}).await;
    let info = &t.stack.info;
    let (pd, zo, sf) = (
        info.crm.pipedrive.clone().unwrap(),
        info.crm.zoho.clone().unwrap(),
        info.crm.salesforce.clone().unwrap(),
    );
    let text = format!(
        r#"version = 1
[connections.pipedrive]
kind = "pipedrive"
secret = "{}"
base_url = "{}"
[connections.zoho]
kind = "zoho"
secret = "{}"
accounts_url = "{}"
[connections.salesforce]
kind = "salesforce"
secret = "{}"
login_url = "{}"
[[routes]]
bot_id = "*"
connections = ["pipedrive", "zoho", "salesforce"]
"#,
        pd.secret_id, pd.base_url, zo.secret_id, zo.accounts_url, sf.secret_id, sf.login_url
    );
    let mut p = patient(&t);
    p.config = lb_config::Config::parse_local(&text).unwrap();
    let healthy = examine(&p).await;
    let (report, failed) = render(&healthy);
    assert!(!failed, "{report}");
    for kind in ["pipedrive", "zoho", "salesforce"] {
        assert!(
            report.contains(&format!(
                "connection {kind} ({kind}): the credentials are accepted"
            )),
            "{report}"
        );
    }

    // A Pipedrive token that is not (or no longer) valid, and a Zoho grant revoked.
    lb_local::resources::put_secret(
        &t.stack.sdk,
        &pd.secret_id,
        r#"{"api_token": "wrong-0123"}"#,
    )
    .await
    .unwrap();
    reqwest::Client::new()
        .post(format!("{}/__admin/oauth/revoke", zo.base_url))
        .send()
        .await
        .unwrap();
    let sick = examine(&p).await;
    let (report, failed) = render(&sick);
    assert!(failed, "{report}");
    let errors: Vec<_> = sick
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert_eq!(errors.len(), 2, "{report}");
    assert!(
        errors[0].what.starts_with("connection pipedrive"),
        "{report}"
    );
    assert!(errors[0].fix.contains("api_token"), "{report}");
    assert!(errors[1].what.starts_with("connection zoho"), "{report}");
    assert!(errors[1].fix.contains("refresh_token"), "{report}");
    assert!(!report.contains("wrong-0123"), "never a secret:\n{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hourly_check_alerts_a_schema_drift_once_before_a_lead_fails_on_it() {
    let t = start("hourly", |_| {}).await;
    let fine = t.stack.run_hourly_check().await;
    assert_eq!(fine.len(), 1, "{fine:?}");
    assert_eq!(fine[0]["findings"], 0, "{fine:?}");
    assert_eq!(fine[0]["alerted"], false);

    // A HubSpot admin deletes a property the mapping writes.
    t.admin(
        reqwest::Method::DELETE,
        "properties/contacts/leadbridge_source",
        None,
    )
    .await;
    let drift = t.stack.run_hourly_check().await;
    assert_eq!(drift[0]["findings"], 1, "{drift:?}");
    assert_eq!(drift[0]["alerted"], true, "{drift:?}");
    let (subject, message) = t
        .alert_where("the schema drift alert", |s, _| s.contains("schema drift"))
        .await;
    assert_eq!(
        subject,
        "[leadbridge] schema drift on hubspot: 1 property would be refused"
    );
    assert!(message.contains("leadbridge_source"), "{message}");
    assert!(
        message.contains("leadbridge schema-check --connection hubspot"),
        "{message}"
    );
    // The next hour: the same drift is not alerted again.
    let again = t.stack.run_hourly_check().await;
    assert_eq!(again[0]["alerted"], false, "{again:?}");
}
