//! Secrets, cached with a TTL so that a rotated secret is picked up without a redeploy.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::ports::{PortError, SecretStore};

/// A secret value that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One secret id read through a [`SecretStore`], cached for `ttl`.
pub struct CachedSecret {
    store: Arc<dyn SecretStore>,
    id: String,
    ttl: Duration,
    cache: Mutex<Option<(Instant, Secret)>>,
}

impl CachedSecret {
    pub fn new(store: Arc<dyn SecretStore>, id: impl Into<String>, ttl: Duration) -> Self {
        Self {
            store,
            id: id.into(),
            ttl,
            cache: Mutex::new(None),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub async fn get(&self) -> Result<Secret, PortError> {
        let mut cache = self.cache.lock().await;
        if let Some((at, v)) = cache.as_ref() {
            if at.elapsed() < self.ttl {
                return Ok(v.clone());
            }
        }
        let v = Secret::new(self.store.get_secret(&self.id).await?);
        *cache = Some((Instant::now(), v.clone()));
        Ok(v)
    }

    /// Writes a new value and keeps it as the cached one.
    pub async fn put(&self, value: &str) -> Result<(), PortError> {
        self.store.put_secret(&self.id, value).await?;
        *self.cache.lock().await = Some((Instant::now(), Secret::new(value.to_string())));
        Ok(())
    }

    /// Forgets the cached value (after the CRM rejected it as expired, say).
    pub async fn invalidate(&self) {
        *self.cache.lock().await = None;
    }
}

/// The values a secret string holds: a JSON object's `field` (a string, or an
/// array of strings for rotation), or the whole string when it is not JSON.
pub fn secret_values(raw: &str, field: &str) -> Vec<String> {
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::Object(m)) => m.get(field).map(string_values).unwrap_or_default(),
        _ => {
            let t = raw.trim();
            if t.is_empty() {
                vec![]
            } else {
                vec![t.to_string()]
            }
        }
    }
}

/// A JSON string, or the non-empty strings of a JSON array (a secret's rotation list).
pub fn string_values(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::String(s) if !s.is_empty() => vec![s.clone()],
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        _ => vec![],
    }
}

/// The secrets that may verify one webhook body.
pub struct SigningSecrets {
    pub secrets: Vec<String>,
    /// The body's bot has its own entry: only its secrets count.
    pub per_bot: bool,
}

impl SigningSecrets {
    /// From the webhook secret (`{"secrets": [...], "bots": {"bot_acme": ["new", "old"]}}`,
    /// or a plain string) and the `bot_id` the not yet verified body claims: that
    /// bot's secrets when the secret lists the bot, otherwise the global ones (also
    /// for a body that is not JSON or claims no valid bot id).
    pub fn for_bot(raw_secret: &str, claimed: Option<&str>) -> Self {
        let global = || Self {
            secrets: secret_values(raw_secret, "secrets"),
            per_bot: false,
        };
        let Ok(serde_json::Value::Object(secret)) = serde_json::from_str(raw_secret) else {
            return global();
        };
        let Some(serde_json::Value::Object(bots)) = secret.get("bots") else {
            return global();
        };
        match claimed.and_then(|b| bots.get(b)) {
            Some(entry) => Self {
                secrets: string_values(entry),
                per_bot: true,
            },
            None => global(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::StaticSecrets;

    #[tokio::test]
    async fn cached_secret_is_reread_after_its_ttl() {
        let store = Arc::new(StaticSecrets::default());
        store.set("s", "one");
        let c = CachedSecret::new(store.clone(), "s", Duration::from_millis(0));
        assert_eq!(c.get().await.unwrap().expose(), "one");
        store.set("s", "two");
        assert_eq!(c.get().await.unwrap().expose(), "two");

        let long = CachedSecret::new(store.clone(), "s", Duration::from_secs(3600));
        assert_eq!(long.get().await.unwrap().expose(), "two");
        store.set("s", "three");
        assert_eq!(long.get().await.unwrap().expose(), "two");
        long.invalidate().await;
        assert_eq!(long.get().await.unwrap().expose(), "three");
    }

    #[test]
    fn secret_values_reads_json_fields_lists_and_plain_strings() {
        assert_eq!(
            secret_values(r#"{"secrets":["a","b",""]}"#, "secrets"),
            vec!["a", "b"]
        );
        assert_eq!(secret_values(r#"{"token":"t"}"#, "token"), vec!["t"]);
        assert_eq!(secret_values(" plain \n", "token"), vec!["plain"]);
        assert!(secret_values(r#"{"other":1}"#, "token").is_empty());
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }
}
