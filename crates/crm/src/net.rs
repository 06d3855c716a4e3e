//! The HTTP client every CRM adapter uses: no redirects followed (a POST body
//! does not survive them, and a redirect could lead anywhere), answers read up
//! to a cap, and host names resolved only to public addresses: a config (or a
//! DNS record) cannot point the worker at the Lambda runtime API on loopback,
//! the instance metadata service or a private network. A local run (the local
//! stack's simulators on 127.0.0.1) opts out with `allow_internal`.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// A client builder with leadbridge's rules; add timeouts and build.
pub fn client_builder(allow_internal: bool) -> reqwest::ClientBuilder {
    let b = reqwest::Client::builder()
        .user_agent(concat!("leadbridge/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none());
    if allow_internal {
        b
    } else {
        b.dns_resolver(std::sync::Arc::new(PublicOnly))
    }
}

/// Resolves with the system resolver and keeps public addresses only.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| lb_domain::web::internal_ip(a.ip()).is_none())
                .collect();
            if public.is_empty() {
                let why = all
                    .first()
                    .and_then(|a| lb_domain::web::internal_ip(a.ip()))
                    .unwrap_or("no address");
                return Err(format!(
                    "{host} resolves to {why}; connections reach public hosts only"
                )
                .into());
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// The answer's body, at most `max` bytes (more is an error: a CRM or target
/// that answers megabytes to a lead is not one to trust with memory).
pub async fn read_capped(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge(max));
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        if out.len() + chunk.len() > max {
            return Err(BodyError::TooLarge(max));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[derive(Debug)]
pub enum BodyError {
    Transport(reqwest::Error),
    TooLarge(usize),
}

/// How long a connection attempt may take, within the request's timeout.
pub fn connect_timeout(timeout: Duration) -> Duration {
    timeout.min(Duration::from_secs(3))
}

/// A CRM's answer the caller reads: status and JSON (`Null` for a 204).
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

/// A connection's HTTP client: [`client_builder`] with the connection's
/// timeout for each call and [`connect_timeout`] for each connect.
pub fn client(allow_internal: bool, timeout: Duration) -> reqwest::Result<reqwest::Client> {
    client_builder(allow_internal)
        .timeout(timeout)
        .connect_timeout(connect_timeout(timeout))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server on loopback that answers every request with `head` and `len` bytes.
    async fn answering(head: &'static str, len: usize) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&vec![b'x'; len]).await;
                let _ = s.shutdown().await;
            }
        });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn an_answer_is_read_up_to_its_cap_whether_or_not_it_announces_its_length() {
        let client = client_builder(true).build().unwrap();
        let announced =
            answering("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", 100_000).await;
        let resp = client.get(&announced).send().await.unwrap();
        assert!(matches!(
            read_capped(resp, 1024).await,
            Err(BodyError::TooLarge(1024))
        ));
        let unannounced = answering("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", 100_000).await;
        let resp = client.get(&unannounced).send().await.unwrap();
        assert!(matches!(
            read_capped(resp, 1024).await,
            Err(BodyError::TooLarge(1024))
        ));
        let small = answering("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", 10).await;
        let resp = client.get(&small).send().await.unwrap();
        assert_eq!(read_capped(resp, 1024).await.unwrap().len(), 10);
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed() {
        let client = client_builder(true).build().unwrap();
        let url = answering(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\n\r\n",
            0,
        )
        .await;
        let resp = client.post(&url).body("lead").send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 307);
    }

    #[tokio::test]
    async fn names_that_resolve_to_internal_addresses_are_not_reached() {
        let client = client_builder(false)
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let err = client.get("http://localhost:9/").send().await.unwrap_err();
        let text = format!("{err:?}");
        assert!(text.contains("public hosts only"), "{text}");
        // a local run may
        let local = client_builder(true)
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let err = local.get("http://localhost:9/").send().await.unwrap_err();
        assert!(!format!("{err:?}").contains("public hosts only"));
    }
}
