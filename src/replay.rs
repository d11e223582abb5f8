//! Replay: runs a JSON-lines log through the engine and writes the decisions.
//!
//! This is the offline twin of the live service and the auditor's tool (ICD section 5):
//! the same log always gives the same bytes. Lines that are not valid events are
//! reported with their line number and skipped; the run goes on.

use std::io::{self, BufRead, Write};

use crate::engine::{Engine, Outcome};
use crate::envelope::{self, Invalid};
use crate::model::Time;
use crate::wire;

/// What a line of the log came to, when it is worth telling the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Not a valid event; skipped. Makes the run fail.
    Invalid(Invalid),
    /// A valid event the rules refused (`unknown_offer`, `late_response`). Makes the
    /// run fail too: the log holds an answer that changed nothing.
    Rejected(&'static str),
    /// A repeat of an earlier `source` + `id`; ignored, as the ICD says.
    Duplicate,
    /// A valid event that meant nothing in the person's state (R5); not an error.
    NoEffect(&'static str),
}

impl Note {
    /// Whether this note makes the run exit non-zero.
    pub fn is_error(&self) -> bool {
        matches!(self, Note::Invalid(_) | Note::Rejected(_))
    }
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Note::Invalid(e) => write!(f, "invalid ({}): {e}", e.code()),
            Note::Rejected(reason) => write!(f, "rejected: {reason}"),
            Note::Duplicate => write!(f, "duplicate: source + id seen before; ignored"),
            Note::NoEffect(why) => write!(f, "no_effect: {why}"),
        }
    }
}

/// Counts for one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Lines read, blank ones included.
    pub lines: u64,
    /// Valid events handed to the engine (duplicates included).
    pub events: u64,
    pub decisions: u64,
    pub invalid: u64,
    pub rejected: u64,
    pub duplicates: u64,
    pub no_effect: u64,
}

impl Summary {
    /// Whether any line was rejected (invalid, or refused by the rules).
    pub fn failed(&self) -> bool {
        self.invalid + self.rejected > 0
    }
}

/// Replays `input` into `engine`, writing each decision as a JSON line to `out` and
/// calling `note(line_number, note)` for every line worth telling about. With `until`,
/// the clock is finally advanced to it so that timers due by then fire.
pub fn replay<R: BufRead, W: Write>(
    engine: &mut Engine,
    mut input: R,
    until: Option<Time>,
    mut out: W,
    mut note: impl FnMut(u64, Note),
) -> io::Result<Summary> {
    let mut summary = Summary::default();
    let mut line = Vec::with_capacity(1024);
    let mut buf = Vec::with_capacity(4096);
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        summary.lines += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let event = match envelope::parse_event_bytes(&line) {
            Ok(event) => event,
            Err(e) => {
                summary.invalid += 1;
                note(summary.lines, Note::Invalid(e));
                continue;
            }
        };
        summary.events += 1;
        let step = engine.handle(&event);
        match step.outcome {
            Outcome::Applied => {}
            Outcome::Duplicate => {
                summary.duplicates += 1;
                note(summary.lines, Note::Duplicate);
            }
            Outcome::NoEffect(why) => {
                summary.no_effect += 1;
                note(summary.lines, Note::NoEffect(why));
            }
            Outcome::Rejected(r) => {
                summary.rejected += 1;
                note(summary.lines, Note::Rejected(r.as_str()));
            }
        }
        emit(&step.decisions, &mut buf, &mut out, &mut summary)?;
    }
    if let Some(until) = until {
        let decisions = engine.fire(until);
        emit(&decisions, &mut buf, &mut out, &mut summary)?;
    }
    out.flush()?;
    Ok(summary)
}

fn emit<W: Write>(
    decisions: &[crate::model::Decision],
    buf: &mut Vec<u8>,
    out: &mut W,
    summary: &mut Summary,
) -> io::Result<()> {
    if decisions.is_empty() {
        return Ok(());
    }
    buf.clear();
    for d in decisions {
        wire::write_decision(d, buf);
        buf.push(b'\n');
    }
    summary.decisions += decisions.len() as u64;
    out.write_all(buf)
}

/// Replays a whole log held in memory and returns the decisions as JSON lines and the
/// notes; the form tests and benchmarks want.
pub fn replay_str(log: &str, until: Option<Time>) -> (String, Vec<(u64, Note)>, Summary) {
    let mut engine = Engine::new();
    let mut out = Vec::new();
    let mut notes = Vec::new();
    let summary = replay(&mut engine, log.as_bytes(), until, &mut out, |n, note| {
        notes.push((n, note))
    })
    .expect("reading from memory cannot fail");
    (
        String::from_utf8(out).expect("decisions are UTF-8"),
        notes,
        summary,
    )
}
