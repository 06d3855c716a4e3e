//! The use cases of leadbridge and the ports they need.
//!
//! Use cases are plain async functions taking the ports they use:
//! [`accept::accept_lead`] (ingest), [`sync::sync_batch`] (worker) and
//! [`alert::alert_dead_letters`] (dlq-alerter). Adapters live elsewhere
//! (`lb-aws`, `lb-crm`); in-memory fakes of every port are in [`fakes`]
//! behind the `test-util` feature, with the ledger's contract suite, run
//! against the fake and the DynamoDB adapter alike, in [`contract`].

pub mod accept;
pub mod alert;
pub(crate) mod batch;
pub mod check;
pub mod console;
pub mod erase;
pub mod hooks;
pub mod intake;
pub mod ports;
pub mod reject;
pub mod replay;
pub mod retry;
pub mod secrets;
pub mod status;
pub mod sync;
pub mod telemetry;
pub mod throttle;

#[cfg(any(test, feature = "test-util"))]
pub mod contract;
#[cfg(any(test, feature = "test-util"))]
pub mod fakes;

pub use ports::*;

/// Reads a required environment variable, naming it when it is missing.
pub fn env_var(name: &str) -> Result<String, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        _ => Err(format!("missing required environment variable {name}")),
    }
}

/// Reads an optional environment variable parsed as `T`, naming it when it does not parse.
pub fn env_parse<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| format!("environment variable {name}={v:?} is not valid")),
        _ => Ok(default),
    }
}
