//! The fuzz targets' checks on stable Rust: every committed seed under `tests/fuzz/envelope/`
//! and `tests/fuzz/engine/` (each input that found a bug, and a few small interesting ones),
//! and a few thousand pseudo-random inputs from a fixed seed, so CI runs the same checks
//! as `cargo +nightly fuzz run` (see fuzz/README.md) without a nightly toolchain.

#[path = "support/fuzz_checks.rs"]
mod fuzz_checks;

use std::path::{Path, PathBuf};

/// The committed seeds of one target, sorted by name so failures are reported in order.
fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Runs `check` on every input, collecting each failure (a panic counts too) with the
/// input that caused it, so one run reports all of them.
fn run_all<'a>(
    inputs: impl IntoIterator<Item = (String, &'a [u8])>,
    check: fn(&[u8]) -> Result<(), String>,
) {
    let mut failures = Vec::new();
    let mut count = 0;
    for (name, bytes) in inputs {
        count += 1;
        let outcome = std::panic::catch_unwind(|| check(bytes))
            .unwrap_or_else(|_| Err("panicked (see the message above)".to_owned()));
        if let Err(e) = outcome {
            let hex: String = bytes.iter().take(400).map(|b| format!("{b:02x}")).collect();
            failures.push(format!("{name} ({} bytes, hex {hex}): {e}", bytes.len()));
        }
    }
    assert!(count > 0, "no inputs were checked");
    assert!(
        failures.is_empty(),
        "{} of {count} inputs failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Runs `check` over every committed seed of `target`.
fn run_seeds(target: &str, check: fn(&[u8]) -> Result<(), String>) {
    let seeds = seeds(target);
    run_all(
        seeds
            .iter()
            .map(|(p, b)| (p.display().to_string(), b.as_slice())),
        check,
    );
}

#[test]
fn envelope_seeds() {
    run_seeds("envelope", fuzz_checks::check_envelope);
}

#[test]
fn engine_seeds() {
    run_seeds("engine", fuzz_checks::check_engine);
}

/// A seed named after a rule (`r3-4-assumed-during-hold.bin`) must still reach it, so that a
/// change to the builder's byte encoding cannot quietly turn the seeds into noise.
#[test]
fn engine_seeds_reach_their_rules() {
    let mut named = 0;
    for (path, bytes) in seeds("engine") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut parts = name.split('-');
        let (Some(major), Some(minor)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some(major) = major.strip_prefix('r') else {
            continue;
        };
        let rule = format!("R{major}.{minor}");
        let run = fuzz_checks::build_and_run(&bytes).unwrap();
        assert!(
            run.decisions.iter().any(|d| d.rule.as_str() == rule),
            "{name} no longer reaches {rule}"
        );
        named += 1;
    }
    assert!(named >= 5, "only {named} seeds are named after a rule");
}

/// A small deterministic generator (SplitMix64), so the inputs are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Pieces worth splicing into a message: type names, edge-case times and numbers,
/// escapes and structure, as in fuzz/envelope.dict.
const TOKENS: &[&str] = &[
    "\"handoffreceived\":\"2017-01-28T09:00:00Z\",",
    "\"handoffcrc\":\"0a1b2c3d\",",
    "\"subject\":\"P-1001\",",
    "9999-12-31T23:59:59-23:59",
    "0000-01-01T00:00:00+23:59",
    "2016-12-31T23:59:60Z",
    "2017-01-28T09:00:00.123456789Z",
    "2017-01-28t09:00:00z",
    "1e15",
    "34000.0",
    "-0",
    "1e400",
    "18446744073709551616",
    "null",
    "true",
    "\\u0000",
    "\\ud800",
    "\"",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\u{00e9}",
    "\u{fffd}",
    "ice.capacity.updated",
    "bop.release.scheduled",
    "local.release.due",
    "handoff.offer",
];

/// The valid and invalid schema examples (one message a line): the starting points.
fn examples() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/examples");
    let mut lines = Vec::new();
    for kind in ["valid", "invalid"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(kind))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            lines.extend(
                text.lines()
                    .filter(|l| l.starts_with('{'))
                    .map(|l| l.as_bytes().to_vec()),
            );
        }
    }
    assert!(lines.len() > 20, "too few schema examples: {}", lines.len());
    lines
}

/// One to four random edits of a message: a byte changed, a token spliced in, a range
/// deleted or repeated, or the message cut short.
fn mutate(rng: &mut Rng, mut m: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(m.len() + 1);
        match rng.below(6) {
            0 if at < m.len() => m[at] = rng.next() as u8,
            1 | 2 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                m.splice(at..at, token.iter().copied());
            }
            3 => {
                let end = (at + rng.below(12)).min(m.len());
                m.drain(at..end);
            }
            4 => {
                let end = (at + rng.below(24)).min(m.len());
                let piece = m[at..end].to_vec();
                m.splice(at..at, piece);
            }
            _ => m.truncate(at),
        }
    }
    m
}

#[test]
fn envelope_pseudo_random() {
    let pool = examples();
    let mut rng = Rng(0x68616e646f6666);
    let inputs: Vec<Vec<u8>> = (0..3000)
        .map(|i| match i % 10 {
            // Some messages as they are, some plain random bytes, most of them edited.
            0 => pool[rng.below(pool.len())].clone(),
            1 => (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
            _ => {
                let m = pool[rng.below(pool.len())].clone();
                mutate(&mut rng, m)
            }
        })
        .collect();
    run_all(
        inputs
            .iter()
            .enumerate()
            .map(|(i, b)| (format!("input {i}"), b.as_slice())),
        fuzz_checks::check_envelope,
    );
}

#[test]
fn engine_pseudo_random() {
    let mut rng = Rng(0x656e67696e65);
    let inputs: Vec<Vec<u8>> = (0..1500)
        .map(|_| {
            let len = rng.below(400);
            (0..len).map(|_| rng.next() as u8).collect()
        })
        .collect();
    run_all(
        inputs
            .iter()
            .enumerate()
            .map(|(i, b)| (format!("input {i}"), b.as_slice())),
        fuzz_checks::check_engine,
    );
}
