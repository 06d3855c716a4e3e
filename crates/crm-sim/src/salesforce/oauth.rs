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
//!   values, [R] the exact claim checks).
//! - The assertion's RS256 signature is verified against the connected app's
//!   certificate (`jwt_public_key`: the X.509 certificate uploaded with "Use
//!   digital signatures", or its public key): Salesforce validates the JWT by
//!   its signature with the previously configured certificate ([V]
//!   help.salesforce.com "OAuth 2.0 JWT Bearer Flow for Server-to-Server
//!   Integration", `remoteaccess_oauth_jwt_flow.htm`). A signature that does
//!   not verify, or an app without a certificate, is refused like a malformed
//!   assertion: `invalid_grant` / `invalid assertion` ([R], below). The check
//!   is `jsonwebtoken`'s RS256 (RSASSA-PKCS1-v1_5 with SHA-256, keys of
//!   2048-8192 bits), the crate the adapter signs with.
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
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
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
                let assertion = get("assertion").unwrap_or_default();
                let Some(claims) = jwt_claims(assertion) else {
                    return refused("invalid_grant", "invalid assertion");
                };
                if claims["iss"].as_str() != Some(cfg.client_id.as_str()) {
                    return refused("invalid_client_id", "client identifier invalid");
                }
                // The app is known by `iss`: its certificate checks the signature.
                if let Err(why) = verify_rs256(assertion, cfg.jwt_public_key.as_deref()) {
                    tracing::info!(why = %why, "JWT bearer assertion refused");
                    return refused("invalid_grant", "invalid assertion");
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

/// The claims of a compact JWT whose header says RS256 (the signature is
/// checked by [`verify_rs256`]), or `None`.
fn jwt_claims(assertion: &str) -> Option<Value> {
    if assertion.split('.').count() != 3 {
        return None;
    }
    let jwt = jsonwebtoken::dangerous::insecure_decode::<Value>(assertion).ok()?;
    (jwt.header.alg == Algorithm::RS256).then_some(jwt.claims)
}

/// The connected app's certificate or public key as a verifying key: a PEM
/// `CERTIFICATE`, `PUBLIC KEY` or `RSA PUBLIC KEY` holding an RSA key.
pub(crate) fn app_public_key(pem: &str) -> Result<DecodingKey, String> {
    if pem.contains("PRIVATE KEY-----") {
        return Err("jwt_public_key is a private key: the app holds its certificate".to_owned());
    }
    DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| {
        format!(
            "jwt_public_key is not a PEM RSA certificate or public key \
             (BEGIN CERTIFICATE, BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY): {e}"
        )
    })
}

/// Checks an assertion's RS256 signature with the app's certificate.
fn verify_rs256(assertion: &str, public_key: Option<&str>) -> Result<(), String> {
    let Some(pem) = public_key else {
        return Err("the connected app has no certificate (jwt_public_key is not set)".to_owned());
    };
    let key = app_public_key(pem)?;
    // Only the signature and `alg` here: the claims are checked by the caller.
    let mut only_signature = Validation::new(Algorithm::RS256);
    only_signature.validate_exp = false;
    only_signature.validate_aud = false;
    only_signature.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(assertion, &key, &only_signature)
        .map(|_| ())
        .map_err(|e| format!("the signature does not verify with the app's certificate: {e}"))
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

    /// The test-only key pair of `crates/crm-sim/testdata` (see its README).
    const TEST_KEY: &str = include_str!("../../testdata/jwt-test-key.pem");
    const TEST_KEY_PUB: &str = include_str!("../../testdata/jwt-test-key.pub.pem");
    const TEST_CERT: &str = include_str!("../../testdata/jwt-test-cert.pem");
    const OTHER_KEY: &str = include_str!("../../testdata/jwt-other-test-key.pem");

    fn jwt_cfg(public_key: &str) -> SalesforceSimConfig {
        SalesforceSimConfig {
            jwt_public_key: Some(public_key.to_owned()),
            ..SalesforceSimConfig::default()
        }
    }

    fn signed(key_pem: &str, iss: &str, sub: &str, aud: &str, exp: i64) -> String {
        let claims = json!({"iss": iss, "sub": sub, "aud": aud, "exp": exp});
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.as_bytes()).expect("test key");
        jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::RS256), &claims, &key)
            .expect("signed")
    }

    fn grant(assertion: String) -> Vec<(String, String)> {
        vec![
            ("grant_type".to_owned(), JWT_GRANT.to_owned()),
            ("assertion".to_owned(), assertion),
        ]
    }

    fn in_3_minutes() -> i64 {
        chrono::Utc::now().timestamp() + 180
    }

    #[test]
    fn a_jwt_assertion_signed_with_the_apps_key_is_granted() {
        // The app may hold the certificate (as uploaded) or its public key.
        for public_key in [TEST_CERT, TEST_KEY_PUB] {
            let cfg = jwt_cfg(public_key);
            let mut o = OAuth::new(&cfg);
            let jwt = signed(
                TEST_KEY,
                &cfg.client_id,
                &cfg.username,
                "http://l",
                in_3_minutes(),
            );
            let ok = o.token(&cfg, &grant(jwt), "http://l", "http://i", Instant::now());
            assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
            assert!(ok.body.get("refresh_token").is_none());
            assert_eq!(o.jwt_grants, 1);
        }
    }

    #[test]
    fn a_jwt_assertion_whose_signature_does_not_verify_is_an_invalid_grant() {
        let cfg = jwt_cfg(TEST_CERT);
        let mut o = OAuth::new(&cfg);
        let exp = in_3_minutes();
        let good = signed(TEST_KEY, &cfg.client_id, &cfg.username, "http://l", exp);
        let other_user = signed(
            TEST_KEY,
            &cfg.client_id,
            "admin@sim.example.com",
            "http://l",
            exp,
        );
        let parts: Vec<&str> = good.split('.').collect();
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            other_user.split('.').nth(1).unwrap(),
            parts[2]
        );
        let hs256 = |secret: &[u8]| {
            jwt_of(
                jsonwebtoken::Header::new(Algorithm::HS256),
                &cfg,
                &jsonwebtoken::EncodingKey::from_secret(secret).expect("hmac key"),
            )
        };
        // {"alg":"none","typ":"JWT"}: unsigned.
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
        for (what, assertion) in [
            (
                "another key",
                signed(OTHER_KEY, &cfg.client_id, &cfg.username, "http://l", exp),
            ),
            ("claims swapped under the signature", tampered),
            ("HS256", hs256(b"any secret")),
            (
                "HS256 keyed with the public key",
                hs256(TEST_CERT.as_bytes()),
            ),
            ("alg none", none.clone()),
            ("alg none with a signature", format!("{none}{}", parts[2])),
            ("no signature", format!("{}.{}.", parts[0], parts[1])),
            ("two parts", format!("{}.{}", parts[0], parts[1])),
        ] {
            let a = o.token(
                &cfg,
                &grant(assertion),
                "http://l",
                "http://i",
                Instant::now(),
            );
            assert_eq!(
                (a.status, &a.body),
                (
                    StatusCode::BAD_REQUEST,
                    &json!({"error": "invalid_grant", "error_description": "invalid assertion"})
                ),
                "{what}"
            );
        }
        assert_eq!(o.jwt_grants, 0);
        // A connected app without a certificate takes no JWT at all.
        let no_cert = SalesforceSimConfig::default();
        let a = o.token(
            &no_cert,
            &grant(good),
            "http://l",
            "http://i",
            Instant::now(),
        );
        assert_eq!(a.body["error"], "invalid_grant");
    }

    fn jwt_of(
        header: jsonwebtoken::Header,
        cfg: &SalesforceSimConfig,
        key: &jsonwebtoken::EncodingKey,
    ) -> String {
        let claims = json!({"iss": cfg.client_id, "sub": cfg.username, "aud": "http://l", "exp": in_3_minutes()});
        jsonwebtoken::encode(&header, &claims, key).expect("encoded")
    }

    #[test]
    fn a_signed_jwt_assertion_is_checked_for_its_claims() {
        let cfg = jwt_cfg(TEST_CERT);
        let mut o = OAuth::new(&cfg);
        let now = Instant::now();
        let exp = in_3_minutes();
        let (id, user) = (cfg.client_id.as_str(), cfg.username.as_str());
        for (assertion, error) in [
            (
                signed(TEST_KEY, "other", user, "http://l", exp),
                "invalid_client_id",
            ),
            (
                signed(TEST_KEY, id, "someone@else", "http://l", exp),
                "invalid_grant",
            ),
            (
                signed(TEST_KEY, id, user, "http://l", exp - 400),
                "invalid_grant",
            ),
            (
                signed(TEST_KEY, id, user, "https://evil", exp),
                "invalid_grant",
            ),
            ("not.a.jwt!".to_owned(), "invalid_grant"),
        ] {
            let a = o.token(&cfg, &grant(assertion), "http://l", "http://i", now);
            assert_eq!(a.body["error"], error, "{}", a.body);
        }
        for aud in [
            "https://login.salesforce.com",
            "https://test.salesforce.com/",
        ] {
            let a = o.token(
                &cfg,
                &grant(signed(TEST_KEY, id, user, aud, exp)),
                "http://l",
                "http://i",
                now,
            );
            assert_eq!(a.status, StatusCode::OK, "{aud}: {}", a.body);
        }
    }

    #[test]
    fn the_apps_key_must_be_a_public_rsa_key() {
        assert!(app_public_key(TEST_CERT).is_ok());
        assert!(app_public_key(TEST_KEY_PUB).is_ok());
        for bad in [
            TEST_KEY,
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
            "nope",
        ] {
            assert!(app_public_key(bad).is_err(), "{bad}");
        }
    }
}
