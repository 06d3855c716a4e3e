//! `parse_header` and `verify` never panic on any header, and `verify` only
//! accepts a header that carries the right `v1=` signature.
//!
//! Input: `<header>\n<body>` (the header is read as lossy UTF-8). The header is
//! checked as is at a fixed clock, then with every `{sig}` in it replaced by
//! the correct hex signature for its `t=` (the fuzzer cannot forge an HMAC, so
//! this is how the accepting paths of `verify` are reached) at the fixed clock,
//! at `t` itself and at the edges of the tolerance window. Finally the first 8
//! bytes, as a timestamp, are signed and verified: that must pass exactly when
//! the timestamp is within `TOLERANCE_SECS` of the clock.
#![no_main]

use lb_vendors::signature::{parse_header, sign, verify, SignatureError, TOLERANCE_SECS};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "secret";
const NOW: i64 = 1_780_000_000;

fuzz_target!(|input: &[u8]| {
    let (head, body) = match input.iter().position(|&b| b == b'\n') {
        Some(i) => (&input[..i], &input[i + 1..]),
        None => (input, &[][..]),
    };
    let header = String::from_utf8_lossy(head);
    let _ = parse_header(&header);

    check(&header, body, NOW);

    if let Some(t) = first_t(&header) {
        let signed = sign(SECRET, t, body);
        let (_, sig) = signed.split_once(",v1=").expect("sign writes t=…,v1=…");
        let filled = header.replace("{sig}", sig);
        let _ = parse_header(&filled);
        for now in [NOW, t, t.saturating_add(300), t.saturating_sub(301)] {
            check(&filled, body, now);
        }
    }

    // Sign, then verify: with the first 8 input bytes as the timestamp, a
    // correctly signed header passes exactly when it is inside the window.
    if let Some(first) = input.first_chunk::<8>() {
        let t = i64::from_le_bytes(*first);
        let header = sign(SECRET, t, body);
        let fresh = (i128::from(NOW) - i128::from(t)).abs() <= i128::from(TOLERANCE_SECS);
        let got = verify(Some(&header), body, &[SECRET], NOW);
        let want = if fresh {
            Ok(())
        } else {
            Err(SignatureError::Stale)
        };
        assert_eq!(got, want, "sign then verify of t={t} at now={NOW}");
    }
});

/// If `verify` accepts, the header must hold a `v1=` entry equal (hex is
/// case-insensitive) to the one `sign` computes for the header's timestamp.
fn check(header: &str, body: &[u8], now: i64) {
    if verify(Some(header), body, &[SECRET], now).is_err() {
        return;
    }
    let t = parse_header(header)
        .expect("verify accepted a header parse_header rejects")
        .timestamp;
    let signed = sign(SECRET, t, body);
    let (_, want) = signed.split_once(",v1=").expect("sign writes t=…,v1=…");
    let found = header
        .split(',')
        .filter_map(|part| part.trim().split_once('='))
        .any(|(k, v)| k.trim() == "v1" && v.trim().eq_ignore_ascii_case(want));
    assert!(
        found,
        "verify accepted {header:?} at now={now} without the v1={want} signature"
    );
}

/// The value of the first `t=` entry, parsed independently of `parse_header`.
fn first_t(header: &str) -> Option<i64> {
    header
        .split(',')
        .filter_map(|part| part.trim().split_once('='))
        .find(|(k, _)| k.trim() == "t")
        .and_then(|(_, v)| v.trim().parse().ok())
}
