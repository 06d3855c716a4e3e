//! The simulator's whole mutable state behind one `std` mutex (never held
//! across an await), the in-flight counter for the concurrency limit, and the
//! shutdown signal that releases requests held by timeout faults.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::oauth::OAuth;
use super::schema::Schema;
use super::store::Store;
use super::ZohoSimConfig;
use crate::faults::Faults;
use crate::server::ShutdownSignal;

/// Request counters for `GET /__admin/stats`.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    total: u64,
    by_route: BTreeMap<String, u64>,
    pub rate_limited: u64,
    pub faulted: u64,
}

impl Stats {
    pub(crate) fn record(&mut self, route: &str) {
        self.total += 1;
        *self.by_route.entry(route.to_owned()).or_default() += 1;
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "total": self.total,
            "by_route": self.by_route,
            "rate_limited": self.rate_limited,
            "faulted": self.faulted,
        })
    }
}

#[derive(Debug)]
pub(crate) struct State {
    pub config: ZohoSimConfig,
    pub schema: Schema,
    pub store: Store,
    pub faults: Faults,
    pub oauth: OAuth,
    pub stats: Stats,
    /// The API domain token answers name (the simulator's own address once
    /// it listens; else the request's `Host`).
    pub api_domain: Option<String>,
}

impl State {
    pub(crate) fn new(config: ZohoSimConfig) -> State {
        State {
            config,
            schema: Schema::default(),
            store: Store::default(),
            faults: Faults::default(),
            oauth: OAuth::default(),
            stats: Stats::default(),
            api_domain: None,
        }
    }

    /// `POST /__admin/reset`: records, notes, counters, faults, tokens and the
    /// schema back to a fresh start; the config (and the grant) are kept.
    pub(crate) fn reset(&mut self) {
        let config = self.config.clone();
        let api_domain = self.api_domain.take();
        *self = State {
            api_domain,
            ..State::new(config)
        };
    }

    /// The instant search sees records as of.
    pub(crate) fn search_cutoff(&self, now: Instant) -> Instant {
        now.checked_sub(Duration::from_millis(self.config.search_lag_ms))
            .unwrap_or(now)
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Requests admitted and not yet answered (the concurrency limit).
    in_flight: AtomicU32,
    pub(crate) shutdown: ShutdownSignal,
}

pub(crate) type App = Arc<Shared>;

impl Shared {
    pub(crate) fn new(config: ZohoSimConfig) -> App {
        Arc::new(Shared {
            state: Mutex::new(State::new(config)),
            in_flight: AtomicU32::new(0),
            shutdown: ShutdownSignal::default(),
        })
    }

    /// Locks the state. Poisoning is ignored: a panic cannot leave a
    /// simulator's state half-updated in a way that matters.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes a concurrency slot when fewer than `limit` are taken.
    pub(crate) fn try_enter(self: &Arc<Self>, limit: u32) -> Option<InFlight> {
        self.in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| InFlight(self.clone()))
    }
}

/// A concurrency slot, given back when dropped (also when the client gives up).
pub(crate) struct InFlight(App);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_slots_are_given_back_when_dropped() {
        let app = Shared::new(ZohoSimConfig::default());
        let a = app.try_enter(2).expect("first");
        let b = app.try_enter(2).expect("second");
        assert!(app.try_enter(2).is_none());
        drop(a);
        let c = app.try_enter(2).expect("freed");
        drop((b, c));
        assert_eq!(app.in_flight.load(Ordering::SeqCst), 0);
    }
}
