//! What the console costs the live service: building the board, which the writer does at
//! most once a second between batches while the console is on (`console::BoardCell`).
//!
//! `cargo bench --bench console` replays a generated log of 1,000,000 events (100,000
//! people) into an engine, then times `Board::build` on it: every open hold and offer
//! (found among all pending timers, R6.2's included), the latest decisions, the counts.
//! It also times the same replay with the board's `Recent` observing every step, against
//! one without, to show what the pipeline pays per decision for it.
//! `HANDOFF_BENCH_EVENTS=200000 cargo bench --bench console` runs a smaller log.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use handoff::console::{Board, Recent, Role};
use handoff::journal::feed;
use handoff_core::engine::Engine;
use handoff_gen::{GenConfig, generate};

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
    let mut engine = Engine::new();
    let mut recent = Recent::default();
    feed::run(&mut engine, &log[..], None, |_, seen| {
        recent.observe(&seen);
        Ok(())
    })
    .expect("replaying from memory");
    let as_of = engine.clock().expect("the log has events");
    let board = Board::build(&engine, &recent, as_of, Role::Single);
    eprintln!(
        "console bench: {n} events, {} people, {} open holds, {} open offers",
        engine.people(),
        board.holds().len(),
        board.offers().len()
    );

    let mut g = c.benchmark_group("console");
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("board_build", |b| {
        b.iter(|| black_box(Board::build(&engine, &recent, as_of, Role::Single)))
    });
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    g.bench_function("replay_with_recent", |b| {
        b.iter(|| {
            let mut e = Engine::new();
            let mut r = Recent::default();
            feed::run(&mut e, &log[..], None, |_, seen| {
                r.observe(&seen);
                Ok(())
            })
            .unwrap();
            black_box(r)
        })
    });
    g.bench_function("replay_without", |b| {
        b.iter(|| {
            let mut e = Engine::new();
            feed::run(&mut e, &log[..], None, |_, _| Ok(())).unwrap();
            black_box(e.people())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
