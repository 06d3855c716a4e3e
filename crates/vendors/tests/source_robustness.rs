//! Every native source kind survives its fuzz seeds (`fuzz/seeds/source_<kind>/`)
//! and deterministic mutations of them through `lb_vendors::robustness::exercise`,
//! the driver the `fuzz/` targets `source_<kind>` run under libFuzzer: the same
//! "no panic" and invariants on a stable toolchain, in `cargo test`. Also checks
//! that every kind in `KINDS` has its fuzz target, seeds and dictionary.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use lb_vendors::robustness::{
    decode, exercise, now, HEADER_SEPARATOR, SECRET, SEPARATOR, VERIFY_TOKEN,
};
use lb_vendors::source::{SourceKind, SourceSecrets};
use lb_vendors::sources::KINDS;

/// Mutated inputs per kind (the whole test stays under 5 s in a debug build);
/// `LB_ROBUSTNESS_MUTATIONS=<n>` runs more, for a longer sweep.
const MUTATIONS_PER_KIND: usize = 200;

fn mutations_per_kind() -> usize {
    std::env::var("LB_ROBUSTNESS_MUTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(MUTATIONS_PER_KIND)
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn seeds(kind: &str) -> Vec<Vec<u8>> {
    let dir = fuzz_dir().join(format!("seeds/source_{kind}"));
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| fs::read(p).expect("a readable seed"))
        .collect()
}

/// The tokens of a libFuzzer dictionary (`"…"` lines; `\\`, `\"` and `\xNN` escapes).
fn dict(kind: &str) -> Vec<Vec<u8>> {
    let path = fuzz_dir().join(format!("dicts/source_{kind}.dict"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut tokens = Vec::new();
    for line in text.lines().map(str::trim) {
        let Some(quoted) = line.strip_prefix('"').and_then(|l| l.strip_suffix('"')) else {
            continue;
        };
        let mut token = Vec::new();
        let mut bytes = quoted.bytes();
        while let Some(b) = bytes.next() {
            if b != b'\\' {
                token.push(b);
                continue;
            }
            match bytes.next() {
                Some(b'x') => {
                    let hex: Vec<u8> = bytes.by_ref().take(2).collect();
                    let hex = std::str::from_utf8(&hex).expect("ASCII hex");
                    token.push(u8::from_str_radix(hex, 16).expect("\\xNN in a dictionary"));
                }
                Some(other) => token.push(other),
                None => {}
            }
        }
        tokens.push(token);
    }
    tokens
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: [u8; 12] = [
    0,
    0xff,
    0x7f,
    0x80,
    b'"',
    b'\\',
    b'{',
    b'}',
    b',',
    b'=',
    SEPARATOR,
    HEADER_SEPARATOR,
];

/// One to four libFuzzer-like mutations of `input`.
fn mutate(rng: &mut Rng, input: &[u8], dict: &[Vec<u8>], others: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(8) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            3 | 4 if !dict.is_empty() => {
                let token = &dict[rng.below(dict.len())];
                out.splice(at..at, token.iter().copied());
            }
            5 => {
                let end = (at + 1 + rng.below(32)).min(out.len());
                let copy = out[at.min(end)..end].to_vec();
                let to = rng.below(out.len() + 1);
                out.splice(to..to, copy);
            }
            6 => out.truncate(at),
            _ if !others.is_empty() => {
                // Splice: this input's head, another seed's tail.
                let other = &others[rng.below(others.len())];
                let from = rng.below(other.len() + 1);
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
            _ => out.push(INTERESTING[rng.below(INTERESTING.len())]),
        }
    }
    out
}

fn run(kind: &dyn SourceKind, input: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| exercise(kind, input))).is_err() {
        panic!(
            "source_{} panicked on this input (save it as a file and run the fuzz target on it):\n{}",
            kind.name(),
            input.escape_ascii()
        );
    }
}

#[test]
fn every_kind_has_a_fuzz_target_seeds_and_a_dictionary() {
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let makefile = fs::read_to_string(fuzz_dir().join("../Makefile")).expect("the Makefile");
    let fuzz_targets = makefile
        .lines()
        .find(|l| l.starts_with("FUZZ_TARGETS"))
        .expect("FUZZ_TARGETS in the Makefile");
    for kind in KINDS {
        let name = kind.name();
        let target = fuzz_dir().join(format!("fuzz_targets/source_{name}.rs"));
        assert!(target.is_file(), "no fuzz target {}", target.display());
        assert!(
            manifest.contains(&format!("name = \"source_{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] source_{name}"
        );
        assert!(
            fuzz_targets.contains(name),
            "`make fuzz` does not run source_{name} (FUZZ_TARGETS)"
        );
        assert!(!seeds(name).is_empty(), "no seeds for source_{name}");
        assert!(!dict(name).is_empty(), "no dictionary for source_{name}");
    }
}

/// The seeds reach the accepting paths: `01-*` verifies (its `{sigN}` filled
/// in), and WhatsApp's `04-handshake` answers the challenge.
#[test]
fn the_first_seed_of_every_kind_verifies() {
    let secrets = SourceSecrets {
        secrets: vec![SECRET.to_string()],
        verify_token: Some(VERIFY_TOKEN.to_string()),
    };
    for kind in KINDS {
        let name = kind.name();
        let dir = fuzz_dir().join(format!("seeds/source_{name}"));
        let first = fs::read_dir(&dir)
            .expect("the seeds")
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("01-"))
            })
            .min()
            .unwrap_or_else(|| panic!("no 01-* seed in {}", dir.display()));
        let input = fs::read(&first).expect("a readable seed");
        let request = decode(*kind, &input);
        assert_eq!(
            kind.verify(&request.inbound("POST"), &secrets, now()),
            Ok(()),
            "{}: {request:?}",
            first.display()
        );
    }
    let whatsapp = lb_vendors::sources::kind("whatsapp").expect("the whatsapp kind");
    let input = fs::read(fuzz_dir().join("seeds/source_whatsapp/04-handshake")).expect("the seed");
    let request = decode(whatsapp, &input);
    let reply = whatsapp.handshake(&request.inbound("GET"), &secrets);
    assert!(
        matches!(&reply, Some(Ok(r)) if r.body == "1158201444"),
        "{reply:?}"
    );
}

#[test]
fn every_kind_survives_its_seeds_and_their_mutations() {
    let started = Instant::now();
    let all_seeds: Vec<Vec<u8>> = KINDS.iter().flat_map(|k| seeds(k.name())).collect();
    let mutations = mutations_per_kind();
    let mut runs = 0;
    for kind in KINDS {
        let name = kind.name();
        let own = seeds(name);
        let tokens = dict(name);
        // Every kind's seeds, as they are: a vendor's payload sent to another kind.
        for seed in &all_seeds {
            run(*kind, seed);
        }
        let mut rng = Rng(name.bytes().fold(0x9e37_79b9_7f4a_7c15, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        }));
        for i in 0..mutations {
            let seed = &own[i % own.len()];
            let input = mutate(&mut rng, seed, &tokens, &all_seeds);
            run(*kind, &input);
        }
        runs += all_seeds.len() + mutations;
    }
    eprintln!(
        "source robustness: {runs} inputs over {} kinds in {:.2?}",
        KINDS.len(),
        started.elapsed()
    );
}
