//! The `handoff` command line: argument parsing and the offline commands.
//!
//! Each command returns its exit status: 0 when every line was good, 1 when some line
//! was rejected (the run still goes to the end), 2 when the command could not run at
//! all (a missing file, a bad argument).

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::answers::explain::Explainer;
use crate::answers::replay::{self, Note, Summary};
use crate::answers::report::Format;
use crate::answers::report::capacity::Capacity;
use crate::answers::report::ddor::Ddor;
use crate::answers::whatif;
use crate::edge::envelope;
use crate::edge::schemas;
use handoff_core::engine::Engine;
use handoff_core::model::Time;
use handoff_gen::{self as generator, GenConfig};

/// The long help of `handoff serve`, with the environment overrides listed.
fn serve_about() -> String {
    format!(
        "Run the live service. It consumes events from the inbound queue (manual acks, bounded \
prefetch), validates and authorizes each one (the AMQP user-id, mapped to an agency by the \
publishers setting), appends it to the journal with fsync before acknowledging, and publishes \
every decision to the decisions exchange with publisher confirms. Bad input is dead-lettered \
with its reason in the x-handoff-reason header.\n\n\
At start-up the journal is replayed to rebuild state; decisions not yet confirmed are \
published again with the same ids, and timers that came due while stopped fire with their \
own deadlines. SIGTERM or Ctrl-C stops consuming, finishes the batches in flight and exits.\n\n\
Exit status: 0 after SIGTERM or Ctrl-C; 2 if the configuration is invalid; 75 (EX_TEMPFAIL) if \
a journal write or fsync failed (a full disk): nothing unjournaled was acknowledged, so free \
space and restart; 1 on any other error, such as a damaged journal at start-up (see \
`handoff journal verify`).\n\n\
Settings come from --config (TOML; see deploy/handoff.toml), then from these environment \
variables:\n{}",
        crate::live::config::env_help()
    )
}

#[derive(Debug, Parser)]
#[command(
    name = "handoff",
    version,
    about = "Decides custody handoffs between BOP, ICE, local jurisdictions and courts.",
    long_about = "handoff validates agency events (CloudEvents 1.0, JSON), decides who takes \
custody under the rules of the ICD (R1-R5), and writes each decision as a CloudEvent.\n\n\
Decisions are a pure function of the event log: replaying a log always prints the same \
bytes.",
    after_help = "Examples:\n  handoff replay samples/week.jsonl\n  handoff replay journal.jsonl --until 2017-02-04T00:00:00Z\n  handoff validate samples/week.jsonl\n  handoff gen --events 1000000 --seed 7 > big.jsonl\n  handoff explain P-170004 samples/week.jsonl\n  handoff report ddor samples/week.jsonl --from 2017-01-28T00:00:00Z --to 2017-02-04T00:00:00Z --format html > ddor.html\n  handoff report capacity samples/week.jsonl --format csv\n  handoff replay samples/week.jsonl --policy overrides.json --diff\n  handoff publish samples/week.jsonl --url amqp://bop:PASSWORD@rabbit:5672/%2f --rate 100"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay a JSON-lines event log and print the decisions as JSON lines on stdout.
    #[command(
        long_about = "Replay a JSON-lines event log through the decision engine and print \
every decision as one JSON line on stdout, in decision order (ICD section 5).\n\n\
Lines that are not valid events are reported on stderr as LOG:LINE: reason and skipped; \
so are events the rules refuse (a late or unknown first-refusal answer). Duplicates and \
events that change nothing are noted on stderr too, unless --quiet.\n\n\
Exit status: 0 if every line was accepted, 1 if any line was rejected, 2 if the log \
could not be read."
    )]
    Replay {
        /// The log to replay; `-` reads standard input.
        log: PathBuf,
        /// Finally advance the clock to this RFC 3339 time, firing the timers due by then
        /// (holds that lapse, offers that go unanswered).
        #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
        until: Option<Time>,
        /// Report only lines that make the run fail (not duplicates or no-effect events).
        #[arg(long, short)]
        quiet: bool,
        /// Print throughput and peak memory on stderr at the end.
        #[arg(long, conflicts_with = "policy")]
        stats: bool,
        /// What-if: replay with jurisdiction policies overridden, as this JSON file says
        /// (an array of {"jurisdiction_id", "from"?, "to"?, "honors_detainers"?,
        /// "return_agreement"?}).
        #[arg(long, value_name = "OVERRIDES.json")]
        policy: Option<PathBuf>,
        /// With --policy: print only the decisions that change, person by person, as JSON
        /// lines {"person_id", "at", "caused_by", "before", "after"}.
        #[arg(long, requires = "policy")]
        diff: bool,
    },
    /// Reports from a log: the Declined Detainer Outcome Report, ICE capacity.
    Report {
        #[command(subcommand)]
        report: ReportCommand,
    },
    /// Check a JSON-lines file of messages (inbound events or decisions) against the
    /// schemas.
    #[command(
        long_about = "Check every line of a JSON-lines file against the handoff \
schemas: inbound events (ICD section 2) and decisions (ICD section 3) alike, dispatched on \
`type`. Each bad line is reported on stderr as FILE:LINE: reason.\n\n\
Exit status: 0 if every line is valid, 1 if any is not, 2 if the file could not be read."
    )]
    Validate {
        /// The file to check; `-` reads standard input.
        file: PathBuf,
    },
    /// Show one person's timeline: every event about them and every decision, with the
    /// rule that fired and the facts that made it fire.
    #[command(
        long_about = "Replay a log and show one person's timeline: every event about \
them, and every decision about them with the rule that fired and the facts that made it \
fire (\"R1.6: ICE detainer D-17 active; Travis County claim C-3 pending; Travis County has no \
return agreement → first-refusal offer to ICE, answer due …\"). The whole log is replayed, \
since other events (policies, capacity) shape the person's decisions too.\n\n\
Exit status: 0 if the person appears in the log, 1 if not, 2 if the log could not be read."
    )]
    Explain {
        /// The person's id (`data.person_id`).
        person_id: String,
        /// The log to read; `-` reads standard input.
        log: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Finally advance the clock to this RFC 3339 time, firing the timers due by then.
        #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
        until: Option<Time>,
    },
    /// Write a realistic synthetic event log (seeded, byte-stable) as JSON lines.
    #[command(
        long_about = "Write a synthetic event log: jurisdiction policies, ICE \
capacity, and person stories (federal releases with detainers, claims, writs and \
first-refusal offers; local releases with holds) in time order. The same arguments \
always produce the same bytes. All person ids are invented."
    )]
    Gen {
        /// Number of events to write.
        #[arg(long, default_value_t = 1000)]
        events: u64,
        /// Seed of the pseudo-random stream.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Number of distinct people (default: events / 10).
        #[arg(long)]
        people: Option<u64>,
        /// Time of the first event (RFC 3339).
        #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
        start: Option<Time>,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Publish a JSON-lines log of events to RabbitMQ (`handoff.events`), with publisher
    /// confirms.
    #[command(long_about = "Publish a JSON-lines log of events to RabbitMQ: one \
persistent message per event on the events exchange, routing key = the event type, with \
publisher confirms. The whole file is validated first; if any line is bad (reported as \
FILE:LINE: reason) nothing is published. Each message's user-id is the URL's user, or with \
--impersonate the first publisher of --config allowed to send the event (the URL's user \
then needs RabbitMQ's impersonator tag). A journal's handoffreceived and handoffcrc \
attributes are dropped.\n\n\
Exit status: 0 if every event was published and confirmed, 1 if a line is invalid or a \
message was returned (unroutable) or nacked, 2 if the file, the configuration or the \
broker could not be used.")]
    Publish(crate::live::publish::PublishArgs),
    /// Check a journal (checksums, events) or repair a damaged one, keeping a backup.
    Journal {
        #[command(subcommand)]
        command: crate::journal::tool::JournalCommand,
    },
    /// Run the live service: consume events from RabbitMQ, journal them, publish decisions.
    #[command(long_about = serve_about())]
    Serve {
        /// The TOML configuration file. Without it, defaults: a local RabbitMQ as guest,
        /// handoff-journal.jsonl in the current directory, HTTP on 127.0.0.1:9464.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// The Declined Detainer Outcome Report (ICD section 6) for clock times in [FROM, TO).
    #[command(
        long_about = "The Declined Detainer Outcome Report (ICD section 6): for \
events with clock time in [FROM, TO), the detainers issued and the jurisdictions with the \
most, the people released despite a detainer (R3.2) by criminal status, by state and by \
the jurisdiction's policy at the time, and their offenses. HTML is one self-contained file \
with charts."
    )]
    Ddor {
        /// The log to read; `-` reads standard input.
        log: PathBuf,
        /// Start of the period (RFC 3339, inclusive).
        #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
        from: Time,
        /// End of the period (RFC 3339, exclusive).
        #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
        to: Time,
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
        /// How many jurisdictions to list by detainers issued.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// ICE detention: occupancy against funded beds day by day, placements, ATD, cost.
    #[command(long_about = "ICE detention capacity over the log: occupancy against \
funded beds at the end of each day, placements by basis, Alternatives to Detention by \
monitoring type, and the daily cost of detention at a rate per bed-day (default 122 USD, \
ICE's 2013 estimate). HTML is one self-contained file with a line chart.")]
    Capacity {
        /// The log to read; `-` reads standard input.
        log: PathBuf,
        /// Cost of one bed for one day, in USD.
        #[arg(long, default_value_t = 122.0)]
        rate: f64,
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
    },
}

fn parse_time_arg(s: &str) -> Result<Time, String> {
    envelope::parse_time(s)
}

/// Runs the command line; the binary's `main` is this and nothing else.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay {
            log,
            until,
            quiet,
            policy: Some(policy),
            diff,
            ..
        } => cmd_what_if(&log, until, quiet, &policy, diff),
        Command::Replay {
            log,
            until,
            quiet,
            stats,
            policy: None,
            ..
        } => cmd_replay(&log, until, quiet, stats),
        Command::Report { report } => cmd_report(report),
        Command::Validate { file } => cmd_validate(&file),
        Command::Explain {
            person_id,
            log,
            json,
            until,
        } => cmd_explain(&person_id, &log, json, until),
        Command::Gen {
            events,
            seed,
            people,
            start,
            output,
        } => cmd_gen(events, seed, people, start, output),
        Command::Publish(args) => Ok(crate::live::publish::run(&args)),
        Command::Journal { command } => Ok(crate::journal::tool::run(command)),
        Command::Serve { config } => Ok(crate::live::service::run(config.as_deref())),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("handoff: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Prints each note worth printing as `LOG:LINE: note` on stderr (with `quiet`, only those
/// that fail the run), above the progress bar rather than through it.
fn notes<'a>(progress: &'a ProgressBar, name: &'a str, quiet: bool) -> impl FnMut(u64, Note) + 'a {
    move |line, note| {
        if !quiet || note.is_error() {
            progress.suspend(|| eprintln!("{name}:{line}: {note}"));
        }
    }
}

/// The exit status of a run over a log: 1, with a line saying why, if any line was
/// rejected.
fn exit_status(summary: &Summary) -> ExitCode {
    if !summary.failed() {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "handoff: {} of {} lines rejected ({} invalid, {} refused by the rules)",
        summary.invalid + summary.rejected,
        summary.lines,
        summary.invalid,
        summary.rejected
    );
    ExitCode::from(1)
}

/// Opens a log (`-` is standard input) for reading, with its progress bar: drawn on
/// stderr only when stderr is a terminal, so pipes and CI logs never see it.
fn open(path: &PathBuf) -> anyhow::Result<(Box<dyn BufRead>, ProgressBar)> {
    let progress = if io::stderr().is_terminal() {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4))
    } else {
        ProgressBar::hidden()
    };
    if path.as_os_str() == "-" {
        let reader = progress.wrap_read(io::stdin());
        progress.set_style(
            ProgressStyle::with_template("{spinner} {bytes} read, {bytes_per_sec}")
                .expect("a valid template"),
        );
        return Ok((
            Box::new(BufReader::with_capacity(1 << 16, reader)),
            progress,
        ));
    }
    let file =
        File::open(path).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    if let Ok(meta) = file.metadata() {
        progress.set_length(meta.len());
    }
    progress.set_style(
        ProgressStyle::with_template(
            "{wide_bar} {percent:>3}% {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .expect("a valid template"),
    );
    let reader = progress.wrap_read(file);
    Ok((
        Box::new(BufReader::with_capacity(1 << 16, reader)),
        progress,
    ))
}

fn cmd_replay(
    log: &PathBuf,
    until: Option<Time>,
    quiet: bool,
    stats: bool,
) -> anyhow::Result<ExitCode> {
    let (reader, progress) = open(log)?;
    let out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let name = log.display().to_string();
    let started = Instant::now();
    let mut engine = Engine::new();
    let summary = replay::replay(
        &mut engine,
        reader,
        until,
        out,
        notes(&progress, &name, quiet),
    )?;
    progress.finish_and_clear();
    if stats {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "handoff: {} events ({} invalid, {} rejected, {} duplicates, {} no effect), \
{} decisions, {} people in {:.3} s: {:.0} events/s; peak memory {}",
            summary.events,
            summary.invalid,
            summary.rejected,
            summary.duplicates,
            summary.no_effect,
            summary.decisions,
            engine.people(),
            secs,
            summary.events as f64 / secs,
            peak_memory().unwrap_or_else(|| "unknown".to_owned()),
        );
    }
    Ok(exit_status(&summary))
}

/// The process's peak resident memory, from Linux's `/proc/self/status` (`VmHWM`).
fn peak_memory() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(format!("{:.1} MiB", kib as f64 / 1024.0))
}

fn cmd_validate(file: &PathBuf) -> anyhow::Result<ExitCode> {
    let (mut reader, progress) = open(file)?;
    let name = file.display().to_string();
    let mut note = notes(&progress, &name, false);
    let (mut n, mut lines, mut bad) = (0u64, 0u64, 0u64);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        n += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        lines += 1;
        if let Err(e) = check_message(&line) {
            bad += 1;
            note(n, Note::Invalid(e));
        }
    }
    let mut stdout = io::stdout().lock();
    writeln!(
        stdout,
        "{name}: {lines} messages, {} valid, {bad} invalid",
        lines - bad
    )?;
    Ok(if bad > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Checks one message of either direction: the schema for its type, then the rules a
/// schema cannot state (`subject` equals `data.person_id`; times are real times).
pub fn check_message(bytes: &[u8]) -> Result<&'static str, envelope::Invalid> {
    let value = envelope::parse_json(bytes)?;
    let ty = schemas::validate_any(&value)?;
    if schemas::DECISION_TYPES.contains(&ty) {
        if value["subject"] != value["data"]["person_id"] {
            return Err(envelope::Invalid::SubjectMismatch);
        }
    } else {
        envelope::event_from_value(&value)?;
    }
    Ok(ty)
}

fn cmd_what_if(
    log: &PathBuf,
    until: Option<Time>,
    quiet: bool,
    policy: &PathBuf,
    diff: bool,
) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(policy)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", policy.display()))?;
    let overrides =
        whatif::parse_overrides(&text).map_err(|e| anyhow::anyhow!("{}: {e}", policy.display()))?;
    let (reader, progress) = open(log)?;
    let out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let name = log.display().to_string();
    if diff {
        let summary = whatif::diff(reader, until, &overrides, out)?;
        progress.finish_and_clear();
        eprintln!(
            "handoff: {} events; {} people decided differently ({} decisions before, {} after)",
            summary.events,
            summary.people_changed,
            summary.decisions_before,
            summary.decisions_after
        );
        return Ok(ExitCode::SUCCESS);
    }
    let summary = whatif::replay_with(
        reader,
        until,
        &overrides,
        out,
        notes(&progress, &name, quiet),
    )?;
    progress.finish_and_clear();
    Ok(exit_status(&summary))
}

fn cmd_report(report: ReportCommand) -> anyhow::Result<ExitCode> {
    let mut engine = Engine::new();
    let (text, summary) = match report {
        ReportCommand::Ddor {
            log,
            from,
            to,
            format,
            top,
        } => {
            anyhow::ensure!(from < to, "--from must be before --to");
            let (reader, progress) = open(&log)?;
            let mut ddor = Ddor::new(from, to, top);
            let summary = replay::run(&mut engine, reader, None, |e, seen| {
                ddor.observe(e, &seen);
                Ok(())
            })?;
            progress.finish_and_clear();
            (ddor.finish(&engine).render(format), summary)
        }
        ReportCommand::Capacity { log, rate, format } => {
            anyhow::ensure!(
                rate.is_finite() && rate >= 0.0,
                "--rate must be a non-negative number"
            );
            let (reader, progress) = open(&log)?;
            let mut capacity = Capacity::new(rate);
            let summary = replay::run(&mut engine, reader, None, |e, seen| {
                capacity.observe(e, &seen);
                Ok(())
            })?;
            progress.finish_and_clear();
            let text = capacity
                .finish(&engine)
                .render(format)
                .map_err(|e| anyhow::anyhow!(e))?;
            (text, summary)
        }
    };
    io::stdout().lock().write_all(text.as_bytes())?;
    if summary.failed() {
        eprintln!(
            "handoff: {} lines of the log were rejected and left out of the report; \
`handoff replay` lists them",
            summary.invalid + summary.rejected
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_explain(
    person_id: &str,
    log: &PathBuf,
    json: bool,
    until: Option<Time>,
) -> anyhow::Result<ExitCode> {
    let (reader, progress) = open(log)?;
    let mut explainer = Explainer::new(person_id);
    let mut engine = Engine::new();
    replay::run(&mut engine, reader, until, |engine, seen| {
        explainer.observe(engine, &seen);
        Ok(())
    })?;
    progress.finish_and_clear();
    let timeline = explainer.finish();
    let mut stdout = io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, &timeline)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", timeline.to_text())?;
    }
    if timeline.entries.is_empty() {
        eprintln!(
            "handoff: {} does not appear in {}",
            person_id,
            log.display()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_gen(
    events: u64,
    seed: u64,
    people: Option<u64>,
    start: Option<Time>,
    output: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let mut cfg = GenConfig::new(events, seed);
    if let Some(p) = people {
        cfg.people = p.max(1);
    }
    if let Some(s) = start {
        cfg.start = s;
    }
    match output {
        Some(path) => {
            let file = File::create(&path)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
            generator::generate(&cfg, BufWriter::with_capacity(1 << 16, file))?;
        }
        None => {
            generator::generate(&cfg, BufWriter::with_capacity(1 << 16, io::stdout().lock()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
