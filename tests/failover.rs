//! One writer at a time on a three-node RabbitMQ cluster (`journal.backend = "stream"`):
//! while a stream of events runs through two instances of `handoff serve`, a writer and a
//! hot standby, the writer is killed with SIGKILL, frozen with SIGSTOP past the broker's
//! heartbeat and then let go on (a zombie), and the RabbitMQ node leading the journal's
//! stream is killed and brought back. In the end nothing may be lost or invented: every
//! event published is in the journal (exported from the stream) exactly once, the
//! decisions seen on `handoff.decisions` (deduplicated by id) are exactly `handoff replay`
//! of the export, no decision id came with two bodies, and no hold was released later than
//! its `hold_until`. Nothing a zombie wrote after the takeover counts, since the export
//! and replay would then differ from what the live writers published.
//!
//! The cluster is three nodes of the test's own (`support/cluster.rs`), started from the
//! local RabbitMQ installation. The short form (the defaults) runs in CI. The long form
//! takes its sizes from the environment (`tools/failover.sh` runs it), e.g.
//! `HANDOFF_FAILOVER_KILLS=20 HANDOFF_FAILOVER_ZOMBIES=3 HANDOFF_FAILOVER_NODE_KILLS=3
//! HANDOFF_FAILOVER_EVENTS=20000 cargo test --release --test failover -- --nocapture`.
//! It prints a summary line with the counts and the failover times (docs/reliability.md
//! quotes them): from the kill (or the freeze) to the new writer's first decision
//! confirmed, and its parts: until the lock is won, the catch-up (marker appended and read
//! back, timers fired), and the republishing until the first decision is confirmed.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/load.rs"]
mod load;
#[path = "support/serve.rs"]
mod serve;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use cluster::Cluster;
use handoff_gen::Rng;
use load::{
    Checked, audit, await_decisions, check_decisions, key, knob, load, outgoing, publish_all,
    shuffle,
};
use serve::{BIN, Serve, jurisdictions, now_rfc3339, publishers_for, replay};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    KillWriter,
    Zombie,
    KillNode,
}

/// One takeover: when the old writer was killed or frozen, and which instance took over
/// in which of its runs.
struct Takeover {
    fault: Fault,
    at: DateTime<Utc>,
    instance: usize,
    run: u32,
}

/// A takeover's times, in ms from the fault: lock won, caught up (the stream is the new
/// writer's), and the first decision confirmed; or, when the new writer had nothing to
/// publish (nothing past the outbox mark, and no event came for a while), when it began
/// consuming (`first` is then that, and `consuming` is true).
#[derive(Debug, Clone, Copy)]
struct Times {
    lock: i64,
    caught_up: i64,
    first: i64,
    consuming: bool,
}

/// When the log line with `message` (JSON logs) was first written at or after `after`.
fn logged(log: &str, message: &str, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(message))
        })
        .filter_map(|v| {
            DateTime::parse_from_rfc3339(v["timestamp"].as_str()?)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        })
        .find(|t| *t >= after)
}

fn times(instances: &[Serve], t: &Takeover) -> Option<Times> {
    let path = instances[t.instance]
        .dir
        .join(format!("serve-{}.log", t.run));
    let log = std::fs::read_to_string(path).ok()?;
    let lock = logged(&log, "won the writer's lock", t.at)?;
    let caught_up = logged(&log, "writer: the journal stream is ours", lock)?;
    let first = logged(&log, "first decisions of this session confirmed", caught_up)
        .filter(|f| *f - caught_up < chrono::Duration::seconds(5));
    let (first, consuming) = match first {
        Some(f) => (f, false),
        None => (logged(&log, "connected to RabbitMQ", caught_up)?, true),
    };
    let ms = |x: DateTime<Utc>| (x - t.at).num_milliseconds();
    Some(Times {
        lock: ms(lock),
        caught_up: ms(caught_up),
        first: ms(first),
        consuming,
    })
}

/// Which instance is the writer now, waiting up to 60 s for there to be one.
fn writer(instances: &[Serve], skip: Option<usize>) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for (i, s) in instances.iter().enumerate() {
            if Some(i) != skip && s.child.is_some() && s.is_writer() {
                return i;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no writer after 60 s:\n{}",
            instances.iter().map(Serve::logs).collect::<String>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Copies the journal out of the stream, as an auditor would.
fn export(url: &str, to: &Path) -> Vec<String> {
    let out = std::process::Command::new(BIN)
        .args(["journal", "export", "--url", url, "-o"])
        .arg(to)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(to)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn events_of(journal: &[String]) -> Vec<(String, String)> {
    journal
        .iter()
        .filter(|l| !serve::is_control(l))
        .map(|l| key(&serde_json::from_str(l).unwrap()))
        .collect()
}

/// The entries the writer has made durable, from its metrics.
fn journaled(s: &Serve) -> usize {
    s.metrics()
        .lines()
        .find_map(|l| l.strip_prefix("handoff_journal_entries "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[i64], p: usize) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) * p).div_ceil(100)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_writer_through_writer_kills_zombies_and_node_losses() {
    let kills = knob("HANDOFF_FAILOVER_KILLS", 3) as usize;
    let zombies = knob("HANDOFF_FAILOVER_ZOMBIES", 1) as usize;
    let node_kills = knob("HANDOFF_FAILOVER_NODE_KILLS", 1) as usize;
    let n_events = knob("HANDOFF_FAILOVER_EVENTS", 3000);
    let seed = knob("HANDOFF_FAILOVER_SEED", 20261201);
    let holds = knob("HANDOFF_FAILOVER_HOLDS", 30) as usize;
    let rate = knob("HANDOFF_FAILOVER_RATE", 150) as f64;
    let started = Instant::now();
    let mut rng = Rng::new(seed);

    let mut cluster = Cluster::start("failover", 3);
    cluster.ctl(
        0,
        &["set_user_tags", "guest", "administrator", "impersonator"],
    );
    let urls: Vec<String> = (0..3).map(|i| cluster.url(i)).collect();
    // A 2 s heartbeat: a frozen writer is given up on after about 6 s.
    let beating: Vec<String> = urls.iter().map(|u| format!("{u}?heartbeat=2")).collect();

    // Holds end from 20 s after the load is made (the cluster and the instances start
    // first), one every 500 ms.
    let first_end = Utc::now() + chrono::Duration::seconds(20);
    let spacing = chrono::Duration::milliseconds(500);
    let events = load(n_events, seed, holds, first_end, spacing);
    let last_end = first_end + spacing * holds.saturating_sub(1) as i32;
    let distinct: BTreeSet<(String, String)> = events.iter().map(key).collect();
    let publishers = publishers_for(jurisdictions(&events).iter().map(String::as_str));

    let mut instances: Vec<Serve> = (0..2)
        .map(|k| {
            let others: Vec<&str> = (1..3).map(|d| beating[(k + d) % 3].as_str()).collect();
            let writer = format!("failover-{k}");
            let others = others.join(",");
            let extra = [
                ("HANDOFF_JOURNAL_BACKEND", "stream"),
                ("HANDOFF_JOURNAL_WRITER", writer.as_str()),
                ("HANDOFF_AMQP_URLS", others.as_str()),
            ];
            Serve::new_on(&format!("failover-{k}"), &beating[k], &publishers, &extra)
        })
        .collect();
    instances[0].spawn();
    instances[1].spawn_up();
    assert!(instances[1].is_standby(), "{}", instances[1].logs());

    let seen = audit(urls.clone(), "auditor", true).await;
    let messages = outgoing(&events);
    let confirmed = Arc::new(AtomicUsize::new(0));
    let resent = Arc::new(AtomicUsize::new(0));
    let sender = tokio::spawn(publish_all(
        urls.clone(),
        messages.clone(),
        rate,
        confirmed.clone(),
        resent.clone(),
    ));

    let mut faults: Vec<Fault> = std::iter::repeat_n(Fault::KillWriter, kills)
        .chain(std::iter::repeat_n(Fault::Zombie, zombies))
        .chain(std::iter::repeat_n(Fault::KillNode, node_kills))
        .collect();
    shuffle(&mut faults, &mut rng);
    let step = (distinct.len() / (faults.len() + 2)).max(1);
    let mut done: BTreeMap<Fault, usize> = BTreeMap::new();
    let mut takeovers: Vec<Takeover> = Vec::new();
    let mut leaders_killed = 0;
    for fault in &faults {
        let grow = (step as u64 / 2 + rng.below(step as u64)) as usize;
        let w = writer(&instances, None);
        let target = (journaled(&instances[w]) + grow).min(distinct.len());
        let deadline = Instant::now() + Duration::from_secs(120);
        while journaled(&instances[writer(&instances, None)]) < target {
            assert!(Instant::now() < deadline, "the journal stopped growing");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let w = writer(&instances, None);
        let other = 1 - w;
        // A hot standby: it has read (nearly) all the writer has journaled. (A standby
        // started a moment ago is still reading the stream from its start; a failover to
        // it measures that reading, not the takeover.)
        let deadline = Instant::now() + Duration::from_secs(60);
        while journaled(&instances[other]) + 50 < journaled(&instances[w]) {
            assert!(
                Instant::now() < deadline,
                "the standby did not catch up:\n{}",
                instances[other].logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        match fault {
            Fault::KillWriter | Fault::Zombie => {
                let at = Utc::now();
                if *fault == Fault::KillWriter {
                    instances[w].kill();
                } else {
                    instances[w].pause();
                }
                writer(&instances, Some(w));
                takeovers.push(Takeover {
                    fault: *fault,
                    at,
                    instance: other,
                    run: instances[other].runs,
                });
                if *fault == Fault::KillWriter {
                    instances[w].spawn_up();
                } else {
                    // Let the new writer journal a little, then wake the old one: it must
                    // find itself fenced off and become a standby.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    instances[w].resume();
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while !instances[w].is_standby() {
                        assert!(
                            Instant::now() < deadline,
                            "the zombie did not step down:\n{}",
                            instances[w].logs()
                        );
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            Fault::KillNode => {
                let leader = cluster.leader("handoff.journal").unwrap_or(0);
                let at = Utc::now();
                cluster.kill(leader);
                leaders_killed += 1;
                tokio::time::sleep(Duration::from_secs(2)).await;
                cluster.restart(leader);
                let now_writer = writer(&instances, None);
                if now_writer != w {
                    takeovers.push(Takeover {
                        fault: *fault,
                        at,
                        instance: now_writer,
                        run: instances[now_writer].runs,
                    });
                }
                for s in &mut instances {
                    s.wait_up();
                }
            }
        }
        *done.entry(*fault).or_default() += 1;
    }
    sender.await.unwrap();

    // Every event in the journal exactly once.
    let exported = cluster.dir().join("export.jsonl");
    let deadline = Instant::now() + Duration::from_secs(120);
    let journal = loop {
        let journal = export(&urls[0], &exported);
        let keys = events_of(&journal);
        let set: BTreeSet<_> = keys.iter().cloned().collect();
        assert_eq!(keys.len(), set.len(), "an event was journaled twice");
        if set == distinct {
            break journal;
        }
        assert!(
            Instant::now() < deadline,
            "the journal has {} of {} events",
            set.len(),
            distinct.len()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };

    // Wait until the last hold has ended, then compare what was published with replay of
    // the stream as exported.
    while Utc::now() < last_end + chrono::Duration::seconds(2) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    export(&urls[0], &exported);
    let expected = replay(&exported, &now_rfc3339());
    let arrivals = await_decisions(&seen, &expected, || {
        instances.iter().map(Serve::logs).collect()
    })
    .await;
    let Checked {
        plain,
        live,
        lapsed,
        lags_ms,
    } = check_decisions(&arrivals, &expected, holds, "tx-fault-county");

    // The failover times.
    let mut totals = Vec::new();
    let mut parts: [Vec<i64>; 3] = Default::default();
    let mut idle = 0;
    for t in &takeovers {
        match times(&instances, t) {
            Some(x) => {
                idle += usize::from(x.consuming);
                totals.push(x.first);
                parts[0].push(x.lock);
                parts[1].push(x.caught_up - x.lock);
                parts[2].push(x.first - x.caught_up);
            }
            None => println!("failover: no times for a takeover after {:?}", t.fault),
        }
    }
    totals.sort_unstable();
    for p in &mut parts {
        p.sort_unstable();
    }
    let opened = journal.iter().filter(|l| serve::is_control(l)).count();
    let duplicates = plain.len() - live.len();
    println!(
        "failover: seed={seed} events={} writer_kills={} zombie_pauses={} node_kills={} \
         (stream leader each time: {leaders_killed}) takeovers={} \
         takeovers_with_nothing_to_publish={idle} writers_opened={opened} \
         journaled={} journaled_twice=0 decisions={} decision_copies_seen={} \
         decisions_seen_more_than_once={duplicates} decisions_missing=0 decisions_extra=0 \
         ids_with_two_bodies=0 events_resent_by_publisher={} holds_lapsed={lapsed} \
         hold_releases_after_hold_until=0 run_holds={holds} \
         run_hold_release_seen_after_end_ms(p50/max)={}/{} \
         failover_ms(p50/max)={}/{} lock_ms(p50/max)={}/{} catch_up_ms(p50/max)={}/{} \
         republish_ms(p50/max)={}/{} elapsed_s={:.0}",
        distinct.len(),
        done.get(&Fault::KillWriter).copied().unwrap_or(0),
        done.get(&Fault::Zombie).copied().unwrap_or(0),
        done.get(&Fault::KillNode).copied().unwrap_or(0),
        takeovers.len(),
        events_of(&journal).len(),
        live.len(),
        plain.len(),
        resent.load(Ordering::Relaxed),
        percentile(&lags_ms, 50),
        lags_ms.last().copied().unwrap_or(0),
        percentile(&totals, 50),
        totals.last().copied().unwrap_or(0),
        percentile(&parts[0], 50),
        parts[0].last().copied().unwrap_or(0),
        percentile(&parts[1], 50),
        parts[1].last().copied().unwrap_or(0),
        percentile(&parts[2], 50),
        parts[2].last().copied().unwrap_or(0),
        started.elapsed().as_secs_f64(),
    );
    assert!(
        takeovers.len() >= kills + zombies,
        "every writer kill and zombie pause ended in a takeover"
    );
    for s in &mut instances {
        if s.child.is_some() {
            assert!(s.terminate().success(), "{}", s.logs());
        }
    }
    drop(cluster);
}
