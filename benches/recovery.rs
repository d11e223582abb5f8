//! Start-up time of `handoff serve`: recovering the engine from a journal (read, checksum,
//! parse, validate, decide), which is what a restart after a crash costs.
//!
//! `cargo bench --bench recovery` recovers a journal of 1,000,000 events across 100,000
//! people; `HANDOFF_BENCH_EVENTS=200000 cargo bench --bench recovery` a smaller one.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use handoff::journal::{FileJournal, Journal, OutboxMark};
use handoff::live::config::Config;
use handoff::live::http::Health;
use handoff::live::metrics::Metrics;
use handoff::live::service::Core;
use handoff_gen::{GenConfig, generate};

/// The binary's allocator, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn events() -> u64 {
    std::env::var("HANDOFF_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
}

fn bench(c: &mut Criterion) {
    let n = events();
    let dir = std::env::temp_dir().join(format!("handoff-bench-recovery-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("journal.jsonl");
    // A journal as the service writes it: each generated event with `handoffreceived`
    // (here its own `time`) and a checksum.
    {
        let mut log = Vec::new();
        generate(&GenConfig::new(n, 1), &mut log).expect("generating into memory");
        let (mut journal, _) = FileJournal::open(&path, |_, _| Ok(())).unwrap();
        for line in log.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let mut v: serde_json::Value = serde_json::from_slice(line).unwrap();
            let time = v["time"].clone();
            v["handoffreceived"] = time;
            journal.append(&serde_json::to_string(&v).unwrap());
        }
        journal.commit().unwrap();
    }
    let mut config = Config::default();
    config.journal.path = path.clone();

    let mut group = c.benchmark_group("recovery");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(60));
    group.throughput(Throughput::Elements(n));
    group.bench_function(format!("journal/{n}"), |b| {
        b.iter(|| {
            // Every decision counts as published, as after a clean stop.
            OutboxMark::beside(&path).store(u64::MAX).unwrap();
            let core = Core::recover(
                config.clone(),
                Arc::new(Metrics::new()),
                Arc::new(Health::default()),
            )
            .unwrap();
            drop(core);
        })
    });
    group.finish();
    std::fs::remove_dir_all(&dir).ok();
}

criterion_group!(benches, bench);
criterion_main!(benches);
