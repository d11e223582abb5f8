//! The cost of ICE's funding review (R6.1) per person moved, with 100,000 people detained.
//!
//! `cargo bench --bench review` builds an engine in which ICE detains 100,000 people
//! (`criminal_status` `none` and `charged`, some with removal not foreseeable, so the
//! review's order has every tier to sort through), then times one `ice.capacity.updated`
//! that puts occupancy M over the funded beds: the engine moves M people to ATD, one
//! `handoff.placement` each (M = 100, and M = 40,000). Between two timed cuts, M new people
//! are detained (untimed), so every cut meets 100,000 detained people. Criterion reports
//! the time per cut; the throughput line is people moved per second.
//! `HANDOFF_BENCH_DETAINED=N` changes the population.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use handoff_core::engine::Engine;
use handoff_core::model::{CriminalStatus, Custodian, Event, EventBody, Time};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// People moved by each timed cut: a routine review, and a cut like March 2013's that
/// leaves 40,000 people over capacity in one event.
const MOVES: [u64; 2] = [100, 40_000];

fn detained() -> u64 {
    std::env::var("HANDOFF_BENCH_DETAINED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000)
}

/// Feeds ICE's events to the engine, each a second after the last.
struct Ice {
    engine: Engine,
    n: u64,
    now: Time,
    people: u64,
}

impl Ice {
    fn send(&mut self, body: EventBody) -> usize {
        self.n += 1;
        self.now += TimeDelta::seconds(1);
        let e = Event {
            source: "urn:agency:ice:bench".to_owned(),
            id: format!("b-{}", self.n),
            time: self.now,
            received: None,
            body,
        };
        self.engine.handle(&e).decisions.len()
    }

    fn capacity(&mut self, funded: u64, occupied: u64) -> usize {
        self.send(EventBody::CapacityUpdated {
            funded_beds: funded,
            occupied_beds: occupied,
        })
    }

    /// A new person ICE holds and detains (R4.2, beds to spare).
    fn detain(&mut self) {
        self.people += 1;
        let p = format!("P-{:07}", self.people);
        let criminal_status = if self.people.is_multiple_of(3) {
            CriminalStatus::Charged
        } else {
            CriminalStatus::None
        };
        self.send(EventBody::DetainerIssued {
            detainer_id: format!("D-{}", self.people),
            person_id: p.clone(),
            custodian: Custodian::Ice,
            criminal_status,
            offenses: Vec::new(),
        });
        if self.people.is_multiple_of(7) {
            self.send(EventBody::RemovalStatus {
                person_id: p.clone(),
                country: "VE".to_owned(),
                foreseeable: false,
            });
        }
        let placed = self.send(EventBody::CustodyAssumed {
            person_id: p,
            from: Custodian::Ice,
        });
        assert_eq!(placed, 1, "a detention");
    }
}

fn bench(c: &mut Criterion) {
    let n = detained();
    let start = Utc.with_ymd_and_hms(2013, 1, 1, 0, 0, 0).unwrap();
    let mut ice = Ice {
        engine: Engine::new(),
        n: 0,
        now: start,
        people: 0,
    };
    ice.capacity(u64::MAX, 0);
    for _ in 0..n {
        ice.detain();
    }
    assert_eq!(ice.engine.capacity(), Some((u64::MAX, n)));

    let mut group = c.benchmark_group("review");
    for moves in MOVES {
        group.throughput(Throughput::Elements(moves));
        // The untimed top-up dominates a big cut's wall time: fewer, shorter samples.
        let (samples, seconds) = if moves > 1_000 { (10, 2) } else { (100, 20) };
        group.sample_size(samples);
        group.measurement_time(Duration::from_secs(seconds));
        group.bench_function(format!("cut-moving-{moves}-of-{n}-detained"), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    // Top up to n + moves detained (untimed), then cut to n funded beds.
                    ice.capacity(u64::MAX, n);
                    for _ in 0..moves {
                        ice.detain();
                    }
                    let t = Instant::now();
                    let moved = ice.capacity(n, n + moves);
                    timed += t.elapsed();
                    assert_eq!(black_box(moved), moves as usize);
                }
                timed
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
