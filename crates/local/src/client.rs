//! A client of a running stack, driven only through its public interfaces (the
//! stack file's URLs): signed webhooks, the simulator's read and admin APIs, and
//! the alerts inbox. Used by the CLI (demo, bench) and the end-to-end tests.

use aws_sdk_sqs::Client as SqsClient;
use serde_json::Value;

use crate::stack::StackInfo;

#[derive(Clone)]
pub struct StackClient {
    pub info: StackInfo,
    pub http: reqwest::Client,
}

impl StackClient {
    pub fn new(info: StackInfo) -> Self {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .expect("HTTP client");
        Self { info, http }
    }

    /// [`StackClient::post`] through a lane (`Leadbridge-Lane`: `realtime` or `bulk`).
    pub async fn post_in_lane(&self, body: &Value, lane: &str) -> anyhow::Result<(u16, Value)> {
        let raw = serde_json::to_vec(body)?;
        let sig = lb_vendors::signature::sign(
            &self.info.webhook_secret,
            chrono::Utc::now().timestamp(),
            &raw,
        );
        self.post_raw(
            raw,
            &[
                ("content-type", "application/json"),
                ("leadbridge-signature", &sig),
                ("leadbridge-lane", lane),
            ],
        )
        .await
    }

    /// Posts `body` signed with the stack's webhook secret; returns status and JSON (or text) body.
    pub async fn post(&self, body: &Value) -> anyhow::Result<(u16, Value)> {
        let raw = serde_json::to_vec(body)?;
        let sig = lb_vendors::signature::sign(
            &self.info.webhook_secret,
            chrono::Utc::now().timestamp(),
            &raw,
        );
        self.post_raw(
            raw,
            &[
                ("content-type", "application/json"),
                ("leadbridge-signature", &sig),
            ],
        )
        .await
    }

    pub async fn post_raw(
        &self,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self
            .http
            .post(format!("{}/v1/events", self.info.ingest_url))
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// Sends one request to a native source (`POST /v1/sources/<name>`, or a
    /// `GET` handshake with `query`): status, content type and body text.
    pub async fn source_request(
        &self,
        method: reqwest::Method,
        name: &str,
        query: &str,
        body: Vec<u8>,
        headers: &[(String, String)],
    ) -> anyhow::Result<(u16, String, String)> {
        let mut url = format!("{}/v1/sources/{name}", self.info.ingest_url);
        if !query.is_empty() {
            url = format!("{url}?{query}");
        }
        let mut req = self.http.request(method, url).body(body);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        Ok((status, ct, resp.text().await.unwrap_or_default()))
    }

    /// Sends `lead` to the named source the way its vendor would: the vendor's
    /// own payload ([`lb_vendors::source::SourceKind::sample`]), signed with the
    /// source's secret from the stack file. Status, content type, body.
    pub async fn send_as_vendor(
        &self,
        name: &str,
        lead: &lb_vendors::source::Sample<'_>,
        options: &lb_vendors::source::SourceOptions,
    ) -> anyhow::Result<(u16, String, String)> {
        let (kind, url, secret) = self.source(name)?;
        let (content_type, body) = kind.sample(lead, options);
        self.send_signed(name, kind, &url, &secret, &content_type, body)
            .await
    }

    /// Sends `body` to the named source signed as its vendor signs.
    pub async fn send_signed(
        &self,
        name: &str,
        kind: &'static dyn lb_vendors::source::SourceKind,
        url: &str,
        secret: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<(u16, String, String)> {
        let mut headers = kind.sign(url, &body, secret, chrono::Utc::now());
        headers.push(("content-type".into(), content_type.to_string()));
        self.source_request(reqwest::Method::POST, name, "", body, &headers)
            .await
    }

    /// The named source's kind, URL and secret, from the stack file.
    pub fn source(
        &self,
        name: &str,
    ) -> anyhow::Result<(&'static dyn lb_vendors::source::SourceKind, String, String)> {
        let info = self
            .info
            .sources
            .get(name)
            .ok_or_else(|| anyhow::anyhow!("the stack has no source {name:?}"))?;
        let kind = lb_vendors::sources::kind(&info.kind)
            .ok_or_else(|| anyhow::anyhow!("unknown source kind {:?}", info.kind))?;
        Ok((kind, info.url.clone(), info.secret.clone()))
    }

    /// GET on the HubSpot simulator's business API (with the token). Like any
    /// HubSpot client it waits out a 429 (the reads share the pipeline's limit).
    pub async fn hubspot(&self, path: &str) -> anyhow::Result<Value> {
        let hs = &self.info.crm.hubspot;
        for _ in 0..30 {
            let resp = self
                .http
                .get(format!("{}{path}", hs.base_url))
                .bearer_auth(&hs.token)
                .send()
                .await?;
            if resp.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
                let wait = resp
                    .headers()
                    .get("x-hubspot-ratelimit-interval-milliseconds")
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                    .unwrap_or(1_000)
                    .min(10_000);
                tokio::time::sleep(std::time::Duration::from_millis(wait / 4 + 50)).await;
                continue;
            }
            anyhow::ensure!(
                resp.status().is_success(),
                "HubSpot simulator answered {} to GET {path}",
                resp.status()
            );
            return Ok(resp.json().await?);
        }
        anyhow::bail!("HubSpot simulator kept answering 429 to GET {path}")
    }

    /// POST on the HubSpot simulator's business API (with the token), as a rep's
    /// tool or a form would write to HubSpot; the answer's JSON.
    pub async fn hubspot_post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let hs = &self.info.crm.hubspot;
        let resp = self
            .http
            .post(format!("{}{path}", hs.base_url))
            .bearer_auth(&hs.token)
            .json(body)
            .send()
            .await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "HubSpot simulator answered {} to POST {path}",
            resp.status()
        );
        Ok(resp.json().await?)
    }

    /// Every record of `object` (contacts, notes, deals), paging through the list endpoint.
    pub async fn hubspot_all(&self, object: &str, extra_query: &str) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut after = String::new();
        loop {
            let v = self
                .hubspot(&format!(
                    "/crm/v3/objects/{object}?limit=100{after}{extra_query}"
                ))
                .await?;
            out.extend(v["results"].as_array().cloned().unwrap_or_default());
            match v["paging"]["next"]["after"].as_str() {
                Some(a) => after = format!("&after={a}"),
                None => return Ok(out),
            }
        }
    }

    /// The ids of the `to` records (`contacts`, `notes`…) associated with one
    /// `from` record, through the v4 association list, from the cursor `after`
    /// (a v3 read's `associations.<to>.paging.next.after`, or `None` for all).
    pub async fn hubspot_associations(
        &self,
        from: &str,
        id: &str,
        to: &str,
        after: Option<&str>,
    ) -> anyhow::Result<Vec<String>> {
        let encode = |s: &str| -> String {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        char::from(b).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect()
        };
        let mut out = Vec::new();
        let mut after = after.map(str::to_string);
        loop {
            let cursor = after
                .as_deref()
                .map(|a| format!("&after={}", encode(a)))
                .unwrap_or_default();
            let v = self
                .hubspot(&format!(
                    "/crm/v4/objects/{from}/{id}/associations/{to}?limit=500{cursor}"
                ))
                .await?;
            out.extend(
                v["results"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| match &r["toObjectId"] {
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    }),
            );
            match v["paging"]["next"]["after"].as_str() {
                Some(a) => after = Some(a.to_string()),
                None => return Ok(out),
            }
        }
    }

    /// The simulator's admin API (`/__admin/...`).
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self.http.request(
            method,
            format!("{}/__admin/{path}", self.info.crm.hubspot.base_url),
        );
        if let Some(b) = body {
            req = req.json(&b);
        }
        Ok(req.send().await?.json().await.unwrap_or(Value::Null))
    }

    /// Takes the alerts published so far (subject, message) off the inbox queue subscribed to the topic.
    pub async fn take_alerts(&self, sqs: &SqsClient) -> anyhow::Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        loop {
            let r = sqs
                .receive_message()
                .queue_url(&self.info.alerts_queue_url)
                .max_number_of_messages(10)
                .send()
                .await?;
            let msgs = r.messages.unwrap_or_default();
            if msgs.is_empty() {
                return Ok(out);
            }
            for m in msgs {
                let env: Value = serde_json::from_str(m.body().unwrap_or("{}")).unwrap_or_default();
                out.push((
                    env["Subject"].as_str().unwrap_or_default().to_string(),
                    env["Message"].as_str().unwrap_or_default().to_string(),
                ));
                sqs.delete_message()
                    .queue_url(&self.info.alerts_queue_url)
                    .set_receipt_handle(m.receipt_handle)
                    .send()
                    .await?;
            }
        }
    }
}

/// Polls `f` until it returns `Some`, or fails naming `what` after `timeout`.
pub async fn eventually<T, F, Fut>(
    what: &str,
    timeout: std::time::Duration,
    mut f: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
