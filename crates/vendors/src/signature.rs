//! The canonical signature scheme (Stripe-style):
//! `Leadbridge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
//! Several `v1=` entries may appear (secret rotation); any match passes.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const HEADER: &str = "leadbridge-signature";
/// Timestamps further than this from now are rejected (replay protection).
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Leadbridge-Signature header is missing")]
    Missing,
    #[error("the Leadbridge-Signature header is malformed: {0}")]
    Malformed(&'static str),
    #[error("the signature timestamp is outside the {TOLERANCE_SECS} s window")]
    Stale,
    #[error("no signature matches")]
    Mismatch,
    #[error("no webhook secret is configured")]
    NoSecret,
}

#[derive(Debug, PartialEq, Eq)]
pub struct ParsedHeader {
    pub timestamp: i64,
    pub signatures: Vec<[u8; 32]>,
}

/// Parses `t=…,v1=…[,v1=…]`. Unknown schemes (`v0=`) are ignored, as Stripe does.
pub fn parse_header(header: &str) -> Result<ParsedHeader, SignatureError> {
    if header.len() > 4096 {
        return Err(SignatureError::Malformed("too long"));
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed("expected key=value pairs"))?;
        match k.trim() {
            "t" => {
                if timestamp.is_some() {
                    return Err(SignatureError::Malformed("more than one t="));
                }
                let t: i64 = v
                    .trim()
                    .parse()
                    .map_err(|_| SignatureError::Malformed("t is not a unix timestamp"))?;
                timestamp = Some(t);
            }
            "v1" => {
                let bytes = hex::decode(v.trim())
                    .map_err(|_| SignatureError::Malformed("v1 is not hex"))?;
                let arr: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| SignatureError::Malformed("v1 is not 32 bytes"))?;
                if signatures.len() >= 8 {
                    return Err(SignatureError::Malformed("too many v1 entries"));
                }
                signatures.push(arr);
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed("no t="))?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed("no v1="));
    }
    Ok(ParsedHeader {
        timestamp,
        signatures,
    })
}

fn mac(secret: &str, t: i64, body: &[u8]) -> [u8; 32] {
    let mut m =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().into()
}

/// The header value a sender puts on `body` at time `t`.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex::encode(mac(secret, t, body)))
}

/// Verifies `header` over the raw `body` against any of `secrets` (rotation),
/// at `now` (unix seconds). Compares in constant time.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[&str],
    now: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let parsed = parse_header(header)?;
    // i128: an extreme `t` must not overflow (found by the fuzzer).
    if (i128::from(now) - i128::from(parsed.timestamp)).abs() > i128::from(TOLERANCE_SECS) {
        return Err(SignatureError::Stale);
    }
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let mut ok = subtle::Choice::from(0u8);
    for s in secrets {
        let expected = mac(s, parsed.timestamp, body);
        for sig in &parsed.signatures {
            ok |= expected.ct_eq(sig);
        }
    }
    if bool::from(ok) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000;

    #[test]
    fn a_signed_body_verifies() {
        let h = sign("s3cret", NOW, b"{}");
        assert_eq!(verify(Some(&h), b"{}", &["s3cret"], NOW), Ok(()));
    }

    #[test]
    fn a_tampered_body_or_wrong_secret_fails() {
        let h = sign("s3cret", NOW, b"{}");
        assert_eq!(
            verify(Some(&h), b"{ }", &["s3cret"], NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&h), b"{}", &["other"], NOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn either_of_two_rotated_secrets_passes() {
        let h = sign("old", NOW, b"x");
        assert_eq!(verify(Some(&h), b"x", &["new", "old"], NOW), Ok(()));
        let both = format!("{},v1={}", sign("new", NOW, b"x"), hex::encode([0u8; 32]));
        assert_eq!(verify(Some(&both), b"x", &["new"], NOW), Ok(()));
    }

    #[test]
    fn timestamps_outside_the_window_are_stale() {
        let h = sign("s", NOW - 301, b"x");
        assert_eq!(
            verify(Some(&h), b"x", &["s"], NOW),
            Err(SignatureError::Stale)
        );
        let h = sign("s", NOW + 301, b"x");
        assert_eq!(
            verify(Some(&h), b"x", &["s"], NOW),
            Err(SignatureError::Stale)
        );
        let h = sign("s", NOW - 300, b"x");
        assert_eq!(verify(Some(&h), b"x", &["s"], NOW), Ok(()));
    }

    #[test]
    fn extreme_timestamps_are_stale_not_a_panic() {
        for t in [i64::MIN, i64::MIN + 1, -9_223_372_036_854_775_807, i64::MAX] {
            let h = format!("t={t},v1={}", "ab".repeat(32));
            assert_eq!(
                verify(Some(&h), b"x", &["s"], NOW),
                Err(SignatureError::Stale),
                "{t}"
            );
        }
    }

    #[test]
    fn malformed_headers_are_named() {
        for h in [
            "",
            "t=1",
            "v1=00",
            "t=x,v1=00",
            "t=1,v1=zz",
            "t=1,v1=00",
            "garbage",
            "t=1,t=2,v1=00",
        ] {
            assert!(
                matches!(
                    verify(Some(h), b"x", &["s"], 1),
                    Err(SignatureError::Malformed(_))
                ),
                "{h}"
            );
        }
        assert_eq!(
            verify(None, b"x", &["s"], NOW),
            Err(SignatureError::Missing)
        );
    }
}
