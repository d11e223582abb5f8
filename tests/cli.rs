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

/// A first-refusal answer to an offer that does not exist: the rules refuse it as
/// `unknown_offer`.
const REFUSED: &str = r#"{"specversion":"1.0","id":"ice-r-1","source":"urn:agency:ice:eagle","type":"ice.first_refusal.response","time":"2017-01-28T09:00:00Z","subject":"P-4001","datacontenttype":"application/json","data":{"offer_id":"no-such-offer","person_id":"P-4001","decision":"accept"}}"#;

/// ICD section 6: a refusal by the rules is noted with its line number but is not a bad
/// line, so every command that decides from a log exits 0 on it; a bad line (not JSON)
/// still exits 1.
#[test]
fn a_refusal_is_noted_and_exits_0_while_a_bad_line_exits_1() {
    let dir = Scratch::new("refusal");
    let overrides = dir.path("overrides.json");
    std::fs::write(
        &overrides,
        r#"[{"jurisdiction_id":"tx-travis-county","honors_detainers":true}]"#,
    )
    .unwrap();
    let refused = format!("{REFUSED}\n");
    let with_bad_line = format!("{REFUSED}\n{{not json\n");
    let commands: [&[&str]; 5] = [
        &["replay", "-"],
        &["replay", "-", "--policy", &overrides],
        &["explain", "P-4001", "-"],
        &["report", "capacity", "-"],
        &[
            "report",
            "ddor",
            "-",
            "--from",
            "2017-01-01T00:00:00Z",
            "--to",
            "2017-02-01T00:00:00Z",
        ],
    ];
    for args in commands {
        let out = handoff(args, Some(refused.as_bytes()));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        if args[0] == "replay" {
            assert!(stderr.contains("-:1: rejected: unknown_offer"), "{stderr}");
        }
        let out = handoff(args, Some(with_bad_line.as_bytes()));
        let stderr = String::from_utf8_lossy(&out.stderr);
        // explain's status says whether the person appears, not whether lines were bad.
        let want = if args[0] == "explain" { 0 } else { 1 };
        assert_eq!(out.status.code(), Some(want), "{args:?}: {stderr}");
    }
    let out = handoff(&["replay", "-"], Some(with_bad_line.as_bytes()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("-:2: invalid (not_json)"), "{stderr}");
    assert!(
        stderr.contains("1 of 2 lines invalid (not valid events; skipped)"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------
// The journal's control entries and its rules version (ICD section 8).

const WEEK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/week.jsonl");
const WEEK_DECISIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/week.decisions.jsonl");

/// A `handoff.journal.opened` line naming `rules`, framed with its CRC as the service
/// writes it (`framed`) or as plain JSON.
fn opened(rules: u32, entries: u64, framed: bool) -> String {
    let mut o = handoff::journal::control::Opened::now(
        "handoff-a:7",
        handoff::edge::envelope::parse_time("2017-01-28T00:00:00Z").unwrap(),
        entries,
    );
    o.rules = rules;
    let json = handoff::edge::wire::opened_json(&o);
    if !framed {
        return format!("{json}\n");
    }
    let mut line = Vec::new();
    handoff::journal::frame(&json, &mut line);
    String::from_utf8(line).unwrap()
}

/// The sample week with `insert` placed before the line at each index.
fn week_with(insert: &[(usize, String)]) -> String {
    let week = std::fs::read_to_string(WEEK).unwrap();
    let mut out = String::new();
    for (i, line) in week.lines().enumerate() {
        for (at, text) in insert {
            if *at == i {
                out.push_str(text);
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Control entries decide nothing: the sample week gives the same decisions, byte for
/// byte (ids included), with opened entries at its start, in its middle and framed or
/// not, as without them; and without any (a log of inbound events) it is decided under
/// the current rules.
#[test]
fn decisions_are_identical_with_and_without_control_entries() {
    let expected = std::fs::read_to_string(WEEK_DECISIONS).unwrap();
    let current = handoff_core::RULES_VERSION;
    let plain = handoff(&["replay", "--quiet", WEEK], None);
    assert!(plain.status.success());
    assert_eq!(String::from_utf8(plain.stdout).unwrap(), expected);
    let with = week_with(&[
        (0, opened(current, 0, true)),
        (20, opened(current, 21, false)),
        (40, opened(current, 42, true)),
    ]);
    let out = handoff(&["replay", "--quiet", "-"], Some(with.as_bytes()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
    // In process too, with the timers --until fires, and the counts.
    let until = handoff::edge::envelope::parse_time("2017-03-01T00:00:00Z").unwrap();
    let week = std::fs::read_to_string(WEEK).unwrap();
    let (a, notes_a, summary_a) = handoff::answers::replay::replay_str(&week, Some(until));
    let (b, notes_b, summary_b) = handoff::answers::replay::replay_str(&with, Some(until));
    assert_eq!(a, b);
    // The notes name the same events, three lines further on after the entries.
    assert_eq!(notes_a.len(), notes_b.len());
    assert_eq!((summary_a.controls, summary_b.controls), (0, 3));
    assert_eq!(summary_a.events, summary_b.events);
    assert_eq!(summary_a.decisions, summary_b.decisions);
    // The reports and explain agree too.
    for args in [
        vec!["report", "capacity"],
        vec!["explain", "P-170004"],
        vec![
            "report",
            "ddor",
            "--from",
            "2017-01-28T00:00:00Z",
            "--to",
            "2017-02-04T00:00:00Z",
        ],
    ] {
        let mut on_week = args.clone();
        on_week.push(WEEK);
        let mut on_stdin = args.clone();
        on_stdin.push("-");
        let a = handoff(&on_week, None);
        let b = handoff(&on_stdin, Some(with.as_bytes()));
        assert!(a.status.success() && b.status.success(), "{args:?}");
        // explain names each event's line, which the inserted entries move.
        assert_eq!(
            without_line_numbers(&String::from_utf8_lossy(&a.stdout)),
            without_line_numbers(&String::from_utf8_lossy(&b.stdout)),
            "{args:?}"
        );
    }
}

/// `text` with every `line <number>` written `line #`.
fn without_line_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("line ") {
        out.push_str(&rest[..at + 5]);
        rest = &rest[at + 5..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            out.push('#');
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

/// A journal whose opened entry names other rules is refused by every command that
/// decides from a log, with exit 2 and a message that says why and what to do; with
/// `--rules current` it is decided under this build's rules (a what-if), with a note.
#[test]
fn a_journal_of_other_rules_is_refused_unless_rules_current() {
    let dir = Scratch::new("other-rules");
    let old = handoff_core::RULES_VERSION - 1;
    let journal = dir.path("journal.jsonl");
    std::fs::write(&journal, week_with(&[(0, opened(old, 0, true))])).unwrap();
    let overrides = dir.path("overrides.json");
    std::fs::write(
        &overrides,
        r#"[{"jurisdiction_id":"tx-travis-county","honors_detainers":false}]"#,
    )
    .unwrap();
    let commands: [&[&str]; 6] = [
        &["replay", &journal],
        &["replay", &journal, "--policy", &overrides],
        &["replay", &journal, "--policy", &overrides, "--diff"],
        &["explain", "P-170004", &journal],
        &["report", "capacity", &journal],
        &[
            "report",
            "ddor",
            &journal,
            "--from",
            "2017-01-28T00:00:00Z",
            "--to",
            "2017-02-04T00:00:00Z",
        ],
    ];
    for args in commands {
        let out = handoff(args, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing decided");
        for part in [
            format!(
                "{journal}: line 1: the journal says its events were decided under rules version {old}"
            ),
            "writer handoff-a:7".to_string(),
            format!(
                "this handoff decides by rules version {}",
                handoff_core::RULES_VERSION
            ),
            format!("Replay it with the handoff release that decides by rules version {old}"),
            "pass `--rules current`".to_string(),
        ] {
            assert!(
                stderr.contains(&part),
                "{args:?}: {part:?} missing from {stderr}"
            );
        }
        let mut current = args.to_vec();
        current.extend(["--rules", "current"]);
        let out = handoff(&current, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{current:?}: {stderr}");
        assert!(!out.stdout.is_empty(), "{current:?}");
        assert!(
            stderr.contains(&format!(
                "{journal}:1: the journal says rules version {old} (writer handoff-a:7); \
                 decided under this handoff's rules version {}",
                handoff_core::RULES_VERSION
            )),
            "{current:?}: {stderr}"
        );
    }
    let out = handoff(&["replay", "--quiet", &journal, "--rules", "current"], None);
    let expected = std::fs::read_to_string(WEEK_DECISIONS).unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
    // --rules journal is the default, said explicitly.
    let out = handoff(&["replay", &journal, "--rules", "journal"], None);
    assert_eq!(out.status.code(), Some(2));
}

/// Every opened entry is checked, not only the first: a writer after an upgrade appends
/// one too. The read stops at the first that names other rules.
#[test]
fn a_later_opened_entry_under_other_rules_is_refused_at_its_line() {
    let current = handoff_core::RULES_VERSION;
    let log = week_with(&[
        (0, opened(current, 0, true)),
        (30, opened(current + 1, 31, true)),
    ]);
    let out = handoff(&["replay", "--quiet", "-"], Some(log.as_bytes()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "-: line 32: the journal says its events were decided under rules version {}",
            current + 1
        )),
        "{stderr}"
    );
    let out = handoff(
        &["replay", "--quiet", "-", "--rules", "current"],
        Some(log.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(0));
    let expected = std::fs::read_to_string(WEEK_DECISIONS).unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
}

/// A `handoff.journal.*` type that is not a control type, or a control entry that fails
/// its schema, is a bad line: reported, skipped, exit 1. It is never skipped silently.
#[test]
fn an_unknown_or_malformed_control_entry_is_a_bad_line() {
    let current = handoff_core::RULES_VERSION;
    let unknown =
        opened(current, 0, false).replace("handoff.journal.opened", "handoff.journal.closed");
    let malformed = opened(current, 0, false).replace("\"rules\":", "\"rules\":\"two\",\"x\":");
    let log = week_with(&[(0, unknown), (5, malformed)]);
    let out = handoff(&["replay", "--quiet", "-"], Some(log.as_bytes()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("-:1: invalid (unknown_type): /type: unknown journal control type"),
        "{stderr}"
    );
    assert!(stderr.contains("-:7: invalid (schema)"), "{stderr}");
    // validate agrees, and accepts a well-formed one.
    let out = handoff(&["validate", "-"], Some(log.as_bytes()));
    assert_eq!(out.status.code(), Some(1));
    let good = week_with(&[(0, opened(current, 0, true))]);
    let out = handoff(&["validate", "-"], Some(good.as_bytes()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
