//! The login server's token endpoint, `POST /services/oauth2/token` (form
//! body, [V] research A.1), and the access tokens it mints.
//!
//! - `grant_type=refresh_token&client_id&client_secret&refresh_token` → 200
//!   `{"access_token","signature","scope","instance_url","id","token_type":
//!   "Bearer","issued_at"}` ([V] jsforce `TokenResponse`, Salesforce's
//!   refresh-token flow page): no `expires_in` — the session timeout is the
//!   org's setting, so an access token simply stops working after
//!   `access_token_ttl_s` and the API answers 401 `INVALID_SESSION_ID`.
//! - Refresh-token rotation (`rotate_refresh_tokens`): each refresh answers a
//!   new `refresh_token` and invalidates the one used; "if someone tries to
//!   use a refresh token that's been rotated out, Salesforce invalidates the
//!   current refresh token and any associated access tokens" ([V]
//!   help.salesforce.com `remoteaccess_oauth_refresh_token_flow.htm`).
//! - `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>`
//!   → the same answer without `refresh_token` ([V] JWT bearer flow page).
//!   The assertion must be three base64url parts with header `alg` RS256 and
//!   claims `iss` = client_id, `sub` = the configured username, `aud` = this
//!   login server (or `https://login.salesforce.com` /
//!   `https://test.salesforce.com`), `exp` in the future ([V] flow, [D] `aud`
//!   values, [R] the exact claim checks). **The RS256 signature is not
//!   verified** (no RSA crate is a dependency here): only that one is present.
//! - Refusals are 400 `{"error","error_description"}`: a revoked, unknown or
//!   rotated-out refresh token `invalid_grant` / `expired access/refresh
//!   token`; wrong client credentials `invalid_client` / `invalid client
//!   credentials`; another grant type `unsupported_grant_type` / `grant type
//!   not supported` ([D] nango.dev and useparagon.com "Salesforce OAuth
//!   refresh token invalid_grant" pages). JWT refusals (`invalid_grant` /
//!   `invalid assertion`, `user hasn't approved this consumer`) are [R].

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::SalesforceSimConfig;

/// The org and the integration user every identity URL names.
pub(crate) const ORG_ID: &str = "00D5g000000SIMORGA";
pub(crate) const USER_ID: &str = "0055g000000SIMUSRA";
const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

#[derive(Debug)]
pub(crate) struct OAuth {
    /// The grant's refresh token now.
    current: String,
    /// Refresh tokens rotated out (using one revokes the grant).
    retired: HashSet<String>,
    /// The grant was revoked (`/__admin/oauth/revoke`, or a rotated-out token reused).
    pub revoked: bool,
    /// A rotated-out refresh token was presented.
    pub reuse_detected: bool,
    /// Access tokens and when each expires.
    access: HashMap<String, Instant>,
    pub refreshes: u64,
    pub jwt_grants: u64,
}

pub(crate) struct TokenAnswer {
    pub status: StatusCode,
    pub body: Value,
}

fn refused(error: &str, description: &str) -> TokenAnswer {
    TokenAnswer {
        status: StatusCode::BAD_REQUEST,
        body: json!({"error": error, "error_description": description}),
    }
}

fn random_token(prefix: &str) -> String {
    format!(
        "{prefix}{:032x}{:016x}",
        rand::random::<u128>(),
        rand::random::<u64>()
    )
}

impl OAuth {
    pub(crate) fn new(cfg: &SalesforceSimConfig) -> OAuth {
        OAuth {
            current: cfg.refresh_token.clone(),
            retired: HashSet::new(),
            revoked: false,
            reuse_detected: false,
            access: HashMap::new(),
            refreshes: 0,
            jwt_grants: 0,
        }
    }

    pub(crate) fn valid(&self, token: &str, now: Instant) -> bool {
        !self.revoked && self.access.get(token).is_some_and(|exp| now < *exp)
    }

    pub(crate) fn active(&self, now: Instant) -> usize {
        self.access.values().filter(|e| now < **e).count()
    }

    /// Every access token stops working (`/__admin/oauth/expire`).
    pub(crate) fn expire_all(&mut self) {
        self.access.clear();
    }

    pub(crate) fn revoke(&mut self) {
        self.revoked = true;
        self.access.clear();
    }

    pub(crate) fn restore(&mut self) {
        self.revoked = false;
        self.reuse_detected = false;
    }

    /// `POST /services/oauth2/token`.
    pub(crate) fn token(
        &mut self,
        cfg: &SalesforceSimConfig,
        params: &[(String, String)],
        login_url: &str,
        instance_url: &str,
        now: Instant,
    ) -> TokenAnswer {
        let get = |k: &str| {
            params
                .iter()
                .rev()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        match get("grant_type") {
            Some("refresh_token") => {
                if get("client_id") != Some(cfg.client_id.as_str())
                    || get("client_secret") != Some(cfg.client_secret.as_str())
                {
                    return refused("invalid_client", "invalid client credentials");
                }
                let presented = get("refresh_token").unwrap_or_default();
                if self.retired.contains(presented) {
                    // Reuse of a rotated-out token revokes the whole grant.
                    self.reuse_detected = true;
                    self.revoke();
                    return refused("invalid_grant", "expired access/refresh token");
                }
                if self.revoked || presented != self.current {
                    return refused("invalid_grant", "expired access/refresh token");
                }
                self.refreshes += 1;
                let mut body = self.mint(cfg, instance_url, now);
                if cfg.rotate_refresh_tokens {
                    let next = random_token("5Aep861");
                    self.retired
                        .insert(std::mem::replace(&mut self.current, next.clone()));
                    body["refresh_token"] = json!(next);
                }
                TokenAnswer {
                    status: StatusCode::OK,
                    body,
                }
            }
            Some(JWT_GRANT) => {
                let Some(claims) = get("assertion").and_then(jwt_claims) else {
                    return refused("invalid_grant", "invalid assertion");
                };
                if claims["iss"].as_str() != Some(cfg.client_id.as_str()) {
                    return refused("invalid_client_id", "client identifier invalid");
                }
                let aud = claims["aud"]
                    .as_str()
                    .unwrap_or_default()
                    .trim_end_matches('/');
                let aud_ok = aud == login_url.trim_end_matches('/')
                    || aud == "https://login.salesforce.com"
                    || aud == "https://test.salesforce.com";
                if !aud_ok {
                    return refused("invalid_grant", "audience is invalid");
                }
                let exp = claims["exp"].as_i64().unwrap_or(0);
                if exp <= chrono::Utc::now().timestamp() {
                    return refused("invalid_grant", "expired authorization code");
                }
                if self.revoked || claims["sub"].as_str() != Some(cfg.username.as_str()) {
                    return refused("invalid_grant", "user hasn't approved this consumer");
                }
                self.jwt_grants += 1;
                TokenAnswer {
                    status: StatusCode::OK,
                    body: self.mint(cfg, instance_url, now),
                }
            }
            _ => refused("unsupported_grant_type", "grant type not supported"),
        }
    }

    fn mint(&mut self, cfg: &SalesforceSimConfig, instance_url: &str, now: Instant) -> Value {
        self.access.retain(|_, exp| now < *exp);
        // Salesforce access tokens start with the org id and `!`.
        let token = random_token(&format!("{}!", &ORG_ID[..15]));
        self.access.insert(
            token.clone(),
            now + Duration::from_secs(cfg.access_token_ttl_s),
        );
        json!({
            "access_token": token,
            "signature": "c2ltdWxhdGVkLXNpZ25hdHVyZQ==",
            "scope": "api refresh_token",
            "instance_url": instance_url,
            "id": format!("{}/id/{ORG_ID}/{USER_ID}", instance_url),
            "token_type": "Bearer",
            "issued_at": chrono::Utc::now().timestamp_millis().to_string(),
        })
    }
}

/// The claims of a compact JWT whose header says RS256 and which carries a
/// signature part (not verified), or `None`.
fn jwt_claims(assertion: &str) -> Option<Value> {
    let mut parts = assertion.split('.');
    let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || signature.is_empty() {
        return None;
    }
    let header: Value = serde_json::from_slice(&base64url_decode(header)?).ok()?;
    if header["alg"] != "RS256" {
        return None;
    }
    base64url_decode(signature)?;
    serde_json::from_slice(&base64url_decode(claims)?).ok()
}

/// Unpadded base64url (RFC 4648 §5), as JWTs use.
pub(crate) fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = s.trim_end_matches('=').as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= value(*c)? << (18 - 6 * i);
        }
        let n = chunk.len() - 1;
        for i in 0..n {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

/// The token of an `Authorization: Bearer <token>` header ([V] REST docs:
/// "Authorization: Bearer token"; the older `OAuth <token>` scheme is not
/// accepted here, unconfirmed whether Salesforce still does).
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("Bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(cfg: &SalesforceSimConfig, refresh: &str) -> Vec<(String, String)> {
        vec![
            ("grant_type".into(), "refresh_token".into()),
            ("client_id".into(), cfg.client_id.clone()),
            ("client_secret".into(), cfg.client_secret.clone()),
            ("refresh_token".into(), refresh.into()),
        ]
    }

    fn b64(s: &str) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let b = s.as_bytes();
        let mut out = String::new();
        for chunk in b.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, c)| acc | (*c as u32) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn base64url_round_trips() {
        for s in ["", "a", "ab", "abc", "{\"alg\":\"RS256\"}"] {
            assert_eq!(base64url_decode(&b64(s)).unwrap(), s.as_bytes(), "{s}");
        }
        assert!(base64url_decode("a").is_none());
        assert!(base64url_decode("a*bc").is_none());
    }

    #[test]
    fn a_refresh_answers_salesforce_fields_without_expires_in() {
        let cfg = SalesforceSimConfig::default();
        let mut o = OAuth::new(&cfg);
        let now = Instant::now();
        let a = o.token(
            &cfg,
            &form(&cfg, &cfg.refresh_token),
            "http://l",
            "http://i",
            now,
        );
        assert_eq!(a.status, StatusCode::OK);
        for k in [
            "access_token",
            "instance_url",
            "id",
            "token_type",
            "issued_at",
            "signature",
        ] {
            assert!(a.body.get(k).is_some(), "{k}");
        }
        assert!(a.body.get("expires_in").is_none());
        assert!(
            a.body.get("refresh_token").is_none(),
            "no rotation by default"
        );
        let t = a.body["access_token"].as_str().unwrap();
        assert!(o.valid(t, now));
        assert!(!o.valid(t, now + Duration::from_secs(cfg.access_token_ttl_s)));
    }

    #[test]
    fn a_rotated_out_refresh_token_revokes_the_grant() {
        let cfg = SalesforceSimConfig {
            rotate_refresh_tokens: true,
            ..SalesforceSimConfig::default()
        };
        let mut o = OAuth::new(&cfg);
        let now = Instant::now();
        let first = o.token(&cfg, &form(&cfg, &cfg.refresh_token), "l", "i", now);
        let next = first.body["refresh_token"].as_str().unwrap().to_owned();
        let access = first.body["access_token"].as_str().unwrap().to_owned();
        let second = o.token(&cfg, &form(&cfg, &next), "l", "i", now);
        assert_eq!(second.status, StatusCode::OK);
        let reuse = o.token(&cfg, &form(&cfg, &cfg.refresh_token), "l", "i", now);
        assert_eq!(
            reuse.body,
            json!({"error": "invalid_grant", "error_description": "expired access/refresh token"})
        );
        assert!(o.reuse_detected && o.revoked);
        assert!(!o.valid(&access, now));
        let current = second.body["refresh_token"].as_str().unwrap().to_owned();
        assert_eq!(
            o.token(&cfg, &form(&cfg, &current), "l", "i", now).status,
            StatusCode::BAD_REQUEST,
            "the current token went with it"
        );
    }

    #[test]
    fn refusals_name_salesforce_errors() {
        let cfg = SalesforceSimConfig::default();
        let mut o = OAuth::new(&cfg);
        let now = Instant::now();
        let mut bad = form(&cfg, &cfg.refresh_token);
        bad[2].1 = "nope".into();
        assert_eq!(
            o.token(&cfg, &bad, "l", "i", now).body["error"],
            "invalid_client"
        );
        bad[0].1 = "password".into();
        assert_eq!(
            o.token(&cfg, &bad, "l", "i", now).body["error"],
            "unsupported_grant_type"
        );
        o.revoke();
        let r = o.token(&cfg, &form(&cfg, &cfg.refresh_token), "l", "i", now);
        assert_eq!(
            (r.status, r.body["error"].clone()),
            (StatusCode::BAD_REQUEST, json!("invalid_grant"))
        );
    }

    #[test]
    fn a_jwt_assertion_is_checked_for_shape_and_claims() {
        let cfg = SalesforceSimConfig::default();
        let mut o = OAuth::new(&cfg);
        let now = Instant::now();
        let exp = chrono::Utc::now().timestamp() + 180;
        let jwt = |alg: &str, iss: &str, sub: &str, aud: &str, exp: i64| {
            format!(
                "{}.{}.{}",
                b64(&json!({"alg": alg}).to_string()),
                b64(&json!({"iss": iss, "sub": sub, "aud": aud, "exp": exp}).to_string()),
                b64("sig")
            )
        };
        let grant = |assertion: String| {
            vec![
                ("grant_type".to_owned(), JWT_GRANT.to_owned()),
                ("assertion".to_owned(), assertion),
            ]
        };
        let ok = o.token(
            &cfg,
            &grant(jwt("RS256", &cfg.client_id, &cfg.username, "http://l", exp)),
            "http://l",
            "http://i",
            now,
        );
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
        assert!(ok.body.get("refresh_token").is_none());
        for (assertion, error) in [
            (
                jwt("HS256", &cfg.client_id, &cfg.username, "http://l", exp),
                "invalid_grant",
            ),
            (
                jwt("RS256", "other", &cfg.username, "http://l", exp),
                "invalid_client_id",
            ),
            (
                jwt("RS256", &cfg.client_id, "someone@else", "http://l", exp),
                "invalid_grant",
            ),
            (
                jwt(
                    "RS256",
                    &cfg.client_id,
                    &cfg.username,
                    "http://l",
                    exp - 400,
                ),
                "invalid_grant",
            ),
            (
                jwt("RS256", &cfg.client_id, &cfg.username, "https://evil", exp),
                "invalid_grant",
            ),
            ("not.a.jwt!".to_owned(), "invalid_grant"),
        ] {
            let a = o.token(&cfg, &grant(assertion), "http://l", "http://i", now);
            assert_eq!(a.body["error"], error, "{}", a.body);
        }
    }
}
