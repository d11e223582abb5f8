//! Prometheus metrics of the live service.
//!
//! One [`Metrics`] is created at start-up and shared as `Arc<Metrics>` by the consumer, the
//! journal, the publisher and the HTTP endpoint, which renders it with [`Metrics::encode`] in the
//! OpenMetrics text format (the format `prometheus-client` writes, ending with `# EOF`).
//!
//! Every metric is registered once, with its help text, in [`Metrics::new`]; the recording
//! methods only touch atomics (and, for labelled counters, a read-locked map lookup), so they
//! are cheap enough for the per-event path. Labels are `&'static str` so that recording never
//! allocates and the set of label values stays bounded by the code.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `handoff_events_in_total{type}` | counter | events accepted (journaled), by event type |
//! | `handoff_events_duplicate_total` | counter | events dropped as duplicates |
//! | `handoff_decisions_out_total{type}` | counter | decisions published and confirmed, by type |
//! | `handoff_dead_letters_total{reason}` | counter | deliveries dead-lettered, by reason |
//! | `handoff_decisions_unroutable_total` | counter | decisions the broker returned as unroutable |
//! | `handoff_decisions_unreached_total` | counter | decisions with a party that has no queue, parked for it in the unrouted queue |
//! | `handoff_amqp_reconnects_total` | counter | reconnections to RabbitMQ |
//! | `handoff_journal_fsync_seconds` | histogram | duration of each journal fsync |
//! | `handoff_consume_to_confirm_seconds` | histogram | delivery received to its decisions confirmed |
//! | `handoff_journal_entries` | gauge | entries in the journal |
//! | `handoff_decisions_unpublished` | gauge | journaled decisions not yet confirmed |
//! | `handoff_amqp_connected` | gauge | 1 while connected to RabbitMQ, else 0 |
//! | `handoff_ready` | gauge | 1 when `/readyz` answers 200, else 0 (as of the scrape) |
//! | `handoff_journal_write_failures_total` | counter | journal commits that failed |
//! | `handoff_hold_release_delay_seconds` | histogram | a hold's end (R3.5) confirmed, less its `hold_until` |
//! | `handoff_timer_overdue_seconds` | gauge | how far past its deadline the earliest pending timer is (as of the scrape) |
//! | `handoff_role{role}`, `handoff_journal_epoch`, `handoff_journal_lag_seconds` | gauges | the stream journal's roles (see `Metrics::new`) |

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The label of the per-type counters: `type="ice.detainer.issued"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: &'static str,
}

/// The label of the dead-letter counter: `reason="schema"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabel {
    role: &'static str,
}

/// The roles an instance can have, as the `role` label of `handoff_role`.
pub(crate) const ROLES: [&str; 2] = ["writer", "standby"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// A gauge of a count that is never negative.
type CountGauge = Gauge<u64, AtomicU64>;

/// The service's metrics and the registry that renders them.
///
/// Each field is a handle onto a metric also held by `registry`; recording through the handle
/// is what the registry encodes.
pub struct Metrics {
    registry: Registry,
    events_in: Family<TypeLabel, Counter>,
    duplicates: Counter,
    decisions_out: Family<TypeLabel, Counter>,
    dead_letters: Family<ReasonLabel, Counter>,
    unroutable: Counter,
    unreached: Counter,
    reconnects: Counter,
    fsync: Histogram,
    confirm_latency: Histogram,
    journal_entries: CountGauge,
    unpublished: CountGauge,
    connected: CountGauge,
    role: Family<RoleLabel, CountGauge>,
    epoch: CountGauge,
    journal_lag: Gauge<f64, AtomicU64>,
    ready: CountGauge,
    write_failures: Counter,
    hold_release_delay: Histogram,
    timer_overdue: Gauge<f64, AtomicU64>,
    /// The earliest pending timer's deadline, Unix milliseconds; [`NO_DEADLINE`] for none.
    next_deadline: AtomicI64,
}

/// `next_deadline` when no timer is pending (or this instance fires none: a standby).
const NO_DEADLINE: i64 = i64::MIN;

impl Metrics {
    /// Registers every metric of the service, all at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let events_in = Family::<TypeLabel, Counter>::default();
        let duplicates = Counter::default();
        let decisions_out = Family::<TypeLabel, Counter>::default();
        let dead_letters = Family::<ReasonLabel, Counter>::default();
        let unroutable = Counter::default();
        let unreached = Counter::default();
        let reconnects = Counter::default();
        // Doubling from 50 µs, 15 buckets: the last bound is 0.82 s, and slower fsyncs land
        // in +Inf.
        let fsync = Histogram::new(exponential_buckets(50e-6, 2.0, 15));
        // Doubling from 100 µs, 17 buckets: the last bound is 6.6 s.
        let confirm_latency = Histogram::new(exponential_buckets(100e-6, 2.0, 17));
        let journal_entries = CountGauge::default();
        let unpublished = CountGauge::default();
        let connected = CountGauge::default();
        let role = Family::<RoleLabel, CountGauge>::default();
        let epoch = CountGauge::default();
        let journal_lag = Gauge::<f64, AtomicU64>::default();
        let ready = CountGauge::default();
        let write_failures = Counter::default();
        // Seconds past `hold_until`: the alert rules compare with the 60 s bound.
        let hold_release_delay =
            Histogram::new([0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0]);
        let timer_overdue = Gauge::<f64, AtomicU64>::default();

        // Counter names are given without `_total` and histogram names without `_seconds`:
        // the encoder appends the suffix of the type and of the unit. It also ends each help
        // text with a full stop.
        registry.register(
            "handoff_events_in",
            "Events accepted (journaled), by event type",
            events_in.clone(),
        );
        registry.register(
            "handoff_events_duplicate",
            "Events dropped because an event with the same source and id was already accepted",
            duplicates.clone(),
        );
        registry.register(
            "handoff_decisions_out",
            "Decisions published and confirmed by the broker, by decision type",
            decisions_out.clone(),
        );
        registry.register(
            "handoff_dead_letters",
            "Deliveries rejected to the dead-letter exchange, by reason",
            dead_letters.clone(),
        );
        registry.register(
            "handoff_decisions_unroutable",
            "Decisions the broker returned as unroutable",
            unroutable.clone(),
        );
        registry.register(
            "handoff_decisions_unreached",
            "Decisions with a party that has no queue, parked for it in the unrouted queue",
            unreached.clone(),
        );
        registry.register(
            "handoff_amqp_reconnects",
            "Reconnections to RabbitMQ after a lost connection",
            reconnects.clone(),
        );
        registry.register_with_unit(
            "handoff_journal_fsync",
            "Duration of each journal commit: one fsync of the file, or (stream journal) publishing a batch and reading it back",
            Unit::Seconds,
            fsync.clone(),
        );
        registry.register_with_unit(
            "handoff_consume_to_confirm",
            "Time from a delivery's receipt to the broker's confirmation of all its decisions",
            Unit::Seconds,
            confirm_latency.clone(),
        );
        registry.register(
            "handoff_journal_entries",
            "Entries in the journal",
            journal_entries.clone(),
        );
        registry.register(
            "handoff_decisions_unpublished",
            "Journaled decisions not yet confirmed by the broker",
            unpublished.clone(),
        );
        registry.register(
            "handoff_amqp_connected",
            "1 while connected to RabbitMQ, else 0",
            connected.clone(),
        );

        registry.register(
            "handoff_role",
            "1 for this instance's role: the journal's writer, or a hot standby (stream journal)",
            role.clone(),
        );
        registry.register(
            "handoff_journal_epoch",
            "The fencing epoch of the stream journal's current writer (0: file journal)",
            epoch.clone(),
        );
        registry.register_with_unit(
            "handoff_journal_lag",
            "Stream journal: on a standby, the age of the last entry it applied when it \
             applied it; on the writer, how long its last commit took to read its entries back",
            Unit::Seconds,
            journal_lag.clone(),
        );
        registry.register(
            "handoff_ready",
            "1 when /readyz answers 200 (connected, recovered, caught up, the writer, not stopping), else 0",
            ready.clone(),
        );
        registry.register(
            "handoff_journal_write_failures",
            "Journal commits that failed: a write or fsync of the file, or a stream batch not confirmed or not read back",
            write_failures.clone(),
        );
        registry.register_with_unit(
            "handoff_hold_release_delay",
            "For each release ending a 48-hour hold (R3.5): when the broker confirmed it, less the hold's hold_until",
            Unit::Seconds,
            hold_release_delay.clone(),
        );
        registry.register_with_unit(
            "handoff_timer_overdue",
            "How far past its deadline the earliest pending timer (a hold's end, an offer's answer) is, as of the scrape; 0 when none is",
            Unit::Seconds,
            timer_overdue.clone(),
        );
        for role_name in ROLES {
            let _ = role.get_or_create(&RoleLabel { role: role_name });
        }

        Metrics {
            registry,
            events_in,
            duplicates,
            decisions_out,
            dead_letters,
            unroutable,
            unreached,
            reconnects,
            fsync,
            confirm_latency,
            journal_entries,
            unpublished,
            connected,
            role,
            epoch,
            journal_lag,
            ready,
            write_failures,
            hold_release_delay,
            timer_overdue,
            next_deadline: AtomicI64::new(NO_DEADLINE),
        }
    }

    /// Creates the labelled counters for every known label value, so that each shows as 0
    /// before it first happens. (A series that appears only at its first increment hides that
    /// increment from `rate()` and `increase()`.) Until a labelled counter has a label value,
    /// [`Metrics::encode`] leaves it out entirely, `# HELP` and `# TYPE` included.
    pub(crate) fn preregister(
        &self,
        event_types: &[&'static str],
        decision_types: &[&'static str],
        reasons: &[&'static str],
    ) {
        // Creating the series is the point; the read guard returned is released at once.
        for &r#type in event_types {
            let _ = self.events_in.get_or_create(&TypeLabel { r#type });
        }
        for &r#type in decision_types {
            let _ = self.decisions_out.get_or_create(&TypeLabel { r#type });
        }
        for &reason in reasons {
            let _ = self.dead_letters.get_or_create(&ReasonLabel { reason });
        }
    }

    /// Counts an event accepted (journaled), by its type (`ice.detainer.issued`).
    pub(crate) fn event_in(&self, event_type: &'static str) {
        self.events_in
            .get_or_create(&TypeLabel { r#type: event_type })
            .inc();
    }

    /// Counts an event dropped as a duplicate.
    pub(crate) fn duplicate(&self) {
        self.duplicates.inc();
    }

    /// Counts a decision published and confirmed, by its type (`handoff.hold`).
    pub(crate) fn decision_out(&self, decision_type: &'static str) {
        self.decisions_out
            .get_or_create(&TypeLabel {
                r#type: decision_type,
            })
            .inc();
    }

    /// Counts a delivery dead-lettered, by the short reason it was rejected for (`schema`).
    pub(crate) fn dead_letter(&self, reason: &'static str) {
        self.dead_letters
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Counts a decision the broker returned as unroutable.
    pub(crate) fn unroutable(&self) {
        self.unroutable.inc();
    }

    /// Counts a decision one of whose parties has no queue (and some other has).
    pub(crate) fn unreached(&self) {
        self.unreached.inc();
    }

    /// Counts a reconnection to RabbitMQ.
    pub(crate) fn reconnect(&self) {
        self.reconnects.inc();
    }

    /// Records the duration of one fsync of the journal.
    pub(crate) fn observe_fsync(&self, d: Duration) {
        self.fsync.observe(d.as_secs_f64());
    }

    /// Records the time from a delivery's receipt to the confirmation of all its decisions.
    pub(crate) fn observe_confirm_latency(&self, d: Duration) {
        self.confirm_latency.observe(d.as_secs_f64());
    }

    /// Sets this instance's role: the writer (`true`) or a standby.
    pub(crate) fn set_role(&self, writer: bool) {
        if !writer {
            // A standby fires no timer: none of its own can be overdue.
            self.set_next_deadline(None);
        }
        for r in ROLES {
            let on = (r == "writer") == writer;
            self.role
                .get_or_create(&RoleLabel { role: r })
                .set(u64::from(on));
        }
    }

    /// Sets the stream journal's current epoch.
    pub(crate) fn set_epoch(&self, epoch: u64) {
        self.epoch.set(epoch);
    }

    /// Sets the stream journal's lag, in seconds.
    pub(crate) fn set_journal_lag(&self, seconds: f64) {
        self.journal_lag.set(seconds);
    }

    /// Sets the number of entries in the journal.
    pub(crate) fn set_journal_entries(&self, n: u64) {
        self.journal_entries.set(n);
    }

    /// Sets the number of journaled decisions not yet confirmed by the broker.
    pub(crate) fn set_unpublished(&self, n: u64) {
        self.unpublished.set(n);
    }

    /// Sets whether the service is connected to RabbitMQ (1) or not (0).
    pub(crate) fn set_connected(&self, up: bool) {
        self.connected.set(u64::from(up));
    }

    /// Sets whether `/readyz` answers 200 (called as a scrape begins).
    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.set(u64::from(ready));
    }

    /// Counts a journal commit that failed.
    pub(crate) fn write_failure(&self) {
        self.write_failures.inc();
    }

    /// A hold's end confirmed `late` after its `hold_until` (negative: before it).
    pub(crate) fn observe_hold_release(&self, late: chrono::TimeDelta) {
        self.hold_release_delay
            .observe(late.num_milliseconds() as f64 / 1000.0);
    }

    /// The earliest pending timer's deadline (`None`: none pending, or not the writer).
    pub(crate) fn set_next_deadline(&self, deadline: Option<chrono::DateTime<chrono::Utc>>) {
        self.next_deadline.store(
            deadline.map_or(NO_DEADLINE, |d| d.timestamp_millis()),
            Ordering::Relaxed,
        );
    }

    /// Renders every metric in the OpenMetrics text format, ending with `# EOF`. The
    /// overdue gauge is worked out here, from the wall clock: a service that has stalled
    /// must still show its timers falling behind.
    pub(crate) fn encode(&self) -> String {
        let deadline = self.next_deadline.load(Ordering::Relaxed);
        let overdue = if deadline == NO_DEADLINE {
            0.0
        } else {
            ((chrono::Utc::now().timestamp_millis() - deadline) as f64 / 1000.0).max(0.0)
        };
        self.timer_overdue.set(overdue);
        let mut out = String::with_capacity(8 * 1024);
        // Writing to a String cannot fail, and neither can encoding these label values.
        encode(&mut out, &self.registry).expect("encoding metrics into a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line that starts with `series ` (name and labels exactly).
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            value.split(' ').next()?.parse().ok()
        })
    }

    #[test]
    fn metrics_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Metrics>();
    }

    #[test]
    fn encode_names_every_metric_with_help_and_ends_with_eof() {
        let m = Metrics::new();
        // A labelled counter without any label value is left out of the text altogether,
        // help included; preregistering gives each one a series.
        assert!(!m.encode().contains("handoff_events_in"));
        m.preregister(&["ice.detainer.issued"], &["handoff.hold"], &["schema"]);
        let text = m.encode();
        for name in [
            "handoff_events_in",
            "handoff_events_duplicate",
            "handoff_decisions_out",
            "handoff_dead_letters",
            "handoff_decisions_unroutable",
            "handoff_decisions_unreached",
            "handoff_amqp_reconnects",
            "handoff_journal_fsync_seconds",
            "handoff_consume_to_confirm_seconds",
            "handoff_journal_entries",
            "handoff_decisions_unpublished",
            "handoff_amqp_connected",
        ] {
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "no help for {name}:\n{text}"
            );
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "no type for {name}:\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn counters_count() {
        let m = Metrics::new();
        m.event_in("ice.detainer.issued");
        m.event_in("ice.detainer.issued");
        m.event_in("bop.release.scheduled");
        m.duplicate();
        m.decision_out("handoff.hold");
        m.dead_letter("schema");
        m.dead_letter("schema");
        m.unroutable();
        m.unreached();
        m.unreached();
        m.reconnect();
        let text = m.encode();
        let cases = [
            (
                r#"handoff_events_in_total{type="ice.detainer.issued"}"#,
                2.0,
            ),
            (
                r#"handoff_events_in_total{type="bop.release.scheduled"}"#,
                1.0,
            ),
            ("handoff_events_duplicate_total", 1.0),
            (r#"handoff_decisions_out_total{type="handoff.hold"}"#, 1.0),
            (r#"handoff_dead_letters_total{reason="schema"}"#, 2.0),
            ("handoff_decisions_unroutable_total", 1.0),
            ("handoff_decisions_unreached_total", 2.0),
            ("handoff_amqp_reconnects_total", 1.0),
        ];
        for (series, want) in cases {
            assert_eq!(sample(&text, series), Some(want), "{series} in:\n{text}");
        }
    }

    #[test]
    fn preregistered_labels_show_zero() {
        let m = Metrics::new();
        m.preregister(
            &["ice.detainer.issued", "bop.release.scheduled"],
            &["handoff.hold", "handoff.release"],
            &["schema", "utf8"],
        );
        m.event_in("ice.detainer.issued");
        let text = m.encode();
        let cases = [
            (
                r#"handoff_events_in_total{type="ice.detainer.issued"}"#,
                1.0,
            ),
            (
                r#"handoff_events_in_total{type="bop.release.scheduled"}"#,
                0.0,
            ),
            (r#"handoff_decisions_out_total{type="handoff.hold"}"#, 0.0),
            (
                r#"handoff_decisions_out_total{type="handoff.release"}"#,
                0.0,
            ),
            (r#"handoff_dead_letters_total{reason="schema"}"#, 0.0),
            (r#"handoff_dead_letters_total{reason="utf8"}"#, 0.0),
        ];
        for (series, want) in cases {
            assert_eq!(sample(&text, series), Some(want), "{series} in:\n{text}");
        }
    }

    #[test]
    fn histograms_count_and_sum() {
        let m = Metrics::new();
        assert_eq!(
            sample(&m.encode(), "handoff_journal_fsync_seconds_count"),
            Some(0.0)
        );
        m.observe_fsync(Duration::from_micros(70));
        m.observe_fsync(Duration::from_millis(3));
        m.observe_fsync(Duration::from_secs(2));
        m.observe_confirm_latency(Duration::from_millis(12));
        let text = m.encode();
        assert_eq!(
            sample(&text, "handoff_journal_fsync_seconds_count"),
            Some(3.0)
        );
        let sum = sample(&text, "handoff_journal_fsync_seconds_sum").unwrap();
        assert!((sum - 2.00307).abs() < 1e-9, "{sum}");
        // 70 µs lands in the second bucket (≤ 100 µs); 2 s is past the last bound.
        assert_eq!(
            sample(
                &text,
                r#"handoff_journal_fsync_seconds_bucket{le="0.0001"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, r#"handoff_journal_fsync_seconds_bucket{le="+Inf"}"#),
            Some(3.0)
        );
        assert_eq!(
            sample(&text, "handoff_consume_to_confirm_seconds_count"),
            Some(1.0)
        );
    }

    #[test]
    fn gauges_hold_the_last_value() {
        let m = Metrics::new();
        m.set_journal_entries(10);
        m.set_journal_entries(12_345);
        m.set_unpublished(7);
        m.set_connected(true);
        let text = m.encode();
        assert_eq!(sample(&text, "handoff_journal_entries"), Some(12_345.0));
        assert_eq!(sample(&text, "handoff_decisions_unpublished"), Some(7.0));
        assert_eq!(sample(&text, "handoff_amqp_connected"), Some(1.0));
        m.set_connected(false);
        assert_eq!(sample(&m.encode(), "handoff_amqp_connected"), Some(0.0));
    }
}
