//! `handoff journal verify` and `handoff journal repair`: what is wrong with a journal, read
//! without changing it, and the two ways to make a damaged one usable again.
//!
//! Both read the journal as [`crate::journal::FileJournal::open`] does, line by line with
//! [`journal::check`], and add what start-up checks next: whether each intact entry is a
//! valid event or control entry (ICD section 8; checksummed like the events, counted apart,
//! and the rules versions they name shown). Damage after the last intact entry is a torn tail, which start-up cuts off by
//! itself (it was never acknowledged). Damage with intact entries after it means acknowledged
//! events cannot be read; then an operator restores a copy, drops the damaged lines, or
//! truncates before the first one. A repair never touches the only copy: it writes a backup
//! first, and the repaired journal replaces the old one by an atomic rename.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::edge::envelope;
use crate::journal::control::{Control, ControlType, Entry};
use crate::journal::feed::{self, Summary};
use crate::journal::read::{Line, LineReader};
use crate::journal::{self, LineError, OutboxMark};
use handoff_core::RULES_VERSION;
use handoff_core::engine::Engine;

/// The read buffer: large reads keep the syscall count low on big journals.
const READ_BUFFER: usize = 1 << 20;

/// How a repair treats intact entries after the first damaged line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Keep them; move only the damaged lines aside.
    DropDamaged,
    /// Move them aside too.
    Truncate,
}

/// What is wrong with one line of a journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    /// The last line has no '\n': its write was cut short.
    TornTail,
    /// The line does not start with a readable checksum. `json` says whether it is JSON at
    /// all.
    NoChecksum { json: bool },
    /// The stored checksum does not match the line's bytes.
    Mismatch { stored: u32, computed: u32 },
    /// The checksum matches but the text is not UTF-8.
    NotUtf8,
    /// The line is intact (its checksum matches) but not a valid event or control entry,
    /// which replay and start-up refuse. The text is the envelope's reason.
    NotAnEvent(String),
}

impl Problem {
    /// Whether the line itself is intact, as start-up reads it (only its event is wrong).
    pub(crate) fn is_intact(&self) -> bool {
        matches!(self, Problem::NotAnEvent(_))
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::TornTail => write!(
                f,
                "torn tail: the last line has no newline, so its write was cut short"
            ),
            Problem::NoChecksum { json: true } => write!(
                f,
                "missing checksum: a JSON line without a handoffcrc first member, so the \
                 journal did not write it or its start is damaged"
            ),
            Problem::NoChecksum { json: false } => write!(
                f,
                "missing checksum, and not JSON: not a journal entry (zero bytes left by a \
                 power loss look like this) or its start is damaged"
            ),
            Problem::Mismatch { stored, computed } => write!(
                f,
                "{}",
                LineError::Mismatch {
                    stored: *stored,
                    computed: *computed
                }
            ),
            Problem::NotUtf8 => write!(f, "{}", LineError::NotUtf8),
            Problem::NotAnEvent(reason) => write!(
                f,
                "intact (its checksum matches) but not a valid event ({reason}), so replay \
                 and start-up refuse it"
            ),
        }
    }
}

/// One line that is not an intact, valid entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    /// 1-based.
    pub line_number: u64,
    /// The byte offset of the line's start.
    pub offset: u64,
    /// The line's length in bytes, with its '\n' if it has one.
    pub len: u64,
    pub problem: Problem,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    pub path: PathBuf,
    /// Lines, the last one counted even without a '\n'.
    pub lines: u64,
    pub bytes: u64,
    /// Lines whose checksum matches (valid events or not).
    pub entries: u64,
    /// Intact entries that are valid events.
    pub events: u64,
    /// Intact entries that are valid control entries (ICD section 8).
    pub controls: u64,
    /// Every `handoff.journal.opened`, in file order.
    pub opened: Vec<OpenedAt>,
    /// What the first line is, when it is an intact, valid entry: `Some(false)` when it is
    /// not a `handoff.journal.opened`. That is a warning, not a finding: journals written
    /// before handoff recorded its rules version, and logs of inbound events, have no such
    /// entry, and the ICD decides them under the current rules (start-up appends one when
    /// it next opens the journal). Nothing in the file is damaged, so the verdict and exit
    /// status stay those of an intact journal.
    pub first_is_opened: Option<bool>,
    /// Every line that is not an intact, valid entry, in file order.
    pub findings: Vec<Finding>,
    /// The offset after the last intact entry: start-up cuts off whatever follows it.
    pub intact_end: u64,
    /// Whether another process (a running service) held the journal's lock.
    pub locked: bool,
}

impl Report {
    /// Whether every line is an intact, valid event.
    pub(crate) fn is_intact(&self) -> bool {
        self.findings.is_empty()
    }

    /// The torn tail start-up would cut off, as (offset, bytes).
    pub(crate) fn tail(&self) -> Option<(u64, u64)> {
        (self.bytes > self.intact_end).then(|| (self.intact_end, self.bytes - self.intact_end))
    }

    /// Damaged lines with an intact entry after them: acknowledged events lost.
    pub(crate) fn damaged_in_the_middle(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| !f.problem.is_intact() && f.offset < self.intact_end)
    }

    /// Intact entries that are not valid events.
    pub(crate) fn not_events(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.problem.is_intact())
    }
}

/// A `handoff.journal.opened` entry as verify shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpenedAt {
    pub line_number: u64,
    pub rules: u32,
    pub writer: String,
}

/// Why verify or repair could not do its work.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ToolError {
    #[error(
        "{path} is locked by another process, most likely a running `handoff serve`; stop the \
         service first (a repair must not race its writes), then repair"
    )]
    Locked { path: PathBuf },
    #[error("cannot {op} {path}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
}

fn io_error(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> ToolError {
    move |source| ToolError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// Calls `each` for every line of `file` from its start; gives the file's length.
fn scan(
    file: &File,
    path: &Path,
    mut each: impl FnMut(&Line<'_>) -> Result<(), ToolError>,
) -> Result<u64, ToolError> {
    let mut file = file;
    file.seek(SeekFrom::Start(0))
        .map_err(io_error(path, "read"))?;
    let mut reader = LineReader::new(BufReader::with_capacity(READ_BUFFER, file));
    while let Some(line) = reader.next_line().map_err(io_error(path, "read"))? {
        each(&line)?;
    }
    Ok(reader.bytes_read())
}

/// The entry (event or control entry) on one line, or what is wrong with it.
fn classify(line: &Line<'_>) -> Result<Entry, Problem> {
    if !line.complete {
        return Err(Problem::TornTail);
    }
    let body = line.bytes;
    match journal::check(body) {
        Ok(text) => envelope::parse_entry(text).map_err(|e| Problem::NotAnEvent(e.to_string())),
        Err(LineError::NoChecksum) => Err(Problem::NoChecksum {
            json: serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok(),
        }),
        Err(LineError::Mismatch { stored, computed }) => {
            Err(Problem::Mismatch { stored, computed })
        }
        Err(LineError::NotUtf8) => Err(Problem::NotUtf8),
    }
}

/// Reads an open journal from its start.
fn verify_open(file: &File, path: &Path, locked: bool) -> Result<Report, ToolError> {
    let mut report = Report {
        path: path.to_path_buf(),
        lines: 0,
        bytes: 0,
        entries: 0,
        events: 0,
        controls: 0,
        opened: Vec::new(),
        first_is_opened: None,
        findings: Vec::new(),
        intact_end: 0,
        locked,
    };
    report.bytes = scan(file, path, |line| {
        report.lines = line.number;
        let result = classify(line);
        if !matches!(&result, Err(p) if !p.is_intact()) {
            report.entries += 1;
            report.intact_end = line.offset + line.len_on_disk();
        }
        if line.number == 1
            && let Ok(entry) = &result
        {
            report.first_is_opened = Some(matches!(entry, Entry::Control(Control::Opened(_))));
        }
        match result {
            Ok(Entry::Event(_)) => report.events += 1,
            Ok(Entry::Control(Control::Opened(o))) => {
                report.controls += 1;
                report.opened.push(OpenedAt {
                    line_number: line.number,
                    rules: o.rules,
                    writer: o.writer,
                });
            }
            Err(problem) => report.findings.push(Finding {
                line_number: line.number,
                offset: line.offset,
                len: line.len_on_disk(),
                problem,
            }),
        }
        Ok(())
    })?;
    Ok(report)
}

/// Verifies the journal at `path` without changing it. It takes no lock (a running service
/// may hold it), but notes whether one is held.
pub(crate) fn verify(path: &Path) -> Result<Report, ToolError> {
    let file = File::open(path).map_err(io_error(path, "open"))?;
    let locked = match file.try_lock_shared() {
        Ok(()) => {
            // Released at once: a service starting now must be able to take its lock.
            let _ = file.unlock();
            false
        }
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(std::fs::TryLockError::Error(_)) => false,
    };
    verify_open(&file, path, locked)
}

/// What [`repair`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Repaired {
    /// The journal as it was.
    pub backup: PathBuf,
    /// Where the lines not kept went, with how many lines and bytes.
    pub moved_aside: Option<(PathBuf, u64, u64)>,
    /// Entries in the repaired journal.
    pub kept: u64,
    /// The repaired journal's length.
    pub bytes: u64,
    /// Some((before, after)) when the outbox mark was lowered.
    pub mark_lowered: Option<(u64, u64)>,
    /// Set when the repaired file could not be given the old file's owner.
    pub owner_warning: Option<String>,
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Creates a new file with mode 0600; an existing one is an error.
fn create_private(path: &Path) -> Result<File, ToolError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(io_error(path, "create"))
}

fn sync_parent(path: &Path) -> Result<(), ToolError> {
    crate::journal::sync_dir_of(path).map_err(io_error(path, "sync the directory of"))
}

/// Gives `file` the owner of `like` (a repair run as root must not leave the journal
/// unreadable to the service's user). Returns a warning when that fails.
fn same_owner(file: &File, like: &std::fs::Metadata, path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::os::unix::fs::fchown(file, Some(like.uid()), Some(like.gid()))
            .err()
            .map(|e| {
                format!(
                    "cannot give {} to uid {} gid {} ({e}); make sure the service's user can \
                     read and write it",
                    path.display(),
                    like.uid(),
                    like.gid()
                )
            })
    }
    #[cfg(not(unix))]
    {
        let _ = (file, like, path);
        None
    }
}

/// Removes a temporary file unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Repairs the journal at `path`; `Ok(None)` when it is intact and nothing was done.
///
/// Refuses with [`ToolError::Locked`] while another process holds the journal's lock, and
/// holds the lock itself until the repaired file is in place. See `REPAIR_ABOUT` for what
/// each mode keeps.
pub(crate) fn repair(path: &Path, mode: Mode) -> Result<Option<Repaired>, ToolError> {
    let file = File::open(path).map_err(io_error(path, "open"))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(ToolError::Locked {
                path: path.to_path_buf(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io_error(path, "lock")(e)),
    }
    let report = verify_open(&file, path, false)?;
    if report.is_intact() {
        return Ok(None);
    }
    let metadata = file
        .metadata()
        .map_err(io_error(path, "read the metadata of"))?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();

    // The backup, whole and synced, before anything else is written.
    let backup = sibling(path, &format!(".bak-{stamp}"));
    let mut copy = create_private(&backup)?;
    let mut reader = &file;
    reader
        .seek(SeekFrom::Start(0))
        .map_err(io_error(path, "read"))?;
    io::copy(&mut reader, &mut copy).map_err(io_error(&backup, "write"))?;
    copy.sync_all().map_err(io_error(&backup, "sync"))?;
    drop(copy);

    let tmp_path = sibling(path, &format!(".repair-{stamp}.tmp"));
    let tmp_file = create_private(&tmp_path)?;
    let mut tmp = TempFile {
        path: tmp_path.clone(),
        armed: true,
    };
    let mut out = BufWriter::with_capacity(READ_BUFFER, &tmp_file);
    let aside_path = sibling(path, &format!(".damaged-{stamp}"));
    let mut aside: Option<BufWriter<File>> = None;
    let (mut moved_lines, mut moved_bytes) = (0u64, 0u64);
    let (mut kept, mut bytes) = (0u64, 0u64);
    // Decisions implied by the entries before the first line not kept: those are the same
    // in the repaired journal, so the outbox mark may stay up to there.
    let mut engine = Engine::new();
    let mut prefix = Summary::default();
    let mut dropped_any = false;
    scan(&file, path, |line| {
        let entry = if mode == Mode::Truncate && dropped_any {
            None
        } else {
            classify(line).ok()
        };
        match entry {
            Some(entry) => {
                // Control entries decide nothing: they are kept, and not counted.
                if let (false, Entry::Event(event)) = (dropped_any, &entry) {
                    feed::decide(&mut engine, &mut prefix, event);
                }
                // An entry's line is complete: `classify` refuses a torn one.
                out.write_all(line.bytes)
                    .and_then(|()| out.write_all(b"\n"))
                    .map_err(io_error(&tmp_path, "write"))?;
                kept += 1;
                bytes += line.len_on_disk();
            }
            None => {
                dropped_any = true;
                if aside.is_none() {
                    aside = Some(BufWriter::new(create_private(&aside_path)?));
                }
                let w = aside.as_mut().expect("created above");
                w.write_all(line.bytes)
                    .and_then(|()| w.write_all(if line.complete { b"\n" } else { b"" }))
                    .map_err(io_error(&aside_path, "write"))?;
                moved_lines += 1;
                moved_bytes += line.len_on_disk();
            }
        }
        Ok(())
    })?;
    out.flush().map_err(io_error(&tmp_path, "write"))?;
    drop(out);
    if let Some(w) = aside {
        let f = w
            .into_inner()
            .map_err(|e| io_error(&aside_path, "write")(e.into_error()))?;
        f.sync_all().map_err(io_error(&aside_path, "sync"))?;
    }
    let owner_warning = same_owner(&tmp_file, &metadata, path);
    tmp_file.sync_all().map_err(io_error(&tmp_path, "sync"))?;
    drop(tmp_file);
    std::fs::rename(&tmp_path, path).map_err(io_error(path, "replace"))?;
    tmp.armed = false;
    sync_parent(path)?;

    let mark = OutboxMark::beside(path);
    let (published, unreadable) = mark.load().map_err(|e| ToolError::Io {
        path: mark.path().to_path_buf(),
        op: "read",
        source: io::Error::other(e.to_string()),
    })?;
    let mut mark_lowered = None;
    if !unreadable && published > prefix.decisions {
        mark.store(prefix.decisions).map_err(|e| ToolError::Io {
            path: mark.path().to_path_buf(),
            op: "lower",
            source: io::Error::other(e.to_string()),
        })?;
        if let Ok(f) = File::open(mark.path()) {
            let _ = same_owner(&f, &metadata, mark.path());
        }
        mark_lowered = Some((published, prefix.decisions));
    }
    // The lock goes with the old file, which is no longer the journal.
    drop(file);
    Ok(Some(Repaired {
        backup,
        moved_aside: (moved_lines > 0).then_some((aside_path, moved_lines, moved_bytes)),
        kept,
        bytes,
        mark_lowered,
        owner_warning,
    }))
}

/// The rules versions the journal's opened entries name, and the warnings about them.
fn write_rules(r: &Report, out: &mut impl Write) -> io::Result<()> {
    let mut versions: Vec<u32> = r.opened.iter().map(|o| o.rules).collect();
    versions.sort_unstable();
    versions.dedup();
    for v in &versions {
        let of: Vec<&OpenedAt> = r.opened.iter().filter(|o| o.rules == *v).collect();
        writeln!(
            out,
            "  rules version {v}{}: {} {} entries, the first at line {} (writer {})",
            if *v == RULES_VERSION {
                " (this handoff's)"
            } else {
                ""
            },
            of.len(),
            ControlType::Opened,
            of[0].line_number,
            of[0].writer
        )?;
    }
    if let Some(other) = r.opened.iter().find(|o| o.rules != RULES_VERSION) {
        writeln!(
            out,
            "  warning: line {}: the journal says its events were decided under rules version \
             {}, and this handoff decides by version {RULES_VERSION}: `handoff serve` refuses \
             to start on it, and `handoff replay` refuses it unless given --rules current (a \
             what-if). Read it with the release that decides by version {}",
            other.line_number, other.rules, other.rules
        )?;
    }
    if r.first_is_opened == Some(false) {
        writeln!(
            out,
            "  warning: the first entry is not a {}: a journal written before handoff \
             recorded its rules version, or a log of inbound events. It is decided under this \
             handoff's rules (version {RULES_VERSION}); `handoff serve` appends an opened entry \
             when it next starts on it",
            ControlType::Opened
        )?;
    }
    Ok(())
}

/// Writes the report and, when something is wrong, what it means and what can be done.
pub(crate) fn write_report(r: &Report, out: &mut impl Write) -> io::Result<()> {
    let path = r.path.display();
    writeln!(out, "{path}: {} lines, {} bytes", r.lines, r.bytes)?;
    let not_events = r.not_events().count() as u64;
    let damaged = r.findings.len() as u64 - not_events;
    match (not_events, r.controls) {
        (0, 0) => writeln!(
            out,
            "  {} intact entries, all valid events (replay accepts them)",
            r.entries
        )?,
        (0, controls) => writeln!(
            out,
            "  {} intact entries, all valid: {} events and {controls} control entries \
             (replay accepts them; control entries decide nothing)",
            r.entries, r.events
        )?,
        (_, controls) => writeln!(
            out,
            "  {} intact entries, {not_events} of them not valid events (replay and start-up \
             refuse those){}",
            r.entries,
            if controls > 0 {
                format!("; {} events and {controls} control entries", r.events)
            } else {
                String::new()
            }
        )?,
    }
    writeln!(out, "  damaged lines: {damaged}")?;
    write_rules(r, out)?;
    if r.locked {
        writeln!(
            out,
            "  note: a running service holds this journal; its last line may be a write in \
             progress"
        )?;
    }
    for f in &r.findings {
        writeln!(
            out,
            "line {} (byte {}, {} bytes): {}",
            f.line_number, f.offset, f.len, f.problem
        )?;
    }
    if r.is_intact() {
        writeln!(out, "verdict: intact")?;
        return Ok(());
    }
    let middle: Vec<&Finding> = r.damaged_in_the_middle().collect();
    let first_not_event = r.not_events().next();
    let only_tail = middle.is_empty() && first_not_event.is_none();
    if let Some((offset, len)) = r.tail() {
        writeln!(
            out,
            "\nTorn tail: the {len} bytes from byte {offset} on follow the last intact entry. A \
             crash or power loss in the middle of a write leaves this. They were never \
             acknowledged, so RabbitMQ still holds their messages, and `handoff serve` cuts \
             the tail off by itself at start-up.{}",
            if only_tail {
                format!(
                    " Nothing is lost and nothing needs doing (`handoff journal repair {path} \
                     --truncate` would cut it off now, with a backup)."
                )
            } else {
                String::new()
            }
        )?;
    }
    if let Some(first) = middle.first() {
        // Truncating keeps what precedes the first finding of any kind.
        let keep = r.findings[0].line_number - 1;
        writeln!(
            out,
            "\nDamage in the middle: line {} (byte {}) is damaged and intact entries follow \
             it{}, so this is not a torn write: the damaged lines held events that were \
             acknowledged, and they are unreadable now. `handoff serve` refuses to start \
             rather than guess. Stop the \
             service if it runs and keep a copy of the file. The choices:\n\
             \n  (a) Restore the journal from a backup or a copy taken after the damaged \
             events were written, then run `handoff journal verify {path}` again. Nothing is \
             lost if the copy holds every acknowledged event.\n\
             \n  (b) `handoff journal repair {path} --drop-damaged`: keep every intact entry \
             and move the damaged lines aside to {path}.damaged-<time>. Their events are gone \
             from the journal, so decisions computed after them may differ from what was \
             published: compare `handoff replay {path}` with the decisions on the audit \
             queue, and have the agencies re-publish the lost events.\n\
             \n  (c) `handoff journal repair {path} --truncate`: keep only the first {keep} \
             entries, those before line {}, and move everything from there on aside. The \
             agencies must re-publish every event after that point.\n\
             \nBoth repairs refuse while a service holds the journal, write a backup \
             {path}.bak-<time> first, and lower the outbox mark so that start-up publishes \
             the decisions after the damage again.",
            first.line_number,
            first.offset,
            if middle.len() > 1 {
                format!(" ({} damaged lines in all)", middle.len())
            } else {
                String::new()
            },
            r.findings[0].line_number,
        )?;
    }
    if let Some(first) = first_not_event {
        writeln!(
            out,
            "\nNot valid events: line {} (byte {}) is intact as written, but it is not an \
             event this handoff accepts, so replay and start-up refuse it. Most likely another \
             version of handoff (with other schemas) wrote it: read the journal with that \
             version. Otherwise `repair --drop-damaged` moves such lines aside and \
             `repair --truncate` cuts the journal before the first one, like damaged lines.",
            first.line_number, first.offset
        )?;
    }
    let verdict = if only_tail {
        "damaged (torn tail only: start-up repairs it)"
    } else {
        "damaged (start-up refuses this journal)"
    };
    writeln!(out, "verdict: {verdict}")
}

pub(crate) fn write_repaired(path: &Path, r: &Repaired, out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "backup: {} (the journal as it was, mode 0600)",
        r.backup.display()
    )?;
    if let Some((aside, lines, bytes)) = &r.moved_aside {
        writeln!(
            out,
            "moved aside: {lines} lines ({bytes} bytes) to {}",
            aside.display()
        )?;
    }
    writeln!(
        out,
        "repaired: {} now holds {} intact entries ({} bytes)",
        path.display(),
        r.kept,
        r.bytes
    )?;
    if let Some((before, after)) = r.mark_lowered {
        writeln!(
            out,
            "outbox mark: lowered from {before} to {after} decisions; start-up publishes \
             every later decision again (same ids where unchanged)"
        )?;
    }
    if let Some(w) = &r.owner_warning {
        writeln!(out, "warning: {w}")?;
    }
    Ok(())
}
