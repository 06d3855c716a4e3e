//! `lb_vendors::canonical::parse` on arbitrary bytes never panics, and every
//! event it accepts goes onto the queue (`QueuedLead::new` is `Some`) and
//! comes back off it unchanged (`to_json` → `from_json` round trip).
#![no_main]

use chrono::{DateTime, Utc};
use lb_domain::QueuedLead;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = lb_vendors::canonical::parse(data) else {
        return;
    };
    let received_at: DateTime<Utc> =
        DateTime::from_timestamp(1_780_000_000, 0).expect("a valid fixed time");
    let queued = QueuedLead::new(event, received_at)
        .expect("an event canonical::parse accepted has an identity");
    let json = queued.to_json();
    let back = QueuedLead::from_json(&json)
        .unwrap_or_else(|e| panic!("queue message does not read back: {e}\n{json}"));
    assert_eq!(back, queued, "queue round trip changed the lead\n{json}");
});
