//! The `handoff` binary as a user meets it: determinism across processes, `--until`,
//! standard input, `validate` and `gen`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn handoff(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// A scratch directory of this test's own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("handoff-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, file: &str) -> String {
        self.0.join(file).to_str().unwrap().to_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn generated_log_replays_to_identical_bytes_in_separate_processes() {
    let dir = Scratch::new("determinism");
    let log = dir.path("log.jsonl");
    let generated = handoff(
        &["gen", "--events", "30000", "--seed", "11", "-o", &log],
        None,
    );
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    // Each process has its own hash seeds, so equal bytes show that no output depends on
    // hash-map order.
    let first = handoff(
        &["replay", "--quiet", &log, "--until", "2019-01-01T00:00:00Z"],
        None,
    );
    let second = handoff(
        &["replay", "--quiet", &log, "--until", "2019-01-01T00:00:00Z"],
        None,
    );
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        first.stdout.len() > 100_000,
        "too few decisions to mean anything"
    );
    assert!(
        first.stdout == second.stdout,
        "two replays of one log differ"
    );
    // And the in-process replay agrees with the binary.
    let text = std::fs::read_to_string(&log).unwrap();
    let until = handoff::edge::envelope::parse_time("2019-01-01T00:00:00Z").unwrap();
    let (out, _, _) = handoff::answers::replay::replay_str(&text, Some(until));
    assert!(out.as_bytes() == first.stdout);
}

#[test]
fn gen_is_byte_stable_for_a_seed() {
    let a = handoff(&["gen", "--events", "2000", "--seed", "3"], None);
    let b = handoff(&["gen", "--events", "2000", "--seed", "3"], None);
    let c = handoff(&["gen", "--events", "2000", "--seed", "4"], None);
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
    assert_ne!(a.stdout, c.stdout);
    assert_eq!(a.stdout.iter().filter(|b| **b == b'\n').count(), 2000);
}

/// `gen --policy-every-people`: the policy-heavy log of `tools/bench-history.sh` at a
/// small size. Every line is a valid event the rules accept, the policy changes come at
/// the rate asked for, and their agreements set R2.2 off.
#[test]
fn a_policy_heavy_generated_log_replays_cleanly_and_sets_off_r2_2() {
    let dir = Scratch::new("policy-heavy");
    let log = dir.path("log.jsonl");
    let generated = handoff(
        &[
            "gen",
            "--events",
            "40000",
            "--seed",
            "5",
            "--people",
            "11760",
            "--policy-every-people",
            "20",
            "-o",
            &log,
        ],
        None,
    );
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let policies = text
        .lines()
        .filter(|l| l.contains("\"type\":\"jurisdiction.policy.updated\""))
        .count();
    // 200 opening announcements, then one change per 20 of the 11,760 people.
    assert!((700..=800).contains(&policies), "{policies} policy events");
    let replayed = handoff(&["replay", "--quiet", &log], None);
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    let r2_2 = String::from_utf8(replayed.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"rule\":\"R2.2\""))
        .count();
    assert!(r2_2 > 0, "no R2.2 transfer");
}

#[test]
fn replay_reads_standard_input_and_until_fires_due_timers() {
    let log = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/samples/week.jsonl")).unwrap();
    // Cut the week before Thursday: the lapse of P-170023's hold (Thursday 08:00) has not
    // fired yet, and --until fires it.
    let cut: Vec<&[u8]> = log
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .take_while(|l| !String::from_utf8_lossy(l).contains("\"time\":\"2017-02-02"))
        .collect();
    let cut = cut.join(&b'\n');
    let without = handoff(&["replay", "-", "--quiet"], Some(&cut));
    let with = handoff(
        &["replay", "-", "--quiet", "--until", "2017-02-02T08:00:00Z"],
        Some(&cut),
    );
    assert!(without.status.success() && with.status.success());
    let extra = String::from_utf8(with.stdout[without.stdout.len()..].to_vec()).unwrap();
    assert!(with.stdout.starts_with(&without.stdout));
    assert_eq!(extra.lines().count(), 1, "{extra}");
    assert!(extra.contains("\"rule\":\"R3.5\""), "{extra}");
    assert!(
        extra.contains("\"effective_at\":\"2017-02-02T08:00:00Z\""),
        "{extra}"
    );
}

#[test]
fn validate_reports_each_bad_line_and_exits_non_zero() {
    let dir = Scratch::new("validate");
    let file = dir.path("mixed.jsonl");
    let valid = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/samples/week.decisions.jsonl"
    ))
    .unwrap();
    let first = valid.lines().next().unwrap();
    let wrong_rule = first.replace("\"rule\":\"R1.2\"", "\"rule\":\"R9\"");
    let wrong_subject = first.replace("\"subject\":\"P-170001\"", "\"subject\":\"P-999999\"");
    std::fs::write(
        &file,
        format!("{first}\n{wrong_rule}\n\n{wrong_subject}\n[1,2\n"),
    )
    .unwrap();
    let out = handoff(&["validate", &file], None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("mixed.jsonl:2: invalid (schema): /data/rule"),
        "{stderr}"
    );
    assert!(
        stderr.contains("mixed.jsonl:4: invalid (subject_mismatch)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("mixed.jsonl:5: invalid (not_json)"),
        "{stderr}"
    );
    assert!(!stderr.contains("mixed.jsonl:1:"), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("4 messages, 1 valid, 3 invalid"),
        "{stdout}"
    );
}

#[test]
fn missing_file_is_a_clear_error_with_status_2() {
    let out = handoff(&["replay", "/nonexistent/journal.jsonl"], None);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("cannot open /nonexistent/journal.jsonl"),
        "{stderr}"
    );
}

#[test]
fn invalid_utf8_is_reported_not_a_crash() {
    let out = handoff(&["replay", "-"], Some(b"\xff\xfe{}\n"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("-:1: invalid (not_utf8)"), "{stderr}");
}

#[test]
fn no_progress_bar_when_piped() {
    // stderr is a pipe here, not a terminal: a clean, quiet run writes nothing to it.
    let week = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/week.jsonl");
    for args in [
        vec!["replay", "--quiet", week],
        vec!["explain", "P-170004", week],
        vec!["report", "capacity", week],
    ] {
        let out = handoff(&args, None);
        assert!(out.status.success(), "{args:?}");
        assert!(
            out.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
