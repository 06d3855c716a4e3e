//! Fault hooks for the chaos suite. The hook points exist in every build; the
//! faults themselves only with the `fault-injection` feature, which the Lambda
//! builds never enable. Hooks are per worker, so one test's faults never reach
//! another's.

#[cfg(feature = "fault-injection")]
use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(feature = "fault-injection")]
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct Hooks {
    #[cfg(feature = "fault-injection")]
    crash_after_crm_write: Option<Arc<CrashEvery>>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hooks")
    }
}

/// Crashes every `every`-th sync between the CRM write and the ledger write.
#[cfg(feature = "fault-injection")]
#[derive(Debug)]
pub struct CrashEvery {
    every: u64,
    syncs: AtomicU64,
    crashes: AtomicU64,
}

#[cfg(feature = "fault-injection")]
impl CrashEvery {
    pub fn crashes(&self) -> u64 {
        self.crashes.load(Ordering::SeqCst)
    }
    /// Stops crashing (the suite's settle phase).
    pub fn disarm(&self) {
        self.syncs.store(u64::MAX / 2, Ordering::SeqCst);
    }
}

impl Hooks {
    /// No faults: what every production worker runs with.
    pub const NONE: Hooks = Hooks {
        #[cfg(feature = "fault-injection")]
        crash_after_crm_write: None,
    };

    /// Hooks that crash every `every`-th sync after the CRM write (0: never).
    #[cfg(feature = "fault-injection")]
    pub fn crash_every(every: u64) -> (Self, Arc<CrashEvery>) {
        let c = Arc::new(CrashEvery {
            every,
            syncs: AtomicU64::new(0),
            crashes: AtomicU64::new(0),
        });
        (
            Self {
                crash_after_crm_write: Some(c.clone()),
            },
            c,
        )
    }

    /// Called after the CRM took the write and before the ledger hears of it.
    /// With a crash armed, dies like a Lambda would there: a panic, which fails
    /// the whole invocation.
    pub(crate) fn after_crm_write(&self) {
        #[cfg(feature = "fault-injection")]
        if let Some(c) = &self.crash_after_crm_write {
            let n = c.syncs.fetch_add(1, Ordering::SeqCst) + 1;
            if c.every > 0 && n < u64::MAX / 2 && n % c.every == 0 {
                c.crashes.fetch_add(1, Ordering::SeqCst);
                panic!("injected crash between the CRM write and the ledger write");
            }
        }
    }
}
