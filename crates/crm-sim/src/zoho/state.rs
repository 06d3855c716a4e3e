//! The simulator's whole mutable state behind one `std` mutex (never held
//! across an await), the in-flight counter for the concurrency limit, and the
//! shutdown signal that releases requests held by timeout faults.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::oauth::OAuth;
use super::schema::Schema;
use super::store::Store;
use super::ZohoSimConfig;
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

/// Shared by every handler.
pub(crate) type Shared = crate::server::Shared<State>;

pub(crate) type App = Arc<Shared>;
