//! `handoff replay LOG`: the decisions a log implies, as JSON lines; with `--policy`, a
//! what-if replay under overridden jurisdiction policies.

use std::io::{self, BufWriter};
use std::path::PathBuf;
use std::time::Instant;

use handoff_core::engine::Engine;
use handoff_core::model::Time;

use super::{
    Ended, RULES_HELP, notes, open, parse_time_arg, read_failed, rejected, warn_other_rules,
};
use crate::answers::{replay, whatif};
use crate::journal::control::Rules;

/// Replay a JSON-lines event log and print the decisions as JSON lines on stdout.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Replay a JSON-lines event log through the decision engine and print \
every decision as one JSON line on stdout, in decision order (ICD section 5).\n\n\
Lines that are not valid events (bad lines) are reported on stderr as LOG:LINE: reason and \
skipped. Events the rules refuse (a late or unknown first-refusal answer), duplicates and \
events that change nothing are noted on stderr too, unless --quiet; they are not bad lines \
(a journal legitimately holds them). The journal's own control entries \
(handoff.journal.opened) decide nothing and are skipped.\n\n\
A journal names the rules version it was decided under (ICD section 8). By default \
(--rules journal) a journal decided under other rules than this handoff's is refused \
with exit 2 at its handoff.journal.opened entry, since its decisions would differ from the \
ones that were published; --rules current decides it under this handoff's rules anyway (a \
what-if). A log with no such entry is decided under this handoff's rules.\n\n\
Exit status: 0 if no line was bad, 1 if any line was bad, 2 if the log could not be read \
or was decided under other rules."
)]
pub(crate) struct Args {
    /// The log to replay; `-` reads standard input.
    pub(crate) log: PathBuf,
    /// Finally advance the clock to this RFC 3339 time, firing the timers due by then
    /// (holds that lapse, offers that go unanswered).
    #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
    pub(crate) until: Option<Time>,
    /// Report only lines that make the run fail (bad lines; not refusals, duplicates or
    /// no-effect events).
    #[arg(long, short)]
    pub(crate) quiet: bool,
    /// Print throughput and peak memory on stderr at the end.
    #[arg(long, conflicts_with = "policy")]
    pub(crate) stats: bool,
    /// What-if: replay with jurisdiction policies overridden, as this JSON file says
    /// (an array of {"jurisdiction_id", "from"?, "to"?, "honors_detainers"?,
    /// "return_agreement"?}).
    #[arg(long, value_name = "OVERRIDES.json")]
    pub(crate) policy: Option<PathBuf>,
    /// With --policy: print only the decisions that change, person by person, as JSON
    /// lines {"person_id", "at", "caused_by", "before", "after"}.
    #[arg(long, requires = "policy")]
    pub(crate) diff: bool,
    /// Add to each decision a last member, `parties`: the sorted keys of the agencies told
    /// of it (ICD section 4), such as party.ice, party.bop.fci-bastrop,
    /// party.local.tx-travis-county.
    #[arg(long, conflicts_with = "policy")]
    pub(crate) parties: bool,
    /// Which rules decide a journal: the journal's (refusing other rules), or current.
    #[arg(long, value_enum, default_value = "journal", long_help = RULES_HELP)]
    pub(crate) rules: Rules,
}

pub fn run(args: Args) -> anyhow::Result<Ended> {
    match &args.policy {
        Some(policy) => what_if(&args, policy),
        None => replay(&args),
    }
}

fn replay(args: &Args) -> anyhow::Result<Ended> {
    let (reader, progress) = open(&args.log)?;
    let out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let name = args.log.display().to_string();
    let started = Instant::now();
    let mut engine = Engine::new();
    let summary = replay::replay_under(
        &mut engine,
        reader,
        args.until,
        args.rules,
        if args.parties {
            replay::Form::WithParties
        } else {
            replay::Form::Decisions
        },
        out,
        notes(&progress, &name, args.quiet),
    );
    progress.finish_and_clear();
    let summary = summary.map_err(|e| read_failed(&name, e))?;
    warn_other_rules(&name, args.rules, summary.other_rules.as_ref());
    let stats = args.stats;
    if stats {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "handoff: {} events ({} invalid, {} rejected, {} duplicates, {} no effect), \
{} control entries, {} decisions, {} people in {:.3} s: {:.0} events/s; peak memory {}",
            summary.events,
            summary.invalid,
            summary.rejected,
            summary.duplicates,
            summary.no_effect,
            summary.controls,
            summary.decisions,
            engine.people(),
            secs,
            summary.events as f64 / secs,
            peak_memory().unwrap_or_else(|| "unknown".to_owned()),
        );
    }
    Ok(rejected(&summary))
}

/// The process's peak resident memory, from Linux's `/proc/self/status` (`VmHWM`).
fn peak_memory() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(format!("{:.1} MiB", kib as f64 / 1024.0))
}

fn what_if(args: &Args, policy: &PathBuf) -> anyhow::Result<Ended> {
    let text = std::fs::read_to_string(policy)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", policy.display()))?;
    let overrides =
        whatif::parse_overrides(&text).map_err(|e| anyhow::anyhow!("{}: {e}", policy.display()))?;
    let (reader, progress) = open(&args.log)?;
    let out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let name = args.log.display().to_string();
    let (until, rules) = (args.until, args.rules);
    if args.diff {
        let summary = whatif::diff(reader, until, rules, &overrides, out);
        progress.finish_and_clear();
        let summary = summary.map_err(|e| read_failed(&name, e))?;
        warn_other_rules(&name, rules, summary.other_rules.as_ref());
        eprintln!(
            "handoff: {} events; {} people decided differently ({} decisions before, {} after)",
            summary.events,
            summary.people_changed,
            summary.decisions_before,
            summary.decisions_after
        );
        return Ok(Ended::Accepted);
    }
    let summary = whatif::replay_with(
        reader,
        until,
        rules,
        &overrides,
        out,
        notes(&progress, &name, args.quiet),
    );
    progress.finish_and_clear();
    let summary = summary.map_err(|e| read_failed(&name, e))?;
    warn_other_rules(&name, rules, summary.other_rules.as_ref());
    Ok(rejected(&summary))
}
