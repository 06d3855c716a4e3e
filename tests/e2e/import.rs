//! `leadbridge import`: a CSV backfill through the local stack; bad rows are
//! reported by line; a re-run of the same file sends nothing twice.

use std::time::Duration;

use lb_local::import::{self, Defaults, Target};
use lb_tests::{eventually, start};

const CSV: &str = "email,phone,name,company,budget\n\
    import.ada@example.com,+14155552671,Ada Lovelace,Analytical,50k\n\
    not-an-email,,Bad Row,,\n\
    import.grace@example.com,,Grace Hopper,Navy,10k\n\
    import.alan@example.com,+442079460000,Alan Turing,,\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_is_checked_first_sent_once_and_a_rerun_sends_nothing_twice() {
    // The worker waits until every row is on the bulk queue: one batch then takes them.
    let t = start("import", |o| {
        o.worker_paused = true;
        o.bulk_window = Duration::from_secs(1);
    })
    .await;
    let defaults = Defaults {
        bot_id: Some("bot_import".into()),
        occurred_at: chrono::Utc::now() - chrono::Duration::days(30),
        event_type: "lead.created".into(),
    };
    let checked = import::check(
        import::read_csv(CSV).unwrap(),
        Vec::new(),
        &defaults,
        chrono::Utc::now(),
    );
    assert_eq!(checked.invalid.len(), 1);
    assert!(checked
        .report()
        .starts_with("line 3: visitor.email (invalid_email)"));
    assert_eq!(checked.valid.len(), 3);

    let target = Target {
        ingest_url: t.stack.info.ingest_url.clone(),
        secret: t.stack.info.webhook_secret.clone(),
        lane: lb_domain::Lane::Bulk,
    };
    let first = import::send(&target, &checked.valid, 4, || {}).await;
    assert_eq!((first.queued, first.duplicates), (3, 0), "{first:?}");
    assert!(
        first.refused.is_empty() && first.failed.is_empty(),
        "{first:?}"
    );
    t.stack.resume_worker();
    let contacts = eventually(
        "three contacts with their notes",
        Duration::from_secs(40),
        || async {
            let c = t
                .hubspot_all("contacts", "&properties=email&associations=notes")
                .await;
            let done = c.len() == 3
                && c.iter().all(|c| {
                    c["associations"]["notes"]["results"]
                        .as_array()
                        .is_some_and(|n| n.len() == 1)
                });
            done.then_some(c)
        },
    )
    .await;
    assert_eq!(contacts.len(), 3);
    // Through the bulk lane, the three rows were one batch: one call per kind.
    let stats = t.admin(reqwest::Method::GET, "stats", None).await;
    for route in [
        "POST /crm/v3/objects/contacts/batch/upsert",
        "POST /crm/v3/objects/notes/batch/create",
        "POST /crm/v3/objects/contacts/search",
    ] {
        assert_eq!(stats["by_route"][route], 1, "{route}: {stats}");
    }

    // The same file again: every row is already known.
    let again = import::check(
        import::read_csv(CSV).unwrap(),
        Vec::new(),
        &defaults,
        chrono::Utc::now(),
    );
    let second = import::send(&target, &again.valid, 4, || {}).await;
    assert_eq!((second.queued, second.duplicates), (0, 3), "{second:?}");
    assert_eq!(t.hubspot_all("notes", "").await.len(), 3, "no note twice");
    assert_eq!(t.hubspot_all("contacts", "").await.len(), 3);
}
