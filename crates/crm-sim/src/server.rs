//! Serving one simulator on a local port, shared by every simulator: bind,
//! serve on a spawned task, and stop on a shutdown signal that also releases
//! requests held by timeout faults.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// How long a shut-down server waits for in-flight requests before it is stopped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Signalled once, when the simulator shuts down. Clones share the signal.
#[derive(Clone, Debug)]
pub(crate) struct ShutdownSignal(Arc<watch::Sender<bool>>);

impl Default for ShutdownSignal {
    fn default() -> Self {
        ShutdownSignal(Arc::new(watch::Sender::new(false)))
    }
}

impl ShutdownSignal {
    pub(crate) fn signal(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once shutdown has been signalled.
    pub(crate) async fn signalled(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail while `self` is borrowed.
        let _ = rx.wait_for(|stopped| *stopped).await;
    }
}

/// A router served on a local port until its [`ShutdownSignal`] fires
/// (dropping the `Server` fires it).
#[derive(Debug)]
pub(crate) struct Server {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base_url: String,
    shutdown: ShutdownSignal,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) and serves `router` on a spawned task.
    /// `what` names the simulator in logs.
    pub(crate) async fn start(
        addr: SocketAddr,
        router: axum::Router,
        shutdown: ShutdownSignal,
        what: &'static str,
    ) -> std::io::Result<Server> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let host = if local.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else if local.is_ipv6() {
            format!("[{}]", local.ip())
        } else {
            local.ip().to_string()
        };
        let base_url = format!("http://{host}:{}", local.port());

        let graceful = {
            let shutdown = shutdown.clone();
            async move { shutdown.signalled().await }
        };
        let server = axum::serve(listener, router)
            .with_graceful_shutdown(graceful)
            .into_future();
        let deadline = {
            let shutdown = shutdown.clone();
            async move {
                shutdown.signalled().await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            }
        };
        let url = base_url.clone();
        let task = tokio::spawn(async move {
            tokio::select! {
                result = server => {
                    if let Err(error) = result {
                        tracing::error!(%error, base_url = %url, "simulator server failed");
                    }
                }
                () = deadline => {
                    tracing::warn!(base_url = %url, "simulator stopped with requests still in flight");
                }
            }
            tracing::info!(base_url = %url, "simulator stopped");
        });
        tracing::info!(%base_url, "{what} simulator listening");
        Ok(Server {
            base_url,
            shutdown,
            task: Some(task),
        })
    }

    /// Signals shutdown and waits until the server task has ended (in-flight
    /// requests answered, or after a 5 s grace period).
    pub(crate) async fn shutdown_and_wait(mut self) {
        self.shutdown.signal();
        if let Some(task) = self.task.take() {
            if let Err(error) = task.await {
                tracing::error!(%error, "simulator server task failed");
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.signal();
    }
}

/// What every handler of one simulator shares: its state behind one lock,
/// the requests in flight (for a concurrency limit) and its shutdown signal.
#[derive(Debug)]
pub(crate) struct Shared<S> {
    state: std::sync::Mutex<S>,
    /// Requests admitted and not yet answered (the concurrency limit).
    in_flight: std::sync::atomic::AtomicU32,
    pub(crate) shutdown: ShutdownSignal,
}

impl<S> Shared<S> {
    pub(crate) fn new(state: S) -> Arc<Self> {
        Arc::new(Shared {
            state: std::sync::Mutex::new(state),
            in_flight: std::sync::atomic::AtomicU32::new(0),
            shutdown: ShutdownSignal::default(),
        })
    }

    /// Locks the state. Poisoning is ignored: a panic cannot leave a
    /// simulator's state half-updated in a way that matters.
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, S> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes a concurrency slot when fewer than `limit` are taken.
    pub(crate) fn try_enter(self: &Arc<Self>, limit: u32) -> Option<InFlight<S>> {
        use std::sync::atomic::Ordering;
        self.in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| InFlight(self.clone()))
    }
}

/// A concurrency slot, given back when dropped (also when the client gives up).
pub(crate) struct InFlight<S>(Arc<Shared<S>>);

impl<S> Drop for InFlight<S> {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod shared_tests {
    use super::*;

    #[test]
    fn concurrency_slots_are_given_back_when_dropped() {
        let app = Shared::new(());
        let a = app.try_enter(2).expect("first");
        let b = app.try_enter(2).expect("second");
        assert!(app.try_enter(2).is_none());
        drop(a);
        let c = app.try_enter(2).expect("freed");
        drop((b, c));
        assert_eq!(app.in_flight.load(std::sync::atomic::Ordering::SeqCst), 0);
    }
}
