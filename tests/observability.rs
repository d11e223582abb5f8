//! The alert rules (`deploy/prometheus/alerts.yml`), their runbook (`docs/alerts.md`) and the
//! Grafana dashboard (`deploy/grafana/handoff.json`) against the metrics the service exports.
//!
//! A rule or panel that names a metric the service does not export is silently empty in
//! Prometheus: an alert that can never fire. So every `handoff_*` name in a PromQL
//! expression (each rule's `expr`, each panel target's `expr`, each template variable's
//! query) must be a series of a metric family that `handoff serve` renders on `/metrics`,
//! with the suffix its type calls for: `_total` for a counter, `_bucket`, `_sum` or `_count`
//! for a histogram, the bare name for a gauge (`_created` as OpenMetrics allows).
//!
//! The families are read from a real `handoff serve` (no broker needed: `/metrics` answers
//! while it retries the connection), because `Metrics::encode` and `preregister` are
//! crate-private and `serve` is what preregisters the labelled counters.
//!
//! `promtool check rules` checks the PromQL, the durations and the templates, and `promtool
//! test rules` checks that each alert fires when it should (`tools/check-alerts.sh`); this
//! test checks names, labels and links only.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_handoff");
const ALERTS: &str = include_str!("../deploy/prometheus/alerts.yml");
const ALERT_TESTS: &str = include_str!("../deploy/prometheus/alerts.test.yml");
const DASHBOARD: &str = include_str!("../deploy/grafana/handoff.json");
const RUNBOOK: &str = include_str!("../docs/alerts.md");

// --- the service's metric families --------------------------------------------------------

/// `handoff serve` as a child process, killed when dropped.
struct Serve {
    child: Child,
    dir: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `GET path` on `addr`: the status and the body.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// What `handoff serve` answers on `/metrics`, without a broker: it is given an AMQP port
/// nothing listens on, and serves `/metrics` while it retries.
fn scrape_serve() -> String {
    let free = || {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let (http, amqp) = (free(), free());
    let dir = std::env::temp_dir().join(format!("handoff-observability-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = std::fs::File::create(dir.join("serve.log")).unwrap();
    let child = Command::new(BIN)
        .arg("serve")
        .env(
            "HANDOFF_AMQP_URL",
            format!("amqp://handoff:handoff@{amqp}/%2f"),
        )
        .env("HANDOFF_JOURNAL", dir.join("journal.jsonl"))
        .env("HANDOFF_HTTP_LISTEN", http.to_string())
        .env("HANDOFF_PUBLISHERS", "bop=bop")
        .env("HANDOFF_LOG", "info,lapin=off")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting handoff serve");
    let mut serve = Serve { child, dir };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((200, body)) = http_get(http, "/metrics") {
            return body;
        }
        if let Some(status) = serve.child.try_wait().unwrap() {
            let log = std::fs::read_to_string(serve.dir.join("serve.log")).unwrap_or_default();
            panic!("handoff serve exited with {status} before /metrics answered:\n{log}");
        }
        assert!(
            Instant::now() < deadline,
            "handoff serve did not answer /metrics within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The metric families of an OpenMetrics text: name (as on its `# TYPE` line, so without a
/// counter's `_total`) to type.
fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.strip_prefix("# TYPE ")?.split(' ');
            Some((words.next()?.to_owned(), words.next()?.to_owned()))
        })
        .collect()
}

/// Whether `series` (a name as PromQL writes it) is a series of one of `families`, with the
/// suffix its type calls for.
fn is_exported(series: &str, families: &BTreeMap<String, String>) -> bool {
    const SUFFIXES: [(&str, &[&str]); 6] = [
        ("", &["gauge", "unknown", "info", "stateset"]),
        ("_total", &["counter"]),
        ("_created", &["counter", "histogram", "summary"]),
        ("_bucket", &["histogram"]),
        ("_sum", &["histogram", "summary"]),
        ("_count", &["histogram", "summary"]),
    ];
    SUFFIXES.iter().any(|(suffix, types)| {
        series
            .strip_suffix(suffix)
            .and_then(|family| families.get(family))
            .is_some_and(|t| types.contains(&t.as_str()))
    })
}

/// Every `handoff_*` metric name in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let re = Regex::new(r"\bhandoff_[a-z_]+").unwrap();
    re.find_iter(expr).map(|m| m.as_str().to_owned()).collect()
}

// --- alerts.yml -----------------------------------------------------------------------------

/// One alerting rule: its name and its fields, `expr`, `for`, `labels.severity`,
/// `annotations.summary`, ... (block scalars joined: `|` by newlines, `>` by spaces).
#[derive(Debug)]
struct Rule {
    alert: String,
    fields: BTreeMap<String, String>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
        .to_owned()
}

/// The alerting rules of a rules file in the shape of `alerts.yml`: a line-based reading
/// (the test has no YAML parser), which `promtool check rules` backs up: it reads the same
/// file with a real one, and the rule count is compared below.
fn rules(yaml: &str) -> Vec<Rule> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut rules = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(name) = lines[i].trim_start().strip_prefix("- alert:") else {
            i += 1;
            continue;
        };
        // The rule's keys line up with `alert`, two columns right of the dash.
        let key_indent = indent(lines[i]) + 2;
        let mut rule = Rule {
            alert: unquote(name),
            fields: BTreeMap::new(),
        };
        let mut section = String::new();
        i += 1;
        while i < lines.len() {
            let line = lines[i];
            let t = line.trim_start();
            if t.is_empty() || t.starts_with('#') {
                i += 1;
                continue;
            }
            let at = indent(line);
            if at < key_indent {
                break;
            }
            let (key, value) = t
                .split_once(':')
                .unwrap_or_else(|| panic!("{}: not `key: value`: {line}", rule.alert));
            let path = if at == key_indent {
                section = key.to_owned();
                key.to_owned()
            } else {
                format!("{section}.{key}")
            };
            let value = value.trim();
            i += 1;
            let value = if matches!(value, "|" | "|-" | ">" | ">-") {
                let mut block = Vec::new();
                while i < lines.len() && !lines[i].trim().is_empty() && indent(lines[i]) > at {
                    block.push(lines[i].trim());
                    i += 1;
                }
                block.join(if value.starts_with('|') { "\n" } else { " " })
            } else {
                unquote(value)
            };
            rule.fields.insert(path, value);
        }
        rules.push(rule);
    }
    rules
}

/// The runbook's anchor of an alert: GitHub's, for a `## HandoffSomething` heading.
fn anchor(alert: &str) -> String {
    alert.to_lowercase()
}

// --- the dashboard --------------------------------------------------------------------------

/// Every PromQL string of the dashboard: each `expr` (panel targets), and each template
/// variable's query, at any depth (rows may nest panels).
fn dashboard_queries(v: &Value, key: Option<&str>, out: &mut Vec<String>) {
    match v {
        Value::String(s) if matches!(key, Some("expr" | "query" | "definition")) => {
            out.push(s.clone())
        }
        Value::Array(a) => a.iter().for_each(|x| dashboard_queries(x, key, out)),
        Value::Object(o) => o
            .iter()
            .for_each(|(k, x)| dashboard_queries(x, Some(k), out)),
        _ => {}
    }
}

/// The dashboard's panels, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

// --- the tests ------------------------------------------------------------------------------

/// Every `handoff_*` metric the alert rules and the dashboard query is one the service
/// exports, with the right suffix for its type.
#[test]
fn alerts_and_dashboard_query_only_exported_metrics() {
    let text = scrape_serve();
    let families = families(&text);
    assert!(
        families.contains_key("handoff_dead_letters") && families.contains_key("handoff_role"),
        "the labelled families are missing: was the service's preregistering skipped?\n{text}"
    );

    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for rule in rules(ALERTS) {
        for name in metric_names(&rule.fields["expr"]) {
            used.entry(name)
                .or_default()
                .insert(format!("alert {}", rule.alert));
        }
    }
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("handoff.json is JSON");
    let mut queries = Vec::new();
    dashboard_queries(&dashboard, None, &mut queries);
    for q in &queries {
        for name in metric_names(q) {
            used.entry(name)
                .or_default()
                .insert("the dashboard".to_owned());
        }
    }
    assert!(
        used.len() >= 10,
        "too few metric names found, the reading is broken: {used:?}"
    );

    let missing: Vec<String> = used
        .iter()
        .filter(|(name, _)| !is_exported(name, &families))
        .map(|(name, by)| format!("{name} (used by {})", Vec::from_iter(by.clone()).join(", ")))
        .collect();
    assert!(
        missing.is_empty(),
        "queried but not exported by handoff serve (or with the wrong suffix for its type):\n  {}\n\
         the families it exports: {:?}",
        missing.join("\n  "),
        families
    );
}

/// The suffix rules themselves, on names that must and must not pass.
#[test]
fn suffixes_follow_the_metric_type() {
    let families: BTreeMap<String, String> = [
        ("handoff_events_in", "counter"),
        ("handoff_journal_fsync_seconds", "histogram"),
        ("handoff_ready", "gauge"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    for ok in [
        "handoff_events_in_total",
        "handoff_journal_fsync_seconds_bucket",
        "handoff_journal_fsync_seconds_count",
        "handoff_journal_fsync_seconds_sum",
        "handoff_ready",
    ] {
        assert!(is_exported(ok, &families), "{ok}");
    }
    for bad in [
        "handoff_events_in", // a counter without _total is no series
        "handoff_events_in_bucket",
        "handoff_journal_fsync_seconds",
        "handoff_ready_total",
        "handoff_unknown",
    ] {
        assert!(!is_exported(bad, &families), "{bad}");
    }
    assert_eq!(
        metric_names(
            r#"increase(handoff_a_count{job="handoff"}[1h]) - ignoring(le) handoff_b_bucket{le="60.0"}"#
        ),
        BTreeSet::from(["handoff_a_count".to_owned(), "handoff_b_bucket".to_owned()])
    );
}

/// Each alert has an expression, a known severity, a summary and a description, a runbook
/// link to its own section of docs/alerts.md (which exists), and a unit test in
/// alerts.test.yml.
#[test]
fn every_alert_has_severity_summary_runbook_and_a_test() {
    let rules = rules(ALERTS);
    assert_eq!(
        rules.len(),
        ALERTS.matches("- alert:").count(),
        "a rule was not read"
    );
    let names: Vec<&str> = rules.iter().map(|r| r.alert.as_str()).collect();
    for want in [
        "HandoffHoldReleasedLate",
        "HandoffTimerOverdue",
        "HandoffTargetDown",
        "HandoffNoWriter",
        "HandoffNotReady",
        "HandoffDeadLetters",
        "HandoffJournalWriteFailures",
        "HandoffStandbyLagging",
        "HandoffDecisionsUnpublishedGrowing",
    ] {
        assert!(names.contains(&want), "no alert {want} in {names:?}");
    }
    let duration = Regex::new(r"^[0-9]+(ms|s|m|h|d|w|y)$").unwrap();
    let mut seen = BTreeSet::new();
    for rule in &rules {
        let a = &rule.alert;
        let f = &rule.fields;
        assert!(seen.insert(a.clone()), "{a} twice");
        assert!(a.starts_with("Handoff"), "{a}: not named Handoff*");
        assert!(!f.get("expr").is_none_or(|e| e.is_empty()), "{a}: no expr");
        assert!(
            matches!(
                f.get("labels.severity").map(String::as_str),
                Some("critical" | "warning")
            ),
            "{a}: severity {:?}",
            f.get("labels.severity")
        );
        for key in ["annotations.summary", "annotations.description"] {
            assert!(
                f.get(key).is_some_and(|s| s.len() > 10),
                "{a}: no {key}: {f:?}"
            );
        }
        if let Some(d) = f.get("for") {
            assert!(duration.is_match(d), "{a}: for {d}");
        }
        let link = format!("docs/alerts.md#{}", anchor(a));
        assert_eq!(
            f.get("annotations.runbook_url"),
            Some(&link),
            "{a}: runbook_url"
        );
        assert!(
            f["annotations.description"].contains(&link),
            "{a}: the description does not name {link}"
        );
        assert!(
            RUNBOOK.lines().any(|l| l == format!("## {a}")),
            "docs/alerts.md has no section `## {a}`"
        );
        assert!(
            ALERT_TESTS.contains(&format!("alertname: {a}\n")),
            "alerts.test.yml does not test {a}"
        );
    }
}

/// The dashboard imports: a Prometheus data source variable that every panel and target
/// uses, unique panel ids, and the panels the operators asked for.
#[test]
fn dashboard_uses_its_datasource_variable_and_has_the_panels() {
    let d: Value = serde_json::from_str(DASHBOARD).expect("handoff.json is JSON");
    let vars = d["templating"]["list"].as_array().expect("templating");
    assert!(
        vars.iter().any(|v| v["name"] == "DS_PROMETHEUS"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "no datasource variable DS_PROMETHEUS"
    );
    let ds = serde_json::json!({"type": "prometheus", "uid": "${DS_PROMETHEUS}"});
    let mut ids = BTreeSet::new();
    let mut titles = Vec::new();
    for p in panels(&d) {
        let title = p["title"].as_str().expect("every panel has a title");
        assert!(
            ids.insert(p["id"].as_u64().expect("id")),
            "{title}: id twice"
        );
        if p["type"] == "row" {
            continue;
        }
        titles.push(title.to_lowercase());
        assert_eq!(p["datasource"], ds, "{title}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no targets");
        for t in targets {
            assert_eq!(t["datasource"], ds, "{title}");
            assert!(t["expr"].as_str().is_some_and(|e| !e.is_empty()), "{title}");
            assert!(t["refId"].is_string(), "{title}");
        }
    }
    for want in [
        "events in",
        "decisions out",
        "dead letters",
        "consume to confirm",
        "journal commit",
        "unpublished",
        "hold release delay",
        "timer overdue",
        "role",
        "epoch",
        "standby lag",
        "ready",
        "reconnects",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(want)),
            "no panel on {want}: {titles:?}"
        );
    }
}
