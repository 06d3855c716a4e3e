//! The grant in the secret and the access token it yields.
//!
//! - `{"client_id","client_secret","refresh_token"}`: the refresh-token flow
//!   (`POST {login_url}/services/oauth2/token`, [V] research A.1) through the
//!   shared OAuth core ([`crate::oauth`]), refresh-token rotation included:
//!   a rotated refresh token is kept in this adapter's memory and **written
//!   back to the secret** (the grant with its new `refresh_token`) before the
//!   new access token is used, so that a cold start or another instance
//!   presents the newest token (Salesforce revokes the whole grant when a
//!   rotated-out token is presented again, [V] help.salesforce.com
//!   refresh-token flow). If the write fails the token is still used from
//!   memory and the failure is logged as an error: that instance keeps
//!   working, a new one would find the old token.
//! - `{"client_id","username","private_key"}`: the JWT bearer flow
//!   (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`, claims `iss`
//!   = client_id, `sub` = username, `aud` = the login server, `exp` three
//!   minutes on; RS256, [V] flow, [D] `aud`, [R] window). The assertion is
//!   built and RS256-signed by the `jsonwebtoken` crate (aws-lc-rs, the
//!   crypto rustls already links) with `private_key`: the connected app's RSA
//!   key as PEM, PKCS#1 (`-----BEGIN RSA PRIVATE KEY-----`) or unencrypted
//!   PKCS#8 (`-----BEGIN PRIVATE KEY-----`, what OpenSSL 3's `genrsa` writes);
//!   the app holds its certificate ("Use digital signatures"). A key that does
//!   not parse or sign is a permanent error that says which forms are
//!   accepted and never quotes the key.
//! - Either may carry `"login_url"` (a sandbox's `https://test.salesforce.com`
//!   or a My Domain), which wins over the config's.

use std::sync::Mutex;

use async_trait::async_trait;
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lb_pipeline::{CrmError, ErrorClass};
use serde_json::{json, Value};
use tracing::{debug, info, warn};

use super::SalesforceCrm;
use crate::oauth::{self, AccessToken, Grant, OnRotated};

/// How long a JWT bearer assertion is valid: three minutes ([R] window).
const ASSERTION_LIFETIME_S: i64 = 180;

/// The claims of a JWT bearer assertion.
#[derive(serde::Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
}

/// What the secret holds.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum GrantKey {
    Refresh(Grant),
    Jwt {
        login_url: String,
        client_id: String,
        username: String,
        private_key: String,
    },
}

/// A rotated refresh token, and the secret's token it descends from.
struct Rotated {
    from: String,
    current: String,
}

/// Rotated refresh tokens, kept in memory.
#[derive(Default)]
pub(super) struct RotationMemory(Mutex<Option<Rotated>>);

impl RotationMemory {
    /// The refresh token to use for a secret holding `secret_token`.
    fn current_for(&self, secret_token: &str) -> String {
        let slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match slot.as_ref() {
            Some(r) if r.from == secret_token => r.current.clone(),
            _ => secret_token.to_string(),
        }
    }
}

/// The hook the OAuth core calls with a new refresh token.
struct KeepRotated<'a> {
    memory: &'a RotationMemory,
    from: String,
    crm: &'a str,
    /// The grant's secret, written back with the new token.
    secret: &'a lb_pipeline::secrets::CachedSecret,
}

#[async_trait]
impl OnRotated for KeepRotated<'_> {
    async fn on_rotated(&self, new_refresh_token: &str) -> Result<(), String> {
        {
            let mut slot = self.memory.0.lock().unwrap_or_else(|p| p.into_inner());
            *slot = Some(Rotated {
                from: self.from.clone(),
                current: new_refresh_token.to_string(),
            });
        }
        // The grant as the secret holds it, with the new refresh token.
        let written = match self.secret.get().await {
            Ok(raw) => {
                let mut grant: Value = serde_json::from_str(raw.expose()).unwrap_or(Value::Null);
                if grant.is_object() {
                    grant["refresh_token"] = json!(new_refresh_token);
                    self.secret
                        .put(&grant.to_string())
                        .await
                        .map_err(|e| e.to_string())
                } else {
                    Err("the secret is not a JSON grant".to_string())
                }
            }
            Err(e) => Err(e.to_string()),
        };
        match written {
            Ok(()) => {
                info!(crm = %self.crm, "refresh token rotated; the new one is written to the grant's secret")
            }
            Err(e) => {
                tracing::error!(crm = %self.crm, error = %e, "refresh token rotated but not written to the secret: this instance keeps it in memory; a new instance would present the old one, which revokes the grant")
            }
        }
        Ok(())
    }
}

impl SalesforceCrm {
    /// The login server's token endpoint for a login URL.
    fn token_url(login_url: &str) -> String {
        format!("{}/services/oauth2/token", login_url.trim_end_matches('/'))
    }

    /// The grant from the secret.
    pub(super) async fn read_grant(&self) -> Result<GrantKey, CrmError> {
        let raw = self.grant.get().await.map_err(|e| {
            self.err(
                ErrorClass::Transient,
                None,
                format!("could not read the Salesforce grant secret: {e}"),
            )
        })?;
        let v: Value = serde_json::from_str(raw.expose()).unwrap_or(Value::Null);
        let field = |k: &str| {
            v[k].as_str()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let login_url = field("login_url").unwrap_or_else(|| self.cfg.login_url.clone());
        match (
            field("client_id"),
            field("client_secret"),
            field("refresh_token"),
            field("username"),
            v["private_key"].as_str().filter(|k| !k.trim().is_empty()),
        ) {
            (Some(client_id), Some(client_secret), Some(refresh_token), _, _) => {
                Ok(GrantKey::Refresh(Grant {
                    token_url: Self::token_url(&login_url),
                    client_id,
                    client_secret,
                    refresh_token,
                }))
            }
            (Some(client_id), _, _, Some(username), Some(key)) => Ok(GrantKey::Jwt {
                login_url,
                client_id,
                username,
                private_key: key.to_string(),
            }),
            _ => Err(self.err(
                ErrorClass::Permanent,
                None,
                format!(
                    "secret {} holds no Salesforce grant (expected JSON with client_id, \
                     client_secret and refresh_token, or client_id, username and private_key)",
                    self.grant.id()
                ),
            )),
        }
    }

    /// The access token (cached; refreshed single-flight when stale).
    pub(super) async fn token(&self) -> Result<AccessToken, CrmError> {
        let key = self.read_grant().await?;
        let crm = self.cfg.name.as_str();
        self.tokens
            .get(&key, || async {
                let t = match &key {
                    GrantKey::Refresh(g) => {
                        let secret_token = g.refresh_token.clone();
                        let grant = Grant {
                            refresh_token: self.rotation.current_for(&secret_token),
                            ..g.clone()
                        };
                        let hook = KeepRotated {
                            memory: &self.rotation,
                            from: secret_token,
                            crm,
                            secret: &self.grant,
                        };
                        oauth::refresh_rotating(&self.http, crm, &grant, &hook).await
                    }
                    GrantKey::Jwt {
                        login_url,
                        client_id,
                        username,
                        private_key,
                    } => {
                        let assertion =
                            self.assertion(login_url, client_id, username, private_key)?;
                        let form = [
                            (
                                "grant_type",
                                "urn:ietf:params:oauth:grant-type:jwt-bearer".to_string(),
                            ),
                            ("assertion", assertion),
                        ];
                        oauth::exchange(&self.http, crm, &Self::token_url(login_url), &form, None)
                            .await
                    }
                };
                match &t {
                    Ok(_) => debug!(crm, "access token refreshed"),
                    Err(e) => {
                        warn!(
                            crm,
                            class = e.class.as_str(),
                            code = e.code.as_deref().unwrap_or(""),
                            category = e.category.as_deref().unwrap_or(""),
                            "access token refresh refused"
                        )
                    }
                }
                t
            })
            .await
    }

    /// A signed JWT bearer assertion.
    fn assertion(
        &self,
        login_url: &str,
        client_id: &str,
        username: &str,
        private_key: &str,
    ) -> Result<String, CrmError> {
        let claims = AssertionClaims {
            iss: client_id,
            sub: username,
            aud: login_url.trim_end_matches('/'),
            exp: chrono::Utc::now().timestamp() + ASSERTION_LIFETIME_S,
        };
        EncodingKey::from_rsa_pem(private_key.as_bytes())
            .and_then(|key| jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key))
            .map_err(|e| {
                self.err(
                    ErrorClass::Permanent,
                    None,
                    unusable_key(private_key, e.kind()),
                )
            })
    }
}

/// Why a JWT grant's `private_key` could not sign, in words that never quote it.
fn unusable_key(private_key: &str, kind: &JwtErrorKind) -> String {
    let why = if private_key.contains("ENCRYPTED") {
        "is encrypted (store it without a passphrase: `openssl rsa -in key.pem -out plain.pem`)"
    } else if !private_key.contains("-----BEGIN ") {
        "is not PEM"
    } else if !private_key.contains("PRIVATE KEY-----") {
        "holds no private key (a certificate or public key is the connected app's half)"
    } else {
        match kind {
            JwtErrorKind::InvalidKeyFormat | JwtErrorKind::InvalidEcdsaKey => {
                "is not an RSA private key in PEM"
            }
            _ => "was refused by RS256 signing (not a valid RSA key of 2048 to 8192 bits)",
        }
    };
    format!(
        "the Salesforce JWT bearer grant's private_key {why}; expected the connected app's RSA \
         private key as PEM, PKCS#1 (-----BEGIN RSA PRIVATE KEY-----) or unencrypted PKCS#8 \
         (-----BEGIN PRIVATE KEY-----)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unusable_key_is_described_without_quoting_it() {
        let secretish = "c2VjcmV0LWtleS1tYXRlcmlhbA";
        for (key, says) in [
            (secretish.to_string(), "is not PEM"),
            (
                format!("-----BEGIN RSA PRIVATE KEY-----\n{secretish}\n-----END RSA PRIVATE KEY-----"),
                "is not an RSA private key",
            ),
            (
                format!("-----BEGIN ENCRYPTED PRIVATE KEY-----\n{secretish}\n-----END ENCRYPTED PRIVATE KEY-----"),
                "is encrypted",
            ),
            (
                format!("-----BEGIN PUBLIC KEY-----\n{secretish}\n-----END PUBLIC KEY-----"),
                "holds no private key",
            ),
        ] {
            let e = EncodingKey::from_rsa_pem(key.as_bytes())
                .and_then(|k| {
                    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &json!({}), &k)
                })
                .expect_err("unusable");
            let text = unusable_key(&key, e.kind());
            assert!(text.contains(says), "{text}");
            assert!(!text.contains(secretish), "{text}");
        }
    }
}
