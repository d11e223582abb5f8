//! Replay: runs a JSON-lines log through the engine and writes the decisions.
//!
//! This is the offline twin of the live service and the auditor's tool (ICD section 5):
//! the same log always gives the same bytes. Lines that are not valid events are
//! reported with their line number and skipped; the run goes on.

use std::io::{self, BufRead, Write};

use crate::edge::envelope::{self, Invalid};
use crate::edge::wire;
use handoff_core::engine::{Engine, Outcome, Step};
use handoff_core::model::{Decision, Event, Time};

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
    /// Counts one valid event by what the engine made of it.
    pub fn count(&mut self, outcome: &Outcome) {
        self.events += 1;
        match outcome {
            Outcome::Applied => {}
            Outcome::Duplicate => self.duplicates += 1,
            Outcome::NoEffect(_) => self.no_effect += 1,
            Outcome::Rejected(_) => self.rejected += 1,
        }
    }

    /// Whether any line was rejected (invalid, or refused by the rules).
    pub fn failed(&self) -> bool {
        self.invalid + self.rejected > 0
    }
}

/// Reads a JSON-lines log: one item per non-blank line, with its line number (counting
/// blank lines too), the parsed event or why the line is not one. Errors only when the
/// input cannot be read.
pub struct Lines<R> {
    input: R,
    buf: Vec<u8>,
    number: u64,
}

impl<R: BufRead> Lines<R> {
    pub fn new(input: R) -> Self {
        Lines {
            input,
            buf: Vec::with_capacity(1024),
            number: 0,
        }
    }

    /// Lines read so far, blank ones included.
    pub fn lines_read(&self) -> u64 {
        self.number
    }
}

impl<R: BufRead> Iterator for Lines<R> {
    type Item = io::Result<(u64, Result<Event, Invalid>)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            match self.input.read_until(b'\n', &mut self.buf) {
                Err(e) => return Some(Err(e)),
                Ok(0) => return None,
                Ok(_) => {}
            }
            self.number += 1;
            if !self.buf.iter().all(u8::is_ascii_whitespace) {
                return Some(Ok((self.number, envelope::parse_event_bytes(&self.buf))));
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
        let step = engine.handle(&event);
        summary.count(&step.outcome);
        summary.decisions += step.decisions.len() as u64;
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

/// Replays `input` into `engine`, writing each decision as a JSON line to `out` and
/// calling `note(line_number, note)` for every line worth telling about. With `until`,
/// the clock is finally advanced to it so that timers due by then fire.
pub fn replay<R: BufRead, W: Write>(
    engine: &mut Engine,
    input: R,
    until: Option<Time>,
    mut out: W,
    mut note: impl FnMut(u64, Note),
) -> io::Result<Summary> {
    let mut buf = Vec::with_capacity(4096);
    let summary = run(engine, input, until, |_, seen| match seen {
        Seen::Event { line, step, .. } => {
            if let Some(n) = note_for(&step.outcome) {
                note(line, n);
            }
            write_decisions(&step.decisions, &mut buf, &mut out)
        }
        Seen::Invalid { line, error } => {
            note(line, Note::Invalid(error.clone()));
            Ok(())
        }
        Seen::End { decisions } => write_decisions(decisions, &mut buf, &mut out),
    })?;
    out.flush()?;
    Ok(summary)
}

/// Writes decisions as JSON lines, one `write_all` for the lot (`buf` is scratch space,
/// reused between calls).
pub fn write_decisions<W: Write>(
    decisions: &[Decision],
    buf: &mut Vec<u8>,
    out: &mut W,
) -> io::Result<()> {
    if decisions.is_empty() {
        return Ok(());
    }
    buf.clear();
    for d in decisions {
        wire::write_decision(d, buf);
        buf.push(b'\n');
    }
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
