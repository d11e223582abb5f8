//! The one journal-to-engine loop: a journal or log, line by line through the envelope
//! into the engine, every step shown to an observer. `handoff replay`, `explain`, the
//! reports and what-if are observers of [`run`]; start-up recovery feeds the same engine
//! from the journal's intact entries.
//!
//! The journal's control entries (ICD section 8) are read here and never reach the
//! engine or an observer: [`Lines`] skips them, so a journal gives the same decisions and
//! decision ids with and without them. It also checks the rules version each
//! `handoff.journal.opened` names, and ends the read with [`ReadError::OtherRules`] at
//! the first that names another version than this build's, unless told to decide under
//! the current rules ([`Rules::Current`]).

use std::io::{self, BufRead};

use crate::edge::envelope::{self, Invalid};
use crate::journal::control::{self, Control, Entry, OtherRules, Rules};
use crate::journal::read::LineReader;
use handoff_core::engine::{Engine, Outcome, Step};
use handoff_core::model::{Decision, Event, Time};

/// Why a read of a log ended before its end.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A `handoff.journal.opened` names other rules than this build's, and the reader
    /// follows the journal ([`Rules::Journal`]). Decisions of lines before it (decided under
    /// this build's rules) may have been shown already.
    #[error(
        "{0}. Replay it with the handoff release that decides by rules version {rules}, or \
         pass `--rules current` to decide it under this release's rules (a what-if: its \
         decisions may differ from the ones that were published)",
        rules = .0.rules
    )]
    OtherRules(OtherRules),
}

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
    /// The journal's control entries, skipped (ICD section 8).
    pub controls: u64,
    /// With [`Rules::Current`]: the first `handoff.journal.opened` that named other rules,
    /// decided under this build's anyway (a what-if the user asked for).
    pub other_rules: Option<OtherRules>,
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

/// Reads a JSON-lines log: one item per non-blank line that is not a control entry, with
/// its line number (counting blank lines too), the parsed event or why the line is not
/// one. Control entries are counted and skipped, after their rules version is checked
/// (see the module documentation). Errors when the input cannot be read, and at a journal
/// decided under other rules; after an error it gives nothing more.
pub struct Lines<R> {
    reader: LineReader<R>,
    rules: Rules,
    controls: u64,
    other_rules: Option<OtherRules>,
    ended: bool,
}

impl<R: BufRead> Lines<R> {
    /// Reads `input` following the journal's rules version ([`Rules::Journal`]).
    pub fn new(input: R) -> Self {
        Lines::with_rules(input, Rules::Journal)
    }

    /// Reads `input`, deciding under `rules`.
    pub fn with_rules(input: R, rules: Rules) -> Self {
        Lines {
            reader: LineReader::new(input),
            rules,
            controls: 0,
            other_rules: None,
            ended: false,
        }
    }

    /// Lines read so far, blank ones included.
    pub(crate) fn lines_read(&self) -> u64 {
        self.reader.lines_read()
    }

    /// Control entries skipped so far.
    pub(crate) fn controls(&self) -> u64 {
        self.controls
    }

    /// With [`Rules::Current`], the first opened entry that named other rules.
    pub(crate) fn other_rules(&self) -> Option<&OtherRules> {
        self.other_rules.as_ref()
    }

    /// Counts a control entry on `line` and checks its rules version.
    fn control(&mut self, line: u64, c: &Control) -> Result<(), ReadError> {
        self.controls += 1;
        match c {
            Control::Opened(opened) => match (control::check_rules(line, opened), self.rules) {
                (Ok(()), _) => Ok(()),
                (Err(other), Rules::Journal) => Err(ReadError::OtherRules(other)),
                (Err(other), Rules::Current) => {
                    self.other_rules.get_or_insert(other);
                    Ok(())
                }
            },
        }
    }
}

impl<R: BufRead> Iterator for Lines<R> {
    type Item = Result<(u64, Result<Event, Invalid>), ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.ended {
            let (number, entry) = match self.reader.next_line() {
                Err(e) => {
                    self.ended = true;
                    return Some(Err(e.into()));
                }
                Ok(None) => return None,
                Ok(Some(line)) if line.is_blank() => continue,
                Ok(Some(line)) => (line.number, envelope::parse_entry_bytes(line.bytes)),
            };
            match entry {
                Ok(Entry::Event(event)) => return Some(Ok((number, Ok(event)))),
                Err(invalid) => return Some(Ok((number, Err(invalid)))),
                Ok(Entry::Control(c)) => {
                    if let Err(e) = self.control(number, &c) {
                        self.ended = true;
                        return Some(Err(e));
                    }
                }
            }
        }
        None
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
/// log is built on. It follows the journal's rules version ([`Rules::Journal`]).
pub fn run<R: BufRead>(
    engine: &mut Engine,
    input: R,
    until: Option<Time>,
    observe: impl FnMut(&Engine, Seen<'_>) -> io::Result<()>,
) -> Result<Summary, ReadError> {
    run_with(engine, input, until, Rules::Journal, observe)
}

/// [`run`], deciding under `rules`.
pub fn run_with<R: BufRead>(
    engine: &mut Engine,
    input: R,
    until: Option<Time>,
    rules: Rules,
    observe: impl FnMut(&Engine, Seen<'_>) -> io::Result<()>,
) -> Result<Summary, ReadError> {
    run_cut(engine, input, until, None, rules, observe)
}

/// [`run_with`] over the log as it stood at `to`: the first event with a clock time at or
/// after `to` ends the replay unread, and the timers due by `to` fire at the end. The
/// console's reports for a window end there.
pub fn run_to<R: BufRead>(
    engine: &mut Engine,
    input: R,
    to: Time,
    rules: Rules,
    observe: impl FnMut(&Engine, Seen<'_>) -> io::Result<()>,
) -> Result<Summary, ReadError> {
    run_cut(engine, input, Some(to), Some(to), rules, observe)
}

fn run_cut<R: BufRead>(
    engine: &mut Engine,
    input: R,
    until: Option<Time>,
    cut: Option<Time>,
    rules: Rules,
    mut observe: impl FnMut(&Engine, Seen<'_>) -> io::Result<()>,
) -> Result<Summary, ReadError> {
    let mut summary = Summary::default();
    let mut lines = Lines::with_rules(input, rules);
    for item in lines.by_ref() {
        let (line, parsed) = item?;
        if let (Some(cut), Ok(event)) = (cut, &parsed)
            && event.clock_time() >= cut
        {
            break;
        }
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
    summary.controls = lines.controls();
    summary.other_rules = lines.other_rules().cloned();
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
