//! The local stack: moto server (AWS emulator), the HubSpot simulator, the
//! ingest handler behind plain HTTP, and SQS pollers that hand batches to the
//! worker and dlq-alerter handlers exactly as a Lambda event source mapping does.
//! Used by `leadbridge dev|demo|bench` and by the end-to-end tests.

pub mod chaos;
pub mod client;
pub mod coldstart;
pub mod deployed;
pub mod doctor;
pub mod esm;
pub mod import;
pub mod moto;
pub mod ops;
pub mod resources;
pub mod server;
pub mod sources;
pub mod stack;
pub mod text;

pub use stack::{LocalStack, StackInfo, StackOptions};

/// The workspace root (where `scripts/`, `events/` and `.venv/` are).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| ".".into())
}
