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
    // Pipedrive's and Zoho's default stages exist; Salesforce writes Leads,
    // which get their Opportunity when converted: a warning, not a failure.
    let deals: Vec<_> = healthy
        .iter()
        .filter(|f| f.what.contains("ask for a deal"))
        .collect();
    assert_eq!(deals.len(), 1, "{report}");
    assert_eq!(deals[0].severity, Severity::Warning, "{report}");
    assert!(
        deals[0].what.starts_with("connection salesforce")
            && deals[0].what.contains("deals_need_contacts"),
        "{report}"
    );
    assert!(deals[0].fix.contains("object = \"Contact\""), "{report}");

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

/// `--stack NAME`: a deployment is found by its CloudFormation name; the
/// template's outputs say where the ledger and the queues are, and the
/// operator commands work on them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_stack_is_found_by_its_cloudformation_name() {
    use lb_local::deployed::{aws_sdk_cloudformation as cfn, DeployedStack, OUTPUTS};
    let t = start("cfnstack", |_| {}).await;
    let info = &t.stack.info;
    let prefix = info.table_name.strip_suffix("-ledger").unwrap().to_string();
    let outputs = [
        ("LedgerTableName", info.table_name.as_str()),
        ("LeadsQueueUrl", info.queue_url.as_str()),
        ("LeadsDlqUrl", info.dlq_url.as_str()),
        ("BulkQueueUrl", info.bulk_queue_url.as_str()),
        ("AlertsTopicArn", info.topic_arn.as_str()),
        ("IngestUrl", info.ingest_url.as_str()),
    ];
    // A stand-in for the real stack (moto does not run SAM transforms): the
    // same parameter and outputs, pointing at the local stack's resources.
    let template = serde_json::json!({
        "Parameters": {"Prefix": {"Type": "String"}},
        "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": outputs.iter().map(|(k, v)| (k.to_string(), serde_json::json!({"Value": v})))
            .collect::<serde_json::Map<_, _>>(),
    });
    let name = format!("{prefix}-stack");
    cfn::Client::new(&t.stack.sdk)
        .create_stack()
        .stack_name(&name)
        .template_body(template.to_string())
        .parameters(
            cfn::types::Parameter::builder()
                .parameter_key("Prefix")
                .parameter_value(&prefix)
                .build(),
        )
        .send()
        .await
        .expect("stack created");

    let stack = DeployedStack::find(&t.stack.sdk, &name)
        .await
        .expect("found");
    assert_eq!(stack.prefix().unwrap(), prefix);
    let printed = lb_local::deployed::render(&stack).unwrap();
    assert!(
        printed.contains(&format!("IngestUrl        {}", info.ingest_url)),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("--secret-id {prefix}/hubspot")),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("leadbridge doctor --stack {name}")),
        "{printed}"
    );
    let mut target = stack.ops_target().expect("a leadbridge stack");
    assert_eq!(target.table_name, info.table_name);
    assert_eq!(target.queue_url.as_deref(), Some(info.queue_url.as_str()));
    assert_eq!(target.dlq_url.as_deref(), Some(info.dlq_url.as_str()));
    assert_eq!(
        target.bulk_queue_url.as_deref(),
        Some(info.bulk_queue_url.as_str())
    );
    // The operator commands work on what the stack named (here through moto).
    target.aws_endpoint = Some(info.aws_endpoint.clone());
    target.region = Some(info.region.clone());
    let (status, _) = t
        .post(&lb_tests::lead(
            "evt_cfn",
            serde_json::json!({"email": "cfn@x.io"}),
        ))
        .await;
    assert_eq!(status, 202);
    t.wait_status("evt_cfn", lb_pipeline::LedgerStatus::Synced)
        .await;
    let ops = target.connect().await;
    let synced = ops
        .list(&lb_pipeline::ListFilter::status(
            lb_pipeline::LedgerStatus::Synced,
        ))
        .await
        .expect("listed");
    assert!(synced.iter().any(|r| r.event_id == "evt_cfn"), "{synced:?}");

    // A wrong name says what to check; the real template declares every output read.
    let missing = DeployedStack::find(&t.stack.sdk, "no-such-stack")
        .await
        .unwrap_err();
    assert!(
        missing.to_string().contains("no stack \"no-such-stack\""),
        "{missing}"
    );
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/template.yaml"
    ))
    .expect("the template");
    let declared = format!(
        "\n{}",
        template
            .split("\nOutputs:\n")
            .nth(1)
            .expect("an Outputs section")
    );
    for key in OUTPUTS {
        assert!(
            declared.contains(&format!("\n  {key}:\n")),
            "the template declares no output {key}"
        );
    }
}

/// `make deploy` runs its five documented steps in order, with the stack's
/// parameters (a dry run prints each command instead of running it).
#[test]
fn make_deploy_checks_builds_deploys_prints_the_outputs_and_runs_the_doctor() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let run = |config: &str| {
        std::process::Command::new("bash")
            .arg("scripts/deploy.sh")
            .current_dir(root)
            .env("DRY_RUN", "1")
            .env("STACK", "acme-leads")
            .env("PREFIX", "acme")
            .env("CONFIG", config)
            .env(
                "SECRET_ARNS",
                "arn:aws:secretsmanager:eu-west-1:1:secret:a,arn:b",
            )
            .env("ALERT_EMAIL", "ops@example.com")
            .output()
            .expect("bash runs")
    };
    let out = run("config/absent.toml");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let commands: Vec<&str> = text.lines().filter(|l| l.starts_with("+ ")).collect();
    let expected = [
        "+ rustup target add aarch64-unknown-linux-gnu",
        "+ sam build --template-file infra/template.yaml",
        "+ sam deploy --template-file infra/.aws-sam/build/template.yaml --stack-name acme-leads \
         --capabilities CAPABILITY_IAM --resolve-s3 --s3-prefix acme-leads --no-fail-on-empty-changeset \
         --parameter-overrides Prefix=acme UseConfigFile=false \
         ConnectionSecretArns=arn:aws:secretsmanager:eu-west-1:1:secret:a,arn:b AlertEmail=ops@example.com",
        "+ cargo run --quiet -p leadbridge -- outputs --stack acme-leads",
        "+ cargo run --quiet -p leadbridge -- doctor --stack acme-leads",
    ];
    assert_eq!(commands.len(), expected.len(), "{text}");
    for (got, want) in commands.iter().zip(expected) {
        assert!(got.starts_with(want), "wanted {want:?}\n   got {got:?}");
    }
    // The config layer packages config/leadbridge.toml only: another path is refused.
    let out = run("config/leadbridge.example.toml");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("copy config/leadbridge.example.toml there first"));
}

/// A connection's default deal stage the portal does not have: every event
/// that asks for a deal without naming a stage would be dead-lettered, so the
/// doctor fails and names the stage and the setting to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_finds_a_default_deal_stage_the_crm_does_not_have() {
    let t = start("doctor-deals", |_| {}).await;
    let mut p = patient(&t);
    let healthy = examine(&p).await;
    let (report, failed) = render(&healthy);
    assert!(!failed, "{report}");
    assert!(!report.contains("ask for a deal"), "{report}");

    let text = t.stack.info.default_config().replace(
        "kind = \"hubspot\"\n",
        "kind = \"hubspot\"\ndeal_stage = \"signed_contract\"\n",
    );
    p.config = lb_config::Config::parse_local(&text).unwrap();
    let sick = examine(&p).await;
    let (report, failed) = render(&sick);
    assert!(failed, "{report}");
    let e = sick
        .iter()
        .find(|f| f.severity == Severity::Error)
        .expect("an error");
    assert!(
        e.what.starts_with("connection hubspot")
            && e.what.contains("bad_deal_stage")
            && e.what.contains("signed_contract"),
        "{report}"
    );
    assert!(
        e.fix
            .contains("deal_pipeline and deal_stage in [connections.hubspot]"),
        "{report}"
    );

    // The pipelines cannot be read (HubSpot answers 503): a warning, not a verdict.
    t.admin(
        reqwest::Method::POST,
        "faults",
        Some(
            serde_json::json!({"kind": "error", "status": 503, "probability": 1.0,
            "route": "GET /crm/v3/pipelines/deals"}),
        ),
    )
    .await;
    let unread = examine(&p).await;
    let (report, failed) = render(&unread);
    assert!(!failed, "{report}");
    let w = unread
        .iter()
        .find(|f| f.what.contains("deal stages could not be read"))
        .expect("a warning");
    assert_eq!(w.severity, Severity::Warning, "{report}");
    assert!(
        w.fix.contains("leadbridge test-connection hubspot"),
        "{report}"
    );
}
