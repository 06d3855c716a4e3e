//! The Lambdas' metrics as CloudWatch reads them: Embedded Metric Format
//! documents in the `leadbridge` namespace, one per dimension set, with the
//! counts of the invocation (and nothing carried into the next one).

use serde_json::Value;

fn documents(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("each line is one JSON document"))
        .collect()
}

fn value_of(docs: &[Value], metric: &str, dimension: Option<(&str, &str)>) -> Option<f64> {
    docs.iter()
        .filter(|d| match dimension {
            Some((k, v)) => d[k] == v,
            None => true,
        })
        .find_map(|d| {
            let declared = d["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()?
                .iter()
                .any(|m| m["Name"] == metric);
            declared.then(|| d[metric].as_f64()).flatten()
        })
}

#[test]
fn lead_flow_counters_are_emf_documents_in_the_leadbridge_namespace() {
    let collector = lb_aws::emf::install().expect("the first recorder of this process");
    lb_pipeline::telemetry::accepted("bot_a");
    lb_pipeline::telemetry::accepted("bot_a");
    lb_pipeline::telemetry::accepted("bot_b");
    lb_pipeline::telemetry::synced("hubspot", 420.0);
    lb_pipeline::telemetry::dead("zapier");
    let mut out = Vec::new();
    lb_aws::emf::flush_to(collector, &mut out);
    let docs = documents(&out);
    assert!(!docs.is_empty());
    for d in &docs {
        assert_eq!(
            d["_aws"]["CloudWatchMetrics"][0]["Namespace"], "leadbridge",
            "{d}"
        );
        assert!(d["_aws"]["Timestamp"].is_u64(), "{d}");
    }
    assert_eq!(
        value_of(&docs, "LeadsAccepted", Some(("bot", "bot_a"))),
        Some(2.0)
    );
    assert_eq!(
        value_of(&docs, "LeadsAccepted", Some(("bot", "bot_b"))),
        Some(1.0)
    );
    assert_eq!(value_of(&docs, "LeadsAcceptedTotal", None), Some(3.0));
    assert_eq!(
        value_of(&docs, "LeadsSynced", Some(("connection", "hubspot"))),
        Some(1.0)
    );
    assert_eq!(value_of(&docs, "LeadsDeadTotal", None), Some(1.0));
    assert!(out.windows(13).any(|w| w == b"SyncLatencyMs"));

    // The next invocation reports its own counts only.
    lb_pipeline::telemetry::accepted("bot_a");
    let mut next = Vec::new();
    lb_aws::emf::flush_to(collector, &mut next);
    let docs = documents(&next);
    assert_eq!(value_of(&docs, "LeadsAcceptedTotal", None), Some(1.0));
    assert_eq!(
        value_of(&docs, "LeadsSyncedTotal", None),
        None,
        "nothing synced since"
    );
}
