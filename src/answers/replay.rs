//! Replay: runs a JSON-lines log through the engine and writes the decisions.
//!
//! This is the offline twin of the live service and the auditor's tool (ICD section 5):
//! the same log always gives the same bytes. Lines that are not valid events are
//! reported with their line number and skipped; the run goes on.

use std::io::{self, BufRead, Write};

use crate::edge::wire;
pub use crate::journal::control::Rules;
pub use crate::journal::feed::{Lines, Note, ReadError, Seen, Summary, note_for, run, run_with};
use handoff_core::engine::Engine;
use handoff_core::model::{Decision, Time};

/// Replays `input` into `engine`, writing each decision as a JSON line to `out` and
/// calling `note(line_number, note)` for every line worth telling about. With `until`,
/// the clock is finally advanced to it so that timers due by then fire. Follows the
/// journal's rules version ([`Rules::Journal`]).
pub fn replay<R: BufRead, W: Write>(
    engine: &mut Engine,
    input: R,
    until: Option<Time>,
    out: W,
    note: impl FnMut(u64, Note),
) -> Result<Summary, ReadError> {
    replay_under(
        engine,
        input,
        until,
        Rules::Journal,
        Form::Decisions,
        out,
        note,
    )
}

/// What replay prints of each decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Its wire form.
    Decisions,
    /// Its wire form and a last member, `parties`: who is told of it (ICD section 4).
    WithParties,
}

/// [`replay`], deciding under `rules` and printing each decision in `form`.
pub fn replay_under<R: BufRead, W: Write>(
    engine: &mut Engine,
    input: R,
    until: Option<Time>,
    rules: Rules,
    form: Form,
    mut out: W,
    mut note: impl FnMut(u64, Note),
) -> Result<Summary, ReadError> {
    let mut buf = Vec::with_capacity(4096);
    let each: fn(&Decision, &mut Vec<u8>) = match form {
        Form::Decisions => wire::write_decision,
        Form::WithParties => wire::write_decision_with_parties,
    };
    let mut write =
        |decisions: &[Decision], out: &mut W| write_each(decisions, each, &mut buf, out);
    let summary = run_with(engine, input, until, rules, |_, seen| match seen {
        Seen::Event { line, step, .. } => {
            if let Some(n) = note_for(&step.outcome) {
                note(line, n);
            }
            write(&step.decisions, &mut out)
        }
        Seen::Invalid { line, error } => {
            note(line, Note::Invalid(error.clone()));
            Ok(())
        }
        Seen::End { decisions } => write(decisions, &mut out),
    })?;
    out.flush()?;
    Ok(summary)
}

/// Writes decisions as JSON lines, one `write_all` for the lot (`buf` is scratch space,
/// reused between calls).
pub(crate) fn write_decisions<W: Write>(
    decisions: &[Decision],
    buf: &mut Vec<u8>,
    out: &mut W,
) -> io::Result<()> {
    write_each(decisions, wire::write_decision, buf, out)
}

/// [`write_decisions`], each decision written by `each`.
fn write_each<W: Write>(
    decisions: &[Decision],
    each: fn(&Decision, &mut Vec<u8>),
    buf: &mut Vec<u8>,
    out: &mut W,
) -> io::Result<()> {
    if decisions.is_empty() {
        return Ok(());
    }
    buf.clear();
    for d in decisions {
        each(d, buf);
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
    .expect("reading from memory cannot fail, and the log names no other rules");
    (
        String::from_utf8(out).expect("decisions are UTF-8"),
        notes,
        summary,
    )
}
