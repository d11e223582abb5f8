//! The `handoff` command line: one module per command, each with its arguments and its
//! `run`. The offline commands end in [`Ended`] or an error, and [`main`] maps that to the
//! exit status in one place: 0 when every line was accepted, 1 when some line was bad (not
//! JSON, not a valid event; the run still went to the end), 2 when the command could not
//! run at all (a missing file, a bad argument). The rules' refusals (`unknown_offer`,
//! `late_response`) are noted but are not bad lines (ICD section 6). `serve`, `publish`
//! and `journal` have statuses of their own, documented in their help.

mod console;
mod explain;
mod generate;
mod journal;
mod publish;
mod replay;
mod report;
mod serve;
mod validate;

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::answers::replay::{Note, ReadError, Summary};
use crate::edge::envelope;
use crate::journal::control::{OtherRules, Rules};
use handoff_core::RULES_VERSION;
use handoff_core::model::Time;

/// The help of `--rules`, shared by every command that decides from a log.
pub(crate) const RULES_HELP: &str = "Which rules decide a journal: `journal` (the \
default) follows the rules version its handoff.journal.opened entries name, and refuses \
(exit 2) a journal decided under other rules than this handoff's, since its decisions would \
differ from the ones that were published; `current` decides it under this handoff's rules \
anyway (a what-if). A log without such an entry is decided under this handoff's rules.";

/// A read that ended early, as the error `main` reports (exit 2): a journal decided under
/// other rules is named, with what to do.
fn read_failed(log: &str, e: ReadError) -> anyhow::Error {
    match e {
        ReadError::OtherRules(_) => anyhow::anyhow!("{log}: {e}"),
        ReadError::Io(e) => e.into(),
    }
}

/// Says on stderr that a journal decided under other rules was decided under this
/// build's, as `--rules current` asked.
fn warn_other_rules(log: &str, rules: Rules, other: Option<&OtherRules>) {
    if let (Rules::Current, Some(o)) = (rules, other) {
        eprintln!(
            "handoff: note: {log}:{}: the journal says rules version {} (writer {}); decided \
             under this handoff's rules version {RULES_VERSION} as --rules current asked: a \
             what-if, whose decisions may differ from the ones that were published",
            o.line, o.rules, o.writer
        );
    }
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
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    Replay(replay::Args),
    Report(report::Args),
    Validate(validate::Args),
    Explain(explain::Args),
    Gen(generate::Args),
    Publish(publish::Args),
    Journal(journal::Args),
    Serve(serve::Args),
    Console(console::Args),
}

/// How an offline command that ran to the end came out.
#[derive(Debug)]
pub(crate) enum Ended {
    /// Every line was accepted (exit 0).
    Accepted,
    /// Some line was bad, or what was asked for is not there (exit 1); the message, if
    /// any, is printed on stderr.
    Rejected(Option<String>),
}

/// Runs the command line; the binary's `main` is this and nothing else.
pub fn main() -> ExitCode {
    let offline = match Cli::parse().command {
        Command::Replay(args) => replay::run(args),
        Command::Report(args) => report::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Gen(args) => generate::run(args),
        Command::Publish(args) => return publish::run(args),
        Command::Journal(args) => return journal::run(args),
        Command::Serve(args) => return serve::run(args),
        Command::Console(args) => return console::run(args),
    };
    match offline {
        Ok(Ended::Accepted) => ExitCode::SUCCESS,
        Ok(Ended::Rejected(why)) => {
            if let Some(why) = why {
                eprintln!("handoff: {why}");
            }
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("handoff: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn parse_time_arg(s: &str) -> Result<Time, String> {
    envelope::parse_time(s)
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

/// How a run over a log came out: rejected, with a line saying why, if any line was bad.
/// Refusals by the rules are not bad lines (ICD section 6): they were noted line by line.
fn rejected(summary: &Summary) -> Ended {
    if !summary.failed() {
        return Ended::Accepted;
    }
    Ended::Rejected(Some(format!(
        "{} of {} lines invalid (not valid events; skipped)",
        summary.invalid, summary.lines,
    )))
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
