//! The simulator's whole mutable state behind one `std` mutex (never held
//! across an await) and the shutdown signal that releases requests held by
//! timeout faults.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::oauth::OAuth;
use super::schema::{SObject, Schema};
use super::store::Store;
use super::SalesforceSimConfig;
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

/// What an active duplicate rule does with a match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RuleAction {
    /// The save is refused unless the request sends
    /// `Sforce-Duplicate-Rule-Header: allowSave=true`.
    Alert,
    /// The save is refused whatever the header says.
    Block,
}

#[derive(Debug)]
pub(crate) struct State {
    pub config: SalesforceSimConfig,
    pub schema: Schema,
    pub store: Store,
    pub faults: Faults,
    pub oauth: OAuth,
    pub stats: Stats,
    /// Active duplicate rules, per sObject.
    pub duplicate_rules: BTreeMap<SObject, RuleAction>,
    /// The next this many record writes fail with `UNABLE_TO_LOCK_ROW`.
    pub lock_rows: u32,
    /// What token answers name as `instance_url` (the simulator's own
    /// address once it listens; else the request's `Host`).
    pub instance_url: Option<String>,
}

impl State {
    pub(crate) fn new(config: SalesforceSimConfig) -> State {
        let oauth = OAuth::new(&config);
        State {
            config,
            schema: Schema::default(),
            store: Store::default(),
            faults: Faults::default(),
            oauth,
            stats: Stats::default(),
            duplicate_rules: BTreeMap::new(),
            lock_rows: 0,
            instance_url: None,
        }
    }

    /// `POST /__admin/reset`: records, counters (API usage too), faults,
    /// tokens, rules and the schema back to a fresh start; the rest of the
    /// config is kept (the grant is the configured refresh token again).
    pub(crate) fn reset(&mut self) {
        let mut config = self.config.clone();
        config.api_used = 0;
        let instance_url = self.instance_url.take();
        *self = State {
            instance_url,
            ..State::new(config)
        };
    }
}

/// Shared by every handler.
pub(crate) type Shared = crate::server::Shared<State>;

pub(crate) type App = Arc<Shared>;
