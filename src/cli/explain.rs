//! `handoff explain PERSON LOG`: one person's timeline, with the rule of each decision and
//! the facts that made it fire.

use std::io::{self, Write};
use std::path::PathBuf;

use handoff_core::engine::Engine;
use handoff_core::model::Time;

use super::{Ended, RULES_HELP, open, parse_time_arg, read_failed, warn_other_rules};
use crate::answers::explain::Explainer;
use crate::answers::replay;
use crate::journal::control::Rules;

/// Show one person's timeline: every event about them and every decision, with the
/// rule that fired and the facts that made it fire.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Replay a log and show one person's timeline: every event about \
them, and every decision about them with the rule that fired and the facts that made it \
fire (\"R1.6: ICE detainer D-17 active; Travis County claim C-3 pending; Travis County has no \
return agreement → first-refusal offer to ICE, answer due …\"). The whole log is replayed, \
since other events (policies, capacity) shape the person's decisions too.\n\n\
Exit status: 0 if the person appears in the log, 1 if not, 2 if the log could not be read \
or was decided under other rules (see --rules)."
)]
pub(crate) struct Args {
    /// The person's id (`data.person_id`).
    pub(crate) person_id: String,
    /// The log to read; `-` reads standard input.
    pub(crate) log: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// Finally advance the clock to this RFC 3339 time, firing the timers due by then.
    #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
    pub(crate) until: Option<Time>,
    /// Which rules decide a journal: the journal's (refusing other rules), or current.
    #[arg(long, value_enum, default_value = "journal", long_help = RULES_HELP)]
    pub(crate) rules: Rules,
}

pub fn run(
    Args {
        person_id,
        log,
        json,
        until,
        rules,
    }: Args,
) -> anyhow::Result<Ended> {
    let (reader, progress) = open(&log)?;
    let name = log.display().to_string();
    let mut explainer = Explainer::new(&person_id);
    let mut engine = Engine::new();
    let summary = replay::run_with(&mut engine, reader, until, rules, |engine, seen| {
        explainer.observe(engine, &seen);
        Ok(())
    });
    progress.finish_and_clear();
    let summary = summary.map_err(|e| read_failed(&name, e))?;
    warn_other_rules(&name, rules, summary.other_rules.as_ref());
    let timeline = explainer.finish();
    let mut stdout = io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, &timeline)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", timeline.to_text())?;
    }
    if timeline.entries.is_empty() {
        return Ok(Ended::Rejected(Some(format!(
            "{} does not appear in {}",
            person_id,
            log.display()
        ))));
    }
    Ok(Ended::Accepted)
}
