//! Injected faults (`POST /__admin/faults`, contracts.md §3), shared by every
//! simulator: error answers, added latency, and requests that are accepted but
//! never answered. Each simulator rolls them per request and shapes the answer
//! its own way (a HubSpot error body, a webhook target's `{"error": …}`).

use std::time::Duration;

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Adds the fault's `Retry-After` (whole seconds) to an injected error answer.
pub(crate) fn with_retry_after(
    mut response: axum::response::Response,
    after: Option<Duration>,
) -> axum::response::Response {
    if let Some(after) = after {
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(after.as_secs()),
        );
    }
    response
}

/// The admin API's fault definition.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultSpec {
    kind: String,
    status: Option<u16>,
    ms: Option<u64>,
    probability: Option<f64>,
    count: Option<u32>,
    /// Extension: seconds for a `Retry-After` header on an error fault's answer.
    retry_after: Option<u64>,
    /// Extension: `"POST /crm/v3/objects/notes"` limits the fault to one route
    /// template; a bare template matches every method.
    route: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FaultKind {
    Error {
        status: StatusCode,
        retry_after: Option<Duration>,
    },
    Latency(Duration),
    Timeout,
}

#[derive(Clone, Debug)]
struct Fault {
    id: u64,
    kind: FaultKind,
    probability: f64,
    /// Hits left before the fault retires; `None` = unbounded.
    remaining: Option<u32>,
    route: Option<String>,
}

impl Fault {
    fn applies_to(&self, route: &str) -> bool {
        match &self.route {
            None => true,
            Some(r) if r.starts_with('/') => {
                route.split_once(' ').is_some_and(|(_, path)| path == r)
            }
            Some(r) => r == route,
        }
    }

    fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert("id".into(), json!(self.id));
        match self.kind {
            FaultKind::Error {
                status,
                retry_after,
            } => {
                body.insert("kind".into(), json!("error"));
                body.insert("status".into(), json!(status.as_u16()));
                if let Some(after) = retry_after {
                    body.insert("retry_after".into(), json!(after.as_secs()));
                }
            }
            FaultKind::Latency(ms) => {
                body.insert("kind".into(), json!("latency"));
                body.insert("ms".into(), json!(ms.as_millis()));
            }
            FaultKind::Timeout => {
                body.insert("kind".into(), json!("timeout"));
            }
        }
        body.insert("probability".into(), json!(self.probability));
        if let Some(count) = self.remaining {
            body.insert("count".into(), json!(count));
        }
        if let Some(route) = &self.route {
            body.insert("route".into(), json!(route));
        }
        Value::Object(body)
    }
}

/// What the active faults decided for one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FaultOutcome {
    /// Total latency to add before handling (or before the action below).
    pub delay: Option<Duration>,
    pub action: Option<FaultAction>,
}

impl FaultOutcome {
    pub(crate) fn is_faulted(&self) -> bool {
        self.delay.is_some() || self.action.is_some()
    }

    /// Plays the fault out on `route`: sleeps the injected latency (cut short
    /// by shutdown); then an error fault is `Error` (the simulator answers it in
    /// its API's shape) and a timeout fault holds the request until shutdown
    /// (`Held`). `None`: the request goes on to its handler.
    pub(crate) async fn play(
        self,
        shutdown: &crate::server::ShutdownSignal,
        route: &str,
    ) -> Option<Played> {
        if let Some(delay) = self.delay {
            tracing::info!(%route, delay_ms = delay.as_millis(), "fault: latency");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.signalled() => {}
            }
        }
        match self.action? {
            FaultAction::Error {
                status,
                retry_after,
            } => {
                tracing::info!(%route, status = status.as_u16(), "fault: error");
                Some(Played::Error {
                    status,
                    retry_after,
                })
            }
            FaultAction::Timeout => {
                tracing::info!(%route, "fault: timeout (holding the request)");
                shutdown.signalled().await;
                Some(Played::Held)
            }
        }
    }
}

/// How a fault ended a request (see [`FaultOutcome::play`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Played {
    Error {
        status: StatusCode,
        retry_after: Option<Duration>,
    },
    /// Held until the simulator shut down: answered 503.
    Held,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FaultAction {
    /// Answer with this status (and a `Retry-After` header when given), in the
    /// simulated API's error shape.
    Error {
        status: StatusCode,
        retry_after: Option<Duration>,
    },
    /// Never answer (until the simulator shuts down).
    Timeout,
}

#[derive(Debug)]
pub(crate) struct Faults {
    next_id: u64,
    active: Vec<Fault>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            next_id: 1,
            active: Vec::new(),
        }
    }
}

impl Faults {
    /// Validates and activates a fault; returns its id or why it is invalid.
    pub(crate) fn add(&mut self, spec: FaultSpec) -> Result<u64, String> {
        let kind = match spec.kind.as_str() {
            "error" => {
                let status = spec.status.ok_or("an error fault needs \"status\"")?;
                match StatusCode::from_u16(status) {
                    Ok(s) if s.is_client_error() || s.is_server_error() => FaultKind::Error {
                        status: s,
                        retry_after: spec.retry_after.map(Duration::from_secs),
                    },
                    _ => return Err(format!("\"status\" must be 400..=599, got {status}")),
                }
            }
            "latency" => FaultKind::Latency(Duration::from_millis(
                spec.ms.ok_or("a latency fault needs \"ms\"")?,
            )),
            "timeout" => FaultKind::Timeout,
            other => {
                return Err(format!(
                    "unknown fault kind \"{other}\" (expected error, latency or timeout)"
                ))
            }
        };
        if spec.retry_after.is_some() && !matches!(kind, FaultKind::Error { .. }) {
            return Err("\"retry_after\" applies to error faults only".into());
        }
        let probability = spec.probability.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&probability) {
            return Err(format!(
                "\"probability\" must be within 0..=1, got {probability}"
            ));
        }
        if spec.count == Some(0) {
            return Err("\"count\" must be at least 1".into());
        }
        let route = spec
            .route
            .map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|r| !r.is_empty());
        let id = self.next_id;
        self.next_id += 1;
        self.active.push(Fault {
            id,
            kind,
            probability,
            remaining: spec.count,
            route,
        });
        Ok(id)
    }

    pub(crate) fn clear(&mut self) -> usize {
        let n = self.active.len();
        self.active.clear();
        n
    }

    pub(crate) fn list(&self) -> Value {
        Value::Array(self.active.iter().map(Fault::to_json).collect())
    }

    /// Rolls every active fault that applies to `route` (`"POST /template"`).
    /// Latencies add up; the first error or timeout that hits decides the
    /// answer. Each hit uses up one of a fault's `count`.
    pub(crate) fn roll(&mut self, route: &str, mut chance: impl FnMut() -> f64) -> FaultOutcome {
        let mut outcome = FaultOutcome::default();
        for fault in self.active.iter_mut() {
            if !fault.applies_to(route) {
                continue;
            }
            if matches!(fault.kind, FaultKind::Error { .. } | FaultKind::Timeout)
                && outcome.action.is_some()
            {
                continue;
            }
            if chance() >= fault.probability {
                continue;
            }
            match fault.kind {
                FaultKind::Error {
                    status,
                    retry_after,
                } => {
                    outcome.action = Some(FaultAction::Error {
                        status,
                        retry_after,
                    });
                }
                FaultKind::Timeout => outcome.action = Some(FaultAction::Timeout),
                FaultKind::Latency(d) => {
                    outcome.delay = Some(outcome.delay.unwrap_or_default() + d);
                }
            }
            if let Some(n) = fault.remaining.as_mut() {
                *n -= 1;
            }
        }
        self.active.retain(|f| f.remaining != Some(0));
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: Value) -> FaultSpec {
        serde_json::from_value(v).expect("spec")
    }

    #[test]
    fn an_error_fault_with_a_count_retires_after_that_many_hits() {
        let mut faults = Faults::default();
        faults
            .add(spec(json!({"kind":"error","status":503,"count":2})))
            .expect("add");
        let hit = FaultOutcome {
            delay: None,
            action: Some(FaultAction::Error {
                status: StatusCode::SERVICE_UNAVAILABLE,
                retry_after: None,
            }),
        };
        assert_eq!(faults.roll("GET /x", || 0.0), hit);
        assert_eq!(faults.roll("GET /x", || 0.0), hit);
        assert_eq!(faults.roll("GET /x", || 0.0), FaultOutcome::default());
        assert_eq!(faults.list(), json!([]));
    }

    #[test]
    fn probability_and_route_limit_which_requests_are_hit() {
        let mut faults = Faults::default();
        faults
            .add(spec(json!({"kind":"latency","ms":50,"probability":0.5,"route":"POST  /crm/v3/objects/notes"})))
            .expect("add");
        assert!(!faults
            .roll("POST /crm/v3/objects/notes", || 0.7)
            .is_faulted());
        assert!(!faults
            .roll("GET /crm/v3/objects/notes", || 0.1)
            .is_faulted());
        assert_eq!(
            faults.roll("POST /crm/v3/objects/notes", || 0.1).delay,
            Some(Duration::from_millis(50))
        );
    }

    #[test]
    fn invalid_specs_are_rejected() {
        let mut faults = Faults::default();
        assert!(faults.add(spec(json!({"kind":"error"}))).is_err());
        assert!(faults
            .add(spec(json!({"kind":"error","status":200})))
            .is_err());
        assert!(faults.add(spec(json!({"kind":"latency"}))).is_err());
        assert!(faults
            .add(spec(json!({"kind":"timeout","probability":2.0})))
            .is_err());
        assert!(faults.add(spec(json!({"kind":"explode"}))).is_err());
        assert!(faults
            .add(spec(json!({"kind":"latency","ms":5,"retry_after":3})))
            .is_err());
    }

    #[test]
    fn an_error_fault_carries_its_retry_after_to_the_answer_and_the_listing() {
        let mut faults = Faults::default();
        faults
            .add(spec(json!({"kind":"error","status":429,"retry_after":3})))
            .expect("add");
        assert_eq!(faults.list()[0]["retry_after"], json!(3));
        assert_eq!(
            faults.roll("POST /hook", || 0.0).action,
            Some(FaultAction::Error {
                status: StatusCode::TOO_MANY_REQUESTS,
                retry_after: Some(Duration::from_secs(3)),
            })
        );
    }
}
