//! The simulator's whole mutable state behind one `std` mutex (never held
//! across an await), plus the shutdown signal that releases requests held by
//! timeout faults.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::fields::Fields;
use super::rate_limit::RollingWindow;
use super::store::{Person, SearchView, Store};
use super::PipedriveSimConfig;
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
    pub config: PipedriveSimConfig,
    pub store: Store,
    pub fields: Fields,
    pub faults: Faults,
    /// The general burst window per token.
    pub limits: RollingWindow,
    /// The search endpoints' own window per token.
    pub search_limits: RollingWindow,
    pub stats: Stats,
}

impl State {
    pub(crate) fn new(config: PipedriveSimConfig) -> State {
        State {
            config,
            store: Store::default(),
            fields: Fields::default(),
            faults: Faults::default(),
            limits: RollingWindow::default(),
            search_limits: RollingWindow::default(),
            stats: Stats::default(),
        }
    }

    /// `POST /__admin/reset`: records, fields, counters, faults and windows
    /// back to a fresh start; the config (and the id counter) is kept.
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

    pub(crate) fn window(&self) -> Duration {
        Duration::from_millis(self.config.rate_limit_window_ms.max(1))
    }

    /// What the search index will hold for `person` once the lag has passed.
    pub(crate) fn search_view(&self, person: &Person) -> SearchView {
        SearchView {
            name: person.name.clone(),
            emails: person.emails.iter().map(|e| e.value.clone()).collect(),
            phones: person.phones.iter().map(|e| e.value.clone()).collect(),
            custom: person
                .custom_fields
                .iter()
                .filter_map(|(key, value)| {
                    self.fields
                        .custom(key)
                        .and_then(|field| field.search_text(value))
                })
                .collect(),
        }
    }

    /// Stores a written person and records its new version for search.
    pub(crate) fn save_person(&mut self, mut person: Person) {
        let view = self.search_view(&person);
        let lag = self.search_lag();
        person.remember(Some(view), Instant::now(), lag);
        self.store.persons.insert(person.id, person);
    }
}

/// Shared by every handler.
pub(crate) type Shared = crate::server::Shared<State>;

pub(crate) type App = Arc<Shared>;
