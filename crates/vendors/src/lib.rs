//! Inbound adapters: one module per chatbot vendor. Each verifies the vendor's
//! signature on the raw bytes and turns its payload into a [`lb_domain::LeadEvent`].
//! Only this crate knows vendor JSON.

pub mod canonical;
pub mod fields;
pub mod json;
pub mod robustness;
pub mod signature;
pub mod source;
pub mod sources;
#[cfg(test)]
mod testing;

/// Why a payload could not become a lead event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON at all (→ 400).
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    /// JSON, but not a valid lead (→ 422), with every field error.
    #[error("invalid lead: {} field error(s)", .0.len())]
    Invalid(Vec<lb_domain::FieldError>),
}
