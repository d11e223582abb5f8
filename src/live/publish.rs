//! `handoff publish`: a JSON-lines log of events, validated, published to `handoff.events`.
//!
//! The whole file is validated before anything is sent, so a bad line never leaves half a
//! log on the broker. A journal's control entries (`handoff.journal.opened`, ICD section 8)
//! are handoff's own and never published: they are skipped, and counted. Each event then goes out as one persistent message (routing key =
//! its type, ICD section 2) with publisher confirms and `mandatory`, so that a message the
//! broker could not store (nack) or could route nowhere (returned) is reported by line.
//!
//! The `user-id` property is what RabbitMQ validates and `handoff serve` authorizes on: by
//! default it is the URL's own user; with `--impersonate` it is, per event, the first
//! configured publisher allowed to send it, which needs the RabbitMQ `impersonator` tag.

use std::collections::{HashMap, VecDeque};
use std::io::{self, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::{BasicProperties, Confirmation, ErrorKind, PublisherConfirm};

use crate::answers::replay::Note;
use crate::edge::envelope;
use crate::journal::control::Entry;
use crate::live::config::{self, Config};
use handoff_core::authz;
use handoff_core::model::Event;

/// The broker when neither `--url` nor `HANDOFF_AMQP_URL` names one.
pub(crate) const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// `handoff publish` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct PublishArgs {
    /// The JSON-lines file of events; `-` reads standard input.
    pub file: PathBuf,
    /// The broker's AMQP URL [default: $HANDOFF_AMQP_URL, else
    /// amqp://guest:***@127.0.0.1:5672/%2f]. Its password is never printed. An amqps://
    /// URL uses TLS with the files of $HANDOFF_AMQP_TLS_CA, $HANDOFF_AMQP_TLS_CERT and
    /// $HANDOFF_AMQP_TLS_KEY, or of --config's [amqp.tls] when given.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The exchange to publish to (topic; the routing key is the event type).
    #[arg(long, default_value = "handoff.events")]
    pub exchange: String,
    /// Events per second, evenly paced; 0 is as fast as confirms allow.
    #[arg(long, value_name = "EVENTS_PER_SEC", default_value_t = 0.0)]
    pub rate: f64,
    /// At most this many messages unconfirmed by the broker at a time.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub window: u32,
    /// Send each event as the first publisher of --config allowed to send it (its AMQP
    /// user-id), instead of as the URL's user. The URL's user needs RabbitMQ's
    /// `impersonator` tag.
    #[arg(long, requires = "config")]
    pub impersonate: bool,
    /// The service configuration whose `publishers` table --impersonate reads.
    #[arg(long, value_name = "FILE", requires = "impersonate")]
    pub config: Option<PathBuf>,
}

/// Runs `handoff publish`: 0 when every event was published and confirmed, 1 when a line
/// is invalid (then nothing is published) or a message was returned or nacked, 2 when the
/// file, the configuration or the broker could not be used.
pub(crate) fn run(args: &PublishArgs) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(Fatal(message)) => {
            eprintln!("handoff: {}", redact_url(&message));
            ExitCode::from(2)
        }
    }
}

/// Replaces the password of every `scheme://user:password@host` URL in `text` with `***`.
/// A URL without a password, and any other text, is left as it is.
pub fn redact_url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at a path, query, fragment, whitespace or a quote.
        let end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '`') || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _password)) => {
                    out.push_str(user);
                    out.push_str(":***@");
                    out.push_str(host);
                }
                None => out.push_str(authority),
            },
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// A reason the command could not run at all (exit status 2).
struct Fatal(String);

impl<E: std::fmt::Display> From<E> for Fatal {
    fn from(e: E) -> Self {
        Fatal(e.to_string())
    }
}

/// One valid event of the file, ready to publish.
struct Item {
    line: u64,
    /// Its bytes in the file, without the line end.
    start: usize,
    end: usize,
    event_type: &'static str,
    id: String,
    /// Index into the user-ids.
    user: usize,
    /// The line carries journal attributes to drop.
    strip: bool,
}

/// The broker to publish to: `--url`, else `HANDOFF_AMQP_URL`, else [`DEFAULT_URL`].
pub fn broker_url(flag: Option<&str>) -> String {
    match flag {
        Some(url) => url.to_owned(),
        None => std::env::var("HANDOFF_AMQP_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_URL.to_owned()),
    }
}

fn run_inner(args: &PublishArgs) -> Result<ExitCode, Fatal> {
    let url = broker_url(args.url.as_deref());
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        return Err(Fatal("--rate must be a non-negative number".into()));
    }
    let name = args.file.display().to_string();
    let bytes = read_all(&args.file).map_err(|e| Fatal(format!("cannot read {name}: {e}")))?;
    // TLS files: the environment's, or the configuration's when one is given.
    let mut tls = config::Tls::default();
    tls.apply_env(|name| std::env::var(name).ok());
    // The user-ids to send as, and for --impersonate the agencies behind them.
    let (users, agencies) = match (&args.impersonate, &args.config) {
        (true, Some(path)) => {
            let config = Config::load(Some(path))?;
            tls = config.amqp.tls.clone();
            let agencies: Vec<(String, authz::Agency)> = config.agencies()?.into_iter().collect();
            if agencies.is_empty() {
                return Err(Fatal(format!(
                    "{}: --impersonate needs a [publishers] table; it is empty",
                    path.display()
                )));
            }
            (agencies.iter().map(|(u, _)| u.clone()).collect(), agencies)
        }
        _ => (vec![config::url_user(&url)], Vec::new()),
    };

    if let Err(config::ConfigError::Invalid { message, .. }) = config::check_url(&url) {
        return Err(Fatal(format!(
            "the AMQP URL (--url or HANDOFF_AMQP_URL): {message}"
        )));
    }
    let tls = tls.load(&url)?;
    let Validated {
        items,
        lines,
        bad,
        controls,
    } = validate(&bytes, &name, &agencies);
    if controls > 0 {
        eprintln!(
            "handoff: skipped {controls} control entries (handoff.journal.*): they are the \
             journal's own and never published"
        );
    }
    if bad > 0 {
        eprintln!("handoff: {bad} of {lines} lines invalid; nothing published");
        return Ok(ExitCode::from(1));
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let publisher = Publisher {
        url: &url,
        tls: &tls,
        exchange: &args.exchange,
        rate: args.rate,
        window: args.window as usize,
        impersonate: args.impersonate,
        name: &name,
        bytes: &bytes,
        users: &users,
    };
    let started = std::time::Instant::now();
    let failed = runtime.block_on(publisher.publish(&items))?;
    let secs = started.elapsed().as_secs_f64();
    let delivered = items.len().saturating_sub(failed);
    eprintln!(
        "handoff: published {delivered} events in {secs:.2} s ({:.0} events/s)",
        delivered as f64 / secs.max(1e-9)
    );
    if failed > 0 {
        eprintln!(
            "handoff: {failed} of {} events were not delivered",
            items.len()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn read_all(path: &Path) -> io::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        io::stdin().lock().read_to_end(&mut bytes)?;
        Ok(bytes)
    } else {
        std::fs::read(path)
    }
}

/// What [`validate`] found in the file.
struct Validated {
    /// The valid events, to publish.
    items: Vec<Item>,
    /// Non-blank lines.
    lines: u64,
    /// Bad lines.
    bad: u64,
    /// Control entries, skipped.
    controls: u64,
}

/// Checks every line, reporting each bad one on stderr as `FILE:LINE: reason`; a journal's
/// control entries are valid lines, skipped.
fn validate(bytes: &[u8], name: &str, agencies: &[(String, authz::Agency)]) -> Validated {
    let (mut items, mut lines, mut bad, mut controls) = (Vec::new(), 0u64, 0u64, 0u64);
    let mut start = 0;
    let mut n = 0u64;
    while start < bytes.len() {
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |p| start + p);
        let next = end + 1;
        n += 1;
        let mut stop = end;
        if stop > start && bytes[stop - 1] == b'\r' {
            stop -= 1;
        }
        let line = &bytes[start..stop];
        if line.iter().all(u8::is_ascii_whitespace) {
            start = next;
            continue;
        }
        lines += 1;
        match envelope::parse_entry_bytes(line) {
            Err(e) => {
                bad += 1;
                eprintln!("{name}:{n}: {}", Note::Invalid(e));
            }
            Ok(Entry::Control(_)) => controls += 1,
            Ok(Entry::Event(event)) => {
                let user = if agencies.is_empty() {
                    Some(0)
                } else {
                    agencies
                        .iter()
                        .position(|(_, agency)| authz::check(agency, &event).is_ok())
                };
                match user {
                    Some(user) => items.push(Item {
                        line: n,
                        start,
                        end: stop,
                        event_type: event.body.type_name(),
                        strip: event.received.is_some() || contains(line, b"\"handoffcrc\""),
                        id: event.id,
                        user,
                    }),
                    None => {
                        bad += 1;
                        eprintln!("{name}:{n}: {}", nobody_may_send(&event));
                    }
                }
            }
        }
        start = next;
    }
    Validated {
        items,
        lines,
        bad,
        controls,
    }
}

fn nobody_may_send(event: &Event) -> String {
    let jurisdiction = handoff_core::authz::voice(event);
    let ty = event.body.type_name();
    match jurisdiction {
        Some(j) => format!(
            "no configured publisher may send {ty} for jurisdiction {j} (--config [publishers])"
        ),
        None => format!("no configured publisher may send {ty} (--config [publishers])"),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The line without its top-level `handoffreceived` and `handoffcrc` (a journal entry
/// published again), or `None` when it has neither.
fn strip_journal_attributes(line: &[u8]) -> Option<Vec<u8>> {
    let mut value: serde_json::Value = serde_json::from_slice(line).ok()?;
    let object = value.as_object_mut()?;
    let received = object.remove("handoffreceived").is_some();
    let crc = object.remove("handoffcrc").is_some();
    if !(received || crc) {
        return None;
    }
    serde_json::to_vec(&value).ok()
}

/// Events sent per second since the bar started.
fn average_rate(state: &ProgressState) -> f64 {
    let secs = state.elapsed().as_secs_f64();
    if secs > 0.0 {
        state.pos() as f64 / secs
    } else {
        0.0
    }
}

/// When the `i`th event is due at `rate` events per second: an absolute schedule from the
/// start, so that pacing never drifts.
fn due(i: usize, rate: f64) -> Duration {
    if rate > 0.0 {
        Duration::from_secs_f64(i as f64 / rate)
    } else {
        Duration::ZERO
    }
}

struct Publisher<'a> {
    url: &'a str,
    tls: &'a config::TlsMaterial,
    exchange: &'a str,
    rate: f64,
    window: usize,
    impersonate: bool,
    name: &'a str,
    bytes: &'a [u8],
    users: &'a [String],
}

impl Publisher<'_> {
    /// Publishes every item; returns how many failed (returned or nacked).
    async fn publish(&self, items: &[Item]) -> Result<usize, Fatal> {
        let conn = tokio::time::timeout(
            Duration::from_secs(30),
            crate::live::amqp::connect(self.url, self.tls, "handoff publish"),
        )
        .await
        .map_err(|_| {
            Fatal(format!(
                "cannot connect to {}: no answer in 30 s",
                redact_url(self.url)
            ))
        })?
        .map_err(|e| Fatal(format!("cannot connect to {}: {e}", redact_url(self.url))))?;
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;

        let progress = if io::stderr().is_terminal() {
            ProgressBar::with_draw_target(
                Some(items.len() as u64),
                ProgressDrawTarget::stderr_with_hz(4),
            )
        } else {
            ProgressBar::hidden()
        };
        // The rate and time left are averages over the whole run: indicatif's own
        // estimates start far too low for a run of a few seconds.
        progress.set_style(
            ProgressStyle::with_template(
                "{wide_bar} {percent:>3}% {pos}/{len} events {rate} {left}",
            )
            .expect("a valid template")
            .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}/s", average_rate(s));
            })
            .with_key("left", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let rate = average_rate(s);
                let left = s.len().unwrap_or(0).saturating_sub(s.pos());
                if rate > 0.0 {
                    let _ = write!(w, "{:.0} s left", left as f64 / rate);
                }
            }),
        );

        // Returned messages come back attached to whichever confirm resolved next, so
        // they are matched to their line by message id and type, oldest first.
        let mut sent: HashMap<&str, VecDeque<(u64, &'static str)>> = HashMap::new();
        let mut pending: VecDeque<(u64, PublisherConfirm)> = VecDeque::new();
        let mut failed = 0usize;
        let start = tokio::time::Instant::now();
        let result: Result<(), lapin::Error> = async {
            for (i, item) in items.iter().enumerate() {
                if self.rate > 0.0 {
                    tokio::time::sleep_until(start + due(i, self.rate)).await;
                }
                let line = &self.bytes[item.start..item.end];
                let stripped = if item.strip {
                    strip_journal_attributes(line)
                } else {
                    None
                };
                let body = stripped.as_deref().unwrap_or(line);
                let properties = BasicProperties::default()
                    .with_content_type("application/cloudevents+json".into())
                    .with_delivery_mode(2)
                    .with_message_id(item.id.as_str().into())
                    .with_type(item.event_type.into())
                    .with_app_id("handoff-publish".into())
                    .with_user_id(self.users[item.user].as_str().into());
                let confirm = channel
                    .basic_publish(
                        self.exchange.into(),
                        item.event_type.into(),
                        BasicPublishOptions {
                            mandatory: true,
                            ..BasicPublishOptions::default()
                        },
                        body,
                        properties,
                    )
                    .await?;
                sent.entry(item.id.as_str())
                    .or_default()
                    .push_back((item.line, item.event_type));
                pending.push_back((item.line, confirm));
                progress.inc(1);
                while pending.len() >= self.window {
                    let (line, confirm) = pending.pop_front().expect("not empty");
                    failed += self.settle(line, confirm.await?, &mut sent, &progress);
                }
            }
            while let Some((line, confirm)) = pending.pop_front() {
                failed += self.settle(line, confirm.await?, &mut sent, &progress);
            }
            Ok(())
        }
        .await;
        progress.finish_and_clear();
        if let Err(e) = result {
            // The broker closed the channel: the reason is on the confirms still pending.
            let mut reason = e;
            if !matches!(reason.kind(), ErrorKind::ProtocolError(_)) {
                for (_, confirm) in pending.drain(..) {
                    let Ok(outcome) = tokio::time::timeout(Duration::from_secs(5), confirm).await
                    else {
                        break;
                    };
                    if let Err(e) = outcome
                        && matches!(e.kind(), ErrorKind::ProtocolError(_))
                    {
                        reason = e;
                        break;
                    }
                }
            }
            let _ = conn.close(200, "OK".into()).await;
            return Err(self.explain(&reason));
        }
        let _ = channel.close(200, "OK".into()).await;
        let _ = conn.close(200, "OK".into()).await;
        Ok(failed)
    }

    /// Reports one confirm's outcome; returns how many lines failed by it.
    fn settle(
        &self,
        line: u64,
        confirmation: Confirmation,
        sent: &mut HashMap<&str, VecDeque<(u64, &'static str)>>,
        progress: &ProgressBar,
    ) -> usize {
        let mut failed = 0;
        let nack = confirmation.is_nack();
        if nack {
            failed += 1;
            progress.suspend(|| {
                eprintln!(
                    "{}:{line}: nacked by the broker (it could not take the message)",
                    self.name
                )
            });
        }
        if let Some(returned) = confirmation.take_message() {
            let delivery = &returned.delivery;
            let id = delivery
                .properties
                .message_id()
                .as_ref()
                .map_or("", |s| s.as_str());
            let routing_key = delivery.routing_key.as_str();
            let returned_line = sent.get_mut(id).and_then(|lines| {
                let at = lines.iter().position(|&(_, ty)| ty == routing_key)?;
                lines.remove(at).map(|(line, _)| line)
            });
            // A nacked message that also came back is one failure, not two.
            if !(nack && returned_line == Some(line)) {
                failed += 1;
            }
            let hint = if returned.reply_code == 312 {
                " (is handoff serve running and the topology declared?)"
            } else {
                ""
            };
            let at = returned_line.map_or_else(|| "?".to_string(), |l| l.to_string());
            progress.suspend(|| {
                eprintln!(
                    "{}:{at}: returned by the broker: {}{hint}",
                    self.name,
                    returned.reply_text.as_str()
                )
            });
        }
        failed
    }

    /// Why the broker stopped the run, in words.
    fn explain(&self, e: &lapin::Error) -> Fatal {
        let ErrorKind::ProtocolError(amqp) = e.kind() else {
            return Fatal(format!("publishing failed: {e}"));
        };
        let text = amqp.get_message().as_str();
        match amqp.kind() {
            AMQPErrorKind::Soft(
                AMQPSoftError::PRECONDITIONFAILED | AMQPSoftError::ACCESSREFUSED,
            ) if text.contains("user_id") => {
                if self.impersonate {
                    Fatal(format!(
                        "the broker refused the user-id property ({text}): with --impersonate \
                         the user must have the impersonator tag \
                         (rabbitmqctl set_user_tags {} impersonator)",
                        config::url_user(self.url)
                    ))
                } else {
                    Fatal(format!("the broker refused the user-id property ({text})"))
                }
            }
            AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) => Fatal(format!(
                "the broker has no exchange {:?} ({text}): is handoff serve running and the \
                 topology declared?",
                self.exchange
            )),
            _ => Fatal(format!("the broker stopped the run: {text}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact_url("amqps://bop:s3cr%40t@rabbit.example:5671"),
            "amqps://bop:***@rabbit.example:5671"
        );
        // A password holding an `@` still ends at the last one.
        assert_eq!(redact_url("amqp://u:p@ss@h/v"), "amqp://u:***@h/v");
        assert_eq!(redact_url("amqp://bop@host/"), "amqp://bop@host/");
        assert_eq!(redact_url("amqp://host:5672/%2f"), "amqp://host:5672/%2f");
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(
            redact_url("cannot connect to amqp://a:b@h:1/x: refused; also \"http://c:d@e\""),
            "cannot connect to amqp://a:***@h:1/x: refused; also \"http://c:***@e\""
        );
    }

    #[test]
    fn journal_attributes_are_dropped() {
        let line = br#"{"id":"1","handoffreceived":"2017-01-28T00:00:00Z","handoffcrc":"0badc0de","data":{"handoffcrc":"x"}}"#;
        let out: serde_json::Value =
            serde_json::from_slice(&strip_journal_attributes(line).unwrap()).unwrap();
        assert_eq!(out, serde_json::json!({"id":"1","data":{"handoffcrc":"x"}}));
        assert_eq!(
            strip_journal_attributes(br#"{"id":"1","data":{"handoffcrc":"x"}}"#),
            None
        );
    }

    #[test]
    fn pacing_is_an_absolute_schedule() {
        assert_eq!(due(0, 100.0), Duration::ZERO);
        assert_eq!(due(250, 100.0), Duration::from_millis(2500));
        assert_eq!(due(7, 0.0), Duration::ZERO);
    }

    #[test]
    fn bad_lines_and_blank_lines() {
        let text = b"\n{\"not\":\"an event\"}\r\n   \n";
        let v = validate(text, "f", &[]);
        assert!(v.items.is_empty());
        assert_eq!((v.lines, v.bad, v.controls), (1, 1, 0));
    }

    /// A journal's opened entry is a valid line that is never published; an unknown
    /// control type is a bad line.
    #[test]
    fn control_entries_are_skipped_and_counted() {
        let opened = crate::journal::control::Opened::now(
            "handoff-1",
            crate::edge::envelope::parse_time("2017-01-28T08:00:00Z").unwrap(),
            0,
        );
        let json = crate::edge::wire::opened_json(&opened);
        let mut framed = Vec::new();
        crate::journal::frame(&json, &mut framed);
        let unknown = json.replace("handoff.journal.opened", "handoff.journal.closed");
        let text = [framed, format!("{json}\n{unknown}\n").into_bytes()].concat();
        let v = validate(&text, "f", &[]);
        assert!(v.items.is_empty());
        assert_eq!((v.lines, v.bad, v.controls), (3, 1, 2));
    }
}
