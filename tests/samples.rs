//! The two samples in `samples/` (the week, and the sequester) replay to exactly their
//! expected decisions, together exercise every rule of ICD section 5 (the sequester every
//! R6 rule by itself), and run clean through the real binary.
//!
//! To accept a deliberate change of the expected output, run the tests with
//! `UPDATE_EXPECT=1` and review the diff of `samples/*.decisions.jsonl`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use handoff_core::model::Rule;

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(name)
}

/// Replays `samples/NAME.jsonl` in memory (no `--until`) and compares the decisions with
/// `samples/NAME.decisions.jsonl`, which `UPDATE_EXPECT=1` rewrites first.
fn replay_sample(name: &str) -> (String, handoff::answers::replay::Summary) {
    let log = std::fs::read_to_string(sample(&format!("{name}.jsonl"))).unwrap();
    let (out, notes, summary) = handoff::answers::replay::replay_str(&log, None);
    let expected_path = sample(&format!("{name}.decisions.jsonl"));
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&expected_path, &out).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap();
    assert_eq!(out, expected, "replay of samples/{name}.jsonl changed");
    assert!(!summary.failed(), "{notes:?}");
    (out, summary)
}

#[test]
fn sample_week_gives_the_expected_decisions() {
    let (_, summary) = replay_sample("week");
    // The sample is clean: one redelivered message, and three reports that change nothing
    // (a late hold report, a stale release notice, a hold reported expired before it
    // began); nothing refused.
    assert_eq!(summary.duplicates, 1);
    assert_eq!(summary.no_effect, 3);
}

/// The sequester (samples/README.md, "The sequester"): forty decisions, derived by hand
/// there before the replay confirmed them. The log runs past every 180-day deadline it
/// sets (its last events are in October 2013), so it is replayed without `--until`, and
/// no timer is left: replaying it to the end of 2014 decides nothing more.
#[test]
fn sample_sequester_gives_the_expected_decisions() {
    let (out, summary) = replay_sample("sequester");
    assert_eq!(summary.events, 43);
    assert_eq!(summary.decisions, 40);
    assert_eq!(summary.duplicates, 0);
    assert_eq!(summary.no_effect, 0);
    let log = std::fs::read_to_string(sample("sequester.jsonl")).unwrap();
    let until = "2014-12-31T00:00:00Z".parse().unwrap();
    let (later, _, _) = handoff::answers::replay::replay_str(&log, Some(until));
    assert_eq!(
        later, out,
        "a timer was left pending at the end of the sequester"
    );
}

/// The rules a sample's expected decisions name.
fn rules_of(name: &str) -> BTreeSet<String> {
    let out = std::fs::read_to_string(sample(&format!("{name}.decisions.jsonl"))).unwrap();
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["data"]["rule"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn samples_together_exercise_every_rule() {
    let week = rules_of("week");
    let sequester = rules_of("sequester");
    let missing: Vec<&str> = Rule::ALL
        .iter()
        .map(|r| r.as_str())
        .filter(|r| !week.contains(*r) && !sequester.contains(*r))
        .collect();
    assert!(
        missing.is_empty(),
        "rules exercised by neither sample: {missing:?}"
    );
    // The sequester is the sample of ICE's detention reviews: it exercises every R6 rule
    // by itself.
    let r6: Vec<&str> = Rule::ALL
        .iter()
        .map(|r| r.as_str())
        .filter(|r| r.starts_with("R6."))
        .collect();
    assert_eq!(r6, ["R6.1", "R6.2", "R6.3"]);
    let missing: Vec<&&str> = r6.iter().filter(|r| !sequester.contains(**r)).collect();
    assert!(
        missing.is_empty(),
        "R6 rules not exercised by the sequester: {missing:?}"
    );
}

/// `handoff replay [FLAGS] samples/week.jsonl`, which must succeed.
fn replay_week(flags: &[&str]) -> std::process::Output {
    replay_file("week.jsonl", flags)
}

/// `handoff replay [FLAGS] samples/FILE`, which must succeed.
fn replay_file(file: &str, flags: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .arg("replay")
        .args(flags)
        .arg(sample(file))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn cli_replays_the_sample_week() {
    let out = replay_week(&[]);
    let expected = std::fs::read_to_string(sample("week.decisions.jsonl")).unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("week.jsonl:55: duplicate"), "{stderr}");
}

#[test]
fn cli_replays_the_sequester() {
    let out = replay_file("sequester.jsonl", &[]);
    let expected = std::fs::read_to_string(sample("sequester.decisions.jsonl")).unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
    // Nothing to note: no duplicate, nothing without effect, nothing refused.
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "");
}

/// `handoff replay --parties`: each decision exactly as without the flag, plus a last
/// member `parties`. Who is told of a sample of the week's decisions, derived by hand from
/// ICD section 4 (the custodian giving the person up, the receiver, ICE for offers, holds,
/// placements, transfers to or from it, named or active detainers, and every jurisdiction
/// with an unsatisfied claim or unexecuted writ).
#[test]
fn replay_parties_names_who_is_told_of_each_decision() {
    let out = replay_week(&["--parties"]);
    let with = String::from_utf8(out.stdout).unwrap();
    let plain = std::fs::read_to_string(sample("week.decisions.jsonl")).unwrap();
    assert_eq!(with.lines().count(), plain.lines().count());
    let mut told = std::collections::BTreeMap::new();
    for (w, p) in with.lines().zip(plain.lines()) {
        let mut w: serde_json::Value = serde_json::from_str(w).unwrap();
        let parties = w
            .as_object_mut()
            .unwrap()
            .remove("parties")
            .expect("parties");
        let p: serde_json::Value = serde_json::from_str(p).unwrap();
        assert_eq!(w, p, "--parties changed the decision itself");
        let keys: Vec<String> = parties
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(keys, sorted, "parties sorted, each once");
        let key = format!(
            "{} {}",
            p["subject"].as_str().unwrap(),
            p["data"]["rule"].as_str().unwrap()
        );
        told.insert(key, keys.join(" "));
    }
    let (bop, ice, travis) = (
        "party.bop.fci-bastrop",
        "party.ice",
        "party.local.tx-travis-county",
    );
    for (decision, parties) in [
        // An offer: the BOP facility, ICE, and the claimant.
        ("P-170004 R1.6", vec![bop, ice, travis]),
        // ICE takes the person from BOP; Travis's claim is still pending.
        ("P-170004 R1.7", vec![bop, ice, travis]),
        // ICE gives the person to the claimant.
        ("P-170004 R2.2", vec![ice, travis]),
        // A release with no detainer and no claim: only the facility.
        ("P-170002 R1.4", vec![bop]),
        // A county's own release, nobody else concerned.
        ("P-170020 R3.1", vec![travis]),
        // A declined detainer release: the county, and ICE, whose detainer it names.
        ("P-170021 R3.2", vec![ice, travis]),
        // A hold: the county holding the person, and ICE, which must come within 48 hours.
        ("P-170022 R3.3", vec![ice, travis]),
        // The offer void for want of a detainer: the claimant takes the person; ICE, with
        // no detainer left and none named, is not a party.
        ("P-170008 R1.11", vec![bop, travis]),
        // A placement: ICE; and Travis, whose claim is still unsatisfied.
        ("P-170012 R4.2", vec![ice, travis]),
        ("P-170011 R4.2", vec![ice]),
    ] {
        assert_eq!(
            told.get(decision).map(String::as_str),
            Some(parties.join(" ").as_str()),
            "{decision}"
        );
    }
}

#[test]
fn cli_reports_bad_lines_with_their_number_and_exits_non_zero() {
    let dir = std::env::temp_dir().join(format!("handoff-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.jsonl");
    let good = std::fs::read_to_string(sample("week.jsonl")).unwrap();
    let first = good.lines().next().unwrap();
    std::fs::write(
        &path,
        format!(
            "{first}\n{{not json\n{}\n",
            first.replace("\"1.0\"", "\"0.3\"")
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .arg("replay")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("bad.jsonl:2: invalid (not_json)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad.jsonl:3: invalid (schema): /specversion"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cli_validate_accepts_samples_and_decisions() {
    for file in [
        "week.jsonl",
        "week.decisions.jsonl",
        "sequester.jsonl",
        "sequester.decisions.jsonl",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_handoff"))
            .arg("validate")
            .arg(sample(file))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
