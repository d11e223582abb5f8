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
use crate::answers::report::capacity::{Costs, DEFAULT_RATE_USD, ReviewTotals, fmt_days, usd};
use crate::answers::{replay, whatif};
use crate::journal::control::Rules;

/// The long help of `--policy`: the overrides file.
const POLICY_HELP: &str = "What-if: replay as if jurisdictions' policies or ICE's funded \
beds had been different for a while, as this JSON file says: an array of overrides, each \
with an optional window [from, to) (RFC 3339 times with an offset; no from: from the start \
of the log, no to: to its end). A policy override, {\"jurisdiction_id\", \"from\"?, \"to\"?, \
\"honors_detainers\"?, \"return_agreement\"?}, gives the jurisdiction's policy those fields \
(at least one). A funded-beds override, {\"funded_beds\": N or {\"percent\": P}, \"from\"?, \
\"to\"?}, gives ICE N funded beds, or the reported funded beds changed by P percent (P at \
least -100, rounded to the nearest bed): for example [{\"funded_beds\": {\"percent\": -10}, \
\"from\": \"2013-03-01T00:00:00Z\"}] is a 10% cut from 1 March 2013. Overrides act on the \
events, never on the rules: real events inside a window are rewritten, and a synthetic \
event (source urn:handoff:what-if, id override-<i>-from or -to) is injected at each window \
edge; a funded-beds edge reports the occupancy the what-if world counts then, and, like \
any capacity report, sets off a funding review (R6.1). With a funded-beds override, ICE's \
real capacity reports also have their occupied beds shifted by the beds the what-if world \
has freed or taken so far (the log as it is is replayed beside it for that), so that a \
report does not put back in beds the people a cut moved out. Entries that overlap and set the \
same thing (a field of one jurisdiction; the funded beds) are refused, each error naming \
overrides[i].";

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
    /// What-if: replay with jurisdiction policies or ICE's funded beds overridden, as this
    /// JSON file says (an array of {"jurisdiction_id", "from"?, "to"?,
    /// "honors_detainers"?, "return_agreement"?} and {"funded_beds": N | {"percent": P},
    /// "from"?, "to"?}).
    #[arg(long, value_name = "OVERRIDES.json", long_help = POLICY_HELP)]
    pub(crate) policy: Option<PathBuf>,
    /// With --policy: print only the decisions that change, person by person, as JSON
    /// lines {"person_id", "at", "caused_by", "before", "after"}; and on stderr, each world's
    /// moves to ATD (R6) by rule, the bed-days they avoided (counted as `report capacity`
    /// counts them) and the bed-days its people spent in detention, priced at --rate.
    #[arg(long, requires = "policy")]
    pub(crate) diff: bool,
    /// With --diff: the cost of one bed for one day, in USD, to price the bed-days the moves
    /// to ATD avoided (as `report capacity --rate`).
    #[arg(long, value_name = "USD", requires = "diff", default_value_t = DEFAULT_RATE_USD)]
    pub(crate) rate: f64,
    /// With --diff: the cost of one day on Alternatives to Detention, in USD, to give the
    /// net saving. No default: without it the ATD cost is not counted.
    #[arg(long, value_name = "USD", requires = "diff")]
    pub(crate) atd_rate: Option<f64>,
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
        anyhow::ensure!(
            args.rate.is_finite() && args.rate >= 0.0,
            "--rate must be a non-negative number"
        );
        if let Some(a) = args.atd_rate {
            anyhow::ensure!(
                a.is_finite() && a >= 0.0,
                "--atd-rate must be a non-negative number"
            );
        }
        let costs = Costs {
            rate: args.rate,
            atd_rate: args.atd_rate,
        };
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
        eprintln!(
            "handoff: {}",
            savings(&summary.reviews_before, &summary.reviews_after, costs)
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

/// The moves to ATD of two worlds and what the what-if world saved, in two lines: the moves
/// by rule before and after and the bed-days they avoided in each (as `report capacity`
/// counts them), priced at `costs`; and the bed-days the log's people spent in detention in
/// each world, the plain measure of what the what-if saves (it counts too the people a cut
/// places in ATD instead of detaining them, whom no move reaches).
pub(crate) fn savings(before: &ReviewTotals, after: &ReviewTotals, costs: Costs) -> String {
    let moves = |r: &ReviewTotals| {
        format!(
            "{} (R6.1 {}, R6.2 {}, R6.3 {})",
            r.moves(),
            r.capacity_review,
            r.prolonged_detention,
            r.humanitarian
        )
    };
    let signed = |v: f64, text: String| if v > 0.0 { format!("+{text}") } else { text };
    let change = |b: u64, a: u64| i128::from(a) - i128::from(b);
    let (b, a) = (
        costs.price(i128::from(before.avoided_ms)),
        costs.price(i128::from(after.avoided_ms)),
    );
    let d = costs.price(change(before.avoided_ms, after.avoided_ms));
    let mut line = format!(
        "moved to ATD out of detention (R6): {} before, {} after; the bed-days those moves \
avoided: {} before ({}), {} after ({}), a change of {} ({}) at {} a bed-day",
        moves(before),
        moves(after),
        fmt_days(b.bed_days_avoided),
        usd(b.cost_avoided_usd),
        fmt_days(a.bed_days_avoided),
        usd(a.cost_avoided_usd),
        signed(d.bed_days_avoided, fmt_days(d.bed_days_avoided)),
        signed(d.cost_avoided_usd, usd(d.cost_avoided_usd)),
        usd(costs.rate),
    );
    match (
        costs.atd_rate,
        b.net_saving_usd,
        a.net_saving_usd,
        d.net_saving_usd,
    ) {
        (Some(rate), Some(nb), Some(na), Some(nd)) => line.push_str(&format!(
            "; net of ATD at {} a day: {} before, {} after, a change of {}",
            usd(rate),
            usd(nb),
            usd(na),
            signed(nd, usd(nd)),
        )),
        _ => line.push_str("; ATD cost not counted (no --atd-rate)"),
    }
    // Detention saved: fewer bed-days in detention after is a saving.
    let saved = costs.price(change(after.detained_ms, before.detained_ms));
    line.push_str(&format!(
        "\nhandoff: bed-days in detention of the log's people: {} before, {} after: the \
what-if saves {} bed-days, {} at {} a bed-day",
        fmt_days(costs.price(i128::from(before.detained_ms)).bed_days_avoided),
        fmt_days(costs.price(i128::from(after.detained_ms)).bed_days_avoided),
        fmt_days(saved.bed_days_avoided),
        usd(saved.cost_avoided_usd),
        usd(costs.rate),
    ));
    line
}
