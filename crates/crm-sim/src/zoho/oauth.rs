//! The Zoho accounts server's token endpoint: one client with one refresh
//! token (the grant), access tokens minted from it, and the limits on minting.
//!
//! - `POST /oauth/v2/token` with `grant_type=refresh_token&client_id&
//!   client_secret&refresh_token`, in the query or a form body → 200
//!   `{"access_token","scope","api_domain","token_type":"Bearer","expires_in":3600}`,
//!   no new refresh token; access tokens live one hour ([V]
//!   zoho.com/accounts/protocol/oauth/web-apps/access-token-expiry.html, per
//!   research A.2). The official SDK posts a form body ([V]
//!   zoho/zohocrm-python-sdk-8.0 `oauth_token.py` `refresh_access_token`).
//! - Refusals answer **200** with `{"error": …}` and no access token: an unknown
//!   or revoked refresh token is `invalid_code` ([D] Weble/ZohoBooksApi#84,
//!   "IdentityProviderException(code: 200): invalid_code"; the SDK treats any
//!   answer without `access_token` as a failure, `parse_response`), a wrong
//!   secret `invalid_client_secret` ([D] a third-party client's doc comment
//!   quoting Zoho: `200 {"error":"invalid_client_secret"}`); an unknown client
//!   `invalid_client` and an unsupported grant type `unsupported_grant_type`
//!   are unconfirmed.
//! - One refresh token mints at most 10 access tokens per 10 minutes, then is
//!   blocked for the rest of the window ([V] Zoho accounts page, research
//!   A.2). The refusal is 400 `{"error_description":"You have made too many
//!   requests continuously. Please try again after some time.","error":"Access
//!   Denied","status":"failure"}` ([D] the same third-party doc comment; other
//!   clients saw it with 200). A refused request does not count (unconfirmed).
//! - `POST /oauth/v2/token/revoke` with `token=<refresh token>` → `{"status":
//!   "success"}` ([V] SDK `revoke_refresh_token`, `REVOKE_URL = "/revoke"`).
//!   That the access tokens minted from a revoked refresh token stop working
//!   at once is unconfirmed (modelled on the strict side).
//!
//! Not modelled: authorization codes, scopes per token, the older "30 active
//! access tokens per refresh token" limit.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::ZohoSimConfig;

/// The scopes every minted token reports (the simulator does not check them).
pub(crate) const SCOPES: &str =
    "ZohoCRM.modules.ALL,ZohoCRM.settings.fields.READ,ZohoSearch.securesearch.READ";

#[derive(Debug, Default)]
pub(crate) struct OAuth {
    /// The grant was revoked (by the client, or by `/__admin/oauth/revoke`).
    pub revoked: bool,
    /// Minted access tokens and when each expires.
    access: HashMap<String, Instant>,
    /// When each access token of the current window was minted.
    mints: VecDeque<Instant>,
}

/// What `POST /oauth/v2/token` answers.
pub(crate) struct TokenAnswer {
    pub status: StatusCode,
    pub body: Value,
}

impl TokenAnswer {
    fn refused(error: &str) -> TokenAnswer {
        TokenAnswer {
            status: StatusCode::OK,
            body: json!({ "error": error }),
        }
    }
}

impl OAuth {
    /// Whether `token` is a live access token of the grant.
    pub(crate) fn valid(&self, token: &str, now: Instant) -> bool {
        !self.revoked && self.access.get(token).is_some_and(|exp| now < *exp)
    }

    /// Access tokens still live.
    pub(crate) fn active(&self, now: Instant) -> usize {
        self.access.values().filter(|e| now < **e).count()
    }

    /// Mints within the current window.
    pub(crate) fn mints_in_window(&self, cfg: &ZohoSimConfig, now: Instant) -> usize {
        let window = Duration::from_secs(cfg.token_mint_window_s);
        self.mints
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < window)
            .count()
    }

    /// Every current access token stops working (`/__admin/oauth/expire`).
    pub(crate) fn expire_all(&mut self) {
        self.access.clear();
    }

    pub(crate) fn revoke(&mut self) {
        self.revoked = true;
        self.access.clear();
    }

    /// `POST /oauth/v2/token`.
    pub(crate) fn token(
        &mut self,
        cfg: &ZohoSimConfig,
        params: &[(String, String)],
        api_domain: &str,
        now: Instant,
    ) -> TokenAnswer {
        let get = |k: &str| {
            params
                .iter()
                .rev()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        if get("grant_type") != Some("refresh_token") {
            return TokenAnswer::refused("unsupported_grant_type");
        }
        if get("client_id") != Some(cfg.client_id.as_str()) {
            return TokenAnswer::refused("invalid_client");
        }
        if get("client_secret") != Some(cfg.client_secret.as_str()) {
            return TokenAnswer::refused("invalid_client_secret");
        }
        if self.revoked || get("refresh_token") != Some(cfg.refresh_token.as_str()) {
            return TokenAnswer::refused("invalid_code");
        }
        let window = Duration::from_secs(cfg.token_mint_window_s);
        while self
            .mints
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            self.mints.pop_front();
        }
        if self.mints.len() >= cfg.token_mint_limit as usize {
            return TokenAnswer {
                status: StatusCode::BAD_REQUEST,
                body: json!({
                    "error_description": "You have made too many requests continuously. Please try again after some time.",
                    "error": "Access Denied",
                    "status": "failure",
                }),
            };
        }
        self.mints.push_back(now);
        self.access.retain(|_, exp| now < *exp);
        let token = format!(
            "1000.{:032x}.{:032x}",
            rand::random::<u128>(),
            rand::random::<u128>()
        );
        self.access.insert(
            token.clone(),
            now + Duration::from_secs(cfg.access_token_ttl_s),
        );
        TokenAnswer {
            status: StatusCode::OK,
            body: json!({
                "access_token": token,
                "scope": SCOPES,
                "api_domain": api_domain,
                "token_type": "Bearer",
                "expires_in": cfg.access_token_ttl_s,
            }),
        }
    }

    /// `POST /oauth/v2/token/revoke`.
    pub(crate) fn revoke_request(
        &mut self,
        cfg: &ZohoSimConfig,
        params: &[(String, String)],
    ) -> Value {
        let token = params
            .iter()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.as_str());
        if token == Some(cfg.refresh_token.as_str()) {
            self.revoke();
            json!({"status": "success"})
        } else {
            // Unconfirmed: what Zoho answers for a token it does not know.
            json!({"status": "failure", "error": "invalid_token"})
        }
    }
}

/// The token of an `Authorization: Zoho-oauthtoken <token>` header ([V]
/// upsert page, "Header"). Other schemes are not accepted (unconfirmed).
pub(crate) fn zoho_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    (scheme == "Zoho-oauthtoken")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(refresh: &str) -> Vec<(String, String)> {
        let cfg = ZohoSimConfig::default();
        vec![
            ("grant_type".into(), "refresh_token".into()),
            ("client_id".into(), cfg.client_id),
            ("client_secret".into(), cfg.client_secret),
            ("refresh_token".into(), refresh.into()),
        ]
    }

    #[test]
    fn a_refresh_mints_an_access_token_that_expires() {
        let cfg = ZohoSimConfig {
            access_token_ttl_s: 2,
            ..ZohoSimConfig::default()
        };
        let mut o = OAuth::default();
        let now = Instant::now();
        let a = o.token(&cfg, &params(&cfg.refresh_token), "http://x", now);
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.body["token_type"], "Bearer");
        assert_eq!(a.body["expires_in"], 2);
        assert_eq!(a.body["api_domain"], "http://x");
        assert!(a.body.get("refresh_token").is_none());
        let token = a.body["access_token"].as_str().expect("token").to_owned();
        assert!(o.valid(&token, now + Duration::from_secs(1)));
        assert!(!o.valid(&token, now + Duration::from_secs(2)));
        assert!(!o.valid("1000.other", now));
    }

    #[test]
    fn refusals_answer_200_with_an_error_and_no_token() {
        let cfg = ZohoSimConfig::default();
        let mut o = OAuth::default();
        let now = Instant::now();
        let bad = o.token(&cfg, &params("1000.unknown"), "http://x", now);
        assert_eq!(
            (bad.status, bad.body.clone()),
            (StatusCode::OK, json!({"error": "invalid_code"}))
        );
        let mut wrong_secret = params(&cfg.refresh_token);
        wrong_secret[2].1 = "nope".into();
        assert_eq!(
            o.token(&cfg, &wrong_secret, "http://x", now).body,
            json!({"error": "invalid_client_secret"})
        );
        o.revoke();
        assert_eq!(
            o.token(&cfg, &params(&cfg.refresh_token), "http://x", now)
                .body,
            json!({"error": "invalid_code"})
        );
    }

    #[test]
    fn ten_mints_per_ten_minutes_then_access_denied_until_the_window_moves() {
        let cfg = ZohoSimConfig::default();
        let mut o = OAuth::default();
        let start = Instant::now();
        for i in 0..10 {
            let a = o.token(
                &cfg,
                &params(&cfg.refresh_token),
                "d",
                start + Duration::from_secs(i),
            );
            assert!(a.body["access_token"].is_string(), "mint {i}");
        }
        let refused = o.token(
            &cfg,
            &params(&cfg.refresh_token),
            "d",
            start + Duration::from_secs(30),
        );
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert_eq!(refused.body["error"], "Access Denied");
        assert_eq!(o.mints_in_window(&cfg, start + Duration::from_secs(30)), 10);
        let later = o.token(
            &cfg,
            &params(&cfg.refresh_token),
            "d",
            start + Duration::from_secs(600),
        );
        assert!(later.body["access_token"].is_string());
    }

    #[test]
    fn only_the_zoho_scheme_carries_a_token() {
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            "authorization",
            "Zoho-oauthtoken 1000.abc".parse().expect("value"),
        );
        assert_eq!(zoho_token(&h), Some("1000.abc"));
        h.insert("authorization", "Bearer 1000.abc".parse().expect("value"));
        assert_eq!(zoho_token(&h), None);
    }
}
