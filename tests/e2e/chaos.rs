use lb_local::chaos::{run, ChaosConfig};
use lb_local::moto::Moto;

/// The reduced chaos run (`make chaos` is the full one): duplicate and concurrent
/// deliveries, two events per person in the same second, 20 % CRM 503s, 429 bursts,
/// calls that stall past the worker's timeout, a total outage, and crashes between
/// the CRM write and the ledger write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_faults_crashes_and_an_outage_no_lead_is_lost_duplicated_or_overwritten_out_of_order()
{
    let moto = Moto::shared().expect("moto");
    let report = run(ChaosConfig::reduced(), Some(moto))
        .await
        .expect("chaos run");
    println!("{}", report.table());
    assert_eq!(report.lost, 0, "every accepted event is synced or dead");
    assert_eq!(report.crm_duplicates, 0, "one contact per person");
    assert_eq!(report.duplicate_notes, 0, "one note per event");
    assert_eq!(
        report.out_of_order_overwrites, 0,
        "no older event overwrote a newer one"
    );
    assert_eq!(report.accepted, report.distinct_events);
    assert!(
        report.crashes_injected > 0,
        "the run crashed the worker: {}",
        report.crashes_injected
    );
    assert!(report.crm_faulted > 0, "the CRM failed requests");
    assert!(
        report.dead_by_reason.keys().all(|r| !r.is_empty()),
        "every dead event has a reason"
    );
}
