//! The journal's own control entries (ICD section 8): CloudEvents with `source`
//! `urn:handoff` and a type under `handoff.journal.`, which decide nothing about anyone.
//!
//! `handoff.journal.opened` is the first entry of every journal, and the first entry every
//! newly started writer appends: the version of the rules (ICD section 5) the writer
//! decides by, the writer's identity, and, once several instances may write (high
//! availability), a fencing epoch. Every reader skips control entries when deciding
//! (`feed::Lines`, start-up recovery), so a journal gives the same decisions and decision
//! ids with and without them; they only say under which rules its events were decided,
//! and a reader refuses a journal decided under other rules unless told to decide it
//! under the current ones ([`Rules::Current`], a what-if).
//!
//! The JSON of a control entry is read in `edge::envelope` (`parse_entry`) and written in
//! `edge::wire` (`opened_json`); its schema is `schemas/journal/<type>.json`.

use handoff_core::RULES_VERSION;
use handoff_core::model::{Event, Time};

/// Every control entry's type starts with this. A `type` under it that is not one of
/// [`ControlType::ALL`] is a bad line, never skipped as some other entry.
pub const TYPE_PREFIX: &str = "handoff.journal.";

/// The types of control entries. Each name is written once, in [`ControlType::as_str`];
/// `ALL`, `NAMES` and `parse` derive from it, and `parse` maps no other string to a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ControlType {
    /// A writer opened the journal.
    Opened,
}

impl ControlType {
    /// Every control type, in the order of ICD section 8.
    pub const ALL: [ControlType; 1] = [ControlType::Opened];
    /// The wire names of [`Self::ALL`], in the same order.
    pub const NAMES: [&'static str; Self::ALL.len()] = {
        let mut names = [""; Self::ALL.len()];
        let mut i = 0;
        while i < names.len() {
            names[i] = Self::ALL[i].as_str();
            i += 1;
        }
        names
    };

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ControlType::Opened => "handoff.journal.opened",
        }
    }

    /// The control type with this wire name; `None` for any other string.
    pub fn parse(s: &str) -> Option<ControlType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether `ty` is under [`TYPE_PREFIX`]: then the line is a control entry, or a bad
    /// line if no control type has that name.
    pub fn is_control(ty: &str) -> bool {
        ty.starts_with(TYPE_PREFIX)
    }
}

impl std::fmt::Display for ControlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `handoff.journal.opened`: a writer opened the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Unique: see [`opened_id`].
    pub id: String,
    /// When the writer opened the journal (the wall clock, as the writer stamps entries).
    pub time: Time,
    /// The version of ICD section 5's rules the writer decides by (`data.rules`).
    pub rules: u32,
    /// The writer's identity (`data.writer`, the `journal.writer` setting).
    pub writer: String,
    /// The fencing epoch (`data.epoch`), for when several instances may write. Absent
    /// until then; a reader accepts it already, so a journal written by a later,
    /// replicated writer still reads.
    pub epoch: Option<u64>,
}

impl Opened {
    /// The entry a writer appends when it opens a journal holding `entries` entries at
    /// `time`, deciding by this build's rules.
    pub fn now(writer: &str, time: Time, entries: u64) -> Opened {
        Opened {
            id: opened_id(writer, time, entries),
            time,
            rules: RULES_VERSION,
            writer: writer.to_owned(),
            epoch: None,
        }
    }
}

/// A control entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Opened(Opened),
}

impl Control {
    pub fn control_type(&self) -> ControlType {
        match self {
            Control::Opened(_) => ControlType::Opened,
        }
    }
}

/// One valid line of a journal: an event, or a control entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Event(Event),
    Control(Control),
}

/// Which rules a reader decides a journal under (`--rules`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Rules {
    /// The journal's: refuse a journal whose `handoff.journal.opened` says another rules
    /// version than this build's, since its decisions would differ from those published.
    #[default]
    Journal,
    /// This build's, whatever the journal says: a what-if.
    Current,
}

/// A journal decided under other rules than this build's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "line {line}: the journal says its events were decided under rules version {rules} \
     (handoff.journal.opened by writer {writer}), and this handoff decides by rules version \
     {ours} (ICD section 5), so its decisions could differ from the ones that were published",
    ours = RULES_VERSION
)]
pub struct OtherRules {
    /// The line of the `handoff.journal.opened` entry.
    pub line: u64,
    /// The version it names.
    pub rules: u32,
    pub writer: String,
}

/// Checks an opened entry's rules version against this build's.
pub(crate) fn check_rules(line: u64, opened: &Opened) -> Result<(), OtherRules> {
    if opened.rules == RULES_VERSION {
        return Ok(());
    }
    Err(OtherRules {
        line,
        rules: opened.rules,
        writer: opened.writer.clone(),
    })
}

/// The longest writer id: with the rest of the entry it stays far below any message limit.
pub const MAX_WRITER_LEN: usize = 128;

/// Whether `s` is a writer id: `^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`, the pattern of
/// `writer_id` in `schemas/defs.json` (a test checks that the two agree).
pub fn is_writer_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_WRITER_LEN
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'@' | b'-'))
}

/// The id of the opened entry `writer` appends at `time` to a journal of `entries`
/// entries: the UUIDv5 of those three. A journal is locked while a writer holds it and
/// grows by that entry, so no two opened entries of a journal share the three; and the id
/// is a function of what the driver gives the pipeline, so a virtual clock reproduces it.
pub fn opened_id(writer: &str, time: Time, entries: u64) -> String {
    let time = crate::edge::wire::format_time(&time);
    let entries = entries.to_string();
    handoff_core::ids::v5(&[
        ControlType::Opened.as_str().as_bytes(),
        writer.as_bytes(),
        time.as_bytes(),
        entries.as_bytes(),
    ])
}

/// The default writer id: this host's name and the process id (`host:4711`), so that two
/// processes never share one. Characters a writer id may not hold become `-`.
pub(crate) fn default_writer() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    let pid = std::process::id().to_string();
    let room = MAX_WRITER_LEN - pid.len() - 1;
    let mut host: String = host
        .chars()
        .take(room)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if !host.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        host.insert(0, 'h');
        host.truncate(room);
    }
    format!("{host}:{pid}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::{envelope, schemas, wire};
    use handoff_core::model::DecisionType;
    use handoff_core::model::EventType;

    fn time() -> Time {
        envelope::parse_time("2017-01-28T09:00:00.123Z").unwrap()
    }

    #[test]
    fn names_are_under_the_prefix_and_parse_inverts_as_str() {
        for t in ControlType::ALL {
            assert!(ControlType::is_control(t.as_str()), "{t}");
            assert_eq!(ControlType::parse(t.as_str()), Some(t));
            assert!(EventType::parse(t.as_str()).is_none());
            assert!(DecisionType::parse(t.as_str()).is_none());
        }
        assert_eq!(ControlType::NAMES, ["handoff.journal.opened"]);
        for s in [
            "",
            "handoff.journal.",
            "handoff.journal.opened ",
            "handoff.journal.Opened",
        ] {
            assert_eq!(ControlType::parse(s), None, "{s:?}");
        }
    }

    #[test]
    fn the_opened_id_is_a_uuid_v5_in_the_decisions_namespace() {
        use uuid::Uuid;
        let namespace = Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:handoff");
        let id = opened_id("host:1", time(), 7);
        let name = "handoff.journal.opened\nhost:1\n2017-01-28T09:00:00.123Z\n7";
        assert_eq!(
            id,
            Uuid::new_v5(&namespace, name.as_bytes())
                .hyphenated()
                .to_string()
        );
        assert_ne!(id, opened_id("host:1", time(), 8));
        assert_ne!(id, opened_id("host:2", time(), 7));
    }

    /// `is_writer_id` and the schema's `writer_id` agree, on the default writer too.
    #[test]
    fn writer_ids_agree_with_the_schema() {
        let long = "a".repeat(MAX_WRITER_LEN);
        let too_long = "a".repeat(MAX_WRITER_LEN + 1);
        let default = default_writer();
        let cases = [
            ("handoff-1", true),
            ("node-a.example.org:4711", true),
            ("svc@host_2", true),
            ("0", true),
            (long.as_str(), true),
            (default.as_str(), true),
            ("", false),
            ("-host", false),
            (".host", false),
            ("host name", false),
            ("host/1", false),
            ("hôte", false),
            ("host\n", false),
            (too_long.as_str(), false),
        ];
        for (writer, ok) in cases {
            assert_eq!(is_writer_id(writer), ok, "{writer:?}");
            let mut opened = Opened::now("x", time(), 0);
            opened.writer = writer.to_owned();
            let value: serde_json::Value =
                serde_json::from_str(&wire::opened_json(&opened)).unwrap();
            assert_eq!(
                schemas::validate_control(&value).is_ok(),
                ok,
                "{writer:?} by the schema"
            );
        }
    }

    #[test]
    fn an_opened_entry_round_trips_with_and_without_an_epoch() {
        let mut opened = Opened::now("host:1", time(), 3);
        assert_eq!(opened.rules, RULES_VERSION);
        let json = wire::opened_json(&opened);
        assert_eq!(
            json,
            format!(
                r#"{{"specversion":"1.0","id":"{}","source":"urn:handoff","type":"handoff.journal.opened","time":"2017-01-28T09:00:00.123Z","datacontenttype":"application/json","data":{{"rules":{RULES_VERSION},"writer":"host:1"}}}}"#,
                opened.id
            )
        );
        assert_eq!(
            envelope::parse_entry(&json),
            Ok(Entry::Control(Control::Opened(opened.clone())))
        );
        opened.epoch = Some(9);
        let json = wire::opened_json(&opened);
        assert!(json.ends_with(r#""writer":"host:1","epoch":9}}"#), "{json}");
        assert_eq!(
            envelope::parse_entry(&json),
            Ok(Entry::Control(Control::Opened(opened)))
        );
    }

    #[test]
    fn other_rules_are_refused_and_the_current_ones_pass() {
        let mut opened = Opened::now("host:1", time(), 0);
        assert_eq!(check_rules(1, &opened), Ok(()));
        opened.rules = RULES_VERSION + 1;
        let e = check_rules(4, &opened).unwrap_err();
        assert_eq!(e.line, 4);
        let text = e.to_string();
        assert!(
            text.contains(&format!("rules version {}", RULES_VERSION + 1))
                && text.contains(&format!("decides by rules version {RULES_VERSION}"))
                && text.contains("writer host:1"),
            "{text}"
        );
    }
}
