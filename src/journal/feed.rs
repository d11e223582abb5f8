//! The one journal-to-engine loop: a journal or log, line by line through the envelope
//! into the engine, every step shown to an observer. `handoff replay`, `explain`, the
//! reports and what-if are observers of [`run`]; start-up recovery feeds the same engine
//! from the journal's intact entries.

use std::io::{self, BufRead};

use crate::edge::envelope::{self, Invalid};
use crate::journal::read::LineReader;
use handoff_core::engine::{Engine, Outcome, Step};
use handoff_core::model::{Decision, Event, Time};

/// What a line of the log came to, when it is worth telling the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Not a valid event; skipped. A bad line: makes the run fail.
    Invalid(Invalid),
    /// A valid event the rules refused (`unknown_offer`, `late_response`). Not a bad line
    /// (ICD section 6): the live service journals such an event too, because it moved the
    /// clock, so a journal legitimately holds it and replaying that journal succeeds.
    Rejected(&'static str),
    /// A repeat of an earlier `source` + `id`; ignored, as the ICD says.
    Duplicate,
    /// A valid event that meant nothing in the person's state (R5); not an error.
    NoEffect(&'static str),
}

impl Note {
    /// Whether this note makes the run exit non-zero: only a bad line does (not JSON, not
    /// a valid event). Refusals, duplicates and `no_effect` are noted, not errors.
    pub(crate) fn is_error(&self) -> bool {
        match self {
            Note::Invalid(_) => true,
            Note::Rejected(_) | Note::Duplicate | Note::NoEffect(_) => false,
        }
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
    /// Counts one valid event by what the engine made of it.
    pub(crate) fn count(&mut self, outcome: &Outcome) {
        self.events += 1;
        match outcome {
            Outcome::Applied => {}
            Outcome::Duplicate => self.duplicates += 1,
            Outcome::NoEffect(_) => self.no_effect += 1,
            Outcome::Rejected(_) => self.rejected += 1,
        }
    }

    /// Whether any line was bad (not JSON, not a valid event). The rules' refusals are
    /// counted in `rejected` but do not fail a run (ICD section 6).
    pub fn failed(&self) -> bool {
        self.invalid > 0
    }
}

/// Reads a JSON-lines log: one item per non-blank line, with its line number (counting
/// blank lines too), the parsed event or why the line is not one. Errors only when the
/// input cannot be read.
pub struct Lines<R> {
    reader: LineReader<R>,
}

impl<R: BufRead> Lines<R> {
    pub fn new(input: R) -> Self {
        Lines {
            reader: LineReader::new(input),
        }
    }

    /// Lines read so far, blank ones included.
    pub(crate) fn lines_read(&self) -> u64 {
        self.reader.lines_read()
    }
}

impl<R: BufRead> Iterator for Lines<R> {
    type Item = io::Result<(u64, Result<Event, Invalid>)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.reader.next_line() {
                Err(e) => return Some(Err(e)),
                Ok(None) => return None,
                Ok(Some(line)) if line.is_blank() => continue,
                Ok(Some(line)) => {
                    return Some(Ok((line.number, envelope::parse_event_bytes(line.bytes))));
                }
            }
        }
    }
}

/// What a replay shows its observer, in log order.
#[derive(Debug)]
pub enum Seen<'a> {
    /// A valid event and what the engine made of it (duplicates included: see
    /// `step.outcome`).
    Event {
        line: u64,
        event: &'a Event,
        step: &'a Step,
    },
    /// A line that is not a valid event; skipped.
    Invalid { line: u64, error: &'a Invalid },
    /// The decisions of the timers `until` fired at the end.
    End { decisions: &'a [Decision] },
}

/// Runs `input` through `engine`, showing `observe` every event with its step, every
/// invalid line, and at the end the timers fired by advancing the clock to `until`. The
/// engine is lent to the observer too, so a report can read, say, a jurisdiction's policy
/// as it stood when a decision was made. This is the one loop every command that reads a
/// log is built on.
pub fn run<R: BufRead>(
    engine: &mut Engine,
    input: R,
    until: Option<Time>,
    mut observe: impl FnMut(&Engine, Seen<'_>) -> io::Result<()>,
) -> io::Result<Summary> {
    let mut summary = Summary::default();
    let mut lines = Lines::new(input);
    for item in lines.by_ref() {
        let (line, parsed) = item?;
        let event = match parsed {
            Ok(event) => event,
            Err(error) => {
                summary.invalid += 1;
                observe(
                    engine,
                    Seen::Invalid {
                        line,
                        error: &error,
                    },
                )?;
                continue;
            }
        };
        let step = decide(engine, &mut summary, &event);
        observe(
            engine,
            Seen::Event {
                line,
                event: &event,
                step: &step,
            },
        )?;
    }
    summary.lines = lines.lines_read();
    if let Some(until) = until {
        let decisions = engine.fire(until);
        summary.decisions += decisions.len() as u64;
        observe(
            engine,
            Seen::End {
                decisions: &decisions,
            },
        )?;
    }
    Ok(summary)
}

/// The note a step deserves, if any.
pub fn note_for(outcome: &Outcome) -> Option<Note> {
    match outcome {
        Outcome::Applied => None,
        Outcome::Duplicate => Some(Note::Duplicate),
        Outcome::NoEffect(why) => Some(Note::NoEffect(why)),
        Outcome::Rejected(r) => Some(Note::Rejected(r.as_str())),
    }
}

/// One valid event through the engine, counted: the body of the journal-to-engine loop that
/// [`run`], start-up recovery (`live::pipeline::Recovering`) and `journal repair` share.
pub fn decide(engine: &mut Engine, summary: &mut Summary, event: &Event) -> Step {
    let step = engine.handle(event);
    summary.count(&step.outcome);
    summary.decisions += step.decisions.len() as u64;
    step
}
