//! `handoff gen`: a seeded, byte-stable synthetic log (`handoff-gen`), how agencies test
//! their publishers.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::PathBuf;

use handoff_core::model::Time;
use handoff_gen::{self as generator, GenConfig};

use super::{Ended, parse_time_arg};

/// Write a realistic synthetic event log (seeded, byte-stable) as JSON lines.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Write a synthetic event log: jurisdiction policies, ICE \
capacity, and person stories (federal releases with detainers, claims, writs and \
first-refusal offers; local releases with holds; ICE taking custody from BOP or a county \
with no hold or offer open; people released and jailed again months later by a county or \
by BOP) in time order. The same arguments always produce the same bytes. All person ids \
are invented.\n\n\
A jurisdiction changes its policy every one to seven days unless \
--policy-every-people says otherwise. A policy-heavy log for benchmarks of replay, as in \
tools/bench-history.sh:\n\n  \
handoff gen --events 1000000 --people 294000 --policy-every-people 20 -o policy-1m.jsonl"
)]
pub(crate) struct Args {
    /// Number of events to write.
    #[arg(long, default_value_t = 1000)]
    pub(crate) events: u64,
    /// Seed of the pseudo-random stream.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Number of distinct people (default: events / 10).
    #[arg(long)]
    pub(crate) people: Option<u64>,
    /// One policy change (`jurisdiction.policy.updated`) per N people whose story starts,
    /// instead of one every few days: signing a return agreement, giving one up, or
    /// flipping whether the jurisdiction honors detainers; about a quarter gain an
    /// agreement, which sets off R2.2 for everyone the jurisdiction claims.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) policy_every_people: Option<u64>,
    /// Time of the first event (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
    pub(crate) start: Option<Time>,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    pub(crate) output: Option<PathBuf>,
}

pub fn run(
    Args {
        events,
        seed,
        people,
        policy_every_people,
        start,
        output,
    }: Args,
) -> anyhow::Result<Ended> {
    let mut cfg = GenConfig::new(events, seed);
    if let Some(p) = people {
        cfg.people = p.max(1);
    }
    cfg.policy_every_people = policy_every_people;
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
    Ok(Ended::Accepted)
}
