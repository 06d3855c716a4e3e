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

/// Why an address is not a public one a connection may reach, or `None`:
/// loopback (the Lambda runtime API listens there), private and shared (VPC,
/// carrier-grade NAT), link-local (the instance metadata service at
/// 169.254.169.254), unspecified, broadcast, multicast and documentation
/// ranges; IPv4-mapped IPv6 addresses are judged as the IPv4 they carry.
pub fn internal_ip(ip: std::net::IpAddr) -> Option<&'static str> {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_private() {
                Some("a private address")
            } else if o[0] == 100 && (64..128).contains(&o[1]) {
                Some("a shared (carrier-grade NAT) address")
            } else if v4.is_link_local() {
                Some("a link-local address (instance metadata)")
            } else if v4.is_unspecified() || o[0] == 0 {
                Some("an unspecified address")
            } else if v4.is_broadcast() || v4.is_multicast() {
                Some("a broadcast or multicast address")
            } else if v4.is_documentation() {
                Some("a documentation address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_ip(IpAddr::V4(v4));
            }
            if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() {
                Some("an unspecified address")
            } else if v6.is_unique_local() {
                Some("a private (unique local) address")
            } else if v6.is_unicast_link_local() {
                Some("a link-local address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod internal_ip_tests {
    use super::internal_ip;

    #[test]
    fn internal_addresses_are_named_and_public_ones_pass() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
        ] {
            assert!(internal_ip(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "2606:2800:220:1::1",
            "100.128.0.1",
            "172.32.0.1",
        ] {
            assert!(internal_ip(ip.parse().unwrap()).is_none(), "{ip}");
        }
    }
}
