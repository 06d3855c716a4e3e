//! The use cases of leadbridge and the ports they need.
//!
//! Use cases are plain async functions taking the ports they use:
//! [`accept::accept_lead`] (ingest), [`sync::sync_batch`] (worker) and
//! [`alert::alert_dead_letters`] (dlq-alerter). Adapters live elsewhere
//! (`lb-aws`, `lb-crm`); in-memory fakes of every port are in [`fakes`]
//! behind the `test-util` feature.

pub mod accept;
pub mod alert;
pub mod ports;
pub mod retry;
pub mod secrets;
pub mod sync;

#[cfg(any(test, feature = "test-util"))]
pub mod fakes;

pub use ports::*;
