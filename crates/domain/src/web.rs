//! URLs a sender reports (entry page, referrer, transcript link).

use std::fmt;

use serde::Serialize;

use crate::error::FieldError;

/// An absolute `http`/`https` URL with a host and no credentials, in the
/// WHATWG serialization the `url` crate produces (host lowercased and
/// punycoded, path percent-encoded, `https://x.co` → `https://x.co/`), at most
/// [`HttpUrl::MAX_CHARS`] characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub struct HttpUrl(String);

impl HttpUrl {
    pub const MAX_CHARS: usize = 2_048;

    /// `Ok(None)` when blank. Errors: `too_long`, `invalid_url`.
    pub fn parse(field: &str, raw: &str) -> Result<Option<Self>, FieldError> {
        let t = raw.trim();
        if t.is_empty() {
            return Ok(None);
        }
        let too_long = || {
            FieldError::new(
                field,
                "too_long",
                format!("{field} is longer than {} characters", Self::MAX_CHARS),
            )
        };
        if t.chars().count() > Self::MAX_CHARS {
            return Err(too_long());
        }
        let invalid = |why: &str| {
            FieldError::new(
                field,
                "invalid_url",
                format!("{field} must be an absolute http(s) URL: {why}"),
            )
        };
        let u = url::Url::parse(t).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(invalid("the scheme is not http or https"));
        }
        if u.host_str().is_none_or(str::is_empty) {
            return Err(invalid("it has no host"));
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err(invalid("it must not carry a user name or password"));
        }
        let s = String::from(u);
        if s.chars().count() > Self::MAX_CHARS {
            return Err(too_long());
        }
        Ok(Some(Self(s)))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

impl From<HttpUrl> for String {
    fn from(u: HttpUrl) -> String {
        u.0
    }
}
impl fmt::Debug for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HttpUrl({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(raw: &str) -> Result<Option<String>, String> {
        HttpUrl::parse("context.source_url", raw)
            .map(|u| u.map(String::from))
            .map_err(|e| e.code)
    }

    #[test]
    fn an_absolute_http_url_is_kept_in_its_canonical_form() {
        assert_eq!(
            url(" https://Example.com/pricing?plan=pro#faq "),
            Ok(Some("https://example.com/pricing?plan=pro#faq".into()))
        );
        assert_eq!(
            url("http://www.google.com"),
            Ok(Some("http://www.google.com/".into()))
        );
        assert_eq!(
            url("https://bücher.de/a b"),
            Ok(Some("https://xn--bcher-kva.de/a%20b".into()))
        );
    }

    #[test]
    fn relative_other_scheme_and_credential_urls_are_invalid() {
        for bad in [
            "example.com/pricing",
            "/pricing",
            "javascript:alert(1)",
            "ftp://example.com/x",
            "mailto:a@b.co",
            "https://user:pw@example.com/",
            "http://",
            "https://exa mple.com/",
        ] {
            assert_eq!(url(bad), Err("invalid_url".into()), "{bad}");
        }
    }

    #[test]
    fn a_url_over_2048_characters_is_too_long() {
        let long = format!("https://example.com/{}", "a".repeat(2_048));
        assert_eq!(url(&long), Err("too_long".into()));
        let grows = format!("https://example.com/{}", "é".repeat(1_000));
        assert_eq!(url(&grows), Err("too_long".into()));
    }
}
