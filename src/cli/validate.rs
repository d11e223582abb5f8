//! `handoff validate FILE`: every line checked against the schemas, events and decisions.

use std::io::{self, Write};
use std::path::PathBuf;

use handoff_core::model::DecisionType;

use super::{Ended, notes, open};
use crate::answers::replay::Note;
use crate::edge::{envelope, schemas};
use crate::journal::read::LineReader;

/// Check a JSON-lines file of messages (inbound events, decisions, or a journal with its
/// control entries) against the schemas.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Check every line of a JSON-lines file against the handoff \
schemas: inbound events (ICD section 2), decisions (ICD section 3) and the journal's control \
entries (ICD section 8) alike, dispatched on `type`. Each bad line is reported on stderr as FILE:LINE: reason.\n\n\
Exit status: 0 if every line is valid, 1 if any is not, 2 if the file could not be read."
)]
pub(crate) struct Args {
    /// The file to check; `-` reads standard input.
    pub(crate) file: PathBuf,
}

pub fn run(Args { file }: Args) -> anyhow::Result<Ended> {
    let (reader, progress) = open(&file)?;
    let name = file.display().to_string();
    let mut note = notes(&progress, &name, false);
    let (mut lines, mut bad) = (0u64, 0u64);
    let mut reader = LineReader::new(reader);
    while let Some(line) = reader.next_line()? {
        if line.is_blank() {
            continue;
        }
        lines += 1;
        if let Err(e) = check_message(line.bytes) {
            bad += 1;
            note(line.number, Note::Invalid(e));
        }
    }
    let mut stdout = io::stdout().lock();
    writeln!(
        stdout,
        "{name}: {lines} messages, {} valid, {bad} invalid",
        lines - bad
    )?;
    Ok(if bad > 0 {
        Ended::Rejected(None)
    } else {
        Ended::Accepted
    })
}

/// Checks one message of either direction, or a journal control entry: the schema for its
/// type, then the rules a schema cannot state (`subject` equals `data.person_id`; times
/// are real times).
pub(crate) fn check_message(bytes: &[u8]) -> Result<&'static str, envelope::Invalid> {
    let value = envelope::parse_json(bytes)?;
    let ty = schemas::validate_any(&value)?;
    if DecisionType::parse(ty).is_some() {
        if value["subject"] != value["data"]["person_id"] {
            return Err(envelope::Invalid::SubjectMismatch);
        }
    } else {
        envelope::entry_from_value(&value)?;
    }
    Ok(ty)
}
