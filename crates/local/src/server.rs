//! Ingest behind plain HTTP (what API Gateway does in AWS).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::response::Response;
use ingest::{handle, Ingest, WebhookRequest};
use lb_vendors::canonical::MAX_BODY_BYTES;
use tokio::sync::watch;

async fn serve(State(app): State<Arc<Ingest>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    // Read one byte past the cap so that ingest itself answers 413 in its own words.
    let body = match to_bytes(body, MAX_BODY_BYTES + 1).await {
        Ok(b) => b.to_vec(),
        Err(_) => vec![b' '; MAX_BODY_BYTES + 1],
    };
    let request =
        WebhookRequest::from_http(&parts.method, "http", &parts.uri, &parts.headers, body);
    handle(&app, &request, chrono::Utc::now())
        .await
        .into_http()
        .map(Body::from)
}

/// Serves ingest on `addr` until `stop` turns true. Returns the bound address.
pub async fn start(
    app: Arc<Ingest>,
    addr: SocketAddr,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let router = axum::Router::new().fallback(serve).with_state(app);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
    });
    Ok(bound)
}
