//! CloudWatch Embedded Metric Format: the Lambdas install this recorder for the
//! `metrics` facade (`lb_pipeline::telemetry`) at cold start and flush it to
//! stdout after each invocation; CloudWatch Logs turns each document into
//! metrics in the `leadbridge` namespace (no API call, no IAM permission).

use metrics_cloudwatch_embedded::{Builder, Collector};

/// Installs the recorder (once per process). `None` when one is already set.
pub fn install() -> Option<&'static Collector> {
    Builder::new()
        .cloudwatch_namespace(lb_pipeline::telemetry::NAMESPACE)
        .init()
        .ok()
}

/// Writes what the invocation counted, as one EMF document per dimension set, to stdout.
pub fn flush(collector: Option<&'static Collector>) {
    if let Some(c) = collector {
        flush_to(c, std::io::stdout());
    }
}

/// [`flush`] to any writer.
pub fn flush_to(collector: &Collector, writer: impl std::io::Write) {
    if let Err(e) = collector.flush(writer) {
        tracing::warn!(error = %e, "metrics not written");
    }
}
