//! Replay throughput on one core: the whole offline pipeline (JSON parsing, schema
//! validation, the engine, decision serialization) over a generated log, and each part
//! alone, to show where the time goes.
//!
//! `cargo bench --bench replay` runs it over 1,000,000 events across 100,000 people;
//! `HANDOFF_BENCH_EVENTS=200000 cargo bench --bench replay` runs a smaller log.

use std::hint::black_box;
use std::io;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use handoff::answers::replay;
use handoff::edge::envelope;
use handoff::edge::wire;
use handoff_core::engine::Engine;
use handoff_core::model::Event;
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
    let mut log = Vec::new();
    generate(&GenConfig::new(n, 1), &mut log).expect("generating into memory");
    let parsed: Vec<Event> = log
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| envelope::parse_event_bytes(l).expect("generated events are valid"))
        .collect();
    let decisions = {
        let mut engine = Engine::new();
        let mut all = Vec::new();
        for e in &parsed {
            all.extend(engine.handle(e).decisions);
        }
        all
    };

    let mut group = c.benchmark_group("replay");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(45));
    group.throughput(Throughput::Elements(n));

    group.bench_function(format!("pipeline/{n}"), |b| {
        b.iter(|| {
            let mut engine = Engine::new();
            let summary =
                replay::replay(&mut engine, &log[..], None, io::sink(), |_, _| {}).unwrap();
            assert!(!summary.failed());
            black_box(summary)
        })
    });

    group.bench_function(format!("parse_and_validate/{n}"), |b| {
        b.iter(|| {
            for line in log.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                black_box(envelope::parse_event_bytes(line).unwrap());
            }
        })
    });

    group.bench_function(format!("engine/{n}"), |b| {
        b.iter(|| {
            let mut engine = Engine::new();
            for e in &parsed {
                black_box(engine.handle(e));
            }
        })
    });

    group.throughput(Throughput::Elements(decisions.len() as u64));
    group.bench_function(format!("serialize_decisions/{}", decisions.len()), |b| {
        let mut buf = Vec::with_capacity(1 << 20);
        b.iter(|| {
            for d in &decisions {
                buf.clear();
                wire::write_decision(d, &mut buf);
                black_box(&buf);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
