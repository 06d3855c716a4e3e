//! The simulator's whole mutable state behind one mutex, plus the shutdown
//! signal that releases requests held by timeout faults.
//!
//! The mutex is a `std` one: handlers lock, work, and unlock without awaiting.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::rate_limit::RollingWindow;
use super::schema::Schema;
use super::store::Store;
use super::SimConfig;
use crate::faults::Faults;

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
    pub config: SimConfig,
    pub schema: Schema,
    pub store: Store,
    pub faults: Faults,
    /// The general per-token rolling window.
    pub limits: RollingWindow,
    /// The search endpoints' separate per-second window.
    pub search_limits: RollingWindow,
    pub stats: Stats,
}

impl State {
    pub(crate) fn new(config: SimConfig) -> State {
        State {
            config,
            schema: Schema::default(),
            store: Store::default(),
            faults: Faults::default(),
            limits: RollingWindow::default(),
            search_limits: RollingWindow::default(),
            stats: Stats::default(),
        }
    }

    /// `POST /__admin/reset`: everything but the config goes back to a fresh start.
    pub(crate) fn reset(&mut self) {
        let config = self.config.clone();
        let mut store = std::mem::take(&mut self.store);
        store.clear();
        *self = State {
            store,
            ..State::new(config)
        };
    }

    pub(crate) fn search_lag(&self) -> Duration {
        Duration::from_millis(self.config.search_lag_ms)
    }
}

/// Shared by every handler.
pub(crate) type Shared = crate::server::Shared<State>;

pub(crate) type App = Arc<Shared>;
