//! OAuth 2.0 access tokens for any CRM that uses them (Zoho, Salesforce):
//! nothing here is one provider's. [`TokenCache`] caches one token and
//! refreshes it single-flight; [`refresh`] / [`refresh_rotating`] ask a token
//! endpoint with a refresh-token grant and [`exchange`] with any other grant
//! (Salesforce's JWT bearer assertion). Answers are read for the fields every
//! provider shares (`access_token`, `expires_in`, `api_domain` / `instance_url`,
//! `refresh_token`, `error`, `error_description`).
//!
//! - The token is cached and refreshed shortly before it expires (a quarter of
//!   its lifetime, at most a minute, before), never per call: Zoho lets one
//!   refresh token mint only 10 access tokens per 10 minutes (research A.2).
//!   An answer without `expires_in` (Salesforce's: the session timeout is the
//!   org's setting) is taken to live [`DEFAULT_LIFETIME`]; the CRM's 401 then
//!   decides.
//! - At most one refresh runs at a time: callers that find the token stale
//!   wait for that refresh and share its result (the cache's lock is held
//!   across it).
//! - A 401 makes the caller drop the token it used ([`TokenCache::invalidate`]),
//!   only if it is still the cached one: many callers failing with the same
//!   stale token cause one refresh.
//! - A refused refresh is remembered: a revoked or wrong grant answers
//!   `auth_revoked` without asking again until the secret holds another grant
//!   (or [`REVOKED_RECHECK`] passed); a throttled one until its wait is over;
//!   a failed one (5xx, timeout) for [`FAILED_RECHECK`]. No refresh storm.
//! - Refresh-token rotation (Salesforce, when the connected or external client
//!   app enables it: "the connected app issues a new refresh token along with
//!   the access token each time the flow is invoked. The previous refresh token
//!   is automatically invalidated", [V] help.salesforce.com
//!   `remoteaccess_oauth_refresh_token_flow.htm`): an answer carrying another
//!   `refresh_token` is handed to [`OnRotated::on_rotated`] **before** its
//!   access token is returned, so the new grant is kept before anything uses
//!   the token it came with. A hook that fails fails the refresh.
//! - Shared by every worker instance ([`TokenCache::shared`], the ledger
//!   table): an instance whose token is stale takes the shared one when it is
//!   fresh; else one instance at a time takes a lease and refreshes, and the
//!   others wait for the token it shares (Zoho: "the access token is cached
//!   and shared by every worker instance, and refreshed by one of them at a
//!   time"). A token a 401 refused is not taken from the share again. The
//!   share being down costs a refresh per instance, not a lead.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use lb_pipeline::{CrmError, ErrorClass, SharedToken, TokenShare};
use serde_json::Value;
use tokio::sync::Mutex;
use tracing::warn;

use crate::classify;

/// The failure code of an event stopped because the CRM refused the grant.
pub const AUTH_REVOKED: &str = "auth_revoked";
/// How long a refused grant is believed before it is tried again.
pub const REVOKED_RECHECK: Duration = Duration::from_secs(15 * 60);
/// How long a refresh that failed (5xx, timeout) holds off the next one.
pub const FAILED_RECHECK: Duration = Duration::from_secs(5);
/// How long a throttled refresh waits when the provider says nothing.
pub const THROTTLED_WAIT: Duration = Duration::from_secs(60);
/// The longest refresh answer read.
const MAX_TOKEN_ANSWER: usize = 64 * 1024;
/// How long a refreshing instance holds the share's lease (longer than a refresh
/// takes; a crashed holder's lease runs out).
pub const REFRESH_LEASE: Duration = Duration::from_secs(30);
/// How long an instance waits for another one's refresh before handing the
/// lead back (rate-limited: not an attempt).
pub const WAIT_FOR_SHARED: Duration = Duration::from_secs(3);
/// A lifetime to assume when the answer names none (Zoho: one hour;
/// Salesforce names none, its default session timeout is two hours [R]).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// A refresh-token grant: where to refresh and with what.
#[derive(Clone, PartialEq, Eq)]
pub struct Grant {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

/// An access token and what came with it.
#[derive(Clone)]
pub struct AccessToken {
    pub value: String,
    /// The API host the token is for (Zoho `api_domain`, Salesforce
    /// `instance_url`), when the answer named one.
    pub api_domain: Option<String>,
    pub expires_at: Instant,
    refresh_at: Instant,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("api_domain", &self.api_domain)
            .finish_non_exhaustive()
    }
}

impl AccessToken {
    /// A token that lives `lifetime` from `now`, refreshed a quarter of its
    /// lifetime (at most a minute) before it ends.
    pub fn new(
        value: String,
        api_domain: Option<String>,
        lifetime: Duration,
        now: Instant,
    ) -> Self {
        let margin = (lifetime / 4).min(Duration::from_secs(60));
        AccessToken {
            value,
            api_domain,
            expires_at: now + lifetime,
            refresh_at: now + lifetime - margin,
        }
    }

    pub fn is_fresh(&self, now: Instant) -> bool {
        now < self.refresh_at
    }

    /// The token as instances share it (wall-clock times).
    fn to_shared(&self) -> SharedToken {
        let (now, wall) = (Instant::now(), Utc::now());
        let at = |i: Instant| {
            wall + chrono::Duration::from_std(i.saturating_duration_since(now)).unwrap_or_default()
        };
        SharedToken {
            value: self.value.clone(),
            api_domain: self.api_domain.clone(),
            expires_at: at(self.expires_at),
            refresh_at: at(self.refresh_at),
        }
    }

    /// A shared token, while it is fresh.
    fn from_shared(t: SharedToken) -> Option<Self> {
        let (now, wall) = (Instant::now(), Utc::now());
        let left = |at: chrono::DateTime<Utc>| (at - wall).to_std().ok();
        let (refresh_in, expires_in) = (left(t.refresh_at)?, left(t.expires_at)?);
        Some(AccessToken {
            value: t.value,
            api_domain: t.api_domain,
            expires_at: now + expires_in,
            refresh_at: now + refresh_in,
        })
    }

    /// Salesforce's name for [`AccessToken::api_domain`]: the token answer's
    /// `instance_url`, the base of every API call ([V] research A.1).
    pub fn instance_url(&self) -> Option<&str> {
        self.api_domain.as_deref()
    }
}

/// Keeps a rotated refresh token (see the module docs). Called inside the
/// refresh, before its access token is handed to anyone.
#[async_trait]
pub trait OnRotated: Send + Sync {
    /// `new_refresh_token` replaces the grant's refresh token from now on.
    /// An `Err` (why, never the token) fails the refresh.
    async fn on_rotated(&self, new_refresh_token: &str) -> Result<(), String>;
}

struct Refusal<K> {
    /// Which grant was refused (a rotated secret is tried at once).
    grant: K,
    until: Instant,
    error: CrmError,
}

struct Slot<K> {
    token: Option<AccessToken>,
    refused: Option<Refusal<K>>,
    /// The last token a 401 refused: never taken from the share again.
    stale: Option<String>,
}

/// One cached access token, refreshed single-flight. `K` names the grant a
/// refusal is remembered for ([`Grant`] for a refresh-token grant; an
/// adapter with several kinds of grant uses its own key).
pub struct TokenCache<K = Grant> {
    slot: Mutex<Slot<K>>,
    /// Where the worker instances share the token, and its key there.
    share: Option<(Arc<dyn TokenShare>, String)>,
}

impl<K> Default for TokenCache<K> {
    fn default() -> Self {
        TokenCache {
            slot: Mutex::new(Slot {
                token: None,
                refused: None,
                stale: None,
            }),
            share: None,
        }
    }
}

impl<K: PartialEq + Clone> TokenCache<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Shares the token with every instance through `share`, under `key` (the connection).
    pub fn shared(mut self, share: Arc<dyn TokenShare>, key: impl Into<String>) -> Self {
        self.share = Some((share, key.into()));
        self
    }

    /// The shared token, when it is fresh and not the one a 401 refused.
    async fn read_share(&self, stale: Option<&str>) -> Option<AccessToken> {
        let (share, key) = self.share.as_ref()?;
        match share.shared_token(key).await {
            Ok(Some(t)) if Some(t.value.as_str()) != stale => AccessToken::from_shared(t),
            Ok(_) => None,
            Err(e) => {
                warn!(connection = %key, error = %e, "the shared access token could not be read");
                None
            }
        }
    }

    /// The cached token while it is fresh; else one refresh with `fetch`
    /// (concurrent callers wait for it), or the remembered refusal.
    pub async fn get<F, Fut>(&self, grant: &K, fetch: F) -> Result<AccessToken, CrmError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, CrmError>>,
    {
        let mut slot = self.slot.lock().await;
        let now = Instant::now();
        if let Some(t) = slot.token.as_ref().filter(|t| t.is_fresh(now)) {
            return Ok(t.clone());
        }
        if let Some(r) = &slot.refused {
            if r.grant == *grant && now < r.until {
                return Err(r.error.clone());
            }
        }
        if let Some((share, key)) = &self.share {
            if let Some(t) = self.read_share(slot.stale.as_deref()).await {
                slot.token = Some(t.clone());
                return Ok(t);
            }
            let until = Utc::now() + chrono::Duration::from_std(REFRESH_LEASE).unwrap_or_default();
            match share.lease_refresh(key, until).await {
                Ok(true) => {}
                Err(e) => {
                    warn!(connection = %key, error = %e, "the token lease could not be taken; refreshing alone");
                }
                Ok(false) => {
                    // Another instance is refreshing: wait for what it shares.
                    let step = Duration::from_millis(250);
                    let mut waited = Duration::ZERO;
                    while waited < WAIT_FOR_SHARED {
                        tokio::time::sleep(step).await;
                        waited += step;
                        if let Some(t) = self.read_share(slot.stale.as_deref()).await {
                            slot.token = Some(t.clone());
                            return Ok(t);
                        }
                    }
                    let mut e = CrmError::new(
                        key.clone(),
                        ErrorClass::RateLimited,
                        None,
                        "another worker instance is refreshing the access token; waiting for it",
                    );
                    e.retry_after = Some(Duration::from_secs(2));
                    return Err(e);
                }
            }
        }
        match fetch().await {
            Ok(token) => {
                if let Some((share, key)) = &self.share {
                    if let Err(e) = share.share_token(key, &token.to_shared()).await {
                        warn!(connection = %key, error = %e, "the new access token could not be shared");
                    }
                }
                slot.token = Some(token.clone());
                slot.refused = None;
                slot.stale = None;
                Ok(token)
            }
            Err(error) => {
                let hold = match error.class {
                    ErrorClass::Permanent => REVOKED_RECHECK,
                    ErrorClass::RateLimited => error.retry_after.unwrap_or(THROTTLED_WAIT),
                    ErrorClass::Transient => FAILED_RECHECK,
                };
                slot.token = None;
                slot.refused = Some(Refusal {
                    grant: grant.clone(),
                    until: Instant::now() + hold,
                    error: error.clone(),
                });
                Err(error)
            }
        }
    }

    /// Drops the cached token if it is `stale` (the one a 401 refused).
    pub async fn invalidate(&self, stale: &str) {
        let mut slot = self.slot.lock().await;
        if slot.token.as_ref().is_some_and(|t| t.value == stale) {
            slot.token = None;
            slot.stale = Some(stale.to_string());
        }
    }
}

/// Asks `grant.token_url` for an access token (`grant_type=refresh_token`,
/// form body, as Zoho's SDK and Salesforce's docs send it). The answer's
/// `api_domain` (or `instance_url`) is kept; a `refresh_token` in the answer
/// is ignored (see [`refresh_rotating`]). Refusals:
/// - an answer without `access_token` (Zoho answers 200 `{"error":
///   "invalid_code"}` for a revoked refresh token) or a 4xx (Salesforce 400
///   `{"error":"invalid_grant","error_description":"expired access/refresh
///   token"}`) → permanent, `code = auth_revoked`, the provider's `error` as category;
/// - Zoho's `{"error":"Access Denied","error_description":"You have made too
///   many requests continuously…"}` or a 429 → rate limited;
/// - 5xx, 408, a transport failure, an unreadable 2xx → transient.
///
/// Messages name the provider's error code only: never a token or a secret.
pub async fn refresh(
    http: &reqwest::Client,
    crm: &str,
    grant: &Grant,
) -> Result<AccessToken, CrmError> {
    exchange(http, crm, &grant.token_url, &refresh_form(grant), None).await
}

/// [`refresh`] for a provider that may rotate the refresh token: a new
/// `refresh_token` in the answer goes to `hook` before the access token is
/// returned (a failing hook fails the refresh, transient).
pub async fn refresh_rotating(
    http: &reqwest::Client,
    crm: &str,
    grant: &Grant,
    hook: &dyn OnRotated,
) -> Result<AccessToken, CrmError> {
    exchange(
        http,
        crm,
        &grant.token_url,
        &refresh_form(grant),
        Some((&grant.refresh_token, hook)),
    )
    .await
}

fn refresh_form(grant: &Grant) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "refresh_token".to_string()),
        ("client_id", grant.client_id.clone()),
        ("client_secret", grant.client_secret.clone()),
        ("refresh_token", grant.refresh_token.clone()),
    ]
}

/// Posts `form` to `token_url` and reads the token answer (see [`refresh`]
/// for how refusals are classified). `rotation`: the refresh token sent and
/// the hook a different one in the answer goes to.
pub async fn exchange(
    http: &reqwest::Client,
    crm: &str,
    token_url: &str,
    form: &[(&str, String)],
    rotation: Option<(&str, &dyn OnRotated)>,
) -> Result<AccessToken, CrmError> {
    let form = {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in form {
            ser.append_pair(k, v);
        }
        ser.finish()
    };
    let resp = http
        .post(token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .map_err(|e| classify::transport(crm, &e))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = match crate::net::read_capped(resp, MAX_TOKEN_ANSWER).await {
        Ok(b) => b,
        Err(crate::net::BodyError::Transport(e)) => return Err(classify::transport(crm, &e)),
        Err(crate::net::BodyError::TooLarge(max)) => {
            return Err(CrmError::new(
                crm,
                ErrorClass::Transient,
                Some(status),
                format!("the token endpoint answered more than {max} bytes"),
            ))
        }
    };
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let now = Instant::now();
    if (200..300).contains(&status) {
        if let Some(token) = v["access_token"].as_str().filter(|t| !t.is_empty()) {
            let lifetime = v["expires_in"]
                .as_u64()
                .or_else(|| v["expires_in"].as_str().and_then(|s| s.parse().ok()))
                .filter(|s| *s > 0)
                .map_or(DEFAULT_LIFETIME, Duration::from_secs);
            let domain = v["api_domain"]
                .as_str()
                .or_else(|| v["instance_url"].as_str())
                .map(|d| d.trim_end_matches('/').to_string());
            if let (Some((sent, hook)), Some(new)) = (
                rotation,
                v["refresh_token"].as_str().filter(|t| !t.is_empty()),
            ) {
                if new != sent {
                    hook.on_rotated(new).await.map_err(|why| {
                        CrmError::new(
                            crm,
                            ErrorClass::Transient,
                            Some(status),
                            format!("the rotated refresh token could not be kept: {why}"),
                        )
                    })?;
                }
            }
            return Ok(AccessToken::new(token.to_string(), domain, lifetime, now));
        }
        if v.is_null() {
            return Err(CrmError::new(
                crm,
                ErrorClass::Transient,
                Some(status),
                "the token endpoint answered without JSON",
            ));
        }
    }
    let code = v["error"].as_str().unwrap_or("").to_string();
    let description = v["error_description"].as_str().unwrap_or("");
    let throttled = status == 429
        || code.eq_ignore_ascii_case("access denied")
        || description
            .to_ascii_lowercase()
            .contains("too many requests");
    let mut e =
        if throttled {
            let mut e = CrmError::new(
                crm,
                ErrorClass::RateLimited,
                Some(status),
                format!(
                "the token endpoint refused to mint another access token ({}): too many refreshes",
                if code.is_empty() { "throttled" } else { &code }
            ),
            );
            e.retry_after = Some(classify::retry_after(&headers).unwrap_or(THROTTLED_WAIT));
            e
        } else if status >= 500 || status == 408 {
            CrmError::new(
                crm,
                ErrorClass::Transient,
                Some(status),
                format!("the token endpoint failed with HTTP {status}"),
            )
        } else {
            let mut e =
                CrmError::new(
                    crm,
                    ErrorClass::Permanent,
                    Some(status),
                    format!(
                "the OAuth grant was refused ({}): the refresh token is revoked or the client \
                 credentials are wrong; reconnect the connection and store the new grant",
                if code.is_empty() { "no access token" } else { &code }
            ),
                );
            e.code = Some(AUTH_REVOKED.into());
            e
        };
    if !code.is_empty() {
        e.category = Some(code);
    }
    Err(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn grant(refresh: &str) -> Grant {
        Grant {
            token_url: "http://accounts.invalid/oauth/v2/token".into(),
            client_id: "c".into(),
            client_secret: "s".into(),
            refresh_token: refresh.into(),
        }
    }

    fn token(v: &str, lifetime: Duration) -> AccessToken {
        AccessToken::new(v.into(), None, lifetime, Instant::now())
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_refresh() {
        let cache = Arc::new(TokenCache::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get(&grant("r"), || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(token("t1", Duration::from_secs(3600)))
                    })
                    .await
                    .map(|t| t.value)
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task").expect("token"), "t1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    /// The ledger's share, in memory: one token per key and a lease.
    #[derive(Default)]
    struct MemShare {
        token: std::sync::Mutex<Option<SharedToken>>,
        lease: std::sync::Mutex<Option<chrono::DateTime<Utc>>>,
        down: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl TokenShare for MemShare {
        async fn shared_token(
            &self,
            _key: &str,
        ) -> Result<Option<SharedToken>, lb_pipeline::PortError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(lb_pipeline::PortError::new("down"));
            }
            Ok(self.token.lock().unwrap().clone())
        }
        async fn lease_refresh(
            &self,
            _key: &str,
            until: chrono::DateTime<Utc>,
        ) -> Result<bool, lb_pipeline::PortError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(lb_pipeline::PortError::new("down"));
            }
            let mut lease = self.lease.lock().unwrap();
            if lease.is_some_and(|l| l > Utc::now()) {
                return Ok(false);
            }
            *lease = Some(until);
            Ok(true)
        }
        async fn share_token(
            &self,
            _key: &str,
            token: &SharedToken,
        ) -> Result<(), lb_pipeline::PortError> {
            *self.token.lock().unwrap() = Some(token.clone());
            *self.lease.lock().unwrap() = None;
            Ok(())
        }
    }

    /// Instances (one cache each) share one token: one refresh among them,
    /// and a token a 401 refused is refreshed once, not taken back.
    #[tokio::test]
    async fn instances_share_one_token_and_refresh_it_one_at_a_time() {
        let share = Arc::new(MemShare::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let instances: Vec<Arc<TokenCache>> = (0..4)
            .map(|_| Arc::new(TokenCache::new().shared(share.clone(), "zoho")))
            .collect();
        let mint = |calls: Arc<AtomicUsize>, v: &'static str| async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(token(v, Duration::from_secs(3600)))
        };
        let mut tasks = Vec::new();
        for cache in &instances {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get(&grant("r"), || mint(calls, "t1"))
                    .await
                    .map(|t| t.value)
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task").expect("token"), "t1");
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "one mint for four instances"
        );

        // The CRM refuses t1 (401): each instance drops it; one refresh follows.
        for cache in &instances {
            cache.invalidate("t1").await;
        }
        for cache in &instances {
            let t = cache.get(&grant("r"), || mint(calls.clone(), "t2")).await;
            assert_eq!(t.expect("token").value, "t2");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        // The share down: an instance refreshes alone rather than stall.
        share.down.store(true, Ordering::SeqCst);
        let alone = TokenCache::new().shared(share.clone(), "zoho");
        let t = alone.get(&grant("r"), || mint(calls.clone(), "t3")).await;
        assert_eq!(t.expect("token").value, "t3");
    }

    /// While another instance holds the lease, a caller waits for its token
    /// and then gives up rate-limited (not an attempt), without minting.
    #[tokio::test]
    async fn a_caller_waits_for_the_lease_holder_and_never_mints_beside_it() {
        let share = Arc::new(MemShare::default());
        *share.lease.lock().unwrap() = Some(Utc::now() + chrono::Duration::seconds(30));
        let cache = TokenCache::new().shared(share.clone(), "zoho");
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let e = cache
            .get(&grant("r"), || async move {
                c.fetch_add(1, Ordering::SeqCst);
                Ok(token("never", Duration::from_secs(3600)))
            })
            .await
            .expect_err("no token while another instance refreshes");
        assert_eq!(e.class, ErrorClass::RateLimited);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        // The holder shares its token: the next call takes it.
        share
            .share_token(
                "zoho",
                &token("shared", Duration::from_secs(3600)).to_shared(),
            )
            .await
            .unwrap();
        let t = cache
            .get(&grant("r"), || async {
                Ok(token("never", Duration::from_secs(3600)))
            })
            .await;
        assert_eq!(t.expect("token").value, "shared");
    }

    #[tokio::test]
    async fn a_stale_token_is_dropped_once_and_a_short_lived_one_is_refreshed_early() {
        let cache = TokenCache::new();
        let g = grant("r");
        let t = cache
            .get(&g, || async { Ok(token("t1", Duration::from_secs(3600))) })
            .await;
        assert_eq!(t.expect("token").value, "t1");
        cache.invalidate("other").await;
        let t = cache
            .get(&g, || async { Ok(token("t2", Duration::from_secs(3600))) })
            .await;
        assert_eq!(
            t.expect("token").value,
            "t1",
            "an unrelated 401 keeps the token"
        );
        cache.invalidate("t1").await;
        let t = cache
            .get(&g, || async { Ok(token("t2", Duration::from_millis(40))) })
            .await;
        assert_eq!(t.expect("token").value, "t2");
        tokio::time::sleep(Duration::from_millis(35)).await;
        let t = cache
            .get(&g, || async { Ok(token("t3", Duration::from_secs(3600))) })
            .await;
        assert_eq!(
            t.expect("token").value,
            "t3",
            "refreshed within the last quarter of its life"
        );
    }

    #[tokio::test]
    async fn a_refused_grant_is_remembered_until_the_secret_changes() {
        let cache = TokenCache::new();
        let calls = AtomicUsize::new(0);
        let refuse = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            let mut e = CrmError::new("zoho", ErrorClass::Permanent, Some(200), "refused");
            e.code = Some(AUTH_REVOKED.into());
            Err(e)
        };
        for _ in 0..3 {
            let e = cache.get(&grant("old"), refuse).await.expect_err("refused");
            assert_eq!(e.code.as_deref(), Some(AUTH_REVOKED));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let t = cache
            .get(&grant("new"), || async {
                Ok(token("t", Duration::from_secs(60)))
            })
            .await;
        assert!(t.is_ok(), "a new grant is tried at once");
    }

    /// A token endpoint on loopback that answers every request with `body`.
    async fn token_endpoint(body: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(body.as_bytes()).await;
                let _ = s.shutdown().await;
            }
        });
        format!("http://{addr}/services/oauth2/token")
    }

    struct Keep(std::sync::Mutex<Vec<String>>);

    #[async_trait]
    impl OnRotated for Keep {
        async fn on_rotated(&self, new_refresh_token: &str) -> Result<(), String> {
            self.0.lock().unwrap().push(new_refresh_token.to_string());
            Ok(())
        }
    }

    struct Refuse;

    #[async_trait]
    impl OnRotated for Refuse {
        async fn on_rotated(&self, _: &str) -> Result<(), String> {
            Err("store unavailable".into())
        }
    }

    #[tokio::test]
    async fn a_rotated_refresh_token_is_kept_before_the_access_token_is_returned() {
        let url = token_endpoint(
            r#"{"access_token":"00D!at","instance_url":"https://x.my.salesforce.com/","refresh_token":"r2","token_type":"Bearer"}"#,
        )
        .await;
        let http = reqwest::Client::new();
        let g = Grant {
            token_url: url,
            ..grant("r1")
        };
        let keep = Keep(std::sync::Mutex::new(Vec::new()));
        let t = refresh_rotating(&http, "salesforce", &g, &keep)
            .await
            .expect("token");
        assert_eq!(t.instance_url(), Some("https://x.my.salesforce.com"));
        assert_eq!(*keep.0.lock().unwrap(), vec!["r2".to_string()]);
        // Not kept → not used.
        let e = refresh_rotating(&http, "salesforce", &g, &Refuse)
            .await
            .expect_err("not kept");
        assert_eq!(e.class, ErrorClass::Transient);
        assert!(!e.message.contains("r2"), "{}", e.message);
        // The same refresh token back is no rotation.
        let same = Grant {
            refresh_token: "r2".into(),
            ..g.clone()
        };
        refresh_rotating(&http, "salesforce", &same, &Refuse)
            .await
            .expect("no rotation, no hook");
        // A plain refresh ignores it.
        assert!(refresh(&http, "zoho", &g).await.is_ok());
    }

    #[test]
    fn debug_output_carries_no_secrets() {
        let g = grant("1000.refresh");
        let text = format!("{g:?} {:?}", token("1000.access", Duration::from_secs(1)));
        assert!(
            !text.contains("1000.refresh") && !text.contains("1000.access"),
            "{text}"
        );
    }
}
