//! `handoff report ddor|capacity LOG`: the reports, each an accumulator fed by the replay
//! loop and rendered as JSON, CSV, Markdown or HTML.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::Subcommand;
use handoff_core::engine::Engine;
use handoff_core::model::Time;

use super::{Ended, RULES_HELP, open, parse_time_arg, read_failed, warn_other_rules};
use crate::answers::replay;
use crate::answers::report::Format;
use crate::answers::report::capacity::{Capacity, DEFAULT_RATE_USD};
use crate::answers::report::ddor::Ddor;
use crate::journal::control::Rules;

/// Reports from a log: the Declined Detainer Outcome Report, ICE capacity.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    pub(crate) report: ReportCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReportCommand {
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
        /// Which rules decide a journal: the journal's (refusing other rules), or current.
        #[arg(long, value_enum, default_value = "journal", long_help = RULES_HELP)]
        rules: Rules,
    },
    /// ICE detention: occupancy against funded beds day by day, placements, ATD, the
    /// detention reviews (R6) and what their moves to ATD avoided, cost.
    #[command(long_about = "ICE detention capacity over the log: occupancy against \
funded beds at the end of each day, placements by kind (every R4 and R6 kind), \
Alternatives to Detention by monitoring type, and the daily cost of detention at a rate per \
bed-day (default 122 USD, ICE's 2013 estimate).\n\n\
ICE's detention reviews (R6): the moves out of detention to ATD by basis \
(capacity_review R6.1, prolonged_detention R6.2, humanitarian R6.3) day by day, and the \
bed-days and dollars they avoided: for each person moved, the time from the move until \
they leave ICE's custody, are detained again, or the report's end clock (the clock of the \
last event), in fractional days of 24 hours, times --rate. With --atd-rate, the cost of \
those days on ATD and the net saving; without it the ATD cost is not counted. Also, day \
by day, the detained people whose removal is not foreseeable and of them those detained \
more than 180 days (R6.2 should leave none).\n\n\
HTML is one self-contained file with a line chart on which the days of funding reviews \
(R6.1) are marked.")]
    Capacity {
        /// The log to read; `-` reads standard input.
        log: PathBuf,
        /// Cost of one bed for one day, in USD (also prices the bed-days the moves to ATD
        /// avoided).
        #[arg(long, value_name = "USD", default_value_t = DEFAULT_RATE_USD)]
        rate: f64,
        /// Cost of one day on Alternatives to Detention, in USD: adds the ATD cost of the
        /// moves and the net saving. No default: without it the ATD cost is not counted.
        #[arg(long, value_name = "USD")]
        atd_rate: Option<f64>,
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
        /// Which rules decide a journal: the journal's (refusing other rules), or current.
        #[arg(long, value_enum, default_value = "journal", long_help = RULES_HELP)]
        rules: Rules,
    },
}

pub fn run(Args { report }: Args) -> anyhow::Result<Ended> {
    let mut engine = Engine::new();
    let (text, summary) = match report {
        ReportCommand::Ddor {
            log,
            from,
            to,
            format,
            top,
            rules,
        } => {
            anyhow::ensure!(from < to, "--from must be before --to");
            let (reader, progress) = open(&log)?;
            let name = log.display().to_string();
            let mut ddor = Ddor::new(from, to, top);
            let summary = replay::run_with(&mut engine, reader, None, rules, |e, seen| {
                ddor.observe(e, &seen);
                Ok(())
            });
            progress.finish_and_clear();
            let summary = summary.map_err(|e| read_failed(&name, e))?;
            warn_other_rules(&name, rules, summary.other_rules.as_ref());
            (ddor.finish(&engine).render(format), summary)
        }
        ReportCommand::Capacity {
            log,
            rate,
            atd_rate,
            format,
            rules,
        } => {
            anyhow::ensure!(
                rate.is_finite() && rate >= 0.0,
                "--rate must be a non-negative number"
            );
            if let Some(a) = atd_rate {
                anyhow::ensure!(
                    a.is_finite() && a >= 0.0,
                    "--atd-rate must be a non-negative number"
                );
            }
            let (reader, progress) = open(&log)?;
            let name = log.display().to_string();
            let mut capacity = Capacity::new(rate);
            if let Some(a) = atd_rate {
                capacity = capacity.with_atd_rate(a);
            }
            let summary = replay::run_with(&mut engine, reader, None, rules, |e, seen| {
                capacity.observe(e, &seen);
                Ok(())
            });
            progress.finish_and_clear();
            let summary = summary.map_err(|e| read_failed(&name, e))?;
            warn_other_rules(&name, rules, summary.other_rules.as_ref());
            let text = capacity
                .finish(&engine)
                .render(format)
                .map_err(|e| anyhow::anyhow!(e))?;
            (text, summary)
        }
    };
    io::stdout().lock().write_all(text.as_bytes())?;
    if summary.failed() {
        return Ok(Ended::Rejected(Some(format!(
            "{} lines of the log are not valid events and were left out of the report; \
`handoff replay` lists them",
            summary.invalid
        ))));
    }
    Ok(Ended::Accepted)
}
