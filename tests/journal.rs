//! Journal damage: `handoff journal verify` and `repair` on torn, corrupt and unframed lines,
//! start-up refusing a damaged journal, file modes, and a journal on a file system that fills
//! up under a live `handoff serve` (a small tmpfs), against a real RabbitMQ.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/serve.rs"]
mod serve;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use broker::Broker;
use handoff::edge::envelope;
use handoff::journal::control::{Control, Entry};
use handoff::journal::{FileJournal, frame};
use handoff_core::engine::Engine;
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use serde_json::Value;

use serve::*;

// ---------------------------------------------------------------------------------------
// Helpers.

/// A fresh directory of this test's own.
fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("handoff-journal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `handoff gen` events as JSON values.
fn generated(events: u64, seed: u64) -> Vec<Value> {
    serve::generated(events, seed, Some((events / 10).max(1)), None)
}

/// A journal of `count` generated events, framed as the service frames them; each line's
/// bytes (with its '\n').
fn journal_lines(count: u64) -> Vec<Vec<u8>> {
    generated(count, 3)
        .iter()
        .map(|e| {
            let mut line = Vec::new();
            frame(&serde_json::to_string(e).unwrap(), &mut line);
            line
        })
        .collect()
}

fn handoff(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn verify(path: &Path) -> Output {
    handoff(&["journal", "verify", path.to_str().unwrap()])
}

fn repair(path: &Path, how: &str) -> Output {
    handoff(&["journal", "repair", path.to_str().unwrap(), how])
}

/// The files in `dir` whose names start with `prefix`.
fn files_starting(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix))
        .collect();
    found.sort();
    found
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// How many decisions the engine makes for the first `n` lines of a journal.
fn decisions_of(lines: &[Vec<u8>]) -> u64 {
    let mut engine = Engine::new();
    lines
        .iter()
        .map(|l| {
            let text = std::str::from_utf8(&l[..l.len() - 1]).unwrap();
            engine
                .handle(&envelope::parse_event(text).unwrap())
                .decisions
                .len() as u64
        })
        .sum()
}

/// Checks a repair's report and its backup, and that verify finds the result intact.
/// Gives the path of the moved-aside file.
fn check_repaired(path: &Path, out: &Output, original: &[u8], kept: &[u8]) -> PathBuf {
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(out), stderr(out));
    let text = stdout(out);
    let dir = path.parent().unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    let backups = files_starting(dir, &format!("{name}.bak-"));
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert!(
        text.contains(&format!("backup: {}", backups[0].display())),
        "{text}"
    );
    assert_eq!(std::fs::read(&backups[0]).unwrap(), original);
    assert_eq!(mode(&backups[0]), 0o600);
    assert_eq!(std::fs::read(path).unwrap(), kept);
    assert_eq!(mode(path), 0o600);
    assert!(text.contains("verify: intact"), "{text}");
    let again = verify(path);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
    assert!(stdout(&again).contains("verdict: intact"));
    // No temporary file is left behind.
    assert!(files_starting(dir, &format!("{name}.repair-")).is_empty());
    let aside = files_starting(dir, &format!("{name}.damaged-"));
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(mode(&aside[0]), 0o600);
    assert!(
        text.contains(&format!("to {}", aside[0].display())),
        "{text}"
    );
    aside[0].clone()
}

// ---------------------------------------------------------------------------------------
// verify and repair.

#[test]
fn an_intact_journal_verifies_and_needs_no_repair() {
    let dir = workdir("intact");
    let path = dir.join("j.jsonl");
    let lines = journal_lines(30);
    std::fs::write(&path, lines.concat()).unwrap();
    let out = verify(&path);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("30 intact entries, all valid events (replay accepts them)"),
        "{text}"
    );
    assert!(text.contains("damaged lines: 0") && text.contains("verdict: intact"));

    let out = repair(&path, "--drop-damaged");
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("intact; nothing to repair"));
    assert_eq!(std::fs::read(&path).unwrap(), lines.concat());
    assert_eq!(files_starting(&dir, "j.jsonl.").len(), 0);
}

#[test]
fn a_torn_last_line_is_reported_and_cut_off_as_start_up_would() {
    let dir = workdir("torn");
    let path = dir.join("j.jsonl");
    let lines = journal_lines(12);
    let intact = lines[..11].concat();
    let mut torn = intact.clone();
    torn.extend_from_slice(&lines[11][..lines[11].len() / 2]);
    std::fs::write(&path, &torn).unwrap();

    let out = verify(&path);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "line 12 (byte {}, {} bytes): torn tail: the last line has no newline",
            intact.len(),
            lines[11].len() / 2
        )),
        "{text}"
    );
    assert!(text.contains("cuts the tail off by itself at start-up"));
    assert!(text.contains("Nothing is lost and nothing needs doing"));
    assert!(text.contains("verdict: damaged (torn tail only: start-up repairs it)"));
    assert!(!text.contains("Damage in the middle"));
    // Verify changed nothing.
    assert_eq!(std::fs::read(&path).unwrap(), torn);

    let out = repair(&path, "--truncate");
    let aside = check_repaired(&path, &out, &torn, &intact);
    assert_eq!(
        std::fs::read(aside).unwrap(),
        &lines[11][..lines[11].len() / 2]
    );

    // Start-up, given the same torn journal, leaves the same bytes.
    let startup = dir.join("startup.jsonl");
    std::fs::write(&startup, &torn).unwrap();
    let (_, recovery) = FileJournal::open(&startup, |_, _| Ok(())).unwrap();
    assert_eq!(recovery.entries, 11);
    assert_eq!(std::fs::read(&startup).unwrap(), intact);
}

/// A byte flipped in line 5 of 20: verify names the line, its offset and the checksum
/// mismatch, start-up refuses naming the offset, and each repair keeps what it promises.
#[test]
fn a_corrupt_middle_line_is_found_refused_and_repaired_both_ways() {
    let dir = workdir("corrupt");
    let lines = journal_lines(20);
    let offset: usize = lines[..4].iter().map(Vec::len).sum();
    let mut bytes = lines.concat();
    bytes[offset + 60] ^= 0x01;
    let damaged_line = bytes[offset..offset + lines[4].len()].to_vec();
    let path = dir.join("j.jsonl");
    std::fs::write(&path, &bytes).unwrap();

    let out = verify(&path);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("19 intact entries, all valid events") && text.contains("damaged lines: 1"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "line 5 (byte {offset}, {} bytes): checksum mismatch (stored ",
            lines[4].len()
        )),
        "{text}"
    );
    assert!(text.contains(&format!(
        "Damage in the middle: line 5 (byte {offset}) is damaged"
    )));
    for option in [
        "(a) Restore the journal from a backup",
        "(b) `handoff journal repair",
        "--drop-damaged`: keep every intact entry",
        "compare `handoff replay",
        "(c) `handoff journal repair",
        "--truncate`: keep only the first 4 entries",
        "re-publish",
    ] {
        assert!(text.contains(option), "missing {option:?} in:\n{text}");
    }
    assert!(text.contains("verdict: damaged (start-up refuses this journal)"));
    assert_eq!(std::fs::read(&path).unwrap(), bytes);

    // Start-up refuses, naming the offset and the way out, and changes nothing.
    let out = Command::new(BIN)
        .arg("serve")
        .env("HANDOFF_JOURNAL", &path)
        .env("HANDOFF_HTTP_LISTEN", "")
        .env("HANDOFF_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f")
        .env("HANDOFF_PUBLISHERS", "bop=bop")
        .env("HANDOFF_LOG_FORMAT", "text")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(
        log.contains(&format!("is damaged at byte {offset} (line 5)")),
        "{log}"
    );
    assert!(log.contains("handoff journal verify"), "{log}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes);

    // --drop-damaged: every intact entry stays; the damaged line is moved aside. The outbox
    // mark comes down to the decisions before the damage.
    let drop_dir = workdir("corrupt-drop");
    let dropped = drop_dir.join("j.jsonl");
    std::fs::write(&dropped, &bytes).unwrap();
    std::fs::write(drop_dir.join("j.jsonl.published"), "1000000\n").unwrap();
    let out = repair(&dropped, "--drop-damaged");
    let kept: Vec<u8> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 4)
        .flat_map(|(_, l)| l.clone())
        .collect();
    let aside = check_repaired(&dropped, &out, &bytes, &kept);
    assert_eq!(std::fs::read(aside).unwrap(), damaged_line);
    let before = decisions_of(&lines[..4]);
    assert_eq!(
        std::fs::read_to_string(drop_dir.join("j.jsonl.published")).unwrap(),
        format!("{before}\n")
    );
    assert!(stdout(&out).contains(&format!("lowered from 1000000 to {before}")));
    assert!(stdout(&out).contains("now holds 19 intact entries"));

    // --truncate: only the four lines before the damage stay.
    let cut_dir = workdir("corrupt-truncate");
    let cut = cut_dir.join("j.jsonl");
    std::fs::write(&cut, &bytes).unwrap();
    let out = repair(&cut, "--truncate");
    let aside = check_repaired(&cut, &out, &bytes, &lines[..4].concat());
    assert_eq!(std::fs::read(aside).unwrap(), &bytes[offset..]);
    assert!(stdout(&out).contains("now holds 4 intact entries"));
}

#[test]
fn lines_without_a_checksum_are_reported_as_such() {
    let dir = workdir("no-checksum");
    let path = dir.join("j.jsonl");
    let lines = journal_lines(6);
    // Line 3: the event as JSON but not framed; line 5: not JSON at all.
    let event = generated(6, 3)[2].clone();
    let mut unframed = serde_json::to_vec(&event).unwrap();
    unframed.push(b'\n');
    let garbage = b"\0\0\0\0\0\0\0\0\n".to_vec();
    let file = [
        lines[0].clone(),
        lines[1].clone(),
        unframed.clone(),
        lines[3].clone(),
        garbage.clone(),
        lines[5].clone(),
    ];
    std::fs::write(&path, file.concat()).unwrap();
    let out = verify(&path);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let at = |n: usize| file[..n].iter().map(Vec::len).sum::<usize>();
    assert!(
        text.contains(&format!(
            "line 3 (byte {}, {} bytes): missing checksum: a JSON line without a handoffcrc",
            at(2),
            unframed.len()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "line 5 (byte {}, 9 bytes): missing checksum, and not JSON",
            at(4)
        )),
        "{text}"
    );
    assert!(text.contains("(2 damaged lines in all)"), "{text}");

    let out = repair(&path, "--drop-damaged");
    let kept = [
        lines[0].clone(),
        lines[1].clone(),
        lines[3].clone(),
        lines[5].clone(),
    ]
    .concat();
    let aside = check_repaired(&path, &out, &file.concat(), &kept);
    assert_eq!(std::fs::read(aside).unwrap(), [unframed, garbage].concat());
}

/// A line whose checksum matches but which is not an event (another version's schema, say)
/// is reported apart from damage, and start-up would refuse it, so repair moves it aside.
#[test]
fn an_intact_entry_that_is_not_an_event_is_reported() {
    let dir = workdir("not-an-event");
    let path = dir.join("j.jsonl");
    let lines = journal_lines(4);
    let mut odd = Vec::new();
    frame(
        r#"{"specversion":"1.0","id":"x-1","source":"urn:test","type":"test.unknown"}"#,
        &mut odd,
    );
    let file = [lines[0].clone(), odd, lines[1].clone()];
    std::fs::write(&path, file.concat()).unwrap();
    let out = verify(&path);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("3 intact entries, 1 of them not valid events"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "line 2 (byte {}, {} bytes): intact (its checksum matches) but not a valid event",
            lines[0].len(),
            file[1].len()
        )),
        "{text}"
    );
    assert!(text.contains("Not valid events: line 2"), "{text}");
    assert!(!text.contains("Damage in the middle"), "{text}");

    let out = repair(&path, "--drop-damaged");
    check_repaired(
        &path,
        &out,
        &file.concat(),
        &[lines[0].clone(), lines[1].clone()].concat(),
    );
}

#[test]
fn repair_refuses_while_a_service_holds_the_journal() {
    let dir = workdir("locked");
    let path = dir.join("j.jsonl");
    let lines = journal_lines(5);
    std::fs::write(&path, lines.concat()).unwrap();
    // The lock a running service holds.
    let (journal, _) = FileJournal::open(&path, |_, _| Ok(())).unwrap();
    let before = std::fs::read(&path).unwrap();

    let out = repair(&path, "--truncate");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("is locked by another process, most likely a running `handoff serve`"),
        "{err}"
    );
    assert!(err.contains("stop the service first"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert!(files_starting(&dir, "j.jsonl.").is_empty());

    // Verify still reads it, and says a service holds it.
    let out = verify(&path);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("a running service holds this journal"));
    drop(journal);
    let out = verify(&path);
    assert!(!stdout(&out).contains("a running service holds this journal"));
}

#[test]
fn usage_and_io_errors_exit_2() {
    let dir = workdir("usage");
    let missing = dir.join("missing.jsonl");
    let out = verify(&missing);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot open"), "{}", stderr(&out));
    assert_eq!(repair(&missing, "--truncate").status.code(), Some(2));
    let out = handoff(&["journal", "repair", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--drop-damaged|--truncate"));
    let out = handoff(&[
        "journal",
        "repair",
        missing.to_str().unwrap(),
        "--truncate",
        "--drop-damaged",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let help = stdout(&handoff(&["journal", "verify", "--help"]));
    assert!(
        help.contains("Exit status: 0 if the journal is intact"),
        "{help}"
    );
    let help = stdout(&handoff(&["journal", "repair", "--help"]));
    assert!(help.contains("FILE.bak-<time>"), "{help}");
}

// ---------------------------------------------------------------------------------------
// The live service.

/// The service creates its journal 0600, and warns about a journal others may read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_journal_is_created_0600_and_a_loose_one_is_warned_about() {
    let broker = Broker::new("journal-modes");
    let dir = workdir("modes");
    let fresh = dir.join("fresh.jsonl");
    let publishers = publishers_for(["tx-travis-county"]);
    let mut serve = Serve::start_with(
        "journal-modes",
        &broker,
        &publishers,
        &[("HANDOFF_JOURNAL", fresh.to_str().unwrap())],
    );
    assert_eq!(mode(&fresh), 0o600);
    assert!(serve.terminate().success());
    assert!(
        !serve.logs().contains("readable or writable by others"),
        "{}",
        serve.logs()
    );

    let loose = dir.join("loose.jsonl");
    std::fs::write(&loose, journal_lines(3).concat()).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut serve = Serve::start_with(
        "journal-modes-loose",
        &broker,
        &publishers,
        &[("HANDOFF_JOURNAL", loose.to_str().unwrap())],
    );
    let logs = serve.logs();
    let warning = logs
        .lines()
        .find(|l| l.contains("readable or writable by others"))
        .unwrap_or_else(|| panic!("no warning about the mode:\n{logs}"));
    assert!(
        warning.contains("WARN") && warning.contains("644"),
        "{warning}"
    );
    assert!(serve.terminate().success());
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(name: &str, size: &str) -> Tmpfs {
        let path =
            std::env::temp_dir().join(format!("handoff-tmpfs-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("handoff-test")
            .arg(&path)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs at {} ({}). This test fills a small file system on purpose \
             and must mount one: run it as root, or in a user and mount namespace \
             (`unshare --map-root-user --mount cargo test --test journal`).",
            path.display(),
            stderr(&out).trim()
        );
        Tmpfs { path }
    }

    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .output()
            .unwrap();
        assert!(out.status.success(), "remount: {}", stderr(&out));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// The (source, id) of every complete event line of a journal (a torn last line and the
/// control entries are not counted).
fn journaled(path: &Path) -> Vec<(String, String)> {
    let bytes = std::fs::read(path).unwrap();
    bytes
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| l.ends_with(b"\n") && !is_control(&String::from_utf8_lossy(l)))
        .map(|l| {
            let e: Value = serde_json::from_slice(l).unwrap();
            (
                e["source"].as_str().unwrap().into(),
                e["id"].as_str().unwrap().into(),
            )
        })
        .collect()
}

fn key(e: &Value) -> (String, String) {
    (
        e["source"].as_str().unwrap().into(),
        e["id"].as_str().unwrap().into(),
    )
}

/// Every message in `queue`, taken without acknowledging and given back when the channel
/// closes, as (source, id).
async fn peek(url: &str, queue: &str) -> BTreeSet<(String, String)> {
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut found = BTreeSet::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await
        .unwrap()
    {
        let e: Value = serde_json::from_slice(&m.delivery.data).unwrap();
        found.insert(key(&e));
    }
    conn.close(200, "peeked".into()).await.unwrap();
    found
}

/// Waits until no consumer is left on `queue`: then what the service held unacknowledged
/// is back in it.
async fn wait_no_consumer(url: &str, queue: &str) {
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let q = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        if q.consumer_count() == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{queue} still has a consumer after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    conn.close(200, "done".into()).await.unwrap();
}

/// The journal on a 256 KiB tmpfs: the service journals until the disk is full, then stops
/// with exit status 75 and one error line saying why, having acknowledged nothing it did not
/// journal. Every event not journaled is still in the inbound queue. With room again, a
/// restart journals every event exactly once, and the decisions published equal replay of
/// the journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_stops_the_service_without_losing_an_event() {
    let disk = Tmpfs::mount("full-disk", "256k");
    let journal = disk.path.join("journal.jsonl");
    let broker = Broker::new("full-disk");
    // The first 200 or so generated events are policies; the disk fills after them, while
    // decisions flow.
    let events = generated(2000, 13);
    let all: BTreeSet<(String, String)> = events.iter().map(key).collect();
    let volume: usize = events.iter().map(|e| e.to_string().len()).sum();
    assert!(
        volume > 2 * 256 * 1024,
        "{volume} bytes do not fill the disk"
    );
    let publishers = publishers_for(jurisdictions(&events).iter().map(String::as_str));
    let mut serve = Serve::start_with(
        "full-disk",
        &broker,
        &publishers,
        &[("HANDOFF_JOURNAL", journal.to_str().unwrap())],
    );
    let audit = Watch::start(&broker.url(), "handoff.decisions", "audit").await;
    let (_, operator) = broker.add_user("operator", &["impersonator"]);
    let p = Publisher::connect(&operator).await;
    for e in &events {
        p.event(e).await;
    }

    // The service stops by itself.
    let mut child = serve.child.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("handoff serve still runs on a full disk:\n{}", serve.logs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let logs = serve.logs();
    assert_eq!(status.code(), Some(75), "{logs}");
    let failures: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("the journal cannot be written"))
        .collect();
    assert_eq!(failures.len(), 1, "{logs}");
    let line = failures[0];
    for part in [
        "\"level\":\"ERROR\"",
        "No space left on device",
        journal.to_str().unwrap(),
        "Nothing that is not in the journal was acknowledged",
        "stays in RabbitMQ",
        "\"exit_status\":75",
    ] {
        assert!(line.contains(part), "{part:?} missing from {line}");
    }
    assert!(
        !logs.contains("\"message\":\"stopped: journal:"),
        "the failure is reported twice: {logs}"
    );
    assert!(
        http_get(serve.http, "/readyz").is_none_or(|(status, _)| status != 200),
        "/readyz still says ready"
    );

    // Nothing acknowledged is lost: what is not in the journal is still in the queue.
    let on_disk: BTreeSet<(String, String)> = journaled(&journal).into_iter().collect();
    assert!(
        !on_disk.is_empty() && on_disk.len() < all.len(),
        "the disk filled after {} of {} events",
        on_disk.len(),
        all.len()
    );
    assert!(
        !replay(&journal, &now_rfc3339()).is_empty(),
        "the disk filled before any decision was made"
    );
    wait_no_consumer(&broker.url(), "handoff.inbound").await;
    let queued = peek(&broker.url(), "handoff.inbound").await;
    let lost: Vec<&(String, String)> = all
        .iter()
        .filter(|k| !on_disk.contains(*k) && !queued.contains(*k))
        .collect();
    assert!(
        lost.is_empty(),
        "{} events acknowledged but not journaled, e.g. {:?}",
        lost.len(),
        lost.first()
    );

    // Room again: a restart journals every event exactly once.
    disk.resize("16m");
    serve.spawn();
    let deadline = Instant::now() + Duration::from_secs(120);
    while journaled(&journal).len() < all.len() {
        assert!(
            Instant::now() < deadline,
            "journal has {} of {} entries:\n{}",
            journaled(&journal).len(),
            all.len(),
            serve.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let entries = journaled(&journal);
    let distinct: BTreeSet<(String, String)> = entries.iter().cloned().collect();
    assert_eq!(
        entries.len(),
        distinct.len(),
        "an event was journaled twice"
    );
    assert_eq!(distinct, all);
    let out = verify(&journal);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // The decisions published, across both runs, are those replay finds in the journal.
    audit.live_equals_replay(&journal).await;
    assert!(serve.terminate().success(), "{}", serve.logs());
}

// ---------------------------------------------------------------------------------------
// Control entries (ICD section 8).

/// A journal line's control entry, if it is one.
fn opened_entry(line: &str) -> Option<handoff::journal::control::Opened> {
    match handoff::edge::envelope::parse_entry(line) {
        Ok(Entry::Control(Control::Opened(o))) => Some(o),
        _ => None,
    }
}

/// A `handoff.journal.opened` entry, framed, naming `rules`.
fn opened_line(rules: u32, entries: u64) -> Vec<u8> {
    let mut o = handoff::journal::control::Opened::now(
        "handoff-old:1",
        envelope::parse_time("2017-01-28T00:00:00Z").unwrap(),
        entries,
    );
    o.rules = rules;
    let mut line = Vec::new();
    frame(&handoff::edge::wire::opened_json(&o), &mut line);
    line
}

/// The live service's journal begins with `handoff.journal.opened` (its CRC checked like
/// every entry), naming this build's rules and the configured writer; a restarted
/// service appends another before the next event it journals. Replay, verify and the
/// decisions published all take them in their stride.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_service_opens_its_journal_and_opens_it_again_after_a_restart() {
    let broker = Broker::new("journal-opened");
    let events = sample_events();
    let publishers = publishers_for(jurisdictions(&events).iter().map(String::as_str));
    let mut serve = Serve::start_with(
        "journal-opened",
        &broker,
        &publishers,
        &[("HANDOFF_JOURNAL_WRITER", "handoff-it-1")],
    );
    let audit = Watch::start(&broker.url(), "handoff.decisions", "audit").await;
    // Ready means recovered: the opened entry is durable before any event arrives.
    let first = serve.journal_entries();
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(handoff::journal::check_line(first[0].as_bytes()), Ok(()));
    let opened = opened_entry(&first[0]).expect("the first entry is opened");
    assert_eq!(
        (opened.rules, opened.writer.as_str(), opened.epoch),
        (handoff_core::RULES_VERSION, "handoff-it-1", None)
    );

    let (_, operator) = broker.add_user("operator", &["impersonator"]);
    let p = Publisher::connect(&operator).await;
    for e in events.iter().take(10) {
        p.event(e).await;
    }
    serve.wait_journal(10);
    assert!(serve.terminate().success(), "{}", serve.logs());
    serve.env.retain(|(k, _)| k != "HANDOFF_JOURNAL_WRITER");
    serve
        .env
        .push(("HANDOFF_JOURNAL_WRITER".into(), "handoff-it-2".into()));
    serve.spawn();
    let entries = serve.journal_entries();
    assert_eq!(entries.len(), 12, "{entries:?}");
    let again = opened_entry(&entries[11]).expect("the restart's opened entry comes last");
    assert_eq!(again.writer, "handoff-it-2");
    assert_ne!(again.id, opened.id);
    assert!(again.time >= opened.time);
    for e in &events[10..] {
        p.event(e).await;
    }
    // The sample repeats one event on purpose (after the tenth): it is not journaled.
    let distinct: BTreeSet<(String, String)> = events.iter().map(key).collect();
    assert_eq!(distinct.len(), events.len() - 1);
    serve.wait_journal(distinct.len());
    let entries = serve.journal_entries();
    let controls: Vec<usize> = (0..entries.len())
        .filter(|i| is_control(&entries[*i]))
        .collect();
    assert_eq!(controls, [0, 11]);
    for line in &entries {
        assert_eq!(handoff::journal::check_line(line.as_bytes()), Ok(()));
    }

    // verify counts them apart and shows the rules version.
    let out = verify(&serve.journal());
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "all valid: {} events and 2 control entries",
            distinct.len()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "rules version {} (this handoff's): 2 handoff.journal.opened entries, the first at \
             line 1 (writer handoff-it-1)",
            handoff_core::RULES_VERSION
        )),
        "{text}"
    );
    assert!(!text.contains("warning"), "{text}");
    // What was published live is what replay of the journal gives.
    audit.live_equals_replay(&serve.journal()).await;
    assert!(serve.terminate().success(), "{}", serve.logs());
}

/// Start-up refuses a journal decided under other rules, with exit status 78 and a message
/// that says why and what to do, and leaves the journal as it was.
#[test]
fn start_up_refuses_a_journal_opened_under_other_rules() {
    let dir = workdir("other-rules");
    let path = dir.join("j.jsonl");
    let old = handoff_core::RULES_VERSION - 1;
    let bytes = [opened_line(old, 0), journal_lines(5).concat()].concat();
    std::fs::write(&path, &bytes).unwrap();
    let out = Command::new(BIN)
        .arg("serve")
        .env("HANDOFF_JOURNAL", &path)
        .env("HANDOFF_HTTP_LISTEN", "")
        .env("HANDOFF_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f")
        .env("HANDOFF_PUBLISHERS", "bop=bop")
        .env("HANDOFF_LOG_FORMAT", "text")
        .output()
        .unwrap();
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(78), "{log}");
    for part in [
        format!("line 1: the journal says its events were decided under rules version {old}"),
        "writer handoff-old:1".to_string(),
        format!("decides by rules version {}", handoff_core::RULES_VERSION),
        format!("start the handoff release that decides by rules version {old}"),
        "point this one at a new journal".to_string(),
    ] {
        assert!(log.contains(&part), "{part:?} missing from {log}");
    }
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    // verify says so too, as a warning: nothing in the file is damaged.
    let out = verify(&path);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "warning: line 1: the journal says its events were decided under rules version {old}"
        )),
        "{text}"
    );
}

/// verify and repair read control entries like events: checksummed, counted apart. A
/// torn tail after an opened entry is cut off as start-up would, and the restart's own
/// opened entry torn in the middle of its write is a torn tail too.
#[test]
fn verify_and_repair_with_control_entries_and_a_torn_tail() {
    let dir = workdir("controls-torn");
    let events = journal_lines(6);
    let path = dir.join("j.jsonl");
    let intact = [
        opened_line(handoff_core::RULES_VERSION, 0),
        events[..5].concat(),
    ]
    .concat();
    let second = opened_line(handoff_core::RULES_VERSION, 6);
    let half = &second[..second.len() / 2];
    let torn = [intact.clone(), half.to_vec()].concat();
    std::fs::write(&path, &torn).unwrap();
    let out = verify(&path);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("6 intact entries, all valid: 5 events and 1 control entries"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "line 7 (byte {}, {} bytes): torn tail",
            intact.len(),
            half.len()
        )),
        "{text}"
    );
    assert!(
        text.contains("verdict: damaged (torn tail only: start-up repairs it)"),
        "{text}"
    );
    assert!(!text.contains("warning"), "{text}");
    let out = repair(&path, "--truncate");
    let aside = check_repaired(&path, &out, &torn, &intact);
    assert_eq!(std::fs::read(aside).unwrap(), half);
    assert!(stdout(&out).contains("now holds 6 intact entries"));

    // An event torn after the opened entry: the same, and start-up agrees.
    let startup = dir.join("startup.jsonl");
    let opened_then_torn = [
        opened_line(handoff_core::RULES_VERSION, 0),
        events[0][..events[0].len() / 3].to_vec(),
    ]
    .concat();
    std::fs::write(&startup, &opened_then_torn).unwrap();
    let (_, recovery) = FileJournal::open(&startup, |_, _| Ok(())).unwrap();
    assert_eq!(recovery.entries, 1);
    assert_eq!(
        std::fs::read(&startup).unwrap(),
        opened_line(handoff_core::RULES_VERSION, 0)
    );

    // A damaged opened entry in the middle is damage like any other: --drop-damaged moves
    // it aside, and the outbox mark counts the decisions of the events before it.
    let middle_dir = workdir("controls-middle");
    let middle = middle_dir.join("j.jsonl");
    let mut damaged_opened = opened_line(handoff_core::RULES_VERSION, 3);
    let at = damaged_opened.len() - 10;
    damaged_opened[at] ^= 0x01;
    let file = [
        opened_line(handoff_core::RULES_VERSION, 0),
        events[..3].concat(),
        damaged_opened.clone(),
        events[3..].concat(),
    ]
    .concat();
    std::fs::write(&middle, &file).unwrap();
    std::fs::write(middle_dir.join("j.jsonl.published"), "1000000\n").unwrap();
    let out = verify(&middle);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("Damage in the middle: line 5"),
        "{}",
        stdout(&out)
    );
    let out = repair(&middle, "--drop-damaged");
    let kept = [opened_line(handoff_core::RULES_VERSION, 0), events.concat()].concat();
    let aside = check_repaired(&middle, &out, &file, &kept);
    assert_eq!(std::fs::read(aside).unwrap(), damaged_opened);
    assert_eq!(
        std::fs::read_to_string(middle_dir.join("j.jsonl.published")).unwrap(),
        format!("{}\n", decisions_of(&events[..3]))
    );
}

/// A journal without an opened entry (written before handoff recorded its rules, or a log
/// of inbound events) verifies intact, with a warning that says what it means.
#[test]
fn verify_warns_when_the_first_entry_is_not_opened() {
    let dir = workdir("no-opened");
    let path = dir.join("j.jsonl");
    std::fs::write(&path, journal_lines(4).concat()).unwrap();
    let out = verify(&path);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("verdict: intact"), "{text}");
    assert!(
        text.contains("warning: the first entry is not a handoff.journal.opened"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "decided under this handoff's rules (version {})",
            handoff_core::RULES_VERSION
        )),
        "{text}"
    );
}
