//! `handoff journal verify|repair FILE`: what is wrong with a journal, and the two ways to
//! make a damaged one usable again (`crate::journal::tool`).

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Subcommand};

use crate::journal::tool::{Mode, repair, verify, write_repaired, write_report};

/// Check a journal (checksums, events) or repair a damaged one, keeping a backup.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    pub(crate) command: JournalCommand,
}

const VERIFY_ABOUT: &str = "Read a journal from start to end without changing it and \
report every damaged line: its line number, its byte offset and what is wrong (checksum \
mismatch, missing checksum, not JSON, or a torn tail: a last line without a newline). Each \
intact entry is also checked to be a valid event or control entry (handoff.journal.opened, \
checksummed like the events and counted apart), as `handoff replay` and start-up require, \
and the rules versions the opened entries name are shown.\n\n\
When something is wrong, verify explains the options. Damage after the last intact entry is \
a torn tail: it was never acknowledged, and `handoff serve` cuts it off by itself at \
start-up. Damage with intact entries after it means acknowledged events are unreadable, and \
the service refuses to start; the choices are to restore the file from a copy, to \
`handoff journal repair FILE --drop-damaged`, or to `handoff journal repair FILE --truncate`.\n\n\
Warnings, which do not change the exit status since nothing is damaged: a first entry \
that is not handoff.journal.opened (a journal written before handoff recorded its rules \
version, or a log of inbound events: decided under this handoff's rules), and an opened \
entry that names other rules than this handoff's (start-up and replay refuse the journal).\n\n\
Safe to run while the service runs (it then says so; the last line may be a write in \
progress).\n\n\
Exit status: 0 if the journal is intact, 1 if anything is damaged, 2 if it could not be read.";

const REPAIR_ABOUT: &str = "Repair a damaged journal, in one of two ways:\n\n\
--drop-damaged keeps every intact entry and moves the damaged lines aside to \
FILE.damaged-<time>. The events on those lines are gone from the journal, so decisions \
computed after them may differ from what was published: compare `handoff replay FILE` with \
the audit queue, and have the agencies re-publish what is missing.\n\n\
--truncate keeps only the entries before the first damaged line and moves everything from \
there on aside to FILE.damaged-<time>. The agencies must re-publish the events after that \
point.\n\n\
Either way, a torn tail is cut off as start-up would, and an entry whose checksum matches \
but is not a valid event counts as damaged. Repair refuses while a service holds the \
journal's lock. It first copies the journal to FILE.bak-<time> (mode 0600), then writes the \
repaired journal to a temporary file (mode 0600, the old file's owner), syncs it and \
renames it over FILE. The outbox mark beside the journal is lowered to the decisions \
before the first damaged line, so that start-up publishes every later decision again \
(same ids where they are unchanged; consumers drop repeats).\n\n\
Exit status: 0 if the journal is intact afterwards (or already was), 2 if the repair \
could not be done (nothing is changed then, except a backup that may have been written).";

/// `handoff journal ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum JournalCommand {
    /// Check every line of a journal (checksums, events) and explain the options if any is
    /// damaged.
    #[command(long_about = VERIFY_ABOUT)]
    Verify {
        /// The journal file.
        file: PathBuf,
    },
    /// Repair a damaged journal, keeping a backup: drop the damaged lines, or truncate
    /// before the first one.
    #[command(long_about = REPAIR_ABOUT)]
    Repair(RepairArgs),
    /// Copy a stream journal (journal.backend = "stream") from RabbitMQ into a file
    /// journal, for `handoff replay`, `report`, `explain` and `journal verify`.
    #[command(long_about = EXPORT_ABOUT)]
    Export(ExportArgs),
}

const EXPORT_ABOUT: &str = "Copy the journal held in a RabbitMQ stream queue \
(journal.backend = \"stream\") into a file, as a file journal holds it: every entry that \
counts, in order, with its checksum, one line each. Entries a writer published twice (after \
a lost connection) are written once, and entries a fenced-off writer appended after a newer \
writer took over are left out, as every instance of the service reads the stream. The \
export stops at the end the stream had when it began; a running writer may append more.\n\n\
With --out, the latest outbox marks are written beside the file (FILE.published and \
FILE.dead-lettered), so that the file can also serve as a file journal for `handoff \
serve`.\n\n\
Exit status: 0 when exported, 2 when the stream cannot be read (or is damaged).";

/// The arguments of `handoff journal export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// The stream queue's name (journal.stream).
    #[arg(long, value_name = "NAME", default_value = "handoff.journal")]
    pub stream: String,
    /// The broker; default: amqp.url of --config, else HANDOFF_AMQP_URL, else the local
    /// broker as guest.
    #[arg(long)]
    pub url: Option<String>,
    /// A handoff configuration file, for amqp.url and amqp.tls.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Write here (mode 0600) instead of to standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// The arguments of `handoff journal repair`.
#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("how").required(true).args(["drop_damaged", "truncate"])))]
pub(crate) struct RepairArgs {
    /// The journal file. No service may be running on it.
    pub file: PathBuf,
    /// Keep every intact entry; move the damaged lines aside to FILE.damaged-<time>.
    #[arg(long)]
    pub drop_damaged: bool,
    /// Keep only the entries before the first damaged line; move the rest aside to
    /// FILE.damaged-<time>.
    #[arg(long)]
    pub truncate: bool,
}

/// Runs `handoff journal ...` and gives its exit status.
pub fn run(Args { command }: Args) -> ExitCode {
    let mut stdout = io::stdout().lock();
    match command {
        // (Standard output's lock is reentrant: the export may write there too.)
        JournalCommand::Export(args) => export(args),
        JournalCommand::Verify { file } => match verify(&file) {
            Ok(report) => {
                let _ = write_report(&report, &mut stdout);
                ExitCode::from(if report.is_intact() { 0 } else { 1 })
            }
            Err(e) => {
                eprintln!("handoff journal verify: {e}");
                ExitCode::from(2)
            }
        },
        JournalCommand::Repair(args) => {
            let mode = if args.truncate {
                Mode::Truncate
            } else {
                Mode::DropDamaged
            };
            match repair(&args.file, mode) {
                Ok(None) => {
                    let _ = writeln!(stdout, "{}: intact; nothing to repair", args.file.display());
                    ExitCode::SUCCESS
                }
                Ok(Some(repaired)) => {
                    let _ = write_repaired(&args.file, &repaired, &mut stdout);
                    match verify(&args.file) {
                        Ok(report) if report.is_intact() => {
                            let _ = writeln!(stdout, "verify: intact ({} entries)", report.entries);
                            ExitCode::SUCCESS
                        }
                        Ok(report) => {
                            let _ = write_report(&report, &mut stdout);
                            eprintln!(
                                "handoff journal repair: the repaired journal is still damaged"
                            );
                            ExitCode::from(2)
                        }
                        Err(e) => {
                            eprintln!("handoff journal repair: {e}");
                            ExitCode::from(2)
                        }
                    }
                }
                Err(e) => {
                    eprintln!("handoff journal repair: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// `handoff journal export`.
fn export(args: ExportArgs) -> ExitCode {
    let config = match crate::live::config::Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("handoff journal export: {e}");
            return ExitCode::from(2);
        }
    };
    let url = args.url.clone().unwrap_or_else(|| config.amqp.url.clone());
    let tls = match config.amqp.tls.load(&url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("handoff journal export: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match crate::live::service::runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("handoff journal export: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let mut sink: Box<dyn Write> = match &args.out {
        None => Box::new(io::BufWriter::new(io::stdout().lock())),
        Some(path) => {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(path) {
                Ok(f) => Box::new(io::BufWriter::new(f)),
                Err(e) => {
                    eprintln!(
                        "handoff journal export: cannot create {}: {e}",
                        path.display()
                    );
                    return ExitCode::from(2);
                }
            }
        }
    };
    let result = runtime.block_on(async {
        let conn = crate::live::amqp::connect(&url, &tls, "handoff journal export")
            .await
            .map_err(|e| crate::live::publish::redact_url(&e.to_string()))?;
        let exported = crate::journal::stream::export(&conn, &args.stream, &mut *sink)
            .await
            .map_err(|e| e.to_string());
        let _ = conn.close(200, "exported".into()).await;
        exported
    });
    let flushed = sink.flush();
    drop(sink);
    match (result, flushed) {
        (Ok(exported), Ok(())) => {
            if let (Some(path), Some((published, refused))) = (&args.out, exported.published) {
                let marks = [
                    (crate::journal::OutboxMark::beside(path), published),
                    (crate::journal::OutboxMark::refusals_beside(path), refused),
                ];
                for (mark, n) in marks {
                    if let Err(e) = mark.store(n) {
                        eprintln!("handoff journal export: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            eprintln!(
                "handoff journal export: {} entries from stream {} ({} messages skipped: duplicates, fenced entries, outbox marks){}",
                exported.entries,
                args.stream,
                exported.skipped,
                exported
                    .published
                    .map(|(d, r)| format!("; outbox mark: {d} decisions, {r} refusals"))
                    .unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        (Err(e), _) => {
            eprintln!("handoff journal export: stream {}: {e}", args.stream);
            ExitCode::from(2)
        }
        (_, Err(e)) => {
            eprintln!("handoff journal export: writing: {e}");
            ExitCode::from(2)
        }
    }
}
