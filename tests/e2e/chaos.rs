use lb_local::chaos::{run, ChaosConfig};
use lb_local::moto::Moto;

/// The reduced chaos run (`make chaos` is the full one): duplicate and concurrent
/// deliveries; people known by an email, a phone, a WhatsApp id or several, whose
/// events arrive in every order (some in the same second, some older ones last);
/// 20 % CRM 503s, 429 bursts, refused writes, calls that stall past the worker's
/// timeout, a total outage, crashes between the CRM write and the ledger write,
/// and a replay of dead events mid-run (503s and stalls on Pipedrive, Zoho and
/// Salesforce too: every event fans out to all four CRMs); a fifth of the events come as vendors'
/// own webhooks to native sources (WhatsApp and Twilio messages among them,
/// whose notes are their conversations'), and a fifth travel the bulk lane.
/// Each promise is asserted on its own, with
/// the whole table, so that a failure names the promise that broke.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_faults_crashes_and_an_outage_no_lead_is_lost_duplicated_or_overwritten_out_of_order()
{
    // A moto of its own: the run's load (every event four times) would otherwise
    // queue the other tests' AWS calls behind it on the shared emulator.
    let moto = std::sync::Arc::new(Moto::start(0).expect("moto"));
    let report = run(ChaosConfig::reduced(), Some(moto))
        .await
        .expect("chaos run");
    let table = report.table();
    println!("{table}");
    assert_eq!(
        report.accepted, report.distinct_events,
        "every event was accepted\n{table}"
    );
    assert_eq!(
        report.lost, 0,
        "every accepted event is synced or dead\n{table}"
    );
    assert_eq!(
        report.crm_duplicates, 0,
        "one CRM record per person: no two contacts hold identities of one person\n{table}"
    );
    assert_eq!(
        report.persons_without_record, 0,
        "every person with a synced event has a CRM record\n{table}"
    );
    assert_eq!(
        report.merged_people, 0,
        "no CRM record holds the identities of two people\n{table}"
    );
    assert_eq!(
        report.duplicate_notes, 0,
        "at most one note per event\n{table}"
    );
    assert_eq!(
        report.missing_notes, 0,
        "every synced event has its own note on the contact the ledger names\n{table}"
    );
    assert_eq!(
        report.out_of_order_overwrites, 0,
        "no older event overwrote the fields of a newer one\n{table}"
    );
    assert!(
        report.out_of_order_arrivals > 0,
        "an older event arrived after a newer one of the same person (the ordering guard was exercised)\n{table}"
    );
    assert!(
        report.vendor_deliveries > 0 && report.message_events > 0,
        "a share of the events came as vendors' own webhooks, messages among them\n{table}"
    );
    assert!(
        report.replayed > 0,
        "dead events were replayed mid-run\n{table}"
    );
    assert!(
        report.crashes_injected > 0,
        "the run crashed the worker\n{table}"
    );
    assert!(report.crm_faulted > 0, "the CRM failed requests\n{table}");
    assert!(
        report.bulk_deliveries > 0 && report.bulk_deliveries < report.sent,
        "both lanes were driven\n{table}"
    );
    assert!(
        report.dead_by_reason.keys().all(|r| !r.is_empty()),
        "every dead event has a reason\n{table}"
    );
    // Fanned out to all four CRMs: each one, read through its own API, holds
    // what HubSpot must.
    let crms: Vec<&str> = report.crms.iter().map(|c| c.crm.as_str()).collect();
    assert_eq!(
        crms,
        ["hubspot", "pipedrive", "zoho", "salesforce"],
        "every event went to all four CRMs\n{table}"
    );
    for c in &report.crms {
        let crm = &c.crm;
        assert_eq!(
            c.synced + c.dead + c.lost,
            report.distinct_events,
            "{crm}: one delivery per event\n{table}"
        );
        assert_eq!(c.lost, 0, "{crm}: every delivery synced or dead\n{table}");
        assert_eq!(c.duplicates, 0, "{crm}: one record per person\n{table}");
        assert_eq!(
            c.persons_without_record, 0,
            "{crm}: every person with a synced delivery has a record\n{table}"
        );
        assert_eq!(
            c.merged_people, 0,
            "{crm}: no record holds two people\n{table}"
        );
        assert_eq!(
            c.duplicate_notes, 0,
            "{crm}: at most one note per event\n{table}"
        );
        assert_eq!(
            c.missing_notes, 0,
            "{crm}: every synced delivery has its note on the record the ledger names\n{table}"
        );
        assert!(c.synced > 0, "{crm}: deliveries synced\n{table}");
        assert!(c.faulted > 0, "{crm}: the CRM failed requests\n{table}");
    }
    assert!(report.holds(), "ChaosReport::holds agrees\n{table}");
}
