//! Fault hooks for the chaos suite (feature `fault-injection`; the Lambda builds
//! never enable it). Inert until armed.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

static CRASH_PER_MILLE: AtomicU32 = AtomicU32::new(0);
static CRASHES: AtomicU64 = AtomicU64::new(0);

/// Arms the crash between the CRM write and the ledger write, for `per_mille` of the syncs.
pub fn set_crash_after_crm_write(per_mille: u32) {
    CRASH_PER_MILLE.store(per_mille.min(1000), Ordering::SeqCst);
}

/// Crashes injected so far.
pub fn crashes() -> u64 {
    CRASHES.load(Ordering::SeqCst)
}

/// Dies like a Lambda that crashed after the CRM took the write and before the
/// ledger heard of it: a panic, which fails the whole invocation.
pub(crate) fn maybe_crash_after_crm_write() {
    let p = CRASH_PER_MILLE.load(Ordering::Relaxed);
    if p > 0 && rand::random_range(0..1000) < p {
        CRASHES.fetch_add(1, Ordering::SeqCst);
        panic!("injected crash between the CRM write and the ledger write");
    }
}
